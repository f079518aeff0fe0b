"""Ingest benchmark: OTLP/protobuf batches against sre4ai (gunicorn + PostgreSQL) and Arize Phoenix.

Usage (from the repository root, with the project's virtual environment):

    .venv/bin/python bench/ingest.py --target both --duration 30 --concurrency 8
    .venv/bin/python bench/ingest.py --target sre4ai --gunicorn 2x1,3x4,4x1 --json /tmp/ingest.json
    .venv/bin/python bench/ingest.py --target sre4ai --gunicorn 3x1 --profile /tmp/ingest-profile
    .venv/bin/python bench/ingest.py --target sre4ai --gunicorn 3x4 --concurrency 4 --texts repeated,distinct,distinct,repeated

For each target the script starts the server itself on 127.0.0.1 with a free port and a fresh
database, sends the same payloads (bench/payload.py: ~2.2 KB spans whose texts differ from span to span, or with
``--texts repeated`` the earlier ~1.95 KB spans built from 48 variants; 100 spans per request) from several
client processes for a fixed time, then reports spans per second acknowledged, spans per second
durably stored (COUNT(*) of the server's span table over the same window), request latency
percentiles, lost spans (acknowledged but not stored after the drain period) and the server's memory.

sre4ai: a PostgreSQL database ``sre4ai_bench`` (dropped and re-created, migrated once into
``sre4ai_bench_template``), a project and key made by ``manage.py create_project`` and
``create_api_key --json``, then gunicorn with each ``--gunicorn WORKERSxTHREADS`` configuration.

Phoenix: ``phoenix serve`` from its own virtual environment (``--phoenix-venv``, default
/tmp/phoenix-venv; create it with ``python3 -m venv /tmp/phoenix-venv && /tmp/phoenix-venv/bin/pip
install arize-phoenix``), with a fresh PHOENIX_WORKING_DIR, external resources and telemetry off, and its
default SQLite storage (or PostgreSQL with ``--phoenix-db postgresql``).

Every process the script starts runs in its own session and is stopped (process group, by id) at the end.
Traffic goes only to 127.0.0.1; the run is bounded by --duration, --warmup and --drain.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import itertools
import json
import math
import multiprocessing as mp
import os
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import psycopg.sql
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import BROKER_URL, PG_BASE_URL, flush_broker, machine, pg_execute, pg_scalar, snapshot
from payload import request_stream

# BENCH_DB_PREFIX keeps runs of several people on one PostgreSQL apart (each drops and re-creates its databases).
SRE4AI_DB = os.environ.get("BENCH_DB_PREFIX", "sre4ai_bench")
SRE4AI_TEMPLATE_DB = f"{SRE4AI_DB}_template"
PHOENIX_DB = f"{SRE4AI_DB}_phoenix" if "BENCH_DB_PREFIX" in os.environ else "phoenix_bench"
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --- processes: start, stop, measure ----------------------------------------------------------------


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    return children


def process_tree(root: int) -> list[int]:
    children = _children_map()
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def _read_kb(path: str, key: str) -> int:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(key):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime + stime
    return total / CLK_TCK


def machine_busy_seconds() -> float:
    """CPU seconds spent on anything but idle and iowait, all cores, since boot (/proc/stat)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:8]]
    user, nice, system, _idle, _iowait, irq, softirq = fields
    return (user + nice + system + irq + softirq) / CLK_TCK


def postgres_pids(database: str | None) -> list[int]:
    """The server's background processes and the backends connected to ``database``.

    Backends of other databases (other people's test runs on a shared machine) count as other CPU.
    Their title is "postgres: 15/main: USER DATABASE HOST(PORT) STATE"; background processes have no "(".
    """
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if Path(f"/proc/{entry}/comm").read_text().strip() != "postgres":
                    continue
                title = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            words = title.split()
            if "(" not in title or (database is not None and len(words) > 4 and words[3] == database):
                pids.append(int(entry))
    return pids


