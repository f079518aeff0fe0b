"""Retention (accounts.retention): expired raw rows and aggregates are removed per project in batches, what was
removed is recorded, configuration and history never go, rollups of kept days survive the raw rows they came from,
late spans older than the retention are refused, and admins set it in Settings."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs

from accounts import retention
from accounts.models import AuditEvent, DataRemoval, Role
from accounts.retention import retention_sweep
from accounts.services import membership_set, project_retention_set, user_create
from evals.models import Dataset, DatasetItem, PendingEvaluation, Probe, ProbeResult, ProbeRun, Score
from evals.services import ExternalScore, score_record
from rollups.models import ScoreRollup, TrafficRollup
from rollups.selectors import overview, window_for
from rollups.services import dirty_process
from slos.models import SLO, Incident, IncidentEvent, SliHour, SliMinute
from slos.services import sli_history_rebuild
from tests import otlp_build as ob
from tests.conftest import PASSWORD, Tenant, make_tenant
from tests.slo_data import create_slo
from traces.models import DirtyBucket, FollowupOutbox, PendingLogEvent, RetrievedDocument, Span, Trace

pytestmark = pytest.mark.django_db
PROTO = "application/x-protobuf"
NOW = datetime.now(UTC)
OLD = (NOW - timedelta(days=10)).replace(hour=12, minute=0, second=0, microsecond=0)  # past a 7-day retention
RECENT = (NOW - timedelta(days=2)).replace(hour=12, minute=0, second=0, microsecond=0)


def native_trace(n: int, start: datetime, *, status: str = "ok") -> dict[str, Any]:
    """A chain root with an LLM call and a retrieval of two documents: three spans."""

    def at(ms: int) -> str:
        return (start + timedelta(milliseconds=ms)).isoformat()

    return {
        "trace_id": f"{n:032x}", "service": "support-bot", "environment": "production", "name": "answer",
        "spans": [{
            "span_id": f"{n:015x}0", "name": "answer", "kind": "chain", "start_time": at(0), "end_time": at(900),
            "status": status, "input": f"question {n}", "output": "Refunds take 14 days.",
            "children": [
                {"span_id": f"{n:015x}1", "name": "retrieve", "kind": "retriever", "start_time": at(5),
                 "end_time": at(60), "documents": [{"id": "kb-1", "content": "Refunds: 14 days."},
                                                    {"id": "kb-2", "content": "Shipping: 3 days."}]},
                {"span_id": f"{n:015x}2", "name": "chat", "kind": "llm", "model": "gpt-4o-mini", "start_time": at(70),
                 "end_time": at(800), "input_tokens": 100 + n, "output_tokens": 20, "output": "Refunds take 14 days."},
            ],
        }],
    }  # fmt: skip


def ingest(tenant: Tenant, traces: list[dict[str, Any]]) -> None:
    response = Client().post("/api/v1/traces", data=json.dumps({"traces": traces}), content_type="application/json",
                             headers=tenant.bearer)  # fmt: skip
    assert response.status_code == 200, response.content
    assert not response.json()["rejected"]


def log_record(trace_id: str, span_id: str, time_ns: int) -> LogRecord:
    return LogRecord(trace_id=bytes.fromhex(trace_id), span_id=bytes.fromhex(span_id), time_unix_nano=time_ns,
                     event_name="gen_ai.user.message", body=AnyValue(string_value=json.dumps({"content": "hi"})))  # fmt: skip


def post_logs(tenant: Tenant, records: list[LogRecord]) -> None:
    body = ExportLogsServiceRequest(resource_logs=[ResourceLogs(scope_logs=[ScopeLogs(log_records=records)])])
    response = Client().post("/v1/logs", data=body.SerializeToString(), content_type=PROTO, headers=tenant.bearer)
    assert response.status_code == 200, response.content


def nanos(moment: datetime) -> int:
    return int(moment.timestamp()) * 10**9


def fill(tenant: Tenant, base: int) -> None:
    """Three traces ten days old and two of two days ago, with scores, log events, a kept evaluation event, ingest
    outbox rows, an SLO and its SLI counts, and rollups of both days."""
    ingest(tenant, [native_trace(base + i, OLD + timedelta(minutes=i), status="error" if i == 0 else "ok")
                    for i in range(3)])  # fmt: skip
    ingest(tenant, [native_trace(base + 10 + i, RECENT + timedelta(minutes=i)) for i in range(2)])
    for trace in Trace.objects.filter(project=tenant.project):
        score_record(score=ExternalScore(trace=trace, span=None, name="grounding", value=0.8, label="",
                                         passed=trace.start_time > OLD + timedelta(minutes=1), comment="",
                                         external_id=f"g-{trace.pk}"))  # fmt: skip
    post_logs(tenant, [log_record(f"{base:032x}", f"{base:015x}2", nanos(OLD)),
                       log_record(f"{base + 10:032x}", f"{base + 10:015x}2", nanos(RECENT))])  # fmt: skip
    for received in (OLD, RECENT):  # evaluation events whose span never came
        PendingEvaluation.objects.create(project=tenant.project, trace_id=ob.new_trace_id(), span_id=ob.new_span_id(),
                                         name="helpfulness", value=1.0, received_at=received)  # fmt: skip
    # The ingests' follow-up rows stay in tests (nothing publishes after a test transaction): date them.
    outbox = FollowupOutbox.objects.filter(project=tenant.project).order_by("pk")
    assert outbox.count() == 2
    FollowupOutbox.objects.filter(pk=outbox[0].pk).update(created_at=OLD)
    while dirty_process():
        pass
    sli_history_rebuild(slo_id=create_slo(tenant.project).pk)  # what its task does: count its SLI minutes


def counts(tenant: Tenant) -> dict[str, int]:
    project = tenant.project
    return {
        "traces": Trace.objects.filter(project=project).count(),
        "spans": Span.objects.filter(project=project).count(),
        "documents": RetrievedDocument.objects.filter(span__project=project).count(),
        "scores": Score.objects.filter(project=project).count(),
        "log events": PendingLogEvent.objects.filter(project=project).count(),
        "pending evaluations": PendingEvaluation.objects.filter(project=project).count(),
        "outbox": FollowupOutbox.objects.filter(project=project).count(),
    }


def aggregates(tenant: Tenant) -> dict[str, int]:
    slos = SLO.objects.filter(project=tenant.project)
    return {
        "traffic": TrafficRollup.objects.filter(project=tenant.project).count(),
        "score rollups": ScoreRollup.objects.filter(project=tenant.project).count(),
        "sli minutes": SliMinute.objects.filter(slo__in=slos).count(),
        "sli hours": SliHour.objects.filter(slo__in=slos).count(),
    }


def figures(tenant: Tenant, day: datetime) -> list[tuple[Any, ...]]:
    """The overview's numbers for one day, per service."""
    start = day.replace(hour=0)
    window = window_for(range_key="custom", now=NOW, since=start, until=start + timedelta(days=1))
    return [
        (r.service, r.now.traffic(), r.now.error_rate(), r.now.latency(0.5), r.now.latency(0.99), r.now.spend(),
         r.now.rate("grounding"), r.now.safety_share())
        for r in overview(project=tenant.project, environment="", window=window, now=NOW)
    ]  # fmt: skip


