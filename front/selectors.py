"""The explorer's reads: the trace list, its count, sessions and users, filtered, sorted and chipped by the
traces' current scores (evals). Every query is scoped to one project."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import cast

from django.db import OperationalError, connections, transaction
from django.db.models import (
    Count,
    DecimalField,
    Exists,
    F,
    Max,
    Min,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
)
from django.db.models.functions import Coalesce
from psycopg.errors import QueryCanceled

from accounts.models import Project
from evals.models import Score
from sre4ai_web.lib.newest import newest_first
from sre4ai_web.lib.sql import AnyOf, JsonArrayHas
from traces.models import Trace
from traces.selectors import SCORE_START_SLACK

LIST_COLUMNS = (
    "id",
    "trace_id",
    "service",
    "environment",
    "name",
    "start_time",
    "duration_ms",
    "status",
    "span_count",
    "error_count",
    "model_names",
    "total_tokens",
    "cost",
    "has_unpriced",
    "input_preview",
    "output_preview",
    "session_id",
    "user_id",
    "release",
)


class InvalidCursor(ValueError):
    pass


@dataclass(frozen=True)
class TraceFilters:
    service: str = ""
    environment: str = ""
    model: str = ""
    status: str = ""
    since: datetime | None = None
    until: datetime | None = None
    text: str = ""
    min_duration_ms: float | None = None
    min_cost: Decimal | None = None
    session_id: str = ""
    user_id: str = ""
    release: str = ""
    failing: str = ""  # a score name: only traces whose current score of that name failed
    name: str = ""  # the trace name, i.e. the route
    score: str = ""  # a score name: only traces with a current score of that name (and sortable by its value)


# Sort keys of the list: the Trace column (or annotation) each orders by. Cost sorts a trace without a cost as $0
# (an expression index serves it), so the keyset never meets a NULL.
SORT_KEYS = ("time", "latency", "cost", "tokens", "score")
_SORT_FIELDS = {"time": "start_time", "latency": "duration_ms", "cost": "cost_sort", "tokens": "total_tokens"}
COST_SORT = Coalesce("cost", Value(Decimal(0)), output_field=DecimalField(max_digits=20, decimal_places=10))
COUNT_BOUND = 10_000
SCORE_RANK_BOUND = 10_000  # the newest matching traces a sort by score ranks when its walk gives up (_rank_newest)
# A sort by score walks the score's rows in value order in batches of SCORE_WALK_BATCH, and ranks the newest traces
# instead once SCORE_WALK_ROWS rows gave too few matching traces for the page (_walk_score_order).
SCORE_WALK_BATCH = 250
SCORE_WALK_ROWS = 2_000
SCORE_RANK_ALL = 1_000  # as many traces match the other filters, or fewer: a sort by score ranks them all at once
COUNT_TIMEOUT_MS = 250  # the list page asks for its count afterwards (trace_list_count): it may take longer
# A text search (with its other filters) matching at most this many traces: the page reads them all through the
# trigram index and sorts them, a few ms. Walking the time index instead tests the words on each trace until a page
# is found, which for a rare word is most of the project (50-330 ms at a million spans); PostgreSQL's planner cannot
# tell the two apart, as it prices matching a long text like comparing two numbers. A common word finds a page in
# the first traces of the walk.
FEW_TEXT_MATCHES = 2_000
# More matches than that, spread thin (a word in 0.25 % of 2.5 million traces): the walk tests ~20,000 traces to fill
# a page (12 µs each, 250 ms at 10M spans) where the trigram index reads the 6,250 matches and sorts them (6 µs each,
# 37 ms). Which is cheaper turns on how densely the newest traces match: fewer than SPARSE_HITS among the newest
# SPARSE_PROBE traces (a density under 1/150, where the two cost about the same for a range of ~2.5 million traces)
# reads through the trigram index. Probing costs the walk of SPARSE_PROBE traces at most (~25 ms), a common word
# a few.
SPARSE_PROBE = 2_000
SPARSE_HITS = 13


@dataclass(frozen=True)
class TraceSort:
    key: str = "time"  # one of SORT_KEYS
    descending: bool = True

    @property
    def token(self) -> str:
        """As written in the URL: "-latency" is slowest first."""
        return ("-" if self.descending else "") + self.key

    @classmethod
    def parse(cls, token: str) -> TraceSort:
        key = token.removeprefix("-")
        if key not in SORT_KEYS:
            raise ValueError(f"Unknown sort '{token}': use one of {', '.join(SORT_KEYS)}, with '-' for descending.")
        return cls(key=key, descending=token.startswith("-"))


@dataclass
class TracePage:
    items: list[Trace]
    next_cursor: str | None
    # A sort by score that ranked only the newest this many traces: more match the other filters.
    ranked_newest: int | None = None


def encode_cursor(sort: TraceSort, value: object, pk: int) -> str:
    """The sort it belongs to, the sort key of the page's last row and that row's id (the tie-breaker)."""
    shown = value.isoformat() if isinstance(value, datetime) else str(value)
    return base64.urlsafe_b64encode(f"{sort.token}|{shown}|{pk}".encode()).decode()


def decode_cursor(cursor: str, sort: TraceSort) -> tuple[datetime | Decimal | float | int, int]:
    try:
        token, value, pk = base64.urlsafe_b64decode(cursor.encode()).decode().split("|")
        parsed: datetime | Decimal | float | int
        if sort.key == "time":
            parsed = datetime.fromisoformat(value)
        elif sort.key == "cost":
            parsed = Decimal(value)
        elif sort.key == "tokens":
            parsed = int(value)
        else:
            parsed = float(value)
        pk_value = int(pk)
    except (binascii.Error, UnicodeDecodeError, ValueError, ArithmeticError) as exc:
        raise InvalidCursor("The cursor is not valid: use the next_cursor value of a previous page.") from exc
    if token != sort.token:
        raise InvalidCursor("The cursor belongs to another sort order: start again from the first page.")
    return parsed, pk_value


def _current_score_value(filters: TraceFilters) -> Subquery:
    """A trace's lowest current value of the filters' score (the worst judgement when several people scored it)."""
    scores = _scores_in_range(filters).filter(trace=OuterRef("pk"), name=filters.score, value__isnull=False)
    return Subquery(scores.order_by("value").values("value")[:1])


def _filtered(project: Project, filters: TraceFilters) -> QuerySet[Trace]:
    qs = Trace.objects.filter(project=project)
    if filters.service:
        qs = qs.filter(service=filters.service)
    if filters.environment:
        qs = qs.filter(environment=filters.environment)
    if filters.status:
        qs = qs.filter(status=filters.status)
    if filters.since:
        qs = qs.filter(start_time__gte=filters.since)
    if filters.until:
        qs = qs.filter(start_time__lte=filters.until)
    if filters.min_duration_ms is not None:
        qs = qs.filter(duration_ms__gte=filters.min_duration_ms)
    if filters.min_cost is not None:
        qs = qs.filter(cost__gte=filters.min_cost)
    if filters.session_id:
        qs = qs.filter(session_id=filters.session_id)
    if filters.user_id:
        qs = qs.filter(user_id=filters.user_id)
    if filters.release:
        qs = qs.filter(release=filters.release)
    if filters.text:
        # PostgreSQL: a trigram index on UPPER(search_text) serves this ILIKE-style match.
        qs = qs.filter(search_text__icontains=filters.text)
    if filters.model:
        # The trace's LLM and embedding models, as the service page's breakdown, SLIs and canary read them; on
        # PostgreSQL a GIN index serves a rare model (migration traces 0015).
        qs = qs.filter(JsonArrayHas("model_names", filters.model))
    if filters.name:
        qs = qs.filter(name=filters.name)
    if filters.failing:
        failing = _scores_in_range(filters).filter(trace=OuterRef("pk"), name=filters.failing, passed=False)
        qs = qs.filter(Exists(failing))
    if filters.score:
        qs = qs.filter(Exists(_scores_in_range(filters).filter(trace=OuterRef("pk"), name=filters.score)))
    return qs


def _scores_in_range(filters: TraceFilters | GroupFilters) -> QuerySet[Score]:
    """The current scores of traces in the filters' time range. A score carries its trace's start (within
    SCORE_START_SLACK), so a subquery per trace reads only the range's days' partitions, not every day's."""
    return Score.objects.current(
        starts=(
            filters.since - SCORE_START_SLACK if filters.since else None,
            filters.until + SCORE_START_SLACK if filters.until else None,
        )
    )


