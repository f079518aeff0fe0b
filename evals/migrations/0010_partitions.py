"""Time partitioning of traces, spans, retrieved documents and scores on PostgreSQL, by day of their (trace's)
start (sre4ai_web.lib.partitions). The scores' foreign keys to traces and spans stop being database constraints
(traces.0013 did the same for spans and documents), then the tables are partitioned here when they are empty (a new
installation). Tables that already hold rows are left as they are, working as before, until
``manage.py partitions_convert`` (docs/operations.md)."""

import datetime

from django.conf import settings
from django.db import migrations, models
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.state import StateApps

from sre4ai_web.lib.partitions import registered
from sre4ai_web.lib.partition_convert import convert


def partition(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    tables = [t for t in registered() if t.label.split(".")[0] in ("traces", "evals")]
    for line in convert(tables, datetime.datetime.now(datetime.UTC), with_data=False):
        print(f"\n  {line}", end="")


class Migration(migrations.Migration):
    dependencies = [
        ("evals", "0009_retention"),
        ("traces", "0013_partitions"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AlterField(
            model_name="score",
            name="trace",
            field=models.ForeignKey(
                db_constraint=False, on_delete=models.deletion.CASCADE, related_name="scores", to="traces.trace"
            ),
        ),
        migrations.AlterField(
            model_name="score",
            name="span",
            field=models.ForeignKey(
                blank=True, db_constraint=False, null=True, on_delete=models.deletion.CASCADE, related_name="scores",
                to="traces.span",
            ),
        ),
        migrations.AlterField(
            model_name="proberesult",
            name="trace",
            field=models.ForeignKey(
                blank=True, db_constraint=False, null=True, on_delete=models.deletion.SET_NULL, related_name="+",
                to="traces.trace",
            ),
        ),
        migrations.RunPython(partition, migrations.RunPython.noop, elidable=False),
    ]