def test_expired_raw_rows_go_with_their_children_and_rollups_of_kept_days_stay(tenant: Tenant) -> None:
    other = make_tenant("globex", "bob")  # keeps the default 30 days: nothing of it goes
    fill(tenant, 1)
    fill(other, 100)
    before, other_before = counts(tenant), counts(other)
    assert before == {"traces": 5, "spans": 15, "documents": 10, "scores": 5, "log events": 2,
                      "pending evaluations": 2, "outbox": 2}  # fmt: skip
    kept_aggregates = aggregates(tenant)
    old_day = figures(tenant, OLD)
    assert old_day[0][1:4] == (3, pytest.approx(1 / 3), pytest.approx(900, rel=0.05))
    assert old_day[0][6] == pytest.approx(1 / 3)
    probe_result = probe_result_of(tenant, Trace.objects.get(project=tenant.project, trace_id=f"{1:032x}"))

    project_retention_set(project=tenant.project, raw_days=7, aggregate_days=400)
    result = retention_sweep(now=NOW)

    assert result.finished
    assert counts(tenant) == {"traces": 2, "spans": 6, "documents": 4, "scores": 2, "log events": 1,
                              "pending evaluations": 1, "outbox": 1}  # fmt: skip
    assert not Trace.objects.filter(project=tenant.project, start_time__lt=NOW - timedelta(days=7)).exists()
    assert counts(other) == other_before
    # The aggregates of the removed day, and the overview's numbers for it, are as they were.
    assert aggregates(tenant) == kept_aggregates
    assert figures(tenant, OLD) == old_day
    # A late mark of an expired minute (a score written meanwhile) does not recount it from what is left: zero.
    DirtyBucket.objects.create(project=tenant.project, minute=OLD)
    assert dirty_process() == 1
    assert not DirtyBucket.objects.filter(project=tenant.project).exists()
    assert figures(tenant, OLD) == old_day
    # A probe's result outlives the trace it made (its link is cleared).
    probe_result.refresh_from_db()
    assert probe_result.trace_id is None

    removed = {r.table: r for r in DataRemoval.objects.filter(project=tenant.project)}
    assert {t: r.rows for t, r in removed.items()} == {
        "traces.Trace": 3, "traces.Span": 9, "traces.RetrievedDocument": 6, "evals.Score": 3,
        "traces.PendingLogEvent": 1, "evals.PendingEvaluation": 1, "traces.FollowupOutbox": 1,
    }  # fmt: skip
    spans = removed["traces.Span"]
    assert (spans.kind, spans.oldest, spans.newest, spans.day) == ("raw", OLD, OLD + timedelta(minutes=2), NOW.date())
    assert removed["traces.PendingLogEvent"].oldest == OLD
    assert not DataRemoval.objects.filter(project=other.project).exists()

    # A second sweep the same day finds nothing more and leaves the record as it was.
    assert retention_sweep(now=NOW).rows == 0
    assert DataRemoval.objects.get(project=tenant.project, table="traces.Span").rows == 9