def trace_page(
    *,
    project: Project,
    filters: TraceFilters,
    cursor: str = "",
    limit: int = 50,
    sort: TraceSort = TraceSort(),
    few: bool | None = None,
) -> TracePage:
    """Keyset-paginated on (sort key, id), so a deep page costs what the first one does and rows never repeat or
    go missing between pages, whatever the sort. With `filters.score`, each trace carries that score's value as
    `score_sort`; sorting by score ranks the newest traces (``_score_ranked_page``). `few`: whether a text search
    matches few traces (``few_text_count``); a caller that did not count leaves it to this function."""
    if sort.key == "score":
        if not filters.score:
            raise ValueError("Sorting by score needs a score name to sort by.")
        return _score_ranked_page(project, filters, cursor, limit, sort)
    qs = _filtered(project, filters).only(*LIST_COLUMNS)
    if filters.score:
        qs = qs.annotate(score_sort=_current_score_value(filters))
    field = _SORT_FIELDS[sort.key]
    if sort.key == "cost":
        qs = qs.annotate(cost_sort=COST_SORT)
    if cursor:
        value, pk = decode_cursor(cursor, sort)
        # The redundant outer bound lets the index range-scan from the cursor; the OR breaks ties by id.
        if sort.descending:
            qs = qs.filter(Q(**{f"{field}__lte": value}), Q(**{f"{field}__lt": value}) | Q(id__lt=pk))
        else:
            qs = qs.filter(Q(**{f"{field}__gte": value}), Q(**{f"{field}__gt": value}) | Q(id__gt=pk))
    order = [F(field).desc(), F("id").desc()] if sort.descending else [F(field).asc(), F("id").asc()]
    ordered = qs.order_by(*order)
    trigrams = _through_trigrams(project, filters, ordered.db, few)
    if sort == TraceSort() and (trigrams or filters.model):
        newest = cast(datetime, value) if cursor else filters.until or datetime.now(UTC)
        rows = newest_first(ordered, "start_time", limit + 1, newest, filters.since, lambda page: _rows(page, trigrams))
    else:
        rows = _rows(ordered[: limit + 1], trigrams)
    items = rows[:limit]
    next_cursor = None
    if len(rows) > limit:
        last = items[-1]
        next_cursor = encode_cursor(sort, getattr(last, field), last.pk)
    _attach_scores(items)
    return TracePage(items=items, next_cursor=next_cursor)


