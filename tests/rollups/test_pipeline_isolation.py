"""Numbers one tenant sends cannot stop the rollups of others: score values are bounded at every entry, rollup sums
saturate instead of overflowing, and each project's dirty minutes are recomputed in their own transaction."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.test import Client

from evals import services as eval_services
from evals.evaluators.base import EvalResult
from evals.models import Score
from evals.services import traces_score
from rollups import services as rollup_services
from rollups.models import ScoreRollup, TrafficRollup
from rollups.services import MINUTES_RECOMPUTED_HOOKS, dirty_process
from rollups.tasks import process_dirty
from sre4ai_web.lib.bounds import MAX_COST
from tests import otlp_build as ob
from tests.conftest import Tenant
from traces.models import DirtyBucket, Trace

HOUR = (datetime.now(UTC) - timedelta(hours=2)).replace(minute=0, second=0, microsecond=0)


def send(client: Client, tenant: Tenant, minute: int, attributes: dict[str, Any] | None = None) -> Trace:
    start = HOUR + timedelta(minutes=minute, seconds=5)
    spans = [ob.span(ob.new_trace_id(), start_ns=int(start.timestamp()) * 10**9, attributes=attributes)]
    body = ob.request(spans, resource={"service.name": "bot"}).SerializeToString()
    response = client.post("/v1/traces", data=body, content_type="application/x-protobuf", headers=tenant.bearer)
    assert response.status_code == 200, response.content
    return Trace.objects.get(project=tenant.project, trace_id=spans[0].trace_id.hex())


@pytest.mark.django_db
def test_score_values_out_of_range_are_refused_at_every_entry(client: Client, tenant: Tenant, monkeypatch) -> None:
    trace = send(client, tenant, 1)

    def post(path: str, raw: str) -> Any:
        return client.post(path, data=raw, content_type="application/json", headers=tenant.bearer)

    native = '{"trace_id": "%s", "name": "n", "value": %s}'
    for value in ("1.7e308", "-1.7e308", "1e400", "NaN", "1000000000.5"):
        response = post("/api/v1/scores", native % (trace.trace_id, value))
        assert response.status_code == 400, (value, response.content)
    assert "less than or equal to 1000000000" in json.dumps(
        post("/api/v1/scores", native % (trace.trace_id, "1.7e308")).json()
    )
    assert post("/api/v1/scores", native % (trace.trace_id, "-1e9")).status_code == 201

    langfuse = '{"traceId": "%s", "name": "l", "value": %s}'
    for value in ("1.7e308", "1e400", "NaN", "-Infinity", "1" + "0" * 400):
        response = post("/api/public/scores", langfuse % (trace.trace_id, value))
        assert response.status_code == 400, (value, response.content)
    assert "finite and from -1e+09 to 1e+09" in json.dumps(
        post("/api/public/scores", langfuse % (trace.trace_id, "1.7e308")).json()
    )
    assert post("/api/public/scores", langfuse % (trace.trace_id, "1e9")).status_code == 200

    # An evaluator that returns an absurd number: reported as that evaluator's error, not stored.
    monkeypatch.setattr(eval_services, "run_evaluator", lambda evaluator, item: EvalResult(value=1.7e308))
    outcome = traces_score(project_id=tenant.project.pk, trace_pks=[trace.pk])
    assert outcome.scores == 0
    assert outcome.errors
    assert all("not finite or beyond ±1e+09" in e for e in outcome.errors)
    assert set(Score.objects.values_list("value", flat=True)) == {-1e9, 1e9}


@pytest.mark.django_db
def test_rollups_of_huge_stored_values_saturate_instead_of_failing(
    client: Client, tenant: Tenant, other_tenant: Tenant
) -> None:
    # Rows written before the bounds existed (or by any other path): two scores at the float maximum in one hour,
    # and two traces that each report a cost just under the column's limit in one minute.
    for minute in (1, 2):
        trace = send(client, tenant, minute)
        Score.objects.create(project=tenant.project, trace=trace, key=f"legacy-{minute}", name="legacy",
                             value=1.7e308, source="api", trace_start=trace.start_time, service="bot")  # fmt: skip
        DirtyBucket.objects.get_or_create(project=tenant.project, minute=HOUR + timedelta(minutes=minute))
    for _ in range(2):
        send(client, tenant, 3, {"gen_ai.usage.cost": 9e9, "gen_ai.request.model": "gpt-4o-mini"})
    send(client, other_tenant, 1)

    process_dirty()

    assert not DirtyBucket.objects.exists()
    minute3 = TrafficRollup.objects.get(project=tenant.project, granularity="m", dimension="",
                                        bucket=HOUR + timedelta(minutes=3))  # fmt: skip
    assert minute3.traces == 2
    assert minute3.cost == MAX_COST
    hour = ScoreRollup.objects.get(project=tenant.project, granularity="h", dimension="", name="legacy")
    assert (hour.total, hour.value_count, hour.value_sum) == (0, 0, 0.0)  # the out-of-range values are left out
    assert TrafficRollup.objects.filter(project=other_tenant.project, granularity="h").exists()


def fail_for_acme(*, project_id: int, **_: Any) -> None:
    """A recompute hook that fails for one project, as a bug or bad row in that project would."""
    if Trace.objects.filter(project_id=project_id, project__slug="acme").exists():
        raise RuntimeError("acme's recompute fails")


@pytest.mark.django_db
def test_one_projects_failing_recompute_does_not_hold_up_another(
    client: Client, tenant: Tenant, other_tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert tenant.project.pk < other_tenant.project.pk  # the failing project is claimed first
    send(client, tenant, 1)
    send(client, other_tenant, 1)
    with monkeypatch.context() as patch:
        patch.setattr(rollup_services, "MINUTES_RECOMPUTED_HOOKS", [*MINUTES_RECOMPUTED_HOOKS, fail_for_acme])
        process_dirty()  # one beat run
    assert TrafficRollup.objects.filter(project=other_tenant.project, granularity="m").exists()
    assert not TrafficRollup.objects.filter(project=tenant.project).exists()
    assert list(DirtyBucket.objects.values_list("project", flat=True)) == [tenant.project.pk]  # retried next run

    assert dirty_process() == 1  # once the fault is gone, the minute is recomputed
    assert TrafficRollup.objects.filter(project=tenant.project, granularity="m").exists()
