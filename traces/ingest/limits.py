"""Ingest limits (settings, documented in docs/ingest.md) and the error every decoder raises."""

from dataclasses import dataclass

from django.conf import settings

TRUNCATION_MARK = "…[truncated by sre4ai: attribute over SRE4AI_INGEST_MAX_ATTRIBUTE_BYTES]"


class IngestError(Exception):
    """A request-level rejection: the HTTP status and a message that says what to fix."""

    def __init__(self, status: int, message: str, retry_after: int | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry_after = retry_after


@dataclass(frozen=True)
class IngestLimits:
    max_body_bytes: int
    max_spans_per_request: int
    max_attribute_bytes: int

    @classmethod
    def from_settings(cls) -> "IngestLimits":
        return cls(
            max_body_bytes=settings.INGEST_MAX_BODY_BYTES,
            max_spans_per_request=settings.INGEST_MAX_SPANS_PER_REQUEST,
            max_attribute_bytes=settings.INGEST_MAX_ATTRIBUTE_BYTES,
        )

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
