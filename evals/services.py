"""Writes for scores, evaluator settings and rescoring jobs.

Scoring is idempotent: every score is upserted on a deterministic key (trace, span, evaluator, evaluator
version, name), so a task that runs twice (at-least-once delivery, a worker killed mid-task) replaces its
rows instead of duplicating them. The Celery path and ``manage.py score_file`` share ``run_evaluator``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.contrib.auth.models import User
from django.db import connection, transaction
from django.db.models import QuerySet
from django.utils import timezone

from accounts.models import Project
from accounts.services import Actor, audit_record
from evals.datasets import ItemData, validate_item
from evals.evaluators.base import EvalItem, EvalResult, Evaluator, EvaluatorError
from evals.evaluators.registry import REGISTRY
from evals.models import (
    Dataset,
    DatasetItem,
    DriftRun,
    EvalRun,
    EvaluatorConfig,
    Probe,
    ProbeRun,
    RunStatus,
    Score,
    ScoreSource,
    score_value_in_range,
)
from evals.otel_export import scores_export_after_commit
from evals.probes.schedule import next_run_after
from evals.selectors import EffectiveConfig, effective_configs, eval_item, traces_with_spans
from sre4ai_web.celery import app as celery_app
from sre4ai_web.lib.bounds import SCORE_VALUE_LIMIT
from sre4ai_web.lib.claims import MAX_ATTEMPTS, given_up, lost, requeued, waiting_messages
from sre4ai_web.lib.partitions import is_partitioned
from sre4ai_web.lib.queue import enqueue_on_commit
from sre4ai_web.lib.sql import AnyOf
from traces.models import Span, Trace
from traces.selectors import SCORE_START_SLACK
from traces.services import minutes_mark_dirty, traces_lock

logger = logging.getLogger(__name__)

SCORE_UPDATE_FIELDS = [
    "trace",
    "span",
    "service",
    "trace_start",
    "name",
    "value",
    "label",
    "passed",
    "explanation",
    "evidence",
    "evaluator",
    "evaluator_version",
    "source",
    "author",
    "comment",
    "cost",
    "updated_at",
]
RESCORE_CHUNK = 200


def score_key_evaluator(trace_pk: int, span_id: str, evaluator: str, version: int, name: str) -> str:
    return f"eval:{trace_pk}:{span_id}:{evaluator}:{version}:{name}"


def score_key_human(trace_pk: int, span_id: str, user_id: int, name: str) -> str:
    return f"human:{trace_pk}:{span_id}:{user_id}:{name}"


def score_key_api(external_id: str) -> str:
    return f"api:{external_id}"


def score_key_app(trace_pk: int, span_id: str, name: str) -> str:
    """An app's gen_ai.evaluation.result: one score per span and evaluation name, so a re-send replaces it."""
    return f"app:{trace_pk}:{span_id}:{name}"


def run_evaluator(evaluator: Evaluator[Any], item: EvalItem) -> EvalResult | None:
    """The one place an evaluator is invoked, for traces and for files alike: None when it does not apply."""
    if evaluator.not_applicable(item) is not None:
        return None
    return evaluator.evaluate(item)


@dataclass
class ScoringOutcome:
    scores: int = 0
    errors: list[str] = field(default_factory=list)
    retryable: list[str] = field(default_factory=list)


def _score_row(trace: Trace, spans_by_id: dict[str, Span], config: EffectiveConfig, result: EvalResult) -> Score:
    evaluator = config.evaluator
    name = result.name or evaluator.name
    span = spans_by_id.get(result.span_id) if result.span_id else None
    return Score(
        project_id=trace.project_id,
        trace=trace,
        span=span,
        key=score_key_evaluator(trace.pk, span.span_id if span else "", evaluator.name, evaluator.version, name),
        service=trace.service,
        trace_start=trace.start_time,
        name=name,
        value=result.value,
        label=result.label[:100],
        passed=result.passed,
        explanation=result.explanation,
        evidence=result.evidence,
        evaluator=evaluator.name,
        evaluator_version=evaluator.version,
        source=ScoreSource.EVALUATOR,
        cost=result.cost,
        updated_at=timezone.now(),
    )


