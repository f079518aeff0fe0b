"""Turning a plain table into a partitioned one (sre4ai_web.lib.partitions), with or without its data.

An empty table (a new installation: the migrations do it) is simply replaced. A table with data is not copied: the
old table becomes the partition ``<table>_legacy`` for every time before a cutoff (the start of the period
after the latest time ingest accepts: the day after tomorrow by default), and new periods get partitions of
their own. So the work is in the catalog and takes seconds whatever the size:

1. ``prepare`` (the application keeps running; nothing is blocked): rows without a time get one (``backfill``);
   every unique index gets a copy ending with the time column, built ``CONCURRENTLY``; a CHECK constraint
   ``time < cutoff`` is added ``NOT VALID`` and then validated (a scan that blocks no write).
2. ``swap`` (one short transaction, with an ACCESS EXCLUSIVE lock on the table): the old table and its indexes are
   renamed, a partitioned table of the same columns, defaults, foreign keys to plain tables and indexes (unique
   ones with the time column added) takes its name and sequence, and the old table is attached as its legacy
   partition. The validated CHECK spares PostgreSQL the scan of the partition constraint, and the indexes built in
   step 1 are attached as the legacy partition's, so nothing is rebuilt under the lock.

The legacy partition is pruned like any other by queries of recent times; retention deletes its expired rows in
batches as before, and drops it whole once its cutoff has expired.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction

from sre4ai_web.lib.partitions import PartitionedTable, floor, following, forget, is_partitioned, partitions_upkeep

logger = logging.getLogger(__name__)


def cutoff_for(spec: PartitionedTable, now: datetime) -> datetime:
    """The legacy partition ends at the start of the period after the latest time ingest accepts
    (SRE4AI_INGEST_MAX_FUTURE_SECONDS ahead, a day by default): rows written while converting still fit in it."""
    ahead = timedelta(seconds=max(settings.INGEST_MAX_FUTURE_SECONDS, 24 * 3600))
    return following(floor(now + ahead, spec.step), spec.step)


def _quote(name: str) -> str:
    return str(connection.ops.quote_name(name))


def _rows(table: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT EXISTS (SELECT 1 FROM {_quote(table)})")  # noqa: S608
        return bool(cursor.fetchone()[0])


def _unique_indexes(table: str) -> list[tuple[str, list[str], bool, str | None]]:
    """(index name, columns, is the primary key, name of the constraint it backs) of the table's unique indexes."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, ARRAY(SELECT a.attname FROM unnest(i.indkey) WITH ORDINALITY k(attnum, n) "
            "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum ORDER BY k.n), "
            "i.indisprimary, con.conname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "LEFT JOIN pg_constraint con ON con.conindid = i.indexrelid AND con.contype IN ('p', 'u') "
            "WHERE i.indrelid = to_regclass(%s) AND i.indisunique",
            [table],
        )
        return [(r[0], list(r[1]), bool(r[2]), r[3]) for r in cursor.fetchall()]


def _keyed_name(name: str) -> str:
    return f"{name[:52]}_keyed"


def prepare(spec: PartitionedTable, cutoff: datetime) -> None:
    """Step 1 (outside a transaction: CONCURRENTLY): see the module's docstring."""
    table, column = spec.table, _quote(spec.column)
    with connection.cursor() as cursor:
        if spec.backfill:
            cursor.execute(spec.backfill)
        for name, columns, _, _ in _unique_indexes(table):
            if spec.column in columns or name.endswith("_keyed"):
                continue
            keyed = ", ".join(_quote(c) for c in [*columns, spec.column])
            cursor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {_quote(_keyed_name(name))}")  # an interrupted build
            cursor.execute(f"CREATE UNIQUE INDEX CONCURRENTLY {_quote(_keyed_name(name))} ON {_quote(table)} ({keyed})")
        check = _quote(f"{table[:48]}_legacy_range")
        cursor.execute(f"ALTER TABLE {_quote(table)} DROP CONSTRAINT IF EXISTS {check}")
        cursor.execute(
            f"ALTER TABLE {_quote(table)} ADD CONSTRAINT {check} "
            f"CHECK ({column} IS NOT NULL AND {column} < %s) NOT VALID",
            [cutoff],
        )
        cursor.execute(f"ALTER TABLE {_quote(table)} VALIDATE CONSTRAINT {check}")


