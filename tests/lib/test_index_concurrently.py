"""An index on a partitioned table built without blocking writes (sre4ai_web.lib.migrations.add_index_concurrently,
used by migration traces 0015): on each partition concurrently, attached to an index ON ONLY the table, valid once
every partition has it; a run again finishes an interrupted build and does nothing when all is done."""

from __future__ import annotations

import importlib
from datetime import timedelta

import pytest
from django.apps import apps
from django.db import NotSupportedError, connection
from django.utils import timezone

from sre4ai_web.lib.partitions import partitions_ensure

pytestmark = [
    pytest.mark.postgres_only("partitioned tables and CREATE INDEX CONCURRENTLY"),
    pytest.mark.django_db(transaction=True),
]
migration = importlib.import_module("traces.migrations.0015_trace_models_index")
build = migration.Migration.operations[0].code  # the forward function of its index_concurrently operation


def indexes() -> tuple[bool | None, dict[str, bool]]:
    """The index's validity (None: absent) and, per partition of traces_trace, whether its attached index is valid."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass('trace_models_gin')")
        row = cursor.fetchone()
        cursor.execute(
            "SELECT t.relname, i.indisvalid FROM pg_inherits a JOIN pg_index i ON i.indexrelid = a.inhrelid "
            "JOIN pg_class t ON t.oid = i.indrelid WHERE a.inhparent = to_regclass('trace_models_gin')"
        )
        return (None if row is None else row[0]), dict(cursor.fetchall())


def partitions() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT c.relname FROM pg_inherits p JOIN pg_class c ON c.oid = p.inhrelid "
                       "WHERE p.inhparent = 'traces_trace'::regclass")  # fmt: skip
        return {row[0] for row in cursor.fetchall()}


def run() -> None:
    with connection.schema_editor(atomic=False) as editor:
        build(apps, editor)


def test_the_index_is_built_on_every_partition_and_a_rerun_finishes_an_interrupted_build() -> None:
    now = timezone.now()
    partitions_ensure("traces", [now - timedelta(days=d) for d in range(3)])
    with connection.cursor() as cursor:
        cursor.execute("DROP INDEX IF EXISTS trace_models_gin")
    assert indexes() == (None, {})

    run()
    valid, children = indexes()
    assert valid is True and set(children) == partitions() and all(children.values()) and len(children) >= 3

    # What a build stopped midway leaves: the index ON ONLY the table, one partition's build invalid, one missing.
    with connection.cursor() as cursor:
        first, second = sorted(children)[:2]
        cursor.execute("DROP INDEX trace_models_gin")
        cursor.execute("CREATE INDEX trace_models_gin ON ONLY traces_trace USING gin (model_names jsonb_path_ops)")
        cursor.execute(f"CREATE INDEX {first}_trace_models_gin ON {first} USING gin (model_names jsonb_path_ops)")
        cursor.execute(
            "UPDATE pg_index SET indisvalid = false WHERE indexrelid = %s::regclass", [f"{first}_trace_models_gin"]
        )
    assert indexes()[0] is False
    run()
    valid, children = indexes()
    assert valid is True and set(children) == partitions() and all(children.values())
    assert second in children

    run()  # all done: nothing to build
    assert indexes() == (valid, children)
    # A partition made later gets the index when it is attached.
    partitions_ensure("traces", [now + timedelta(days=20)])
    assert indexes()[0] is True and set(indexes()[1]) == partitions()

    with pytest.raises(NotSupportedError, match="atomic = False"), connection.schema_editor(atomic=True) as editor:
        build(apps, editor)
