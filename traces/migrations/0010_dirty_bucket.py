# The dirty-minute log moves from rollups to traces (it is the change log of trace minutes). State only: the
# model keeps its table (rollups_dirtybucket), so no row moves; rollups 0003 removes it from the rollups state.

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0008_project_redact_pii"),
        ("traces", "0009_span_response_id_index"),
        # The table was created by rollups 0001 (and filled by rollups 0002): it must exist before this state does.
        ("rollups", "0002_safety_flags"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="DirtyBucket",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                        ("minute", models.DateTimeField()),
                        ("marked_at", models.DateTimeField(auto_now=True)),
                        (
                            "project",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE, related_name="+", to="accounts.project"
                            ),
                        ),
                    ],
                    options={
                        "db_table": "rollups_dirtybucket",
                        "constraints": [models.UniqueConstraint(fields=("project", "minute"), name="dirty_bucket_unique")],
                    },
                ),
            ],
            database_operations=[],
        ),
    ]
