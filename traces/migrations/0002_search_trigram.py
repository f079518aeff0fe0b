"""PostgreSQL only: a trigram index so the trace list's text search stays fast on large tables.

Django's icontains compiles to ``UPPER(col) LIKE UPPER(%s)`` on PostgreSQL, so the index is on UPPER().
"""

from django.db import migrations
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.state import StateApps


def create(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    schema_editor.execute(
        "CREATE INDEX IF NOT EXISTS trace_search_trgm ON traces_trace USING gin (UPPER(search_text) gin_trgm_ops)"
    )


def drop(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP INDEX IF EXISTS trace_search_trgm")


class Migration(migrations.Migration):
    dependencies = [("traces", "0001_initial")]
    operations = [migrations.RunPython(create, drop)]
