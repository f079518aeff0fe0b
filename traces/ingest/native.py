"""The native JSON format of ``POST /api/v1/traces``: a batch of traces with nested spans.

Each trace is validated on its own, so one bad trace is reported by index and the others are stored.
Ids are optional: when absent they are derived from the content, so re-sending a batch never duplicates.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from sre4ai_web.lib.bounds import MAX_COST, MAX_TOKENS
from sre4ai_web.lib.validation import pydantic_message
from traces.ingest.limits import IngestError, IngestLimits, too_deep
from traces.ingest.normalize import DocumentRecord, SpanRecord
from traces.models import SpanKind

HEX = "0123456789abcdef"


def _without_nul(value: Any) -> Any:
    """PostgreSQL text cannot hold NUL: replace it, as the OTLP decoder does."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, list):
        return [_without_nul(v) for v in value]
    if isinstance(value, dict):
        return {_without_nul(k): _without_nul(v) for k, v in value.items()}
    return value


def _check_hex(value: str | None, size: int, what: str) -> str | None:
    if value is None:
        return None
    lowered = value.lower()
    if len(lowered) != size or any(c not in HEX for c in lowered) or set(lowered) == {"0"}:
        raise ValueError(f"{what} must be {size} hexadecimal characters and not all zeros")
    return lowered


class DocumentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = ""
    content: str = ""
    score: float | None = None
    metadata: dict[str, Any] | None = None


class ToolIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    arguments: Any = None
    result: Any = None


class SpanIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    span_id: str | None = Field(default=None, description="16 hex characters; derived from the content if absent.")
    name: str = Field(min_length=1, max_length=500)
    kind: SpanKind = SpanKind.SPAN
    start_time: datetime
    end_time: datetime | None = None
    status: Literal["ok", "error"] = "ok"
    status_message: str = ""
    model: str = Field(default="", max_length=200)
    provider: str = Field(default="", max_length=100)
    input: Any = None
    output: Any = None
    input_tokens: int | None = Field(default=None, ge=0, le=MAX_TOKENS)
    output_tokens: int | None = Field(default=None, ge=0, le=MAX_TOKENS)
    total_tokens: int | None = Field(default=None, ge=0, le=MAX_TOKENS)
    cost: Decimal | None = Field(
        default=None,
        ge=0,
        le=MAX_COST,
        max_digits=20,
        decimal_places=10,
        description="USD; computed from tokens when absent.",
    )
    prompt_name: str = Field(default="", max_length=200)
    prompt_version: str = Field(default="", max_length=100)
    documents: list[DocumentIn] = Field(default_factory=list)
    tool: ToolIn | None = None
    attributes: dict[str, Any] = Field(default_factory=dict)
    children: list[SpanIn] = Field(default_factory=list)

    @field_validator("span_id")
    @classmethod
    def _span_id(cls, value: str | None) -> str | None:
        return _check_hex(value, 16, "span_id")

    @field_validator("start_time", "end_time")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("give a timezone, e.g. 2026-01-01T12:00:00Z")
        return value

    @model_validator(mode="after")
    def _within_limits(self, info: ValidationInfo) -> SpanIn:
        limits, now = _limits_and_now(info)
        problem = (
            limits.times_problem(self.start_time, self.end_time or self.start_time, now)
            or limits.attributes_problem(self.attributes)
            or self._nesting_problem(limits)
        )
        if problem is not None:
            raise ValueError(problem)
        return self

    def _nesting_problem(self, limits: IngestLimits) -> str | None:
        values = {"input": self.input, "output": self.output}
        if self.tool is not None:
            values.update({"tool.arguments": self.tool.arguments, "tool.result": self.tool.result})
        values.update({f"documents[{i}].metadata": d.metadata for i, d in enumerate(self.documents)})
        for name, value in values.items():
            where = too_deep(value, limits.max_json_depth)
            if where is not None:
                return f"{name} nests deeper than {limits.json_depth_text()} at {where}"
        return None


class TraceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    trace_id: str | None = Field(default=None, description="32 hex characters; derived from the content if absent.")
    name: str = Field(default="", max_length=500)
    service: str = Field(min_length=1, max_length=200)
    environment: str = Field(default="default", max_length=64, pattern=r"^[a-z0-9_-]+$")
    release: str = Field(default="", max_length=200)
    session_id: str = Field(default="", max_length=200)
    user_id: str = Field(default="", max_length=200)
    tags: list[str] = Field(default_factory=list)
    spans: list[SpanIn] = Field(min_length=1)

    @field_validator("trace_id")
    @classmethod
    def _trace_id(cls, value: str | None) -> str | None:
        return _check_hex(value, 32, "trace_id")

    @model_validator(mode="before")
    @classmethod
    def _span_tree_depth(cls, data: Any, info: ValidationInfo) -> Any:
        """Children nested past the limit are refused before they are validated (and walked) recursively."""
        limits, _ = _limits_and_now(info)
        spans = data.get("spans") if isinstance(data, dict) else None
        stack = [(span, 1) for span in spans] if isinstance(spans, list) else []
        while stack:
            span, depth = stack.pop()
            if depth > limits.max_json_depth:
                raise ValueError(f"spans nest children deeper than {limits.json_depth_text()}")
            if isinstance(span, dict) and isinstance(span.get("children"), list):
                stack.extend((child, depth + 1) for child in span["children"])
        return data


def _limits_and_now(info: ValidationInfo) -> tuple[IngestLimits, datetime]:
    context = info.context or {}
    return context.get("limits") or IngestLimits.from_settings(), context.get("now") or datetime.now(tz=UTC)


class BatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    traces: list[Any] = Field(min_length=1)


def _digest(payload: Any, size: int) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:size]


def _flatten(trace: TraceIn, trace_id: str) -> list[SpanRecord]:
    records: list[SpanRecord] = []

    def walk(span: SpanIn, parent: str, path: str) -> None:
        span_id = span.span_id or _digest([trace_id, path, span.name], 16)
        record = SpanRecord(
            trace_id=trace_id,
            span_id=span_id,
            parent_span_id=parent,
            name=span.name,
            kind=span.kind.value,
            start_time=span.start_time,
            end_time=span.end_time or span.start_time,
            status=span.status,
            status_message=span.status_message,
            service=trace.service,
            environment=trace.environment,
            release=trace.release,
            session_id=trace.session_id,
            user_id=trace.user_id,
            tags=sorted(set(trace.tags)),
            trace_name=trace.name if not parent else "",
            model=span.model,
            provider=span.provider,
            input_tokens=span.input_tokens,
            output_tokens=span.output_tokens,
            total_tokens=span.total_tokens,
            cost=span.cost,
            prompt_name=span.prompt_name,
            prompt_version=span.prompt_version,
            input=span.input,
            output=span.output,
            attributes=span.attributes,
            source="native",
            documents=[
                DocumentRecord(position=i, document_id=d.id, score=d.score, content=d.content, metadata=d.metadata)
                for i, d in enumerate(span.documents)
            ],
        )
        if span.tool is not None:
            record.tool_name, record.tool_args, record.tool_result = (
                span.tool.name,
                span.tool.arguments,
                span.tool.result,
            )
        records.append(record.finish())
        for index, child in enumerate(span.children):
            walk(child, span_id, f"{path}.{index}")

    for index, root in enumerate(trace.spans):
        walk(root, "", str(index))
    return records


def decode_batch(
    document: Any, limits: IngestLimits | None = None
) -> tuple[list[SpanRecord], list[dict[str, Any]], int]:
    """Validated span records, per-trace errors ``[{index, error}]``, and the number of accepted traces. A body
    that is not a batch, or holds more spans than a request may, raises IngestError (400, 413)."""
    limits = limits or IngestLimits.from_settings()
    context = {"limits": limits, "now": datetime.now(tz=UTC)}
    document = _without_nul(document)
    try:
        batch = BatchIn.model_validate(document)
    except ValidationError as exc:
        raise IngestError(400, f"Body does not match the batch schema: {pydantic_message(exc)}") from exc
    records: list[SpanRecord] = []
    errors: list[dict[str, Any]] = []
    accepted = 0
    for index, item in enumerate(batch.traces):
        try:
            trace = TraceIn.model_validate(item, context=context)
        except ValidationError as exc:
            errors.append({"index": index, "error": pydantic_message(exc)})
            continue
        trace_id = trace.trace_id or _digest(item, 32)
        records.extend(_flatten(trace, trace_id))
        accepted += 1
    if len(records) > limits.max_spans_per_request:
        raise IngestError(413, f"{len(records)} spans in one request; the limit is {limits.max_spans_per_request}.")
    return records, errors, accepted
