"""Guard calls: read what the checks need, decide, and have the decision recorded in the caller's trace.

Every decision becomes an ``apply_guardrail`` span (kind guardrail) stored through the normal ingest service, so
it shows on the trace page, and a ``guardrail`` score on that span (passed unless blocked), so it counts on the
overview and can back a score SLO ("at most 1 % of answers blocked"). The span keeps verdicts and evidence
(which the evaluators already mask), never the guarded texts.

The answer does not wait for that write: the call adds one row to the guard outbox (``GuardRecord``) and, once it
is committed, has ``guard.tasks.record_decisions`` queued (off the request thread), which turns the pending rows
into spans and scores in one transaction and deletes them. A row whose task could not be queued (broker down) is
recorded by beat's run of the same task; recording is idempotent (span and score upserts), so a row recorded
twice changes nothing.
"""

from __future__ import annotations

import json
import secrets
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from accounts.models import Project
from evals.models import ScoreSource
from evals.services import ExternalScore, scores_record
from guard.engine import Decision, Facts, GuardRequest, decide, decide_broken_policy
from guard.models import GuardPolicy, GuardRecord
from guard.policy import PolicySpec
from guard.selectors import effective_policy, user_budgets
from slos.budgets import user_budgets_over
from sre4ai_web.lib.nudge import Nudger
from traces.ingest.normalize import SpanRecord
from traces.models import Span, SpanKind, Trace
from traces.services import spans_store

SCORE_NAME = "guardrail"
RECORD_TASK = "guard.tasks.record_decisions"
RECORD_BATCH = 500  # outbox rows recorded per transaction
# Queues the recording task from a thread of its own: the answer never waits on the broker (sre4ai_web.lib.nudge).
_RECORDER = Nudger(RECORD_TASK, every=0.5)


@dataclass(frozen=True)
class GuardOutcome:
    decision: Decision
    trace_id: str
    span_id: str


def guard_policy_save(*, project: Project, service: str, spec: PolicySpec) -> GuardPolicy:
    policy, _ = GuardPolicy.objects.update_or_create(
        project=project, service=service, defaults={"spec": spec.model_dump(mode="json")}
    )
    return policy


def guard_policy_delete(*, project: Project, service: str) -> None:
    GuardPolicy.objects.filter(project=project, service=service).delete()


def _facts(project: Project, spec: PolicySpec, request: GuardRequest, trace_id: str, now: datetime) -> Facts:
    checks = {rule.check for rule in spec.checks if rule.runs_at(request.stage)}
    cost = None
    if "cost_ceiling" in checks and trace_id:
        cost = Trace.objects.filter(project=project, trace_id=trace_id).values_list("cost", flat=True).first()
    over: tuple[dict[str, str], ...] = ()
    if "user_budget" in checks and request.user_id:
        budgets = user_budgets(project_id=project.pk)
        over = tuple(user_budgets_over(budgets=budgets, user_id=request.user_id, service=request.service, now=now))
    return Facts(trace_cost=cost, budgets_over=over)


def guard_check(
    *,
    project: Project,
    request: GuardRequest,
    trace_id: str = "",
    parent_span_id: str = "",
    deadline_ms: int | None = None,
) -> GuardOutcome:
    """Decide on one request under the service's policy and queue the decision's recording; ``trace_id`` ""
    starts a trace. ``deadline_ms`` shortens the policy's deadline for this call (a caller with less time left); it
    never lengthens it. The deadline counts from here: reading the policy and the facts uses part of it."""
    started = timezone.now()
    clock = time.perf_counter()
    policy = effective_policy(project_id=project.pk, service=request.service)
    if policy.spec is None:
        decision = decide_broken_policy(policy.error, policy.fail, request)
    else:
        spec = policy.spec
        if deadline_ms is not None and deadline_ms < spec.deadline_ms:
            spec = spec.model_copy(update={"deadline_ms": deadline_ms})
        facts = _facts(project, spec, request, trace_id, started)
        decision = decide(spec, request, facts, spent_ms=(time.perf_counter() - clock) * 1000)
    trace_id = trace_id or secrets.token_hex(16)
    span_id = secrets.token_hex(8)
    payload = {
        "trace_id": trace_id,
        "span_id": span_id,
        "parent_span_id": parent_span_id,
        "service": request.service,
        "user_id": request.user_id,
        "stage": request.stage,
        "decision": decision.decision,
        "flagged": decision.flagged,
        "reason": decision.reason,
        "checks": decision_json(decision),
        "start": started.isoformat(),
        "elapsed_ms": decision.elapsed_ms,
    }
    guard_record_queue(project=project, payload=payload)
    return GuardOutcome(decision=decision, trace_id=trace_id, span_id=span_id)