def _index_definitions(table: str) -> list[tuple[str, str, bool]]:
    """(name, CREATE INDEX statement, backs a constraint) of every index but the primary key and step 1's."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, pg_get_indexdef(i.indexrelid), con.oid IS NOT NULL FROM pg_index i "
            "JOIN pg_class c ON c.oid = i.indexrelid "
            "LEFT JOIN pg_constraint con ON con.conindid = i.indexrelid AND con.contype = 'u' "
            "WHERE i.indrelid = to_regclass(%s) AND NOT i.indisprimary",
            [table],
        )
        return [(r[0], r[1], bool(r[2])) for r in cursor.fetchall() if not r[0].endswith("_keyed")]


def _foreign_keys(table: str) -> list[tuple[str, str]]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = to_regclass(%s) "
            "AND contype = 'f'",
            [table],
        )
        return list(cursor.fetchall())


def _drop_references(table: str) -> None:
    """Foreign keys of other tables to this one (a partitioned table's id alone is not unique): the models declare
    them without a database constraint; one left from an older schema goes."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT conrelid::regclass::text, conname FROM pg_constraint WHERE confrelid = to_regclass(%s) "
            "AND contype = 'f'",
            [table],
        )
        for referrer, name in cursor.fetchall():
            cursor.execute(f"ALTER TABLE {referrer} DROP CONSTRAINT {_quote(name)}")


def swap(spec: PartitionedTable, cutoff: datetime | None) -> None:
    """Step 2 (one transaction). ``cutoff`` None: the table is empty and is dropped instead of attached."""
    table, legacy = spec.table, f"{spec.table}_legacy"
    q = _quote
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"LOCK TABLE {q(table)} IN ACCESS EXCLUSIVE MODE")
        _drop_references(table)
        indexes = _index_definitions(table)
        uniques = _unique_indexes(table)
        foreign = _foreign_keys(table)
        cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [table])
        sequence = cursor.fetchone()[0]
        cursor.execute(f"SELECT last_value FROM {sequence}")  # noqa: S608
        last = int(cursor.fetchone()[0])
        cursor.execute(
            "SELECT attidentity FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attname = 'id'", [table]
        )
        if cursor.fetchone()[0]:
            cursor.execute(f"ALTER TABLE {q(table)} ALTER COLUMN id DROP IDENTITY")  # drops its sequence
        else:
            cursor.execute(f"ALTER TABLE {q(table)} ALTER COLUMN id DROP DEFAULT")
            cursor.execute(f"DROP SEQUENCE {sequence}")
        names = {u[0] for u in uniques} | {i[0] for i in indexes}
        for name in sorted(n for n in names if not n.endswith("_keyed")):
            cursor.execute(f"ALTER INDEX {q(name)} RENAME TO {q(name[:55] + '_legacy')}")
        for name, _ in foreign:
            cursor.execute(f"ALTER TABLE {q(table)} RENAME CONSTRAINT {q(name)} TO {q(name[:55] + '_legacy')}")
        cursor.execute(f"ALTER TABLE {q(table)} RENAME TO {q(legacy)}")

        cursor.execute(
            f"CREATE TABLE {q(table)} (LIKE {q(legacy)} INCLUDING DEFAULTS INCLUDING STORAGE INCLUDING COMPRESSION) "
            f"PARTITION BY RANGE ({q(spec.column)})"
        )
        # Sequences hand out numbers outside transactions: start well past the last one a writer may hold.
        cursor.execute(f"CREATE SEQUENCE {sequence} OWNED BY {q(table)}.id START {last + 1000}")
        cursor.execute(f"ALTER TABLE {q(table)} ALTER COLUMN id SET DEFAULT nextval('{sequence}'::regclass)")
        for name, definition in foreign:
            cursor.execute(f"ALTER TABLE {q(table)} ADD CONSTRAINT {q(name)} {definition}")
        for name, columns, primary, constraint in uniques:
            if name.endswith("_keyed"):
                continue
            keyed = ", ".join(q(c) for c in dict.fromkeys([*columns, spec.column]))
            kind = "PRIMARY KEY" if primary else "UNIQUE"
            cursor.execute(f"ALTER TABLE {q(table)} ADD CONSTRAINT {q(constraint or name)} {kind} ({keyed})")
        for _, definition, _ in indexes:
            if definition.startswith("CREATE UNIQUE"):
                continue  # made above with the unique ones
            cursor.execute(re.sub(r" ON (\S+) USING", f" ON {q(table)} USING", definition, count=1))
        cursor.execute(f"CREATE TABLE {q(table + '_default')} PARTITION OF {q(table)} DEFAULT")
        if cutoff is None:
            cursor.execute(f"DROP TABLE {q(legacy)}")
        else:
            _attach_legacy(spec, legacy, uniques)
            cursor.execute(
                f"ALTER TABLE {q(table)} ATTACH PARTITION {q(legacy)} FOR VALUES FROM (MINVALUE) TO (%s)", [cutoff]
            )
    forget()


