"""App scores: an app's own verdicts, received as ``gen_ai.evaluation.result`` events, become scores (source "app").

Such a verdict on a span arrives as a log record (/v1/logs) or as a span event (/v1/traces); ingest decodes it
(traces.ingest) and hands it here through traces.services (registered in EvalsConfig.ready). The evaluated span is
the one whose ids the event carries, or, when it carries none, the span whose gen_ai.response.id it names. An event
whose span is not stored yet waits as a PendingEvaluation and is applied by the ingest that stores that span, in
its transaction and under the same per-trace lock (and a per-response-id lock), so either arrival order gives one
score.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from django.db import connection, transaction
from django.db.models import Q, TextField
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast
from django.utils import timezone

from accounts.models import Project
from evals.models import PendingEvaluation, Score, ScoreSource
from evals.services import score_key_app, scores_upsert
from traces.ingest.normalize import RESPONSE_ID, EvaluationRecord, SpanRecord
from traces.models import Span
from traces.services import minutes_mark_dirty, traces_lock


def _response_lock_names(response_ids: Iterable[str]) -> list[str]:
    # Taken after the trace locks by every writer, in sorted order: no two writers wait on each other in a cycle.
    return [f"response:{r}" for r in response_ids]


def _spans_evaluated(
    project: Project, evaluations: Sequence[EvaluationRecord]
) -> tuple[dict[tuple[str, str], Span], dict[str, Span]]:
    """The stored spans the evaluations name: by (trace id, span id), and by response id."""
    keys = {(e.trace_id, e.span_id) for e in evaluations if e.span_id}
    response_ids = {e.response_id for e in evaluations if not e.span_id}
    # Only what a score row copies: a span's texts and raw attributes can be large.
    spans = Span.objects.select_related("trace").only(
        "span_id", "trace__project_id", "trace__trace_id", "trace__service", "trace__start_time"
    )
    by_ids: dict[tuple[str, str], Span] = {}
    if keys:
        candidates = spans.filter(
            project=project, trace__trace_id__in={t for t, _ in keys}, span_id__in={s for _, s in keys}
        )
        by_ids = {(s.trace.trace_id, s.span_id): s for s in candidates if (s.trace.trace_id, s.span_id) in keys}
    by_response: dict[str, Span] = {}
    if response_ids:
        response_id: KeyTextTransform | Cast = KeyTextTransform(RESPONSE_ID, "attributes")
        if connection.vendor != "postgresql":  # SQLite would read the ids compared with as JSON ("malformed JSON")
            response_id = Cast(response_id, TextField())
        candidates = (
            spans.annotate(response_id=response_id)
            .filter(project=project, attributes__has_key=RESPONSE_ID, response_id__in=response_ids)
            .order_by("pk")
        )
        for span in candidates:
            by_response.setdefault(span.response_id, span)  # the same id on two spans: the first stored
    return by_ids, by_response


def _app_score(span: Span, evaluation: EvaluationRecord, now: datetime) -> Score:
    trace = span.trace
    return Score(
        project_id=trace.project_id,
        trace=trace,
        span=span,
        key=score_key_app(trace.pk, span.span_id, evaluation.name),
        service=trace.service,
        trace_start=trace.start_time,
        name=evaluation.name,
        value=evaluation.value,
        label=evaluation.label,
        passed=evaluation.passed,
        explanation=evaluation.explanation,
        evidence={"error.type": evaluation.error_type} if evaluation.error_type else {},
        evaluator=evaluation.name,
        source=ScoreSource.APP,
        updated_at=now,
    )


def _evaluations_attach(project: Project, evaluations: Sequence[EvaluationRecord]) -> list[EvaluationRecord]:
    """Score the evaluations whose span is stored; returns the others. The caller holds the locks."""
    by_ids, by_response = _spans_evaluated(project, evaluations)
    now = timezone.now()
    scores: dict[str, Score] = {}
    waiting: list[EvaluationRecord] = []
    for evaluation in evaluations:
        span = by_ids.get((evaluation.trace_id, evaluation.span_id)) if evaluation.span_id else None
        span = span or (by_response.get(evaluation.response_id) if not evaluation.span_id else None)
        if span is None:
            waiting.append(evaluation)
            continue
        score = _app_score(span, evaluation, now)
        scores[score.key] = score  # the same evaluation twice in one batch: the last one wins
    if scores:
        scores_upsert(list(scores.values()))
        minutes_mark_dirty(project_id=project.pk, moments=[s.trace_start for s in scores.values() if s.trace_start])
    return waiting


def evaluation_events_ingest(*, project: Project, evaluations: Sequence[EvaluationRecord]) -> int:
    """Score each evaluation on its span, or keep it until that span arrives. Idempotent: a re-send replaces."""
    if not evaluations:
        return 0  # no transaction (nor savepoint, inside the span ingest's) for the common batch without any
    trace_ids = {e.trace_id for e in evaluations if e.span_id}
    response_ids = {e.response_id for e in evaluations if not e.span_id}
    with transaction.atomic():
        if trace_ids:
            traces_lock(project_id=project.pk, keys=trace_ids)
        if response_ids:
            traces_lock(project_id=project.pk, keys=_response_lock_names(response_ids))
        waiting = _evaluations_attach(project, evaluations)
        if waiting:
            PendingEvaluation.objects.bulk_create(
                [
                    PendingEvaluation(
                        project=project,
                        trace_id=e.trace_id,
                        span_id=e.span_id,
                        response_id="" if e.span_id else e.response_id,
                        name=e.name,
                        value=e.value,
                        label=e.label,
                        explanation=e.explanation,
                        error_type=e.error_type,
                    )
                    for e in waiting
                ],
                update_conflicts=True,
                unique_fields=["project", "trace_id", "span_id", "response_id", "name"],
                update_fields=["value", "label", "explanation", "error_type"],
            )
    return len(evaluations)


def pending_evaluations_apply(*, project: Project, records: Iterable[SpanRecord]) -> None:
    """Within the span ingest's transaction (trace locks held, see traces.services.on_spans_stored): score the kept
    evaluations of the stored spans."""
    keys = {(r.trace_id, r.span_id) for r in records}
    response_ids = {r.attributes[RESPONSE_ID] for r in records if isinstance(r.attributes.get(RESPONSE_ID), str)} - {""}
    if response_ids:
        traces_lock(project_id=project.pk, keys=_response_lock_names(response_ids))
    condition = Q(trace_id__in={t for t, _ in keys})
    if response_ids:
        condition |= Q(trace_id="", response_id__in=response_ids)
    pending = [
        p
        for p in PendingEvaluation.objects.filter(condition, project=project)
        if (p.trace_id, p.span_id) in keys or p.response_id in response_ids
    ]
    if not pending:
        return
    evaluations = [
        EvaluationRecord(p.trace_id, p.span_id, p.response_id, p.name, p.value, p.label, p.explanation, p.error_type)
        for p in pending
    ]
    waiting = {id(e) for e in _evaluations_attach(project, evaluations)}
    applied = [p.pk for p, e in zip(pending, evaluations, strict=True) if id(e) not in waiting]
    PendingEvaluation.objects.filter(pk__in=applied).delete()
