"""Canary statistics on seeded synthetic cohorts: planted regressions are found, equal cohorts pass, small cohorts
are insufficient data, and the score and verdict follow the configured thresholds and critical signals."""

from __future__ import annotations

import json
import random
from typing import get_args

import pytest
from pydantic import ValidationError

from evals.canary.stats import (
    DEFAULT_CRITICAL,
    CanaryConfig,
    CanaryResult,
    NumericSignal,
    RateSignal,
    SignalResult,
    analyse,
    relative_shift,
)
from evals.evaluators.judge import Template
from evals.evaluators.registry import REGISTRY


def latencies(rng: random.Random, n: int, slowdown: float = 1.0) -> list[float]:
    return [rng.lognormvariate(6.6, 0.5) * slowdown for _ in range(n)]


def costs(rng: random.Random, n: int) -> list[float]:
    return [rng.gauss(0.002, 0.0003) for _ in range(n)]


def hits(rng: random.Random, n: int, rate: float) -> int:
    return sum(rng.random() < rate for _ in range(n))


def cohorts(
    seed: int, n: int = 600, slowdown: float = 1.0, pass_drop: float = 0.0, extra_errors: float = 0.0
) -> tuple[list[RateSignal], list[NumericSignal]]:
    """Error rate 2%, grounding pass rate 90%, latency log-normal (median ~735 ms), cost ~ $0.002 per trace."""
    rng = random.Random(seed)
    rates = [
        RateSignal("error", "error rate", hits(rng, n, 0.02), n, hits(rng, n, 0.02 + extra_errors), n, False),
        RateSignal("grounding", "grounding pass rate", hits(rng, n, 0.9), n, hits(rng, n, 0.9 - pass_drop), n, True),
    ]
    numerics = [
        NumericSignal("latency", "latency", latencies(rng, n), latencies(rng, n, slowdown), False, "ms"),
        NumericSignal("cost", "cost", costs(rng, n), costs(rng, n), False, "USD"),
    ]
    return rates, numerics


def by_name(result: CanaryResult) -> dict[str, SignalResult]:
    return {s.name: s for s in result.signals}


def test_planted_latency_and_quality_regression_fails_the_canary() -> None:
    result = analyse(*cohorts(1, slowdown=1.3, pass_drop=0.08))
    signals = by_name(result)
    assert signals["latency"].classification == "worse"
    # Median shift of a x1.3 slowdown, give or take the sampling noise of two medians of 600 values.
    assert signals["latency"].effect is not None and 0.15 < signals["latency"].effect < 0.45
    assert signals["grounding"].classification == "worse"
    assert signals["grounding"].test == "two-proportion z-test"
    assert signals["error"].classification == "pass"
    assert signals["cost"].classification == "pass"
    assert result.counts == {"pass": 2, "better": 0, "worse": 2, "insufficient_data": 0}
    assert result.score == 50
    assert result.verdict == "fail"
    assert result.critical_failures == ["grounding"]  # grounding is critical by default; latency is not


@pytest.mark.parametrize("seed", [2, 3, 4])
def test_equal_cohorts_pass(seed: int) -> None:
    result = analyse(*cohorts(seed))
    assert {s.classification for s in result.signals} == {"pass"}, [s.reason for s in result.signals]
    assert result.score == 100
    assert result.verdict == "pass"


def test_improvement_is_better_and_counts_as_a_pass() -> None:
    result = analyse(*cohorts(5, slowdown=0.7))
    assert by_name(result)["latency"].classification == "better"
    assert result.counts["better"] == 1
    assert result.score == 100 and result.verdict == "pass"


def test_one_worse_signal_out_of_five_is_marginal_and_thresholds_are_configurable() -> None:
    rates, numerics = cohorts(6, slowdown=1.3)
    rates.append(RateSignal("pii", "pii pass rate", 590, 600, 591, 600, True))
    result = analyse(rates, numerics)
    assert result.score == 80
    assert result.verdict == "marginal"
    strict = analyse(rates, numerics, CanaryConfig(marginal_threshold=85, pass_threshold=90))
    assert strict.score == 80 and strict.verdict == "fail"
    lenient = analyse(rates, numerics, CanaryConfig(pass_threshold=80))
    assert lenient.verdict == "pass"


