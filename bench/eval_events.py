"""Evaluation-event ingest: gen_ai.evaluation.result log records through /v1/logs (issue 17).

Usage (from the repository root, with the project's virtual environment):

    .venv/bin/python bench/eval_events.py --traces 3000 --batch 100 --clients 2

Starts gunicorn (``--gunicorn WORKERSxTHREADS``, default 2x4) on a fresh PostgreSQL database
``sre4ai_bench_evals`` with a project and key, stores ``--traces`` two-span traces through /v1/traces (the
spans to evaluate), then sends the same number of log records, ``--batch`` per OTLP/protobuf request, from
``--clients`` threads, in four phases:

- ``peer``: the gen_ai.choice log events older instrumentations send for the same spans (the existing /v1/logs
  path: kept, then the stored span is re-normalised) — the same endpoint, record count and batch size;
- ``after-span``: one evaluation per stored span, linked by trace_id / span_id (the common case);
- ``resend``: the same evaluations again (idempotent: the scores are replaced, none added);
- ``before-span``: evaluations of spans not sent yet (kept as PendingEvaluation), then those spans, whose ingest
  applies them (reported as spans/s of that ingest).

The spans are sent first on their own (``spans``), which is the peer of that last phase. Each phase reports records per second acknowledged (all requests answered 200 with no rejection), request
latency p50 / p99, and the rows it left (scores, pending evaluations), checked against what it must leave.
Everything runs on 127.0.0.1; the database is dropped at the end.
"""

from __future__ import annotations

import argparse
import http.client
import json
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from common import REPO, flush_broker, machine, pg_execute, pg_scalar, snapshot
from ingest import free_port, manage, sre4ai_env, stop_group, wait_http
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.trace.v1.trace_pb2 import Span

DB = "sre4ai_bench_evals"
Pair = tuple[bytes, bytes]  # (trace id, span id) of an evaluated LLM span


def kv(key: str, value: Any) -> KeyValue:
    if isinstance(value, float):
        return KeyValue(key=key, value=AnyValue(double_value=value))
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=str(value)))


def spans_request(pairs: list[Pair]) -> bytes:
    request = ExportTraceServiceRequest()
    resource = request.resource_spans.add()
    resource.resource.attributes.append(kv("service.name", "bench-app"))
    scope = resource.scope_spans.add()
    now = time.time_ns()
    for trace_id, span_id in pairs:
        root = secrets.token_bytes(8)
        scope.spans.append(
            Span(
                trace_id=trace_id,
                span_id=root,
                name="answer",
                start_time_unix_nano=now,
                end_time_unix_nano=now + 900_000_000,
            )
        )
        scope.spans.append(
            Span(
                trace_id=trace_id,
                span_id=span_id,
                parent_span_id=root,
                name="chat gpt-4o-mini",
                start_time_unix_nano=now + 1_000_000,
                end_time_unix_nano=now + 800_000_000,
                attributes=[
                    kv("gen_ai.operation.name", "chat"),
                    kv("gen_ai.request.model", "gpt-4o-mini"),
                    kv("gen_ai.usage.input_tokens", 300),
                    kv("gen_ai.usage.output_tokens", 40),
                ],
            )
        )
    return request.SerializeToString()


def logs_request(records: list[LogRecord]) -> bytes:
    request = ExportLogsServiceRequest()
    resource = request.resource_logs.add()
    resource.resource.attributes.append(kv("service.name", "bench-evaluator"))
    resource.scope_logs.add().log_records.extend(records)
    return request.SerializeToString()


def evaluation(pair: Pair, i: int) -> LogRecord:
    value = (i % 100) / 100
    return LogRecord(
        time_unix_nano=time.time_ns(),
        event_name="gen_ai.evaluation.result",
        trace_id=pair[0],
        span_id=pair[1],
        attributes=[
            kv("gen_ai.evaluation.name", "relevance"),
            kv("gen_ai.evaluation.score.value", value),
            kv("gen_ai.evaluation.score.label", "pass" if value >= 0.5 else "fail"),
            kv("gen_ai.evaluation.explanation", "The answer addresses the question asked."),
        ],
    )


def choice(pair: Pair, _i: int) -> LogRecord:
    body = AnyValue()
    body.kvlist_value.values.extend([kv("index", 0), kv("finish_reason", "stop")])
    message = body.kvlist_value.values.add(key="message")
    message.value.kvlist_value.values.extend([kv("role", "assistant"), kv("content", "Refunds take 14 days.")])
    return LogRecord(
        time_unix_nano=time.time_ns(),
        event_name="gen_ai.choice",
        trace_id=pair[0],
        span_id=pair[1],
        body=body,
        attributes=[kv("gen_ai.system", "openai")],
    )


def send_all(
    port: int, path: str, bodies: list[bytes], headers: dict[str, str], clients: int, check: Callable[[bytes], bool]
) -> tuple[float, list[float]]:
    """POST every body (clients threads, one keep-alive connection each); seconds taken and latencies (ms)."""
    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()
    queue = list(reversed(bodies))

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        while True:
            with lock:
                if not queue:
                    break
                body = queue.pop()
            started = time.perf_counter()
            conn.request("POST", path, body=body, headers=headers)
            response = conn.getresponse()
            answer = response.read()
            elapsed = (time.perf_counter() - started) * 1000
            with lock:
                latencies.append(elapsed)
                if response.status != 200 or not check(answer):
                    failures.append(f"{response.status} {answer[:300]!r}")
        conn.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    if failures:
        raise RuntimeError(f"{len(failures)} requests failed, e.g. {failures[0]}")
    return seconds, latencies