def scores_upsert(scores: list[Score]) -> None:
    """Insert or replace scores by (project, key); the caller marks their minutes dirty in the same transaction.

    Partitioned scores (PostgreSQL, sre4ai_web.lib.partitions) are unique by (project, key, trace_start): a score
    written when its trace started elsewhere (an earlier span arrived since) is removed first, so a key still has
    one score, whoever writes it and however many write at once (they take turns per trace, below)."""
    if not scores:
        return
    if not is_partitioned(Score._meta.db_table):
        Score.objects.bulk_create(
            scores, update_conflicts=True, unique_fields=["project", "key"], update_fields=SCORE_UPDATE_FIELDS
        )
        _supersede_older_versions(scores)
        return
    # Two writers of one trace's scores at once (two jobs scoring it: a late span queued the second while the
    # first ran, on another worker) would each delete only what the other had committed, then both insert when an
    # earlier span moved the trace's start between their reads: one at a time per trace, each sees the other's rows.
    for project_id in sorted({x.project_id for x in scores}):
        traces_lock(project_id=project_id, keys={f"scores:{x.trace_id}" for x in scores if x.project_id == project_id})
    with connection.cursor() as cursor:
        cursor.execute(
            f"DELETE FROM {Score._meta.db_table} s USING unnest(%s::bigint[], %s::text[], %s::timestamptz[]) "  # noqa: S608
            "AS u(project_id, key, trace_start) "
            "WHERE s.project_id = u.project_id AND s.key = u.key AND s.trace_start <> u.trace_start",
            [[x.project_id for x in scores], [x.key for x in scores], [x.trace_start for x in scores]],
        )
    Score.objects.bulk_create(
        scores,
        update_conflicts=True,
        unique_fields=["project", "key", "trace_start"],
        update_fields=SCORE_UPDATE_FIELDS,
    )
    _supersede_older_versions(scores)


def _supersede_older_versions(scores: list[Score]) -> None:
    """Mark the evaluator rows of these scores' traces and names that a newer version now replaces, whichever
    arrived first (a late row of an old version is marked as it lands). Only evaluator rows have versions; the
    trace's writers are one at a time (scores_upsert), so no newer row is written meanwhile."""
    judged = [s for s in scores if s.source == ScoreSource.EVALUATOR]
    if not judged:
        return
    rows = Score.objects.filter(AnyOf("trace_id", {s.trace_id for s in judged}), name__in={s.name for s in judged})
    starts = [s.trace_start for s in judged if s.trace_start is not None]
    around = (min(starts) - SCORE_START_SLACK, max(starts) + SCORE_START_SLACK) if len(starts) == len(judged) else None
    rows.superseded_now(starts=around).update(superseded=True)


