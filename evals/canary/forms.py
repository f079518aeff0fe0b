"""Input of a canary comparison, shared by the page, the REST endpoint and ``manage.py canary``: one set of
rules and one set of messages that say what to fix."""

from __future__ import annotations

import re
from datetime import UTC, datetime, time, timedelta
from typing import Any

from django import forms
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from pydantic import ValidationError as PydanticError

from accounts.models import Project
from evals.canary.cohorts import CanaryReport, canary_analyse
from evals.canary.stats import DEFAULT_CRITICAL, CanaryConfig
from sre4ai_web.lib.validation import pydantic_errors

DEFAULT_RANGE = timedelta(hours=24)
ATTRIBUTE_SUGGESTIONS = ("release", "model", "prompt", "environment")
_RELATIVE = re.compile(r"^(?P<amount>\d+)\s*(?P<unit>[mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
TIME_HELP = "ISO 8601 time or date (UTC unless it has an offset), or a duration ago: 30m, 6h, 7d, 2w."
CONFIG_FIELDS = (
    "alpha",
    "correction",
    "rate_margin",
    "relative_margin",
    "min_events",
    "min_values",
    "pass_threshold",
    "marginal_threshold",
    "critical",
)


def parse_moment(text: str, *, now: datetime) -> datetime:
    """An aware datetime from ISO 8601 (date-only means midnight UTC) or a relative '6h' meaning 6 hours ago."""
    text = text.strip()
    relative = _RELATIVE.match(text)
    if relative:
        return now - timedelta(**{_UNITS[relative["unit"]]: int(relative["amount"])})
    try:
        moment = parse_datetime(text.replace("Z", "+00:00").replace("z", "+00:00"))
        day = None if moment else parse_date(text)
    except ValueError as exc:  # well-formed but impossible, e.g. 2025-02-30
        raise ValueError(f"{text!r} is not a valid date or time: {exc}") from exc
    if day is not None:
        moment = datetime.combine(day, time.min)
    if moment is None:
        raise ValueError(f"{text!r} is not a time: use {TIME_HELP}")
    return moment if timezone.is_aware(moment) else moment.replace(tzinfo=UTC)


class CanaryForm(forms.Form):
    service = forms.CharField(max_length=200)
    attribute = forms.CharField(
        required=False,
        max_length=200,
        initial="release",
        help_text="release (default), model, prompt, environment, or any span or resource attribute name.",
    )
    baseline = forms.CharField(max_length=500, help_text="Attribute value of the version in production.")
    canary = forms.CharField(max_length=500, help_text="Attribute value of the new version.")
    since = forms.CharField(required=False, max_length=40, help_text=TIME_HELP + " Default: 24 h before 'until'.")
    until = forms.CharField(required=False, max_length=40, help_text=TIME_HELP + " Default: now.")
    alpha = forms.FloatField(required=False, help_text="Significance level after the correction (default 0.05).")
    correction = forms.ChoiceField(
        required=False,
        choices=[
            ("", "holm (default)"),
            ("holm", "holm"),
            ("bonferroni", "bonferroni"),
            ("bh", "Benjamini-Hochberg"),
            ("none", "none"),
        ],
    )
    rate_margin = forms.FloatField(required=False, help_text="Rate difference that counts, 0.02 = 2 points.")
    relative_margin = forms.FloatField(required=False, help_text="Relative median shift that counts, 0.1 = 10%.")
    min_events = forms.IntegerField(required=False, help_text="Minimum events per cohort for a pass/fail signal.")
    min_values = forms.IntegerField(required=False, help_text="Minimum values per cohort for a continuous signal.")
    pass_threshold = forms.FloatField(required=False, help_text="Score (0-100) to pass; default 95.")
    marginal_threshold = forms.FloatField(required=False, help_text="Score (0-100) to be marginal; default 75.")
    critical = forms.CharField(
        required=False,
        max_length=1000,
        help_text=f"Comma-separated signals that fail the canary alone (default: {','.join(DEFAULT_CRITICAL)}; "
        "none for none).",
    )

    def __init__(self, *args: Any, now: datetime | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.now = now or timezone.now()

    def _moment(self, name: str) -> datetime | None:
        text = self.cleaned_data.get(name, "")
        if not text:
            return None
        try:
            return parse_moment(text, now=self.now)
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from exc

    def clean_attribute(self) -> str:
        return str(self.cleaned_data.get("attribute") or "release")

    def clean_since(self) -> datetime | None:
        return self._moment("since")

    def clean_until(self) -> datetime | None:
        return self._moment("until")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if "since" in data and "until" in data:
            until = data["until"] or self.now
            since = data["since"] or until - DEFAULT_RANGE
            if since >= until:
                self.add_error(
                    "since", f"'since' ({since:%Y-%m-%d %H:%M}) must be before 'until' ({until:%Y-%m-%d %H:%M} UTC)."
                )
            data["since"], data["until"] = since, until
        if data.get("baseline") and data.get("baseline") == data.get("canary"):
            self.add_error("canary", "The canary value must differ from the baseline value.")
        settings: dict[str, Any] = {
            name: data[name] for name in CONFIG_FIELDS if data.get(name) not in (None, "") and name != "critical"
        }
        if data.get("critical"):
            # "none" clears the default list: no signal then fails the canary on its own.
            names = [s.strip() for s in data["critical"].split(",") if s.strip()]
            settings["critical"] = [] if [n.lower() for n in names] == ["none"] else names
        try:
            data["config"] = CanaryConfig(**settings)
        except PydanticError as exc:
            for loc, text in pydantic_errors(exc):
                where = str(loc[0]) if loc else None
                self.add_error(where if where in self.fields else None, text)
        return data

    def analyse(self, project: Project) -> CanaryReport:
        """The comparison the valid form asks for (page, API and command alike); raises CohortError for a service
        or cohort without traces."""
        data = self.cleaned_data
        return canary_analyse(
            project=project,
            service=data["service"],
            attribute=data["attribute"],
            baseline=data["baseline"],
            canary=data["canary"],
            since=data["since"],
            until=data["until"],
            config=data["config"],
        )
