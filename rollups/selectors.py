"""Reads behind the overview and the service page. Golden signals and score rates come from rollups (a few
queries whatever the data size); lists of example traces come from indexed raw rows, bounded by LIMIT."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db import connections
from django.db.models import F, Max, Min, Q, QuerySet, Sum, Value

from accounts.models import Project
from evals.models import Score
from evals.signals import RUNAWAY_CHECKS, SAFETY_CHECKS, signal_of
from rollups.histogram import Quantiles, merge
from rollups.models import Dimension, Granularity, RetiredTotal, ScoreRollup, TrafficRollup
from sre4ai_web.lib.newest import newest_first
from sre4ai_web.lib.sql import AnyOf, EpochMinute
from sre4ai_web.lib.timebuckets import DAY, floor_day, floor_hour, floor_minute
from traces.models import RetrievedDocument, Span, Trace
from traces.selectors import SCORE_START_SLACK

DIMENSIONS = ("model", "release", "prompt", "route")
# Score names whose signal the overview does not show (it shows the "quality" and "grounding" rates).
OVERVIEW_SKIPPED_SCORES = frozenset(
    name for name in SAFETY_CHECKS | RUNAWAY_CHECKS if signal_of(name) not in ("quality", "grounding")
)
RANGES = {"1h": timedelta(hours=1), "24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30)}


@dataclass(frozen=True)
class Window:
    since: datetime
    until: datetime
    granularity: str
    step: timedelta

    @property
    def previous(self) -> Window:
        span = self.until - self.since
        return Window(self.since - span, self.since, self.granularity, self.step)

    def buckets(self) -> list[datetime]:
        first = floor_minute(self.since) if self.granularity == Granularity.MINUTE else floor_hour(self.since)
        out, at = [], first
        while at < self.until:
            out.append(at)
            at += self.step
        return out


def window_for(
    *, range_key: str, now: datetime, since: datetime | None = None, until: datetime | None = None
) -> Window:
    """Minute buckets up to 6 hours, hour buckets beyond (a 30-day chart is 720 points, not 43,200)."""
    if since is None or until is None:
        until = now
        since = now - RANGES.get(range_key, RANGES["24h"])
    if until - since <= timedelta(hours=6):
        return Window(since, until, Granularity.MINUTE, timedelta(minutes=1))
    return Window(since, until, Granularity.HOUR, timedelta(hours=1))


def _in_window(window: Window, *, whole: bool = False) -> Q:
    """The rollup rows of a window: its own buckets, or (``whole``, for totals only: a chart needs the buckets) day
    rows for the whole UTC days in it and its own buckets for the rest. A day row is the sum of its hour rows
    (rollups.services), so the totals are the same, from 24 times fewer rows over the days: a 30-day window reads
    ~30 day rows and ~48 hour rows per slice, not 720 (tests/rollups/test_day_rollups.py)."""
    buckets = window.buckets()
    first = buckets[0] if buckets else window.since
    own = Q(granularity=window.granularity)
    first_day = floor_day(first) if first == floor_day(first) else floor_day(first) + DAY
    last_day = floor_day(window.until)
    if not whole or window.granularity != Granularity.HOUR or first_day >= last_day:
        return own & Q(bucket__gte=first, bucket__lt=window.until)
    return (
        (own & Q(bucket__gte=first, bucket__lt=first_day))
        | Q(granularity=Granularity.DAY, bucket__gte=first_day, bucket__lt=last_day)
        | (own & Q(bucket__gte=last_day, bucket__lt=window.until))
    )


@dataclass
class Series:
    """Per-bucket aggregates of one service (or one slice), ready for charts and summaries."""

    traces: dict[datetime, int] = field(default_factory=lambda: defaultdict(int))
    errors: dict[datetime, int] = field(default_factory=lambda: defaultdict(int))
    hists: dict[datetime, list[dict[str, int]]] = field(default_factory=lambda: defaultdict(list))
    cost: dict[datetime, Decimal] = field(default_factory=lambda: defaultdict(Decimal))
    tokens: dict[datetime, int] = field(default_factory=lambda: defaultdict(int))
    unpriced: int = 0
    safety_judged: dict[datetime, int] = field(default_factory=lambda: defaultdict(int))
    safety_flagged: dict[datetime, int] = field(default_factory=lambda: defaultdict(int))
    good: dict[str, dict[datetime, int]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(int)))
    total: dict[str, dict[datetime, int]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(int)))

    def traffic(self) -> int:
        return sum(self.traces.values())

    def error_rate(self) -> float | None:
        n = self.traffic()
        return sum(self.errors.values()) / n if n else None

    def latency(self, q: float, bucket: datetime | None = None) -> float | None:
        cache: dict[datetime | None, Quantiles] = self.__dict__.setdefault("_quantiles_cache", {})
        if bucket not in cache:
            cache[bucket] = Quantiles(self._merged(bucket))
        return cache[bucket].at(q)

    def _merged(self, bucket: datetime | None) -> dict[int, int]:
        """Merged histogram of one bucket (or of all), computed once: charts ask for three quantiles each."""
        cache: dict[datetime | None, dict[int, int]] = self.__dict__.setdefault("_merge_cache", {})
        if bucket not in cache:
            hists = self.hists.get(bucket, []) if bucket else [h for hs in self.hists.values() for h in hs]
            cache[bucket] = merge(hists)
        return cache[bucket]

    def spend(self) -> Decimal:
        return sum(self.cost.values(), Decimal(0))

    def cost_per_request(self) -> Decimal | None:
        n = self.traffic()
        return self.spend() / n if n else None

    def safety_flags(self, bucket: datetime | None = None) -> int:
        """Traces with a safety flag (evals.signals): what the "No safety flag" SLI counts as bad events."""
        return self.safety_flagged.get(bucket, 0) if bucket else sum(self.safety_flagged.values())

    def safety_share(self, bucket: datetime | None = None) -> float | None:
        """Share of the traces judged for safety that have no flag."""
        judged = self.safety_judged.get(bucket, 0) if bucket else sum(self.safety_judged.values())
        return 1.0 - self.safety_flags(bucket) / judged if judged else None

    def rate(self, signal: str, bucket: datetime | None = None) -> float | None:
        """good/total over the current scores that feed a signal (evals.signals.signal_of)."""
        good, total = self._signal_counts(signal, bucket)
        return good / total if total else None

    def _signal_counts(self, signal: str, bucket: datetime | None) -> tuple[int, int]:
        """(good, total) of a signal's scores in one bucket (or all), summed over its score names once per signal:
        a 30-day sparkline asks for 720 buckets, and going through every name for each was most of its time."""
        cache: dict[str, dict[datetime | None, tuple[int, int]]] = self.__dict__.setdefault("_signal_cache", {})
        if signal not in cache:
            sums: dict[datetime | None, list[int]] = defaultdict(lambda: [0, 0])
            for name, per_bucket in self.total.items():
                if signal_of(name) != signal:
                    continue
                good = self.good[name]
                for at, count in per_bucket.items():
                    cell = sums[at]
                    cell[0] += good.get(at, 0)
                    cell[1] += count
            every = [sum(cell[0] for cell in sums.values()), sum(cell[1] for cell in sums.values())]
            cache[signal] = {at: (cell[0], cell[1]) for at, cell in sums.items()}
            cache[signal][None] = (every[0], every[1])
        return cache[signal].get(bucket, (0, 0))


def _series(
    project: Project,
    window: Window,
    environment: str,
    service: str | None,
    dimension: str = "",
    *,
    whole: bool = False,
    skip_names: frozenset[str] = frozenset(),
) -> dict[tuple[str, str], Series]:
    """Two queries: traffic rows and score rows of the window, grouped by (service, slice value).

    ``whole``: one pseudo-bucket (the window's start) holds the whole window, read from day rows for its whole days
    (``_in_window``) and the scores summed in SQL; for figures over the whole window only (no chart). ``skip_names``: scores not read, for a reader that never asks for their
    signal. Both give the same figures as the full read for what they keep (tests/rollups/test_overview_fast.py)."""
    filters: dict[str, Any] = {"project": project, "dimension": dimension}
    if environment:
        filters["environment"] = environment
    if service is not None:
        filters["service"] = service
    rows_in_window = _in_window(window, whole=whole)
    out: dict[tuple[str, str], Series] = defaultdict(Series)
    # Buckets are read as whole minutes (an integer) and made datetimes once each: converting every row's
    # timestamp (tens of thousands of rows over 30 days) was the largest part of a 30-day overview's time.
    at: dict[int, datetime] = {}

    def bucket_of(minute: int) -> datetime:
        if whole:
            return window.since
        moment = at.get(minute)
        if moment is None:
            moment = at[minute] = datetime.fromtimestamp(minute * 60, UTC)
        return moment

    for row in TrafficRollup.objects.filter(rows_in_window, **filters).values_list(
        "service",
        "value",
        EpochMinute("bucket"),
        "traces",
        "errors",
        "latency_hist",
        "cost",
        "input_tokens",
        "output_tokens",
        "unpriced",
        "safety_judged",
        "safety_flagged",
    ):
        svc, value, minute, traces, errors, hist, cost, tin, tout, unpriced, judged, flagged = row
        bucket = bucket_of(minute)
        series = out[(svc, value)]
        series.safety_judged[bucket] += judged
        series.safety_flagged[bucket] += flagged
        series.traces[bucket] += traces
        series.errors[bucket] += errors
        series.hists[bucket].append(hist)
        series.cost[bucket] += cost
        series.tokens[bucket] += tin + tout
        series.unpriced += unpriced
    scores = ScoreRollup.objects.filter(rows_in_window, **filters)
    if skip_names:
        scores = scores.exclude(name__in=sorted(skip_names))
    rows: Iterable[tuple[str, str, int, str, int | None, int | None]]
    if whole:
        summed = scores.values("service", "value", "name").annotate(g=Sum("good"), t=Sum("total")).order_by()
        rows = summed.values_list("service", "value", Value(0), "name", "g", "t")
    else:
        rows = scores.values_list("service", "value", EpochMinute("bucket"), "name", "good", "total")
    for svc, value, minute, name, good, total in rows:
        bucket = bucket_of(minute)
        series = out[(svc, value)]
        series.good[name][bucket] += good or 0
        series.total[name][bucket] += total or 0
    return out


def _range_filters(project: Project, environment: str, service: str, dimension: str) -> dict[str, Any]:
    filters: dict[str, Any] = {"project": project, "dimension": dimension, "service": service}
    if environment:
        filters["environment"] = environment
    return filters


# Each database's table function over a JSON object's members, as rows (key, value).
_JSON_MEMBERS = {"postgresql": "jsonb_each_text", "sqlite": "json_each"}


def _slice_histograms(rollups: QuerySet[TrafficRollup]) -> Iterable[tuple[str, str, str, int]]:
    """(dimension, value, bucket key, count): the latency histograms of these rollup rows merged per slice in the
    database. Decoding and merging every hourly row's histogram here was a third of a 30-day service page."""
    compiler = rollups.query.get_compiler(using=rollups.db)
    where, params = compiler.compile(rollups.query.where)
    quote = compiler.connection.ops.quote_name
    table = quote(TrafficRollup._meta.db_table)
    members = _JSON_MEMBERS[compiler.connection.vendor]
    sql = (
        f"SELECT {table}.dimension, {table}.value, h.key, SUM(CAST(h.value AS integer)) "  # noqa: S608 - names only
        f"FROM {table}, {members}({table}.latency_hist) AS h WHERE {where} "
        f"GROUP BY {table}.dimension, {table}.value, h.key"
    )
    with connections[rollups.db].cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _breakdowns(project: Project, window: Window, environment: str, service: str) -> dict[str, dict[str, Series]]:
    """Whole-window totals per slice value of each dimension (the breakdown tables), summed in the database:
    three queries, whatever the number of hours (tests/rollups/test_breakdowns.py checks them against the rows)."""
    filters = _range_filters(project, environment, service, "")
    del filters["dimension"]
    filters["dimension__in"] = DIMENSIONS
    whole_window = _in_window(window, whole=True)
    out: dict[str, dict[str, Series]] = {dim: defaultdict(Series) for dim in DIMENSIONS}
    at = window.since  # one pseudo-bucket holds the whole window
    rollups = TrafficRollup.objects.filter(whole_window, **filters)
    for row in (
        rollups.values("dimension", "value")
        .order_by()
        .annotate(
            n_traces=Sum("traces"),
            n_errors=Sum("errors"),
            spend=Sum("cost"),
            n_tokens=Sum("input_tokens") + Sum("output_tokens"),
            n_unpriced=Sum("unpriced"),
            n_judged=Sum("safety_judged"),
            n_flagged=Sum("safety_flagged"),
        )
    ):
        series = out[row["dimension"]][row["value"]]
        series.traces[at] = row["n_traces"]
        series.errors[at] = row["n_errors"]
        series.cost[at] = row["spend"]
        series.tokens[at] = row["n_tokens"]
        series.unpriced = row["n_unpriced"]
        series.safety_judged[at] = row["n_judged"]
        series.safety_flagged[at] = row["n_flagged"]
    merged: dict[tuple[str, str], dict[str, int]] = defaultdict(dict)
    for dimension, value, key, count in _slice_histograms(rollups):
        merged[(dimension, value)][key] = count
    for (dimension, value), hist in merged.items():
        out[dimension][value].hists[at].append(hist)
    scores = (
        ScoreRollup.objects.filter(whole_window, **filters)
        .values("dimension", "value", "name")
        .order_by()
        .annotate(good_sum=Sum("good"), total_sum=Sum("total"))
    )
    for summed in scores:
        series = out[summed["dimension"]][summed["value"]]
        series.good[summed["name"]][at] += summed["good_sum"] or 0
        series.total[summed["name"]][at] += summed["total_sum"] or 0
    return {dim: dict(values) for dim, values in out.items()}


def _first_seen(
    project: Project, window: Window, environment: str, service: str, dimension: str
) -> dict[str, datetime]:
    filters = _range_filters(project, environment, service, dimension)
    rows = (
        TrafficRollup.objects.filter(_in_window(window), traces__gt=0, **filters)
        .values("value")
        .annotate(first=Min("bucket"))
    )
    return {row["value"]: row["first"] for row in rows}


def _cost_by_model(
    project: Project, window: Window, environment: str, service: str
) -> dict[str, dict[datetime, Decimal]]:
    filters = _range_filters(project, environment, service, "model")
    out: dict[str, dict[datetime, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    rows = TrafficRollup.objects.filter(_in_window(window), **filters)
    for value, bucket, cost in rows.values_list("value", "bucket", "cost"):
        out[value][bucket] += cost
    return out


@dataclass
class ServiceHealth:
    service: str
    now: Series
    before: Series
    buckets: list[datetime]
    spend_today: Decimal
    drift: str = "not run"

    def _change(self, now: float | None, before: float | None) -> float | None:
        return None if now is None or before is None else now - before

    @property
    def signals(self) -> list[dict[str, Any]]:
        """One entry per column of the overview: value now, change against the previous period, sparkline."""
        n, b, buckets = self.now, self.before, self.buckets
        traffic_change = (n.traffic() / b.traffic() - 1.0) if b.traffic() else None
        cpr_now, cpr_before = n.cost_per_request(), b.cost_per_request()
        return [
            {
                "key": "traffic",
                "value": n.traffic(),
                "change": traffic_change,
                "spark": [n.traces.get(t, 0) for t in buckets],
            },
            {
                "key": "errors",
                "value": n.error_rate(),
                "change": self._change(n.error_rate(), b.error_rate()),
                "spark": [n.errors.get(t, 0) / n.traces[t] if n.traces.get(t) else None for t in buckets],
            },
            {
                "key": "p95",
                "value": n.latency(0.95),
                "change": self._change(n.latency(0.95), b.latency(0.95)),
                "spark": [n.latency(0.95, t) for t in buckets],
            },
            {
                "key": "quality",
                "value": n.rate("quality"),
                "change": self._change(n.rate("quality"), b.rate("quality")),
                "spark": [n.rate("quality", t) for t in buckets],
            },
            {
                "key": "grounding",
                "value": n.rate("grounding"),
                "change": self._change(n.rate("grounding"), b.rate("grounding")),
                "spark": [n.rate("grounding", t) for t in buckets],
            },
            {
                "key": "safety",
                "value": n.safety_flags(),
                "change": float(n.safety_flags() - b.safety_flags()),
                "spark": [n.safety_flags(t) for t in buckets],
            },
            {
                "key": "cost_per_request",
                "value": cpr_now,
                "change": self._change(
                    float(cpr_now) if cpr_now is not None else None,
                    float(cpr_before) if cpr_before is not None else None,
                ),
                "spark": [float(n.cost[t] / n.traces[t]) if n.traces.get(t) else None for t in buckets],
            },
        ]

    @property
    def badness(self) -> float:
        """Worst first: the largest of the error rate and the failure shares of quality, grounding and safety."""
        n = self.now
        shares = [n.error_rate() or 0.0]
        shares += [1.0 - r for r in (n.rate("quality"), n.rate("grounding"), n.safety_share()) if r is not None]
        return max(shares)


def overview(*, project: Project, environment: str, window: Window, now: datetime) -> list[ServiceHealth]:
    """Five queries: traffic and scores for this period and the previous one, and today's spend."""
    # The overview shows the quality and grounding rates of the scores and counts safety flags from the traffic
    # rows: the safety and runaway checks' score rows (most of a 30-day read) are not needed; the previous period
    # only gives the changes, so it is summed over the whole period.
    current = _series(project, window, environment, None, skip_names=OVERVIEW_SKIPPED_SCORES)
    before = _series(project, window.previous, environment, None, whole=True, skip_names=OVERVIEW_SKIPPED_SCORES)
    spend_filters: dict[str, Any] = {
        "project": project,
        "granularity": Granularity.DAY,
        "dimension": "",
        "bucket": floor_day(now),
    }
    if environment:
        spend_filters["environment"] = environment
    spend: dict[str, Decimal] = defaultdict(Decimal)
    for service, cost in TrafficRollup.objects.filter(**spend_filters).values_list("service", "cost"):
        spend[service] += cost
    services = sorted({s for s, _ in current} | {s for s, _ in before})
    rows = [
        ServiceHealth(
            service=s,
            now=current.get((s, ""), Series()),
            before=before.get((s, ""), Series()),
            buckets=window.buckets(),
            spend_today=spend[s],
        )
        for s in services
    ]
    return sorted(rows, key=lambda r: (-r.badness, r.service))


def _kept_days(project: Project, model: type[TrafficRollup] | type[ScoreRollup] = TrafficRollup) -> QuerySet[Any]:
    """The day rollups of the days whose traces are still kept (``raw_retention_days``, from the start of the first
    such day): what the pickers offer. Older rollups name nothing a list could show, and reading them all made every
    page cost more each month up to the aggregate retention (400 days: 13 times 30 days' rows; docs/benchmarks.md
    §17); day rows, not hour rows: 24 times fewer to read."""
    kept_since = floor_day(datetime.now(UTC) - timedelta(days=project.raw_retention_days))
    return model.objects.filter(project=project, granularity=Granularity.DAY, bucket__gte=kept_since)


def environments(*, project: Project) -> list[str]:
    """The environments the pickers offer (overview, service pages, trace and session lists)."""
    return list(
        _kept_days(project)
        .filter(dimension="")
        .values_list("environment", flat=True)
        .distinct()
        .order_by("environment")
    )


def anything_counted(*, project: Project) -> bool:
    """Whether any trace was ever counted: an empty project's overview shows how to send the first one instead."""
    return TrafficRollup.objects.filter(project=project, granularity=Granularity.DAY, dimension="").exists()


@dataclass
class ServiceDetail:
    service: str
    window: Window
    series: Series
    breakdowns: dict[str, dict[str, Series]]
    changes: list[tuple[datetime, str, str]]
    failing_evaluators: list[tuple[str, int, int]]
    least_grounded: list[Score]
    grounding_by_source: list[tuple[str, int, float]]
    expensive: list[Trace]
    runaway: list[Score]
    cost_by_user: list[tuple[str, Decimal, int]]
    human_feedback: tuple[int, int]
    request_costs: list[float]
    cost_by_model: dict[str, dict[datetime, Decimal]]


def _changes(first_seen: dict[str, dict[str, datetime]]) -> list[tuple[datetime, str, str]]:
    """Where a release or model first appears after the window's start: a marker on every chart."""
    markers: list[tuple[datetime, str, str]] = []
    for dimension in ("release", "model"):
        firsts = first_seen.get(dimension, {})
        if len(firsts) < 2:
            continue
        start = min(firsts.values())
        markers += [(first, dimension, value) for value, first in firsts.items() if first > start]
    return sorted(markers)


def service_detail(*, project: Project, service: str, environment: str, window: Window) -> ServiceDetail:
    series = _series(project, window, environment, service).get((service, ""), Series())
    breakdowns = _breakdowns(project, window, environment, service)
    first_seen = {dim: _first_seen(project, window, environment, service, dim) for dim in ("release", "model")}
    failing = sorted(
        (
            (name, sum(per.values()) - sum(series.good[name].values()), sum(per.values()))
            for name, per in series.total.items()
        ),
        key=lambda row: (-row[1], row[0]),
    )
    in_window = _scores_in_window(project, service, environment, window)
    least = list(in_window.filter(name="grounding", value__isnull=False).order_by("value", "-trace_start")[:10])
    runaway = newest_first(
        in_window.filter(name__in=RUNAWAY_CHECKS, passed=False).order_by("-trace_start"),
        "trace_start",
        10,
        window.until,
        window.since,
    )
    linked = {score.pk for score in _with_traces(project, [*least, *runaway])}
    least, runaway = ([score for score in scores if score.pk in linked] for scores in (least, runaway))
    # The answers people rated, and those rated good: the human_feedback row of the failing-checks table, counted
    # the same way (a trace's verdict over its ratings, from the rollups), not a second count of the rating rows.
    # (read with get: the series' counts are defaultdicts, and a key made here would draw an empty evaluator's line)
    feedback = (
        sum(series.good.get("human_feedback", {}).values()),
        sum(series.total.get("human_feedback", {}).values()),
    )
    traces = Trace.objects.filter(
        project=project, service=service, start_time__gte=window.since, start_time__lt=window.until
    )
    if environment:
        traces = traces.filter(environment=environment)
    expensive = list(
        traces.filter(cost__isnull=False)
        .order_by("-cost", "-pk")
        .only("trace_id", "name", "start_time", "cost", "total_tokens", "model_names")[:10]
    )
    by_user: dict[str, list[Any]] = defaultdict(lambda: [Decimal(0), 0])
    request_costs: list[float] = []
    # The last 20,000 requests of the window: enough for a distribution and the top users, bounded in cost.
    for user, cost in traces.order_by("-start_time").values_list("user_id", "cost")[:20000]:
        if cost is not None:
            request_costs.append(float(cost))
        if user:
            by_user[user][0] += cost or Decimal(0)
            by_user[user][1] += 1
    cost_by_user = sorted(((u, c, n) for u, (c, n) in by_user.items()), key=lambda r: -r[1])[:10]
    return ServiceDetail(
        service=service,
        window=window,
        series=series,
        breakdowns=breakdowns,
        changes=_changes(first_seen),
        cost_by_model=_cost_by_model(project, window, environment, service),
        failing_evaluators=[f for f in failing if f[2]],
        least_grounded=least,
        grounding_by_source=_grounding_by_source(in_window),
        expensive=expensive,
        runaway=runaway,
        cost_by_user=cost_by_user,
        human_feedback=feedback,
        request_costs=request_costs,
    )


def _scores_in_window(project: Project, service: str, environment: str, window: Window) -> QuerySet[Score]:
    """Scores of the service's traces that started in the window (the score_panel_idx index). Joined to the traces
    only to filter by environment, which scores do not carry: the join made PostgreSQL plan both tables' partitions
    of the window for every panel (~12 ms of planning each on 30 days) where the scores alone answer."""
    scores = Score.objects.current(starts=(window.since, window.until)).filter(
        project=project, service=service, trace_start__gte=window.since, trace_start__lt=window.until
    )
    if not environment:
        return scores
    # Bounding the trace's start too lets PostgreSQL read only the days around the window (partitions); a score's
    # trace start is its trace's as of scoring, which a late earlier span may have moved by seconds.
    return scores.filter(
        trace__environment=environment,
        trace__start_time__range=(window.since - SCORE_START_SLACK, window.until + SCORE_START_SLACK),
    )


def _with_traces(project: Project, scores: list[Score]) -> list[Score]:
    """These scores with their traces attached, as the panels link them (id and answer preview), read in one query
    bounded to the days of these traces' starts (where a join to the scores planned every day of the window); a
    score whose trace retention removed meanwhile is left out."""
    if not scores:
        return []
    traces = Trace.objects.filter(project=project, pk__in={score.trace_id for score in scores})
    starts = [score.trace_start for score in scores if score.trace_start is not None]
    if len(starts) == len(scores):
        traces = traces.filter(start_time__range=(min(starts) - SCORE_START_SLACK, max(starts) + SCORE_START_SLACK))
    found = {trace.pk: trace for trace in traces.only("trace_id", "output_preview", "start_time")}
    for score in scores:
        if score.trace_id in found:
            score.trace = found[score.trace_id]
    return [score for score in scores if score.trace_id in found]


def _grounding_by_source(scores: QuerySet[Score], limit: int = 200) -> list[tuple[str, int, float]]:
    """Grounded share of the answers that used each retrieved document (the last ``limit`` grounding scores)."""
    recent = list(
        scores.filter(name="grounding", passed__isnull=False)
        .order_by("-trace_start")
        .values_list("trace_id", "passed", "trace_start")[:limit]
    )
    passed = {trace_id: ok for trace_id, ok, _ in recent}
    per_source: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    seen: set[tuple[int, str]] = set()
    starts = [start for _, _, start in recent if start is not None]
    # A trace's spans and their documents start from its start on (partition pruning on PostgreSQL). The spans by
    # their traces, then the documents by their spans, each through its index: joined, PostgreSQL scanned the
    # day's spans in parallel for the join (22 ms at one million spans against ~3), as the triage page found.
    since = min(starts, default=datetime.now(UTC)) - SCORE_START_SLACK
    span_trace = dict(
        Span.objects.filter(AnyOf("trace_id", list(passed)), start_time__gte=since).values_list("pk", "trace_id")
    )
    documents = RetrievedDocument.objects.filter(AnyOf("span_id", list(span_trace)), start_time__gte=since).order_by()
    for span_pk, doc_id in documents.values_list("span_id", "document_id"):  # counted, not listed: no sort
        trace_id = span_trace[span_pk]
        if not doc_id or (trace_id, doc_id) in seen:
            continue
        seen.add((trace_id, doc_id))
        per_source[doc_id][0] += 1
        per_source[doc_id][1] += bool(passed[trace_id])
    rows = [(doc, n, good / n) for doc, (n, good) in per_source.items()]
    return sorted(rows, key=lambda r: (r[2], -r[1]))[:10]


def trace_facets(*, project: Project) -> dict[str, list[str]]:
    """Values for the filter drop-downs, read from the day rollups (a DISTINCT over raw traces and spans scans the
    whole table: 30-120 ms each at a million spans, see docs/benchmarks.md) of the days whose traces are still kept
    (``_kept_days``)."""
    days = _kept_days(project)
    scores = _kept_days(project, ScoreRollup).filter(dimension="")
    return {
        "services": sorted(set(days.filter(dimension="").values_list("service", flat=True).distinct())),
        "environments": environments(project=project),
        "models": sorted(set(days.filter(dimension="model").values_list("value", flat=True).distinct())),
        "score_names": sorted(set(scores.values_list("name", flat=True).distinct())),
    }


def slice_values(*, project: Project, dimension: str, service: str = "", days: int = 30, limit: int = 50) -> list[str]:
    """The values of one slice (release, model, prompt) seen in the last ``days``, most recent first: what a person
    picks a canary's baseline and canary from. Read from the hourly rollups: the latest hour orders them."""
    rows = TrafficRollup.objects.filter(
        project=project,
        granularity=Granularity.HOUR,
        dimension=dimension,
        bucket__gte=floor_hour(datetime.now(UTC)) - timedelta(days=days),
    )
    if service:
        rows = rows.filter(service=service)
    latest = rows.values("value").annotate(seen=Max("bucket")).order_by("-seen", "value")
    return [row["value"] for row in latest[:limit] if row["value"]]


def counter_totals(
    *, project: Project
) -> tuple[dict[tuple[str, str], dict[str, Any]], dict[tuple[str, str, str], tuple[int, int]]]:
    """The /metrics counters: per (service, environment) the sums of ``RetiredTotal.TRAFFIC``, and per (service, environment,
    check) (passed, judged), over the kept day rollups of all traces plus what retention removed of them
    (``RetiredTotal``): so no counter goes down when the oldest day expires. Day rows, not hour rows: a scrape reads
    one row per day of the aggregate retention (400 by default), not 24."""
    daily = {"project": project, "granularity": Granularity.DAY, "dimension": Dimension.ALL}
    counted = RetiredTotal.TRAFFIC
    traffic: dict[tuple[str, str], dict[str, Any]] = defaultdict(lambda: dict.fromkeys(counted, 0))
    kept = TrafficRollup.objects.filter(**daily).values("service", "environment")
    retired = RetiredTotal.objects.filter(project=project, name="").values("service", "environment")
    traffic_parts: list[QuerySet[Any, Any]] = [
        kept.annotate(**{f"n_{k}": Sum(k) for k in counted}),
        retired.annotate(**{f"n_{k}": F(k) for k in counted}),
    ]
    for part in traffic_parts:
        for row in part.order_by():
            series = traffic[(row["service"], row["environment"])]
            for k in counted:
                series[k] += row[f"n_{k}"] or 0
    checks: dict[tuple[str, str, str], tuple[int, int]] = {}
    kept_checks = ScoreRollup.objects.filter(**daily).values("service", "environment", "name")
    retired_checks = RetiredTotal.objects.filter(project=project).exclude(name="")
    check_parts: list[QuerySet[Any, Any]] = [
        kept_checks.annotate(g=Sum("good"), t=Sum("total")),
        retired_checks.values("service", "environment", "name").annotate(g=F("good"), t=F("total")),
    ]
    for checks_part in check_parts:
        for check in checks_part.order_by():
            key = (check["service"], check["environment"], check["name"])
            good, judged = checks.get(key, (0, 0))
            checks[key] = (good + (check["g"] or 0), judged + (check["t"] or 0))
    return dict(traffic), checks