def traces_score(
    *,
    project_id: int,
    trace_pks: list[int],
    queue: str = "scoring",
    only: Iterable[str] | None = None,
    on_trace_done: Callable[[int], None] | None = None,
) -> ScoringOutcome:
    """Run the evaluators enabled for each trace's service (those served by ``queue``) and upsert their scores.

    A retryable evaluator error is reported in ``outcome.retryable`` after every other score is written, so a
    retry of the task redoes only idempotent work. ``on_trace_done(trace_pk)`` runs in the transaction that
    writes a trace's scores when none of its evaluators has to be retried (the judge ticks it off its job).
    """
    wanted = set(only) if only is not None else None
    outcome = ScoringOutcome()
    project = Project.objects.filter(pk=project_id).first()
    if project is None:  # deleted since the task was queued
        return outcome
    config_cache: dict[str, list[EffectiveConfig]] = {}
    written: list[Score] = []
    for trace in traces_with_spans(project_id=project_id, trace_pks=trace_pks):
        if trace.service not in config_cache:
            config_cache[trace.service] = effective_configs(project=project, service=trace.service)
        spans = list(trace.spans.all())
        item = eval_item(trace, spans)
        spans_by_id = {s.span_id: s for s in spans}
        rows: list[Score] = []
        retry = len(outcome.retryable)
        for config in config_cache[trace.service]:
            evaluator_cls = config.evaluator
            if evaluator_cls.queue != queue or not config.enabled or not config.samples(trace.trace_id):
                continue
            if wanted is not None and evaluator_cls.name not in wanted:
                continue
            try:
                evaluator = evaluator_cls.from_config(config.params)
                result = run_evaluator(evaluator, item)
            except EvaluatorError as exc:
                message = f"{evaluator_cls.name} on trace {trace.trace_id}: {exc}"
                (outcome.retryable if exc.retryable else outcome.errors).append(message)
                continue
            except ValueError as exc:  # invalid stored params (pydantic) or a bug on odd input
                outcome.errors.append(f"{evaluator_cls.name} on trace {trace.trace_id}: {exc}")
                logger.warning("evaluator failed", exc_info=True)
                continue
            if result is not None and result.value is not None and not score_value_in_range(result.value):
                outcome.errors.append(
                    f"{evaluator_cls.name} on trace {trace.trace_id}: value {result.value} is "
                    f"not finite or beyond ±{SCORE_VALUE_LIMIT:g}"
                )
            elif result is not None:
                rows.append(_score_row(trace, spans_by_id, config, result))
        with transaction.atomic():
            scores_upsert(rows)
            if rows:
                minutes_mark_dirty(project_id=trace.project_id, moments=[trace.start_time])
            if on_trace_done is not None and len(outcome.retryable) == retry:
                on_trace_done(trace.pk)
        written += rows
        outcome.scores += len(rows)
    scores_export_after_commit(written)  # one batch for the traces of this call (each committed above)
    return outcome


def queues_needed(*, project_id: int, trace_pks: list[int]) -> set[str]:
    """The evaluator queues that have work for these traces (the judge queue only when a judge is enabled)."""
    project = Project.objects.filter(pk=project_id).first()
    if project is None:
        return set()
    services = set(Trace.objects.filter(project=project, pk__in=trace_pks).values_list("service", flat=True))
    return {
        c.evaluator.queue
        for service in services
        for c in effective_configs(project=project, service=service)
        if c.enabled
    }


# --- human and API scores ------------------------------------------------------------------------


@dataclass(frozen=True)
class ExternalScore:
    trace: Trace
    span: Span | None
    name: str
    value: float | None
    label: str
    passed: bool | None
    comment: str
    external_id: str
    source: str = ScoreSource.API


def _external_row(score: ExternalScore, author: User | None) -> Score:
    span_id = score.span.span_id if score.span else ""
    if score.source == ScoreSource.HUMAN and author is not None:
        key = score_key_human(score.trace.pk, span_id, author.pk, score.name)
    else:
        key = score_key_api(score.external_id) if score.external_id else f"api:{score.trace.pk}:{span_id}:{score.name}"
    return Score(
        project_id=score.trace.project_id,
        trace=score.trace,
        span=score.span,
        key=key,
        service=score.trace.service,
        trace_start=score.trace.start_time,
        name=score.name,
        value=score.value,
        label=score.label,
        passed=score.passed,
        explanation=score.comment,
        comment=score.comment,
        evidence={},
        source=score.source,
        author=author,
        updated_at=timezone.now(),
    )


def score_record(*, score: ExternalScore, author: User | None = None) -> Score:
    """Attach a score from an app (API) or a person (annotation); idempotent by its id or author."""
    row = _external_row(score, author)
    with transaction.atomic():
        scores_upsert([row])
        minutes_mark_dirty(project_id=score.trace.project_id, moments=[score.trace.start_time])
    return Score.objects.get(project_id=score.trace.project_id, key=row.key)


