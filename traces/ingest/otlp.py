"""OTLP/HTTP wire format: decode request bodies into RawSpan / RawEvent, encode responses.

This module only parses and validates; it knows nothing about the database.
OTLP/JSON is not plain proto3 JSON: ids are hex (not base64), enums integers, int64 values strings.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from time import time_ns
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from traces.ingest.body import json_document
from traces.ingest.limits import IngestError, IngestLimits
from traces.ingest.normalize import (
    EVALUATION_EVENT,
    EvaluationRecord,
    RawEvent,
    RawSpan,
    evaluation_record,
    holds_deep_json,
    nanos_to_datetime,
)

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
ID_FIELDS = {"traceId": 16, "spanId": 8, "parentSpanId": 8}


@dataclass
class DecodedSpans:
    spans: list[RawSpan]
    rejected: list[str] = field(default_factory=list)
    # gen_ai.evaluation.result span events, each for the span that carries it; a malformed one is a warning
    # (its span is stored all the same).
    evaluations: list[EvaluationRecord] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@dataclass
class LogEvent:
    trace_id: str
    span_id: str
    event: RawEvent


@dataclass
class DecodedLogs:
    events: list[LogEvent]
    rejected: list[str] = field(default_factory=list)
    evaluations: list[EvaluationRecord] = field(default_factory=list)


def wire_format(content_type: str) -> str:
    """'protobuf' or 'json'; a charset or other parameter may follow the media type."""
    lowered = content_type.lower()
    if PROTOBUF in lowered or "application/protobuf" in lowered:
        return "protobuf"
    if JSON in lowered:
        return "json"
    raise IngestError(
        415,
        f"Unsupported Content-Type {content_type!r}: send application/x-protobuf or application/json (OTLP/HTTP).",
    )


def _fix_json_ids(node: Any) -> Any:
    """Rewrite OTLP/JSON hex ids as base64 so protobuf's JSON parser reads the right bytes."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ID_FIELDS and isinstance(value, str):
                try:
                    raw = bytes.fromhex(value)
                except ValueError:
                    raw = b"\xff"  # not hex: an invalid id of the wrong length, rejected per span later
                node[key] = base64.b64encode(raw).decode()
            else:
                _fix_json_ids(value)
    elif isinstance(node, list):
        for item in node:
            _fix_json_ids(item)
    return node


def parse_message(body: bytes, fmt: str, message: Message, limits: IngestLimits) -> None:
    if fmt == "protobuf":
        try:
            message.ParseFromString(body)
        except (DecodeError, RuntimeError, ValueError, RecursionError) as exc:
            raise IngestError(400, f"Body is not a valid OTLP protobuf {type(message).__name__}: {exc}.") from exc
        return
    document = json_document(body, limits)
    if not isinstance(document, dict):
        raise IngestError(400, 'OTLP/JSON body must be an object such as {"resourceSpans": [...]}.')
    try:
        json_format.ParseDict(_fix_json_ids(document), message, ignore_unknown_fields=True)
    except (json_format.ParseError, ValueError, TypeError, RecursionError) as exc:
        raise IngestError(400, f"Body is not valid OTLP/JSON: {exc}.") from exc


def text(value: str) -> str:
    """PostgreSQL stores no NUL character (text or jsonb): one in a span must not fail its whole batch."""
    return value.replace("\x00", "\ufffd") if "\x00" in value else value


def _finite(value: float) -> float | str:
    """NaN and ±Infinity have no JSON (jsonb) form: keep them as the strings OTLP/JSON uses."""
    if math.isfinite(value):
        return value
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


def any_value(value: AnyValue, limits: IngestLimits) -> Any:
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return limits.clip(text(value.string_value))
    if kind == "bool_value":
        return value.bool_value
    if kind == "int_value":
        return value.int_value
    if kind == "double_value":
        return _finite(value.double_value)
    if kind == "array_value":
        return [any_value(v, limits) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {text(kv.key): any_value(kv.value, limits) for kv in value.kvlist_value.values}
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    return None


def to_any_value(value: Any) -> AnyValue:
    """The inverse of any_value, for code that builds OTLP requests (demo data, tests, benchmarks)."""
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, (list, tuple)):
        return AnyValue(array_value=ArrayValue(values=[to_any_value(v) for v in value]))
    if isinstance(value, dict):
        return AnyValue(kvlist_value=KeyValueList(values=to_key_values(value)))
    if isinstance(value, bytes):
        return AnyValue(bytes_value=value)
    return AnyValue(string_value=str(value))


