"""Scale-out with faults (issue 15): 2 web nodes and 2 worker hosts behind HAProxy, RabbitMQ as the broker.

Usage (as root, from the repository root, with the project's virtual environment):

    .venv/bin/python bench/scaleout.py --mode faults --duration 60 --concurrency 4
    .venv/bin/python bench/scaleout.py --mode throughput --duration 30 --concurrency 4 --order 1,2,2,1
    .venv/bin/python bench/scaleout.py --mode both

Each node is a host of its own as far as the network goes: four network namespaces (web1, web2, worker1,
worker2), each joined to this machine by a veth pair (10.231.N.2 inside, 10.231.N.1 on this side). PostgreSQL and
RabbitMQ listen on 127.0.0.1 only here, so a second HAProxy forwards TCP from each 10.231.N.1 to them (on a real
fleet the nodes reach them directly; nothing in the system configuration is changed). In each web namespace
gunicorn runs as scripts/run.sh starts it (3 workers x 4 threads); in each worker namespace a Celery worker of the
main queues (`-Q celery,scoring,backfill --concurrency=2`, prefork); beat runs once, on worker2. HAProxy on this
side, configured by deploy/haproxy.cfg (health checks, retry and redispatch on a refused connection, Retry-After
on its own 502/503/504), balances the two web nodes. Every node gets the same DJANGO_SECRET_KEY, DATABASE_URL
(the database ``--database``, dropped and re-created from a migrated template) and
CELERY_BROKER_URL=amqp://… (a RabbitMQ vhost and user of the run's own, deleted at the end).

``faults``: client processes send OTLP protobuf (bench/payload.py: 100-span requests of ~2.2 KB spans with
distinct texts) through HAProxy as OpenTelemetry exporters do: a batch is re-sent after Retry-After on
429/502/503/504 and after a dropped connection, until acknowledged. A third of the way in, web1 is killed
(SIGKILL to its gunicorn master and workers at once); half-way, worker1 (SIGKILL to the Celery master and its
pool). After the load, the run waits for recovery (beat sends the killed worker's job again once its claim lapses)
and checks: every acknowledged span is stored; every stored trace has one score per evaluator (no duplicate on any
(trace, span, evaluator, name)) and every trace of a status the same set of evaluators; no job is left; no 5xx
answer (HAProxy's included) came without Retry-After. The exit code is 1 if any check fails.

``throughput``: the same load without faults and without workers (as bench/ingest.py: ingest only), against one
web node (web2 in maintenance in HAProxy and not started) and against two, in the order ``--order``; stored
spans/s over the window, latency, and CPU seconds per 1,000 spans of the web nodes, PostgreSQL, HAProxy and the
clients. On a machine with fewer cores than nodes, two nodes share the same cores: see docs/benchmarks.md §15.

Traffic goes only to addresses on this machine (127.0.0.1 and the namespaces the script makes); the load is
bounded by --duration, each batch's retries by --give-up. Everything the script starts (processes by id, the
namespaces, the vhost, the databases unless --keep-db) is removed at exit, also on Ctrl-C or failure.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import http.client
import json
import multiprocessing as mp
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import PG_BASE_URL, REPO, machine, pg_execute, pg_scalar, snapshot
from ingest import (
    cpu_seconds,
    free_port,
    load_average,
    machine_busy_seconds,
    manage,
    percentile,
    postgres_pids,
    process_tree,
    stop_group,
)
from payload import request_stream

PREFIX = "s4so"  # names of the namespaces and veth interfaces this script makes (and removes)
NODES = {"web1": 1, "web2": 2, "worker1": 3, "worker2": 4}  # node -> N in 10.231.N.0/24
WEB_PORT = 8000
RETRY_STATUSES = {429, 502, 503, 504}  # what OTLP/HTTP exporters retry
# The recovery knobs (docs/operations.md, "Recovery"): production values, or seconds for a short run.
TIMINGS = {
    "production": {},
    "short": {"SRE4AI_CLAIM_SECONDS": "3", "SRE4AI_CLAIM_GRACE_SECONDS": "2", "SRE4AI_RECOVERY_SWEEP_SECONDS": "1"},
}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def run(*command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, check=check)


def host_address(node: str) -> str:
    return f"10.231.{NODES[node]}.1"


def node_address(node: str) -> str:
    return f"10.231.{NODES[node]}.2"


def namespace(node: str) -> str:
    return f"{PREFIX}-{node}"


# --- the cluster: namespaces, forwarder, broker, processes ---------------------------------------------------


@dataclass
class Cluster:
    """Everything the run starts, in the order it was started; ``close`` undoes it all, whatever failed."""

    work: Path
    src: Path
    database: str
    vhost: str
    broker_password: str = field(default_factory=lambda: secrets.token_hex(16))
    secret_key: str = field(default_factory=lambda: secrets.token_urlsafe(50))
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    namespaces: list[str] = field(default_factory=list)
    lb_port: int = 0
    lb_socket: Path | None = None
    vhost_made: bool = False

    # network ------------------------------------------------------------------------------------------

    def network_up(self) -> None:
        existing = run("ip", "netns", "list").stdout
        for node, n in NODES.items():
            name = namespace(node)
            if name in existing.split():  # left by a run that was killed with SIGKILL: ours by its name
                run("ip", "netns", "del", name, check=False)
            run("ip", "link", "del", f"{PREFIX}-{node}-h", check=False)
            run("ip", "netns", "add", name)
            self.namespaces.append(name)
            host_if, node_if = f"{PREFIX}-{node}-h", f"{PREFIX}-{node}-n"
            run("ip", "link", "add", host_if, "type", "veth", "peer", "name", node_if)
            run("ip", "link", "set", node_if, "netns", name)
            run("ip", "addr", "add", f"10.231.{n}.1/24", "dev", host_if)
            run("ip", "link", "set", host_if, "up")
            run("ip", "netns", "exec", name, "ip", "addr", "add", f"10.231.{n}.2/24", "dev", node_if)
            run("ip", "netns", "exec", name, "ip", "link", "set", node_if, "up")
            run("ip", "netns", "exec", name, "ip", "link", "set", "lo", "up")

    def network_down(self) -> None:
        for name in self.namespaces:
            run("ip", "netns", "del", name, check=False)  # removes its veth end, and so the pair
        for node in NODES:
            run("ip", "link", "del", f"{PREFIX}-{node}-h", check=False)
        self.namespaces.clear()

    # services ------------------------------------------------------------------------------------------

    def forwarder_up(self) -> None:
        """PostgreSQL and RabbitMQ listen on 127.0.0.1 here: a TCP proxy on each namespace's host address."""
        pg_port = int(PG_BASE_URL.rsplit(":", 1)[1]) if PG_BASE_URL.count(":") >= 2 else 5432
        binds = {port: "\n".join(f"    bind {host_address(node)}:{port}" for node in NODES) for port in (5432, 5672)}
        config = self.work / "forwarder.cfg"
        config.write_text(
            "global\n    maxconn 2000\n"
            "defaults\n    mode tcp\n    timeout connect 2s\n    timeout client 1h\n    timeout server 1h\n"
            f"listen postgresql\n{binds[5432]}\n    server pg 127.0.0.1:{pg_port}\n"
            f"listen rabbitmq\n{binds[5672]}\n    server rabbit 127.0.0.1:5672\n"
        )
        self.start("forwarder", ["haproxy", "-db", "-f", str(config)])

    def broker_up(self) -> None:
        run("rabbitmqctl", "-q", "delete_vhost", self.vhost, check=False)
        run("rabbitmqctl", "-q", "delete_user", self.vhost, check=False)
        run("rabbitmqctl", "-q", "add_vhost", self.vhost)
        self.vhost_made = True
        run("rabbitmqctl", "-q", "add_user", self.vhost, self.broker_password)
        run("rabbitmqctl", "-q", "set_permissions", "-p", self.vhost, self.vhost, ".*", ".*", ".*")

    def broker_down(self) -> None:
        if self.vhost_made:
            run("rabbitmqctl", "-q", "delete_vhost", self.vhost, check=False)
            run("rabbitmqctl", "-q", "delete_user", self.vhost, check=False)
            self.vhost_made = False

    def queued_messages(self) -> dict[str, int]:
        out = run("rabbitmqctl", "-q", "list_queues", "-p", self.vhost, "name", "messages", check=False).stdout
        rows = [line.split() for line in out.splitlines() if line.strip()]
        return {r[0]: int(r[1]) for r in rows if len(r) == 2 and r[1].isdigit()}

    def env(self, node: str | None, **extra: str) -> dict[str, str]:
        """The same configuration on every node; only the addresses of PostgreSQL and RabbitMQ differ (each
        namespace reaches them at its own veth peer)."""
        host = host_address(node) if node else "127.0.0.1"
        env = dict(os.environ)
        env.update(
            {
                "DATABASE_URL": f"postgresql://postgres@{host}:5432/{self.database}",
                "CELERY_BROKER_URL": f"amqp://{self.vhost}:{self.broker_password}@{host}:5672/{self.vhost}",
                "DJANGO_SECRET_KEY": self.secret_key,
                "DJANGO_DEBUG": "0",
                "SRE4AI_CLIENT_IP_HEADER": "X-Forwarded-For",
                "SRE4AI_VAR_DIR": str(self.work / f"var-{node or 'admin'}"),
                "LOG_LEVEL": "WARNING",
                **extra,
            }
        )
        return env

    # processes -----------------------------------------------------------------------------------------

    def start(self, name: str, command: list[str], node: str | None = None, env: dict[str, str] | None = None) -> None:
        if node is not None:
            command = ["ip", "netns", "exec", namespace(node), *command]  # ip execs the command: same pid
        with (self.work / f"{name}.log").open("ab") as out:
            self.processes[name] = subprocess.Popen(
                command, cwd=self.src, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    def kill(self, name: str) -> list[int]:
        """SIGKILL a node's whole process group at once (a machine lost, not a shutdown); return the pids."""
        process = self.processes.pop(name)
        pids = process_tree(process.pid)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)
        return pids

    def stop(self, name: str) -> None:
        process = self.processes.pop(name, None)
        if process is not None:
            stop_group(process, timeout=10)

    def web_up(self, node: str, **timing: str) -> None:
        bin_dir = Path(sys.executable).parent
        self.start(
            node,
            [
                str(bin_dir / "gunicorn"),
                "sre4ai_web.wsgi:application",
                "--bind",
                f"{node_address(node)}:{WEB_PORT}",
                "--workers",
                "3",
                "--threads",
                "4",
                "--log-level",
                "warning",
            ],
            node,
            self.env(node, **timing),
        )

    def web_wait(self, node: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.processes[node].poll() is not None:
                raise RuntimeError(f"{node} exited:\n{(self.work / f'{node}.log').read_text()[-3000:]}")
            try:
                with socket.create_connection((node_address(node), WEB_PORT), timeout=2) as sock:
                    sock.sendall(b"GET /login/ HTTP/1.0\r\nHost: localhost\r\n\r\n")
                    if b" 200 " in sock.recv(64).split(b"\r\n", 1)[0] + b" ":
                        return
            except OSError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"{node} did not answer within {timeout} s")

    def worker_up(self, node: str, **timing: str) -> None:
        self.start(
            node,
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "sre4ai_web",
                "--quiet",
                "worker",
                "-n",
                f"main@{node}",
                "-Q",
                "celery,scoring,backfill",
                "--concurrency=2",
                "--loglevel=WARNING",
            ],
            node,
            self.env(node, **timing),
        )

    def beat_up(self, node: str, **timing: str) -> None:
        self.start(
            "beat",
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "sre4ai_web",
                "--quiet",
                "beat",
                "--loglevel=WARNING",
                "-s",
                str(self.work / "beat-schedule"),
            ],
            node,
            self.env(node, **timing),
        )

    def balancer_up(self, nodes: list[str]) -> None:
        """HAProxy with deploy/haproxy.cfg as it is in the repository; a node not in ``nodes`` is put in
        maintenance through the runtime API (as an operator takes a node out)."""
        self.lb_port = free_port()
        self.lb_socket = self.work / "haproxy.sock"
        env = dict(os.environ)
        env.update(
            {
                "SRE4AI_LB_BIND": f"127.0.0.1:{self.lb_port}",
                "SRE4AI_WEB1": f"{node_address('web1')}:{WEB_PORT}",
                "SRE4AI_WEB2": f"{node_address('web2')}:{WEB_PORT}",
                "SRE4AI_HAPROXY_SOCKET": str(self.lb_socket),
            }
        )
        self.lb_socket.unlink(missing_ok=True)  # the previous run's
        self.start("haproxy", ["haproxy", "-db", "-f", str(REPO / "deploy" / "haproxy.cfg")], env=env)
        deadline = time.monotonic() + 20
        while True:
            try:
                self.haproxy("show info")
                break
            except OSError:
                if time.monotonic() > deadline or self.processes["haproxy"].poll() is not None:
                    log_tail = (self.work / "haproxy.log").read_text()[-2000:]
                    raise RuntimeError(f"haproxy did not start:\n{log_tail}") from None
                time.sleep(0.1)
        for node in ("web1", "web2"):
            if node not in nodes:
                self.haproxy(f"set server web/{node} state maint")
        deadline = time.monotonic() + 30
        while set(self.servers_up()) != set(nodes):
            if time.monotonic() > deadline:
                raise RuntimeError(f"HAProxy sees {self.servers_up()} up, not {nodes}")
            time.sleep(0.3)

    def haproxy(self, command: str) -> str:
        assert self.lb_socket is not None
        with socket.socket(socket.AF_UNIX) as sock:
            sock.connect(str(self.lb_socket))
            sock.sendall(command.encode() + b"\n")
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def haproxy_stats(self) -> dict[str, dict[str, str]]:
        lines = self.haproxy("show stat").splitlines()
        header = lines[0].lstrip("# ").split(",")
        rows = [dict(zip(header, line.split(","), strict=False)) for line in lines[1:] if line]
        return {f"{r['pxname']}/{r['svname']}": r for r in rows}

    def servers_up(self) -> list[str]:
        stats = self.haproxy_stats()
        return [name for name in ("web1", "web2") if stats.get(f"web/{name}", {}).get("status", "").startswith("UP")]

    def close(self) -> None:
        for name in reversed(list(self.processes)):  # the forwarder (started first) last
            with contextlib.suppress(Exception):
                self.stop(name)
        self.network_down()
        self.broker_down()


