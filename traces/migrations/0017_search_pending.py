"""Ingest leaves the trigram index's work to a follow-up (traces.search_index): a trace is written with
``search_pending`` set, and the trigram index now holds only the traces whose flag is cleared. The pending ones,
a few seconds of ingest, are found through a small partial index and their text tested row by row, so search
stays exact at every moment (``front.selectors``). Why: the trigram index was the largest single cost of
ingest in PostgreSQL (docs/benchmarks.md §1, "Distinct texts").

PostgreSQL only for the indexes (SQLite, the embedded default, has no trigram index). Upgrading: the new trigram
index is built over every trace before the old one is dropped, without blocking ingest (partition by partition,
``CONCURRENTLY``): search stays fast throughout, and the build takes about as long as the old index's did. The
column's database default (false) keeps the rows that older nodes write during a rolling upgrade indexed as
before."""

from django.db import migrations, models
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.state import StateApps

from sre4ai_web.lib.migrations import add_index_concurrently, index_concurrently

INDEXED = "trace_search_indexed_trgm"
INDEXED_USING = "gin (UPPER(search_text) gin_trgm_ops) WHERE NOT search_pending"
PENDING = "trace_search_pending_idx"
PENDING_USING = "btree (project_id, start_time DESC, id DESC) WHERE search_pending"
OLD = "trace_search_trgm"
OLD_USING = "gin (UPPER(search_text) gin_trgm_ops)"


def drop_old(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP INDEX IF EXISTS {OLD}")


def restore_old(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    add_index_concurrently(schema_editor, name=OLD, table="traces_trace", using=OLD_USING)


class Migration(migrations.Migration):
    atomic = False  # CONCURRENTLY
    dependencies = [("traces", "0016_trace_groups_index")]
    operations = [
        migrations.AddField(
            model_name="trace", name="search_pending", field=models.BooleanField(db_default=False, default=False)
        ),
        index_concurrently(name=INDEXED, table="traces_trace", using=INDEXED_USING),
        index_concurrently(name=PENDING, table="traces_trace", using=PENDING_USING),
        migrations.RunPython(drop_old, restore_old),
    ]
