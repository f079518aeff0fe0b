"""A trace in the native JSON format of POST /api/v1/traces, nested spans of every kind, at a fixed minute."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

T0 = (datetime.now(UTC) - timedelta(days=2)).replace(hour=12, minute=0, second=0, microsecond=0)


def native_trace(index: int = 0, **overrides: Any) -> dict[str, Any]:
    start = T0 + timedelta(minutes=index)
    trace = {
        "trace_id": f"{index + 1:032x}",
        "name": "answer",
        "service": "support-bot",
        "environment": "production",
        "release": "v2",
        "session_id": "sess-1",
        "user_id": "user-1",
        "tags": ["beta"],
        "spans": [{
            "span_id": f"{index + 1:016x}",
            "name": "answer_question",
            "kind": "chain",
            "start_time": start.isoformat(),
            "end_time": (start + timedelta(milliseconds=1200)).isoformat(),
            "input": "How long do refunds take?",
            "output": "Refunds take 14 days.",
            "children": [
                {"name": "retrieve", "kind": "retriever", "start_time": (start + timedelta(milliseconds=5)).isoformat(),
                 "end_time": (start + timedelta(milliseconds=60)).isoformat(),
                 "documents": [{"id": "kb-1", "content": "Refunds within 14 days.", "score": 0.9}]},
                {"name": "chat", "kind": "llm", "model": "gpt-4o-mini", "provider": "openai",
                 "start_time": (start + timedelta(milliseconds=70)).isoformat(),
                 "end_time": (start + timedelta(milliseconds=1190)).isoformat(),
                 "input": [{"role": "user", "content": "How long do refunds take?"}],
                 "output": [{"role": "assistant", "content": "Refunds take 14 days."}],
                 "input_tokens": 2000, "output_tokens": 50},
                {"name": "lookup_order", "kind": "tool", "start_time": (start + timedelta(milliseconds=65)).isoformat(),
                 "tool": {"name": "lookup_order", "arguments": {"id": 7}, "result": {"status": "shipped"}}},
            ],
        }],
    }  # fmt: skip
    trace.update(overrides)
    return trace


# Two days ago: within the raw retention (30 days by default) that ingest and rollups respect.
