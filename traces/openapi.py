"""The endpoints the OpenAPI schema cannot find by itself: OTLP/HTTP ingest (``/v1/traces``, ``/v1/logs``) and the
Prometheus scrape (``/metrics``) are plain Django views, not REST framework ones. A drf-spectacular post-processing
hook adds them, with their authentication, content types, limits (read from the settings at request time, so the
docs show what this server enforces) and answers (docs/ingest.md)."""

from __future__ import annotations

from typing import Any

from django.conf import settings

from traces.ingest.limits import IngestLimits

SECURITY: list[dict[str, list[str]]] = [{"projectKey": []}]
OTLP_CONTENT_TYPES = ("application/x-protobuf", "application/json")


def _size(n: int) -> str:
    return f"{n / 1024 / 1024:g} MiB" if n >= 1024 * 1024 else f"{n / 1024:g} KiB" if n >= 1024 else f"{n} bytes"


def _rate_limits() -> str:
    key, project = settings.INGEST_KEY_SPANS_PER_MINUTE, settings.INGEST_PROJECT_SPANS_PER_MINUTE
    return (
        f"{f'{key:,}' if key else 'no limit'} spans per minute per key, "
        f"{f'{project:,}' if project else 'no limit'} per project"
    )


def _ingest_limits(unit: str) -> str:
    limits = IngestLimits.from_settings()
    return "\n".join(
        [
            "**Limits**",
            "",
            f"- body: at most {_size(limits.max_body_bytes)} after decompression "
            "(`SRE4AI_INGEST_MAX_BODY_BYTES`); chunked bodies are read and capped too → 413",
            f"- {unit} per request: at most {limits.max_spans_per_request:,} (`SRE4AI_INGEST_MAX_SPANS_PER_REQUEST`) → 413",
            f"- an attribute value longer than {_size(limits.max_attribute_bytes)} is cut and marked truncated; "
            f"a key longer than {limits.max_attribute_key_bytes} bytes, or JSON in a value deeper than "
            f"{limits.max_json_depth} levels, rejects the item in `partial_success`",
            f"- times: at most {limits.max_span_age.days} days in the past (or the project's raw data retention, if "
            f"shorter) and {int(limits.max_future.total_seconds() // 3600)} hours in the future → rejected in "
            "`partial_success`",
            f"- rate: {_rate_limits()} → 429 with `Retry-After`",
        ]
    )


def _answers(item: str) -> dict[str, dict[str, Any]]:
    status = {"application/json": {"schema": {"$ref": "#/components/schemas/OtlpStatus"}}}
    return {
        "200": {
            "description": f"Stored (sent after the commit), in the request's content type. {item} that were "
            "invalid are counted in `partial_success` with a message naming each problem; the others are stored.",
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/OtlpExportResponse"}},
                "application/x-protobuf": {"schema": {"type": "string", "format": "binary"}},
            },
        },
        "400": {"description": "The body cannot be decoded (google.rpc.Status with the reason).", "content": status},
        "401": {"description": "Missing, unknown or malformed key (with `WWW-Authenticate`).", "content": status},
        "403": {"description": "Revoked key, or a key without the `ingest` scope.", "content": status},
        "411": {"description": "A chunked body on a server that cannot read it (Django's runserver)."},
        "413": {"description": "Body or item count over the limits above.", "content": status},
        "415": {"description": "Content-Type or Content-Encoding not supported.", "content": status},
        "429": {"description": "Rate limit reached or too many requests in flight: retry after `Retry-After`."},
        "503": {"description": "Storage unavailable: retry after `Retry-After`."},
    }


def _otlp(path: str, signal: str, message: str, item: str, unit: str, example: dict[str, Any]) -> dict[str, Any]:
    return {
        "post": {
            "operationId": f"otlp_{signal}",
            "tags": ["OTLP ingest"],
            "summary": f"OTLP/HTTP {signal}: an {message}, protobuf or JSON",
            "description": "\n".join(
                [
                    f"What OpenTelemetry SDKs and collectors send with `OTEL_EXPORTER_OTLP_ENDPOINT` set to this "
                    f"server (the SDK appends `{path}`); the Langfuse SDK's `/api/public/otel{path}` is the same "
                    "endpoint.",
                    "",
                    "**Authentication**: `Authorization: Bearer <secret key>` (SDKs: "
                    "`OTEL_EXPORTER_OTLP_HEADERS=Authorization=Bearer%20<secret key>`) or HTTP Basic "
                    "`public_key:secret_key`; the key needs the `ingest` scope and decides the project.",
                    "",
                    "**Content types**: `application/x-protobuf` or `application/json` (OTLP/JSON: hex ids, "
                    "lowerCamelCase fields); `Content-Encoding: gzip` or `deflate` is accepted.",
                    "",
                    _ingest_limits(unit),
                ]
            ),
            "security": SECURITY,
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": {"type": "object"}, "example": example},
                    "application/x-protobuf": {"schema": {"type": "string", "format": "binary"}},
                },
            },
            "responses": _answers(item),
        }
    }


