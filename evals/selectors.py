"""Reads for scoring and for the score panels. Every query is scoped to one project."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import Count, Prefetch, QuerySet

from accounts.models import Project
from evals.evaluators.base import ContextDoc, EvalItem, Evaluator, ToolCall
from evals.evaluators.registry import REGISTRY
from evals.models import (
    Dataset,
    DatasetItem,
    DriftRun,
    EvalRun,
    EvaluatorConfig,
    Probe,
    ProbeResult,
    ProbeRun,
    Score,
    ScoreExportCounter,
    ScoreExportTarget,
)
from sre4ai_web.lib.sql import AnyOf
from traces.exchange import SpanFacts, answer_text, exchange_of
from traces.ingest.normalize import preview_text
from traces.models import RetrievedDocument, Span, Trace
from traces.selectors import SCORE_START_SLACK

# A trace's verdict on one score name: passed (every current row passed; None: no row gave a verdict) and the
# mean value (None: no value).
ScoreVerdict = tuple[bool | None, float | None]


def trace_verdicts(
    trace_pks: Sequence[int], names: Iterable[str] | None = None, *, starts: tuple[datetime, datetime] | None = None
) -> dict[int, dict[str, ScoreVerdict]]:
    """Per trace and score name (only ``names`` when given), the verdict over the trace's current scores
    (Score.objects.current): what rollups, SLIs, canary cohorts and the triage page count.

    ``starts``: a range that holds the start of every one of these traces, widened by ``SCORE_START_SLACK`` here
    (a score's trace start is the trace's as of scoring). The same verdicts; on PostgreSQL only those days'
    partitions are searched for the ids (without it, every day's index of the retention period, for each id)."""
    around = (starts[0] - SCORE_START_SLACK, starts[1] + SCORE_START_SLACK) if starts is not None else None
    scores = Score.objects.current(starts=around).filter(AnyOf("trace_id", trace_pks, estimated=False))
    if names is not None:
        scores = scores.filter(name__in=sorted(names))
    return verdicts_of(scores.values_list("trace_id", "name", "passed", "value"))


def verdict_of(judged: Sequence[ScoreVerdict]) -> ScoreVerdict:
    """The verdict over one trace's current rows of one score name: passed when every row that says passed or
    failed passed (None when none says), and the mean of the values (None without a value)."""
    passes = [p for p, _ in judged if p is not None]
    values = [v for _, v in judged if v is not None]
    return (all(passes) if passes else None, sum(values) / len(values) if values else None)


def verdicts_of(rows: Iterable[tuple[int, str, bool | None, float | None]]) -> dict[int, dict[str, ScoreVerdict]]:
    """``trace_verdicts`` of (trace id, name, passed, value) rows. Most (trace, name) pairs have one row, whose
    verdict is the row itself (``verdict_of`` of one row gives it back): only pairs with several rows are
    collected and reduced, which halves the time of a canary comparison's 30,000 rows."""
    verdicts: dict[int, dict[str, ScoreVerdict]] = {}
    several: dict[tuple[int, str], list[ScoreVerdict]] = {}
    for trace_id, name, passed, value in rows:
        by_name = verdicts.get(trace_id)
        if by_name is None:
            verdicts[trace_id] = {name: (passed, value)}
        elif name not in by_name:
            by_name[name] = (passed, value)
        else:
            several.setdefault((trace_id, name), [by_name[name]]).append((passed, value))
    for (trace_id, name), judged in several.items():
        verdicts[trace_id][name] = verdict_of(judged)
    return verdicts


# Where an app (or a probe) puts the expected answer of a golden item.
EXPECTED_KEYS = ("sre4ai.expected", "expected_output", "langfuse.observation.metadata.expected_output")


@dataclass(frozen=True)
class EffectiveConfig:
    evaluator: type[Evaluator[Any]]
    enabled: bool
    params: dict[str, Any]
    sampling_rate: float
    origin: str  # "default", "project" or "service": where the setting comes from

    def samples(self, trace_id: str) -> bool:
        """Deterministic per trace, so a rescore samples the same traces."""
        if self.sampling_rate >= 1.0:
            return True
        digest = hashlib.sha256(f"{self.evaluator.name}:{trace_id}".encode()).digest()
        return int.from_bytes(digest[:4], "big") / 2**32 < self.sampling_rate


def effective_configs(*, project: Project, service: str) -> list[EffectiveConfig]:
    """For each registered evaluator: the service's setting, else the project's, else the registry default."""
    rows = {
        (row.service, row.evaluator): row
        for row in EvaluatorConfig.objects.filter(project=project, service__in={"", service})
    }
    configs = []
    for name, evaluator in REGISTRY.items():
        row = rows.get((service, name)) if service else None
        origin = "service"
        if row is None:
            row, origin = rows.get(("", name)), "project"
        if row is None:
            configs.append(EffectiveConfig(evaluator, evaluator.default_enabled, {}, 1.0, "default"))
        else:
            configs.append(EffectiveConfig(evaluator, row.enabled, row.params, row.sampling_rate, origin))
    return configs


def _text(value: Any, role: str) -> str:
    return preview_text(value, role_preference=(role,)).strip()


def _result_text(value: Any) -> str:
    """Tool results as prose-like text ("price: 165."), so claims can be matched against their values."""
    if isinstance(value, str):
        parsed = value
        try:
            parsed = json.loads(value)
        except ValueError:
            return value
        if isinstance(parsed, str):
            return parsed
        value = parsed
    lines: list[str] = []

    def walk(node: Any, label: str) -> None:
        if isinstance(node, dict):
            for key, child in node.items():
                walk(child, str(key))
        elif isinstance(node, list):
            for child in node:
                walk(child, label)
        elif node is not None:
            lines.append(f"{label}: {node}." if label else f"{node}.")

    walk(value, "")
    return " ".join(lines)


def _facts(span: Span) -> SpanFacts:
    return SpanFacts(
        span_id=span.span_id,
        parent_span_id=span.parent_span_id,
        kind=span.kind,
        start_time=span.start_time,
        end_time=span.end_time,
        input_text=_text(span.input, "user"),
        output_text=answer_text(preview_text(span.output, ("assistant",))),
    )


def eval_item(trace: Trace, spans: list[Span]) -> EvalItem:
    """The exchange a trace represents: its question and answer (traces.exchange decides which spans hold them),
    what the answer relied on (every retrieved document and tool result) and how it was produced."""
    spans = sorted(spans, key=lambda s: (s.start_time, s.span_id))
    by_id = {s.span_id: s for s in spans}
    exchange = exchange_of([_facts(s) for s in spans]) if spans else None
    question_span = by_id[exchange.question.span_id] if exchange and exchange.question else None
    answer_span = by_id[exchange.answer.span_id] if exchange and exchange.answer else None
    llm_spans = [s for s in spans if s.kind == "llm"]
    question = _text(question_span.input, "user") if question_span else ""
    answer = _text(answer_span.output, "assistant") if answer_span else ""
    failed = next((s for s in spans if s.status == "error"), None)
    context: list[ContextDoc] = []
    tool_calls: list[ToolCall] = []
    expected = None
    for span in spans:
        for doc in span.documents.all():
            context.append(
                ContextDoc(id=doc.document_id or f"{span.span_id}#{doc.position}", text=doc.content, score=doc.score)
            )
        if span.kind == "tool":
            call = ToolCall(
                name=span.tool_name,
                arguments=span.tool_args,
                result=span.tool_result,
                span_id=span.span_id,
                failed=span.status == "error",
            )
            tool_calls.append(call)
            if span.tool_result is not None:
                # A tool's result is context the answer may rely on (the weather, the order status).
                context.append(ContextDoc(id=f"tool:{span.tool_name}", text=_result_text(span.tool_result)))
        for key in EXPECTED_KEYS:
            if expected is None and span.attributes.get(key) not in (None, ""):
                expected = _result_text(span.attributes[key])
    return EvalItem(
        input=question,
        output=answer,
        answer_span_id=answer_span.span_id if answer_span else "",
        error=(failed.status_message or f"span {failed.name!r} failed") if failed else "",
        context=tuple(context),
        expected=expected,
        tool_calls=tuple(tool_calls),
        llm_calls=len(llm_spans),
        cost=trace.cost,
        service=trace.service,
        metadata={
            "trace_id": trace.trace_id,
            "environment": trace.environment,
            "release": trace.release,
            "project_id": trace.project_id,  # outbound evaluators (the judge) read the project's secrets
        },
    )


def traces_with_spans(*, project_id: int, trace_pks: list[int]) -> QuerySet[Trace]:
    spans = Span.objects.order_by("start_time", "span_id").prefetch_related(
        Prefetch("documents", queryset=RetrievedDocument.objects.order_by("position"))
    )
    # In the order they were stored, whatever index the database reads them by: a job's traces are ticked off
    # one by one (evals.tasks.judge_traces), and a retry asks about the rest in the same order.
    return (
        Trace.objects.filter(project_id=project_id, pk__in=trace_pks)
        .order_by("pk")
        .prefetch_related(Prefetch("spans", queryset=spans))
    )


def scores_for_trace(*, trace: Trace) -> list[Score]:
    """The current scores of a trace (Score.objects.current), by name."""
    return list(
        Score.objects.current().filter(trace=trace).select_related("span", "author").order_by("name", "-updated_at")
    )


def not_applicable_for_trace(*, project: Project, trace: Trace, scores: list[Score]) -> list[tuple[str, str]]:
    """(evaluator, reason) for each evaluator enabled on the trace's service that has no score on it because an input
    it requires is missing: the trace page shows them as n/a. ``trace`` must have its spans and documents loaded."""
    scored = {s.evaluator for s in scores}
    item = eval_item(trace, list(trace.spans.all()))
    out = []
    for config in effective_configs(project=project, service=trace.service):
        if config.enabled and config.evaluator.name not in scored:
            reason = config.evaluator.not_applicable(item)
            if reason is not None:
                out.append((config.evaluator.name, reason))
    return out


def eval_runs_for_project(*, project: Project, limit: int = 20) -> list[EvalRun]:
    return list(EvalRun.objects.filter(project=project).select_related("created_by")[:limit])


def latest_drift_runs(*, project: Project) -> dict[str, DriftRun]:
    """The newest drift run of each service, from the last 500 runs (one query; results are not loaded)."""
    latest: dict[str, DriftRun] = {}
    for run in DriftRun.objects.filter(project=project).order_by("-created_at").defer("results")[:500]:
        latest.setdefault(run.service, run)
    return latest


# --- golden datasets and probes ---------------------------------------------------------------------------


def datasets_for_project(*, project: Project) -> list[Dataset]:
    return list(Dataset.objects.filter(project=project).annotate(item_count=Count("items")).order_by("name"))


def dataset_items(*, dataset: Dataset, limit: int = 500) -> list[DatasetItem]:
    return list(dataset.items.order_by("pk")[:limit])


def probes_for_project(*, project: Project) -> list[tuple[Probe, ProbeRun | None]]:
    """Each probe with its newest run (two queries)."""
    probes = list(Probe.objects.filter(project=project).select_related("dataset").order_by("name"))
    latest: dict[int, ProbeRun] = {}
    newest = ProbeRun.objects.filter(probe__in=probes).order_by("probe_id", "-pk").distinct("probe_id")
    if connection.vendor != "postgresql":  # DISTINCT ON is PostgreSQL's; SQLite (make run) walks recent runs
        newest = ProbeRun.objects.filter(probe__in=probes).order_by("-pk")[:1000]
    for run in newest:
        latest.setdefault(run.probe_id, run)
    return [(probe, latest.get(probe.pk)) for probe in probes]


def probe_history(*, probe: Probe, limit: int = 60) -> list[ProbeRun]:
    """The newest runs, oldest first (the chart's order)."""
    return list(reversed(ProbeRun.objects.filter(probe=probe).select_related("created_by").order_by("-pk")[:limit]))


def probe_run_results(*, run: ProbeRun) -> list[ProbeResult]:
    """Flipped and changed items first: they are what the page is opened for; then failures, then the rest."""
    results = list(ProbeResult.objects.filter(run=run).select_related("trace").order_by("pk"))
    return sorted(results, key=lambda r: (not r.flipped, not r.answer_changed, r.passed, r.pk))


@dataclass(frozen=True)
class ScoreExportStatus:
    """What the Settings section shows about the export of the project's scores."""

    target: ScoreExportTarget | None  # the project's own setting (None: the server's default applies)
    default_endpoint: str  # the server's default ("" when it has none)
    default_protocol: str
    sent: int
    failed: int


def score_export_status(*, project: Project) -> ScoreExportStatus:
    counter = ScoreExportCounter.objects.filter(project=project).values_list("sent", "failed").first() or (0, 0)
    return ScoreExportStatus(
        target=ScoreExportTarget.objects.filter(project=project).first(),
        default_endpoint=settings.SRE4AI_OTEL_EXPORT_ENDPOINT,
        default_protocol=settings.SRE4AI_OTEL_EXPORT_PROTOCOL,
        sent=counter[0],
        failed=counter[1],
    )
