"""PostgreSQL only: a covering index for the session and user lists (``front.selectors.group_list``). They group
every trace of a time range by session or user; the index holds what that grouping reads, so PostgreSQL reads the
range from the index alone instead of the traces' wide rows (a week at 10M spans: 583,000 traces, 540 MB of rows,
620 ms, against about 220 ms from the index: docs/benchmarks.md §17). Built without blocking ingest, partition by
partition. SQLite (the embedded default) has no covering indexes and small data."""

from django.db import migrations

from sre4ai_web.lib.migrations import index_concurrently

NAME = "trace_groups_idx"
USING = "btree (project_id, start_time) INCLUDE (id, session_id, user_id, service, environment, cost, total_tokens)"


class Migration(migrations.Migration):
    atomic = False  # CONCURRENTLY
    dependencies = [("traces", "0015_trace_models_index")]
    operations = [index_concurrently(name=NAME, table="traces_trace", using=USING)]