def test_a_worse_critical_signal_fails_on_its_own() -> None:
    rates, numerics = cohorts(7, extra_errors=0.08)
    rates += [RateSignal(f"check{i}", f"check{i}", 500, 600, 500, 600, True) for i in range(20)]
    result = analyse(rates, numerics)
    assert by_name(result)["error"].classification == "worse"
    assert result.score is not None and result.score > 95
    assert result.verdict == "fail"
    assert result.critical_failures == ["error"]
    assert "critical" in result.reason
    without = analyse(rates, numerics, CanaryConfig(critical=[]))
    assert without.verdict == "pass" and without.critical_failures == []


def test_default_critical_signals_are_errors_quality_and_safety_checks_named_as_their_scores() -> None:
    # Critical names match signal names exactly: a typo or a renamed evaluator would silently stop gating.
    judge_scores = {f"judge.{template}" for template in get_args(Template)}
    assert judge_scores <= set(DEFAULT_CRITICAL)
    assert set(DEFAULT_CRITICAL) - judge_scores - {"error", "probe"} == {
        "grounding", "reference", "pii", "secrets", "prompt_injection"
    }  # fmt: skip
    assert set(DEFAULT_CRITICAL) - judge_scores - {"error", "probe"} <= set(REGISTRY)
    # A slower, costlier or more cautious release may be deliberate: those cost score, they do not fail alone.
    assert not {"latency", "cost", "refusal"} & set(DEFAULT_CRITICAL)
    assert CanaryConfig().critical == list(DEFAULT_CRITICAL)


@pytest.mark.parametrize("name", ["grounding", "judge.faithfulness", "pii", "prompt_injection"])
def test_one_quality_or_safety_regression_fails_by_default_but_latency_alone_is_marginal(name: str) -> None:
    rates, numerics = cohorts(8)
    # 95% -> 85% passing on 600 traces each: 10 points, far beyond the 2-point margin and significant after Holm.
    rates.append(RateSignal(name, f"{name} pass rate", 570, 600, 510, 600, True))
    result = analyse(rates, numerics)
    assert by_name(result)[name].classification == "worse" and by_name(result)[name].critical
    assert result.score == 80
    assert result.verdict == "fail" and result.critical_failures == [name]
    # The same comparison with the former default (errors only) was marginal: a pipeline would have shipped it.
    assert analyse(rates, numerics, CanaryConfig(critical=["error"])).verdict == "marginal"

    slower_rates, slower_numerics = cohorts(8, slowdown=1.3)
    slower_rates.append(RateSignal(name, f"{name} pass rate", 570, 600, 571, 600, True))
    slower = analyse(slower_rates, slower_numerics)
    assert by_name(slower)["latency"].classification == "worse" and not by_name(slower)["latency"].critical
    assert slower.score == 80 and slower.verdict == "marginal" and slower.critical_failures == []


def test_significant_but_below_margin_passes() -> None:
    # 200k events per cohort make a 1-point drop highly significant; the 2-point margin keeps it a pass.
    n = 200_000
    signal = RateSignal("grounding", "grounding", int(0.90 * n), n, int(0.89 * n), n, True)
    result = analyse([signal], [])
    (judged,) = result.signals
    assert judged.p_value_adjusted is not None and judged.p_value_adjusted < 1e-6
    assert judged.classification == "pass"
    assert "margin" in judged.reason
    tighter = analyse([signal], [], CanaryConfig(rate_margin=0.005))
    assert tighter.signals[0].classification == "worse"


def test_large_difference_without_significance_passes() -> None:
    # 58% vs 42% on 50 events each: a 16-point gap, but p ~ 0.11 > alpha.
    result = analyse([RateSignal("judge", "judge", 29, 50, 21, 50, True)], [])
    (judged,) = result.signals
    assert judged.p_value is not None and 0.05 < judged.p_value < 0.2
    assert judged.classification == "pass"


