"""PostgreSQL only: a GIN index on a trace's models, so the trace list's model filter (``model_names @> '["m"]'``)
finds a rare model's traces without walking the whole list. Built without blocking ingest (partition by
partition, ``CREATE INDEX CONCURRENTLY``: 3 s for 250,000 traces). SQLite (the embedded default) scans, as it does
for every other JSON filter."""

from django.db import migrations

from sre4ai_web.lib.migrations import index_concurrently

NAME = "trace_models_gin"


class Migration(migrations.Migration):
    atomic = False  # CONCURRENTLY
    dependencies = [("traces", "0014_trace_cost_index_breaks_ties")]
    operations = [index_concurrently(name=NAME, table="traces_trace", using="gin (model_names jsonb_path_ops)")]
