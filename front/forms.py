"""Trace-list filters, shared by the list page (form errors) and GET /api/v1/traces (400 with the errors)."""

from datetime import datetime
from decimal import Decimal
from typing import Any

from django import forms
from django.utils import timezone

from front.selectors import GROUP_SORTS, SORT_KEYS, GroupFilters, TraceFilters, TraceSort
from rollups.selectors import RANGES


class TraceFilterForm(forms.Form):
    service = forms.CharField(required=False, max_length=200)
    environment = forms.CharField(required=False, max_length=64)
    model = forms.CharField(required=False, max_length=200)
    status = forms.ChoiceField(required=False, choices=[("", "any"), ("ok", "ok"), ("error", "error")])
    range = forms.ChoiceField(
        required=False,
        choices=[
            ("", "all time"),
            ("1h", "last hour"),
            ("24h", "last 24 h"),
            ("7d", "last 7 days"),
            ("30d", "last 30 days"),
        ],
    )
    since = forms.DateTimeField(required=False, help_text="ISO 8601, e.g. 2026-01-31T12:00Z")
    until = forms.DateTimeField(required=False)
    q = forms.CharField(required=False, max_length=200, label="Search input/output")
    min_duration_ms = forms.FloatField(required=False, min_value=0, label="Min latency (ms)")
    min_cost = forms.DecimalField(
        required=False, min_value=Decimal(0), max_digits=20, decimal_places=10, label="Min cost ($)"
    )
    session_id = forms.CharField(required=False, max_length=200)
    user_id = forms.CharField(required=False, max_length=200)
    release = forms.CharField(required=False, max_length=200)
    failing = forms.CharField(required=False, max_length=100, label="Failing score")
    name = forms.CharField(required=False, max_length=500, label="Trace name (route)")
    score = forms.CharField(required=False, max_length=100, label="Has score")
    sort = forms.ChoiceField(
        required=False,
        choices=[("", "newest first")] + [(p + k, p + k) for k in SORT_KEYS for p in ("-", "")],
        help_text="time, latency, cost, tokens or score; '-' for largest first.",
    )
    cursor = forms.CharField(required=False, max_length=400, widget=forms.HiddenInput)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        since, until = data.get("since"), data.get("until")
        if since and until and since > until:
            raise forms.ValidationError("'since' must be before 'until'.")
        if data.get("sort", "").removeprefix("-") == "score" and not self.score_name(data):
            self.add_error("sort", "Sorting by score needs a score: pick one under 'Has score' or 'Failing check'.")
        return data

    @staticmethod
    def score_name(data: dict[str, Any]) -> str:
        """The score whose value the list shows and sorts by: 'Has score', else the failing check (a trace that
        fails a check has that score, so the extra filter changes nothing)."""
        return data.get("score") or data.get("failing") or ""

    def to_sort(self) -> TraceSort:
        return TraceSort.parse(self.cleaned_data.get("sort") or "-time")

    def to_filters(self, now: datetime | None = None) -> TraceFilters:
        data = self.cleaned_data
        since = time_window(data, now)
        return TraceFilters(
            service=data.get("service") or "",
            environment=data.get("environment") or "",
            model=data.get("model") or "",
            status=data.get("status") or "",
            since=since,
            until=data.get("until"),
            text=(data.get("q") or "").strip(),
            min_duration_ms=data.get("min_duration_ms"),
            min_cost=data.get("min_cost"),
            session_id=data.get("session_id") or "",
            user_id=data.get("user_id") or "",
            release=data.get("release") or "",
            failing=data.get("failing") or "",
            name=data.get("name") or "",
            score=self.score_name(data),
        )


def time_window(data: dict[str, Any], now: datetime | None = None) -> datetime | None:
    """The start of the window a cleaned form asks for: the later of 'since' and now − 'range'."""
    since = data.get("since")
    if data.get("range"):
        window_start = (now or timezone.now()) - RANGES[data["range"]]
        since = max(since, window_start) if since else window_start
    return since


class GroupFilterForm(forms.Form):
    """Filters and sort of the session and user lists."""

    service = forms.CharField(required=False, max_length=200)
    environment = forms.CharField(required=False, max_length=64)
    range = forms.ChoiceField(
        required=False,
        choices=[
            ("24h", "last 24 h"),
            ("1h", "last hour"),
            ("7d", "last 7 days"),
            ("30d", "last 30 days"),
            ("", "all time"),
        ],
    )
    since = forms.DateTimeField(required=False, help_text="ISO 8601, e.g. 2026-01-31T12:00Z")
    until = forms.DateTimeField(required=False)
    sort = forms.ChoiceField(
        required=False,
        choices=[("last_seen", "last seen"), ("traces", "traces"), ("cost", "cost"), ("failing", "failing")],
    )

    def __init__(self, data: Any, *args: Any, **kwargs: Any):
        # The lists default to the last 24 hours (an all-time grouping of a large project is slow): a form
        # submitted without a range still has one, while "all time" is an explicit empty value.
        if "range" not in data:
            data = data.copy()
            data["range"] = "24h"
        super().__init__(data, *args, **kwargs)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        since, until = data.get("since"), data.get("until")
        if since and until and since > until:
            raise forms.ValidationError("'since' must be before 'until'.")
        return data

    def to_filters(self, now: datetime | None = None) -> GroupFilters:
        data = self.cleaned_data
        return GroupFilters(
            service=data.get("service") or "",
            environment=data.get("environment") or "",
            since=time_window(data, now),
            until=data.get("until"),
        )

    def to_sort(self) -> str:
        sort = self.cleaned_data.get("sort") or "last_seen"
        assert sort in GROUP_SORTS
        return sort


class SavedViewForm(forms.Form):
    name = forms.CharField(max_length=100)

    def __init__(self, *args: Any, taken: set[str] | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.taken = taken or set()

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if not name:
            raise forms.ValidationError("Give the view a name.")
        if name in self.taken:
            raise forms.ValidationError(f"A view named '{name}' exists already: pick another name or delete it.")
        return name
