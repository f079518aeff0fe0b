"""Probe runs: ask every item of the dataset, record each answer as a trace of the service through the ingest
service (the native JSON path of ``POST /api/v1/traces``), score it, compare it with the previous run's.

Each item is independent: a target that times out or answers garbage gives that item an error (its trace has
status error and its probe score fails) and the run goes on. An item is done once its ProbeResult row exists;
the trace id and score keys are derived from (run, item), so a run resumed after a worker died re-does only the
unfinished items and never duplicates a trace or a score.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import httpx
from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Count, F, Q, Sum
from django.utils import timezone
from pydantic import ValidationError

from evals.datasets import input_text
from evals.evaluators.base import EvalResult, Evaluator, EvaluatorError
from evals.evaluators.registry import REGISTRY
from evals.jobs import job_run_fail
from evals.models import DatasetItem, Probe, ProbeResult, ProbeRun, RunStatus
from evals.probes import TARGETS
from evals.probes.base import ProbeItem, Secrets, Target, TargetAnswer, TargetError
from evals.probes.diff import same_answer
from evals.probes.schedule import next_run_after
from evals.selectors import effective_configs, eval_item, traces_with_spans
from evals.services import probe_item_scores_write, run_evaluator
from sre4ai_web.lib import outbound
from sre4ai_web.lib.queue import enqueue_on_commit
from traces.ingest import native
from traces.models import Trace
from traces.services import spans_store

logger = logging.getLogger(__name__)

PROBE_TAG = "probe"


def probe_run_create(
    *, probe: Probe, trigger: str = "manual", user: User | None = None, scheduled_for: datetime | None = None
) -> ProbeRun:
    return ProbeRun.objects.create(
        probe=probe,
        project_id=probe.project_id,
        trigger=trigger,
        created_by=user,
        scheduled_for=scheduled_for,
        total=probe.dataset.items.count(),
    )


@transaction.atomic
def probe_run_start(
    *, probe: Probe, trigger: str = "manual", user: User | None = None, scheduled_for: datetime | None = None
) -> ProbeRun:
    """A probe run asked by a worker, item by item."""
    run = probe_run_create(probe=probe, trigger=trigger, user=user, scheduled_for=scheduled_for)
    enqueue_on_commit("evals.tasks.probe_run", run.pk)
    return run


def probes_claim_due(*, now: datetime) -> list[ProbeRun]:
    """Beat: a run (queued) for every enabled probe whose next start has come. The slot is claimed by moving
    ``next_run_at`` forward with a conditional UPDATE, so of two beats (or workers) only one wins it; the unique
    (probe, scheduled_for) constraint backs that up."""
    runs = []
    for probe in Probe.objects.filter(enabled=True, next_run_at__lte=now).order_by("next_run_at"):
        slot = probe.next_run_at
        with transaction.atomic():
            won = Probe.objects.filter(pk=probe.pk, enabled=True, next_run_at=slot).update(
                next_run_at=next_run_after(probe, now)
            )
            if won:
                runs.append(probe_run_start(probe=probe, trigger="schedule", scheduled_for=slot))
    return runs


def probe_trace_id(run_id: int, item_id: int) -> str:
    return hashlib.sha256(f"sre4ai-probe:{run_id}:{item_id}".encode()).hexdigest()[:32]


def probe_run_execute(*, run_id: int, keep_going: Callable[[], bool] = lambda: True) -> ProbeRun:
    """Ask the items not answered yet, one by one, until the run is cancelled or ``keep_going()`` says no (the
    worker lost its claim on the run to another)."""
    run = ProbeRun.objects.select_related("probe__project").get(pk=run_id)
    if run.is_finished:
        return run
    ProbeRun.objects.filter(pk=run.pk, status=RunStatus.QUEUED).update(
        status=RunStatus.RUNNING, started_at=timezone.now()
    )
    probe = run.probe
    try:
        target = TARGETS[probe.target_kind].from_config(probe.target_config)
    except (KeyError, ValidationError) as exc:
        job_run_fail(model=ProbeRun, run_id=run.pk, error=f"The probe's target configuration is invalid: {exc}")
        return ProbeRun.objects.get(pk=run.pk)
    params = {c.evaluator.name: c.params for c in effective_configs(project=probe.project, service=probe.service)}
    evaluators = [(REGISTRY[name], params.get(name, {})) for name in probe.evaluators if name in REGISTRY]
    previous = _previous_results(run)
    done = set(run.results.values_list("item_id", flat=True))
    items = DatasetItem.objects.filter(dataset_id=probe.dataset_id).exclude(pk__in=done).order_by("pk")
    # The outbound client: no redirects (a probe reports what the endpoint itself answers), no internal addresses.
    with outbound.client() as client:
        for item in items.iterator():
            if not keep_going():
                return ProbeRun.objects.get(pk=run.pk)  # the worker that took the run over finishes it
            if ProbeRun.objects.filter(pk=run.pk, status=RunStatus.CANCELLED).exists():
                break
            _run_item(run, probe, target, evaluators, item, previous.get(item.pk), client)
    return _finish(run.pk)


def _previous_results(run: ProbeRun) -> dict[int, ProbeResult]:
    """The results of the latest earlier run of the probe that asked anything, by item."""
    earlier = ProbeRun.objects.filter(probe_id=run.probe_id, pk__lt=run.pk, done__gt=0).order_by("-pk").first()
    if earlier is None:
        return {}
    rows = earlier.results.exclude(item=None).only("item_id", "answer", "passed", "error")
    return {r.item_id: r for r in rows if r.item_id is not None}


def _run_item(
    run: ProbeRun,
    probe: Probe,
    target: Target[Any],
    evaluators: list[tuple[type[Evaluator[Any]], dict[str, Any]]],
    item: DatasetItem,
    previous: ProbeResult | None,
    client: httpx.Client,
) -> None:
    probe_item = ProbeItem(
        id=item.pk, input=item.input, expected=item.expected, context=tuple(item.context), tags=tuple(item.tags)
    )
    start = timezone.now()
    began = time.perf_counter()
    answer: TargetAnswer | None = None
    error = ""
    try:
        answer = target.call(probe_item, client, Secrets(probe.project_id))
    except TargetError as exc:
        error = str(exc)
    except Exception as exc:  # a bug on an odd response must cost one item, not the run
        logger.warning("probe target failed unexpectedly", exc_info=True)
        error = f"unexpected {type(exc).__name__}: {exc}"[:1000]
    latency_ms = (time.perf_counter() - began) * 1000
    trace = _record_trace(
        run, probe, target, probe_item, answer, error, start, start + timedelta(milliseconds=latency_ms)
    )

    results: list[tuple[type[Evaluator[Any]], EvalResult]] = []
    verdicts: dict[str, dict[str, Any]] = {}
    problems: list[str] = [f"the target failed: {error}"] if error else []
    if answer is not None:
        loaded = traces_with_spans(project_id=probe.project_id, trace_pks=[trace.pk]).get()
        eval_input = eval_item(loaded, list(loaded.spans.all()))
        for evaluator_cls, params in evaluators:
            try:
                result = run_evaluator(evaluator_cls.from_config(params), eval_input)
            except (EvaluatorError, ValueError) as exc:  # fail closed: an item that cannot be checked has not passed
                problems.append(f"{evaluator_cls.name} could not score: {exc}")
                verdicts[evaluator_cls.name] = {"passed": False, "value": None, "explanation": str(exc)[:500]}
                continue
            if result is None:
                continue
            results.append((evaluator_cls, result))
            verdicts[result.name or evaluator_cls.name] = {
                "passed": result.passed,
                "value": result.value,
                "explanation": result.explanation[:500],
            }
            if result.passed is False:
                problems.append(f"{result.name or evaluator_cls.name} failed: {result.explanation}")
    passed = not problems
    explanation = "; ".join(problems) if problems else "Every configured evaluator passed."
    probe_item_scores_write(trace=trace, results=results, passed=passed, explanation=explanation[:2000])

    answer_text = answer.answer if answer is not None else ""
    changed = bool(previous and not error and not previous.error and not same_answer(previous.answer, answer_text))
    ProbeResult.objects.update_or_create(
        run=run,
        item=item,
        defaults={
            "trace": trace,
            "question": input_text(item.input),
            "expected": item.expected,
            "answer": answer_text,
            "error": error,
            "passed": passed,
            "scores": verdicts,
            "latency_ms": latency_ms,
            "cost": trace.cost,
            "has_previous": previous is not None,
            "previous_answer": previous.answer if previous else "",
            "previous_passed": previous.passed if previous else None,
            "answer_changed": changed,
        },
    )
    flipped = previous is not None and previous.passed != passed
    ProbeRun.objects.filter(pk=run.pk).update(
        done=F("done") + 1,
        passed=F("passed") + int(passed),
        errors=F("errors") + int(bool(error)),
        changed=F("changed") + int(changed),
        flipped=F("flipped") + int(flipped),
    )


def _record_trace(
    run: ProbeRun,
    probe: Probe,
    target: Target[Any],
    item: ProbeItem,
    answer: TargetAnswer | None,
    error: str,
    start: datetime,
    end: datetime,
) -> Trace:
    """One span per item, through the same decoder and store as ``POST /api/v1/traces``."""
    attributes: dict[str, Any] = {
        "sre4ai.probe.id": probe.pk,
        "sre4ai.probe.name": probe.name,
        "sre4ai.probe.run_id": run.pk,
        "sre4ai.probe.item_id": item.id,
        "sre4ai.dataset.id": probe.dataset_id,
        "sre4ai.probe.target": target.name,
    }
    if item.expected:
        attributes["sre4ai.expected"] = item.expected  # where the reference evaluator finds the golden answer
    span: dict[str, Any] = {
        "name": f"probe {probe.name}"[:500],
        "kind": target.span_kind,
        "start_time": start.isoformat(),
        "end_time": end.isoformat(),
        "status": "error" if error else "ok",
        "status_message": error,
        "input": item.input,
        "attributes": attributes,
    }
    if answer is not None:
        span["output"] = answer.answer
        span["documents"] = [{"id": d.id, "content": d.content, "score": d.score} for d in answer.documents]
        span["model"], span["provider"] = answer.model[:200], answer.provider[:100]
        span["input_tokens"], span["output_tokens"] = answer.input_tokens, answer.output_tokens
        if target.span_kind == "llm":
            span["input"] = answer.request  # the messages as sent, system prompt and context included
        else:
            attributes["sre4ai.probe.request"] = json.dumps(answer.request, ensure_ascii=False)[:10_000]
    batch = {
        "traces": [
            {
                "trace_id": probe_trace_id(run.pk, item.id),
                "name": probe.name[:500],
                "service": probe.service,
                "environment": probe.environment,
                "tags": [PROBE_TAG],
                "spans": [span],
            }
        ]
    }
    records, errors, _ = native.decode_batch(batch)  # an IngestError here is a bug too
    if errors:  # the probe's own fields are validated when it is saved; this is a bug, not bad input
        raise ValueError(f"probe trace rejected by the ingest schema: {errors[0]['error']}")
    stored = spans_store(project=probe.project, records=records)
    return Trace.objects.get(pk=stored.trace_pks[0])


def _finish(run_id: int) -> ProbeRun:
    """Counters recomputed from the result rows (exact even after a resume), then the run is done."""
    # Aliases differ from the field names: an alias named "passed" would shadow the field inside the filters.
    totals = ProbeResult.objects.filter(run_id=run_id).aggregate(
        n_done=Count("pk"),
        n_passed=Count("pk", filter=Q(passed=True)),
        n_errors=Count("pk", filter=~Q(error="")),
        n_changed=Count("pk", filter=Q(answer_changed=True)),
        n_flipped=Count("pk", filter=Q(previous_passed__isnull=False) & ~Q(previous_passed=F("passed"))),
        latency=Sum("latency_ms"),
        total_cost=Sum("cost"),
    )
    ProbeRun.objects.filter(pk=run_id).update(
        done=totals["n_done"],
        passed=totals["n_passed"],
        errors=totals["n_errors"],
        changed=totals["n_changed"],
        flipped=totals["n_flipped"],
        latency_ms_total=totals["latency"] or 0.0,
        cost=totals["total_cost"],
    )
    ProbeRun.objects.filter(pk=run_id, status=RunStatus.RUNNING).update(
        status=RunStatus.DONE, finished_at=timezone.now()
    )
    return ProbeRun.objects.get(pk=run_id)
