"""Time partitioning of the rollups on PostgreSQL, by month of their bucket (sre4ai_web.lib.partitions), when
the tables are empty; tables with rows wait for ``manage.py partitions_convert`` (docs/operations.md)."""

import datetime

from django.db import migrations
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.state import StateApps

from sre4ai_web.lib.partitions import registered
from sre4ai_web.lib.partition_convert import convert


def partition(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    tables = [t for t in registered() if t.label.startswith("rollups.")]
    for line in convert(tables, datetime.datetime.now(datetime.UTC), with_data=False):
        print(f"\n  {line}", end="")


class Migration(migrations.Migration):
    dependencies = [
        ("rollups", "0003_dirty_bucket_to_traces"),
    ]

    operations = [
        migrations.RunPython(partition, migrations.RunPython.noop, elidable=False),
    ]