# --- the database ----------------------------------------------------------------------------------------


def prepare_database(cluster: Cluster) -> str:
    """Migrate a template once, with a project and an ingest key; return the key's secret."""
    template = f"{cluster.database}_template"
    pg_execute(f"DROP DATABASE IF EXISTS {template} WITH (FORCE)")
    pg_execute(f"CREATE DATABASE {template}")
    env = cluster.env(None)
    env["DATABASE_URL"] = f"{PG_BASE_URL}/{template}"
    manage(cluster.src, "migrate", "--noinput", "-v", "0", env=env)
    manage(cluster.src, "collectstatic", "--noinput", "-v", "0", env=env)  # each web node does at deploy
    manage(cluster.src, "create_project", "bench", "--name", "Scale-out benchmark", env=env)
    out = manage(cluster.src, "create_api_key", "bench", "--name", "bench", "--json", env=env)
    return str(json.loads(out.strip().splitlines()[-1])["secret_key"])


def fresh_database(cluster: Cluster) -> None:
    pg_execute(f"DROP DATABASE IF EXISTS {cluster.database} WITH (FORCE)")
    pg_execute(f"CREATE DATABASE {cluster.database} TEMPLATE {cluster.database}_template")


def drop_databases(cluster: Cluster) -> None:
    for name in (cluster.database, f"{cluster.database}_template"):
        with contextlib.suppress(psycopg.Error):
            pg_execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def stored_spans(cluster: Cluster) -> int:
    return int(pg_scalar("SELECT count(*) FROM traces_span", cluster.database))


