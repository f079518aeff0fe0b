"""Grow a page-benchmark database tenfold: copies of its raw rows (traces, spans, retrieved documents, scores).

Usage (from the repository root), after building the one-million-span database as docs/benchmarks.md §13 says:

    createdb -h 127.0.0.1 -U postgres -T sre4ai_pagebench_1m sre4ai_pagebench_10m   # a copy to grow (6 GB)
    .venv/bin/python bench/grow_db.py --db sre4ai_pagebench_10m --copies 9          # 1M -> 10M spans (~55 GB)
    .venv/bin/python bench/dashboards.py --db sre4ai_pagebench_10m --repeat 7 --json /tmp/pages-10m.json

(or measure the one-million-span database first and grow it in place, where the disk has no room for both).

Filling ten million spans through ingest and rebuilding the rollups and SLI history from them takes hours on
two cores; this takes minutes. Each copy ``k`` of the bench project's rows gets new primary keys (``id + k *
OFFSET``), new trace ids, and its own conversations and users (``session-1~k``, ``user-7~k``), at the same start
times: the same 30 days hold ten times the traffic, in the same daily partitions, so every query that reads raw
rows (the trace list and its searches, sessions and users, a service's slowest and runaway traces, incident and
canary examples, budgets) reads ten times as many. The per-minute rollups and SLI minutes are left as they were:
their row counts depend on minutes, services and evaluators, not on traffic, so the pages that read them cost
what they would at ten times the traffic, but their figures stay those of the one-million-span data (the pages
then disagree with the lists by a factor of ten; this database is for timing only).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import PG_BASE_URL

# Far above the ids of the one-million-span database (250,000 traces, 1M spans, 2M scores).
OFFSET = 100_000_000
PROJECT = "(SELECT id FROM accounts_project WHERE slug = 'bench')"


def _suffixed(column: str) -> str:
    return f"CASE WHEN {column} = '' THEN '' ELSE {column} || '~' || k END"


# (table, column list, the SELECT expressions in that order, the filter on the bench project)
COPIES = [
    (
        "traces_trace",
        "id, trace_id, service, environment, name, start_time, end_time, duration_ms, status, span_count, error_count, "
        "model_names, input_tokens, output_tokens, total_tokens, cost, has_unpriced, session_id, user_id, release, "
        "tags, root_span_id, input_preview, output_preview, search_text, updated_at, project_id",
        f"id + k * {OFFSET}, left(md5(trace_id || '~' || k), 32), service, environment, name, start_time, end_time, "
        "duration_ms, status, span_count, error_count, model_names, input_tokens, output_tokens, total_tokens, cost, "
        f"has_unpriced, {_suffixed('session_id')}, {_suffixed('user_id')}, release, tags, root_span_id, "
        "input_preview, output_preview, search_text, updated_at, project_id",
        f"project_id = {PROJECT}",
    ),
    (
        "traces_span",
        "id, span_id, parent_span_id, name, kind, start_time, end_time, duration_ms, status, status_message, service, "
        "environment, release, session_id, user_id, tags, trace_name, model, request_model, provider, input_tokens, "
        "output_tokens, total_tokens, cache_read_tokens, cache_write_tokens, cost, cost_source, prompt_name, "
        "prompt_version, tool_name, tool_args, tool_result, input, output, input_preview, output_preview, "
        "model_parameters, finish_reason, completion_start_time, attributes, resource, scope, events, otlp_kind, "
        "otlp_status_code, source, updated_at, project_id, trace_id",
        f"id + k * {OFFSET}, span_id, parent_span_id, name, kind, start_time, end_time, duration_ms, status, "
        f"status_message, service, environment, release, {_suffixed('session_id')}, {_suffixed('user_id')}, tags, "
        "trace_name, model, request_model, provider, input_tokens, output_tokens, total_tokens, cache_read_tokens, "
        "cache_write_tokens, cost, cost_source, prompt_name, prompt_version, tool_name, tool_args, tool_result, input, "
        "output, input_preview, output_preview, model_parameters, finish_reason, completion_start_time, attributes, "
        f"resource, scope, events, otlp_kind, otlp_status_code, source, updated_at, project_id, trace_id + k * {OFFSET}",
        f"project_id = {PROJECT}",
    ),
    (
        "traces_retrieveddocument",
        "id, position, document_id, score, content, metadata, span_id, start_time",
        f"id + k * {OFFSET}, position, document_id, score, content, metadata, span_id + k * {OFFSET}, start_time",
        f"span_id IN (SELECT id FROM traces_span WHERE project_id = {PROJECT} AND id < {OFFSET})",  # noqa: S608
    ),
    (
        "evals_score",
        "id, key, name, value, label, passed, explanation, evidence, evaluator, evaluator_version, source, comment, "
        "cost, created_at, updated_at, author_id, project_id, span_id, trace_id, service, trace_start, superseded",
        f"id + k * {OFFSET}, key || '~' || k, name, value, label, passed, explanation, evidence, evaluator, "
        "evaluator_version, source, comment, cost, created_at, updated_at, author_id, project_id, "
        f"span_id + k * {OFFSET}, trace_id + k * {OFFSET}, service, trace_start, superseded",
        f"project_id = {PROJECT}",
    ),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--db", required=True, help="The database to grow (a copy: it is changed in place).")
    parser.add_argument("--copies", type=int, default=9, help="Copies added to the original (9: ten times).")
    args = parser.parse_args()
    with psycopg.connect(f"{PG_BASE_URL}/{args.db}", autocommit=True) as conn:
        conn.execute("SET synchronous_commit = off")
        conn.execute("SET maintenance_work_mem = '1GB'")
        grown = conn.execute(f"SELECT count(*) FROM traces_trace WHERE id >= {OFFSET}").fetchone()  # noqa: S608
        if grown and grown[0]:
            print(f"{args.db} was grown already ({grown[0]} copied traces): build it again from the original")
            return 1
        for k in range(1, args.copies + 1):
            for table, columns, expressions, where in COPIES:
                started = time.monotonic()
                done = conn.execute(
                    f"INSERT INTO {table} ({columns}) SELECT {expressions} FROM {table}, (SELECT {k} AS k) c "  # noqa: S608
                    f"WHERE {where} AND id < {OFFSET}"
                )
                print(f"copy {k}: {table} {done.rowcount:,} rows in {time.monotonic() - started:.0f} s", flush=True)
        for table, *_ in COPIES:  # new rows written by the pages' setup must not collide with the copies
            conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}) + 1, false)"  # noqa: S608
            )
        started = time.monotonic()
        conn.execute("VACUUM ANALYZE")
        print(f"VACUUM ANALYZE in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
