"""Time partitions of the high-volume tables (PostgreSQL declarative partitioning; docs/operations.md, "Partitions").

On PostgreSQL the tables the apps register here (spans, traces, retrieved documents and scores by day, rollups by
month) are range-partitioned on their time column: a partition per day (``<table>_p20261206``) or month
(``<table>_p202612``), a default partition (``<table>_default``) that catches a row whose period has no partition
yet (an ORM write of an odd time; the next upkeep moves its rows into their partition), and, after
``manage.py partitions_convert`` on a database that had data, the old table attached whole as
``<table>_legacy`` for everything before the conversion's cutoff. Queries with a time range scan only the
partitions of that range; retention drops a partition whole once every project's data in it has expired
(``partitions_drop``), instead of deleting its rows.

PostgreSQL requires the partition column in every primary key and unique constraint, so on these tables they end
with it: (id, start_time), (project, trace_id, start_time)… Rows keep ids from one sequence, so an id still names
one row; writers that deduplicate (ingest, scores) do so under their own locks (traces.services, evals.services).
SQLite, the embedded default, keeps plain tables: everything here is then a no-op.

Partitions are made ahead by the beat task ``accounts.tasks.partitions_upkeep`` and on demand by ingest
(``partitions_ensure``) for a span of a day that has none (an old-but-accepted or a future one). Creating one
takes only a SHARE UPDATE EXCLUSIVE lock on the table (a new table attached, not CREATE … PARTITION OF), so reads
and writes go on.
"""

from __future__ import annotations

import logging
import re
import zlib
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db import DatabaseError, connection, transaction

logger = logging.getLogger(__name__)

DAY, MONTH = "day", "month"
RAW, AGGREGATE = "raw", "aggregate"
# Advisory lock namespace of partition creation (see sre4ai_web.beat.LOCK_NAMESPACE for the others).
LOCK_NAMESPACE = 5173
# How far ahead upkeep makes partitions, in steps: a week of days, two months.
AHEAD = {DAY: 7, MONTH: 2}


@dataclass(frozen=True)
class PartitionedTable:
    label: str  # the model label ("traces.Span"): what retention records as removed
    table: str
    column: str  # the partition key: the row's time
    step: str  # DAY or MONTH
    group: str  # RAW or AGGREGATE: which retention drops it
    # SQL of a row's project in a partition aliased ``p``; a table without the column names a sibling partitioned
    # table of the same period (``via``: its table and the key column pointing at it), e.g. documents via spans.
    via: tuple[str, str] | None = None
    # Rows with no time yet (written before the column was always set) are given one before conversion.
    backfill: str = ""


@dataclass(frozen=True)
class Partition:
    name: str
    low: datetime | None  # None: MINVALUE (the legacy partition)
    high: datetime | None  # None on the default partition
    default: bool = False


@dataclass
class Dropped:
    label: str
    project_id: int
    rows: int
    oldest: datetime
    newest: datetime
    estimated: bool = False  # rows from the table statistics (``_per_project``)


_TABLES: list[PartitionedTable] = []
DropHook = Callable[[PartitionedTable, str], None]
_DROP_HOOKS: list[DropHook] = []


def register(table: PartitionedTable) -> None:
    """Called by an app's ``ready()`` for each of its time-partitioned tables (children after their parents)."""
    if table not in _TABLES:
        _TABLES.append(table)


def on_drop(hook: DropHook) -> None:
    """``hook(table, partition)`` runs just before a partition is dropped, in the dropping transaction: for what
    points at its rows without a database constraint and is not dropped with it."""
    if hook not in _DROP_HOOKS:
        _DROP_HOOKS.append(hook)


def registered(group: str | None = None) -> list[PartitionedTable]:
    return [t for t in _TABLES if group is None or t.group == group]


def floor(moment: datetime, step: str) -> datetime:
    """Start of the partition period holding ``moment`` (UTC)."""
    moment = moment.astimezone(UTC)
    day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    return day if step == DAY else day.replace(day=1)


def following(start: datetime, step: str) -> datetime:
    if step == DAY:
        return start + timedelta(days=1)
    return (start + timedelta(days=32)).replace(day=1)