# --- the load --------------------------------------------------------------------------------------------


def _sender(
    seed: int, port: int, secret: str, t0: float, end: float, give_up: float, acked_file: str, out: Any
) -> None:
    """An OTLP/HTTP exporter in its own process: each batch is sent until acknowledged (re-sent after Retry-After
    on 429/502/503/504, and after a dropped connection), for at most ``give_up`` seconds; the (trace id, span id)
    of every acknowledged span goes to ``acked_file``. Stops taking new batches at ``end``."""
    stream = request_stream(seed)
    headers = {"Content-Type": "application/x-protobuf", "Authorization": f"Bearer {secret}"}
    records: list[tuple[float, float, int, bool, int]] = []  # started, latency, status, Retry-After given, spans
    unacked = 0
    conn: http.client.HTTPConnection | None = None
    while time.time() < t0:
        time.sleep(0.01)
    with open(acked_file, "w") as acked:
        while time.time() < end:
            body, count = next(stream)
            request = ExportTraceServiceRequest.FromString(body)
            ids = [
                (s.trace_id.hex(), s.span_id.hex())
                for r in request.resource_spans
                for ss in r.scope_spans
                for s in ss.spans
            ]
            deadline = time.time() + give_up
            while True:
                current = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=90)
                conn = current
                started = time.time()
                try:
                    current.request("POST", "/v1/traces", body=body, headers=headers)
                    response = current.getresponse()
                    response.read()
                    status, retry_after = response.status, response.getheader("Retry-After")
                    if response.will_close:
                        current.close()
                        conn = None
                except (OSError, http.client.HTTPException):
                    status, retry_after = 0, None  # connection dropped: nothing acknowledged
                    current.close()
                    conn = None
                records.append((started - t0, time.time() - started, status, retry_after is not None, count))
                if status == 200:
                    acked.writelines(f"{t}\t{s}\n" for t, s in ids)
                    break
                if (status not in RETRY_STATUSES and status != 0) or time.time() > deadline:
                    unacked += count
                    break
                time.sleep(float(retry_after or 0.5))
    out.put((records, unacked))