def scores_record(*, scores: Sequence[ExternalScore]) -> None:
    """Attach many app scores of one project at once (one upsert, one write of dirty minutes), as score_record
    does each."""
    if not scores:
        return
    with transaction.atomic():
        scores_upsert([_external_row(score, None) for score in scores])
        minutes_mark_dirty(project_id=scores[0].trace.project_id, moments=[s.trace.start_time for s in scores])


# --- evaluator settings --------------------------------------------------------------------------


@transaction.atomic
def evaluator_config_set(
    *,
    project: Project,
    service: str,
    evaluator: str,
    enabled: bool,
    params: dict[str, Any],
    sampling_rate: float,
    user: User | None,
) -> EvaluatorConfig:
    """Validate params against the evaluator's model (raises pydantic.ValidationError) and save."""
    REGISTRY[evaluator].Params.model_validate(params)
    config, _ = EvaluatorConfig.objects.update_or_create(
        project=project,
        service=service,
        evaluator=evaluator,
        defaults={"enabled": enabled, "params": params, "sampling_rate": sampling_rate, "updated_by": user},
    )
    audit_record(
        project=project,
        actor=user,
        action="evaluator.set",
        target=f"{evaluator} @ {service or 'project'}",
        details={"enabled": enabled, "params": params, "sampling_rate": sampling_rate},
    )
    return config


@transaction.atomic
def evaluator_config_reset(*, project: Project, service: str, evaluator: str, actor: Actor = None) -> None:
    """Back to inheriting (the project's setting for a service; the registry default for the project)."""
    if EvaluatorConfig.objects.filter(project=project, service=service, evaluator=evaluator).delete()[0]:
        audit_record(
            project=project, actor=actor, action="evaluator.reset", target=f"{evaluator} @ {service or 'project'}"
        )


# --- rescoring jobs --------------------------------------------------------------------------------


def _run_traces(run: EvalRun) -> QuerySet[Trace]:
    traces = Trace.objects.filter(project_id=run.project_id, start_time__gte=run.since, start_time__lte=run.until)
    return traces.filter(service=run.service) if run.service else traces


def eval_run_create(
    *, project: Project, service: str, since: datetime, until: datetime, evaluators: list[str], user: User | None
) -> EvalRun:
    run = EvalRun(project=project, service=service, since=since, until=until, evaluators=evaluators, created_by=user)
    run.total = _run_traces(run).count()
    run.save()
    return run


@transaction.atomic
def eval_run_start(
    *, project: Project, service: str, since: datetime, until: datetime, evaluators: list[str], user: User | None
) -> EvalRun:
    """A rescoring job run by the workers, a chunk per task (``manage.py rescore`` drives one itself instead)."""
    run = eval_run_create(project=project, service=service, since=since, until=until, evaluators=evaluators, user=user)
    enqueue_on_commit("evals.tasks.rescore_step", run.pk)
    return run


def eval_run_step(*, run_id: int, chunk: int = RESCORE_CHUNK) -> EvalRun:
    """Score the next chunk of a run. Safe to repeat: the cursor only moves after the chunk's scores commit."""
    run = EvalRun.objects.get(pk=run_id)
    if run.is_finished:
        return run
    if run.status == RunStatus.QUEUED:
        EvalRun.objects.filter(pk=run.pk, status=RunStatus.QUEUED).update(
            status=RunStatus.RUNNING, started_at=timezone.now()
        )
        run.refresh_from_db()
    pks = list(_run_traces(run).filter(pk__gt=run.cursor).order_by("pk").values_list("pk", flat=True)[:chunk])
    if not pks:
        EvalRun.objects.filter(pk=run.pk, status=RunStatus.RUNNING).update(
            status=RunStatus.DONE, finished_at=timezone.now()
        )
        run.refresh_from_db()
        return run
    only = run.evaluators or None
    failed = 0
    for queue in sorted({REGISTRY[name].queue for name in only} if only else {"scoring", "judge"}):
        outcome = traces_score(project_id=run.project_id, trace_pks=pks, queue=queue, only=only)
        failed += len(outcome.errors) + len(outcome.retryable)
        if outcome.retryable:
            raise EvaluatorError("; ".join(outcome.retryable[:3]), retryable=True)
    # Only a running run advances: a cancel that landed meanwhile wins.
    EvalRun.objects.filter(pk=run.pk, status=RunStatus.RUNNING).update(
        cursor=pks[-1], done=run.done + len(pks), failed=run.failed + failed
    )
    run.refresh_from_db()
    return run