def to_key_values(items: dict[str, Any]) -> list[KeyValue]:
    return [KeyValue(key=k, value=to_any_value(v)) for k, v in items.items() if v is not None]


def attributes(items: Iterable[KeyValue], limits: IngestLimits) -> dict[str, Any]:
    return {text(kv.key): any_value(kv.value, limits) for kv in items}


def _hex_id(raw: bytes, size: int, what: str, required: bool) -> str:
    if not raw and not required:
        return ""
    if len(raw) != size:
        raise ValueError(f"{what} must be {size} bytes ({size * 2} hex characters), got {len(raw)} bytes")
    if raw == b"\0" * size:
        raise ValueError(f"{what} must not be all zeros")
    return raw.hex()


def decode_traces(body: bytes, fmt: str, limits: IngestLimits) -> DecodedSpans:
    request = ExportTraceServiceRequest()
    parse_message(body, fmt, request, limits)
    total = sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)
    if total > limits.max_spans_per_request:
        raise IngestError(
            413, f"{total} spans in one request; the limit is {limits.max_spans_per_request}: send smaller batches."
        )
    result = DecodedSpans(spans=[])
    now = datetime.now(tz=UTC)
    for resource_spans in request.resource_spans:
        resource = attributes(resource_spans.resource.attributes, limits)
        resource_problem = limits.attributes_problem(resource, "resource attribute")
        for scope_spans in resource_spans.scope_spans:
            scope = {"name": text(scope_spans.scope.name), "version": text(scope_spans.scope.version)}
            for span in scope_spans.spans:
                try:
                    trace_id = _hex_id(span.trace_id, 16, "trace_id", required=True)
                    span_id = _hex_id(span.span_id, 8, "span_id", required=True)
                    parent = _hex_id(span.parent_span_id, 8, "parent_span_id", required=False)
                    if span.start_time_unix_nano == 0:
                        raise ValueError("start_time_unix_nano is missing")
                except ValueError as exc:
                    result.rejected.append(f"span {span.name!r}: {exc}")
                    continue
                raw = RawSpan(
                    trace_id=trace_id,
                    span_id=span_id,
                    parent_span_id=parent,
                    name=text(span.name),
                    otlp_kind=int(span.kind),
                    start_unix_nano=span.start_time_unix_nano,
                    end_unix_nano=span.end_time_unix_nano,
                    status_code=int(span.status.code),
                    status_message=text(span.status.message),
                    attributes=attributes(span.attributes, limits),
                    resource=resource,
                    scope=scope,
                    events=[
                        RawEvent(text(e.name), e.time_unix_nano, attributes(e.attributes, limits)) for e in span.events
                    ],
                )
                problem = resource_problem or _span_problem(raw, limits, now)
                if problem is not None:
                    result.rejected.append(f"span {raw.name[:200]!r}: {problem}")
                    continue
                result.spans.append(raw)
                for event in raw.events:
                    if event.name == EVALUATION_EVENT:
                        try:
                            result.evaluations.append(evaluation_record(event, trace_id, span_id))
                        except ValueError as exc:
                            result.warnings.append(f"span {raw.name[:200]!r}: {exc}")
    return result


def _span_problem(span: RawSpan, limits: IngestLimits, now: datetime) -> str | None:
    """Why a decoded span is not stored (its times, an attribute key or value), or None."""
    start = nanos_to_datetime(span.start_unix_nano)
    end = nanos_to_datetime(span.end_unix_nano) if span.end_unix_nano else start
    return (
        limits.times_problem(start, end, now)
        or limits.attributes_problem(span.attributes)
        or next(
            (
                p
                for e in span.events
                if (p := limits.attributes_problem(e.attributes, f"event {e.name[:100]!r} attribute"))
            ),
            None,
        )
    )


