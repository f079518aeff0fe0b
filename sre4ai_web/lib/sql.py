"""SQL expressions the ORM lacks, for PostgreSQL and the embedded SQLite of `make run`.

- ``AnyOf``: ``column = ANY(array)``, a list of ids as one parameter. ``__in`` sends one parameter per id;
  with thousands of ids (an incident's traces, a rollup batch) Django prepares each value and psycopg quotes
  each into the statement, which cost more than running the query. The array travels as one text
  (``'{1,2,3}'::int2[]``, the element type psycopg would choose): psycopg's dumping of a Python list, element by element, cost ~0.6 µs an id (10 ms
  for an incident page's 16,000 span ids), the text ~0.1 µs.
- ``JsonArrayHas``: a JSON array column holds a value (PostgreSQL's ``@>``; SQLite has no ``__contains`` on JSON).
- ``EpochMinute``: a timestamp as whole minutes since 1970, an integer: reading tens of thousands of minute
  rows as ``datetime`` objects cost more than the query.
- ``JsonString``: a JSON object column's key when its value is a string, else NULL, read as text: reading the
  key as JSON decodes each value in Python (an incident page's 12,000 documents: ~20 ms of it).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import BigIntegerField, F, Func, Lookup, TextField
from django.db.models.sql.compiler import SQLCompiler


def _smallest_int_type(values: list[int]) -> str:
    """The array's element type as psycopg would choose it for a Python list, the smallest that holds every value.
    PostgreSQL plans ``bigint_column = ANY(int4[])`` unlike ``= ANY(bigint[])`` (the latter chose a sequential scan
    of a day's spans for an incident's 2,000 traces, 18 ms against 12 through the index), so the plans stay those
    the list parameter had."""
    low, high = (min(values), max(values)) if values else (0, 0)
    for name, bits in (("int2", 15), ("int4", 31)):
        if -(2**bits) <= low and high < 2**bits:
            return name
    return "int8"


class AnyOf(Lookup):
    """A filter expression: ``Score.objects.filter(AnyOf("trace_id", trace_pks))``.

    ``estimated=False``: PostgreSQL's planner is not shown the ids; it gets them when the query runs (an
    ``InitPlan``), and plans as for an array of unknown length. Shown a constant array, it estimates each id against
    each partition's statistics: for an incident page's 8,000 span ids over a week of daily partitions that took
    31 ms of planning for 20 ms of execution. For lists of thousands of ids read through their index, where no
    estimate would change the plan."""

    lookup_name = "any_of"
    prepare_rhs = False

    def __init__(self, field: str, values: Iterable[int], *, estimated: bool = True) -> None:
        super().__init__(F(field), [int(v) for v in values])
        self.estimated = estimated

    def as_sql(self, compiler: SQLCompiler, connection: BaseDatabaseWrapper) -> tuple[str, tuple[Any, ...]]:
        lhs, lhs_params = self.process_lhs(compiler, connection)
        array = f"%s::{_smallest_int_type(self.rhs)}[]"
        if not self.estimated:
            array = f"ARRAY(SELECT unnest({array}))"
        return f"{lhs} = ANY({array})", (*lhs_params, "{" + ",".join(map(str, self.rhs)) + "}")

    def as_sqlite(self, compiler: SQLCompiler, connection: BaseDatabaseWrapper) -> tuple[str, tuple[Any, ...]]:
        # The embedded database of `make run` has no arrays: the ids travel as one JSON text.
        lhs, lhs_params = self.process_lhs(compiler, connection)
        sql = f"{lhs} IN (SELECT value FROM json_each(%s))"  # noqa: S608 - lhs is the compiled column, not input
        return sql, (*lhs_params, json.dumps(self.rhs))


class JsonArrayHas(Lookup):
    """A filter expression: ``Trace.objects.filter(JsonArrayHas("model_names", "gpt-4o"))``."""

    lookup_name = "json_array_has"
    prepare_rhs = False

    def __init__(self, field: str, value: str) -> None:
        super().__init__(F(field), value)

    def as_sql(self, compiler: SQLCompiler, connection: BaseDatabaseWrapper) -> tuple[str, tuple[Any, ...]]:
        lhs, lhs_params = self.process_lhs(compiler, connection)
        return f"{lhs} @> %s::jsonb", (*lhs_params, json.dumps([self.rhs]))

    def as_sqlite(self, compiler: SQLCompiler, connection: BaseDatabaseWrapper) -> tuple[str, tuple[Any, ...]]:
        lhs, lhs_params = self.process_lhs(compiler, connection)
        sql = f"EXISTS (SELECT 1 FROM json_each({lhs}) WHERE value = %s)"  # noqa: S608 - lhs is the compiled column
        return sql, (*lhs_params, self.rhs)


class EpochMinute(Func):
    """Whole minutes since 1970-01-01 UTC of a timestamp column: ``values_list(EpochMinute("minute"))``."""

    output_field = BigIntegerField()

    def __init__(self, field: str) -> None:
        super().__init__(F(field))

    def as_sql(  # type: ignore[override]
        self, compiler: SQLCompiler, connection: BaseDatabaseWrapper
    ) -> tuple[str, tuple[Any, ...]]:
        column, params = compiler.compile(self.source_expressions[0])
        return f"(EXTRACT(EPOCH FROM {column})::bigint / 60)", tuple(params)

    def as_sqlite(  # type: ignore[override]
        self, compiler: SQLCompiler, connection: BaseDatabaseWrapper
    ) -> tuple[str, tuple[Any, ...]]:
        column, params = compiler.compile(self.source_expressions[0])
        return f"(CAST(strftime('%%s', {column}) AS INTEGER) / 60)", tuple(params)


class JsonString(Func):
    """``values_list(JsonString("metadata", "source"))``: the key's value when it is a JSON string, else None (a
    number, an object, no such key)."""

    output_field = TextField()

    def __init__(self, field: str, key: str) -> None:
        super().__init__(F(field))
        self.key = key

    def as_sql(  # type: ignore[override]
        self, compiler: SQLCompiler, connection: BaseDatabaseWrapper
    ) -> tuple[str, tuple[Any, ...]]:
        column, params = compiler.compile(self.source_expressions[0])
        sql = f"CASE WHEN jsonb_typeof({column} -> %s) = 'string' THEN {column} ->> %s END"
        return sql, (*params, self.key, *params, self.key)

    def as_sqlite(  # type: ignore[override]
        self, compiler: SQLCompiler, connection: BaseDatabaseWrapper
    ) -> tuple[str, tuple[Any, ...]]:
        column, params = compiler.compile(self.source_expressions[0])
        path = "$." + json.dumps(self.key)  # quoted as Django quotes JSON keys (SQLite: no double quote inside)
        sql = f"CASE WHEN json_type({column}, %s) = 'text' THEN json_extract({column}, %s) END"
        return sql, (*params, path, *params, path)
