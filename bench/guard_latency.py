"""Guard decision latency: p50 / p99 of one guard decision with the offline checks, on one core.

Usage (from the repository root, with the project's virtual environment):

    .venv/bin/python bench/guard_latency.py                  # 1,000 decisions per stage, 2,000-word texts
    .venv/bin/python bench/guard_latency.py --runs 300 --words 2000 --json /tmp/guard.json

Workload: a 2,000-word user input and a 2,000-word answer, built from the Wikipedia passages of the committed
HaluEval QA sample (bench/data/), with five of those passages as the retrieved documents (~2,000 words in all).
The answer carries an email address and a phone number (pii finds them on every call) and half of it is not in
the documents (grounding fails it, so the output decision is block). Each run varies the texts (a different
slice of the passages), so no cache helps.

Stages, each timed as ``guard.engine.decide`` (the checks on the guard's worker thread under the deadline,
the decision, the redaction):
- input: prompt_injection on the input and the documents, user_budget (the built-in default policy);
- output: pii (redact), secrets (block), grounding (block) of the answer against the documents;
- both: the two calls of one exchange, added; also without grounding (pii and secrets only on the answer).

Peer in the same run: the same evaluators called one after the other through ``run_evaluator`` on the same
items, with no thread, deadline or decision: the ratio is what the guard engine adds. Not included: the HTTP
request and the recording of the decision (one span upsert and one score upsert in PostgreSQL), which
docs/guard.md discusses. The process is pinned to one core (os.sched_setaffinity).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, machine

DATA = REPO / "bench" / "data" / "halueval_qa_sample.jsonl"


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


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _summary(ms: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(statistics.median(ms), 3),
        "p99_ms": round(_pct(ms, 0.99), 3),
        "max_ms": round(max(ms), 3),
        "mean_ms": round(statistics.fmean(ms), 3),
    }


def run(runs: int, words: int) -> dict[str, Any]:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sre4ai_web.settings")
    sys.path.insert(0, str(REPO))
    import django

    django.setup()
    from evals.evaluators.base import ContextDoc, EvalItem
    from evals.services import run_evaluator
    from guard.engine import Facts, GuardRequest, _evaluator, decide
    from guard.policy import DEFAULT_SPEC, CheckRule, PolicySpec

    output_spec = PolicySpec(
        checks=[
            CheckRule(check="pii", action="redact"),
            CheckRule(check="secrets", action="block"),
            CheckRule(check="grounding", action="block"),
        ],
        deadline_ms=10_000,  # measure the checks, not the deadline
        fail="open",
    )
    # The same without grounding: the cheap pattern checks only (what the built-in default runs on answers).
    pattern_spec = output_spec.model_copy(update={"checks": output_spec.checks[:2]})
    input_spec = DEFAULT_SPEC.model_copy(update={"deadline_ms": 10_000})
    passages = _passages()
    facts = Facts()

    def exchange(i: int) -> tuple[GuardRequest, GuardRequest]:
        docs = tuple(ContextDoc(id=str(k), text=_take(passages, i * 7 + k * 40, words // 5)) for k in range(5))
        question = _take(passages, i * 11 + 500, words)
        answer = _take(passages, i * 7, words // 2) + " Write to jane.roe@gmail.com or call +44 20 7946 0958. "
        answer += _take(passages, i * 7 + 40, words // 2)
        return (
            GuardRequest(stage="input", input=question, documents=docs, user_id="u-1"),
            GuardRequest(stage="output", input=question, output=answer, documents=docs),
        )

    exchanges = [exchange(i) for i in range(runs)]
    for inp, out in exchanges[:20]:  # warm up: regex caches, evaluator instances
        decide(input_spec, inp, facts), decide(output_spec, out, facts)

    guard_in, guard_out, guard_both, peer_both, patterns_both = [], [], [], [], []
    direct = [
        _evaluator("prompt_injection", "{}"),
        _evaluator("pii", json.dumps({"max_findings": 200}, sort_keys=True)),
        _evaluator("secrets", "{}"),
        _evaluator("grounding", "{}"),
    ]
    decisions: dict[str, int] = {}
    per_check: dict[str, list[float]] = {}
    for inp, out in exchanges:
        t0 = time.perf_counter()
        d_in = decide(input_spec, inp, facts)
        t1 = time.perf_counter()
        d_out = decide(output_spec, out, facts)
        t2 = time.perf_counter()
        guard_in.append((t1 - t0) * 1000)
        guard_out.append((t2 - t1) * 1000)
        guard_both.append((t2 - t0) * 1000)
        decide(pattern_spec, out, facts)
        patterns_both.append((t1 - t0 + time.perf_counter() - t2) * 1000)
        for stage, d in (("input", d_in), ("output", d_out)):
            decisions[f"{stage}:{d.decision}"] = decisions.get(f"{stage}:{d.decision}", 0) + 1
        items = [
            EvalItem(input=inp.input, context=inp.documents),
            EvalItem(input=out.input, output=out.output),
            EvalItem(output=out.output),
            EvalItem(input=out.input, output=out.output, context=out.documents),
        ]
        total = 0.0
        for evaluator, item in zip(direct, items, strict=True):
            t3 = time.perf_counter()
            run_evaluator(evaluator, item)
            elapsed = (time.perf_counter() - t3) * 1000
            per_check.setdefault(evaluator.name, []).append(elapsed)
            total += elapsed
        peer_both.append(total)
    guard = _summary(guard_both)
    peer = _summary(peer_both)
    return {
        "runs": runs,
        "words": words,
        "input_stage": _summary(guard_in),
        "output_stage": _summary(guard_out),
        "input_plus_answer": guard,
        "input_plus_answer_without_grounding": _summary(patterns_both),
        "peer_direct_evaluators": peer,
        "ratio_p50": round(guard["p50_ms"] / peer["p50_ms"], 3),
        "ratio_p99": round(guard["p99_ms"] / peer["p99_ms"], 3),
        "peer_p50_ms_per_evaluator": {name: round(statistics.median(ms), 3) for name, ms in per_check.items()},
        "decisions": decisions,
        "target_p99_ms": 20,
        "machine": machine(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--words", type=int, default=2000)
    parser.add_argument("--core", type=int, default=0, help="The core to pin the process to.")
    parser.add_argument("--json", type=Path, help="Also write the figures here.")
    args = parser.parse_args()
    os.sched_setaffinity(0, {args.core})
    figures = run(args.runs, args.words)
    text = json.dumps(figures, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