class Sampler:
    """Samples RSS/PSS of a process tree every 0.5 s; keeps the peak."""

    def __init__(self, root: int):
        self.root = root
        self.peak_rss_kb = 0
        self.peak_pss_kb = 0
        self.processes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> None:
        pids = process_tree(self.root)
        rss = sum(_read_kb(f"/proc/{p}/status", "VmRSS:") for p in pids)
        pss = sum(_read_kb(f"/proc/{p}/smaps_rollup", "Pss:") for p in pids)
        self.peak_rss_kb = max(self.peak_rss_kb, rss)
        self.peak_pss_kb = max(self.peak_pss_kb, pss)
        self.processes = len(pids)

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            self.sample()

    def __enter__(self) -> Sampler:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()


def stop_group(proc: subprocess.Popen[bytes], timeout: float = 15) -> None:
    """Stop a server started with start_new_session=True: SIGTERM its process group, then SIGKILL."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


def wait_http(port: int, path: str, proc: subprocess.Popen[bytes], timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}; see {log}:\n{log.read_text()[-3000:]}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", path)
            conn.getresponse().read()
            conn.close()
            return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"server did not answer on port {port} within {timeout}s; see {log}")


# --- databases -------------------------------------------------------------------------------------


def pg_count(dbname: str, table: str) -> int:
    return int(pg_scalar(f"SELECT count(*) FROM {table}", dbname))  # noqa: S608


def manage(src: Path, *args: str, env: dict[str, str]) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=src, env=env, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


def sre4ai_env(dbname: str, var_dir: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "DATABASE_URL": f"{PG_BASE_URL}/{dbname}",
            "DJANGO_DEBUG": "0",
            "SRE4AI_VAR_DIR": var_dir,
            "CELERY_BROKER_URL": BROKER_URL,
            "LOG_LEVEL": "WARNING",
        }
    )
    return env


def prepare_sre4ai_template(src: Path, var_dir: str, drop_indexes: Sequence[str] = ()) -> str:
    """Migrate a template database once and create the project and key in it; return the secret key."""
    pg_execute(f"DROP DATABASE IF EXISTS {SRE4AI_TEMPLATE_DB} WITH (FORCE)")
    pg_execute(f"CREATE DATABASE {SRE4AI_TEMPLATE_DB}")
    env = sre4ai_env(SRE4AI_TEMPLATE_DB, var_dir)
    manage(src, "migrate", "--noinput", "-v", "0", env=env)
    with psycopg.connect(f"{PG_BASE_URL}/{SRE4AI_TEMPLATE_DB}", autocommit=True) as conn:
        for name in drop_indexes:  # a partitioned table's index: dropping it drops every partition's
            conn.execute(f"DROP INDEX {psycopg.sql.Identifier(name).as_string(conn)}")
    manage(src, "create_project", "bench", "--name", "Ingest benchmark", env=env)
    key = json.loads(
        manage(src, "create_api_key", "bench", "--name", "bench", "--json", env=env).strip().splitlines()[-1]
    )
    return str(key["secret_key"])


def fresh_sre4ai_db() -> None:
    pg_execute(f"DROP DATABASE IF EXISTS {SRE4AI_DB} WITH (FORCE)")
    pg_execute(f"CREATE DATABASE {SRE4AI_DB} TEMPLATE {SRE4AI_TEMPLATE_DB}")


# --- servers ---------------------------------------------------------------------------------------


@dataclass
class Server:
    name: str
    config: str
    port: int
    path: str
    headers: dict[str, str]
    proc: subprocess.Popen[bytes]
    count_spans: Callable[[], int]
    log: Path
    database: str | None  # PostgreSQL database the server writes to, for the PG CPU figure


@contextlib.contextmanager
def sre4ai_server(src: Path, workers: int, threads: int, secret: str, var_dir: str, work: Path) -> Iterator[Server]:
    fresh_sre4ai_db()
    port = free_port()
    log = work / f"gunicorn-{workers}x{threads}.log"
    cmd = [
        str(Path(sys.executable).parent / "gunicorn"),
        "sre4ai_web.wsgi:application",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        "--log-level",
        "warning",
        "--timeout",
        "120",
    ]
    if threads > 1:
        cmd += ["--threads", str(threads), "--worker-class", "gthread"]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd,
            cwd=src,
            env=sre4ai_env(SRE4AI_DB, var_dir),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_http(port, "/login/", proc, 60, log)
        yield Server(
            name="sre4ai",
            config=f"gunicorn {workers} workers x {threads} threads",
            port=port,
            path="/v1/traces",
            headers={"Content-Type": "application/x-protobuf", "Authorization": f"Bearer {secret}"},
            proc=proc,
            count_spans=lambda: pg_count(SRE4AI_DB, "traces_span"),
            log=log,
            database=SRE4AI_DB,
        )
    finally:
        stop_group(proc)


def _sqlite_count(path: Path) -> int:
    if not path.exists():
        return 0
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        return int(conn.execute("SELECT count(*) FROM spans").fetchone()[0])
    except sqlite3.OperationalError:
        return 0  # tables not created yet
    finally:
        conn.close()


@contextlib.contextmanager
def phoenix_server(venv: Path, db: str, work: Path) -> Iterator[Server]:
    phoenix = venv / "bin" / "phoenix"
    if not phoenix.exists():
        raise RuntimeError(
            f"{phoenix} not found: python3 -m venv {venv} && {venv}/bin/pip install arize-phoenix (or pass --phoenix-venv)"
        )
    home = work / "phoenix-home"
    home.mkdir(exist_ok=True)
    port, grpc_port = free_port(), free_port()
    env = dict(os.environ)
    env.update(
        {
            "PHOENIX_WORKING_DIR": str(home),
            "PHOENIX_HOST": "127.0.0.1",
            "PHOENIX_PORT": str(port),
            "PHOENIX_GRPC_PORT": str(grpc_port),
            "PHOENIX_ALLOW_EXTERNAL_RESOURCES": "false",  # no fonts, telemetry or sandbox downloads
            "PHOENIX_TELEMETRY_ENABLED": "false",
            "PHOENIX_LOGGING_LEVEL": "warning",
        }
    )
    if db == "postgresql":
        pg_execute(f"DROP DATABASE IF EXISTS {PHOENIX_DB} WITH (FORCE)")
        pg_execute(f"CREATE DATABASE {PHOENIX_DB}")
        env["PHOENIX_SQL_DATABASE_URL"] = f"{PG_BASE_URL}/{PHOENIX_DB}"

        def count() -> int:
            return pg_count(PHOENIX_DB, "spans")
    else:

        def count() -> int:
            return _sqlite_count(home / "phoenix.db")

    log = work / f"phoenix-{db}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(phoenix), "serve"], cwd=home, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        wait_http(port, "/healthz", proc, 180, log)
        yield Server(
            name="phoenix",
            config=f"phoenix serve ({db})",
            port=port,
            path="/v1/traces",
            headers={"Content-Type": "application/x-protobuf"},
            proc=proc,
            count_spans=count,
            log=log,
            database=PHOENIX_DB if db == "postgresql" else None,
        )
    finally:
        stop_group(proc)


# --- load ------------------------------------------------------------------------------------------


@dataclass
class RequestRecord:
    started: float  # seconds since the load's t0
    latency: float
    status: int
    spans: int
    rejected: int


def _rejected(body: bytes) -> int:
    try:
        return int(ExportTraceServiceResponse.FromString(body).partial_success.rejected_spans)
    except Exception:  # a non-OTLP body (error page): count nothing as rejected
        return 0


def _client(
    seed: int,
    port: int,
    path: str,
    headers: dict[str, str],
    start: Any,
    duration: float,
    spans_per_request: int,
    distinct: bool,
    prepared: int,
    ready: mp.Queue,
    out: mp.Queue,
) -> None:
    """One client worker: send requests back to back for ``duration`` seconds from ``start`` (a shared value the
    parent sets once every client is ready), like an exporter with retries. The first ``prepared`` bodies are built
    before the start, so that building payloads does not take CPU from the server during the window."""
    stream = request_stream(seed, spans_per_request, distinct=distinct)
    bodies = itertools.chain([next(stream) for _ in range(prepared)], stream)
    ready.put(seed)
    while not start.value:
        time.sleep(0.001)
    t0, end = start.value, start.value + duration
    records: list[tuple[float, float, int, int, int]] = []
    conn: http.client.HTTPConnection | None = None
    body, count = next(bodies)
    attempts = 0
    while time.time() < t0:
        time.sleep(0.001)
    while time.time() < end:
        current = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        conn = current
        started = time.time()
        retry_after = 0.0
        try:
            current.request("POST", path, body=body, headers=headers)
            response = current.getresponse()
            data = response.read()
            status = response.status
            retry_after = float(response.getheader("Retry-After") or 0)
            if response.will_close:
                current.close()
                conn = None
        except (OSError, http.client.HTTPException):
            status, data = 0, b""
            current.close()
            conn = None
        latency = time.time() - started
        records.append((started - t0, latency, status, count, _rejected(data) if status == 200 else 0))
        attempts += 1
        if status == 200 or attempts >= 3 or status in (400, 401, 403, 413, 415):
            body, count = next(bodies)  # acknowledged (or hopeless): next batch
            attempts = 0
        elif status in (429, 503):
            time.sleep(min(max(retry_after, 0.1), max(end - time.time(), 0)))  # back-pressure: honour Retry-After
    if conn is not None:
        conn.close()
    out.put(records)


@dataclass
class LoadResult:
    target: str
    config: str
    duration_s: float
    concurrency: int
    spans_per_request: int
    requests: int = 0
    requests_ok: int = 0
    backpressure: int = 0
    errors: int = 0
    acked_spans_total: int = 0
    rejected_spans_total: int = 0
    unacked_spans_sent: int = 0
    acked_per_s: float = 0.0
    stored_per_s: float = 0.0
    stored_per_s_with_drain: float = 0.0
    stored_at_end: int = 0
    stored_after_drain: int = 0
    drain_s: float = 0.0
    lost_spans: int = 0
    p50_ms: float = 0.0
    p95_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0
    server_processes: int = 0
    server_peak_rss_mb: float = 0.0
    server_peak_pss_mb: float = 0.0
    server_cpu_s: float = 0.0
    postgres_cpu_s: float = 0.0
    client_cpu_s: float = 0.0
    other_cpu_s: float = 0.0
    status_counts: dict[str, int] = field(default_factory=dict)


def percentile(values: list[float], pct: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def run_load(server: Server, args: argparse.Namespace, run_seed: int, texts: str = "distinct") -> LoadResult:
    config = f"{server.config}, {texts} texts"
    result = LoadResult(server.name, config, args.duration, args.concurrency, args.spans_per_request)
    queue: mp.Queue = mp.Queue()
    ready: mp.Queue = mp.Queue()
    start = mp.Value("d", 0.0)
    # Enough bodies for --prepared-rate spans/s over the warm-up and the window; a faster server gets the rest
    # built as it goes.
    prepared = math.ceil(args.prepared_rate * (args.warmup + args.duration) / args.spans_per_request / args.concurrency)
    workers = [
        mp.Process(
            target=_client,
            args=(
                run_seed * 1000 + i,
                server.port,
                server.path,
                server.headers,
                start,
                args.warmup + args.duration,
                args.spans_per_request,
                texts == "distinct",
                prepared,
                ready,
                queue,
            ),
            daemon=True,
        )
        for i in range(args.concurrency)
    ]
    server_pids = process_tree(server.proc.pid)
    for worker in workers:
        worker.start()
    for _ in workers:
        ready.get(timeout=600)
    t0 = time.time() + 0.5
    window_start, window_end = t0 + args.warmup, t0 + args.warmup + args.duration
    start.value = t0
    with Sampler(server.proc.pid) as sampler:
        time.sleep(max(window_start - time.time(), 0))
        stored_start = server.count_spans()
        client_pids = [w.pid for w in workers if w.pid is not None]
        cpu_start, pg_cpu_start = cpu_seconds(server_pids), cpu_seconds(postgres_pids(server.database))
        client_start, busy_start = cpu_seconds(client_pids), machine_busy_seconds()
        time.sleep(max(window_end - time.time(), 0))
        stored_end = server.count_spans()
        cpu_end, pg_cpu_end = cpu_seconds(process_tree(server.proc.pid)), cpu_seconds(postgres_pids(server.database))
        client_end, busy_end = cpu_seconds(client_pids), machine_busy_seconds()
        records: list[RequestRecord] = []
        for _ in workers:
            records.extend(RequestRecord(*r) for r in queue.get(timeout=300))
        for worker in workers:
            worker.join(30)
        # Drain: a server that queues before storing gets --drain seconds to catch up.
        acked = sum(r.spans - r.rejected for r in records if r.status == 200)
        drain_start = time.time()
        stored = server.count_spans()
        last_change, last = time.time(), stored
        while stored < acked and time.time() - drain_start < args.drain:
            time.sleep(1.0)
            stored = server.count_spans()
            if stored != last:
                last_change, last = time.time(), stored
            elif time.time() - last_change > 20:
                break  # nothing stored for 20 s: it will not come
        result.drain_s = round(time.time() - drain_start, 1) if stored_end < acked else 0.0
    result.requests = len(records)
    ok = [r for r in records if r.status == 200]
    in_window = [r for r in ok if r.started >= args.warmup]
    result.requests_ok = len(ok)
    result.backpressure = sum(1 for r in records if r.status in (429, 503))
    result.errors = sum(1 for r in records if r.status not in (200, 429, 503))
    counts: dict[str, int] = {}
    for r in records:
        counts[str(r.status)] = counts.get(str(r.status), 0) + 1
    result.status_counts = counts
    result.acked_spans_total = acked
    result.rejected_spans_total = sum(r.rejected for r in ok)
    result.unacked_spans_sent = sum(r.spans for r in records if r.status != 200)
    result.acked_per_s = round(sum(r.spans - r.rejected for r in in_window) / args.duration, 1)
    result.stored_per_s = round((stored_end - stored_start) / args.duration, 1)
    result.stored_at_end = stored_end
    # A server that queues before storing: its storage rate over the window plus the drain that followed.
    result.stored_per_s_with_drain = round((stored - stored_start) / (args.duration + result.drain_s), 1)
    result.stored_after_drain = stored
    result.lost_spans = max(acked - stored, 0)
    latencies = [r.latency * 1000 for r in in_window]
    result.p50_ms = round(statistics.median(latencies), 1) if latencies else 0.0
    result.p95_ms = round(percentile(latencies, 95), 1)
    result.p99_ms = round(percentile(latencies, 99), 1)
    result.max_ms = round(max(latencies, default=0.0), 1)
    result.server_processes = sampler.processes
    result.server_peak_rss_mb = round(sampler.peak_rss_kb / 1024, 1)
    result.server_peak_pss_mb = round(sampler.peak_pss_kb / 1024, 1)
    result.server_cpu_s = round(cpu_end - cpu_start, 1)
    result.postgres_cpu_s = round(pg_cpu_end - pg_cpu_start, 1)
    result.client_cpu_s = round(client_end - client_start, 1)
    # Everything else on the machine during the window (other users' jobs make the figures noisy).
    result.other_cpu_s = round(
        (busy_end - busy_start) - result.server_cpu_s - result.postgres_cpu_s - result.client_cpu_s, 1
    )
    return result


# --- profiling -------------------------------------------------------------------------------------


def _py_spy() -> Path:
    candidate = Path(sys.executable).parent / "py-spy"
    if not candidate.exists():
        raise RuntimeError(
            f"py-spy not found next to {sys.executable}: {Path(sys.executable).parent}/pip install py-spy"
        )
    return candidate


def start_profile(server: Server, out_dir: Path, seconds: float) -> subprocess.Popen[bytes]:
    out_dir.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [
            str(_py_spy()),
            "record",
            "--pid",
            str(server.proc.pid),
            "--subprocesses",
            "--rate",
            "200",
            "--duration",
            str(int(seconds)),
            "--format",
            "raw",
            "--output",
            str(out_dir / "ingest.folded"),
            "--nonblocking",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


# Inclusive time is shown for the project's code and the libraries it spends time in, not for the
# server and framework frames that every request passes through.
INCLUSIVE_OF = ("traces/", "accounts/", "evals/", "genai_prices/", "bulk_create", "psycopg/cursor.py", "json/")


def summarise_profile(folded: Path, top: int = 25) -> dict[str, list[tuple[str, float]]]:
    """Self and inclusive time per function from py-spy's collapsed stacks (idle waits removed)."""
    self_time: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    total = 0
    idle = ("select (selectors.py", "wait (threading.py", "accept (socket.py", "sleep (gunicorn", "_poll (")
    for line in folded.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        frames = stack.split(";")
        if any(frames[-1].startswith(i) for i in idle):
            continue
        count = int(count_text)
        total += count
        leaf = frames[-1]
        self_time[leaf] = self_time.get(leaf, 0) + count
        for frame in set(frames[1:]):
            if any(part in frame for part in INCLUSIVE_OF):
                inclusive[frame] = inclusive.get(frame, 0) + count

    def ranked(table: dict[str, int]) -> list[tuple[str, float]]:
        return [(k, round(100 * v / max(total, 1), 1)) for k, v in sorted(table.items(), key=lambda kv: -kv[1])[:top]]

    return {"self": ranked(self_time), "inclusive": ranked(inclusive)}