def partition_name(table: str, start: datetime, step: str) -> str:
    return f"{table}_p{start:%Y%m%d}" if step == DAY else f"{table}_p{start:%Y%m}"


_partitioned: dict[str, bool] = {}


def is_partitioned(table: str) -> bool:
    """Whether ``table`` is a partitioned table (PostgreSQL). Known once per process: after converting tables
    (``partitions_convert``) restart the nodes, as after any migration."""
    if connection.vendor != "postgresql":
        return False
    if table not in _partitioned:
        with connection.cursor() as cursor:
            cursor.execute("SELECT relkind = 'p' FROM pg_class WHERE oid = to_regclass(%s)", [table])
            row = cursor.fetchone()
        _partitioned[table] = bool(row and row[0])
    return _partitioned[table]


def forget() -> None:
    """Forget what is known of the layout (after a conversion in this process)."""
    _partitioned.clear()
    _known.clear()


_BOUND = re.compile(r"FROM \((.+?)\) TO \((.+?)\)")


def _bound(text: str) -> datetime | None:
    text = text.strip("'")
    return None if text == "MINVALUE" else datetime.fromisoformat(text).astimezone(UTC)


def partitions(table: str) -> list[Partition]:
    """The partitions of a partitioned table, from the catalog, oldest first (the default one last)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
            "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = to_regclass(%s)",
            [table],
        )
        rows = cursor.fetchall()
    found = []
    for name, bound in rows:
        if bound == "DEFAULT":
            found.append(Partition(name, None, None, default=True))
            continue
        match = _BOUND.search(bound)
        if match:
            found.append(Partition(name, _bound(match.group(1)), _bound(match.group(2))))
    return sorted(found, key=lambda p: (p.default, p.low or datetime.min.replace(tzinfo=UTC)))


# Per process: the periods each table is known to have a partition for (refreshed from the catalog on a miss).
_known: dict[str, list[Partition]] = {}


def _covered(parts: list[Partition], start: datetime) -> bool:
    return any(
        not p.default and (p.low is None or p.low <= start) and p.high is not None and start < p.high for p in parts
    )


def _columns(table: str) -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attnum > 0 AND NOT attisdropped "
            "ORDER BY attnum",
            [table],
        )
        return [r[0] for r in cursor.fetchall()]


def _create(spec: PartitionedTable, start: datetime) -> bool:
    """Make the partition of ``spec`` for the period from ``start``, moving into it any rows of that period the
    default partition caught. Creators are serialised per table; returns False if it existed already."""
    end = following(start, spec.step)
    name = partition_name(spec.table, start, spec.step)
    quote = connection.ops.quote_name
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [LOCK_NAMESPACE, zlib.crc32(spec.table.encode()) >> 1])
        parts = partitions(spec.table)
        if _covered(parts, start):
            return False
        cursor.execute(
            f"CREATE TABLE {quote(name)} (LIKE {quote(spec.table)} "
            "INCLUDING DEFAULTS INCLUDING STORAGE INCLUDING COMPRESSION)"
        )
        default = next((p for p in parts if p.default), None)
        if default is not None:
            names = ", ".join(quote(c) for c in _columns(spec.table))
            column = quote(spec.column)
            cursor.execute(
                f"WITH moved AS (DELETE FROM {quote(default.name)} WHERE {column} >= %s AND {column} < %s "  # noqa: S608
                f"RETURNING {names}) INSERT INTO {quote(name)} ({names}) SELECT {names} FROM moved",
                [start, end],
            )
        cursor.execute(
            f"ALTER TABLE {quote(spec.table)} ATTACH PARTITION {quote(name)} FOR VALUES FROM (%s) TO (%s)", [start, end]
        )
    logger.info("partitions: created %s", name)
    return True


def partitions_ensure(group: str, moments: Iterable[datetime]) -> int:
    """Make sure every table of ``group`` has a partition for each moment's period (ingest calls this before
    writing, so a row never lands in the default partition for want of one). Cheap when they exist: a lookup in
    what this process knows. Returns the partitions created."""
    created = 0
    for spec in registered(group):
        if not is_partitioned(spec.table):
            continue
        starts = {floor(m, spec.step) for m in moments}
        missing = [s for s in sorted(starts) if not _covered(_known.get(spec.table, []), s)]
        if not missing:
            continue
        _known[spec.table] = partitions(spec.table)
        making = [start for start in missing if not _covered(_known[spec.table], start)]
        for start in making:
            created += _create_or_log(spec, start)
        if making:  # read again next time: a creation rolled back with its transaction is not there
            _known.pop(spec.table)
    return created


def partitions_upkeep(now: datetime) -> int:
    """Make the partitions from the day (month) before ``now`` to AHEAD steps after it, and move rows the default
    partitions caught into partitions of their own. Returns the partitions created."""
    created = 0
    for spec in registered():
        if not is_partitioned(spec.table):
            continue
        start = floor(now, spec.step)
        moments = [start - timedelta(days=1)]
        for _ in range(AHEAD[spec.step] + 1):
            moments.append(start)
            start = following(start, spec.step)
        created += partitions_ensure_table(spec, moments)
        created += _rehome_default(spec)
    return created


def partitions_ensure_table(spec: PartitionedTable, moments: Iterable[datetime]) -> int:
    parts = partitions(spec.table)
    starts = sorted({floor(m, spec.step) for m in moments})
    return sum(_create_or_log(spec, s) for s in starts if not _covered(parts, s))


def _create_or_log(spec: PartitionedTable, start: datetime) -> bool:
    """A partition that cannot be made (a race with a write of its period into the default partition, a lock) is
    not an error of the caller: its rows go to the default partition, and the next upkeep tries again."""
    try:
        return _create(spec, start)
    except DatabaseError:
        logger.exception("partitions: making the partition of %s from %s failed", spec.table, start)
        return False


def _rehome_default(spec: PartitionedTable) -> int:
    """Give the rows the default partition caught a partition of their period (oldest periods first, a few per
    run): they are then pruned and dropped like the others. Rows without a time stay there."""
    default = next((p for p in partitions(spec.table) if p.default), None)
    if default is None:
        return 0
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT DISTINCT date_trunc(%s, {quote(spec.column)} AT TIME ZONE 'UTC') "  # noqa: S608
            f"FROM {quote(default.name)} WHERE {quote(spec.column)} IS NOT NULL LIMIT 31",
            [spec.step],
        )
        starts = [r[0].replace(tzinfo=UTC) for r in cursor.fetchall()]
    return partitions_ensure_table(spec, starts)


def _analysed(name: str) -> float:
    """The partition's row count as its statistics have it (``reltuples``), analysed first when they are missing or
    older than its last write. ANALYZE reads a sample of 30,000 rows whatever the table's size."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.reltuples, coalesce(s.n_mod_since_analyze, 1) FROM pg_class c "
            "LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid WHERE c.oid = %s::regclass",
            [name],
        )
        rows, modified = cursor.fetchone()
        if rows < 0 or modified > 0:
            cursor.execute(f"ANALYZE {connection.ops.quote_name(name)}")
            cursor.execute("SELECT reltuples FROM pg_class WHERE oid = %s::regclass", [name])
            rows = cursor.fetchone()[0]
    return max(float(rows), 0.0)


