"""Bulk row writes of the span store (traces.services._store): COPY on PostgreSQL, the ORM on the embedded SQLite.

Rows are ``{attname: value}`` dicts with JSON values not yet encoded. On PostgreSQL new rows carry their primary
keys already (taken from the sequences with the batch's first read, see ``sequence``) and are streamed with COPY,
in psycopg's C code: far cheaper than INSERT parameters built in Python. Re-sent rows are updated in place through
a COPY into a temporary table.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import connection
from django.db.models import Field, JSONField, Model


@dataclass(frozen=True)
class Column:
    attname: str
    column: str
    is_json: bool
    nullable: bool


def columns(model: type[Model], names: Iterable[str]) -> list[Column]:
    fields = [model._meta.get_field(name) for name in names]
    return [Column(f.attname, str(f.column), isinstance(f, JSONField), f.null) for f in fields if isinstance(f, Field)]


# jsonb keeps no formatting, so the compact form; values come from decoded JSON or protobuf, which are trees, so the
# circular-reference check is skipped. Both save ~15% of the encoding; empty values (most spans' events,
# tool arguments, tags) skip the encoder call.
_encode_json = json.JSONEncoder(separators=(",", ":"), check_circular=False).encode


def _json_text(value: Any) -> str:
    if not value and isinstance(value, (list, dict)):
        return "[]" if isinstance(value, list) else "{}"
    return "null" if value is None else _encode_json(value)


def _copy(table: str, cols: Sequence[Column], rows: Iterable[dict[str, Any]]) -> None:
    quote = connection.ops.quote_name
    plain = [c.attname for c in cols if not c.is_json]
    json_columns = [(c.attname, c.nullable) for c in cols if c.is_json]
    order = ", ".join(quote(c.column) for c in [*(c for c in cols if not c.is_json), *(c for c in cols if c.is_json)])
    with connection.cursor() as cursor, cursor.cursor.copy(f"COPY {table} ({order}) FROM STDIN") as copy:
        for row in rows:
            values = [row[name] for name in plain]
            for name, nullable in json_columns:
                value = row[name]
                values.append(None if value is None and nullable else _json_text(value))
            copy.write_row(values)


@functools.cache
def sequence(table: str) -> str:
    """The sequence of a table's ``id`` (PostgreSQL), from which the store takes the keys of new rows."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [table])
        return str(cursor.fetchone()[0])


def rows_insert(model: type[Model], cols: Sequence[Column], rows: list[dict[str, Any]]) -> list[int]:
    """Insert the rows; returns their primary keys in order (on PostgreSQL the ``id`` each row already has)."""
    if not rows:
        return []
    if connection.vendor == "postgresql":
        _copy(model._meta.db_table, cols, rows)
        return [row["id"] for row in rows] if any(c.attname == "id" for c in cols) else []
    return [obj.pk for obj in model._default_manager.bulk_create([model(**row) for row in rows])]


def rows_update(model: type[Model], cols: Sequence[Column], rows: list[dict[str, Any]]) -> None:
    """Update rows in place by ``id`` (every column of ``cols`` but the key)."""
    if not rows:
        return
    if connection.vendor != "postgresql":
        fields = [c.attname for c in cols if c.attname != "id"]
        model._default_manager.bulk_update([model(**row) for row in rows], fields)
        return
    quote = connection.ops.quote_name
    table, temp = model._meta.db_table, f"{model._meta.db_table}_update"
    names = ", ".join(quote(c.column) for c in cols)
    updates = ", ".join(f"{quote(c.column)} = u.{quote(c.column)}" for c in cols if c.attname != "id")
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {temp} ON COMMIT DELETE ROWS AS "  # noqa: S608 (model columns)
            f"SELECT {names} FROM {table} WITH NO DATA"
        )
        cursor.execute(f"TRUNCATE {temp}")  # an earlier call in the same transaction left its rows
    _copy(temp, cols, rows)
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {table} s SET {updates} FROM {temp} u WHERE s.id = u.id")  # noqa: S608
