"""SLOs on PostgreSQL: SLI counts per kind, history rebuild equals the incremental path, the evaluation tick's
state machine (fire exactly above the threshold, clear, auto-resolve, no duplicates), incidents acknowledged and
resolved by people, and the outbox written with each state change."""

from __future__ import annotations

import random
import threading
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection, transaction
from django.utils import timezone

from slos import selectors, services
from slos.models import (
    SLO,
    Channel,
    Delivery,
    EventKind,
    Incident,
    IncidentEvent,
    IncidentStatus,
    RuleState,
    SliHour,
    SliMinute,
)
from slos.services import slos_evaluate
from slos.sli import SliDefinition
from sre4ai_web.celery import app as celery_app
from sre4ai_web.lib.timebuckets import floor_hour
from tests.conftest import Tenant
from tests.fake_llm_app import FakeLlmApp
from tests.probe_data import QUESTIONS, golden, http_probe, run_once
from tests.slo_data import T0, at, create_slo, ingest, make_trace, recompute, score

pytestmark = pytest.mark.django_db


def counts(slo_id: int) -> dict[int, tuple[int, int]]:
    """minute offset → (good, total); and every SliHour row is the sum of its minutes."""
    assert_hours_match_minutes(slo_id)
    return {
        int((m - T0).total_seconds() // 60): (g, t)
        for m, g, t in SliMinute.objects.filter(slo_id=slo_id).values_list("minute", "good", "total")
    }


def assert_hours_match_minutes(slo_id: int) -> None:
    expected: dict[datetime, tuple[int, int]] = {}
    for minute, good, total in SliMinute.objects.filter(slo_id=slo_id).values_list("minute", "good", "total"):
        g, t = expected.get(floor_hour(minute), (0, 0))
        expected[floor_hour(minute)] = (g + good, t + total)
    hours = {h: (g, t) for h, g, t in SliHour.objects.filter(slo_id=slo_id).values_list("hour", "good", "total")}
    assert hours == expected


# --------------------------------------------------------------------------------------------------
# SLI definitions (pure)
# --------------------------------------------------------------------------------------------------

TRACE = {"service": "bot", "environment": "prod", "name": "answer", "model_names": ["gpt-4o"], "status": "ok",
         "duration_ms": 1500.0, "cost": Decimal("0.02"), "has_unpriced": False}  # fmt: skip


def definition(**overrides: Any) -> SliDefinition:
    values: dict[str, Any] = {"slo_id": 1, "service": "bot", "environment": "", "route": "", "model": "",
                              "kind": "error", "score_name": "", "comparator": "", "threshold": None}  # fmt: skip
    values.update(overrides)
    return SliDefinition(**values)


def test_error_latency_and_cost_kinds_judge_the_trace() -> None:
    assert definition(kind="error").verdict(TRACE, {}) is True
    assert definition(kind="error").verdict({**TRACE, "status": "error"}, {}) is False
    assert definition(kind="latency", threshold=Decimal(1500)).verdict(TRACE, {}) is True  # ≤ is good
    assert definition(kind="latency", threshold=Decimal("1499.9")).verdict(TRACE, {}) is False
    assert definition(kind="cost", threshold=Decimal("0.02")).verdict(TRACE, {}) is True
    assert definition(kind="cost", threshold=Decimal("0.01")).verdict(TRACE, {}) is False
    assert definition(kind="cost", threshold=Decimal("1")).verdict({**TRACE, "cost": None}, {}) is None
    # Part of the cost is unknown: under the limit proves nothing, over it is already bad.
    unpriced = {**TRACE, "has_unpriced": True}
    assert definition(kind="cost", threshold=Decimal("1")).verdict(unpriced, {}) is None
    assert definition(kind="cost", threshold=Decimal("0.01")).verdict(unpriced, {}) is False


def test_score_kinds_compare_the_value_or_take_the_verdict() -> None:
    verdicts = {"grounding": (False, 0.7)}
    assert definition(kind="score", score_name="grounding", comparator=">=", threshold=Decimal("0.7")).verdict(
        TRACE, verdicts
    )
    assert not definition(kind="score", score_name="grounding", comparator=">", threshold=Decimal("0.7")).verdict(
        TRACE, verdicts
    )
    assert definition(kind="score", score_name="grounding", comparator="pass").verdict(TRACE, verdicts) is False
    assert definition(kind="score", score_name="refusal", comparator="pass").verdict(TRACE, verdicts) is None
    assert definition(kind="probe", score_name="probe").verdict(TRACE, {"probe": (True, 1.0)}) is True
    assert definition(kind="safety").verdict(TRACE, {"grounding": (False, 0.1)}) is None  # no safety check ran
    assert definition(kind="safety").verdict(TRACE, {"pii": (True, 0.0), "secrets": (True, 0.0)}) is True
    assert definition(kind="safety").verdict(TRACE, {"pii": (True, 0.0), "prompt_injection": (False, 1.0)}) is False


def test_slice_filters_select_traces() -> None:
    assert definition(service="other").verdict(TRACE, {}) is None
    assert definition(environment="staging").verdict(TRACE, {}) is None
    assert definition(environment="prod", route="answer", model="gpt-4o").verdict(TRACE, {}) is True
    assert definition(route="search").verdict(TRACE, {}) is None
    assert definition(model="claude").verdict(TRACE, {}) is None


# --------------------------------------------------------------------------------------------------
# Counting
# --------------------------------------------------------------------------------------------------


def test_rollup_recompute_counts_sli_events_per_minute_and_late_scores_update_them(tenant: Tenant) -> None:
    ingest(tenant, [make_trace(0)])
    recompute()
    slo = create_slo(tenant.project, name="Grounded", sli_kind="score", evaluator="grounding", comparator=">=",
                     threshold="0.7")  # fmt: skip
    traces = ingest(tenant, [make_trace(1), make_trace(1), make_trace(2), make_trace(2, service="other-bot")])
    recompute()
    assert counts(slo.pk) == {}  # no trace has a grounding score yet: no valid events
    by_minute = sorted(traces, key=lambda t: (t.start_time, t.pk))
    score(by_minute[0], "grounding", passed=True, value=0.9)
    score(by_minute[1], "grounding", passed=False, value=0.4)
    score(by_minute[2], "grounding", passed=False, value=0.7)  # ≥ 0.7 is good whatever the evaluator said
    recompute()
    assert counts(slo.pk) == {1: (1, 2), 2: (1, 1)}
    # A late score changes the minute it belongs to.
    score(by_minute[1], "grounding", passed=True, value=0.8)
    recompute()
    assert counts(slo.pk) == {1: (2, 2), 2: (1, 1)}


def test_history_rebuild_gives_the_same_counts_as_the_incremental_path(tenant: Tenant) -> None:
    ingest(tenant, [make_trace(0)])
    recompute()
    slo = create_slo(tenant.project)
    ingest(tenant, [make_trace(m, status="error" if m % 3 == 0 else "ok") for m in range(1, 40)])
    recompute()
    incremental = counts(slo.pk)
    SliMinute.objects.filter(slo=slo).delete()
    assert services.sli_history_rebuild(slo_id=slo.pk, now=at(45)) == 40
    # The rebuild also counts minute 0, ingested before the SLO existed (what the rebuild on creation is for).
    assert counts(slo.pk) == {0: (1, 1), **incremental}
    assert incremental[3] == (0, 1) and incremental[4] == (1, 1)
    slo.refresh_from_db()
    assert slo.history_ready_at == at(45)


def test_window_sums_from_hours_and_partial_hours_equal_the_sum_of_minutes(tenant: Tenant) -> None:
    """window_counts reads whole hours from SliHour and the edges from SliMinute: the same as summing minutes, for
    windows that start and end anywhere in an hour, shorter than an hour, or past the data."""
    ingest(tenant, [make_trace(0)])
    recompute()
    slos = [create_slo(tenant.project, name=f"slo {i}") for i in range(2)]
    rng = random.Random(7)
    start = datetime(2026, 10, 1, 0, 0, tzinfo=UTC)
    rows = {}
    for slo in slos:
        for _ in range(3000):
            minute = start + timedelta(minutes=rng.randrange(40 * 24 * 60))
            total = rng.randint(1, 9)
            rows[(slo.pk, minute)] = SliMinute(slo=slo, minute=minute, good=rng.randint(0, total), total=total)
    SliMinute.objects.all().delete()
    SliMinute.objects.bulk_create(rows.values())
    services.sli_hours_refresh(slo_ids=[slo.pk for slo in slos])
    assert_hours_match_minutes(slos[0].pk)
    windows = [1, 5, 59, 60, 61, 119, 360, 1440, 4320, 30 * 1440]
    for _ in range(25):
        end = start + timedelta(minutes=rng.randrange(41 * 24 * 60))
        got = selectors.window_counts(slos=slos, end=end, windows=windows)
        for slo in slos:
            for window in windows:
                inside = [
                    r for (pk, m), r in rows.items() if pk == slo.pk and end - timedelta(minutes=window) < m <= end
                ]
                want = (sum(r.good for r in inside), sum(r.total for r in inside))
                assert tuple(got.get((slo.pk, window), (0, 0))) == want, (end, window)


def test_a_redefined_slo_waits_for_its_history_before_alerting(tenant: Tenant) -> None:
    ingest(tenant, [make_trace(0)])
    recompute()
    slo = create_slo(tenant.project)
    assert slo.history_ready_at is None
    assert slos_evaluate(now=at(1)).evaluated == 0


# --------------------------------------------------------------------------------------------------
# Evaluation tick
# --------------------------------------------------------------------------------------------------


@pytest.fixture
def alerting(tenant: Tenant) -> Any:
    """An error SLO at 90% with one page rule: burn rate > 2 over 10 min and 2 min (error ratio > 20%); a webhook."""
    ingest(tenant, [make_trace(m) for m in range(10)])  # minutes 0-9 good
    recompute()
    channel = Channel.objects.create(project=tenant.project, name="hook", kind="webhook",
                                     config={"url": "http://127.0.0.1:9/hook"})  # fmt: skip
    slo = create_slo(tenant.project, channels=[channel])
    services.sli_history_rebuild(slo_id=slo.pk, now=at(9))
    return slo


def test_rule_fires_strictly_above_the_threshold_and_opens_one_incident(tenant: Tenant, alerting: Any) -> None:
    slo = alerting
    ingest(tenant, [make_trace(10, status="error"), make_trace(11, status="error")])
    recompute()
    # Minute 11: 2 bad of 10 over 10 min = 20% → burn rate exactly 2: not above, no alert.
    assert slos_evaluate(now=at(11)).changes == 0
    state = RuleState.objects.get(slo=slo)
    assert (state.firing, state.long_burn, state.short_burn) == (False, Decimal(2), Decimal(10))
    ingest(tenant, [make_trace(12, status="error")])
    recompute()
    assert slos_evaluate(now=at(12)).changes == 1
    state.refresh_from_db()
    assert state.firing and state.long_burn == Decimal(3)
    incident = Incident.objects.get(slo=slo)
    assert (incident.status, incident.severity) == (IncidentStatus.OPEN, "page")
    fired = IncidentEvent.objects.get(incident=incident)
    assert (fired.kind, fired.long_burn, fired.short_burn) == (EventKind.FIRED, Decimal(3), Decimal(10))
    assert Delivery.objects.filter(event=fired).count() == 1  # the outbox row, written with the change
    # Evaluating the same minute again (a second beat) changes nothing.
    assert slos_evaluate(now=at(12)).changes == 0
    assert IncidentEvent.objects.count() == 1


def test_clearing_resolves_the_incident_by_itself(tenant: Tenant, alerting: Any) -> None:
    ingest(tenant, [make_trace(m, status="error") for m in (10, 11, 12)])
    recompute()
    slos_evaluate(now=at(12))
    # Minute 13 has no events; the short window still holds minute 12's error, so the rule keeps firing.
    assert slos_evaluate(now=at(13)).changes == 0
    assert RuleState.objects.get(slo=alerting).firing
    ingest(tenant, [make_trace(14), make_trace(15)])
    recompute()
    assert slos_evaluate(now=at(15)).changes == 2  # the rule clears, then the incident resolves
    incident = Incident.objects.get(slo=alerting)
    assert incident.status == IncidentStatus.RESOLVED and incident.resolved_by is None
    kinds = list(IncidentEvent.objects.filter(incident=incident).values_list("kind", flat=True))
    assert kinds == ["fired", "cleared", "resolved"]
    assert Delivery.objects.count() == 3


def test_people_acknowledge_resolve_and_annotate(tenant: Tenant, alerting: Any) -> None:
    ingest(tenant, [make_trace(m, status="error") for m in (10, 11, 12)])
    recompute()
    slos_evaluate(now=at(12))
    incident = Incident.objects.get(slo=alerting)
    services.incident_acknowledge(incident_id=incident.pk, user=tenant.user)
    with pytest.raises(services.IncidentStateError, match="already acknowledged"):
        services.incident_acknowledge(incident_id=incident.pk, user=tenant.user)
    services.incident_note(incident_id=incident.pk, user=tenant.user, text="Rolled back v2.")
    services.incident_resolve(incident_id=incident.pk, user=tenant.user)
    incident.refresh_from_db()
    assert (incident.status, incident.acknowledged_by, incident.resolved_by) == ("resolved", tenant.user, tenant.user)
    kinds = list(IncidentEvent.objects.filter(incident=incident).values_list("kind", flat=True))
    assert kinds == ["fired", "acknowledged", "note", "resolved"]
    assert Delivery.objects.count() == 3  # notes are not notified
    # The rule is still firing: no new incident until it clears and fires again.
    ingest(tenant, [make_trace(13, status="error")])
    recompute()
    assert slos_evaluate(now=at(13)).changes == 0
    assert Incident.objects.count() == 1


def test_a_second_rule_joins_the_open_incident(tenant: Tenant) -> None:
    ingest(tenant, [make_trace(m) for m in range(10)])
    recompute()
    slo = create_slo(tenant.project, rules=[
        {"severity": "ticket", "burn_rate_threshold": "1", "long_window": "10m", "short_window": "2m"},
        {"severity": "page", "burn_rate_threshold": "5", "long_window": "10m", "short_window": "2m"},
    ])  # fmt: skip
    services.sli_history_rebuild(slo_id=slo.pk, now=at(9))
    ingest(tenant, [make_trace(10, status="error"), make_trace(11, status="error")])
    recompute()
    slos_evaluate(now=at(11))  # 20% → burn 2: the ticket rule only
    incident = Incident.objects.get()
    assert incident.severity == "ticket"
    ingest(tenant, [make_trace(m, status="error") for m in (12, 13, 14, 15)])
    recompute()
    slos_evaluate(now=at(15))  # 6 of 10 → burn 6: the page rule joins
    incident.refresh_from_db()
    assert Incident.objects.count() == 1 and incident.severity == "page"
    assert list(IncidentEvent.objects.values_list("kind", "severity")) == [("fired", "ticket"), ("fired", "page")]


@pytest.mark.postgres_only("two ticks race on PostgreSQL's row locks (SQLite has one writer)")
@pytest.mark.django_db(transaction=True)
def test_two_concurrent_ticks_write_each_change_once(tenant: Tenant) -> None:
    assert connection.vendor == "postgresql"
    ingest(tenant, [make_trace(m) for m in range(10)])
    recompute()
    slo = create_slo(tenant.project)
    services.sli_history_rebuild(slo_id=slo.pk, now=at(9))
    ingest(tenant, [make_trace(m, status="error") for m in (10, 11, 12)])
    recompute()
    barrier = threading.Barrier(2)
    results: list[int] = []

    def tick() -> None:
        barrier.wait()
        try:
            results.append(slos_evaluate(now=at(12)).changes)
        finally:
            connection.close()

    threads = [threading.Thread(target=tick) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [0, 1]
    assert IncidentEvent.objects.filter(kind="fired").count() == 1
    assert Incident.objects.count() == 1


@pytest.mark.postgres_only("PostgreSQL's advisory and row locks between concurrent writers")
@pytest.mark.django_db(transaction=True)
def test_a_recompute_waiting_on_a_rebuilding_slo_does_not_hold_up_the_tick(tenant: Tenant) -> None:
    """A history rebuild holds its SLO's row for its whole scan. A rollup recompute of the same project then waits
    for it (its minutes for that SLO must land after the rebuild's), but must not make the tick of the project's
    other SLOs wait too: the recompute serialises on an advisory lock, not on the SLO rows."""
    ingest(tenant, [make_trace(m) for m in range(10)])
    recompute()
    steady = create_slo(tenant.project, name="steady")
    services.sli_history_rebuild(slo_id=steady.pk, now=at(9))
    rebuilding = create_slo(tenant.project, name="rebuilding")
    ingest(tenant, [make_trace(m, status="error") for m in (10, 11, 12)])  # dirty minutes for the recompute
    rebuild_holds, recompute_done = threading.Event(), threading.Event()
    release = threading.Event()

    def rebuild() -> None:  # as sli_history_rebuild: the SLO row locked from the first read to the last write
        try:
            with transaction.atomic():
                SLO.objects.select_for_update().get(pk=rebuilding.pk)
                rebuild_holds.set()
                release.wait(30)
        finally:
            connection.close()

    def rollups() -> None:
        try:
            recompute()
            recompute_done.set()
        finally:
            connection.close()

    threads = [threading.Thread(target=rebuild), threading.Thread(target=rollups)]
    threads[0].start()
    assert rebuild_holds.wait(10)
    threads[1].start()
    try:
        time.sleep(1)  # the recompute is now waiting for the rebuilding SLO's row
        assert not recompute_done.is_set()
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET LOCAL lock_timeout = '3s'")  # waiting would raise LockNotAvailable
            # Evaluated at once, on the minutes committed so far (the errors are still in the waiting recompute).
            assert services.slo_evaluate(slo_id=steady.pk, now=at(12)) == 0
    finally:
        release.set()
        for t in threads:
            t.join(30)
    assert recompute_done.is_set()
    assert services.slo_evaluate(slo_id=steady.pk, now=at(12)) == 1  # now the errors count: the page rule fires
    assert_hours_match_minutes(steady.pk)
    assert_hours_match_minutes(rebuilding.pk)


@pytest.mark.postgres_only("PostgreSQL's row locks and deadlock detector between concurrent writers")
@pytest.mark.django_db(transaction=True)
def test_a_history_rebuild_and_a_recompute_of_the_same_minutes_do_not_deadlock(
    tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rebuild locks its SLO row, counts, then writes every minute of the window; the rollup hook writes the
    same (SLO, minute) keys. The hook used to insert its rows first and wait for the SLO row in the insert's
    foreign-key check, while the rebuild's insert of the same keys waited for the hook's rows: "deadlock detected"
    (docs/benchmarks.md §13). The hook now takes the SLO rows before it writes a minute, so it simply waits."""
    ingest(tenant, [make_trace(m) for m in range(10)])
    recompute()
    steady = create_slo(tenant.project, name="steady")
    services.sli_history_rebuild(slo_id=steady.pk, now=at(12))
    rebuilding = create_slo(tenant.project, name="rebuilding")
    ingest(tenant, [make_trace(m, status="error") for m in (10, 11, 12)])  # dirty minutes, counted by both
    counting, release = threading.Event(), threading.Event()
    verdicts = services.trace_verdicts

    def paused_verdicts(*args: Any, **kwargs: Any) -> Any:  # inside the rebuild: its SLO row is locked
        counting.set()
        assert release.wait(30)
        return verdicts(*args, **kwargs)

    monkeypatch.setattr(services, "trace_verdicts", paused_verdicts)
    errors: list[BaseException] = []
    recompute_pid: list[int] = []

    def rebuild() -> None:
        try:
            services.sli_history_rebuild(slo_id=rebuilding.pk, now=at(12))
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)
        finally:
            connection.close()

    def rollups() -> None:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()")
                recompute_pid.append(cursor.fetchone()[0])
            recompute()
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=rebuild), threading.Thread(target=rollups)]
    threads[0].start()
    try:
        assert counting.wait(10)
        threads[1].start()
        waiting = False
        for _ in range(200):  # until the recompute waits for a lock (the rebuild's SLO row)
            with connection.cursor() as cursor:
                cursor.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", recompute_pid or [0])
                row = cursor.fetchone()
            if row is not None and row[0] == "Lock":
                waiting = True
                break
            time.sleep(0.05)
        assert waiting
    finally:
        release.set()
        for t in threads:
            t.join(60)
    assert errors == []
    monkeypatch.setattr(services, "trace_verdicts", verdicts)
    after_both = counts(rebuilding.pk)
    assert after_both[10] == (0, 1) and after_both[9] == (1, 1)
    services.sli_history_rebuild(slo_id=rebuilding.pk, now=at(12))
    assert counts(rebuilding.pk) == after_both  # what a rebuild from scratch counts
    assert counts(steady.pk) == after_both


def test_policy_edit_drops_the_state_of_removed_rules(tenant: Tenant, alerting: Any) -> None:
    ingest(tenant, [make_trace(m, status="error") for m in (10, 11, 12)])
    recompute()
    slos_evaluate(now=at(12))
    values = {f: getattr(alerting, f) for f in ("name", "service", "environment", "route", "model", "sli_kind",
                                                 "evaluator", "comparator", "threshold", "objective", "window_days",
                                                 "runbook", "owner")}  # fmt: skip
    values["policy"] = [{"severity": "page", "burn_rate_threshold": "9", "long_window": "10m", "short_window": "2m"}]
    services.slo_save(project=tenant.project, values=values, channels=[], instance=alerting)
    assert not RuleState.objects.filter(slo=alerting).exists()
    # The new rule (burn 3 < 9) does not fire; with no rule firing, the open incident resolves itself.
    slos_evaluate(now=at(12))
    assert Incident.objects.get().status == IncidentStatus.RESOLVED


def test_a_probe_run_feeds_the_golden_probe_sli(tenant: Tenant) -> None:
    """A real probe run against the fake LLM app: its "probe" scores are the SLO's events (2 pass, 1 fails)."""
    app = FakeLlmApp(answers={**QUESTIONS, "What is six times seven?": "41"}).start()
    try:
        ingest(tenant, [make_trace(0)])
        recompute()
        slo = create_slo(tenant.project, name="Golden answers", sli_kind="probe")
        run_once(http_probe(tenant, golden(tenant), app))
    finally:
        app.stop()
    recompute()
    assert sum(g for g, _ in counts(slo.pk).values()) == 2
    assert sum(t for _, t in counts(slo.pk).values()) == 3  # the ordinary trace of minute 0 has no probe score


def test_one_broken_slo_does_not_stop_the_others(tenant: Tenant, alerting: Any) -> None:
    broken = create_slo(tenant.project, name="broken")
    SLO.objects.filter(pk=broken.pk).update(policy=[{"severity": "page"}], history_ready_at=at(9))  # unreadable
    ingest(tenant, [make_trace(m, status="error") for m in (10, 11, 12)])
    recompute()
    result = slos_evaluate(now=at(12))
    assert (result.evaluated, result.changes) == (1, 1)
    assert Incident.objects.get().slo_id == alerting.pk


def test_a_lost_history_rebuild_is_queued_again(
    tenant: Tenant, monkeypatch: pytest.MonkeyPatch, django_capture_on_commit_callbacks: Any
) -> None:
    ingest(tenant, [make_trace(0)])
    recompute()
    slo = create_slo(tenant.project)
    queued: list[int] = []

    def send_task(name: str, args: list[int], **_: object) -> None:
        if name == "slos.tasks.sli_history":
            queued.extend(args)

    def tick(after: timedelta) -> None:
        with django_capture_on_commit_callbacks(execute=True):  # beat's tick commits; the test's transaction does not
            slos_evaluate(now=timezone.now() + after)

    monkeypatch.setattr(celery_app, "send_task", send_task)
    tick(timedelta(0))
    assert queued == []  # just created: its task may still be running
    tick(timedelta(minutes=31))
    assert queued == [slo.pk]
    tick(timedelta(minutes=32))
    assert queued == [slo.pk]  # not again every minute


def test_the_tick_drops_minutes_older_than_any_window(tenant: Tenant, alerting: Any) -> None:
    old = T0 - timedelta(days=32)
    SliMinute.objects.create(slo=alerting, minute=old, good=1, total=1)
    SliMinute.objects.create(slo=alerting, minute=T0 - timedelta(days=29), good=1, total=1)
    slos_evaluate(now=at(12))
    assert not SliMinute.objects.filter(minute=old).exists()
    assert SliMinute.objects.filter(minute=T0 - timedelta(days=29)).exists()