def _attach_legacy(spec: PartitionedTable, legacy: str, uniques: list[tuple[str, list[str], bool, str | None]]) -> None:
    """Make the legacy table's keys those of the partitioned table from the indexes ``prepare`` built, so that
    ATTACH finds them instead of building new ones under the lock."""
    q = _quote
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE {q(legacy)} ALTER COLUMN {q(spec.column)} SET NOT NULL")  # by the CHECK: no scan
        for name, columns, primary, _ in uniques:
            if name.endswith("_keyed") or spec.column in columns:
                continue  # a key with the time column already serves the partitioned table as it is
            keyed = _keyed_name(name)
            if primary:
                cursor.execute(
                    "SELECT conname FROM pg_constraint WHERE conrelid = to_regclass(%s) AND contype = 'p'", [legacy]
                )
                cursor.execute(f"ALTER TABLE {q(legacy)} DROP CONSTRAINT {q(cursor.fetchone()[0])}")
                cursor.execute(f"ALTER TABLE {q(legacy)} ADD PRIMARY KEY USING INDEX {q(keyed)}")
            else:
                cursor.execute(f"ALTER TABLE {q(legacy)} ADD CONSTRAINT {q(keyed)} UNIQUE USING INDEX {q(keyed)}")


def convert(specs: list[PartitionedTable], now: datetime, *, with_data: bool) -> list[str]:
    """Partition every table of ``specs`` that is not yet (PostgreSQL). Empty tables are replaced; a table with
    rows is converted only with ``with_data`` (the command; a migration leaves it to the command). Returns what was
    done, a line per table."""
    done: list[str] = []
    if connection.vendor != "postgresql":
        return done
    forget()
    for spec in specs:
        if is_partitioned(spec.table):
            continue
        if not _rows(spec.table):
            swap(spec, None)
            done.append(f"{spec.table}: partitioned (it was empty)")
        elif with_data:
            cutoff = cutoff_for(spec, now)
            prepare(spec, cutoff)
            swap(spec, cutoff)
            done.append(
                f"{spec.table}: partitioned; its rows before {cutoff:%Y-%m-%d} are the partition {spec.table}_legacy"
            )
        else:
            done.append(f"{spec.table}: has rows, left unpartitioned: run manage.py partitions_convert")
    forget()
    partitions_upkeep(now)
    return done
