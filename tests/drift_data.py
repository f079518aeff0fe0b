"""Synthetic traffic for drift tests: batches of native traces, fast or slow, sent through /api/v1/traces."""

from __future__ import annotations

import json
import random
from datetime import timedelta
from typing import Any

from django.test import Client

from tests.conftest import Tenant


def batch(rng: random.Random, n: int, start: Any, spread: timedelta, slow: bool, model: str) -> list[dict[str, Any]]:
    traces = []
    for _ in range(n):
        at = start + spread * rng.random()
        ms = rng.lognormvariate(6.6 + (0.8 if slow else 0.0), 0.3)
        traces.append({
            "service": "bot", "environment": "production",
            "spans": [{"name": "chat", "kind": "llm", "model": model, "start_time": at.isoformat(),
                       "end_time": (at + timedelta(milliseconds=ms)).isoformat(), "input_tokens": 300,
                       "output_tokens": rng.randint(20, 60), "input": "How long do refunds take?",
                       "output": "Refunds are issued within 14 days of receiving the returned item.",
                       "span_id": f"{rng.getrandbits(64):016x}"}],
            "trace_id": f"{rng.getrandbits(128):032x}",
        })  # fmt: skip
    return traces


def send(client: Client, tenant: Tenant, traces: list[dict[str, Any]]) -> None:
    for start in range(0, len(traces), 500):
        body = json.dumps({"traces": traces[start : start + 500]})
        response = client.post("/api/v1/traces", data=body, content_type="application/json", headers=tenant.bearer)
        assert response.status_code == 200, response.content
