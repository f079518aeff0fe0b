"""Triage test data: a RAG agent's requests in the native format (retrieval, one LLM call, its tool calls),
stored through the write path two days ago."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tests.conftest import Tenant
from traces.ingest.native import decode_batch
from traces.models import Trace
from traces.services import spans_store

# Two days ago: within the raw retention (30 days by default) that ingest and rollups respect.
T0 = (datetime.now(UTC) - timedelta(days=2)).replace(hour=10, minute=0, second=0, microsecond=0)


def native_trace(
    trace_id: str,
    *,
    release: str = "v1",
    name: str = "answer",
    model: str = "gpt-4o-mini",
    prompt: tuple[str, str] = ("answer", "3"),
    tools: tuple[str, ...] = (),
    documents: tuple[dict[str, Any], ...] = (),
) -> dict[str, Any]:
    """A RAG agent's request in the native format: retrieval, one LLM call, then its tool calls."""
    at = T0.isoformat()
    children: list[dict[str, Any]] = [
        {"name": "retrieve", "kind": "retriever", "start_time": at, "documents": list(documents)},
        {
            "name": "chat",
            "kind": "llm",
            "start_time": at,
            "model": model,
            "prompt_name": prompt[0],
            "prompt_version": prompt[1],
            "input_tokens": 100,
            "output_tokens": 10,
        },
    ]
    children += [{"name": t, "kind": "tool", "start_time": at, "tool": {"name": t}} for t in tools]
    return {
        "trace_id": trace_id,
        "service": "bot",
        "release": release,
        "name": name,
        "spans": [{"name": name or "root", "kind": "agent", "start_time": at, "children": children}],
    }


def store_native(tenant: Tenant, traces: list[dict[str, Any]]) -> dict[str, int]:
    records, errors, _ = decode_batch({"traces": traces})
    assert not errors, errors
    spans_store(project=tenant.project, records=records)
    return dict(Trace.objects.filter(project=tenant.project).values_list("trace_id", "pk"))