# --- report ----------------------------------------------------------------------------------------

COLUMNS = [
    ("target", "target"),
    ("config", "configuration"),
    ("acked_per_s", "acked spans/s"),
    ("stored_per_s", "stored spans/s"),
    ("stored_per_s_with_drain", "stored/s incl. drain"),
    ("drain_s", "drain s"),
    ("acked_spans_total", "acked"),
    ("stored_after_drain", "stored"),
    ("lost_spans", "not stored"),
    ("p50_ms", "p50 ms"),
    ("p95_ms", "p95 ms"),
    ("p99_ms", "p99 ms"),
    ("backpressure", "429/503"),
    ("errors", "errors"),
    ("server_peak_rss_mb", "RSS MB"),
    ("server_peak_pss_mb", "PSS MB"),
    ("server_cpu_s", "server CPU s"),
    ("postgres_cpu_s", "PG CPU s"),
    ("client_cpu_s", "client CPU s"),
    ("other_cpu_s", "other CPU s"),
]


def markdown_table(results: list[LoadResult]) -> str:
    lines = [
        "| " + " | ".join(title for _, title in COLUMNS) + " |",
        "|" + "|".join("---" for _ in COLUMNS) + "|",
    ]
    for r in results:
        row = asdict(r)
        lines.append("| " + " | ".join(str(row[key]) for key, _ in COLUMNS) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", choices=["sre4ai", "phoenix", "both"], default="both")
    parser.add_argument("--duration", type=float, default=30, help="Measured seconds of sending (default 30).")
    parser.add_argument("--warmup", type=float, default=3, help="Seconds of sending before the window (default 3).")
    parser.add_argument("--drain", type=float, default=60, help="Seconds to wait for queued spans to be stored.")
    parser.add_argument("--concurrency", type=int, default=8, help="Client processes sending in parallel.")
    parser.add_argument("--spans-per-request", type=int, default=100)
    parser.add_argument(
        "--prepared-rate",
        type=float,
        default=8000,
        help="Each client builds its payloads before the start for this many spans/s over warm-up + window (all "
        "clients together; 0: build each as it goes, as before).",
    )
    parser.add_argument(
        "--texts",
        default="distinct",
        help="Comma-separated payload kinds, each run in turn on every configuration: 'distinct' (every span's texts "
        "its own, the default) or 'repeated' (48 prebuilt variants, as before 2026-12-06), e.g. "
        "repeated,distinct,distinct,repeated.",
    )
    parser.add_argument(
        "--gunicorn",
        default="3x4",
        help="Comma-separated WORKERSxTHREADS configurations to try for sre4ai (default 3x4, as scripts/run.sh).",
    )
    parser.add_argument("--phoenix-venv", type=Path, default=Path(tempfile.gettempdir()) / "phoenix-venv")
    parser.add_argument("--phoenix-db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--profile", type=Path, help="Record the sre4ai workers with py-spy into this directory.")
    parser.add_argument("--json", type=Path, help="Also write the results as JSON to this file.")
    parser.add_argument("--keep-db", action="store_true", help="Keep the benchmark databases afterwards.")
    parser.add_argument(
        "--drop-index",
        action="append",
        default=[],
        metavar="NAME",
        help="sre4ai: drop this index after migrating (repeatable), to measure what it costs, e.g. trace_search_trgm.",
    )
    parser.add_argument(
        "--source",
        default="worktree",
        help="Code to benchmark: 'worktree' (a copy of the working tree, the default) or a git revision such as HEAD.",
    )
    args = parser.parse_args()
    texts = [t.strip() for t in args.texts.split(",")]
    if not set(texts) <= {"distinct", "repeated"}:
        parser.error("--texts takes distinct and repeated, e.g. repeated,distinct")

    info = machine(args.source)
    print(f"machine: {info}", flush=True)
    results: list[LoadResult] = []
    profile: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="sre4ai-bench-") as tmp:
        work = Path(tmp)
        try:
            if args.target in ("sre4ai", "both"):
                src = snapshot(work / "src", args.source)
                secret = prepare_sre4ai_template(src, str(work / "var"), args.drop_index)
                runs = [(c, t) for c in args.gunicorn.split(",") for t in texts]
                for seed, (config, kind) in enumerate(runs, start=1):
                    workers, _, threads = config.strip().partition("x")
                    with sre4ai_server(src, int(workers), int(threads or 1), secret, str(work / "var"), work) as server:
                        print(f"running {server.config}, {kind} texts (load {load_average()}) ...", flush=True)
                        spy = None
                        if args.profile:
                            spy = start_profile(server, args.profile, args.warmup + args.duration + 1)
                        result = run_load(server, args, seed, kind)
                        if spy is not None:
                            spy.wait(60)
                            profile = summarise_profile(args.profile / "ingest.folded")
                        results.append(result)
                        print(markdown_table([result]).splitlines()[-1], flush=True)
            if args.target == "both" and not (args.phoenix_venv / "bin" / "phoenix").exists():
                print(f"Phoenix skipped: no {args.phoenix_venv}/bin/phoenix (see --phoenix-venv)", flush=True)
            elif args.target in ("phoenix", "both"):
                with phoenix_server(args.phoenix_venv, args.phoenix_db, work) as server:
                    print(f"running {server.config} ...", flush=True)
                    result = run_load(server, args, 99, texts[0])
                    results.append(result)
                    print(markdown_table([result]).splitlines()[-1], flush=True)
        finally:
            with contextlib.suppress(Exception):
                flush_broker()
            if not args.keep_db:
                for db in (SRE4AI_DB, SRE4AI_TEMPLATE_DB, PHOENIX_DB):
                    with contextlib.suppress(psycopg.Error):
                        pg_execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")

    print()
    print(f"load average after the runs: {load_average()} (2 cores; other jobs share the machine)")
    print(
        f"{args.duration:g} s window after {args.warmup:g} s warm-up, {args.concurrency} client processes, "
        f"{args.spans_per_request} spans per request"
    )
    print(markdown_table(results))
    sre4ai = [r for r in results if r.target == "sre4ai"]
    if sre4ai:
        best = max(sre4ai, key=lambda r: (r.lost_spans == 0, r.stored_per_s))
        print(f"\nbest sre4ai configuration: {best.config} ({best.stored_per_s} spans/s stored, p99 {best.p99_ms} ms)")
        phoenix = [r for r in results if r.target == "phoenix"]
        if phoenix and phoenix[0].stored_per_s:
            print(f"sre4ai / phoenix stored spans per second: {best.stored_per_s / phoenix[0].stored_per_s:.1f}x")
    for r in results:
        if r.lost_spans:
            print(
                f"LOSS: {r.target} ({r.config}) acknowledged {r.acked_spans_total} spans, stored {r.stored_after_drain}"
            )
    if profile:
        print("\npy-spy, share of non-idle samples (self):")
        for name, pct in profile["self"]:
            print(f"  {pct:5.1f}%  {name}")
        print("py-spy, share of non-idle samples (inclusive):")
        for name, pct in profile["inclusive"]:
            print(f"  {pct:5.1f}%  {name}")
    if args.json:
        args.json.write_text(
            json.dumps({"machine": info, "results": [asdict(r) for r in results], "profile": profile}, indent=2)
        )
    return 1 if any(r.lost_spans for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
