"""Guard decision latency over HTTP: p50 / p95 / p99 of ``POST /api/v1/guard`` as an app sees it, old code against
new in one run.

Usage (from the repository root, with the project's virtual environment):

    .venv/bin/python bench/guard_latency.py --baseline a1e5018 --runs 300 --json /tmp/guard.json

Each side (``--baseline REV`` and the working tree, or ``--only new``) is a snapshot of the code with its own
PostgreSQL database (migrated, one project, one key with the ingest and guard scopes, the policies below) and its
own gunicorn: **one sync worker pinned with taskset to one core** (``--core``, default 1). When the code records
decisions through the guard outbox (guard/tasks.py), a solo Celery worker for it runs pinned to ``--worker-core``
(default 0, beside this client): its CPU per decision is reported, and every decision is checked to be recorded
(one ``apply_guardrail`` span per call) once the run is over. The client sends one request at a time, old and new
interleaved (the order alternates each round), so both see the same machine load.

Workload: a 2,000-word user input and a 2,000-word answer, built from the Wikipedia passages of the committed
HaluEval QA sample (bench/data/), with five of those passages as the retrieved documents (~2,000 words in all).
The answer carries an email address and a phone number (pii finds them on every call) and half of it is not in
the documents (grounding fails it). Each round varies the texts (a different slice of the passages). Calls:

- input: the built-in default policy (prompt_injection on the input and the documents; user_budget for the
  request's user_id, which reads the project's per-user budgets);
- output: pii (redact), secrets (block) and user_budget on the answer (service ``patterns``);
- output with grounding: the same plus grounding (block) against the documents (service ``grounded``).

"exchange" is an input call plus an output call of the same round (what one guarded LLM answer costs the app),
with and without grounding. Deadlines are 10 s, so the checks themselves are measured, not the deadline.
Finally the offline checks alone are timed in this process (``run_evaluator`` on the same texts, pinned to the
server's core while both servers are idle): the share of each check.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import BROKER_URL, PG_BASE_URL, REPO, flush_broker, machine, pg_execute, pg_scalar, snapshot
from ingest import cpu_seconds, free_port, process_tree, stop_group, wait_http

DATA = REPO / "bench" / "data" / "halueval_qa_sample.jsonl"
DEADLINE_MS = 10_000
PATTERNS = [
    {"check": "pii", "action": "redact"},
    {"check": "secrets", "action": "block"},
    {"check": "user_budget", "action": "block"},
]
POLICIES = {
    "": {"checks": [{"check": "prompt_injection", "action": "block"}, {"check": "user_budget", "action": "block"}]},
    "patterns": {"checks": PATTERNS},
    "grounded": {"checks": [*PATTERNS, {"check": "grounding", "action": "block"}]},
}
# Policies written with the ORM, which every revision of guard has; a per-user budget so user_budget reads it.
SETUP = """
from decimal import Decimal
from accounts.models import Project
from guard.models import GuardPolicy
from slos.models import Budget
project = Project.objects.get(slug="bench")
for service, spec in {policies}.items():
    GuardPolicy.objects.create(project=project, service=service, spec={{**spec, "deadline_ms": {deadline}}})
