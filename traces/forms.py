"""Trace-list filters, shared by the list page (form errors) and GET /api/v1/traces (400 with the errors)."""

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django import forms
from django.utils import timezone

from traces.selectors import TraceFilters

RANGES = {"1h": timedelta(hours=1), "24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30)}


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
    cursor = forms.CharField(required=False, max_length=200, widget=forms.HiddenInput)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        since, until = data.get("since"), data.get("until")
        if since and until and since > until:
            raise forms.ValidationError("'since' must be before 'until'.")
        return data

    def to_filters(self, now: datetime | None = None) -> TraceFilters:
        data = self.cleaned_data
        since = data.get("since")
        if data.get("range"):
            window_start = (now or timezone.now()) - RANGES[data["range"]]
            since = max(since, window_start) if since else window_start
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
        )