def _rows(page: QuerySet[Trace], trigrams: bool) -> list[Trace]:
    if not trigrams:
        return list(page)
    with _local_settings(page.db, enable_indexscan="off"):
        return list(page)


def _score_ranked_page(project: Project, filters: TraceFilters, cursor: str, limit: int, sort: TraceSort) -> TracePage:
    """A page of the list sorted by a score: the traces that match the other filters and have a value of that score
    (a label only has no place in the order; with a failing check, those failing it), by their lowest current
    value, ties by id.

    At most SCORE_RANK_ALL traces match the other filters: all of them are ranked here (``_rank``). More: the
    page is found by walking the score's values in order (``_walk_score_order``), a few hundred rows wherever it
    starts. When the other filters keep few of the walked traces, the walk gives up after SCORE_WALK_ROWS rows and
    the newest SCORE_RANK_BOUND traces of those filters are ranked instead; the page says when there were more of
    them (``ranked_newest``)."""
    after = None
    if cursor:
        value, pk = decode_cursor(cursor, sort)
        after = (cast(float, value), pk)  # a score cursor's value is a float
    ranked_newest = None
    candidates = _newest(project, filters, SCORE_RANK_ALL + 1)
    if len(candidates) <= SCORE_RANK_ALL:
        chosen = _rank(project, filters, candidates, after, limit + 1, sort.descending)
    else:
        walked = _walk_score_order(project, filters, after, limit + 1, sort.descending)
        if walked is None:
            candidates = _newest(project, filters, SCORE_RANK_BOUND)
            ranked_newest = SCORE_RANK_BOUND if len(candidates) == SCORE_RANK_BOUND else None
            walked = _rank(project, filters, candidates, after, limit + 1, sort.descending)
        chosen = walked
    shown = chosen[:limit]
    items = []
    if shown:
        starts = [start for _, _, start in shown if start is not None]
        rows = (
            _filtered(project, replace(filters, score="", failing=""))
            .only(*LIST_COLUMNS)
            .filter(AnyOf("pk", [pk for _, pk, _ in shown]))
        )
        if len(starts) == len(shown):
            rows = rows.filter(
                start_time__gte=min(starts) - SCORE_START_SLACK, start_time__lte=max(starts) + SCORE_START_SLACK
            )
        by_pk = {t.pk: t for t in rows}
        for value, pk, _ in shown:
            if pk in by_pk:  # not deleted since
                by_pk[pk].score_sort = value  # type: ignore[attr-defined]
                items.append(by_pk[pk])
    next_cursor = encode_cursor(sort, *chosen[limit - 1][:2]) if len(chosen) > limit else None
    _attach_scores(items)
    return TracePage(items=items, next_cursor=next_cursor, ranked_newest=ranked_newest)


