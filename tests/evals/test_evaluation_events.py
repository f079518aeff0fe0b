"""gen_ai.evaluation.result events sent by the OpenTelemetry SDK (logs and traces exporters, OTLP/HTTP protobuf)
to a live server become "app" scores on the evaluated span, in either arrival order, idempotently."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, LogRecordExportResult
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.trace import SpanKind

from evals.models import PendingEvaluation, Score, ScoreSource
from rollups.models import Granularity, ScoreRollup
from rollups.services import dirty_process
from slos.models import SliMinute
from slos.services import sli_history_rebuild
from tests.conftest import Tenant
from tests.otel_sdk import RecordingLogExporter, hex_span_id, hex_trace_id, tracer_provider
from tests.otlp_build import new_span_id, new_trace_id, request, span
from tests.slo_data import create_slo
from traces.ingest.normalize import EvaluationRecord
from traces.ingest.otlp import to_key_values
from traces.models import DirtyBucket, Span

EVALUATION = "gen_ai.evaluation.result"


@pytest.fixture
def server(transactional_db: Any, live_server: Any) -> str:
    return str(live_server.url)


@contextmanager
def sdk_logger(url: str, secret: str) -> Iterator[tuple[Any, LoggerProvider, RecordingLogExporter]]:
    exporter = RecordingLogExporter(
        OTLPLogExporter(endpoint=f"{url}/v1/logs", headers={"Authorization": f"Bearer {secret}"})
    )
    provider = LoggerProvider(resource=Resource.create({"service.name": "evaluator-app"}))
    provider.add_log_record_processor(BatchLogRecordProcessor(exporter, schedule_delay_millis=60_000))
    try:
        yield provider.get_logger("my.evals"), provider, exporter
    finally:
        provider.shutdown()


def evaluation(name: str, **extra: Any) -> dict[str, Any]:
    return {"gen_ai.evaluation.name": name, **extra}


def app_scores(tenant: Tenant) -> list[Score]:
    return list(Score.objects.current().filter(project=tenant.project, source=ScoreSource.APP).order_by("name"))


@pytest.mark.parametrize("logs_first", [True, False], ids=["event-before-span", "event-after-span"])
def test_log_record_evaluations_score_their_span(server: str, tenant: Tenant, logs_first: bool) -> None:
    provider, span_exporter = tracer_provider(server, tenant.secret, {"service.name": "support-bot"})
    with sdk_logger(server, tenant.secret) as (logger, logger_provider, log_exporter):
        tracer = provider.get_tracer("app")
        with tracer.start_as_current_span("chat gpt-4o-mini", kind=SpanKind.CLIENT) as chat:
            # Emitted in the evaluated span's context: the SDK puts its trace_id/span_id on the record.
            logger.emit(event_name=EVALUATION, attributes=evaluation(
                "relevance", **{"gen_ai.evaluation.score.value": 0.92, "gen_ai.evaluation.score.label": "Pass",
                                "gen_ai.evaluation.explanation": "On topic."}))  # fmt: skip
            logger.emit(event_name=EVALUATION, attributes=evaluation(
                "tone", **{"gen_ai.evaluation.score.value": 2, "gen_ai.evaluation.score.label": "rude"}))  # fmt: skip
            logger.emit(event_name=EVALUATION, attributes=evaluation(
                "faithfulness", **{"gen_ai.evaluation.score.label": "false", "error.type": "timeout"}))  # fmt: skip
        trace_id = hex_trace_id(chat.get_span_context().trace_id)
        span_id = hex_span_id(chat.get_span_context().span_id)
        first, second = (logger_provider, provider) if logs_first else (provider, logger_provider)
        assert first.force_flush()
        if logs_first:
            assert PendingEvaluation.objects.filter(project=tenant.project, trace_id=trace_id).count() == 3
            assert app_scores(tenant) == []
        assert second.force_flush()
        provider.shutdown()
    assert span_exporter.results == [SpanExportResult.SUCCESS]
    assert log_exporter.results == [LogRecordExportResult.SUCCESS]

    stored = Span.objects.get(trace__project=tenant.project, trace__trace_id=trace_id, span_id=span_id)
    rows = [(s.name, s.evaluator, s.value, s.label, s.passed, s.explanation, s.evidence, s.span_id, s.service)
            for s in app_scores(tenant)]  # fmt: skip
    assert rows == [
        ("faithfulness", "faithfulness", None, "false", False, "", {"error.type": "timeout"}, stored.pk, "support-bot"),
        ("relevance", "relevance", 0.92, "Pass", True, "On topic.", {}, stored.pk, "support-bot"),
        ("tone", "tone", 2.0, "rude", None, "", {}, stored.pk, "support-bot"),
    ]
    assert not PendingEvaluation.objects.filter(project=tenant.project).exists()  # applied, not kept twice
    minute = stored.trace.start_time.replace(second=0, microsecond=0)
    assert DirtyBucket.objects.filter(project=tenant.project, minute=minute).exists()
    dirty_process()
    rollup = ScoreRollup.objects.filter(project=tenant.project, name="relevance", service="support-bot")
    assert [(r.good, r.total) for r in rollup.filter(granularity=Granularity.MINUTE, dimension="")] == [(1, 1)]
    # An SLO "score passes" on the app's evaluation counts it; "tone" gave no verdict and is not an SLI event.
    for name, counted in [("relevance", (1, 1)), ("tone", (0, 0))]:
        slo = create_slo(tenant.project, name=name, sli_kind="score", evaluator=name, comparator="pass")
        sli_history_rebuild(slo_id=slo.pk)
        minutes = SliMinute.objects.filter(slo=slo)
        assert (sum(m.good for m in minutes), sum(m.total for m in minutes)) == counted


def test_resent_evaluation_replaces_its_score(server: str, tenant: Tenant) -> None:
    provider, _ = tracer_provider(server, tenant.secret, {"service.name": "support-bot"})
    with sdk_logger(server, tenant.secret) as (logger, logger_provider, _):
        with provider.get_tracer("app").start_as_current_span("chat"):
            for value, label in [(0.2, "fail"), (0.2, "fail"), (0.9, "pass")]:
                logger.emit(event_name=EVALUATION, attributes=evaluation(
                    "relevance", **{"gen_ai.evaluation.score.value": value, "gen_ai.evaluation.score.label": label}))  # fmt: skip
                assert logger_provider.force_flush()
        provider.shutdown()
    assert [(s.value, s.passed) for s in app_scores(tenant)] == [(0.9, True)]
    assert Score.objects.filter(project=tenant.project).count() == 1


@pytest.mark.parametrize("logs_first", [True, False], ids=["event-before-span", "event-after-span"])
def test_evaluation_found_by_response_id(server: str, tenant: Tenant, logs_first: bool) -> None:
    """An evaluation run later, outside the app's trace, names the answer by gen_ai.response.id only."""
    provider, _ = tracer_provider(server, tenant.secret, {"service.name": "support-bot"})
    with sdk_logger(server, tenant.secret) as (logger, logger_provider, _):
        tracer = provider.get_tracer("app")
        chat_attributes = {"gen_ai.response.id": "chatcmpl-42", "gen_ai.operation.name": "chat"}
        with (
            tracer.start_as_current_span("agent"),
            tracer.start_as_current_span("chat", attributes=chat_attributes) as chat,
        ):
            pass
        logger.emit(event_name=EVALUATION, attributes=evaluation(  # no current span: no ids on the record
            "groundedness", **{"gen_ai.evaluation.score.value": 0.1, "gen_ai.response.id": "chatcmpl-42"}))  # fmt: skip
        first, second = (logger_provider, provider) if logs_first else (provider, logger_provider)
        assert first.force_flush()
        assert second.force_flush()
        provider.shutdown()
    [score] = app_scores(tenant)
    assert score.span is not None
    assert (score.span.span_id, score.name, score.value, score.passed) == (
        hex_span_id(chat.get_span_context().span_id), "groundedness", 0.1, None)  # fmt: skip
    assert not PendingEvaluation.objects.exists()


