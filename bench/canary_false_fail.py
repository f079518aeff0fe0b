"""Canary benchmark: false-fail rate on equal cohorts, and detection power, of evals.canary.stats at its defaults.

Usage (from the repository root, with the project's virtual environment):

    .venv/bin/python bench/canary_false_fail.py                  # 2000 equal-cohort and 300 regressed repetitions
    .venv/bin/python bench/canary_false_fail.py --reps 500 --power-reps 100 --json /tmp/canary.json

What it measures. Each row is one pair of cohort sizes (baseline, canary), one set of signals and one planted
change. Every repetition draws both cohorts from seeded synthetic generators and runs ``analyse`` with the default
``CanaryConfig`` (alpha 0.05 after Holm, margins 2 points / 10%, minimums 50 events / 30 values, thresholds
95 / 75, critical = error and the quality and safety checks in DEFAULT_CRITICAL). On the "none" rows both cohorts come from the same population: "fail" is the
false-fail rate (a deployment blocked for nothing), printed with its 95% Clopper-Pearson upper bound, and
"marginal" the share that would need a human look. On the other rows "fail" is the power against that regression.
"worse" is the share of repetitions in which the changed signal (or, on "none" rows, any signal) was worse; the
last column counts, per signal, the repetitions in which it was worse (the three most frequent).

Generators, one value per trace, independent across signals:
- latency: log-normal, median 800 ms, sigma 0.6 (regression: x factor);
- cost: log-normal, median $0.002, sigma 0.3;
- error rate 2% (critical); refusal rate 3%; grounding pass rate 90%;
- "13 signals" adds eight more pass/fail checks (pass rates 80% to 99%), as a service with many evaluators has.
No timing is asserted; the wall time is printed for information.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import scipy
from scipy import stats as sps

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from evals.canary.stats import CanaryConfig, NumericSignal, RateSignal, analyse  # noqa: E402

SIZES: list[tuple[int, int]] = [(100, 100), (300, 300), (1000, 1000), (5000, 500), (20000, 2000)]
EXTRA_CHECKS = [0.80, 0.85, 0.90, 0.95, 0.97, 0.98, 0.99, 0.99]
# (name, signal changed, description): the first is the no-change case.
CHANGES = [
    ("none", "", "equal cohorts"),
    ("latency x1.2", "latency", "median latency +20%"),
    ("grounding -5 pt", "grounding", "grounding pass rate 90% -> 85%"),
    ("error +3 pt", "error", "error rate 2% -> 5% (critical)"),
]


@dataclass
class Row:
    baseline: int
    canary: int
    signals: int
    change: str
    reps: int
    fail: float
    fail_upper95: float
    marginal: float
    worse: float
    worse_by_signal: dict[str, int]


def clopper_pearson_upper(k: int, n: int, level: float = 0.95) -> float:
    return 1.0 if k == n else float(sps.beta.ppf(level, k + 1, n - k))


def cohorts(
    rng: np.random.Generator, n_b: int, n_c: int, change: str, extra: bool
) -> tuple[list[RateSignal], list[NumericSignal]]:
    def rate(name: str, label: str, p_b: float, p_c: float, higher: bool) -> RateSignal:
        return RateSignal(name, label, int(rng.binomial(n_b, p_b)), n_b, int(rng.binomial(n_c, p_c)), n_c, higher)

    rates = [
        rate("error", "error rate", 0.02, 0.05 if change == "error +3 pt" else 0.02, False),
        rate("refusal", "refusal rate", 0.03, 0.03, False),
        rate("grounding", "grounding", 0.90, 0.85 if change == "grounding -5 pt" else 0.90, True),
    ]
    if extra:
        rates += [rate(f"check{i}", f"check{i}", p, p, True) for i, p in enumerate(EXTRA_CHECKS)]
    slowdown = 1.2 if change == "latency x1.2" else 1.0

    def values(median: float, sigma: float, n: int) -> list[float]:
        return [float(x) for x in rng.lognormal(np.log(median), sigma, n)]

    numerics = [
        NumericSignal("latency", "latency", values(800, 0.6, n_b), values(800 * slowdown, 0.6, n_c), False, "ms"),
        NumericSignal("cost", "cost", values(0.002, 0.3, n_b), values(0.002, 0.3, n_c), False, "USD"),
    ]
    return rates, numerics


def run(reps: int, power_reps: int) -> list[Row]:
    config = CanaryConfig()
    rows = []
    for (n_b, n_c), extra, (change, target, _) in (
        (size, extra, change) for size in SIZES for extra in (False, True) for change in CHANGES
    ):
        count = reps if change == "none" else power_reps
        rng = np.random.default_rng([n_b, n_c, int(extra), CHANGES.index((change, target, _))])
        fails = marginals = worse = 0
        worse_by_signal: Counter[str] = Counter()
        signals = 0
        for _ in range(count):
            result = analyse(*cohorts(rng, n_b, n_c, change, extra), config)
            signals = len(result.signals)
            fails += result.verdict == "fail"
            marginals += result.verdict == "marginal"
            worse += any(s.classification == "worse" and (not target or s.name == target) for s in result.signals)
            worse_by_signal.update(s.name for s in result.signals if s.classification == "worse")
        rows.append(
            Row(
                n_b,
                n_c,
                signals,
                change,
                count,
                fails / count,
                clopper_pearson_upper(fails, count),
                marginals / count,
                worse / count,
                dict(worse_by_signal),
            )
        )
        print(
            f"{n_b:>6} {n_c:>6} {signals:>3} {change:<16} fail {fails / count:7.2%} "
            f"(<= {rows[-1].fail_upper95:6.2%})  marginal {marginals / count:7.2%}  worse {worse / count:7.2%}  "
            f"{dict(worse_by_signal.most_common(3))}",
            flush=True,
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=2000, help="Repetitions per equal-cohort row.")
    parser.add_argument("--power-reps", type=int, default=300, help="Repetitions per regressed row.")
    parser.add_argument("--json", type=Path, help="Also write the rows as JSON here.")
    args = parser.parse_args()
    print(
        f"python {platform.python_version()}, numpy {np.__version__}, scipy {scipy.__version__}, "
        f"{platform.machine()}; defaults {CanaryConfig().model_dump()}"
    )
    print(f"{'base':>6} {'canary':>6} {'sig':>3} change")
    started = time.perf_counter()
    rows = run(args.reps, args.power_reps)
    print(f"wall time {time.perf_counter() - started:.0f} s")
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in rows], indent=1))


if __name__ == "__main__":
    main()