# A ranked trace: its lowest current value of the score, its id, and a start of its to bound later reads by (the
# score row's copy of it, None for rows from before scores had one).
Ranked = tuple[float, int, datetime | None]


def _walk_score_order(
    project: Project, filters: TraceFilters, after: tuple[float, int] | None, wanted: int, descending: bool
) -> list[Ranked] | None:
    """Up to `wanted` traces of the list sorted by score, past the cursor key `after`, read from the score's rows in
    value order (the index on project, name, value and trace) in batches: each batch's traces are checked against
    the other filters and their current rows, and a trace is taken at its row with its lowest current value. None
    when SCORE_WALK_ROWS rows gave too few traces: the other filters are selective, and ranking their traces is
    cheaper."""
    walk = Score.objects.filter(project=project, name=filters.score, value__isnull=False)
    if filters.since:
        walk = walk.filter(trace_start__gte=filters.since - SCORE_START_SLACK)
    if filters.until:
        walk = walk.filter(trace_start__lte=filters.until + SCORE_START_SLACK)
    order = [F("value").desc(), F("trace_id").desc()] if descending else [F("value").asc(), F("trace_id").asc()]
    chosen: list[Ranked] = []
    taken: set[int] = set()
    walked = 0
    while True:
        batch = walk
        if after is not None:
            key, key_pk = after
            if descending:
                batch = batch.filter(Q(value__lte=key), Q(value__lt=key) | Q(trace_id__lt=key_pk))
            else:
                batch = batch.filter(Q(value__gte=key), Q(value__gt=key) | Q(trace_id__gt=key_pk))
        read = batch.order_by(*order).values_list("value", "trace_id", "trace_start")[:SCORE_WALK_BATCH]
        rows = cast(list[Ranked], list(read))  # no NULL value: the walk reads only rows with one
        walked += len(rows)
        fresh = {pk for _, pk, _ in rows} - taken
        fresh_rows = [start for _, pk, start in rows if pk in fresh]
        starts = [start for start in fresh_rows if start is not None]
        lowest, failing = _lowest_current(project, filters, fresh, starts if len(starts) == len(fresh_rows) else [])
        for value, pk, start in rows:
            if pk not in taken and lowest.get(pk) == value and (not filters.failing or pk in failing):
                taken.add(pk)
                chosen.append((value, pk, start))
                if len(chosen) == wanted:
                    return chosen
        if len(rows) < SCORE_WALK_BATCH:
            return chosen
        if walked >= SCORE_WALK_ROWS:
            return None
        after = (rows[-1][0], rows[-1][1])


def _newest(project: Project, filters: TraceFilters, bound: int) -> dict[int, datetime]:
    """The newest `bound` traces that match the filters other than the score's, with their starts."""
    return dict(
        _filtered(project, replace(filters, score="", failing=""))
        .order_by("-start_time", "-id")
        .values_list("pk", "start_time")[:bound]
    )


