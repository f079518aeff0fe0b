"""Whether a change to the grounding evaluator keeps its scores: this code and a git revision on the same items.

Usage (from the repository root):

    .venv/bin/python bench/grounding_same.py --baseline da58e91            # every grounding-dev item
    .venv/bin/python bench/grounding_same.py --baseline da58e91 --speed    # and the 300 speed items

Every labelled grounding-dev item (dev and test parts) and its generic replies, and with ``--speed`` the items
of ``bench/grounding.py --sets speed``: both versions' claim measures before the model (unrounded), and their
results in the default and the ``specifics`` mode (value, passed, label, explanation, evidence). Floats are
compared with a tolerance of 1e-9; the report is the number of items that differ per group and the largest
absolute difference of any float. A speed change that keeps every figure needs no retraining.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from grounding import GROUNDING_DEV, baseline, generic_replies, grounding_dev, load, speed_case, split_of

from evals.evaluators.base import EvalItem
from evals.evaluators.grounding import Grounding

TOLERANCE = 1e-9


def snapshot(evaluator: Any, specifics: Any, item: EvalItem) -> list[Any]:
    """What the evaluator computes for ``item``: the claim measures and both modes' results."""
    measured = evaluator.measure(item)
    claims = None
    if measured is not None:
        claims = [
            None if (f := v.features) is None else (f.values, f.best, f.window, f.baseless, f.missing, f.conflict)
            for v in measured.verdicts
        ]
        claims.append(measured.answer_overlap)
    out: list[Any] = [type(evaluator).not_applicable(item), claims]
    for scorer in (evaluator, specifics):
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--baseline", required=True, help="the git revision to compare with")
    parser.add_argument("--grounding-dev", default=str(GROUNDING_DEV))
    parser.add_argument("--speed", action="store_true", help="also the speed items (reads HaluEval)")
    args = parser.parse_args(argv)

    folder = Path(args.grounding_dev)
    groups: list[tuple[str, EvalItem]] = [
        (f"grounding-dev {meta['split']}", it) for meta, _y, it in grounding_dev(folder)
    ]
    groups += [("grounding-dev generic", it) for it in generic_replies(folder)]
    if args.speed:
        cases = [c for c in load(["summarization"], "package", None) if split_of(c.task, c.row) == "test"]
        groups += [("speed", it) for it in speed_case([c.item.context[0].text for c in cases][:60])]

    old = baseline(args.baseline)
    old_specifics = type(old).from_config({"claims": "specifics"})
    new, new_specifics = Grounding.from_config(None), Grounding.from_config({"claims": "specifics"})
    counts: dict[str, int] = {}
    differing: dict[str, int] = {}
    largest = 0.0
    for group, item in groups:
        difference = largest_difference(snapshot(new, new_specifics, item), snapshot(old, old_specifics, item))
        counts[group] = counts.get(group, 0) + 1
        if difference > TOLERANCE:
            differing[group] = differing.get(group, 0) + 1
        if difference != float("inf"):
            largest = max(largest, difference)
    for group, n in counts.items():
        print(f"{group:<28}{n:>6} items, {differing.get(group, 0):>5} differ (beyond {TOLERANCE:g})")
    print(f"largest absolute difference of any float (measures, probabilities, scores): {largest:.3g}")
    return 1 if differing else 0


if __name__ == "__main__":
    raise SystemExit(main())