def _per_project(spec: PartitionedTable, partition: Partition) -> list[tuple[int, int, datetime, datetime, bool]]:
    """(project id, rows, oldest, newest, estimated) of a partition, before it is dropped.

    Counting a day's rows per project would take minutes at hundreds of millions of spans (4 µs a span) for a drop
    of a second, so the projects the statistics know (their most common values of ``project_id``: every project of
    a day with few of them) get an estimate: their share of the sample times the partition's rows, over the
    partition's period. Rows of other projects (too few to be among them) are counted, with their times."""
    quote = connection.ops.quote_name
    column = f"p.{quote(spec.column)}"
    source = f"{quote(partition.name)} p"
    project = "p.project_id"
    by_project = partition.name
    if spec.via is not None:
        parent, key = spec.via
        by_project = parent + partition.name[len(spec.table) :]
        source += f" JOIN {quote(by_project)} v ON v.id = p.{quote(key)}"
        project = "v.project_id"
    common: list[int] = []
    shares: list[float] = []
    out: list[tuple[int, int, datetime, datetime, bool]] = []
    if partition.low is not None and partition.high is not None:  # a period (the legacy partition is counted)
        rows = _analysed(partition.name)
        if by_project != partition.name:
            _analysed(by_project)
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT most_common_vals::text, most_common_freqs FROM pg_stats "
                "WHERE schemaname = current_schema() AND tablename = %s AND attname = 'project_id'",
                [by_project],
            )
            found = cursor.fetchone()
        if found and found[0]:
            common, shares = [int(v) for v in found[0].strip("{}").split(",")], list(found[1])
        last = partition.high - timedelta(microseconds=1)
        out = [
            (pk, round(share * rows), partition.low, last, True)
            for pk, share in zip(common, shares, strict=True)
            if round(share * rows)
        ]
    with connection.cursor() as cursor:
        if sum(shares) < 0.9999:  # some rows belong to projects the statistics do not list
            cursor.execute(
                f"SELECT {project}, count(*), min({column}), max({column}) FROM {source} "  # noqa: S608
                f"WHERE {project} <> ALL(%s::bigint[]) GROUP BY 1",
                [common],
            )
            out += [(int(r[0]), int(r[1]), r[2], r[3], False) for r in cursor.fetchall()]
    return out