def _rank(
    project: Project,
    filters: TraceFilters,
    candidates: dict[int, datetime],
    after: tuple[float, int] | None,
    wanted: int,
    descending: bool,
) -> list[Ranked]:
    """Up to `wanted` of these traces (starts by id) in the list's order by score, past the cursor key `after`."""
    lowest, failing = _lowest_current(project, filters, set(candidates), list(candidates.values()), checked=True)
    ranked = sorted(
        ((value, pk) for pk, value in lowest.items() if not filters.failing or pk in failing), reverse=descending
    )
    if after is not None:
        ranked = [key for key in ranked if (key < after if descending else key > after)]
    return [(value, pk, candidates[pk]) for value, pk in ranked[:wanted]]


def _lowest_current(
    project: Project, filters: TraceFilters, trace_pks: set[int], starts: list[datetime], *, checked: bool = False
) -> tuple[dict[int, float], set[int]]:
    """Of these traces, those that match the other filters (known already when `checked`): each one's lowest current
    value of the score, and those that fail the failing check. `starts` bound the reads (the traces' starts, or
    their scores' copies of them; empty when one is unknown)."""
    if not trace_pks:
        return {}, set()
    span = (min(starts) - SCORE_START_SLACK, max(starts) + SCORE_START_SLACK) if starts else None
    if not checked:
        matching = _filtered(project, replace(filters, score="", failing="")).filter(AnyOf("pk", trace_pks))
        if span:
            matching = matching.filter(start_time__range=span)
        trace_pks = set(matching.values_list("pk", flat=True))
    read = Score.objects.current(starts=span).filter(
        AnyOf("trace_id", trace_pks), name__in={filters.score, filters.failing} - {""}
    )
    lowest: dict[int, float] = {}
    failing: set[int] = set()
    for trace_pk, name, passed, value in read.values_list("trace_id", "name", "passed", "value"):
        if name == filters.failing and passed is False:
            failing.add(trace_pk)
        if name == filters.score and value is not None:
            lowest[trace_pk] = min(value, lowest.get(trace_pk, value))
    return lowest, failing


def trace_count(
    *, project: Project, filters: TraceFilters, bound: int = COUNT_BOUND, timeout_ms: int = COUNT_TIMEOUT_MS
) -> tuple[int, bool] | None:
    """How many traces match, counted exactly up to `bound`; (bound, True) means "more than that". The count
    runs over a LIMIT'ed subquery, so it stops after bound + 1 matches. Fewer matches than that under a filter
    no index serves (a rare route, say) mean reading every trace of the project, so on PostgreSQL the count
    gives up after `timeout_ms` and returns None: the page then shows no number rather than loading slowly."""
    limited = _filtered(project, filters).order_by().values("pk")[: bound + 1]
    database = limited.db  # a page's read replica when there is one (sre4ai_web/replica.py)
    limited = limited.using(database)
    if connections[database].vendor != "postgresql":
        counted = limited.count()
        return min(counted, bound), counted > bound
    try:
        with _local_settings(database, statement_timeout=f"{timeout_ms}ms"):
            counted = limited.count()
    except OperationalError as exc:
        if isinstance(exc.__cause__, QueryCanceled):
            return None
        raise
    return min(counted, bound), counted > bound


def few_text_count(*, project: Project, filters: TraceFilters) -> tuple[int, bool] | None:
    """How many traces a text search matches when they are few (at most FEW_TEXT_MATCHES, so exact): its page is
    then read through the trigram index. None without a text, when more match, or when the count gave up."""
    if not filters.text:
        return None
    count = trace_count(project=project, filters=filters, bound=FEW_TEXT_MATCHES)
    return count if count is not None and not count[1] and count[0] <= FEW_TEXT_MATCHES else None


def _through_trigrams(project: Project, filters: TraceFilters, database: str, few: bool | None) -> bool:
    """Whether to read a page through the trigram index: a text search on PostgreSQL that matches few traces, or
    many spread thin (``_sparse_text``). Not with a score filter or sort: their per-trace subqueries on scores need
    the index scans this turns off (a rare word sorted by a score: 82 ms of SQL with them, 107 without)."""
    if not filters.text or filters.score or filters.failing or connections[database].vendor != "postgresql":
        return False
    if few is None:
        few = few_text_count(project=project, filters=filters) is not None
    return few or _sparse_text(project, filters, database)