Budget.objects.create(project=project, name="per user", scope="user", window="day", limit_usd=Decimal("5"))
"""


def _passages() -> list[str]:
    rows = [json.loads(line) for line in DATA.read_text().splitlines() if line.strip()]
    return [r["knowledge"].replace(".", ". ").strip() for r in rows]


def _take(passages: list[str], start: int, words: int) -> str:
    out: list[str] = []
    i = start
    while len(out) < words:
        out.extend(passages[i % len(passages)].split())
        i += 1
    return " ".join(out[:words])


def bodies(passages: list[str], i: int, words: int) -> dict[str, dict[str, Any]]:
    """The three calls of round ``i``."""
    docs = [{"id": str(k), "text": _take(passages, i * 7 + k * 40, words // 5)} for k in range(5)]
    question = _take(passages, i * 11 + 500, words)
    answer = _take(passages, i * 7, words // 2) + " Write to jane.roe@gmail.com or call +44 20 7946 0958. "
    answer += _take(passages, i * 7 + 40, words // 2)
    output = {"stage": "output", "input": question, "output": answer, "documents": docs, "user_id": f"u-{i % 50}"}
    return {
        "input": {"stage": "input", "input": question, "documents": docs, "user_id": f"u-{i % 50}"},
        "output": {**output, "service": "patterns"},
        "output_grounded": {**output, "service": "grounded"},
    }


# --- one side: code, database, server, worker --------------------------------------------------------


def _manage(src: Path, env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=src, env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed in {src}:\n{done.stdout}\n{done.stderr}")
    return done.stdout


class Side:
    def __init__(self, name: str, src: Path, work: Path, core: int, worker_core: int):
        self.name, self.src, self.core, self.worker_core = name, src, core, worker_core
        self.db = f"bench_guard_{name}"
        self.var = work / f"var-{name}"
        self.var.mkdir()
        self.env = {
            **os.environ,
            "DATABASE_URL": f"{PG_BASE_URL}/{self.db}",
            "DJANGO_DEBUG": "0",
            "SRE4AI_VAR_DIR": str(self.var),
            "CELERY_BROKER_URL": BROKER_URL,
            "LOG_LEVEL": "WARNING",
        }
        self.log = work / f"{name}.log"
        self.records_async = (src / "guard" / "tasks.py").exists()
        self.port = 0
        self.secret = ""

    def prepare(self) -> None:
        pg_execute(f"DROP DATABASE IF EXISTS {self.db} WITH (FORCE)")
        pg_execute(f"CREATE DATABASE {self.db}")
        _manage(self.src, self.env, "migrate", "--noinput", "-v", "0")
        _manage(self.src, self.env, "create_project", "bench", "--name", "Guard benchmark")
        key = _manage(self.src, self.env, "create_api_key", "bench", "--scope", "ingest", "--scope", "guard", "--json")
        self.secret = json.loads(key.strip().splitlines()[-1])["secret_key"]
        _manage(self.src, self.env, "shell", "-c", SETUP.format(policies=POLICIES, deadline=DEADLINE_MS))

    @contextlib.contextmanager
    def running(self) -> Iterator[Side]:
        self.port = free_port()
        gunicorn = str(Path(sys.executable).parent / "gunicorn")
        web_cmd = [
            "taskset",
            "-c",
            str(self.core),
            gunicorn,
            "sre4ai_web.wsgi:application",
            "--bind",
            f"127.0.0.1:{self.port}",
            "--workers",
            "1",
            "--log-level",
            "warning",
        ]
        procs = []
        with self.log.open("wb") as out:
            web = subprocess.Popen(
                web_cmd, cwd=self.src, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
            procs.append(web)
            if self.records_async:
                celery = str(Path(sys.executable).parent / "celery")
                worker_cmd = [
                    "taskset",
                    "-c",
                    str(self.worker_core),
                    celery,
                    "-A",
                    "sre4ai_web",
                    "worker",
                    "--pool",
                    "solo",
                    "-Q",
                    "celery",
                    "-n",
                    f"bench-guard-{self.name}@%h",
                    "--loglevel",
                    "WARNING",
                    "--without-gossip",
                    "--without-mingle",
                ]
                procs.append(
                    subprocess.Popen(
                        worker_cmd,
                        cwd=self.src,
                        env=self.env,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )
        self.procs = procs
        try:
            wait_http(self.port, "/login/", web, 60, self.log)
            yield self
        finally:
            for proc in procs:
                stop_group(proc)

    def cpu(self) -> tuple[float, float]:
        """CPU seconds of the web server and of the recording worker so far."""
        web = cpu_seconds(process_tree(self.procs[0].pid))
        worker = cpu_seconds(process_tree(self.procs[1].pid)) if len(self.procs) > 1 else 0.0
        return web, worker

    def call(self, body: bytes) -> tuple[float, dict[str, Any]]:
        started = time.perf_counter()
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        conn.request(
            "POST",
            "/api/v1/guard",
            body=body,
            headers={"Authorization": f"Bearer {self.secret}", "Content-Type": "application/json"},
        )
        response = conn.getresponse()
        payload = response.read()
        elapsed = (time.perf_counter() - started) * 1000
        conn.close()
        if response.status != 200:
            raise RuntimeError(f"{self.name}: HTTP {response.status}: {payload[:500]!r}")
        return elapsed, json.loads(payload)

    def recorded(self) -> int:
        return int(pg_scalar("SELECT count(*) FROM traces_span WHERE name = 'apply_guardrail'", self.db))

    def wait_recorded(self, expected: int, timeout: float = 120) -> tuple[int, float]:
        started = time.monotonic()
        while (count := self.recorded()) < expected and time.monotonic() - started < timeout:
            time.sleep(0.2)
        return count, time.monotonic() - started


# --- figures -----------------------------------------------------------------------------------------


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summary(ms: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(statistics.median(ms), 2),
        "p95_ms": round(_pct(ms, 0.95), 2),
        "p99_ms": round(_pct(ms, 0.99), 2),
        "max_ms": round(max(ms), 2),
    }


def per_check(passages: list[str], runs: int, words: int, core: int) -> dict[str, float]:
    """Median ms of each offline check called directly on the round's texts, in this process on ``core``."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sre4ai_web.settings")
    sys.path.insert(0, str(REPO))
    import django

    django.setup()
    from evals.evaluators.base import ContextDoc, EvalItem
    from evals.evaluators.registry import REGISTRY
    from evals.services import run_evaluator

    os.sched_setaffinity(0, {core})
    evaluators = {name: REGISTRY[name].from_config({}) for name in ("prompt_injection", "pii", "secrets", "grounding")}
    timings: dict[str, list[float]] = {name: [] for name in evaluators}
    for i in range(runs):
        call = bodies(passages, i, words)
        docs = tuple(ContextDoc(id=d["id"], text=d["text"]) for d in call["input"]["documents"])
        question, answer = call["input"]["input"], call["output"]["output"]
        items = {
            "prompt_injection": EvalItem(input=question, context=docs),
            "pii": EvalItem(input=question, output=answer),
            "secrets": EvalItem(input=question, output=answer),
            "grounding": EvalItem(input=question, output=answer, context=docs),
        }
        for name, evaluator in evaluators.items():
            started = time.perf_counter()
            run_evaluator(evaluator, items[name])
            timings[name].append((time.perf_counter() - started) * 1000)
    return {name: round(statistics.median(ms[5:]), 2) for name, ms in timings.items()}


