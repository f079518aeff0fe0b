"""Built-in scores exported as gen_ai.evaluation.result log records: into the project's own /v1/logs on a live
server (a round trip: they come back as "app" scores on the same spans), and to a local receiver that fails."""

from __future__ import annotations

import socket
from typing import Any

import pytest
from django.test import Client
from kombu.exceptions import OperationalError as KombuOperationalError
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from evals.models import Score, ScoreSource
from evals.services import traces_score
from sre4ai_web.celery import app as celery_app
from tests import export_data
from tests.conftest import Tenant
from tests.export_data import built_in, counters, scored_trace
from tests.receiver import Receiver
from traces.ingest.limits import IngestLimits
from traces.ingest.otlp import attributes

# Shared fixtures: pytest finds a fixture by its name in the test's module.
eager = export_data.eager


@pytest.fixture
def server(transactional_db: Any, live_server: Any) -> str:
    return str(live_server.url)


@pytest.mark.parametrize("protocol", ["http/protobuf", "http/json"])
def test_round_trip_through_our_own_logs_endpoint(
    server: str, tenant: Tenant, settings: Any, eager: None, protocol: str
) -> None:
    settings.SRE4AI_OTEL_EXPORT_ENDPOINT = f"{server}/v1/logs"
    settings.SRE4AI_OTEL_EXPORT_HEADERS = {"Authorization": f"Bearer {tenant.secret}"}
    settings.SRE4AI_OTEL_EXPORT_PROTOCOL = protocol
    trace = scored_trace(tenant)

    ours = built_in(tenant)
    assert len(ours) >= 3 and any(s.passed is False for s in ours)
    came_back = {(s.span_id, s.name): s for s in Score.objects.filter(project=tenant.project, source=ScoreSource.APP)}
    assert len(came_back) == len(ours)
    root = trace.spans.get(span_id=trace.root_span_id)
    for score in ours:
        echo = came_back[(score.span_id or root.pk, score.name)]  # a trace-level score is linked to the root span
        assert (echo.value, echo.passed, echo.explanation) == (score.value, score.passed, score.explanation[:4000])
    assert counters(tenant) == (len(ours), 0)
    # Our own verdicts are not exported twice: app scores are not sent back out.
    traces_score(project_id=tenant.project.pk, trace_pks=[trace.pk])
    assert Score.objects.filter(project=tenant.project, source=ScoreSource.APP).count() == len(ours)


def test_collector_down_drops_the_batch_with_a_counter_and_scoring_goes_on(
    transactional_db: Any, tenant: Tenant, settings: Any, eager: None
) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # nothing listens here once the socket is closed
    settings.SRE4AI_OTEL_EXPORT_ENDPOINT = f"http://127.0.0.1:{port}/v1/logs"
    settings.SRE4AI_OTEL_EXPORT_MAX_ATTEMPTS = 3
    scored_trace(tenant)
    ours = built_in(tenant)
    assert ours  # scoring committed its scores whatever happened to the export
    assert counters(tenant) == (0, len(ours))
    text = Client().get("/metrics", headers=tenant.bearer).content.decode()
    assert f'sre4ai_scores_export_failed_total{{project="acme"}} {float(len(ours))}' in text
    assert 'sre4ai_scores_exported_total{project="acme"} 0.0' in text


def test_retried_after_a_503_then_linked_to_trace_and_span(
    transactional_db: Any, tenant: Tenant, settings: Any, eager: None, receiver: Receiver
) -> None:
    receiver.statuses = [503, 200]
    settings.SRE4AI_OTEL_EXPORT_ENDPOINT = f"{receiver.url}/v1/logs"
    settings.SRE4AI_OTEL_EXPORT_HEADERS = {"X-Tenant": "acme team"}
    trace = scored_trace(tenant)
    ours = {s.pk: s for s in built_in(tenant)}
    assert len(receiver.requests) == 2
    assert receiver.requests[0].body == receiver.requests[1].body  # the same batch, retried
    last = receiver.requests[-1]
    assert (last.path, last.headers["content-type"], last.headers["x-tenant"]) == (
        "/v1/logs", "application/x-protobuf", "acme team")  # fmt: skip
    request = ExportLogsServiceRequest.FromString(last.body)
    records = [r for rl in request.resource_logs for sl in rl.scope_logs for r in sl.log_records]
    assert len(records) == len(ours)
    by_name = {s.name: s for s in ours.values()}
    for record in records:
        attrs = attributes(record.attributes, IngestLimits.from_settings())
        score = by_name[attrs["gen_ai.evaluation.name"]]
        assert record.event_name == "gen_ai.evaluation.result"
        assert record.trace_id.hex() == trace.trace_id
        assert record.span_id.hex() == (score.span.span_id if score.span else trace.root_span_id)
        assert attrs.get("gen_ai.evaluation.score.value") == score.value
        if score.passed is not None:
            assert attrs["gen_ai.evaluation.score.label"] == ("pass" if score.passed else "fail")
    assert counters(tenant) == (len(ours), 0)


def test_a_refusal_is_not_retried(transactional_db: Any, tenant: Tenant, settings: Any, eager: None,
                                  receiver: Receiver) -> None:  # fmt: skip
    receiver.statuses = [401]
    settings.SRE4AI_OTEL_EXPORT_ENDPOINT = f"{receiver.url}/v1/logs"
    scored_trace(tenant)
    assert len(receiver.requests) == 1
    assert counters(tenant) == (0, len(built_in(tenant)))


def test_export_off_sends_nothing(transactional_db: Any, tenant: Tenant, settings: Any, eager: None,
                                  receiver: Receiver) -> None:  # fmt: skip
    settings.SRE4AI_OTEL_EXPORT_ENDPOINT = ""
    scored_trace(tenant)
    assert built_in(tenant) and receiver.requests == [] and counters(tenant) == (0, 0)


def test_a_broker_that_refuses_the_batch_counts_it_lost_and_scoring_goes_on(
    transactional_db: Any,
    tenant: Tenant,
    settings: Any,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings.SRE4AI_OTEL_EXPORT_ENDPOINT = f"{receiver.url}/v1/logs"
    send = celery_app.send_task
    refused: list[str] = []

    def send_task(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "evals.tasks.scores_export":
            refused.append(name)
            raise KombuOperationalError("Error 111 connecting to the broker")
        return send(name, *args, **kwargs)

    monkeypatch.setattr(celery_app, "send_task", send_task)
    scored_trace(tenant)
    ours = built_in(tenant)
    assert ours and refused  # the scores are committed, then their export was queued and refused
    assert receiver.requests == [] and counters(tenant) == (0, len(ours))
    assert f"could not queue the export of {len(ours)} scores" in caplog.text
