"""sre4ai_web/lib/pg_timestamps.py: PostgreSQL connections read timestamps with psycopg's compiled loader, and read
them exactly as Django's own loader does."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db import connection
from django.db.backends.postgresql.psycopg_any import register_tzloader
from psycopg import pq

from sre4ai_web.lib.pg_timestamps import UtcTimestampLoader

SAMPLES = """SELECT ts FROM (VALUES ('2026-12-07 12:25:54.183878+00'::timestamptz), ('1969-07-20 20:17:40+00'),
    ('2026-03-29 01:59:59.999999+01'), ('0001-01-01 00:00:00+00'), ('9999-12-31 23:59:59.5+00'),
    ('2026-12-07 12:00:00.01-09:30')) AS t(ts)"""


@pytest.mark.postgres_only("the loader is PostgreSQL's; SQLite's datetimes are Django's own converters")
@pytest.mark.django_db
def test_connections_read_timestamps_with_the_compiled_loader_and_the_same_values() -> None:
    connection.ensure_connection()
    oid = connection.connection.adapters.types["timestamptz"].oid
    assert connection.connection.adapters.get_loader(oid, pq.Format.TEXT) is UtcTimestampLoader
    with connection.cursor() as cursor:
        cursor.execute(SAMPLES)
        compiled = [row[0] for row in cursor.fetchall()]
    with connection.cursor() as cursor:
        register_tzloader(connection.timezone, cursor.cursor)  # Django's own loader, for this cursor only
        cursor.execute(SAMPLES)
        django_read = [row[0] for row in cursor.fetchall()]
    assert compiled == django_read
    assert [value.tzinfo for value in compiled] == [UTC] * len(SAMPLES.split("('")[1:])
    assert compiled[0] == datetime(2026, 12, 7, 12, 25, 54, 183878, tzinfo=UTC)
    assert compiled[5] == datetime(2026, 12, 7, 21, 30, 0, 10000, tzinfo=UTC)