def decision_json(decision: Decision) -> list[dict[str, Any]]:
    return [
        {
            "check": c.check,
            "action": c.action,
            "verdict": c.verdict,
            "value": c.value,
            "explanation": c.explanation,
            "evidence": c.evidence,
        }
        for c in decision.checks
    ]


# The outbox row in one statement that also turns off, for its own implicit transaction, the wait for PostgreSQL's
# WAL flush (set_config(..., true) is SET LOCAL): one round trip, no fsync in the call.
_INSERT_NO_FLUSH_WAIT = (
    f"INSERT INTO {GuardRecord._meta.db_table} (project_id, payload, created_at) "  # noqa: S608 - our table name
    "SELECT %s, %s::jsonb, %s FROM set_config('synchronous_commit', 'off', true)"
)


def guard_record_queue(*, project: Project, payload: dict[str, Any]) -> None:
    """One outbox row for the decision, then (after its commit) the task that records it.

    On PostgreSQL the row is committed without waiting for the WAL flush: a flush costs the call 1–20 ms on a busy
    disk, and the row survives a crash of this process or of the broker all the same. Only a crash of the database
    server itself can lose the rows of its last ~0.6 s (3 × wal_writer_delay), as the embedded SQLite (WAL,
    synchronous=NORMAL) can on a power cut; the decision itself was answered by then."""
    if connection.vendor == "postgresql" and not connection.in_atomic_block:
        with connection.cursor() as cursor:
            cursor.execute(_INSERT_NO_FLUSH_WAIT, [project.pk, json.dumps(payload), timezone.now()])
    else:
        GuardRecord.objects.create(project=project, payload=payload)
    transaction.on_commit(_RECORDER.nudge)


def guard_records_flush(*, limit: int = RECORD_BATCH) -> int:
    """Record up to ``limit`` pending decisions, oldest first, and delete their outbox rows, in one transaction;
    returns how many. Rows another run holds are skipped (PostgreSQL), never recorded twice at once."""
    with transaction.atomic():
        rows = list(GuardRecord.objects.order_by("pk").select_for_update(skip_locked=True)[:limit])
        by_project: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for row in rows:
            by_project[row.project_id].append(row.payload)
        for project in Project.objects.filter(pk__in=by_project):
            _record(project, by_project[project.pk])
        GuardRecord.objects.filter(pk__in=[row.pk for row in rows]).delete()
    return len(rows)


def _span_record(payload: dict[str, Any]) -> SpanRecord:
    start = datetime.fromisoformat(payload["start"])
    return SpanRecord(
        trace_id=payload["trace_id"],
        span_id=payload["span_id"],
        parent_span_id=payload["parent_span_id"],
        name="apply_guardrail",
        kind=SpanKind.GUARDRAIL,
        start_time=start,
        end_time=start + timedelta(milliseconds=payload["elapsed_ms"]),
        service=payload["service"],
        user_id=payload["user_id"],
        attributes={
            "gen_ai.operation.name": "apply_guardrail",
            "sre4ai.guard.stage": payload["stage"],
            "sre4ai.guard.decision": payload["decision"],
            "sre4ai.guard.flagged": payload["flagged"],
        },
        output={"decision": payload["decision"], "checks": payload["checks"]},
        source="guard",
    ).finish()


def _record(project: Project, payloads: Sequence[dict[str, Any]]) -> None:
    """The decisions' spans (one upsert for all) and their guardrail scores (one upsert)."""
    # A decision queued twice (its row recorded again after a crash mid-run) is one span and one score.
    unique = {(p["trace_id"], p["span_id"]): p for p in payloads}
    stored = spans_store(project=project, records=[_span_record(p) for p in unique.values()])
    wanted = set(unique)
    spans = {
        (span.trace.trace_id, span.span_id): span
        for span in Span.objects.filter(trace_id__in=stored.trace_pks, span_id__in={s for _, s in wanted})
        .select_related("trace")
        .only("id", "span_id", "trace__trace_id", "trace__project_id", "trace__service", "trace__start_time")
        if (span.trace.trace_id, span.span_id) in wanted
    }
    scores = []
    for ids, p in unique.items():
        span = spans[ids]
        blocked = p["decision"] == "block"
        scores.append(
            ExternalScore(
                trace=span.trace,
                span=span,
                name=SCORE_NAME,
                value=0.0 if blocked else 1.0,
                label=p["decision"],
                passed=not blocked,
                comment=p["reason"],
                external_id="",
                source=ScoreSource.API,
            )
        )
    scores_record(scores=scores)