def probe_result_of(tenant: Tenant, trace: Trace) -> ProbeResult:
    dataset = Dataset.objects.create(project=tenant.project, name="golden")
    item = DatasetItem.objects.create(dataset=dataset, input="How long do refunds take?", expected="14 days")
    probe = Probe.objects.create(project=tenant.project, name="refunds", dataset=dataset, service="support-bot",
                                 target_kind="http_endpoint", target_config={"url": "http://127.0.0.1:9/"})  # fmt: skip
    run = ProbeRun.objects.create(probe=probe, project=tenant.project, status="done")
    return ProbeResult.objects.create(run=run, item=item, trace=trace, question="How long?", answer="14 days")


def test_aggregates_go_after_their_own_retention_and_configuration_never(tenant: Tenant) -> None:
    fill(tenant, 1)
    slo = SLO.objects.get(project=tenant.project)
    incident = Incident.objects.create(project=tenant.project, slo=slo, severity="page", opened_at=OLD)
    IncidentEvent.objects.create(incident=incident, kind="fired", at=OLD)
    probe_result_of(tenant, Trace.objects.filter(project=tenant.project).first())  # type: ignore[arg-type]
    Dataset.objects.filter(project=tenant.project).update(created_at=OLD)
    history = {
        model.__name__: model.objects.count()
        for model in (SLO, Incident, IncidentEvent, Dataset, DatasetItem, Probe, ProbeRun, ProbeResult, AuditEvent)
    }
    assert all(history.values()), history
    before = aggregates(tenant)
    assert all(before.values()), before

    # A year and a half later, with the shortest retentions, everything measured has gone, nothing configured.
    project_retention_set(project=tenant.project, raw_days=1, aggregate_days=retention.AGGREGATE_DAYS_MIN)
    later = NOW + timedelta(days=500)
    assert retention_sweep(now=later).finished
    # SLI counts are the SLO tick's: it drops those older than the longest window (31 days), below the shortest
    # aggregate retention, so the sweep has none to remove.
    assert aggregates(tenant) == {**dict.fromkeys(before, 0), "sli minutes": before["sli minutes"],
                                  "sli hours": before["sli hours"]}  # fmt: skip
    assert counts(tenant) == dict.fromkeys(counts(tenant), 0)
    history["AuditEvent"] += 1  # the retention change itself
    assert history == {
        model.__name__: model.objects.count()
        for model in (SLO, Incident, IncidentEvent, Dataset, DatasetItem, Probe, ProbeRun, ProbeResult, AuditEvent)
    }
    kinds = dict(DataRemoval.objects.values_list("table", "kind"))
    assert kinds["rollups.TrafficRollup"] == kinds["rollups.ScoreRollup"] == "aggregate"
    assert DataRemoval.objects.get(table="rollups.TrafficRollup").rows == before["traffic"]