def _sparse_text(project: Project, filters: TraceFilters, database: str) -> bool:
    """Whether fewer than SPARSE_HITS of the newest SPARSE_PROBE traces of the other filters match the text, and
    there are that many traces (a smaller range is walked whole in a few ms)."""
    others = _filtered(project, replace(filters, text="")).order_by("-start_time", "-id").using(database)
    newest, params = others.values("search_text")[:SPARSE_PROBE].query.sql_with_params()
    pattern = "%" + connections[database].ops.prep_for_like_query(filters.text) + "%"
    with connections[database].cursor() as cursor:
        # The same test as the filter's ``search_text__icontains``, on the newest traces only, stopping at SPARSE_HITS.
        cursor.execute(
            f"SELECT COUNT(*) FROM (SELECT 1 FROM ({newest}) newest "  # noqa: S608 - the ORM's own SQL and parameters
            "WHERE UPPER(newest.search_text::text) LIKE UPPER(%s) LIMIT %s) hits",
            [*params, pattern, SPARSE_HITS],
        )
        hits = cursor.fetchone()[0]
    return hits < SPARSE_HITS and others[SPARSE_PROBE - 1 : SPARSE_PROBE].exists()


@contextmanager
def _local_settings(database: str, **settings: str) -> Iterator[None]:
    """PostgreSQL settings for the queries of this block only. In a transaction (a savepoint inside one), so they
    end with it, also when a query fails; restored by hand when it succeeds inside an outer transaction."""
    with transaction.atomic(using=database), connections[database].cursor() as cursor:
        previous = []
        for name, value in settings.items():
            cursor.execute("SELECT current_setting(%s), set_config(%s, %s, true)", [name, name, value])
            previous.append((name, cursor.fetchone()[0]))
        yield
        for name, value in previous:
            cursor.execute("SELECT set_config(%s, %s, true)", [name, value])


def _attach_scores(items: list[Trace]) -> None:
    """Each trace's current scores as `scores_shown` (failing first, then by name), the passing ones as
    `scores_passed` and the names of the failing ones as `failing_scores`."""
    if not items:
        return
    starts = [t.start_time for t in items]
    scores: dict[int, list[Score]] = {}
    for score in (
        Score.objects.current(starts=(min(starts) - SCORE_START_SLACK, max(starts) + SCORE_START_SLACK))
        .filter(trace__in=[t.pk for t in items])
        .only("trace_id", "name", "value", "label", "passed", "source", "evaluator")
        .order_by("name", "-updated_at")
    ):
        scores.setdefault(score.trace_id, []).append(score)
    for trace in items:
        mine = sorted(scores.get(trace.pk, []), key=lambda s: (s.passed is not False, s.name))
        trace.scores_shown = mine  # type: ignore[attr-defined]
        trace.scores_passed = [s for s in mine if s.passed]  # type: ignore[attr-defined]
        trace.failing_scores = sorted({s.name for s in mine if s.passed is False})  # type: ignore[attr-defined]


# --- sessions and users ------------------------------------------------------------------------------------

GROUP_SORTS = {"last_seen": "last_seen", "traces": "traces", "cost": "cost", "failing": "failing"}
GROUP_LIMIT = 100
SESSION_TURNS = 200


@dataclass(frozen=True)
class GroupFilters:
    """Filters of the session and user lists (the trace list's service, environment and time range)."""

    service: str = ""
    environment: str = ""
    since: datetime | None = None
    until: datetime | None = None


def _failing_exists() -> Exists:
    return Exists(Score.objects.current().filter(trace=OuterRef("pk"), passed=False))


