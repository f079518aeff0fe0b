"""PostgreSQL only: the failing scores of each check, in trace order, holding what the trace list's failing filter
reads (``front.selectors._filtered``: name, trace, trace start, superseded; failing only). A week's count of traces
failing grounding at 10M spans probed every score of the week's traces for the check (a merge on the trace index,
253 ms, past the count's 250 ms limit, so the page said "not counted"); from this index PostgreSQL hashes the
week's failing scores alone, 80-100 ms (docs/benchmarks.md §17). Failing scores are a small share, so the index is
small and scoring writes one entry per failing score. Built without blocking scoring, partition by partition.
SQLite (the embedded default) has no covering indexes and small data."""

from django.db import migrations

from sre4ai_web.lib.migrations import index_concurrently

NAME = "score_failing_trace_idx"
USING = "btree (name, trace_id) INCLUDE (trace_start, superseded) WHERE NOT passed"


class Migration(migrations.Migration):
    atomic = False  # CONCURRENTLY
    dependencies = [("evals", "0012_score_superseded")]
    operations = [index_concurrently(name=NAME, table="evals_score", using=USING)]
