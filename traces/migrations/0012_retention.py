# Retention (accounts.retention): gen_ai log events are removed by their time, oldest first, per project.

from django.db import migrations, models

from sre4ai_web.lib.migrations import AddIndexConcurrently


class Migration(migrations.Migration):
    # The log event table grows with ingest: its index is built CONCURRENTLY on PostgreSQL (writes go on), which
    # cannot run in a transaction.
    atomic = False

    dependencies = [
        ('traces', '0011_followup_claims'),
    ]

    operations = [
        AddIndexConcurrently(
            model_name='pendinglogevent',
            index=models.Index(fields=['project', 'time_unix_nano'], name='log_time_idx'),
        ),
    ]