def logs_ok(answer: bytes) -> bool:
    return not ExportLogsServiceResponse.FromString(answer).partial_success.rejected_log_records


def traces_ok(answer: bytes) -> bool:
    return not ExportTraceServiceResponse.FromString(answer).partial_success.error_message


def summary(name: str, records: int, seconds: float, latencies: list[float], **rows: int) -> dict[str, Any]:
    ordered = sorted(latencies)
    result = {
        "phase": name,
        "records": records,
        "seconds": round(seconds, 2),
        "per_second": round(records / seconds),
        "p50_ms": round(statistics.median(ordered), 1),
        "p99_ms": round(ordered[int(0.99 * (len(ordered) - 1))], 1),
        **rows,
    }
    print(json.dumps(result), flush=True)
    return result


def count(table: str, where: str = "TRUE") -> int:
    return int(pg_scalar(f"SELECT count(*) FROM {table} WHERE {where}", DB))  # noqa: S608


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--traces", type=int, default=3000)
    parser.add_argument("--batch", type=int, default=100, help="log records (or traces) per request")
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--gunicorn", default="2x4", help="WORKERSxTHREADS")
    args = parser.parse_args()
    workers, threads = (int(v) for v in args.gunicorn.split("x"))
    print(json.dumps({"machine": machine(), "args": vars(args)}), flush=True)

    with tempfile.TemporaryDirectory(prefix="bench-evals-") as tmp:
        src = snapshot(Path(tmp) / "src")
        (src / ".venv").symlink_to(REPO / ".venv")
        var_dir = str(Path(tmp) / "var")
        pg_execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
        pg_execute(f"CREATE DATABASE {DB}")
        env = sre4ai_env(DB, var_dir)
        manage(src, "migrate", "--noinput", "-v", "0", env=env)
        manage(src, "create_project", "bench", env=env)
        secret = json.loads(manage(src, "create_api_key", "bench", "--json", env=env).strip().splitlines()[-1])
        headers = {"Authorization": f"Bearer {secret['secret_key']}", "Content-Type": "application/x-protobuf"}
        port = free_port()
        log = Path(tmp) / "gunicorn.log"
        with log.open("wb") as out:
            server = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "gunicorn",
                    "sre4ai_web.wsgi:application",
                    "--bind",
                    f"127.0.0.1:{port}",
                    "--workers",
                    str(workers),
                    "--threads",
                    str(threads),
                    "--log-level",
                    "warning",
                ],
                cwd=src,
                env=env,
                stdout=out,
                stderr=out,
                start_new_session=True,
            )
        try:
            wait_http(port, "/login/", server, 60, log)
            n, batch = args.traces, args.batch
            stored = [(secrets.token_bytes(16), secrets.token_bytes(8)) for _ in range(n)]
            later = [(secrets.token_bytes(16), secrets.token_bytes(8)) for _ in range(n)]
            chunks = [stored[i : i + batch] for i in range(0, n, batch)]
            seconds, latencies = send_all(
                port, "/v1/traces", [spans_request(c) for c in chunks], headers, args.clients, traces_ok
            )
            spans_alone = summary("spans", 2 * n, seconds, latencies)

            def log_bodies(pairs: list[Pair], make: Callable[[Pair, int], LogRecord]) -> list[bytes]:
                return [
                    logs_request([make(p, i + j) for j, p in enumerate(pairs[i : i + batch])])
                    for i in range(0, len(pairs), batch)
                ]

            results = []
            for phase, pairs, make in [
                ("peer", stored, choice),
                ("after-span", stored, evaluation),
                ("resend", stored, evaluation),
                ("before-span", later, evaluation),
            ]:
                seconds, latencies = send_all(port, "/v1/logs", log_bodies(pairs, make), headers, args.clients, logs_ok)
                scores, pending = count("evals_score", "source = 'app'"), count("evals_pendingevaluation")
                results.append(summary(phase, len(pairs), seconds, latencies, scores=scores, pending=pending))
            if (results[1]["scores"], results[2]["scores"], results[3]["pending"]) != (n, n, n):
                raise RuntimeError(f"expected {n} scores after each send and {n} pending: {results}")
            bodies = [spans_request(later[i : i + batch]) for i in range(0, n, batch)]
            seconds, latencies = send_all(port, "/v1/traces", bodies, headers, args.clients, traces_ok)
            scores, pending = count("evals_score", "source = 'app'"), count("evals_pendingevaluation")
            results.append(summary("spans-applying-pending", 2 * n, seconds, latencies, scores=scores, pending=pending))
            if (scores, pending) != (2 * n, 0):
                raise RuntimeError(f"expected {2 * n} scores and none pending once the spans arrived: {results}")
            ratios = {
                "evaluations_vs_peer_log_events": round(results[1]["per_second"] / results[0]["per_second"], 2),
                "spans_applying_pending_vs_spans": round(results[4]["per_second"] / spans_alone["per_second"], 2),
            }
            print(json.dumps(ratios), flush=True)
        finally:
            stop_group(server)
            pg_execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
            flush_broker()


if __name__ == "__main__":
    main()