def decode_logs(body: bytes, fmt: str, limits: IngestLimits) -> DecodedLogs:
    """Log records that belong to a span (gen_ai.* events of older instrumentations), and evaluation events
    (gen_ai.evaluation.result), which name their span by its ids or by gen_ai.response.id."""
    request = ExportLogsServiceRequest()
    parse_message(body, fmt, request, limits)
    result = DecodedLogs(events=[])
    received = time_ns()
    for resource_logs in request.resource_logs:
        for scope_logs in resource_logs.scope_logs:
            for record in scope_logs.log_records:
                attrs = attributes(record.attributes, limits)
                name = text(record.event_name) or str(attrs.get("event.name") or attrs.get("gen_ai.event.name") or "")
                if name == EVALUATION_EVENT:
                    _decode_evaluation(record, attrs, limits, result)
                    continue
                if not record.trace_id or not record.span_id:
                    result.rejected.append(f"log record {name!r}: has no trace_id/span_id to attach it to")
                    continue
                try:
                    trace_id = _hex_id(record.trace_id, 16, "trace_id", required=True)
                    span_id = _hex_id(record.span_id, 8, "span_id", required=True)
                except ValueError as exc:
                    result.rejected.append(f"log record {name!r}: {exc}")
                    continue
                body_value = any_value(record.body, limits) if record.HasField("body") else None
                problem = limits.attributes_problem({**attrs, "body": body_value})
                if problem is None and holds_deep_json([body_value, attrs]):
                    problem = f"JSON text nests deeper than {limits.json_depth_text()}"
                if problem is not None:
                    result.rejected.append(f"log record {name[:200]!r}: {problem}")
                    continue
                # A record without either time counts as received now (retention removes events by their time).
                time = record.time_unix_nano or record.observed_time_unix_nano or received
                result.events.append(LogEvent(trace_id, span_id, RawEvent(name, time, attrs, body_value)))
    return result


def _decode_evaluation(record: LogRecord, attrs: dict[str, Any], limits: IngestLimits, result: DecodedLogs) -> None:
    try:
        trace_id = _hex_id(record.trace_id, 16, "trace_id", required=bool(record.span_id))
        span_id = _hex_id(record.span_id, 8, "span_id", required=False) if trace_id else ""
        problem = limits.attributes_problem(attrs)
        if problem is not None:
            raise ValueError(problem)
        time = record.time_unix_nano or record.observed_time_unix_nano
        result.evaluations.append(evaluation_record(RawEvent(EVALUATION_EVENT, time, attrs), trace_id, span_id))
    except ValueError as exc:
        result.rejected.append(f"log record {EVALUATION_EVENT!r}: {exc}")


def encode_response(message: Message, fmt: str) -> tuple[bytes, str]:
    if fmt == "protobuf":
        return message.SerializeToString(), PROTOBUF
    return json_format.MessageToJson(message, indent=None).encode(), JSON


def trace_response(rejected: list[str], warnings: Sequence[str] = ()) -> ExportTraceServiceResponse:
    """``warnings`` (evaluation events of stored spans that were not scored) go in error_message, with
    rejected_spans 0 when nothing was rejected, as the OTLP specification allows."""
    response = ExportTraceServiceResponse()
    if rejected:
        response.partial_success.rejected_spans = len(rejected)
    messages = [
        _summarise(rejected) if rejected else "",
        _summarise(list(warnings), "evaluation events not scored") if warnings else "",
    ]
    if rejected or warnings:
        response.partial_success.error_message = "; ".join(m for m in messages if m)
    return response


def logs_response(rejected: list[str]) -> ExportLogsServiceResponse:
    response = ExportLogsServiceResponse()
    if rejected:
        response.partial_success.rejected_log_records = len(rejected)
        response.partial_success.error_message = _summarise(rejected)
    return response


def _summarise(rejected: list[str], what: str = "rejected", shown: int = 5) -> str:
    head = "; ".join(rejected[:shown])
    more = f"; and {len(rejected) - shown} more" if len(rejected) > shown else ""
    return f"{len(rejected)} {what}: {head}{more}"


def status_body(message: str, fmt: str) -> tuple[bytes, str]:
    """Error bodies as google.rpc.Status, the shape OTLP clients log."""
    return encode_response(Status(message=message), fmt)
