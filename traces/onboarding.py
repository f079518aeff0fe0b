"""What a project without traces shows to get its first one: the endpoints, the OpenTelemetry environment variables
and a curl command, written for this server's address and, once created, the project's new key.

The same header is named everywhere (this panel, the key panel of Settings & keys, the README):
``OTEL_EXPORTER_OTLP_HEADERS`` with ``Authorization=Bearer%20<secret key>`` — the OTLP exporter specification wants
header values URL-encoded, and ``Authorization`` is what accounts.authentication reads.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.http import HttpRequest

from accounts.authentication import OTLP_HEADERS_VARIABLE, otlp_headers_value

KEY_PLACEHOLDER = "sk-sre-…"
SERVICE = "my-app"


def public_base_url(request: HttpRequest) -> str:
    """Where apps reach this server: SRE4AI_BASE_URL when the operator set it (behind a proxy the request's own
    address may be an internal one), else the address this request came to."""
    if settings.SRE4AI_BASE_URL_CONFIGURED:
        return str(settings.SRE4AI_BASE_URL)
    return request.build_absolute_uri("/").rstrip("/")


@dataclass(frozen=True)
class FirstTraceSnippets:
    base_url: str
    otlp_traces_url: str
    otlp_logs_url: str
    rest_url: str
    env: str  # shell lines for an OpenTelemetry SDK
    curl: str  # a shell command that sends one trace to the native REST API


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def curl_payload(now: datetime) -> dict[str, Any]:
    """One question answered by one LLM call, ending at ``now``: inside the ingest time window for a year after the
    page is shown (SRE4AI_INGEST_MAX_SPAN_AGE_DAYS), and in the overview's default range (24 h) for a day."""
    start, llm_start, llm_end = now - timedelta(milliseconds=1200), now - timedelta(milliseconds=1100), now
    question, answer = "How long do refunds take?", "Refunds take 14 days."
    return {
        "traces": [
            {
                "service": SERVICE,
                "environment": "development",
                "spans": [
                    {
                        "name": "answer_question",
                        "kind": "chain",
                        "start_time": _iso(start),
                        "end_time": _iso(now),
                        "input": question,
                        "output": answer,
                        "children": [
                            {
                                "name": "chat",
                                "kind": "llm",
                                "model": "gpt-4o-mini",
                                "start_time": _iso(llm_start),
                                "end_time": _iso(llm_end),
                                "input_tokens": 12,
                                "output_tokens": 6,
                                "input": [{"role": "user", "content": question}],
                                "output": answer,
                            }
                        ],
                    }
                ],
            }
        ]
    }


def _compact(payload: dict[str, Any]) -> str:
    """The payload with one line per span: short enough to read on the page, the same JSON when parsed."""
    trace = payload["traces"][0]
    root = dict(trace["spans"][0])
    child = root.pop("children")[0]
    head = json.dumps({k: v for k, v in trace.items() if k != "spans"})[:-1]
    return (
        f'{{"traces": [{head}, "spans": [\n  {json.dumps(root)[:-1]}, "children": [\n    {json.dumps(child)}]}}]}}]}}'
    )


def first_trace_snippets(*, base_url: str, secret: str | None, now: datetime) -> FirstTraceSnippets:
    """The panel's text; without a new key the secret is a placeholder (keys are shown only once)."""
    key = secret or KEY_PLACEHOLDER
    env = "\n".join(
        [
            f"export OTEL_EXPORTER_OTLP_ENDPOINT={shlex.quote(base_url)}",
            f"export {OTLP_HEADERS_VARIABLE}={shlex.quote(otlp_headers_value(key))}",
            "export OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf",
            f"export OTEL_SERVICE_NAME={SERVICE}",
        ]
    )
    rest_url = f"{base_url}/api/v1/traces"
    body = _compact(curl_payload(now))
    curl = (
        f"curl -sS {shlex.quote(rest_url)} \\\n"
        f"  -H {shlex.quote('Authorization: Bearer ' + key)} -H 'Content-Type: application/json' \\\n"
        f"  -d {shlex.quote(body)}"
    )
    return FirstTraceSnippets(
        base_url=base_url,
        otlp_traces_url=f"{base_url}/v1/traces",
        otlp_logs_url=f"{base_url}/v1/logs",
        rest_url=rest_url,
        env=env,
        curl=curl,
    )
