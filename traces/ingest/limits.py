"""Ingest limits (settings, documented in docs/ingest.md) and the error every decoder raises."""

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings

from accounts import menus
from accounts.models import Project
from sre4ai_web.lib.api_errors import ApiError

TRUNCATION_MARK = "…[truncated by sre4ai: attribute over SRE4AI_INGEST_MAX_ATTRIBUTE_BYTES]"
# A JSON request body may nest its format's envelope plus values at the value limit: OTLP/JSON spends a dozen
# levels above the attributes and three per AnyValue level (value, kvlistValue, values); the native format two
# per level of span children. Four per level covers both.
ENVELOPE_LEVELS = 16
LEVELS_PER_VALUE_LEVEL = 4


class IngestError(ApiError):
    """A request-level rejection by either ingest endpoint: the HTTP status and a message that says what to fix.
    The native API answers it as JSON (the API's exception handler), OTLP as a Status body (traces.api)."""

    def __init__(self, status: int, message: str, retry_after: int | None = None):
        super().__init__(status, message, retry_after=retry_after)


def too_deep(value: Any, limit: int) -> str | None:
    """Where ``value`` nests lists or objects more than ``limit`` levels deep (``[0].a`` style), else None.

    Iterative, so a value nested deeper than Python's recursion limit is measured, not crashed on; the path is
    only built once the value is known to be too deep.
    """
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, (dict, list)):
            if depth > limit:
                return _path_past(value, limit)
            stack.extend((child, depth + 1) for child in (node.values() if isinstance(node, dict) else node))
    return None


def _path_past(value: Any, limit: int) -> str:
    stack: list[tuple[Any, int, str]] = [(value, 1, "")]
    while stack:
        node, depth, path = stack.pop()
        if not isinstance(node, (dict, list)):
            continue
        if depth > limit:
            return path or "(top level)"
        if isinstance(node, dict):
            steps = [(f".{key}" if path else str(key), child) for key, child in node.items()]
        else:
            steps = [(f"[{index}]", child) for index, child in enumerate(node)]
        stack.extend((child, depth + 1, path + step) for step, child in steps)
    return "(top level)"


@dataclass(frozen=True)
class IngestLimits:
    max_body_bytes: int
    max_spans_per_request: int
    max_attribute_bytes: int
    max_attribute_key_bytes: int
    max_json_depth: int
    max_span_age: timedelta
    max_future: timedelta
    # The project's raw retention (accounts.retention) when shorter than max_span_age: an older span would be
    # removed by the next sweep, so it is refused, with a reason that names the setting.
    raw_retention_days: int | None = None

    @classmethod
    def from_settings(cls, project: Project | None = None) -> "IngestLimits":
        max_age_days = settings.INGEST_MAX_SPAN_AGE_DAYS
        retention = project.raw_retention_days if project is not None else None
        return cls(
            max_body_bytes=settings.INGEST_MAX_BODY_BYTES,
            max_spans_per_request=settings.INGEST_MAX_SPANS_PER_REQUEST,
            max_attribute_bytes=settings.INGEST_MAX_ATTRIBUTE_BYTES,
            max_attribute_key_bytes=settings.INGEST_MAX_ATTRIBUTE_KEY_BYTES,
            max_json_depth=settings.INGEST_MAX_JSON_DEPTH,
            max_span_age=timedelta(days=max_age_days),
            max_future=timedelta(seconds=settings.INGEST_MAX_FUTURE_SECONDS),
            raw_retention_days=retention if retention is not None and retention < max_age_days else None,
        )

    @property
    def max_body_depth(self) -> int:
        return ENVELOPE_LEVELS + LEVELS_PER_VALUE_LEVEL * self.max_json_depth

    def body_too_large_message(self) -> str:
        return (
            f"Body exceeds {self.max_body_bytes} bytes after decompression "
            "(SRE4AI_INGEST_MAX_BODY_BYTES): send smaller batches."
        )

    def clip(self, text: str) -> str:
        """Over-long attribute strings are cut, with a visible mark, rather than the span rejected."""
        if len(text) <= self.max_attribute_bytes // 4:
            return text  # fast path: cannot exceed the byte limit even at 4 bytes per character
        encoded = text.encode()
        if len(encoded) <= self.max_attribute_bytes:
            return text
        return encoded[: self.max_attribute_bytes].decode(errors="ignore") + TRUNCATION_MARK

    def attributes_problem(self, attributes: dict[str, Any], what: str = "attribute") -> str | None:
        """Why a map of attributes cannot be stored (a key too long, a value nested too deep), or None."""
        for key, value in attributes.items():
            if len(key) > self.max_attribute_key_bytes // 4 and len(key.encode()) > self.max_attribute_key_bytes:
                return (
                    f"{what} key {key[:40]!r}… is {len(key.encode())} bytes, over the limit of "
                    f"{self.max_attribute_key_bytes} (SRE4AI_INGEST_MAX_ATTRIBUTE_KEY_BYTES)"
                )
            if isinstance(value, (dict, list)):
                where = too_deep(value, self.max_json_depth)
                if where is not None:
                    return f"{what} {key!r} nests deeper than {self.json_depth_text()} at {where}"
        return None

    def json_depth_text(self) -> str:
        return f"{self.max_json_depth} levels (SRE4AI_INGEST_MAX_JSON_DEPTH)"

    def times_problem(self, start: datetime, end: datetime, now: datetime) -> str | None:
        """Why a span's start and end are not accepted (order, or outside the window around now), or None."""
        if end < start:
            return f"end_time is before start_time ({end.isoformat()} < {start.isoformat()})"
        if self.raw_retention_days is not None and start < now - timedelta(days=self.raw_retention_days):
            return (
                f"start_time {start.isoformat()} is more than {self.raw_retention_days} days in the past, the "
                f"project's raw data retention ({menus.DATA_RETENTION}): it would be removed at once"
            )
        if start < now - self.max_span_age:
            return (
                f"start_time {start.isoformat()} is more than {self.max_span_age.days} days in the past "
                "(SRE4AI_INGEST_MAX_SPAN_AGE_DAYS)"
            )
        if end > now + self.max_future:
            return (
                f"end_time {end.isoformat()} is more than {int(self.max_future.total_seconds())} s in the future "
                "(SRE4AI_INGEST_MAX_FUTURE_SECONDS)"
            )
        return None
