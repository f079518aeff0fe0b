# Retention (accounts.retention): evaluation events kept for a span that never arrived are removed by their age.

import django.utils.timezone
from django.db import migrations, models

from sre4ai_web.lib.migrations import AddIndexConcurrently


class Migration(migrations.Migration):
    # The index is built CONCURRENTLY on PostgreSQL (no write is blocked), which cannot run in a transaction.
    atomic = False

    dependencies = [
        ('evals', '0008_run_claims'),
    ]

    operations = [
        migrations.AddField(
            model_name='pendingevaluation',
            name='received_at',
            field=models.DateTimeField(default=django.utils.timezone.now),
        ),
        AddIndexConcurrently(
            model_name='pendingevaluation',
            index=models.Index(fields=['project', 'received_at'], name='pending_eval_received_idx'),
        ),
    ]