def eval_run_drive(*, run: EvalRun, on_progress: Callable[[EvalRun], None] | None = None) -> EvalRun:
    """Run a job to the end in this process (``manage.py rescore``), reporting progress after each chunk."""
    while not run.is_finished:
        run = eval_run_step(run_id=run.pk)
        if on_progress is not None:
            on_progress(run)
    return run


# --- recovery of runs -----------------------------------------------------------------------------


# Each kind of run: its model, its task and that task's queue (sre4ai_web/celery.py routes).
RUN_TASKS = (
    (ProbeRun, "evals.tasks.probe_run", "probes"),
    (EvalRun, "evals.tasks.rescore_step", "backfill"),
    (DriftRun, "evals.tasks.drift_run", "backfill"),
)


def runs_requeue(*, limit: int = 100) -> int:
    """Beat: fail the unfinished runs out of attempts; send again the task of each one whose worker died or whose
    message is missing (``claims.lost``), so it resumes where it stopped. Returns the number sent."""
    sent = 0
    for model, task_name, queue in RUN_TASKS:
        open_runs = model.objects.filter(status__in=[RunStatus.QUEUED, RunStatus.RUNNING])
        given_up(open_runs).update(
            status=RunStatus.FAILED,
            finished_at=timezone.now(),
            error=f"Given up after {MAX_ATTEMPTS} attempts in a row that ended badly (a worker stopped or failed).",
        )
        waiting = waiting_messages(queue)
        with transaction.atomic():
            runs = lost(open_runs, waiting=waiting, limit=limit)
            for run in runs:
                celery_app.send_task(task_name, args=[run.pk])
            requeued(model.objects.filter(pk__in=[run.pk for run in runs]))
        sent += len(runs)
    return sent


# --- golden datasets -------------------------------------------------------------------------------------


def dataset_create(*, project: Project, name: str, description: str = "", user: User | None) -> Dataset:
    return Dataset.objects.create(project=project, name=name, description=description, created_by=user)


@transaction.atomic
def dataset_items_add(*, dataset: Dataset, items: list[ItemData], source_trace_id: str = "") -> list[DatasetItem]:
    """Every item or none: an import validated row by row is written in one transaction."""
    rows = [
        DatasetItem(
            dataset=dataset,
            input=item.input,
            expected=item.expected,
            context=list(item.context),
            tags=list(item.tags),
            source_trace_id=source_trace_id,
        )
        for item in items
    ]
    return DatasetItem.objects.bulk_create(rows)


def dataset_item_delete(*, item: DatasetItem) -> None:
    item.delete()


# --- probes ----------------------------------------------------------------------------------------------


class InUseError(Exception):
    """A delete refused because other rows still need the row (a dataset that probes ask)."""


@transaction.atomic
def dataset_delete(*, dataset: Dataset, actor: Actor = None) -> None:
    names = list(dataset.probes.values_list("name", flat=True))
    if names:
        raise InUseError(
            f"Probes still ask this dataset ({', '.join(names)}): delete them or point them elsewhere first."
        )
    audit_record(
        project=dataset.project, actor=actor, action="dataset.delete", target=f"{dataset.name} (#{dataset.pk})"
    )
    dataset.delete()