def test_span_events_score_the_span_that_carries_them(server: str, tenant: Tenant) -> None:
    provider, exporter = tracer_provider(server, tenant.secret, {"service.name": "support-bot"})
    with provider.get_tracer("app").start_as_current_span("chat") as chat:
        chat.add_event(EVALUATION, evaluation("answer_relevancy", **{"gen_ai.evaluation.score.value": 1,
                                                                     "gen_ai.evaluation.score.label": "PASSED"}))  # fmt: skip
    provider.shutdown()
    assert exporter.results == [SpanExportResult.SUCCESS]
    [score] = app_scores(tenant)
    assert score.span is not None
    assert (score.span.span_id, score.name, score.value, score.passed) == (
        hex_span_id(chat.get_span_context().span_id), "answer_relevancy", 1.0, True)  # fmt: skip
    assert score.span.events[0]["name"] == EVALUATION  # the raw event is kept on the span too


def test_bad_span_event_is_a_warning_and_the_span_is_stored(server: str, tenant: Tenant) -> None:
    trace_id = new_trace_id()
    body = request([span(trace_id, name="chat", events=[
        (EVALUATION, evaluation("x", **{"gen_ai.evaluation.score.value": 1e12})),
        (EVALUATION, {"gen_ai.evaluation.score.value": 0.5}),
        (EVALUATION, evaluation("ok", **{"gen_ai.evaluation.score.value": "NaN"})),
    ])])  # fmt: skip
    response = httpx.post(f"{server}/v1/traces", content=body.SerializeToString(), timeout=30,
                             headers={**tenant.bearer, "Content-Type": "application/x-protobuf"})  # fmt: skip
    assert response.status_code == 200
    partial = ExportTraceServiceResponse.FromString(response.content).partial_success
    assert partial.rejected_spans == 0  # the span is stored
    message = partial.error_message
    assert message.startswith("3 evaluation events not scored")
    assert "beyond ±1e+09" in message
    assert "gen_ai.evaluation.name is missing" in message
    assert "must be finite" in message
    assert Span.objects.filter(trace__trace_id=trace_id).count() == 1
    assert app_scores(tenant) == []


