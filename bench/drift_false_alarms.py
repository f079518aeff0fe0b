"""Drift benchmark: false-alarm rate and detection power of evals.drift.stats at its default settings.

Usage (from the repository root, with the project's virtual environment):

    .venv/bin/python bench/drift_false_alarms.py                      # 1000 no-shift and 200 shifted repetitions
    .venv/bin/python bench/drift_false_alarms.py --reps 200 --power-reps 50 --json /tmp/drift.json
    .venv/bin/python bench/drift_false_alarms.py --kinds numeric rate --workers 1

What it measures. Each row is one signal kind, one pair of window sizes (current vs baseline: a quiet hour
against a busy week is not the same as a day against a week) and one planted shift. For every repetition
it draws both windows from seeded synthetic generators (below) and runs the drift function with its
defaults only. "drift" is the share of repetitions with verdict "drift"; "p<alpha" the share whose test
alone was significant (the verdict without the minimum effect size); "insufficient" the share below the
minimum sample size. On the no-shift rows (shift "none") "drift" is the false-alarm rate, printed with a
95% Clopper-Pearson upper bound; the nominal level is alpha = 0.01. On the other rows it is the power.

Generators (realistic shapes, fixed seeds: seed, kind, sizes, shift and repetition number):
- numeric: latency in ms, log-normal with median 800 ms and sigma 0.6; shift = latency multiplied by a
  factor in the current window.
- categorical: model name, six models with shares 55/25/12/5/2/1%; shift = a new model taking a share of
  the current window's traffic (the others scaled down).
- rate: refusal rate 2% in the baseline (rare: mostly Fisher's exact test at these sizes); shift = the
  current window's rate. rate10: the same with a 10% error rate (the z-test).
- text: answers of 8-40 tokens drawn from a Zipf vocabulary of 3000 words; shift = a share of the current
  answers drawn from another distribution (half of their tokens from 400 words never seen in the
  baseline). Note that the default minimum AUC (0.65) needs about 30% of the answers to look different.

Repetitions are spread over ``--workers`` processes (default: all cores); the figures do not depend on it.
No timings are asserted anywhere; the wall time is printed for information.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy
from scipy import stats as sps

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from evals.drift import stats as drift  # noqa: E402

SIZES: list[tuple[int, int]] = [(200, 1400), (50, 300), (20, 100)]  # (current, baseline)
KINDS = ("numeric", "categorical", "rate", "rate10", "text")
# Planted shifts per kind; the first is the no-shift case.
SHIFTS: dict[str, list[float]] = {
    "numeric": [1.0, 1.1, 1.25, 1.5],  # latency factor
    "categorical": [0.0, 0.05, 0.15, 0.30],  # share of a new model
    "rate": [0.02, 0.03, 0.04, 0.08],  # current refusal rate (baseline 0.02)
    "rate10": [0.10, 0.12, 0.15, 0.20],  # current error rate (baseline 0.10)
    "text": [0.0, 0.2, 0.4, 0.8],  # share of answers from another distribution
}
SHIFT_LABEL: dict[str, Callable[[float], str]] = {
    "numeric": lambda s: "none" if s == 1.0 else f"latency x{s:g}",
    "categorical": lambda s: "none" if s == 0 else f"new model {s:.0%}",
    "rate": lambda s: "none" if s == 0.02 else f"refusal 2% -> {s:.0%}",
    "rate10": lambda s: "none" if s == 0.10 else f"error 10% -> {s:.0%}",
    "text": lambda s: "none" if s == 0 else f"{s:.0%} answers shifted",
}

MODELS = ["gpt-4o-mini", "gpt-4o", "claude-sonnet-4", "gemini-2.5-flash", "llama-3.3-70b", "mistral-large"]
MODEL_SHARES = np.array([0.55, 0.25, 0.12, 0.05, 0.02, 0.01])
VOCAB = [f"w{i}" for i in range(3000)]
VOCAB_P = 1 / np.arange(1, 3001) ** 1.1
VOCAB_P /= VOCAB_P.sum()
NEW_WORDS = [f"n{i}" for i in range(400)]
NEW_P = 1 / np.arange(1, 401) ** 1.1
NEW_P /= NEW_P.sum()


def latency(rng: np.random.Generator, n: int, factor: float = 1.0) -> list[float]:
    return (rng.lognormal(np.log(800.0), 0.6, n) * factor).tolist()


def models(rng: np.random.Generator, n: int, new_share: float = 0.0) -> list[str]:
    names = [*MODELS, "gpt-5"]
    shares = np.append(MODEL_SHARES * (1 - new_share), new_share)
    return [names[i] for i in rng.choice(len(names), size=n, p=shares)]


def answers(rng: np.random.Generator, n: int, shifted_share: float = 0.0) -> list[str]:
    lengths = rng.integers(8, 41, size=n)
    shifted = rng.random(n) < shifted_share
    old = rng.choice(len(VOCAB), size=int(lengths.sum()), p=VOCAB_P)
    new = rng.choice(len(NEW_WORDS), size=int(lengths.sum()), p=NEW_P)
    use_new = rng.random(int(lengths.sum())) < 0.5
    out, pos = [], 0
    for length, is_shifted in zip(lengths, shifted, strict=True):
        words = [
            NEW_WORDS[new[j]] if is_shifted and use_new[j] else VOCAB[old[j]] for j in range(pos, pos + int(length))
        ]
        out.append(" ".join(words))
        pos += int(length)
    return out


def run_one(kind: str, shift: float, n_cur: int, n_base: int, rng: np.random.Generator) -> drift.DriftResult:
    """One repetition at default settings."""
    if kind == "numeric":
        return drift.numeric_drift(latency(rng, n_base), latency(rng, n_cur, shift))
    if kind == "categorical":
        return drift.categorical_drift(models(rng, n_base), models(rng, n_cur, shift))
    if kind in ("rate", "rate10"):
        base = SHIFTS[kind][0]
        return drift.rate_drift(int(rng.binomial(n_base, base)), n_base, int(rng.binomial(n_cur, shift)), n_cur)
    if kind == "text":
        return drift.text_drift(answers(rng, n_base), answers(rng, n_cur, shift))
    raise ValueError(kind)


@dataclass
class Row:
    kind: str
    shift: str
    n_current: int
    n_baseline: int
    reps: int
    drift: int
    significant: int
    insufficient: int
    seconds: float

    @property
    def is_null(self) -> bool:
        return self.shift == "none"

    def rate(self, count: int) -> float:
        return count / self.reps if self.reps else 0.0

    def upper95(self) -> float:
        """One-sided 95% Clopper-Pearson upper bound of the drift rate."""
        if self.drift >= self.reps:
            return 1.0
        return float(sps.beta.ppf(0.95, self.drift + 1, self.reps - self.drift))

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(
            drift_rate=self.rate(self.drift),
            significant_rate=self.rate(self.significant),
            insufficient_rate=self.rate(self.insufficient),
            false_alarm_upper95=self.upper95() if self.is_null else None,
        )
        return d


Job = tuple[int, str, int, int, int, int, int]  # (row, kind, shift index, size index, first rep, count, seed)


def run_cell(job: Job) -> tuple[int, int, int, int, float]:
    """(row, drift, significant, insufficient, seconds) over a chunk of repetitions of one row."""
    row, kind, shift_idx, size_idx, first, count, seed = job
    n_cur, n_base = SIZES[size_idx]
    shift = SHIFTS[kind][shift_idx]
    alarms = significant = insufficient = 0
    start = time.perf_counter()
    for rep in range(first, first + count):
        rng = np.random.default_rng([seed, KINDS.index(kind), size_idx, shift_idx, rep])
        result = run_one(kind, shift, n_cur, n_base, rng)
        alarms += result.verdict == drift.DRIFT
        significant += result.significant
        insufficient += result.verdict == drift.INSUFFICIENT_DATA
    return row, alarms, significant, insufficient, time.perf_counter() - start


def measure(kinds: list[str], reps: int, power_reps: int, seed: int, workers: int) -> list[Row]:
    rows: list[Row] = []
    jobs: list[Job] = []
    chunk = 25
    for kind in kinds:
        for shift_idx, shift in enumerate(SHIFTS[kind]):
            n = reps if shift_idx == 0 else power_reps
            for size_idx, (n_cur, n_base) in enumerate(SIZES):
                rows.append(Row(kind, SHIFT_LABEL[kind](shift), n_cur, n_base, n, 0, 0, 0, 0.0))
                for first in range(0, n, chunk):
                    jobs.append((len(rows) - 1, kind, shift_idx, size_idx, first, min(chunk, n - first), seed))
    outputs: list[tuple[int, int, int, int, float]] = []
    with ProcessPoolExecutor(max_workers=workers) if workers > 1 else nullcontext() as pool:
        results = pool.map(run_cell, jobs) if pool is not None else map(run_cell, jobs)
        for done, output in enumerate(results, 1):
            outputs.append(output)
            if done % 20 == 0 or done == len(jobs):
                print(f"\r{done}/{len(jobs)} chunks", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    for idx, alarms, significant, insufficient, seconds in outputs:
        row = rows[idx]
        row.drift += alarms
        row.significant += significant
        row.insufficient += insufficient
        row.seconds = round(row.seconds + seconds, 2)
    return rows


def table(rows: list[Row]) -> str:
    head = f"{'kind':<12} {'shift':<24} {'current vs baseline':>20} {'reps':>5} {'drift':>7} {'p<alpha':>8} {'insuff.':>8} {'FA 95% upper':>13}"
    lines = [head, "-" * len(head)]
    for r in rows:
        upper = f"{r.upper95():.4f}" if r.is_null else ""
        lines.append(
            f"{r.kind:<12} {r.shift:<24} {f'{r.n_current} vs {r.n_baseline}':>20} {r.reps:>5} "
            f"{r.rate(r.drift):>7.3f} {r.rate(r.significant):>8.3f} {r.rate(r.insufficient):>8.3f} {upper:>13}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=1000, help="repetitions of each no-shift row (default 1000)")
    parser.add_argument("--power-reps", type=int, default=200, help="repetitions of each shifted row (default 200)")
    parser.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS))
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()

    start = time.perf_counter()
    rows = measure(args.kinds, args.reps, args.power_reps, args.seed, args.workers)
    wall = time.perf_counter() - start
    defaults = {
        "alpha": drift.DEFAULT_ALPHA,
        "numeric": {"min_effect": drift.NUMERIC_MIN_EFFECT, "min_samples": drift.NUMERIC_MIN_SAMPLES},
        "categorical": {"min_effect": drift.CATEGORICAL_MIN_EFFECT, "min_samples": drift.CATEGORICAL_MIN_SAMPLES},
        "rate": {"min_effect": drift.RATE_MIN_EFFECT, "min_samples": drift.RATE_MIN_SAMPLES},
        "rate10": {"min_effect": drift.RATE_MIN_EFFECT, "min_samples": drift.RATE_MIN_SAMPLES},
        "text": {
            "min_effect": drift.TEXT_MIN_EFFECT,
            "min_samples": drift.TEXT_MIN_SAMPLES,
            "n_permutations": drift.TEXT_PERMUTATIONS,
        },
    }
    machine = {
        "nproc": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "platform": platform.platform(),
    }
    print(f"drift false alarms and power at default settings (alpha = {drift.DEFAULT_ALPHA}); seed {args.seed}")
    print(f"machine: {machine}")
    print(table(rows))
    print(f"wall time {wall:.1f} s with {args.workers} worker(s)")
    if args.json:
        payload = {
            "command": " ".join([".venv/bin/python", "bench/drift_false_alarms.py", *sys.argv[1:]]),
            "seed": args.seed,
            "defaults": defaults,
            "machine": machine,
            "wall_seconds": round(wall, 1),
            "workers": args.workers,
            "rows": [r.as_dict() for r in rows],
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
