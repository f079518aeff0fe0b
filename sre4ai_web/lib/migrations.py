"""Migration operations the framework lacks.

``add_index_concurrently``: the same for an index Django's models cannot declare (an operator class, an
expression, included columns) on a table that may be partitioned, from a ``RunPython``; ``index_concurrently``
is that ``RunPython``, with the drop that reverses it.

``AddIndexConcurrently``: an index on a table that can be large (spans, traces, log events) built without blocking
writes. On PostgreSQL it is ``CREATE INDEX CONCURRENTLY`` (Django's own operation of that name refuses other
databases); on SQLite, the embedded default, a plain ``CREATE INDEX``. The migration must set ``atomic = False``:
PostgreSQL builds such an index outside a transaction. A build that was interrupted (a deploy stopped midway)
leaves an invalid index behind; running ``migrate`` again drops it and builds it anew, and skips an index that a
previous run finished.
"""

from __future__ import annotations

from typing import Any

from django.db import NotSupportedError
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations import AddIndex, RunPython
from django.db.migrations.state import ProjectState, StateApps


class AddIndexConcurrently(AddIndex):
    def database_forwards(
        self, app_label: str, schema_editor: BaseDatabaseSchemaEditor, from_state: ProjectState, to_state: ProjectState
    ) -> None:
        connection = schema_editor.connection
        if connection.vendor != "postgresql":
            super().database_forwards(app_label, schema_editor, from_state, to_state)
            return
        model = to_state.apps.get_model(app_label, self.model_name)
        if not self.allow_migrate_model(connection.alias, model):
            return
        if connection.in_atomic_block:
            raise NotSupportedError(f"{self.describe()}: set atomic = False on the migration (CONCURRENTLY).")
        if _needs_build(schema_editor, self.index.name):
            schema_editor.add_index(model, self.index, concurrently=True)  # type: ignore[call-arg]

    def database_backwards(
        self, app_label: str, schema_editor: BaseDatabaseSchemaEditor, from_state: ProjectState, to_state: ProjectState
    ) -> None:
        connection = schema_editor.connection
        if connection.vendor != "postgresql":
            super().database_backwards(app_label, schema_editor, from_state, to_state)
            return
        model = from_state.apps.get_model(app_label, self.model_name)
        if self.allow_migrate_model(connection.alias, model):
            schema_editor.remove_index(model, self.index, concurrently=True)  # type: ignore[call-arg]


def _index_valid(schema_editor: BaseDatabaseSchemaEditor, name: str) -> bool | None:
    """True: the index exists and is usable; False: a build was interrupted; None: no such index."""
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(
            "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE c.relname = %s AND pg_table_is_visible(i.indrelid)",
            [name],
        )
        row: Any = cursor.fetchone()
    return None if row is None else bool(row[0])


def add_index_concurrently(schema_editor: BaseDatabaseSchemaEditor, *, name: str, table: str, using: str) -> None:
    """``CREATE INDEX name ON table USING …`` on PostgreSQL without blocking writes (nothing on other databases). A
    partitioned table refuses CONCURRENTLY: the index is made ON ONLY the table, built concurrently on each
    partition that lacks it and attached; it is valid once every partition has it (a partition made meanwhile gets
    it when attached). Like ``AddIndexConcurrently``: the migration sets ``atomic = False``, and a run again
    drops an interrupted build and skips what is done."""
    connection = schema_editor.connection
    if connection.vendor != "postgresql":
        return
    if connection.in_atomic_block:
        raise NotSupportedError(f"index {name}: set atomic = False on the migration (CONCURRENTLY).")
    quote = schema_editor.quote_name
    with connection.cursor() as cursor:
        cursor.execute("SELECT relkind FROM pg_class WHERE oid = %s::regclass", [table])
        partitioned = cursor.fetchone()[0] == "p"
    if not partitioned:
        _build_concurrently(schema_editor, name, table, using)
        return
    schema_editor.execute(f"CREATE INDEX IF NOT EXISTS {quote(name)} ON ONLY {quote(table)} USING {using}")
    with connection.cursor() as cursor:
        # The partitions without an index attached to this one.
        cursor.execute(
            "SELECT c.relname FROM pg_inherits p JOIN pg_class c ON c.oid = p.inhrelid WHERE p.inhparent = %s::regclass "
            "AND c.oid NOT IN (SELECT i.indrelid FROM pg_inherits a JOIN pg_index i ON i.indexrelid = a.inhrelid "
            "WHERE a.inhparent = %s::regclass) ORDER BY 1",
            [table, name],
        )
        missing = [row[0] for row in cursor.fetchall()]
    for partition in missing:
        child = f"{partition}_{name}"[:63]
        _build_concurrently(schema_editor, child, partition, using)
        schema_editor.execute(f"ALTER INDEX {quote(name)} ATTACH PARTITION {quote(child)}")
    if not _index_valid(schema_editor, name):
        raise NotSupportedError(f"index {name}: a partition of {table} still lacks it; run migrate again.")


def _build_concurrently(schema_editor: BaseDatabaseSchemaEditor, name: str, table: str, using: str) -> None:
    if _needs_build(schema_editor, name):
        quote = schema_editor.quote_name
        schema_editor.execute(f"CREATE INDEX CONCURRENTLY {quote(name)} ON {quote(table)} USING {using}")


def _needs_build(schema_editor: BaseDatabaseSchemaEditor, name: str) -> bool:
    """Whether the index is still to be built: False when it exists and is valid; an interrupted build is dropped."""
    valid = _index_valid(schema_editor, name)
    if valid is False:
        schema_editor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {schema_editor.quote_name(name)}")
    return not valid


def index_concurrently(*, name: str, table: str, using: str) -> RunPython:
    """The migration operation that builds ``CREATE INDEX name ON table USING …`` with ``add_index_concurrently``
    (PostgreSQL only) and drops it when migrating back. The migration sets ``atomic = False``."""

    def create(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
        add_index_concurrently(schema_editor, name=name, table=table, using=using)

    def drop(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(f"DROP INDEX IF EXISTS {schema_editor.quote_name(name)}")

    return RunPython(create, drop)
