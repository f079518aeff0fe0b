"""SLO page filters: numbers as people read them, and runbooks rendered from Markdown and sanitised."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import markdown as md
import nh3
from django import template
from django.utils.safestring import SafeString, mark_safe

from accounts.models import Project
from slos import burn
from slos.models import Incident, IncidentStatus

register = template.Library()

# Links in a runbook may point anywhere a person can follow; nothing else survives (no script, style, on*).
_TAGS = {
    "p",
    "br",
    "hr",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "ul",
    "ol",
    "li",
    "strong",
    "em",
    "code",
    "pre",
    "blockquote",
    "a",
    "table",
    "thead",
    "tbody",
    "tr",
    "th",
    "td",
}


@register.filter
def runbook(text: str) -> SafeString:
    """Markdown → HTML, then sanitised by nh3 (an allow-list of tags, safe URL schemes, rel=noopener)."""
    html = md.markdown(text or "", extensions=["tables", "fenced_code"], output_format="html")
    cleaned = nh3.clean(html, tags=_TAGS, attributes={"a": {"href", "title"}}, url_schemes={"http", "https", "mailto"})
    return mark_safe(cleaned)  # nh3 output: sanitised HTML


@register.filter
def pct(value: Decimal | float | None, places: int = 2) -> str:
    """0.99512 → "99.51%" (no rounding up to 100% unless it is)."""
    if value is None:
        return "–"
    return burn.format_number(Decimal(str(value)) * 100, places) + "%"


@register.simple_tag
def open_incident_count(project: Project) -> int:
    """Unresolved incidents of the project, for the navigation (one indexed count per page)."""
    return Incident.objects.filter(project=project).exclude(status=IncidentStatus.RESOLVED).count()


@register.filter
def budget_class(value: Decimal | float | None) -> str:
    """Red for an exhausted or overspent error budget (0 or below), wherever a budget is shown."""
    return "error" if value is not None and value <= 0 else ""


@register.filter
def rate(value: Decimal | float | None) -> str:
    """A burn rate: 16.234 → "16.23×"."""
    return "–" if value is None else burn.format_number(Decimal(str(value)), 2) + "×"


@register.filter
def rate_class(value: Decimal | float | None, threshold: Decimal) -> str:
    return "over" if value is not None and Decimal(str(value)) > threshold else ""


@register.filter
def window(value: timedelta | int) -> str:
    return burn.format_window(value)


@register.filter
def span(value: timedelta | None) -> str:
    """A duration for people: "3d 4h", "5h 10m", "12m"."""
    if value is None:
        return "–"
    minutes = int(value.total_seconds() // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    return f"{hours}h {mins}m" if hours else f"{mins}m"


@register.filter
def num(value: Decimal | None) -> str:
    """A stored decimal as typed: 2000, 0.7, 0.05 (no exponent, no trailing zeros)."""
    return "–" if value is None else burn.format_number(value, 10)
