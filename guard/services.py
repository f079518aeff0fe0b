"""Guard calls: read what the checks need, decide, and record the decision in the caller's trace.

Every decision becomes an ``apply_guardrail`` span (kind guardrail) stored through the normal ingest service, so
it shows on the trace page, and a ``guardrail`` score on that span (passed unless blocked), so it counts on the
overview and can back a score SLO ("at most 1 % of answers blocked"). The span keeps verdicts and evidence
(which the evaluators already mask), never the guarded texts.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone
from pydantic import ValidationError

from accounts.models import Project
from evals.models import ScoreSource
from evals.services import ExternalScore, score_record
from guard.engine import Decision, Facts, GuardRequest, decide, decide_broken_policy
from guard.models import GuardPolicy
from guard.policy import DEFAULT_SPEC, FailMode, PolicySpec
from slos.budgets import user_budgets_over
from traces.ingest.normalize import SpanRecord
from traces.models import Span, SpanKind, Trace
from traces.services import spans_store

SCORE_NAME = "guardrail"


@dataclass(frozen=True)
class GuardOutcome:
    decision: Decision
    trace_id: str
    span_id: str


def policy_for(*, project: Project, service: str) -> GuardPolicy | None:
    """The service's own policy, else the project's default (service ""), else None (the built-in default)."""
    rows = {p.service: p for p in GuardPolicy.objects.filter(project=project, service__in={service, ""})}
    return rows.get(service) or rows.get("")


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
        over = tuple(user_budgets_over(project=project, user_id=request.user_id, service=request.service, now=now))
    return Facts(trace_cost=cost, budgets_over=over)


def guard_check(
    *,
    project: Project,
    request: GuardRequest,
    trace_id: str = "",
    parent_span_id: str = "",
    deadline_ms: int | None = None,
) -> GuardOutcome:
    """Decide on one request under the service's policy and record the decision; ``trace_id`` "" starts a trace.
    ``deadline_ms`` shortens the policy's deadline for this call (a caller with less time left); it never
    lengthens it."""
    started = timezone.now()
    stored = policy_for(project=project, service=request.service)
    try:
        spec = DEFAULT_SPEC if stored is None else PolicySpec.model_validate(stored.spec)
    except ValidationError as exc:
        assert stored is not None
        fail: FailMode = "closed" if stored.spec.get("fail") == "closed" else "open"
        decision = decide_broken_policy(str(exc), fail, request)
    else:
        if deadline_ms is not None and deadline_ms < spec.deadline_ms:
            spec = spec.model_copy(update={"deadline_ms": deadline_ms})
        decision = decide(spec, request, _facts(project, spec, request, trace_id, started))
    trace_id = trace_id or secrets.token_hex(16)
    span_id = secrets.token_hex(8)
    _record(project, request, decision, trace_id, span_id, parent_span_id, started)
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


@transaction.atomic
def _record(
    project: Project,
    request: GuardRequest,
    decision: Decision,
    trace_id: str,
    span_id: str,
    parent_span_id: str,
    started: datetime,
) -> None:
    record = SpanRecord(
        trace_id=trace_id,
        span_id=span_id,
        parent_span_id=parent_span_id,
        name="apply_guardrail",
        kind=SpanKind.GUARDRAIL,
        start_time=started,
        end_time=started + timedelta(milliseconds=decision.elapsed_ms),
        service=request.service,
        user_id=request.user_id,
        attributes={
            "gen_ai.operation.name": "apply_guardrail",
            "sre4ai.guard.stage": request.stage,
            "sre4ai.guard.decision": decision.decision,
            "sre4ai.guard.flagged": decision.flagged,
        },
        output={"decision": decision.decision, "checks": decision_json(decision)},
        source="guard",
    ).finish()
    spans_store(project=project, records=[record])
    span = Span.objects.select_related("trace").get(project=project, trace__trace_id=trace_id, span_id=span_id)
    blocked = decision.decision == "block"
    score_record(
        score=ExternalScore(
            trace=span.trace,
            span=span,
            name=SCORE_NAME,
            value=0.0 if blocked else 1.0,
            label=decision.decision,
            passed=not blocked,
            comment=decision.reason,
            external_id="",
            source=ScoreSource.API,
        )
    )
