"""Formatting of overview signals (plain strings: Django escapes them), and the chart pages' figures as JSON."""

import json
from decimal import Decimal
from typing import Any

from django import template
from django.core.serializers.json import DjangoJSONEncoder
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

from traces.templatetags.trace_format import duration, usd

register = template.Library()
# What Django's json_script escapes, so that no text in the figures (a release or model name) can end the script.
JSON_SCRIPT_ESCAPES = (("<", "\\u003C"), (">", "\\u003E"), ("&", "\\u0026"))
RATES = {"errors", "quality", "grounding"}
# Lower is better for these; for the others (quality, grounding) higher is better.
LOWER_IS_BETTER = {"errors", "p95", "safety", "cost_per_request"}


@register.filter
def signal_value(signal: dict[str, Any]) -> str:
    value, key = signal["value"], signal["key"]
    if value is None:
        # No score applied (no answer text, no documents): not applicable, which is not 0% and not a failure.
        return "n/a" if key in ("quality", "grounding") else "–"
    if key == "traffic":
        return f"{value:,}"
    if key in RATES:
        return f"{value:.1%}"
    if key == "p95":
        return duration(value)
    if key == "safety":
        return str(value)
    return usd(Decimal(value)) if key == "cost_per_request" else str(value)


@register.filter
def signal_change(signal: dict[str, Any]) -> str:
    change, key = signal["change"], signal["key"]
    if change is None or change == 0:
        return ""
    arrow = "▲" if change > 0 else "▼"
    if key == "traffic":
        return f"{arrow} {abs(change):.0%}"
    if key in RATES:
        return f"{arrow} {abs(change) * 100:.1f} pt"
    if key == "p95":
        return f"{arrow} {duration(abs(change))}"
    if key == "safety":
        return f"{arrow} {abs(change):.0f}"
    return f"{arrow} {usd(Decimal(str(abs(change))))}"


@register.filter
def signal_class(signal: dict[str, Any]) -> str:
    """'bad' when the value is unhealthy, 'worse' / 'better' for the direction of the change."""
    value, change, key = signal["value"], signal["change"], signal["key"]
    classes = []
    if value is not None and (
        (key == "errors" and value > 0.05)
        or (key in ("quality", "grounding") and value < 0.9)
        or (key == "safety" and value > 0)
    ):
        classes.append("bad")
    if change:
        worse = change > 0 if key in LOWER_IS_BETTER else change < 0
        if key != "traffic":
            classes.append("worse" if worse else "better")
    return " ".join(classes)


@register.filter
def sig3(value: float | None) -> str:
    """Three significant figures in plain notation: a median cost of 5.23e-05 reads "0.0000523"."""
    if value is None:
        return "–"
    return format(Decimal(f"{value:.3g}"), "f")


@register.filter
def percent(value: float | None) -> str:
    return "–" if value is None else f"{value:.1%}"


@register.filter
def signal_rate(series: Any, signal: str) -> str:
    """A series' pass rate of a signal (quality, grounding) as the overview shows it: n/a when nothing applied."""
    rate = series.rate(signal)
    return "n/a" if rate is None else f"{rate:.1%}"


register.filter("usd", usd)
register.filter("duration", duration)


@register.filter
def chart_json(figures: Any, element_id: str) -> SafeString:
    """Django's ``json_script``, the same output, escaped with ``str.replace``: its ``str.translate`` with a dict
    looks up every character and took 14 of the 20 ms of a 30-day service page's 230 KB of figures."""
    text = json.dumps(figures, cls=DjangoJSONEncoder)
    for char, escaped in JSON_SCRIPT_ESCAPES:
        text = text.replace(char, escaped)
    return format_html('<script id="{}" type="application/json">{}</script>', element_id, mark_safe(text))