def run(args: argparse.Namespace) -> dict[str, Any]:
    passages = _passages()
    rounds = [
        {kind: json.dumps(body).encode() for kind, body in bodies(passages, i, args.words).items()}
        for i in range(args.runs + args.warmup)
    ]
    with tempfile.TemporaryDirectory(prefix="guard-bench-") as tmp:
        work = Path(tmp)
        sources = {"new": "worktree"} if args.only == "new" else {"old": args.baseline, "new": "worktree"}
        sides = [
            Side(name, snapshot(work / f"src-{name}", source), work, args.core, args.worker_core)
            for name, source in sources.items()
        ]
        for side in sides:
            side.prepare()
        with contextlib.ExitStack() as stack:
            for side in sides:
                stack.enter_context(side.running())
            client: dict[str, dict[str, list[float]]] = {s.name: {k: [] for k in rounds[0]} for s in sides}
            server: dict[str, dict[str, list[float]]] = {s.name: {k: [] for k in rounds[0]} for s in sides}
            decisions: dict[str, dict[str, int]] = {s.name: {} for s in sides}
            # CPU of the web server per kind of call (clock ticks of /proc, summed over the run: exact on average).
            web_cpu: dict[str, dict[str, float]] = {s.name: dict.fromkeys(rounds[0], 0.0) for s in sides}
            loadavg_before = Path("/proc/loadavg").read_text().split()[:3]
            cpu_start: dict[str, tuple[float, float]] = {}
            for i, calls in enumerate(rounds):
                if i == args.warmup:
                    cpu_start = {s.name: s.cpu() for s in sides}
                for side in sides if i % 2 == 0 else sides[::-1]:
                    for kind, body in calls.items():
                        web_before = side.cpu()[0]
                        ms, answer = side.call(body)
                        if i < args.warmup:
                            continue
                        web_cpu[side.name][kind] += side.cpu()[0] - web_before
                        client[side.name][kind].append(ms)
                        server[side.name][kind].append(float(answer["elapsed_ms"]))
                        key = f"{kind}:{answer['decision']}"
                        decisions[side.name][key] = decisions[side.name].get(key, 0) + 1
            cpu_end = {s.name: s.cpu() for s in sides}
            loadavg_after = Path("/proc/loadavg").read_text().split()[:3]
            calls_made = len(rounds) * len(rounds[0])
            recorded = {s.name: s.wait_recorded(calls_made) for s in sides}
            cpu_drained = {s.name: s.cpu() for s in sides}
        flush_broker()
        for side in sides:
            pg_execute(f"DROP DATABASE IF EXISTS {side.db} WITH (FORCE)")
    measured = args.runs * len(rounds[0])
    results: dict[str, Any] = {}
    for side in sides:
        c = client[side.name]
        web_cpu_total = cpu_end[side.name][0] - cpu_start[side.name][0]
        worker_cpu = cpu_drained[side.name][1] - cpu_start[side.name][1]
        results[side.name] = {
            "records_decisions": "outbox + worker" if side.records_async else "in the request",
            "client_ms": {kind: summary(ms) for kind, ms in c.items()},
            "exchange_ms": summary([a + b for a, b in zip(c["input"], c["output"], strict=True)]),
            "exchange_with_grounding_ms": summary(
                [a + b for a, b in zip(c["input"], c["output_grounded"], strict=True)]
            ),
            "server_decide_ms": {kind: summary(ms) for kind, ms in server[side.name].items()},
            "web_cpu_ms_per_call": round(web_cpu_total * 1000 / measured, 2),
            "web_cpu_ms": {kind: round(sec * 1000 / args.runs, 2) for kind, sec in web_cpu[side.name].items()},
            "worker_cpu_ms_per_call": round(worker_cpu * 1000 / measured, 2),
            "decisions": decisions[side.name],
            "recorded": {
                "calls": calls_made,
                "spans": recorded[side.name][0],
                "seconds_to_drain_after_run": round(recorded[side.name][1], 1),
            },
        }
    if "old" in results:
        old, new = results["old"], results["new"]
        results["ratio_new_over_old"] = {
            kind: {q: round(new["client_ms"][kind][q] / old["client_ms"][kind][q], 3) for q in ("p50_ms", "p99_ms")}
            for kind in old["client_ms"]
        }
    return {
        "runs": args.runs,
        "words": args.words,
        "baseline": args.baseline if args.only != "new" else None,
        "server": f"gunicorn, 1 sync worker, taskset -c {args.core}; recording worker on core {args.worker_core}",
        "loadavg_before": loadavg_before,
        "loadavg_after": loadavg_after,
        **results,
        "per_check_median_ms": per_check(passages, min(args.runs, 100), args.words, args.core),
        "target_p99_ms": 20,
        "machine": machine(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=300, help="Rounds measured (each: three calls per side).")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--words", type=int, default=2000)
    parser.add_argument("--baseline", default="a1e5018", help="The old code: a git revision.")
    parser.add_argument("--only", choices=["new"], help="Measure the working tree alone.")
    parser.add_argument("--core", type=int, default=1, help="The core the web servers are pinned to.")
    parser.add_argument("--worker-core", type=int, default=0, help="The core of the recording worker(s).")
    parser.add_argument("--json", type=Path, help="Also write the figures here.")
    args = parser.parse_args()
    os.sched_setaffinity(0, {args.worker_core})  # the client beside the recording worker, off the server's core
    figures = run(args)
    text = json.dumps(figures, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
