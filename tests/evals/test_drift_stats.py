"""evals.drift.stats: planted shifts are found, no-shift data stays quiet, small windows say so, edge cases hold.

Pure functions: no database is touched (the repository's conftest still wants DATABASE_URL). Every random
input comes from a numpy Generator with a fixed seed, so each test is deterministic.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from scipy import stats as sps

from evals.drift import (
    DRIFT,
    INSUFFICIENT_DATA,
    NO_DRIFT,
    DriftResult,
    adjust_p_values,
    apply_correction,
    categorical_drift,
    numeric_drift,
    rate_drift,
    text_drift,
    tokenize,
)
from evals.drift import stats as drift_stats

MODELS = ["gpt-4o-mini", "gpt-4o", "claude-sonnet-4", "gemini-2.5-flash", "llama-3.3-70b", "mistral-large"]
MODEL_SHARES = [0.55, 0.25, 0.12, 0.05, 0.02, 0.01]


def rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def latency(g: np.random.Generator, n: int, factor: float = 1.0) -> list[float]:
    """Latency in ms: log-normal, median 800 ms, sigma 0.6."""
    return (g.lognormal(math.log(800.0), 0.6, n) * factor).tolist()


def models(g: np.random.Generator, n: int, new_share: float = 0.0) -> list[str]:
    names = [*MODELS, "gpt-5"]
    shares = np.append(np.array(MODEL_SHARES) * (1 - new_share), new_share)
    return [names[i] for i in g.choice(len(names), size=n, p=shares)]


def vocabulary(prefix: str, size: int) -> tuple[list[str], np.ndarray]:
    weights = 1 / np.arange(1, size + 1) ** 1.1
    return [f"{prefix}{i}" for i in range(size)], weights / weights.sum()


def answers(g: np.random.Generator, n: int, prefix: str = "w", size: int = 2000) -> list[str]:
    words, p = vocabulary(prefix, size)
    return [" ".join(words[i] for i in g.choice(size, size=int(g.integers(8, 41)), p=p)) for _ in range(n)]


def assert_plain_json(value: Any) -> None:
    """Only JSON types, no numpy scalars, no NaN/inf; json.dumps must accept it strictly."""
    json.dumps(value, allow_nan=False)

    def walk(v: Any) -> None:
        if isinstance(v, dict):
            assert all(isinstance(k, str) for k in v)
            for x in v.values():
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)
        else:
            assert v is None or type(v) in (str, int, float, bool), (v, type(v))
            if type(v) is float:
                assert math.isfinite(v)

    walk(value)


# ------------------------------------------------------------------------------------------------- numeric
def test_numeric_detects_planted_latency_shift() -> None:
    g = rng(1)
    result = numeric_drift(latency(g, 1400), latency(g, 200, factor=1.5))
    assert result.verdict == DRIFT
    assert result.significant and result.meets_min_effect
    assert result.p_value is not None and result.p_value < 1e-6
    assert result.wasserstein_normalised is not None and result.wasserstein_normalised > 0.5
    assert result.effect_size == result.wasserstein_normalised
    assert result.scale_method == "iqr"
    assert result.current_median is not None and result.baseline_median is not None
    assert 1.3 < result.current_median / result.baseline_median < 1.7
    assert result.current_p95 is not None and result.baseline_p95 is not None
    assert result.current_p95 > result.baseline_p95
    hist = result.histogram
    assert hist is not None
    assert len(hist.edges) == len(hist.baseline_counts) + 1 == len(hist.current_counts) + 1
    assert sum(hist.baseline_counts) == 1400 and sum(hist.current_counts) == 200
    assert hist.edges == sorted(hist.edges)
    assert (result.n_baseline, result.n_current) == (1400, 200)


def test_numeric_no_shift_is_no_drift() -> None:
    g = rng(2)
    result = numeric_drift(latency(g, 1400), latency(g, 200))
    assert result.verdict == NO_DRIFT
    assert result.p_value is not None and result.p_value > 0.05
    assert result.effect_size is not None and result.effect_size < 0.2


def test_numeric_needs_effect_size_as_well_as_significance() -> None:
    """Huge windows make a negligible shift significant; the minimum effect size keeps it quiet."""
    g = rng(3)
    baseline = g.normal(100, 10, 50_000).tolist()
    current = g.normal(101, 10, 50_000).tolist()  # 0.1 standard deviation
    result = numeric_drift(baseline, current)
    assert result.significant and not result.meets_min_effect
    assert result.verdict == NO_DRIFT
    assert "effect too small" in result.reason
    assert numeric_drift(baseline, current, min_effect=0.05).verdict == DRIFT


def test_numeric_minimum_sample_size_boundary() -> None:
    g = rng(4)
    baseline = latency(g, 500)
    shifted = latency(g, 30, factor=3.0)
    below = numeric_drift(baseline, shifted[:29])
    assert below.verdict == INSUFFICIENT_DATA
    assert below.p_value is None and below.effect_size is None and below.ks_statistic is None
    assert not below.significant
    assert below.current_median is not None and below.histogram is not None  # still described
    assert "fewer than 30" in below.reason
    assert numeric_drift(baseline, shifted).verdict == DRIFT  # exactly min_samples runs the test
    assert numeric_drift(baseline[:29], baseline[100:400]).verdict == INSUFFICIENT_DATA  # small baseline too


def test_numeric_empty_windows() -> None:
    result = numeric_drift([], [])
    assert result.verdict == INSUFFICIENT_DATA
    assert result.histogram is None and result.baseline_median is None and result.current_p95 is None
    assert_plain_json(result.to_dict())
    one_sided = numeric_drift([1.0, 2.0, 3.0] * 20, [])
    assert one_sided.verdict == INSUFFICIENT_DATA
    assert one_sided.histogram is not None and sum(one_sided.histogram.current_counts) == 0
    assert one_sided.current_median is None and one_sided.baseline_median == 2.0


def test_numeric_all_equal_values() -> None:
    same = numeric_drift([5.0] * 100, [5.0] * 40)
    assert same.verdict == NO_DRIFT
    assert same.effect_size == 0.0 and same.p_value == 1.0
    assert same.scale is not None and same.scale > 0
    assert same.histogram is not None and same.histogram.baseline_counts == [100]
    assert same.histogram.edges[0] < 5.0 < same.histogram.edges[1]
    assert_plain_json(same.to_dict())
    moved = numeric_drift([5.0] * 100, [6.0] * 40)
    assert moved.verdict == DRIFT
    assert moved.scale_method == "pooled_std"  # the baseline has no spread at all
    zeros = numeric_drift([0.0] * 95 + [1.0] * 5, [0.0] * 60 + [1.0] * 40)
    assert zeros.scale_method == "baseline_std" and zeros.verdict == DRIFT


def test_numeric_drops_non_finite_values() -> None:
    g = rng(5)
    values = latency(g, 100)
    result = numeric_drift([*values, math.nan, math.inf], [*values[:50], -math.inf])
    assert result.dropped_non_finite == 3
    assert (result.n_baseline, result.n_current) == (100, 50)
    assert_plain_json(result.to_dict())


def test_numeric_histogram_log_bins_when_spanning_orders_of_magnitude() -> None:
    g = rng(6)
    wide = numeric_drift(g.lognormal(0, 2, 300).tolist(), g.lognormal(0, 2, 100).tolist(), bins=20)
    assert wide.histogram is not None and wide.histogram.log_scale
    edges = np.array(wide.histogram.edges)
    assert len(edges) == 21
    assert np.allclose(edges[1:] / edges[:-1], edges[1] / edges[0])  # geometric
    narrow = numeric_drift(g.normal(50, 5, 300).tolist(), g.normal(50, 5, 100).tolist(), bins=20)
    assert narrow.histogram is not None and not narrow.histogram.log_scale
    assert np.allclose(np.diff(narrow.histogram.edges), np.diff(narrow.histogram.edges)[0])  # linear
    with_zero = numeric_drift([0.0, *g.lognormal(0, 2, 299).tolist()], g.lognormal(0, 2, 100).tolist())
    assert with_zero.histogram is not None and not with_zero.histogram.log_scale  # log of 0 is impossible


# --------------------------------------------------------------------------------------------- categorical
def test_categorical_detects_new_model() -> None:
    g = rng(10)
    result = categorical_drift(models(g, 1400), models(g, 200, new_share=0.3))
    assert result.verdict == DRIFT
    assert result.new_categories == ["gpt-5"]
    assert result.vanished_categories == []
    assert result.p_value is not None and result.p_value < 1e-10
    assert result.cramers_v_balanced is not None and result.cramers_v_balanced > 0.3
    assert result.total_variation is not None and 0.2 < result.total_variation < 0.4
    shares = {c.category: c for c in result.categories}
    assert shares["gpt-5"].baseline_count == 0 and 0.2 < shares["gpt-5"].current_share < 0.4
    assert sum(c.baseline_count for c in result.categories) + result.other_baseline_count == 1400
    assert math.isclose(sum(c.current_share for c in result.categories), 1.0)
    assert "new: gpt-5" in result.reason


def test_categorical_effect_size_does_not_depend_on_window_sizes() -> None:
    """The same two mixes with a baseline 1x or 7x as large: same share-table V, different count-table V."""
    baseline = ["a"] * 120 + ["b"] * 60 + ["c"] * 20
    current = ["a"] * 80 + ["b"] * 80 + ["c"] * 40
    one = categorical_drift(baseline, current)
    seven = categorical_drift(baseline * 7, current)
    assert one.cramers_v_balanced == pytest.approx(seven.cramers_v_balanced)
    assert one.effect_size == pytest.approx(0.2093, abs=1e-4)  # sqrt(0.5 * sum (p_b - p_c)^2 / (p_b + p_c))
    assert one.cramers_v is not None and seven.cramers_v is not None
    assert abs(one.cramers_v - seven.cramers_v) > 0.05
    assert one.total_variation == pytest.approx(0.2)


def test_categorical_no_shift_is_no_drift() -> None:
    g = rng(11)
    result = categorical_drift(models(g, 1400), models(g, 200))
    assert result.verdict == NO_DRIFT
    assert result.p_value is not None and result.p_value > 0.05
    assert result.new_categories == [] and result.vanished_categories == []


def test_categorical_lists_vanished_category() -> None:
    g = rng(12)
    baseline = models(g, 1400)
    current = [m for m in models(g, 400) if m != "gpt-4o"]  # a 25% model gone
    result = categorical_drift(baseline, current)
    assert result.verdict == DRIFT
    assert result.vanished_categories == ["gpt-4o"]
    assert result.new_categories == []


def test_categorical_pools_rare_categories_and_stays_quiet_on_a_long_tail() -> None:
    """Hundreds of one-off values (tool names, languages) must neither break the test nor fire it."""
    g = rng(13)

    def with_tail(n: int, tag: str) -> list[str]:
        items = models(g, n)
        for i in range(0, n, 10):
            items[i] = f"{tag}-rare-{i}"  # 10% of the items, each value seen once
        return items

    result = categorical_drift(with_tail(1400, "b"), with_tail(200, "c"))
    assert result.pooled_categories >= 160
    assert result.n_categories == len(MODELS) + 140 + 20
    assert result.verdict == NO_DRIFT
    assert result.new_categories == []  # one-off values are not "new categories"
    assert len(result.categories) == 30 and result.other_baseline_count + result.other_current_count > 0
    assert result.dof is not None and result.dof <= len(MODELS)


def test_categorical_needs_effect_size_as_well_as_significance() -> None:
    g = rng(14)
    base = [0.5, 0.5]
    baseline = [["a", "b"][i] for i in g.choice(2, size=200_000, p=base)]
    current = [["a", "b"][i] for i in g.choice(2, size=200_000, p=[0.51, 0.49])]
    result = categorical_drift(baseline, current)
    assert result.significant and not result.meets_min_effect
    assert result.verdict == NO_DRIFT


def test_categorical_single_category_and_small_windows() -> None:
    single = categorical_drift(["stop"] * 300, ["stop"] * 60)
    assert single.verdict == NO_DRIFT
    assert single.p_value == 1.0 and single.effect_size == 0.0
    assert_plain_json(single.to_dict())
    small = categorical_drift(["stop"] * 300, ["length"] * 49)
    assert small.verdict == INSUFFICIENT_DATA and small.p_value is None
    assert small.categories and small.categories[0].category in {"stop", "length"}
    empty = categorical_drift([], [])
    assert empty.verdict == INSUFFICIENT_DATA and empty.categories == [] and empty.n_categories == 0
    assert_plain_json(empty.to_dict())
    moved = categorical_drift(["stop"] * 300, ["length"] * 50)
    assert moved.verdict == DRIFT and moved.new_categories == ["length"] and moved.vanished_categories == ["stop"]


# ---------------------------------------------------------------------------------------------------- rate
def test_rate_detects_refusal_rate_2_to_8_percent() -> None:
    g = rng(20)
    baseline_hits = int(g.binomial(1400, 0.02))
    current_hits = int(g.binomial(200, 0.08))
    result = rate_drift(baseline_hits, 1400, current_hits, 200)
    assert result.verdict == DRIFT
    assert result.direction == "up"
    assert result.difference is not None and result.difference > 0.03
    assert result.cohens_h is not None and result.cohens_h > 0.15
    assert result.effect_size == pytest.approx(abs(result.cohens_h))


def test_rate_no_shift_is_no_drift() -> None:
    g = rng(21)
    result = rate_drift(int(g.binomial(1400, 0.02)), 1400, int(g.binomial(200, 0.02)), 200)
    assert result.verdict == NO_DRIFT
    assert result.p_value is not None and result.p_value > 0.05


def test_rate_z_test_matches_chi_square_and_flags_direction() -> None:
    """The pooled two-proportion z-test is the 2x2 chi-square test without continuity correction (z^2 = chi2)."""
    result = rate_drift(150, 1000, 100, 1000)
    assert result.method == "z"
    chi = sps.chi2_contingency([[150, 850], [100, 900]], correction=False)
    assert result.z_statistic is not None and result.z_statistic < 0
    assert result.z_statistic**2 == pytest.approx(chi.statistic)
    assert result.p_value == pytest.approx(chi.pvalue)
    assert result.direction == "down"
    assert result.cohens_h == pytest.approx(2 * math.asin(math.sqrt(0.10)) - 2 * math.asin(math.sqrt(0.15)))
    assert result.verdict == DRIFT


def test_rate_small_expected_counts_use_fisher() -> None:
    result = rate_drift(2, 300, 3, 50)
    assert result.method == "fisher_exact"
    assert result.p_value == pytest.approx(sps.fisher_exact([[3, 47], [2, 298]]).pvalue)
    assert result.verdict == NO_DRIFT  # 3 of 50 is not enough evidence


def test_rate_edge_cases() -> None:
    zero = rate_drift(0, 0, 0, 0)
    assert zero.verdict == INSUFFICIENT_DATA
    assert zero.baseline_rate is None and zero.current_rate is None and zero.direction is None
    assert_plain_json(zero.to_dict())
    small = rate_drift(1, 100, 10, 49)
    assert small.verdict == INSUFFICIENT_DATA and small.p_value is None
    assert small.current_rate == pytest.approx(10 / 49)  # still described
    none_hit = rate_drift(0, 500, 0, 100)
    assert none_hit.verdict == NO_DRIFT and none_hit.p_value == 1.0 and none_hit.direction == "none"
    all_hit = rate_drift(500, 500, 100, 100)
    assert all_hit.verdict == NO_DRIFT and all_hit.p_value == 1.0
    with pytest.raises(ValueError, match="hits <= total"):
        rate_drift(5, 4, 0, 10)
    with pytest.raises(ValueError, match="hits <= total"):
        rate_drift(0, 10, -1, 10)


def test_rate_effect_size_gate() -> None:
    """20.0% -> 20.6% on a million events is significant but |h| = 0.015 is not a drift."""
    result = rate_drift(200_000, 1_000_000, 206_000, 1_000_000)
    assert result.significant and not result.meets_min_effect
    assert result.verdict == NO_DRIFT


# ---------------------------------------------------------------------------------------------------- text
def test_text_detects_answers_from_another_vocabulary() -> None:
    g = rng(30)
    baseline = answers(g, 600)
    current = answers(g, 120, prefix="x", size=300)
    result = text_drift(baseline, current)
    assert result.verdict == DRIFT
    assert result.auc is not None and result.auc > 0.95
    assert result.p_value is not None and result.p_value == pytest.approx(1 / (1 + result.n_permutations))
    assert result.permutations_run == result.n_permutations
    assert result.current_tokens and all(t.token.startswith("x") for t in result.current_tokens)
    assert all(t.z >= 2 and t.current_doc_share > t.baseline_doc_share for t in result.current_tokens)
    assert all(t.token.startswith("w") for t in result.baseline_tokens)
    assert_plain_json(result.to_dict())


def test_text_alpha_below_permutation_floor_still_estimates_p() -> None:
    """With alpha < 1 / (n_permutations + 1) significance is impossible: one batch runs, p is its estimate."""
    g = rng(35)
    result = text_drift(answers(g, 200), answers(g, 60, prefix="x", size=300), alpha=0.0001)
    assert result.auc is not None and result.auc > 0.95
    assert 0 < result.permutations_run < result.n_permutations
    assert result.p_value == pytest.approx(1 / (1 + result.permutations_run))
    assert result.verdict == NO_DRIFT and "not significant" in result.reason


def test_text_no_shift_is_no_drift_and_stops_early() -> None:
    g = rng(31)
    result = text_drift(answers(g, 600), answers(g, 120))
    assert result.verdict == NO_DRIFT
    assert result.auc is not None and abs(result.auc - 0.5) < 0.1
    assert result.p_value is not None and result.p_value >= result.alpha
    assert 0 < result.permutations_run < result.n_permutations
    assert result.vocabulary_size > 100


def test_text_auc_gate_partial_shift() -> None:
    """10% of answers changed: detectable with a large sample, but below the minimum AUC."""
    g = rng(32)
    current = answers(g, 1800) + answers(g, 200, prefix="x", size=300)
    result = text_drift(answers(g, 2000), current)
    assert result.significant and not result.meets_min_effect
    assert result.auc is not None and 0.52 < result.auc < 0.65
    assert result.verdict == NO_DRIFT


def test_text_insufficient_and_empty() -> None:
    g = rng(33)
    small = text_drift(answers(g, 300), answers(g, 49))
    assert small.verdict == INSUFFICIENT_DATA and small.p_value is None and small.permutations_run == 0
    assert_plain_json(small.to_dict())
    empty = text_drift([], [])
    assert empty.verdict == INSUFFICIENT_DATA
    blank = text_drift([""] * 100, ["   "] * 60)
    assert blank.verdict == NO_DRIFT and blank.auc == 0.5 and blank.vocabulary_size == 0
    assert_plain_json(blank.to_dict())


def test_text_is_deterministic_and_subsamples() -> None:
    g = rng(34)
    baseline, current = answers(g, 400), answers(g, 80, prefix="x", size=300) + answers(g, 80)
    first = text_drift(baseline, current, max_texts=100)
    second = text_drift(baseline, current, max_texts=100)
    assert first.to_dict() == second.to_dict()
    assert first.subsampled and (first.n_baseline, first.n_current) == (400, 160)
    assert not text_drift(baseline, current).subsampled


def test_tokenize() -> None:
    assert tokenize("Hello, WORLD! Ça va? 42") == ["hello", "world", "ça", "va", "42"]
    assert tokenize("abc def", max_chars=3) == ["abc"]


# ------------------------------------------------------------------------------------------ multiple tests
def test_adjust_p_values_known_values() -> None:
    p = [0.01, 0.04, 0.03, 0.005]
    assert adjust_p_values(p, "bonferroni") == pytest.approx([0.04, 0.16, 0.12, 0.02])
    assert adjust_p_values(p, "holm") == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert adjust_p_values(p, "bh") == pytest.approx([0.02, 0.04, 0.04, 0.02])
    g = rng(40)
    many = g.uniform(0, 0.2, 40).tolist()
    assert adjust_p_values(many, "bh") == pytest.approx(sps.false_discovery_control(many, method="bh").tolist())
    assert adjust_p_values([], "holm") == []
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        adjust_p_values([1.5])


def test_apply_correction_rederives_verdicts() -> None:
    g = rng(41)
    drifting = rate_drift(20, 1000, 40, 1000)  # p ~ 0.004, |h| ~ 0.12
    assert drifting.verdict == DRIFT and drifting.p_value is not None and 0.002 < drifting.p_value < 0.01
    quiet = [numeric_drift(latency(g, 300), latency(g, 100)) for _ in range(3)]
    insufficient = rate_drift(0, 10, 0, 10)
    results: list[DriftResult] = [drifting, *quiet, insufficient]
    corrected = apply_correction(results, method="holm")
    assert corrected[0].verdict == NO_DRIFT  # 4 tests: p * 4 > 0.01
    assert corrected[0].p_value_adjusted == pytest.approx(min(1.0, drifting.p_value * 4))
    assert corrected[0].correction == "holm" and "holm-adjusted over 4 tests" in corrected[0].reason
    assert corrected[4] is insufficient  # not counted, untouched
    assert drifting.verdict == DRIFT  # the input is not modified
    strong = rate_drift(20, 1000, 80, 1000)
    assert apply_correction([strong, *quiet])[0].verdict == DRIFT
    with pytest.raises(ValueError, match="one alpha"):
        apply_correction([drifting, rate_drift(20, 1000, 40, 1000, alpha=0.05)])


# ------------------------------------------------------------------------------------------- serialisation
def test_every_result_is_plain_json() -> None:
    g = rng(50)
    results: list[DriftResult] = [
        numeric_drift(latency(g, 300), latency(g, 100, 2.0)),
        categorical_drift(models(g, 300), models(g, 100, 0.3)),
        rate_drift(6, 300, 8, 100),
        text_drift(answers(g, 100), answers(g, 60, prefix="x", size=200)),
    ]
    for result in results:
        data = result.to_dict()
        assert_plain_json(data)
        assert json.loads(json.dumps(data)) == data
        assert data["verdict"] == result.verdict and data["kind"] == result.kind
        assert set(data) >= {"p_value", "effect_size", "effect_name", "alpha", "min_effect", "min_samples", "reason"}


def test_to_dict_converts_numpy_values_and_non_finite_numbers() -> None:
    """The stored form stays plain even if a numpy scalar or a NaN reaches a field."""
    g = rng(51)
    result = numeric_drift(latency(g, 100), latency(g, 100))
    odd = replace(result, ks_statistic=np.float64(0.25), p_value=np.float64("nan"), n_current=np.int64(7))  # type: ignore[arg-type]
    data = odd.to_dict()
    assert_plain_json(data)
    assert data["ks_statistic"] == 0.25 and type(data["ks_statistic"]) is float
    assert data["p_value"] is None
    assert data["n_current"] == 7 and type(data["n_current"]) is int
    assert type(data["significant"]) is bool


def test_invalid_settings_are_rejected() -> None:
    with pytest.raises(ValueError, match="alpha"):
        numeric_drift([1.0], [1.0], alpha=0)
    with pytest.raises(ValueError, match="min_samples"):
        categorical_drift(["a"], ["a"], min_samples=0)
    with pytest.raises(ValueError, match="n_folds"):
        text_drift(["a"], ["a"], n_folds=1)


# ------------------------------------------------------------------------------------- false-alarm rate
def _within_nominal(count: int, reps: int, alpha: float) -> bool:
    """Whether ``count`` false alarms out of ``reps`` is consistent with a rate at or below ``alpha``.

    The bound is the 99th percentile of Binomial(reps, alpha): a test calibrated exactly at the nominal level
    exceeds it 1% of the time; with 1200 repetitions one at twice the nominal level exceeds it about 70% of
    the time and one at three times almost always (the text case, with 200, only catches gross errors).
    """
    return count <= int(sps.binom.ppf(0.99, reps, alpha))


@pytest.mark.parametrize(
    ("kind", "sizes", "reps"),
    [
        ("numeric", [(200, 1400), (50, 300)], 600),
        ("categorical", [(200, 1400), (50, 300)], 600),
        ("rate", [(200, 1400), (50, 300)], 600),
        ("text", [(50, 300)], 200),
    ],
)
def test_false_alarm_rate_on_no_shift_data_at_default_settings(
    kind: str, sizes: list[tuple[int, int]], reps: int
) -> None:
    """Many no-shift repetitions at default settings: false alarms (and significant p-values alone) at or
    below the nominal alpha. bench/drift_false_alarms.py measures the same with more repetitions."""
    alarms = significant = total = 0
    for size_idx, (n_cur, n_base) in enumerate(sizes):
        for rep in range(reps):
            g = np.random.default_rng([7, size_idx, rep])
            if kind == "numeric":
                result: DriftResult = numeric_drift(latency(g, n_base), latency(g, n_cur))
            elif kind == "categorical":
                result = categorical_drift(models(g, n_base), models(g, n_cur))
            elif kind == "rate":
                # A rare rate (Fisher's exact test in small windows) and a common one (the z-test).
                rate = 0.02 if rep % 2 else 0.10
                result = rate_drift(int(g.binomial(n_base, rate)), n_base, int(g.binomial(n_cur, rate)), n_cur)
            else:
                result = text_drift(answers(g, n_base, size=800), answers(g, n_cur, size=800), seed=rep)
            assert result.verdict != INSUFFICIENT_DATA
            alarms += result.verdict == DRIFT
            significant += result.significant
            total += 1
    alpha = drift_stats.DEFAULT_ALPHA
    assert _within_nominal(significant, total, alpha), f"{kind}: {significant}/{total} significant"
    assert _within_nominal(alarms, total, alpha), f"{kind}: {alarms}/{total} false alarms"
