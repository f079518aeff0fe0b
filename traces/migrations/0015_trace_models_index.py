"""PostgreSQL only: a GIN index on a trace's models, so the trace list's model filter (``model_names @> '["m"]'``)
finds a rare model's traces without walking the whole list. SQLite (the embedded default) scans, as it does for
every other JSON filter."""

from django.db import migrations
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.state import StateApps


def create(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            "CREATE INDEX IF NOT EXISTS trace_models_gin ON traces_trace USING gin (model_names jsonb_path_ops)"
        )


def drop(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP INDEX IF EXISTS trace_models_gin")


class Migration(migrations.Migration):
    dependencies = [("traces", "0014_trace_cost_index_breaks_ties")]
    operations = [migrations.RunPython(create, drop)]
