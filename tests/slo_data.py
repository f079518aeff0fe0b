"""Traces for SLO tests: one trace per call, at a chosen minute, through the native ingest API; and helpers to
recompute rollups (which count the SLIs) and create SLOs through the same form the UI uses."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from django.test import Client

from accounts.models import Project, Scope
from accounts.services import api_key_issue
from evals.services import ExternalScore, score_record
from rollups.services import dirty_process
from slos.forms import SloForm
from slos.models import SLO, Channel, Incident
from slos.services import sli_history_rebuild, slo_save, slos_evaluate
from tests.conftest import Tenant
from traces.models import Trace

FORM = {
    "name": "Grounded answers",
    "service": "support-bot",
    "sli_kind": "score",
    "evaluator": "grounding",
    "comparator": ">=",
    "threshold": "0.7",
    "objective": "99.5%",
    "window_days": "7",
    "policy_mode": "default",
    "runbook": "Check the **retriever**.",
}


# Two days ago, on the hour: inside every SLO window whenever the tests run, and well before "now".
T0 = (datetime.now(UTC) - timedelta(days=2)).replace(minute=0, second=0, microsecond=0)
_counter = {"n": 0}


def make_trace(
    minute: int,
    *,
    status: str = "ok",
    duration_ms: float = 200.0,
    service: str = "support-bot",
    environment: str = "production",
    release: str = "v1",
    model: str = "gpt-4o-mini",
    name: str = "answer",
    output: str = "Refunds take 14 days.",
    second: int = 5,
) -> dict[str, Any]:
    _counter["n"] += 1
    n = _counter["n"]
    start = T0 + timedelta(minutes=minute, seconds=second)
    return {
        "trace_id": f"{n:032x}",
        "service": service,
        "environment": environment,
        "release": release,
        "name": name,
        "spans": [
            {
                "span_id": f"{n:016x}",
                "name": "chat",
                "kind": "llm",
                "model": model,
                "start_time": start.isoformat(),
                "end_time": (start + timedelta(milliseconds=duration_ms)).isoformat(),
                "status": status,
                "input_tokens": 100,
                "output_tokens": 20,
                "input": "How long do refunds take?",
                "output": output,
            }
        ],
    }


def ingest(tenant: Tenant, traces: list[dict[str, Any]]) -> list[Trace]:
    response = Client().post(
        "/api/v1/traces", data=json.dumps({"traces": traces}), content_type="application/json", headers=tenant.bearer
    )
    assert response.status_code == 200, response.content
    return list(Trace.objects.filter(project=tenant.project, trace_id__in=[t["trace_id"] for t in traces]))


def manager(tenant: Tenant) -> dict[str, str]:
    """Headers with a key of every scope, manage included (app keys only ingest)."""
    return {
        "Authorization": f"Bearer {api_key_issue(project=tenant.project, name='ops', scopes=list(Scope.values)).secret_key}"
    }


def score(trace: Trace, name: str, *, passed: bool | None, value: float | None = None) -> None:
    score_record(
        score=ExternalScore(
            trace=trace, span=None, name=name, value=value, label="", passed=passed, comment="", external_id=""
        )
    )


def recompute() -> None:
    while dirty_process():
        pass


def at(minute: int) -> datetime:
    """The `now` at which the tick evaluates `minute` (the last complete one)."""
    return T0 + timedelta(minutes=minute + 1, seconds=10)


def create_slo(project: Project, **fields: Any) -> SLO:
    data: dict[str, Any] = {
        "name": "Answers without errors",
        "service": "support-bot",
        "sli_kind": "error",
        "objective": "0.9",
        "window_days": "30",
        "policy_mode": "custom",
    }
    rules = fields.pop("rules", [{"severity": "page", "burn_rate_threshold": "2", "long_window": "10m",
                                  "short_window": "2m"}])  # fmt: skip
    data.update({k: v for k, v in fields.items() if k != "channels"})
    form = SloForm(data, project=project, rules=rules)
    assert form.is_valid(), (form.errors, form.rule_errors)
    return slo_save(project=project, values=form.model_values(), channels=fields.get("channels", []))


def fire_score_slo(tenant: Tenant, channels: list[Channel] | None = None, **slo: Any) -> Incident:
    """A grounding SLO (90%, page when burn > 2 over 10m and 2m) whose rule fires at minute 12: 10 good answers in
    minutes 0-9, then 3 failing ones in minutes 10-12."""
    good = ingest(tenant, [make_trace(m) for m in range(10)])
    for trace in good:
        score(trace, "grounding", passed=True, value=0.9)
    recompute()
    fields = {"sli_kind": "score", "evaluator": "grounding", "comparator": "pass", **slo}
    created = create_slo(tenant.project, channels=channels or [], **fields)
    sli_history_rebuild(slo_id=created.pk, now=at(9))
    for trace in ingest(tenant, [make_trace(m) for m in (10, 11, 12)]):
        score(trace, "grounding", passed=False, value=0.1)
    recompute()
    assert slos_evaluate(now=at(12)).changes == 1
    return Incident.objects.get(slo=created)