def test_log_record_without_any_link_is_rejected(server: str, tenant: Tenant) -> None:
    document: dict[str, Any] = {"resourceLogs": [{"scopeLogs": [{"logRecords": [
        {"eventName": EVALUATION, "attributes": [
            {"key": "gen_ai.evaluation.name", "value": {"stringValue": "relevance"}}]},
        {"eventName": EVALUATION, "traceId": new_trace_id(), "spanId": new_span_id(), "attributes": [
            {"key": "gen_ai.evaluation.name", "value": {"stringValue": "relevance"}}]},
    ]}]}]}  # fmt: skip
    response = httpx.post(f"{server}/v1/logs", json=document, headers=tenant.bearer, timeout=30)
    assert response.status_code == 200
    partial = response.json()["partialSuccess"]
    assert partial["rejectedLogRecords"] == "1"
    assert "neither a trace_id/span_id nor gen_ai.response.id" in partial["errorMessage"]
    assert PendingEvaluation.objects.filter(project=tenant.project).count() == 1  # the other waits for its span


@pytest.mark.parametrize(
    ("label", "passed"),
    [("pass", True), (" Passed ", True), ("TRUE", True), ("fail", False), ("false", False), ("no", False),
     ("relevant", None), ("irrelevant", None), ("", None), ("3 stars", None)],
)  # fmt: skip
def test_passed_is_read_only_from_labels_that_say_pass_or_fail(label: str, passed: bool | None) -> None:
    assert EvaluationRecord("", "", "r", "n", None, label, "", "").passed is passed


def test_event_and_span_sent_at_the_same_time_give_one_score(server: str, tenant: Tenant) -> None:
    """The race the locks close: the event's "is the span stored?" and the span's "is an event kept?" both
    answering no would leave the event kept forever. Sent together 20 times, over two connections."""
    headers = {**tenant.bearer, "Content-Type": "application/x-protobuf"}
    pairs = [(new_trace_id(), new_span_id()) for _ in range(20)]
    for trace_id, span_id in pairs:
        spans = request([span(trace_id, span_id, name="chat")]).SerializeToString()
        logs = ExportLogsServiceRequest()
        logs.resource_logs.add().scope_logs.add().log_records.append(
            LogRecord(event_name=EVALUATION, trace_id=bytes.fromhex(trace_id), span_id=bytes.fromhex(span_id),
                      attributes=to_key_values(evaluation("relevance", **{"gen_ai.evaluation.score.label": "pass"})))
        )  # fmt: skip
        barrier = threading.Barrier(2)
        answers: list[int] = []

        def post(path: str, body: bytes, barrier: threading.Barrier = barrier, answers: list[int] = answers) -> None:
            barrier.wait()
            answers.append(httpx.post(f"{server}{path}", content=body, headers=headers, timeout=60).status_code)

        threads = [threading.Thread(target=post, args=("/v1/traces", spans)),
                   threading.Thread(target=post, args=("/v1/logs", logs.SerializeToString()))]  # fmt: skip
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert answers == [200, 200]
    assert len(app_scores(tenant)) == len(pairs)
    assert {(s.trace.trace_id, s.span.span_id) for s in app_scores(tenant) if s.span} == set(pairs)
    assert not PendingEvaluation.objects.exists()