def partitions_drop(group: str, before: datetime) -> list[Dropped]:
    """Drop every partition of ``group`` whose period ends at or before ``before`` (every project's rows in it have
    expired), children before their parents; returns the rows each project lost per table (estimated or counted
    first, ``_per_project``).
    A drop that cannot take its lock within half a second is left for the next run."""
    dropped: list[Dropped] = []
    quote = connection.ops.quote_name
    for spec in reversed(registered(group)):
        if not is_partitioned(spec.table):
            continue
        for partition in partitions(spec.table):
            if partition.default or partition.high is None or partition.high > before:
                continue
            counts = _per_project(spec, partition)
            try:
                with transaction.atomic(), connection.cursor() as cursor:
                    # The drop needs an ACCESS EXCLUSIVE lock on the table for a moment: queries arriving while it
                    # waits for a running one queue behind it, so it waits at most half a second.
                    cursor.execute("SET LOCAL lock_timeout = '500ms'")
                    # Deferred foreign key checks of this transaction's earlier writes (there are none in the beat
                    # task; a caller's transaction may have some) would forbid the drop: run them now.
                    cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
                    for hook in _DROP_HOOKS:
                        hook(spec, partition.name)
                    cursor.execute(f"DROP TABLE {quote(partition.name)}")
            except DatabaseError:  # a long query holds the table: the next sweep drops it
                logger.exception("partitions: dropping %s failed", partition.name)
                continue
            logger.info("partitions: dropped %s", partition.name)
            dropped += [Dropped(spec.label, *row) for row in counts]
    _known.clear()
    return dropped


def oldest_kept(group: str, cutoff: datetime) -> datetime | None:
    """For a project whose retention is the longest of its group: rows older than this are in partitions that
    ``partitions_drop`` removes whole, so row by row deletion stops here (None: no partitioned table, delete up
    to the cutoff). A period's rows are therefore kept until the whole period has expired (up to a day, or a
    month for rollups, longer than the retention)."""
    steps = {t.step for t in registered(group) if is_partitioned(t.table)}
    if not steps:
        return None
    return min(floor(cutoff, step) for step in steps)


def counts_by_partition(table: str) -> dict[str, int]:
    """Rows per partition (tests and the conversion's report)."""
    quote = connection.ops.quote_name
    found: dict[str, int] = defaultdict(int)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT tableoid::regclass::text, count(*) FROM {quote(table)} GROUP BY 1")  # noqa: S608
        for name, rows in cursor.fetchall():
            found[name] = rows
    return dict(found)