def _group_traces(project: Project, by: str, filters: GroupFilters, prefix: str = "") -> Q:
    """The traces of the session or user lists (with the id, matching the filters), from a query on traces or, with
    ``prefix="trace__"``, on their scores."""
    q = Q(**{f"{prefix}project": project}) & ~Q(**{f"{prefix}{by}": ""})
    if filters.service:
        q &= Q(**{f"{prefix}service": filters.service})
    if filters.environment:
        q &= Q(**{f"{prefix}environment": filters.environment})
    if filters.since:
        q &= Q(**{f"{prefix}start_time__gte": filters.since})
    if filters.until:
        q &= Q(**{f"{prefix}start_time__lte": filters.until})
    return q


def group_list(
    *, project: Project, by: str, filters: GroupFilters, sort: str = "last_seen", limit: int = GROUP_LIMIT
) -> list[dict[str, object]]:
    """Sessions (`by="session_id"`) or users (`by="user_id"`) of the traces that match, one row each with first
    and last seen, traces, sessions, cost, tokens and failing traces (a current score failed); largest first by
    `sort`, at most `limit` rows. Traces without the id are left out.

    Failing traces and a user's sessions are counted apart, for the rows shown, from those rows' own traces (a
    hundred users' few thousand, through the user or session index) and their failing scores, found by trace: a
    distinct count in the grouping sorts every trace of the range (and spills to disk) where the other sums are
    hashed in parallel, and starting from the range's failing scores joined 466,000 of them to pick a hundred users'
    (a week at 10M spans, docs/benchmarks.md §17). Sorting by failing traces still starts from the
    range's failing scores, grouped by the id, to choose the rows; an EXISTS per trace probed every day's partition
    (950 ms for a week of users at 1M spans)."""
    assert by in ("session_id", "user_id")
    rows_of = (
        Trace.objects.filter(_group_traces(project, by, filters))
        .values(by)
        .annotate(
            first_seen=Min("start_time"),
            last_seen=Max("start_time"),
            traces=Count("pk"),
            cost=Coalesce(Sum("cost"), Value(Decimal(0)), output_field=DecimalField(max_digits=20, decimal_places=10)),
            tokens=Coalesce(Sum("total_tokens"), Value(0)),
        )
    )
    if sort == "failing":
        failing_of = (
            _scores_in_range(filters)
            .filter(_group_traces(project, by, filters, prefix="trace__"), project=project, passed=False)
            .values(f"trace__{by}")
            .annotate(failing=Count("trace_id", distinct=True))
        )
        chosen = [row[f"trace__{by}"] for row in failing_of.order_by("-failing", f"trace__{by}")[:limit]]
        rows = list(rows_of.filter(**{f"{by}__in": chosen}))
        if len(rows) < limit:  # then the others, by id
            rows += rows_of.exclude(**{f"{by}__in": chosen}).order_by(by)[: limit - len(rows)]
    else:
        rows = list(rows_of.order_by(F(GROUP_SORTS[sort]).desc(), by)[:limit])
    failing, sessions = _shown_counts(project, by, filters, [row[by] for row in rows])
    for row in rows:
        row["failing"] = failing.get(row[by], 0)
        row["sessions"] = sessions.get(row[by], 0) if by == "user_id" else 1
    if sort == "failing":
        rows.sort(key=lambda row: (-row["failing"], row[by]))
    return [{**row, "key": row[by]} for row in rows]


def _shown_counts(
    project: Project, by: str, filters: GroupFilters, keys: list[str]
) -> tuple[dict[str, int], dict[str, int]]:
    """For the session or user ids shown: how many of their traces in the filters' range have a failing current
    score, and how many sessions each has there."""
    if not keys:
        return {}, {}
    traces = Trace.objects.filter(_group_traces(project, by, filters), **{f"{by}__in": keys})
    key_of: dict[int, str] = {}
    sessions_of: dict[str, set[str]] = {}
    starts = []
    for pk, key, session_id, start in traces.values_list("pk", by, "session_id", "start_time"):
        key_of[pk] = key
        starts.append(start)
        if session_id:
            sessions_of.setdefault(key, set()).add(session_id)
    failing: dict[str, int] = {}
    if key_of:
        scores = Score.objects.current(starts=(min(starts) - SCORE_START_SLACK, max(starts) + SCORE_START_SLACK))
        # Thousands of ids through the trace index: unestimated, they cost no planning (sre4ai_web.lib.sql).
        failing_traces = scores.filter(AnyOf("trace_id", list(key_of), estimated=False), project=project, passed=False)
        for trace_pk in set(failing_traces.values_list("trace_id", flat=True)):
            failing[key_of[trace_pk]] = failing.get(key_of[trace_pk], 0) + 1
    return failing, {key: len(ids) for key, ids in sessions_of.items()}


