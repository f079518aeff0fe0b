"""Display helpers. They return plain strings, so Django still escapes everything they output."""

import json
from decimal import Decimal
from typing import Any

from django import template

from traces.ingest.normalize import is_chat as _is_chat

register = template.Library()


@register.filter
def duration(ms: float | None) -> str:
    if ms is None:
        return "–"
    if ms < 1:
        return f"{ms:.2f} ms"
    if ms < 1000:
        return f"{ms:.0f} ms"
    if ms < 60_000:
        return f"{ms / 1000:.2f} s"
    return f"{ms / 60_000:.1f} min"


@register.filter
def usd(value: Decimal | None) -> str:
    if value is None:
        return "–"
    if value == 0:
        return "$0"
    if value < Decimal("0.01"):
        return f"${value:.5f}".rstrip("0")
    return f"${value:,.4f}".rstrip("0").rstrip(".")


@register.filter
def tokens(value: int | None) -> str:
    if value is None:
        return "–"
    return f"{value:,}"


@register.filter
def pretty(value: Any) -> str:
    """JSON pretty-printed; a string that holds JSON is parsed first."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return value
        if isinstance(value, str):
            return value
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False, default=str)


@register.filter
def is_chat(value: Any) -> bool:
    return _is_chat(value)


@register.filter
def is_text(value: Any) -> bool:
    return isinstance(value, str)