@dataclass
class Load:
    records: list[tuple[float, float, int, bool, int]] = field(default_factory=list)
    unacked_spans: int = 0
    acked_files: list[Path] = field(default_factory=list)

    @property
    def acked_spans(self) -> int:
        return sum(r[4] for r in self.records if r[2] == 200)

    def statuses(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for r in self.records:
            key = str(r[2]) if r[2] else "dropped"
            counts[key] = counts.get(key, 0) + 1
        return dict(sorted(counts.items()))

    def server_errors_without_retry_after(self) -> int:
        return sum(1 for r in self.records if r[2] >= 500 and not r[3])


class Senders:
    """``concurrency`` sender processes; ``t0`` is when they start sending."""

    def __init__(self, cluster: Cluster, secret: str, concurrency: int, duration: float, give_up: float, seed: int):
        self.queue: Any = mp.Queue()
        self.t0 = time.time() + 1.0
        self.end = self.t0 + duration
        self.load = Load()
        self.processes = []
        for i in range(concurrency):
            path = cluster.work / f"acked-{seed}-{i}.tsv"
            self.load.acked_files.append(path)
            self.processes.append(
                mp.Process(
                    target=_sender,
                    args=(seed * 100 + i, cluster.lb_port, secret, self.t0, self.end, give_up, str(path), self.queue),
                    daemon=True,
                )
            )
        for process in self.processes:
            process.start()

    def pids(self) -> list[int]:
        return [p.pid for p in self.processes if p.pid is not None]

    def wait(self, timeout: float) -> Load:
        for _ in self.processes:
            records, unacked = self.queue.get(timeout=timeout)
            self.load.records.extend(records)
            self.load.unacked_spans += unacked
        for process in self.processes:
            process.join(10)
        return self.load

    def terminate(self) -> None:
        for process in self.processes:
            if process.is_alive():
                process.kill()


# --- the checks ------------------------------------------------------------------------------------------


def not_stored(cluster: Cluster, load: Load) -> tuple[int, int]:
    """(acknowledged spans, acknowledged spans not in the database), by (trace id, span id)."""
    with psycopg.connect(f"{PG_BASE_URL}/{cluster.database}", autocommit=True) as conn:
        conn.execute("CREATE TEMP TABLE acked (trace_id text, span_id text)")
        with conn.cursor().copy("COPY acked (trace_id, span_id) FROM STDIN") as copy:
            for path in load.acked_files:
                for line in path.read_text().splitlines():
                    copy.write_row(line.split("\t"))
        conn.execute("ANALYZE acked")
        total = conn.execute("SELECT count(*) FROM acked").fetchone()
        missing = conn.execute(
            "SELECT count(*) FROM acked a WHERE NOT EXISTS (SELECT 1 FROM traces_trace t JOIN traces_span s"
            " ON s.trace_id = t.id WHERE t.trace_id = a.trace_id AND s.span_id = a.span_id)"
        ).fetchone()
    assert total is not None
    assert missing is not None
    return int(total[0]), int(missing[0])


@dataclass
class Scoring:
    traces: int = 0
    unscored_traces: int = 0
    duplicate_scores: int = 0  # (trace, span, evaluator, name) keys with more than one evaluator score
    jobs_left: int = 0
    shapes: dict[str, int] = field(default_factory=dict)  # "kind of trace: evaluator names" -> traces

    @property
    def exactly_once(self) -> bool:
        kinds = [shape.split(":", 1)[0] for shape in self.shapes]
        return (
            self.traces > 0
            and self.unscored_traces == 0
            and self.duplicate_scores == 0
            and self.jobs_left == 0
            and len(kinds) == len(set(kinds))  # one set of evaluators per kind of trace
        )


def _count(conn: psycopg.Connection[Any], sql: str) -> int:
    row = conn.execute(sql.encode()).fetchone()
    return int(row[0]) if row else 0


def scoring(cluster: Cluster) -> Scoring:
    with psycopg.connect(f"{PG_BASE_URL}/{cluster.database}", autocommit=True) as conn:
        result = Scoring()
        result.traces = _count(conn, "SELECT count(*) FROM traces_trace")
        result.unscored_traces = _count(
            conn,
            "SELECT count(*) FROM traces_trace t WHERE NOT EXISTS"
            " (SELECT 1 FROM evals_score s WHERE s.trace_id = t.id AND s.source = 'evaluator')",
        )
        result.duplicate_scores = _count(
            conn,
            "SELECT count(*) FROM (SELECT 1 FROM evals_score WHERE source = 'evaluator'"
            " GROUP BY trace_id, span_id, evaluator, name HAVING count(*) > 1) d",
        )
        result.jobs_left = _count(conn, "SELECT count(*) FROM traces_followupoutbox")
        # Which evaluators apply depends on the trace (cost_ceiling needs a priced model, an errored trace has no
        # answer to judge): traces alike in status, pricing and spans must all have the same set.
        rows = conn.execute(
            "SELECT kind, names, count(*) FROM (SELECT t.status || ' ' || CASE WHEN t.has_unpriced THEN 'unpriced'"
            " ELSE 'priced' END || ' ' || t.span_count || ' spans' AS kind, array_to_string(array_agg(DISTINCT"
            " s.name ORDER BY s.name), ',') AS names FROM traces_trace t JOIN evals_score s ON s.trace_id = t.id"
            " AND s.source = 'evaluator' GROUP BY t.id, t.status, t.has_unpriced, t.span_count) x"
            " GROUP BY 1, 2 ORDER BY 1, 2"
        ).fetchall()
        result.shapes = {f"{kind}: {names}": int(n) for kind, names, n in rows}
    return result


def claimed_jobs(cluster: Cluster) -> int:
    return int(
        pg_scalar("SELECT count(*) FROM traces_followupoutbox WHERE claimed_until > now()", cluster.database) or 0
    )


# --- the runs --------------------------------------------------------------------------------------------


def faults_run(cluster: Cluster, secret: str, args: argparse.Namespace) -> dict[str, Any]:
    timing = TIMINGS[args.timing]
    fresh_database(cluster)
    for node in ("web1", "web2"):
        cluster.web_up(node, **timing)
    for node in ("worker1", "worker2"):
        cluster.worker_up(node, **timing)
    cluster.beat_up("worker2", **timing)  # exactly one beat, on the host that stays up
    for node in ("web1", "web2"):
        cluster.web_wait(node)
    cluster.balancer_up(["web1", "web2"])
    log(f"2 web + 2 worker nodes up; load {args.concurrency} clients x {args.duration:g} s (load {load_average()})")
    senders = Senders(cluster, secret, args.concurrency, args.duration, args.give_up, seed=1)
    events: dict[str, Any] = {}
    try:
        time.sleep(max(senders.t0 + args.duration * 0.35 - time.time(), 0))
        events["web1_killed_at_s"] = round(time.time() - senders.t0, 1)
        events["web1_pids_killed"] = len(cluster.kill("web1"))
        log(f"web1 killed ({events['web1_pids_killed']} processes); stored so far {stored_spans(cluster)}")
        time.sleep(max(senders.t0 + args.duration * 0.55 - time.time(), 0))
        deadline = time.time() + 15  # kill worker1 while a job is claimed (by it or its peer: both are busy)
        while claimed_jobs(cluster) == 0 and time.time() < deadline:
            time.sleep(0.2)
        events["jobs_claimed_at_worker1_kill"] = claimed_jobs(cluster)
        events["worker1_killed_at_s"] = round(time.time() - senders.t0, 1)
        events["worker1_pids_killed"] = len(cluster.kill("worker1"))
        log(
            f"worker1 killed ({events['worker1_pids_killed']} processes, {events['jobs_claimed_at_worker1_kill']} jobs claimed)"
        )
        load = senders.wait(args.duration + args.give_up + 120)
    finally:
        senders.terminate()
    load_end = time.time()
    log(f"load done: {load.acked_spans} spans acknowledged, statuses {load.statuses()}; waiting for scoring")
    deadline = load_end + args.window
    while True:
        state = scoring(cluster)
        if state.exactly_once or time.time() > deadline:
            break
        time.sleep(2)
    recovery_s = round(time.time() - load_end, 1)
    acked_total, missing = not_stored(cluster, load)
    stats = cluster.haproxy_stats()
    lb = {
        key: {
            k: stats[key].get(k, "")
            for k in ("status", "stot", "hrsp_2xx", "hrsp_5xx", "econ", "eresp", "wretr", "wredis")
        }
        for key in ("web/web1", "web/web2", "web/BACKEND", "sre4ai/FRONTEND")
        if key in stats
    }
    result = {
        "events": events,
        "acked_spans": acked_total,
        "acked_spans_not_stored": missing,
        "unacked_spans_given_up": load.unacked_spans,
        "statuses": load.statuses(),
        # Every answer but 200, as (seconds into the load, status or 0 for a dropped connection, Retry-After given).
        "not_ok": [(round(r[0], 1), r[2], r[3]) for r in sorted(load.records) if r[2] != 200][:50],
        "server_errors_without_retry_after": load.server_errors_without_retry_after(),
        "scoring": asdict(state),
        "scored_exactly_once": state.exactly_once,
        "seconds_from_load_end_to_scored": recovery_s,
        "stored_spans": stored_spans(cluster),
        "haproxy": lb,
        "queues_left": cluster.queued_messages(),
        "load_average_after": load_average(),
    }
    result["passed"] = (
        missing == 0
        and acked_total == load.acked_spans
        and state.exactly_once
        and result["server_errors_without_retry_after"] == 0
        and load.acked_spans > 0
    )
    for name in ("beat", "worker2", "web2", "haproxy"):
        cluster.stop(name)
    return result


def throughput_run(cluster: Cluster, secret: str, nodes: int, args: argparse.Namespace, seed: int) -> dict[str, Any]:
    fresh_database(cluster)
    web = ["web1", "web2"][:nodes]
    for node in web:
        cluster.web_up(node)
    for node in web:
        cluster.web_wait(node)
    cluster.balancer_up(web)
    time.sleep(1)
    senders = Senders(cluster, secret, args.concurrency, args.warmup + args.duration, args.give_up, seed=seed)
    try:
        time.sleep(max(senders.t0 + args.warmup - time.time(), 0))
        load_before = load_average()
        web_pids = [p for node in web for p in process_tree(cluster.processes[node].pid)]
        groups = {
            "web": lambda: cpu_seconds(web_pids),
            "postgres": lambda: cpu_seconds(postgres_pids(cluster.database)),
            "haproxy": lambda: cpu_seconds(process_tree(cluster.processes["haproxy"].pid)),
            "forwarder": lambda: cpu_seconds(process_tree(cluster.processes["forwarder"].pid)),
            "clients": lambda: cpu_seconds(senders.pids()),
        }
        start = {k: f() for k, f in groups.items()}
        busy_start, stored_start, t_start = machine_busy_seconds(), stored_spans(cluster), time.time()
        time.sleep(max(senders.end - time.time(), 0))
        window = time.time() - t_start
        end = {k: f() for k, f in groups.items()}
        busy_end, stored_end = machine_busy_seconds(), stored_spans(cluster)
        load_after = load_average()
        load = senders.wait(args.give_up + 120)
    finally:
        senders.terminate()
    cpu = {k: round(end[k] - start[k], 1) for k in groups}
    cpu["other"] = round(busy_end - busy_start - sum(cpu.values()), 1)
    stored = stored_end - stored_start
    in_window = [r for r in load.records if r[0] >= args.warmup and r[2] == 200]
    latencies = [r[1] * 1000 for r in in_window]
    per_k = {k: round(v * 1000 / stored, 3) if stored else 0.0 for k, v in cpu.items()}
    for node in [*web, "haproxy"]:
        cluster.stop(node)
    return {
        "web_nodes": nodes,
        "stored_spans_per_s": round(stored / window, 1),
        "window_s": round(window, 1),
        "p50_ms": round(statistics.median(latencies), 1) if latencies else 0.0,
        "p99_ms": round(percentile(latencies, 99), 1),
        "statuses": load.statuses(),
        "cpu_s": cpu,
        "cpu_ms_per_span": per_k,
        "load_average": f"{load_before} -> {load_after}",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=["faults", "throughput", "both"], default="both")
    parser.add_argument("--duration", type=float, default=60, help="Seconds of load per run (default 60).")
    parser.add_argument("--warmup", type=float, default=5, help="Throughput: seconds before the window (default 5).")
    parser.add_argument("--concurrency", type=int, default=4, help="Client processes (default 4).")
    parser.add_argument("--order", default="1,2", help="Throughput: web node counts in turn (default 1,2).")
    parser.add_argument(
        "--timing",
        choices=list(TIMINGS),
        default="production",
        help="Claim, grace and beat sweep: production (30 s, 30 s, 15 s) or short (3, 2, 1 s).",
    )
    parser.add_argument("--window", type=float, default=600, help="Faults: seconds to wait for scoring (default 600).")
    parser.add_argument("--give-up", type=float, default=60, help="Seconds a client retries one batch (default 60).")
    parser.add_argument("--database", default=os.environ.get("BENCH_SCALEOUT_DB", "sre4ai_scaleout"))
    parser.add_argument("--json", type=Path, help="Also write the results as JSON to this file.")
    parser.add_argument("--logs", type=Path, help="Copy the nodes' logs into this directory at the end.")
    parser.add_argument("--keep-db", action="store_true", help="Keep the databases afterwards.")
    parser.add_argument("--source", default="worktree", help="Code to run: 'worktree' (default) or a git revision.")
    args = parser.parse_args()
    missing = [tool for tool in ("ip", "haproxy", "rabbitmqctl") if shutil.which(tool) is None]
    if missing or os.geteuid() != 0:
        print(f"needs root and {', '.join(missing) or 'nothing else'} (apt-get install haproxy rabbitmq-server)")
        return 2

    # The namespaces, veth names and addresses are fixed: one run at a time on a machine.
    lock = open(Path(tempfile.gettempdir()) / "sre4ai-scaleout.lock", "w")  # noqa: SIM115 (held until exit)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        print("another bench/scaleout.py is running on this machine")
        return 2

    def interrupted(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupted)
    info = machine(args.source)
    log(f"machine: {info}")
    results: dict[str, Any] = {
        "machine": info,
        "args": {k: v if isinstance(v, str | int | float) else str(v) for k, v in vars(args).items()},
    }
    with tempfile.TemporaryDirectory(prefix="sre4ai-scaleout-") as tmp:
        work = Path(tmp)
        cluster = Cluster(work, snapshot(work / "src", args.source), args.database, vhost=f"{args.database}_vhost")
        try:
            cluster.network_up()
            cluster.broker_up()
            cluster.forwarder_up()
            secret = prepare_database(cluster)
            if args.mode in ("faults", "both"):
                results["faults"] = faults_run(cluster, secret, args)
                log(f"faults: {json.dumps(results['faults'])}")
            if args.mode in ("throughput", "both"):
                results["throughput"] = []
                for seed, nodes in enumerate((int(n) for n in args.order.split(",")), start=10):
                    outcome = throughput_run(cluster, secret, nodes, args, seed)
                    results["throughput"].append(outcome)
                    log(f"throughput: {json.dumps(outcome)}")
        except BaseException:
            for path in sorted(work.glob("*.log")):
                print(f"--- {path.name}\n{path.read_text(errors='replace')[-2000:]}", flush=True)
            raise
        finally:
            cluster.close()
            if args.logs:
                args.logs.mkdir(parents=True, exist_ok=True)
                for path in work.glob("*.log"):
                    shutil.copy(path, args.logs / path.name)
            if not args.keep_db:
                drop_databases(cluster)
    print(json.dumps(results, indent=2))
    report(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0 if results.get("faults", {"passed": True})["passed"] else 1


def report(results: dict[str, Any]) -> None:
    faults = results.get("faults")
    if faults:
        print("\nfaults:", "PASSED" if faults["passed"] else "FAILED")
        print(f"  acknowledged spans {faults['acked_spans']}, not stored {faults['acked_spans_not_stored']}")
        print(f"  scoring: {faults['scoring']}")
        print(
            f"  5xx without Retry-After: {faults['server_errors_without_retry_after']}; statuses {faults['statuses']}"
        )
    runs = results.get("throughput") or []
    if runs:
        print(
            "\n| web nodes | stored spans/s | p50 ms | p99 ms | web CPU ms/span | PG CPU ms/span | HAProxy+forwarder ms/span | load average |"
        )
        print("|---|---|---|---|---|---|---|---|")
        for r in runs:
            per = r["cpu_ms_per_span"]
            print(
                f"| {r['web_nodes']} | {r['stored_spans_per_s']} | {r['p50_ms']} | {r['p99_ms']} | {per['web']} | "
                f"{per['postgres']} | {round(per['haproxy'] + per['forwarder'], 3)} | {r['load_average']} |"
            )
        by_nodes: dict[int, list[float]] = {}
        for r in runs:
            by_nodes.setdefault(r["web_nodes"], []).append(r["stored_spans_per_s"])
        if 1 in by_nodes and 2 in by_nodes:
            ratio = statistics.mean(by_nodes[2]) / max(statistics.mean(by_nodes[1]), 1e-9)
            print(f"\n2 web nodes / 1 web node, stored spans/s: {ratio:.2f}x")


if __name__ == "__main__":
    sys.exit(main())
