"""Whether a change to the grounding evaluator keeps its scores: this code and a git revision on the same items.

Usage (from the repository root):

    .venv/bin/python bench/grounding_same.py --baseline da58e91            # every grounding-dev item
    .venv/bin/python bench/grounding_same.py --baseline da58e91 --speed    # and the 300 speed items
    PYTHONHASHSEED=0 .venv/bin/python bench/grounding_same.py --baseline da58e91 --all   # every corpus below

Every labelled grounding-dev item (dev and test parts) and its generic replies; with ``--speed`` the items of
``bench/grounding.py --sets speed`` (reads HaluEval's summaries); with ``--all`` those and the committed HaluEval
QA sample (both answers of each row), bench/grounding_synth.py's items (data-to-text, summaries, QA; built as
``bench/grounding.py --sets synthetic`` builds them) and the 100 answers of ``--sets guard-speed``. Per item, both
versions' claim measures before the model (unrounded), and their results under every parameter set of ``PARAMS``
(value, passed, label, explanation, evidence). Floats are compared with a tolerance of 1e-9; the report is the
number of items that differ per group and the largest absolute difference of any float. A speed change that keeps
every figure needs no retraining.

Up to ``82b9500`` the evaluator's output could depend on Python's string hash seed (inverse document frequency
weights summed in set order, inexactly: two passages that tie could swap places); since then the weights are
multiples of 2**-32 and every such sum is exact (tests/evals/evaluators/test_grounding_determinism.py). Against an
older revision, run under a fixed ``PYTHONHASHSEED``, and more than one.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from grounding import (
    GROUNDING_DEV,
    SYNTHETIC_SEED,
    baseline,
    generic_replies,
    grounding_dev,
    guard_speed_case,
    load,
    speed_case,
    split_of,
)

from evals.evaluators.base import EvalItem
from evals.evaluators.grounding import Grounding

TOLERANCE = 1e-9
# The parameter sets whose results are compared (the claim measures are those of the defaults): the defaults,
# the tool-agent mode, each flag that changes what is measured turned off, and a strict threshold with a cut
# answer.
PARAMS: list[dict[str, Any]] = [
    {},
    {"claims": "specifics"},
    {"flag_specifics": False, "check_negation": False},
    {"input_as_known": False},
    {"threshold": 0.8, "max_sentences": 5},
]


def snapshot(evaluators: list[Any], item: EvalItem) -> list[Any]:
    """What the evaluators compute for ``item``: the claim measures of the first, and every one's result."""
    measured = evaluators[0].measure(item)
    claims = None
    if measured is not None:
        claims = [
            None if (f := v.features) is None else (f.values, f.best, f.window, f.baseless, f.missing, f.conflict)
            for v in measured.verdicts
        ]
        claims.append(measured.answer_overlap)
    out: list[Any] = [type(evaluators[0]).not_applicable(item), claims]
    for scorer in evaluators:
        result = scorer.evaluate(item)
        out.append(None if result is None else (result.value, result.passed, result.label, result.explanation))
        out.append(None if result is None else result.evidence)
    return out


def largest_difference(a: Any, b: Any) -> float:
    """The largest absolute difference of the floats of ``a`` and ``b``; infinity when anything else differs."""
    if isinstance(a, float) and isinstance(b, float):
        return abs(a - b)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        if len(a) != len(b):
            return float("inf")
        return max(map(largest_difference, a, b), default=0.0)
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            return float("inf")
        return max((largest_difference(a[k], b[k]) for k in a), default=0.0)
    return 0.0 if a == b else float("inf")


def corpora(folder: Path, speed: bool, every: bool) -> list[tuple[str, EvalItem]]:
    """(group, item) of every item compared."""
    groups: list[tuple[str, EvalItem]] = [
        (f"grounding-dev {meta['split']}", it) for meta, _y, it in grounding_dev(folder)
    ]
    groups += [("grounding-dev generic", it) for it in generic_replies(folder)]
    if speed or every:
        summaries = [c for c in load(["summarization"], "package", None) if split_of(c.task, c.row) == "test"]
        groups += [("speed", it) for it in speed_case([c.item.context[0].text for c in summaries][:60])]
    if every:
        from grounding_synth import data2text_cases, qa_cases, summary_cases

        groups += [("halueval qa sample", c.item) for c in load(["qa"], "sample", None)]
        articles = [c.item.context[0].text for c in summaries if c.label][:2000]
        supported = [it for meta, y, it in grounding_dev(folder) if y and meta["split"] == "test"]
        synthetic = (
            data2text_cases(SYNTHETIC_SEED, 600)
            + summary_cases(articles, SYNTHETIC_SEED + 1, 600)
            + qa_cases(supported, SYNTHETIC_SEED + 2, 600)
        )
        groups += [(f"synthetic {made.kind}", made.item) for made in synthetic]
        groups += [("guard-speed", it) for it in guard_speed_case()]
    return groups


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--baseline", required=True, help="the git revision to compare with")
    parser.add_argument("--grounding-dev", default=str(GROUNDING_DEV))
    parser.add_argument("--speed", action="store_true", help="also the speed items (reads HaluEval)")
    parser.add_argument("--all", action="store_true", help="every corpus: speed, HaluEval QA, synthetic, guard")
    args = parser.parse_args(argv)

    groups = corpora(Path(args.grounding_dev), args.speed, args.all)
    old_class = type(baseline(args.baseline))
    old = [old_class.from_config(params) for params in PARAMS]
    new = [Grounding.from_config(params) for params in PARAMS]
    counts: dict[str, int] = {}
    differing: dict[str, int] = {}
    largest = 0.0
    for group, item in groups:
        difference = largest_difference(snapshot(new, item), snapshot(old, item))
        counts[group] = counts.get(group, 0) + 1
        if difference > TOLERANCE:
            differing[group] = differing.get(group, 0) + 1
        if difference != float("inf"):
            largest = max(largest, difference)
    seed = os.environ.get("PYTHONHASHSEED", "random")
    print(f"PYTHONHASHSEED={seed}; {len(PARAMS)} parameter sets; results compared per item: {len(PARAMS)} evaluations")
    for group, n in counts.items():
        print(f"{group:<28}{n:>6} items, {differing.get(group, 0):>5} differ (beyond {TOLERANCE:g})")
    print(f"items: {sum(counts.values())}, evaluations per version: {sum(counts.values()) * len(PARAMS)}")
    print(f"largest absolute difference of any float (measures, probabilities, scores): {largest:.3g}")
    return 1 if differing else 0


if __name__ == "__main__":
    raise SystemExit(main())