def test_too_few_events_is_insufficient_data_not_a_pass() -> None:
    rng = random.Random(8)
    result = analyse(
        [RateSignal("error", "error rate", 0, 40, 20, 40, False)],
        [NumericSignal("latency", "latency", latencies(rng, 600), latencies(rng, 12, 3.0), False, "ms")],
    )
    assert {s.classification for s in result.signals} == {"insufficient_data"}
    assert all(s.p_value is None for s in result.signals)
    assert result.score is None
    assert result.verdict == "fail"
    assert "enough data" in result.reason
    # Lower minimums judge the same data.
    lowered = analyse(*([RateSignal("error", "error rate", 0, 40, 20, 40, False)], []), CanaryConfig(min_events=20))
    assert lowered.signals[0].classification == "worse"


def test_insufficient_signals_are_left_out_of_the_score() -> None:
    rates, numerics = cohorts(9)
    rates.append(RateSignal("judge", "judge", 3, 4, 0, 5, True))
    result = analyse(rates, numerics)
    assert by_name(result)["judge"].classification == "insufficient_data"
    assert result.counts["insufficient_data"] == 1
    assert result.score == 100 and result.verdict == "pass"


def test_holm_correction_can_turn_a_borderline_signal_into_a_pass() -> None:
    # Error rate 2% -> 4.6% on 600 traces: p ~ 0.01 alone; Holm over 20 tested signals multiplies it.
    rare = RateSignal("error", "error rate", 12, 600, 28, 600, False)
    quiet = [RateSignal(f"c{i}", f"c{i}", 300, 600, 300, 600, True) for i in range(19)]
    uncorrected = analyse([rare, *quiet], [], CanaryConfig(correction="none"))
    corrected = analyse([rare, *quiet], [])
    assert uncorrected.signals[0].classification == "worse"
    assert corrected.signals[0].classification == "pass"
    assert corrected.signals[0].p_value_adjusted is not None
    assert corrected.signals[0].p_value is not None
    assert corrected.signals[0].p_value_adjusted > corrected.signals[0].p_value


def test_rare_events_use_fishers_exact_test() -> None:
    result = analyse([RateSignal("error", "error rate", 0, 60, 9, 60, False)], [])
    assert result.signals[0].test == "Fisher's exact test"
    assert result.signals[0].classification == "worse"


def test_relative_shift_from_a_zero_median_and_json_output() -> None:
    assert relative_shift(100.0, 130.0) == pytest.approx(0.3)
    assert relative_shift(-2.0, -1.0) == pytest.approx(0.5)
    assert relative_shift(0.0, 0.0) == 0.0
    assert relative_shift(0.0, 1.0) == float("inf")
    result = analyse([], [NumericSignal("cost", "cost", [0.0] * 40, [0.001] * 40, False, "USD")])
    cost = result.signals[0]
    assert cost.classification == "worse"
    data = result.to_dict()
    json.dumps(data, allow_nan=False)  # infinities become null
    assert data["signals"][0]["effect"] is None
    assert data["signals"][0]["histogram"]["baseline_counts"][0] == 40
    assert data["verdict"] == "fail"


def test_config_is_validated_with_messages() -> None:
    with pytest.raises(ValidationError, match="must not exceed pass_threshold"):
        CanaryConfig(marginal_threshold=96)
    with pytest.raises(ValidationError, match="alpha"):
        CanaryConfig(alpha=1.5)
    with pytest.raises(ValidationError, match="extra"):
        CanaryConfig(alfa=0.1)  # type: ignore[call-arg]


def test_false_fail_rate_on_equal_cohorts_is_low_at_default_settings() -> None:
    """A small version of bench/canary_false_fail.py: 200 seeded comparisons of two draws of one population."""
    fails = sum(analyse(*cohorts(1000 + seed, n=300)).verdict == "fail" for seed in range(200))
    assert fails / 200 <= 0.03