TRACE_EXAMPLE = {
    "resourceSpans": [
        {
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "my-app"}}]},
            "scopeSpans": [
                {
                    "spans": [
                        {
                            "traceId": "5b8efff798038103d269b633813fc60c",
                            "spanId": "eee19b7ec3c1b174",
                            "name": "chat gpt-4o-mini",
                            "startTimeUnixNano": "1767225600000000000",
                            "endTimeUnixNano": "1767225601200000000",
                            "attributes": [
                                {"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
                                {"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o-mini"}},
                                {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "812"}},
                            ],
                        }
                    ]
                }
            ],
        }
    ]
}
LOG_EXAMPLE = {
    "resourceLogs": [
        {
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "my-app"}}]},
            "scopeLogs": [
                {
                    "logRecords": [
                        {
                            "timeUnixNano": "1767225601000000000",
                            "eventName": "gen_ai.evaluation.result",
                            "traceId": "5b8efff798038103d269b633813fc60c",
                            "spanId": "eee19b7ec3c1b174",
                            "attributes": [
                                {"key": "gen_ai.evaluation.name", "value": {"stringValue": "relevance"}},
                                {"key": "gen_ai.evaluation.score.label", "value": {"stringValue": "pass"}},
                            ],
                        }
                    ]
                }
            ],
        }
    ]
}
METRICS_EXAMPLE = """# HELP sre4ai_traces_total Traces received (by start time).
# TYPE sre4ai_traces_total counter
sre4ai_traces_total{environment="production",project="acme",service="support-bot"} 1234.0
# HELP sre4ai_slo_error_budget_remaining_ratio Share of the SLO window's error budget left (negative when overspent).
# TYPE sre4ai_slo_error_budget_remaining_ratio gauge
sre4ai_slo_error_budget_remaining_ratio{project="acme",service="support-bot",slo="Grounded answers",slo_id="3"} 0.62
"""
METRICS = {
    "get": {
        "operationId": "metrics",
        "tags": ["Prometheus"],
        "summary": "The project's series in the Prometheus text format",
        "description": "\n".join(
            [
                "For a Prometheus scrape job: traffic, errors, cost and tokens per service and environment, checks "
                "judged and passed, safety flags, SLO objectives, SLIs, burn rates, error budgets and firing "
                "alerts, spend budgets, and the OTLP export of scores (docs/alerting.md).",
                "",
                "**Authentication**: `Authorization: Bearer <secret key>` with the `read` scope (an app's "
                "ingest-only key gets 403); in Prometheus, `authorization: {credentials: <secret key>}` in the "
                "scrape config. The key decides the project.",
                "",
                "**Content type**: `text/plain; version=0.0.4` (the Prometheus exposition format). Every series "
                "is computed from rollups at scrape time; scrape every 30–60 s.",
            ]
        ),
        "security": SECURITY,
        "responses": {
            "200": {"description": "The series.", "content": {"text/plain": {"example": METRICS_EXAMPLE}}},
            "401": {"description": "Missing or unknown key (with `WWW-Authenticate`).", "content": {"text/plain": {}}},
            "403": {"description": "Revoked key, or no `read` scope.", "content": {"text/plain": {}}},
        },
    }
}
COMPONENTS = {
    "OtlpExportResponse": {
        "type": "object",
        "description": "ExportTraceServiceResponse / ExportLogsServiceResponse.",
        "properties": {
            "partialSuccess": {
                "type": "object",
                "properties": {
                    "rejectedSpans": {"type": "string", "description": "traces: spans not stored"},
                    "rejectedLogRecords": {"type": "string", "description": "logs: records not used"},
                    "errorMessage": {"type": "string", "description": "each problem, naming the item"},
                },
            }
        },
    },
    "OtlpStatus": {
        "type": "object",
        "description": "google.rpc.Status.",
        "properties": {"code": {"type": "integer"}, "message": {"type": "string"}},
    },
}


def add_plain_endpoints(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """drf-spectacular POSTPROCESSING_HOOKS entry."""
    result.setdefault("paths", {}).update(
        {
            "/v1/traces": _otlp("/v1/traces", "traces", "ExportTraceServiceRequest", "Spans", "spans", TRACE_EXAMPLE),
            "/v1/logs": _otlp(
                "/v1/logs", "logs", "ExportLogsServiceRequest", "Log records", "log records", LOG_EXAMPLE
            ),
            "/metrics": METRICS,
        }
    )
    result.setdefault("components", {}).setdefault("schemas", {}).update(COMPONENTS)
    return result