def test_batches_are_bounded_and_a_sweep_out_of_time_leaves_the_rest_for_the_next(
    tenant: Tenant, other_tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    # other_tenant keeps the default 30 days: tenant's 7 are shorter, so its rows go in batches even where the
    # tables are partitioned (tests/test_partitions.py covers the drop of a day expired for every project).
    ingest(tenant, [native_trace(1 + i, OLD + timedelta(seconds=i)) for i in range(7)])
    project_retention_set(project=tenant.project, raw_days=7, aggregate_days=400)
    monkeypatch.setattr(retention, "BATCH_ROWS", 5)
    deletes: list[str] = []
    real_delete = retention._batch_remove

    def counted(target: retention.Target) -> Any:
        batch = real_delete(target)
        if batch is not None:
            deletes.append(target.rows.model.__name__)
        return batch

    monkeypatch.setattr(retention, "_batch_remove", counted)
    assert not retention_sweep(now=NOW, seconds=0).finished  # no time at all: nothing removed
    assert Trace.objects.count() == 7
    assert retention_sweep(now=NOW).finished
    # Three spans a trace and at most five rows a batch: one trace (its 3 spans and itself) per batch.
    assert deletes.count("Trace") == 7
    assert not Trace.objects.exists()
    assert DataRemoval.objects.get(table="traces.Span").rows == 21


def test_late_spans_older_than_the_retention_are_refused_with_the_reason(client: Client, tenant: Tenant) -> None:
    project_retention_set(project=tenant.project, raw_days=7, aggregate_days=400)
    trace_id = ob.new_trace_id()
    spans = [ob.span(trace_id, name="late", start_ns=nanos(OLD)), ob.span(trace_id, name="fresh")]
    response = client.post("/v1/traces", data=ob.request(spans).SerializeToString(), content_type=PROTO,
                           headers=tenant.bearer)  # fmt: skip
    assert response.status_code == 200
    partial = ExportTraceServiceResponse.FromString(response.content).partial_success
    assert partial.rejected_spans == 1
    assert f"span 'late': start_time {OLD.isoformat()} is more than 7 days in the past, the project's raw data " \
           "retention (Settings & keys → Data retention)" in partial.error_message  # fmt: skip
    assert list(Span.objects.values_list("name", flat=True)) == ["fresh"]

    response = client.post("/api/v1/traces", data=json.dumps({"traces": [native_trace(1, OLD)]}),
                           content_type="application/json", headers=tenant.bearer)  # fmt: skip
    assert response.status_code == 400
    assert (
        "is more than 7 days in the past, the project's raw data retention" in response.json()["rejected"][0]["error"]
    )
    # Within the retention the same trace is stored.
    ingest(tenant, [native_trace(2, RECENT)])


def test_log_records_without_a_time_count_as_received_now(tenant: Tenant) -> None:
    post_logs(tenant, [log_record(ob.new_trace_id(), ob.new_span_id(), 0)])
    event = PendingLogEvent.objects.get()
    assert abs(event.time_unix_nano - nanos(datetime.now(UTC))) < 60 * 10**9
    retention_sweep()
    assert PendingLogEvent.objects.count() == 1


def test_admins_set_retention_in_settings_audited_and_see_what_was_removed(client: Client, tenant: Tenant) -> None:
    assert client.login(username="alice", password=PASSWORD)
    page = client.get("/p/acme/settings/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="retention"' in html and "Raw data (traces, spans" in html and "<b>30 days</b>" in html
    assert "Nothing removed yet" in html

    bad = client.post("/p/acme/settings/retention/", {"retention-raw_retention_days": "90",
                                                      "retention-aggregate_retention_days": "60"})  # fmt: skip
    assert bad.status_code == 400
    assert "Keep aggregates at least as long as raw data (90 days)" in bad.content.decode()
    too_short = client.post("/p/acme/settings/retention/", {"retention-raw_retention_days": "0",
                                                            "retention-aggregate_retention_days": "20"})  # fmt: skip
    assert too_short.status_code == 400
    text = too_short.content.decode()
    assert "greater than or equal to 1" in text and "Keep aggregates at least 31 days" in text

    saved = client.post("/p/acme/settings/retention/", {"retention-raw_retention_days": "7",
                                                        "retention-aggregate_retention_days": "365"})  # fmt: skip
    assert saved.status_code == 302 and saved["Location"].endswith("/p/acme/settings/#retention")
    tenant.project.refresh_from_db()
    assert (tenant.project.raw_retention_days, tenant.project.aggregate_retention_days) == (7, 365)
    event = AuditEvent.objects.get(action="project.retention")
    assert (event.actor, event.details) == ("alice", {"before": {"raw_days": 30, "aggregate_days": 400},
                                                      "after": {"raw_days": 7, "aggregate_days": 365}})  # fmt: skip

    ingest(tenant, [native_trace(1, RECENT)])
    Trace.objects.update(start_time=OLD)
    retention_sweep(now=NOW)
    html = client.get("/p/acme/settings/").content.decode()
    assert "span rows" in html and "traces.Span" in html and f"{OLD:%Y-%m-%d %H:%M}" in html

    # A viewer sees the retention but neither the form nor what was removed, and cannot post.
    viewer = user_create(username="vic", password=PASSWORD)
    membership_set(project=tenant.project, user=viewer, role=Role.VIEWER)
    client.logout()
    assert client.login(username="vic", password=PASSWORD)
    html = client.get("/p/acme/settings/").content.decode()
    assert "<b>7 days</b>" in html and "span rows" not in html and "Save retention" not in html
    forbidden = client.post("/p/acme/settings/retention/", {"retention-raw_retention_days": "1",
                                                            "retention-aggregate_retention_days": "31"})  # fmt: skip
    assert forbidden.status_code == 403
    tenant.project.refresh_from_db()
    assert tenant.project.raw_retention_days == 7


@pytest.mark.postgres_only("EXPLAIN of PostgreSQL's plans")
def test_every_target_is_walked_by_an_index(tenant: Tenant) -> None:
    """Each batch selects the oldest keys by an index on (project or parent, time): never a scan of the table."""
    targets = [
        target
        for function in retention._TARGETS
        for target in function(
            tenant.project, retention.raw_cutoff(tenant.project, NOW), retention.aggregate_cutoff(tenant.project, NOW)
        )
    ]
    assert {t.rows.model.__name__ for t in targets} == {
        "Trace", "PendingLogEvent", "FollowupOutbox", "PendingEvaluation", "TrafficRollup", "ScoreRollup",
    }  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # tables are tiny here: ask whether an index *can* serve
        for target in targets:
            query = target.rows.order_by(target.time_field).values_list("pk", target.time_field)[:5000]
            sql, params = query.query.sql_with_params()
            cursor.execute(f"EXPLAIN {sql}", params)
            plan = "\n".join(row[0] for row in cursor.fetchall())
            assert "Index" in plan and "Seq Scan" not in plan, (target.rows.model.__name__, plan)


@pytest.mark.postgres_only("CREATE INDEX CONCURRENTLY and PostgreSQL's pg_index")
@pytest.mark.django_db(transaction=True)
def test_concurrent_index_migration_rebuilds_an_interrupted_index(tenant: Tenant) -> None:
    from django.apps import apps
    from django.db.migrations.state import ProjectState

    from sre4ai_web.lib.migrations import AddIndexConcurrently

    model = apps.get_model("traces", "PendingLogEvent")
    index = next(i for i in model._meta.indexes if i.name == "log_time_idx")
    operation = AddIndexConcurrently("pendinglogevent", index)
    state = ProjectState.from_apps(apps)

    def valid() -> list[bool]:
        with connection.cursor() as cursor:
            cursor.execute("SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                           "WHERE c.relname = 'log_time_idx'")  # fmt: skip
            return [row[0] for row in cursor.fetchall()]

    with connection.cursor() as cursor:  # what a build stopped midway leaves
        cursor.execute("UPDATE pg_index SET indisvalid = false WHERE indexrelid = 'log_time_idx'::regclass")
    assert valid() == [False]
    with connection.schema_editor(atomic=False) as editor:
        operation.database_forwards("traces", editor, state, state)
    assert valid() == [True]
    with connection.schema_editor(atomic=False) as editor:  # a second run (migrate again): nothing to do
        operation.database_forwards("traces", editor, state, state)
    assert valid() == [True]
    with pytest.raises(Exception, match="atomic = False"), connection.schema_editor(atomic=True) as editor:
        operation.database_forwards("traces", editor, state, state)
