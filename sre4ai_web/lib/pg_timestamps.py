"""PostgreSQL timestamps read by psycopg's compiled loader rather than Django's.

Django registers on every PostgreSQL connection a loader for ``timestamp with time zone`` written in Python (a
regular expression and a ``replace`` per value, ~5 µs): a page that reads thousands of timestamps (an incident's
traces, a rollup series) spent tens of milliseconds there. With the ``psycopg[binary]`` package the same parse is
compiled (~0.5 µs). Django sets each connection's time zone to UTC, so the compiled loader returns the same
aware datetimes, in ``datetime.timezone.utc``, as Django's does.
"""

from __future__ import annotations

from datetime import UTC
from typing import Any

import psycopg
from psycopg import pq
from psycopg.abc import Loader as LoaderType
from psycopg.adapt import Loader
from psycopg.types import TypeInfo

_TIMESTAMPTZ = psycopg.postgres.types.get("timestamptz")
assert isinstance(_TIMESTAMPTZ, TypeInfo)
# The compiled loader when psycopg's binary package is installed (requirements.txt), else its Python one.
_FOUND = psycopg.adapters.get_loader(_TIMESTAMPTZ.oid, pq.Format.TEXT)
assert _FOUND is not None
_COMPILED: type[LoaderType] = _FOUND


class UtcTimestampLoader(Loader):
    # Django's cursor compares this with the connection's time zone, and registers its own loader when they differ.
    timezone = UTC

    def __init__(self, oid: int, context: Any = None) -> None:
        super().__init__(oid, context)
        self._load = _COMPILED(oid, context).load

    def load(self, data: Any) -> Any:
        return self._load(data)


def use_compiled_timestamps(sender: object, connection: Any, **kwargs: object) -> None:
    """``connection_created`` receiver: a new PostgreSQL connection in UTC reads timestamps with the compiled loader."""
    if connection.vendor == "postgresql" and connection.timezone is UTC:
        connection.connection.adapters.register_loader("timestamptz", UtcTimestampLoader)