@transaction.atomic
def probe_delete(*, probe: Probe, actor: Actor = None) -> None:
    """The probe and its run history; its traces and scores stay (they are the service's history)."""
    audit_record(project=probe.project, actor=actor, action="probe.delete", target=f"{probe.name} (#{probe.pk})")
    probe.delete()


def probe_save(*, probe: Probe, user: User | None = None) -> Probe:
    """Create or update a probe; its next scheduled start follows from the schedule as it is now."""
    if probe.pk is None:
        probe.created_by = user
    probe.next_run_at = next_run_after(probe, timezone.now()) if probe.enabled else None
    probe.save()
    return probe


def probe_item_scores_write(
    *, trace: Trace, results: list[tuple[type[Evaluator[Any]], EvalResult]], passed: bool, explanation: str
) -> None:
    """The evaluator scores of a probe item's trace and its verdict, the "probe" score an SLO counts:
    passed when every configured evaluator passed and the target answered. Upserted, so a resumed run
    rewrites rather than duplicates."""
    spans_by_id = {s.span_id: s for s in trace.spans.all()}
    rows = [
        _score_row(trace, spans_by_id, EffectiveConfig(cls, True, {}, 1.0, "probe"), result) for cls, result in results
    ]
    rows.append(
        Score(
            project_id=trace.project_id,
            trace=trace,
            key=f"probe:{trace.pk}",
            service=trace.service,
            trace_start=trace.start_time,
            name="probe",
            value=1.0 if passed else 0.0,
            label="pass" if passed else "fail",
            passed=passed,
            explanation=explanation,
            evidence={},
            source=ScoreSource.PROBE,
            updated_at=timezone.now(),
        )
    )
    with transaction.atomic():
        scores_upsert(rows)
        minutes_mark_dirty(project_id=trace.project_id, moments=[trace.start_time])
        scores_export_after_commit(rows)


# --- bulk actions of the trace list on selected traces -------------------------------------------------------


@dataclass
class BulkResult:
    done: int
    skipped: list[str]  # trace ids left out, each with the reason


def traces_add_to_dataset(*, dataset: Dataset, traces: list[Trace]) -> BulkResult:
    """Each trace's question as an item, its answer as the expected answer and its retrieved documents as context,
    as the trace page's "add to dataset" proposes them. Traces without a question are skipped; the others are
    added in one transaction."""
    items = []
    skipped = []
    loaded = traces_with_spans(project_id=dataset.project_id, trace_pks=[t.pk for t in traces]).order_by("start_time")
    for trace in loaded:
        found = eval_item(trace, list(trace.spans.all()))
        context = [d.text for d in found.context if not d.id.startswith("tool:")]
        try:
            item = validate_item({"input": found.input, "expected": found.output, "context": context})
        except ValueError as exc:
            skipped.append(f"{trace.trace_id}: {exc}")
            continue
        items.append((trace.trace_id, item))
    with transaction.atomic():
        for trace_id, item in items:
            dataset_items_add(dataset=dataset, items=[item], source_trace_id=trace_id)
    return BulkResult(done=len(items), skipped=skipped)


def traces_annotate(*, traces: list[Trace], verdict: str, label: str, comment: str, author: User) -> BulkResult:
    """The same human judgement on each trace (as the trace page's annotation: a "human_feedback" score)."""
    with transaction.atomic():
        for trace in traces:
            score_record(
                score=ExternalScore(
                    trace=trace,
                    span=None,
                    name="human_feedback",
                    value=1.0 if verdict == "up" else 0.0 if verdict == "down" else None,
                    label=label,
                    passed=True if verdict == "up" else False if verdict == "down" else None,
                    comment=comment,
                    external_id="",
                    source="human",
                ),
                author=author,
            )
    return BulkResult(done=len(traces), skipped=[])