@dataclass
class GroupSummary:
    """Totals over the traces of one session or one user."""

    traces: int
    first_seen: datetime | None
    last_seen: datetime | None
    cost: Decimal
    tokens: int
    duration_ms: float
    errors: int
    has_unpriced: bool


def _summary(qs: QuerySet[Trace]) -> GroupSummary:
    row = qs.aggregate(
        traces=Count("pk"),
        first_seen=Min("start_time"),
        last_seen=Max("start_time"),
        cost=Sum("cost"),
        tokens=Sum("total_tokens"),
        duration_ms=Sum("duration_ms"),
        errors=Count("pk", filter=Q(status="error")),
        unpriced=Count("pk", filter=Q(has_unpriced=True)),
    )
    return GroupSummary(
        traces=row["traces"],
        first_seen=row["first_seen"],
        last_seen=row["last_seen"],
        cost=row["cost"] or Decimal(0),
        tokens=row["tokens"] or 0,
        duration_ms=row["duration_ms"] or 0.0,
        errors=row["errors"],
        has_unpriced=row["unpriced"] > 0,
    )


def _failing_counts(project: Project, by: str, key: str) -> list[tuple[str, int]]:
    """Failing current scores over a session's or a user's traces (`by` is session_id or user_id): (score name,
    traces failing it), most first. Joined from those traces, an index lookup each, where a semi-join on the
    traces hashed every failing score of the project (85 ms for a user at 1M spans, 11 ms so)."""
    rows = (
        Score.objects.current()
        .filter(project=project, passed=False, trace__project=project, **{f"trace__{by}": key})
        .values("name")
        .annotate(traces=Count("trace_id", distinct=True))
        .order_by("-traces", "name")
    )
    return [(row["name"], row["traces"]) for row in rows]


@dataclass
class SessionView:
    session_id: str
    summary: GroupSummary
    turns: list[Trace]  # oldest first, each with scores_shown and failing_scores
    failing: list[tuple[str, int]]
    users: list[str]


def session_view(*, project: Project, session_id: str, limit: int = SESSION_TURNS) -> SessionView | None:
    """One conversation: its traces in time order (the first `limit`), their scores, and totals. None when the
    project has no trace with this session id."""
    qs = Trace.objects.filter(project=project, session_id=session_id)
    summary = _summary(qs)
    if not summary.traces:
        return None
    turns = list(qs.only(*LIST_COLUMNS).order_by("start_time", "id")[:limit])
    _attach_scores(turns)
    users = sorted({t.user_id for t in turns if t.user_id})
    return SessionView(session_id, summary, turns, _failing_counts(project, "session_id", session_id), users)


@dataclass
class UserView:
    user_id: str
    summary: GroupSummary
    recent: list[Trace]  # newest first
    sessions: list[dict[str, object]]
    failing: list[tuple[str, int]]


def user_view(*, project: Project, user_id: str, recent: int = 20) -> UserView | None:
    """One end user: totals, their newest traces, their sessions (newest first) and which checks failed for them.
    None when the project has no trace of this user."""
    qs = Trace.objects.filter(project=project, user_id=user_id)
    summary = _summary(qs)
    if not summary.traces:
        return None
    items = list(qs.only(*LIST_COLUMNS).order_by("-start_time", "-id")[:recent])
    _attach_scores(items)
    sessions = (
        qs.exclude(session_id="")
        .values("session_id")
        .annotate(
            first_seen=Min("start_time"),
            last_seen=Max("start_time"),
            traces=Count("pk"),
            cost=Sum("cost"),
            failing=Count("pk", filter=_failing_exists()),
        )
        .order_by("-last_seen", "session_id")[:GROUP_LIMIT]
    )
    return UserView(
        user_id, summary, items, [dict(row) for row in sessions], _failing_counts(project, "user_id", user_id)
    )
