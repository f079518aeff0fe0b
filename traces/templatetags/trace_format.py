"""Display helpers. They return plain strings (or plain data), so Django still escapes everything they output:
none of them marks anything safe."""

import json
from collections.abc import Mapping
from datetime import datetime
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
def as_text(value: Any) -> str:
    """A message's content: text as it is, anything structured (a list of parts, a dict) as pretty JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


@register.filter
def is_chat(value: Any) -> bool:
    return _is_chat(value)


@register.filter
def as_messages(value: Any) -> list[Mapping[str, Any]] | None:
    """Chat messages to show as messages: a list of them, or a single ``{role, content}`` message
    (Langfuse generations often record the completion as one message object). Otherwise None."""
    if _is_chat(value):
        return list(value)
    if (
        isinstance(value, Mapping)
        and isinstance(value.get("role"), str)
        and ("content" in value or "tool_calls" in value)
    ):
        return [value]
    return None


@register.filter
def is_text(value: Any) -> bool:
    return isinstance(value, str)


@register.filter
def offset_from(start: datetime | None, origin: datetime | None) -> str:
    """``span.start_time|offset_from:trace.start_time`` → "+1.20 s"."""
    if start is None or origin is None:
        return "–"
    ms = (start - origin).total_seconds() * 1000.0
    return ("+" if ms >= 0 else "−") + duration(abs(ms))


@register.filter
def at_most(value: int | None, limit: int) -> int:
    """Clamp a number (e.g. a waterfall depth, so deep trees keep room for the span name)."""
    return min(int(value or 0), int(limit))
