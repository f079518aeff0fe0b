"""Rollup writes: mark changed minutes, recompute their buckets from raw rows, roll minutes up into hours and
hours into days.

Writers of traces and scores call ``traces.services.minutes_mark_dirty`` inside their transaction (late spans and
late scores included). The beat task claims dirty minutes with SKIP LOCKED and recomputes each one entirely from the
raw traces and scores that started in it, so a recompute is idempotent and order never matters.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Protocol

from django.db import connection, transaction
from django.db.models import Count, Min, Q, Sum
from django.utils import timezone

from accounts.models import Project
from accounts.retention import raw_kept_since
from evals.models import score_value_in_range
from evals.selectors import ScoreVerdict, trace_verdicts
from evals.signals import safety_flagged
from rollups.histogram import bucket_of
from rollups.models import Granularity, ScoreRollup, TrafficRollup
from sre4ai_web.lib.bounds import MAX_COST, MAX_TOKENS_SUM
from sre4ai_web.lib.timebuckets import DAY, HOUR, MINUTE, floor_day, floor_hour, floor_minute
from traces.models import DirtyBucket, Trace
from traces.selectors import TRACE_ROW_FIELDS, TraceRow, trace_prompts

logger = logging.getLogger(__name__)
# Sums saturate at what their columns hold (sre4ai_web.lib.bounds) instead of failing the write: inputs are bounded
# per span, but a minute or an hour can add up any number of them.
CLAIM_BATCH = 500
TRACE_CHUNK = 5000


class MinutesRecomputedHook(Protocol):
    def __call__(
        self,
        *,
        project_id: int,
        minutes: Sequence[datetime],
        traces: Sequence[TraceRow],
        verdicts: Mapping[int, Mapping[str, ScoreVerdict]],
    ) -> None: ...


# Derived data of the layers above, computed from the same minutes so raw rows are read once: slos registers its
# SLI counts here (SlosConfig.ready). Each hook runs in the recompute's transaction; one that raises keeps the
# project's minutes dirty.
MINUTES_RECOMPUTED_HOOKS: list[MinutesRecomputedHook] = []


def on_minutes_recomputed(hook: MinutesRecomputedHook) -> MinutesRecomputedHook:
    if hook not in MINUTES_RECOMPUTED_HOOKS:
        MINUTES_RECOMPUTED_HOOKS.append(hook)
    return hook


@dataclass
class _Traffic:
    traces: int = 0
    errors: int = 0
    hist: dict[str, int] = field(default_factory=dict)
    latency_sum: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    cost: Decimal = Decimal(0)
    unpriced: int = 0
    safety_judged: int = 0
    safety_flagged: int = 0

    def row(
        self,
        project_id: int,
        service: str,
        environment: str,
        granularity: str,
        bucket: datetime,
        dimension: str,
        value: str,
    ) -> TrafficRollup:
        return TrafficRollup(
            project_id=project_id,
            service=service,
            environment=environment,
            granularity=granularity,
            bucket=bucket,
            dimension=dimension,
            value=value,
            traces=self.traces,
            errors=self.errors,
            latency_hist=self.hist,
            latency_sum_ms=self.latency_sum,
            input_tokens=min(self.input_tokens, MAX_TOKENS_SUM),
            output_tokens=min(self.output_tokens, MAX_TOKENS_SUM),
            cost=min(self.cost, MAX_COST),
            unpriced=self.unpriced,
            safety_judged=self.safety_judged,
            safety_flagged=self.safety_flagged,
        )

    def add(self, trace: TraceRow, flagged: bool | None) -> None:
        self.traces += 1
        self.errors += trace["status"] == "error"
        key = str(bucket_of(trace["duration_ms"]))
        self.hist[key] = self.hist.get(key, 0) + 1
        self.latency_sum += trace["duration_ms"]
        self.input_tokens += trace["input_tokens"]
        self.output_tokens += trace["output_tokens"]
        self.cost += trace["cost"] or Decimal(0)
        self.unpriced += trace["has_unpriced"]
        self.safety_judged += flagged is not None
        self.safety_flagged += bool(flagged)


@dataclass
class _Judged:
    good: int = 0
    total: int = 0
    value_sum: float = 0.0
    value_count: int = 0


def _slices(trace: TraceRow, prompts: set[str]) -> list[tuple[str, str]]:
    """The slices a trace belongs to: all traces, each model it used, its release, prompt versions and route."""
    slices = [("", "")]
    slices += [("model", m[:200]) for m in trace["model_names"]]
    if trace["release"]:
        slices.append(("release", trace["release"][:200]))
    slices += [("prompt", p[:200]) for p in sorted(prompts)]
    if trace["name"]:
        slices.append(("route", trace["name"][:200]))
    return slices


@transaction.atomic
def minutes_recompute(*, project_id: int, minutes: Iterable[datetime]) -> int:
    """Recompute the minute buckets (all slices) and the hour and day buckets that contain them. Returns rows
    written.

    Minutes whose raw rows have expired, or are about to (accounts.retention), are left as they are: recounted
    from what is left of their traces they would lose counts that the aggregates are kept to preserve."""
    project = Project.objects.only("raw_retention_days").get(pk=project_id)
    kept_since = raw_kept_since(project, timezone.now())
    wanted = sorted({m for m in map(floor_minute, minutes) if m >= kept_since})
    if not wanted:
        return 0
    wanted_set = set(wanted)
    traffic: dict[tuple[str, str, datetime, str, str], _Traffic] = defaultdict(_Traffic)
    judged: dict[tuple[str, str, datetime, str, str, str], _Judged] = defaultdict(_Judged)
    all_verdicts: dict[int, dict[str, ScoreVerdict]] = {}
    rows = Trace.objects.filter(project_id=project_id, start_time__gte=wanted[0], start_time__lt=wanted[-1] + MINUTE)
    traces: list[TraceRow] = [t for t in rows.values(*TRACE_ROW_FIELDS) if floor_minute(t["start_time"]) in wanted_set]
    for start in range(0, len(traces), TRACE_CHUNK):
        chunk = traces[start : start + TRACE_CHUNK]
        pks = [t["pk"] for t in chunk]
        prompts, verdicts = trace_prompts(pks), trace_verdicts(pks)
        all_verdicts.update(verdicts)
        for trace in chunk:
            minute = floor_minute(trace["start_time"])
            flagged = safety_flagged(verdicts.get(trace["pk"], {}))
            for dim, value in _slices(trace, prompts.get(trace["pk"], set())):
                key = (trace["service"], trace["environment"], minute, dim, value)
                traffic[key].add(trace, flagged)
                for name, (passed, score_value) in verdicts.get(trace["pk"], {}).items():
                    cell = judged[(*key, name)]
                    if passed is not None:
                        cell.total += 1
                        cell.good += passed
                    if score_value is not None and score_value_in_range(score_value):
                        cell.value_sum += score_value
                        cell.value_count += 1
    minute_filter = Q(project_id=project_id, granularity=Granularity.MINUTE, bucket__in=wanted)
    TrafficRollup.objects.filter(minute_filter).delete()
    ScoreRollup.objects.filter(minute_filter).delete()
    TrafficRollup.objects.bulk_create(
        [t.row(project_id, s, e, Granularity.MINUTE, b, d, v) for (s, e, b, d, v), t in traffic.items()],
        batch_size=1000,
    )
    ScoreRollup.objects.bulk_create(
        [
            ScoreRollup(
                project_id=project_id,
                service=s,
                environment=e,
                granularity=Granularity.MINUTE,
                bucket=b,
                dimension=d,
                value=v,
                name=n,
                good=j.good,
                total=j.total,
                value_sum=j.value_sum,
                value_count=j.value_count,
            )
            for (s, e, b, d, v, n), j in judged.items()
        ],
        batch_size=1000,
    )
    hours = sorted({floor_hour(m) for m in wanted})
    _roll_up(project_id, Granularity.MINUTE, Granularity.HOUR, hours, HOUR)
    _roll_up(project_id, Granularity.HOUR, Granularity.DAY, sorted({floor_day(h) for h in hours}), DAY)
    for hook in MINUTES_RECOMPUTED_HOOKS:
        hook(project_id=project_id, minutes=wanted, traces=traces, verdicts=all_verdicts)
    return len(traffic) + len(judged)


def _roll_up(project_id: int, source: str, target: str, starts: Iterable[datetime], length: timedelta) -> None:
    """Each ``target`` bucket (an hour, a day) is the sum of the ``source`` buckets in it (cheap: no raw rows)."""
    for start in starts:
        target_filter = Q(project_id=project_id, granularity=target, bucket=start)
        source_range = Q(project_id=project_id, granularity=source, bucket__gte=start, bucket__lt=start + length)
        TrafficRollup.objects.filter(target_filter).delete()
        ScoreRollup.objects.filter(target_filter).delete()
        merged: dict[tuple[str, str, str, str], _Traffic] = defaultdict(_Traffic)
        for row in TrafficRollup.objects.filter(source_range).values(
            "service",
            "environment",
            "dimension",
            "value",
            "traces",
            "errors",
            "latency_hist",
            "latency_sum_ms",
            "input_tokens",
            "output_tokens",
            "cost",
            "unpriced",
            "safety_judged",
            "safety_flagged",
        ):
            cell = merged[(row["service"], row["environment"], row["dimension"], row["value"])]
            cell.traces += row["traces"]
            cell.errors += row["errors"]
            for key, count in row["latency_hist"].items():
                cell.hist[key] = cell.hist.get(key, 0) + count
            cell.latency_sum += row["latency_sum_ms"]
            cell.input_tokens += row["input_tokens"]
            cell.output_tokens += row["output_tokens"]
            cell.cost += row["cost"]
            cell.unpriced += row["unpriced"]
            cell.safety_judged += row["safety_judged"]
            cell.safety_flagged += row["safety_flagged"]
        TrafficRollup.objects.bulk_create(
            [t.row(project_id, s, e, target, start, d, v) for (s, e, d, v), t in merged.items()],
            batch_size=1000,
        )
        scores = (
            ScoreRollup.objects.filter(source_range)
            .values("service", "environment", "dimension", "value", "name")
            .annotate(
                good_sum=Sum("good"), total_sum=Sum("total"), vs=Sum("value_sum"), vc=Sum("value_count"), n=Count("id")
            )
        )
        ScoreRollup.objects.bulk_create(
            [
                ScoreRollup(
                    project_id=project_id,
                    service=r["service"],
                    environment=r["environment"],
                    granularity=target,
                    bucket=start,
                    dimension=r["dimension"],
                    value=r["value"],
                    name=r["name"],
                    good=r["good_sum"],
                    total=r["total_sum"],
                    value_sum=r["vs"] or 0.0,
                    value_count=r["vc"] or 0,
                )
                for r in scores
            ],
            batch_size=1000,
        )


def dirty_process(*, limit: int = CLAIM_BATCH, deadline: float | None = None) -> int:
    """Recompute dirty minutes, each project in its own transaction: one project whose recompute fails keeps its
    minutes dirty (retried next run) without holding up any other project's. Projects go oldest dirty minute
    first, and none is started past ``deadline`` (``time.monotonic()``), so a run that stops early starves no
    project. Returns minutes done."""
    done = 0
    projects = DirtyBucket.objects.values("project_id").annotate(first=Min("pk")).order_by("first")
    for project_id in projects.values_list("project_id", flat=True):
        if deadline is not None and time.monotonic() > deadline:
            break
        try:
            done += _project_dirty_process(project_id, limit)
        except Exception:
            logger.exception("rollup recompute failed for project %s; its minutes stay dirty", project_id)
    return done


@transaction.atomic
def _project_dirty_process(project_id: int, limit: int) -> int:
    """Claim a project's dirty minutes (SKIP LOCKED: two workers never take the same) and recompute them."""
    claimed = DirtyBucket.objects.filter(project_id=project_id).order_by("minute")
    if connection.vendor == "postgresql":
        claimed = claimed.select_for_update(skip_locked=True)
    rows = list(claimed.values_list("pk", "minute")[:limit])
    if rows:
        # Delete first: a writer that marks the same minute while we recompute inserts it again after we commit.
        DirtyBucket.objects.filter(pk__in=[pk for pk, _ in rows]).delete()
        minutes_recompute(project_id=project_id, minutes=[minute for _, minute in rows])
    return len(rows)


def rollups_rebuild(*, project_id: int, since: datetime, until: datetime) -> int:
    """Recompute every minute of a range from raw rows, an hour at a time. Returns the minutes recomputed."""
    hour = floor_hour(since)
    done = 0
    while hour < until:
        minutes = [hour + MINUTE * i for i in range(60)]
        minutes_recompute(project_id=project_id, minutes=[m for m in minutes if since - MINUTE < m < until])
        done += 60
        hour += HOUR
    return done
