"""Ready for time partitioning of traces, spans and retrieved documents on PostgreSQL (sre4ai_web.lib.partitions):
the foreign keys between them stop being database constraints (a partitioned table's id alone is not unique), and
documents get their span's start time, the partition key (1970-01-01 for documents stored before). The tables are
partitioned by evals.0010_partitions, once the scores' foreign keys to them are gone too.
"""

import datetime

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("traces", "0012_retention"),
    ]

    operations = [
        migrations.AlterField(
            model_name="span",
            name="trace",
            field=models.ForeignKey(
                db_constraint=False, db_index=False, on_delete=models.deletion.CASCADE, related_name="spans",
                to="traces.trace",
            ),
        ),
        migrations.AlterField(
            model_name="retrieveddocument",
            name="span",
            field=models.ForeignKey(
                db_constraint=False, db_index=False, on_delete=models.deletion.CASCADE, related_name="documents",
                to="traces.span",
            ),
        ),
        migrations.AddField(
            model_name="retrieveddocument",
            name="start_time",
            field=models.DateTimeField(default=datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)),
            preserve_default=False,
        ),
    ]
