"""Pure statistics of canary analysis: per-signal tests, classification, the overall score and verdict.

No Django, no I/O. Signals come in two kinds:

- pass/fail signals (each score's pass rate, error rate, refusal rate): two-proportion z-test, or Fisher's
  exact test when an expected count is below 5 (:func:`evals.drift.stats.rate_drift` computes the p-value);
  effect = difference of the rates in percentage points, margin ``rate_margin``;
- continuous signals (latency, cost, score values): Mann-Whitney U test (two-sided); effect = relative shift of
  the median, ``(canary - baseline) / |baseline|``, margin ``relative_margin``.

A signal is **worse** (or **better**) only when its p-value, adjusted over all tested signals of the comparison
(Holm by default), is below ``alpha`` *and* the effect reaches the margin in the bad (good) direction; it
**passes** otherwise; with fewer than the minimum events in either cohort it is **insufficient data** and is
left out of the score. Scoring follows Kayenta's (Netflix/Google's canary judge): score = 100 x share of scored
signals that are not worse; a worse *critical* signal fails the canary on its own (by default the error rate and
every answer-quality and safety check, :data:`DEFAULT_CRITICAL`); score >= ``pass_threshold`` is a pass,
>= ``marginal_threshold`` marginal, below that a fail. See docs/canary.md.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator
from scipy import stats

from evals.drift.stats import adjust_p_values, rate_drift

Classification = Literal["pass", "better", "worse", "insufficient_data"]
Verdict = Literal["pass", "marginal", "fail"]

DEFAULT_CRITICAL = (
    "error",
    # Answer quality: a significantly less grounded or less correct release is the regression this product exists
    # to catch, so it must fail a pipeline on its own rather than cost 20 points of score (marginal, exit 0).
    "grounding",
    "reference",
    # The judge names its scores after its template (evals/evaluators/judge.py), and critical names match exactly.
    "judge.faithfulness",
    "judge.answer_correctness",
    "judge.relevance",
    "probe",
    # Safety: personal data or secrets in answers are never an acceptable trade-off; prompt_injection flags attacks
    # in what the release reads (inputs, retrieved documents, tool results), e.g. a new retriever pulling them in.
    "pii",
    "secrets",
    "prompt_injection",
)
"""Signals critical by default, named as evals.canary.cohorts names them (score names as stored). Latency, cost and
refusal stay non-critical: a slower, costlier or more cautious release may be a deliberate trade-off, so it costs score
instead of failing outright."""


class CanaryConfig(BaseModel):
    """Settings of one comparison. Defaults measured with bench/canary_false_fail.py (docs/benchmarks.md)."""

    model_config = ConfigDict(extra="forbid")

    alpha: float = Field(
        default=0.05, gt=0, lt=1, description="Significance level after the multiple-testing correction."
    )
    correction: Literal["holm", "bonferroni", "bh", "none"] = Field(
        default="holm", description="Multiple-testing correction over the signals of one comparison."
    )
    rate_margin: float = Field(
        default=0.02,
        ge=0,
        le=1,
        description="Smallest pass/error/refusal rate difference that counts (0.02 = 2 points).",
    )
    relative_margin: float = Field(
        default=0.10, ge=0, description="Smallest relative median shift of latency, cost or score values (0.10 = 10%)."
    )
    min_events: int = Field(
        default=50, ge=1, description="Events per cohort below which a pass/fail signal is not judged."
    )
    min_values: int = Field(
        default=30, ge=3, description="Values per cohort below which a continuous signal is not judged."
    )
    pass_threshold: float = Field(default=95, ge=0, le=100, description="Score (0-100) from which the canary passes.")
    marginal_threshold: float = Field(
        default=75, ge=0, le=100, description="Score from which a non-passing canary is marginal."
    )
    critical: list[str] = Field(
        default_factory=lambda: list(DEFAULT_CRITICAL),
        description="Signals that fail the canary on their own when worse (default: errors, quality and safety).",
    )

    @model_validator(mode="after")
    def _thresholds_ordered(self) -> CanaryConfig:
        if self.marginal_threshold > self.pass_threshold:
            raise ValueError(
                f"marginal_threshold ({self.marginal_threshold}) must not exceed pass_threshold ({self.pass_threshold})"
            )
        return self


@dataclass(frozen=True)
class RateSignal:
    """Events of a pass/fail signal per cohort: ``hits`` of ``total`` (passes, errors or refusals)."""

    name: str
    label: str
    baseline_hits: int
    baseline_total: int
    canary_hits: int
    canary_total: int
    higher_is_better: bool


@dataclass(frozen=True)
class NumericSignal:
    """Values of a continuous signal per cohort (one per trace)."""

    name: str
    label: str
    baseline: Sequence[float]
    canary: Sequence[float]
    higher_is_better: bool
    unit: str = ""


@dataclass
class Histogram:
    """Counts of both cohorts on shared edges (``len(edges) == len(counts) + 1``); log-spaced when ``log_scale``."""

    edges: list[float]
    baseline_counts: list[int]
    canary_counts: list[int]
    log_scale: bool


@dataclass
class SignalResult:
    """One signal's comparison. ``baseline`` / ``canary`` are rates (pass/fail) or medians (continuous);
    ``effect`` is the rate difference or the relative median shift, canary minus baseline (sign as measured,
    whatever the direction); ``p_value_adjusted`` is what ``alpha`` is compared with."""

    name: str
    label: str
    kind: Literal["rate", "numeric"]
    higher_is_better: bool
    critical: bool
    n_baseline: int
    n_canary: int
    baseline: float | None
    canary: float | None
    effect: float | None
    effect_name: str
    margin: float
    test: str | None
    p_value: float | None
    p_value_adjusted: float | None = None
    classification: Classification = "insufficient_data"
    reason: str = ""
    unit: str = ""
    baseline_hits: int | None = None
    canary_hits: int | None = None
    baseline_p95: float | None = None
    canary_p95: float | None = None
    histogram: Histogram | None = None


@dataclass
class CanaryResult:
    verdict: Verdict
    score: float | None
    reason: str
    signals: list[SignalResult]
    config: CanaryConfig
    counts: dict[str, int] = field(default_factory=dict)
    critical_failures: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: plain types, NaN and infinities as None."""
        out = {
            "verdict": self.verdict,
            "score": self.score,
            "reason": self.reason,
            "counts": self.counts,
            "critical_failures": self.critical_failures,
            "config": self.config.model_dump(),
            "signals": [asdict(s) for s in self.signals],
        }
        return dict(_jsonable(out))


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return value


def _pct(x: float) -> str:
    return f"{x * 100:.1f}%"


# ------------------------------------------------------------------------------------------------ per signal
def compare_rates(signal: RateSignal, config: CanaryConfig) -> SignalResult:
    """Raw comparison of a pass/fail signal: rates, difference and the unadjusted p-value (None if too few events)."""
    drift = rate_drift(
        signal.baseline_hits,
        signal.baseline_total,
        signal.canary_hits,
        signal.canary_total,
        min_samples=config.min_events,
    )
    return SignalResult(
        name=signal.name,
        label=signal.label,
        kind="rate",
        higher_is_better=signal.higher_is_better,
        critical=signal.name in config.critical,
        n_baseline=signal.baseline_total,
        n_canary=signal.canary_total,
        baseline=drift.baseline_rate,
        canary=drift.current_rate,
        effect=drift.difference,
        effect_name="rate difference",
        margin=config.rate_margin,
        test={"z": "two-proportion z-test", "fisher_exact": "Fisher's exact test"}.get(drift.method or ""),
        p_value=drift.p_value,
        baseline_hits=signal.baseline_hits,
        canary_hits=signal.canary_hits,
    )


def _histogram(baseline: np.ndarray, canary: np.ndarray, bins: int = 30) -> Histogram | None:
    pooled = np.concatenate([baseline, canary])
    if pooled.size == 0:
        return None
    lo, hi = float(pooled.min()), float(pooled.max())
    # Latency and cost spread over orders of magnitude: log bins keep the body of the distribution readable.
    log_scale = lo > 0 and hi / lo >= 100.0
    if hi <= lo:
        half = abs(lo) * 0.05 or 0.5
        edges = np.array([lo - half, hi + half])
    elif log_scale:
        edges = np.geomspace(lo, hi, bins + 1)
    else:
        edges = np.linspace(lo, hi, bins + 1)
    edges[0], edges[-1] = min(edges[0], lo), max(edges[-1], hi)
    return Histogram(
        edges=[float(e) for e in edges],
        baseline_counts=[int(c) for c in np.histogram(baseline, bins=edges)[0]],
        canary_counts=[int(c) for c in np.histogram(canary, bins=edges)[0]],
        log_scale=bool(log_scale),
    )


def relative_shift(baseline_median: float, canary_median: float) -> float:
    """(canary - baseline) / |baseline|; a move away from a zero baseline is an infinite shift."""
    if baseline_median == 0:
        return 0.0 if canary_median == 0 else math.copysign(math.inf, canary_median)
    return (canary_median - baseline_median) / abs(baseline_median)


def compare_values(signal: NumericSignal, config: CanaryConfig) -> SignalResult:
    """Raw comparison of a continuous signal: medians, relative median shift and the Mann-Whitney U p-value."""
    b = np.asarray(signal.baseline, dtype=float)
    c = np.asarray(signal.canary, dtype=float)
    b, c = b[np.isfinite(b)], c[np.isfinite(c)]
    b_median = float(np.median(b)) if b.size else None
    c_median = float(np.median(c)) if c.size else None
    effect = relative_shift(b_median, c_median) if b_median is not None and c_median is not None else None
    p_value = None
    if b.size >= config.min_values and c.size >= config.min_values:
        p_value = float(stats.mannwhitneyu(b, c, alternative="two-sided").pvalue)
    return SignalResult(
        name=signal.name,
        label=signal.label,
        kind="numeric",
        higher_is_better=signal.higher_is_better,
        critical=signal.name in config.critical,
        n_baseline=int(b.size),
        n_canary=int(c.size),
        baseline=b_median,
        canary=c_median,
        effect=effect,
        effect_name="relative median shift",
        margin=config.relative_margin,
        test="Mann-Whitney U" if p_value is not None else None,
        p_value=p_value,
        unit=signal.unit,
        baseline_p95=float(np.percentile(b, 95)) if b.size else None,
        canary_p95=float(np.percentile(c, 95)) if c.size else None,
        histogram=_histogram(b, c),
    )


# ------------------------------------------------------------------------------------------------ judgement
def _classify(result: SignalResult, alpha: float, correction: str) -> SignalResult:
    if result.p_value is None or result.p_value_adjusted is None or result.effect is None:
        minimum = "events" if result.kind == "rate" else "values"
        return replace(
            result,
            classification="insufficient_data",
            reason=f"too few {minimum} to judge (baseline {result.n_baseline}, canary {result.n_canary})",
        )
    fmt = _pct if result.kind == "rate" else lambda x: f"{x:+.1%}" if math.isfinite(x) else "from zero"
    p_text = f"p = {result.p_value_adjusted:.3g}" + (f" ({correction})" if correction != "none" else "")
    significant = result.p_value_adjusted < alpha
    if not significant:
        return replace(result, classification="pass", reason=f"no significant difference: {p_text} >= {alpha:g}")
    # Improvement is the difference in the good direction: up for pass rates, down for latency, cost, errors.
    improvement = result.effect if result.higher_is_better else -result.effect
    if abs(result.effect) < result.margin:
        size = _pct(abs(result.effect)) + " points" if result.kind == "rate" else fmt(result.effect)
        margin = _pct(result.margin) + " points" if result.kind == "rate" else f"{result.margin:.0%}"
        return replace(result, classification="pass", reason=f"significant ({p_text}) but {size} < margin {margin}")
    change = fmt(result.effect) if result.kind == "numeric" else f"{result.effect * 100:+.1f} points"
    classification: Classification = "better" if improvement > 0 else "worse"
    return replace(result, classification=classification, reason=f"{change}, {p_text} < {alpha:g}")


def judge(signals: Sequence[SignalResult], config: CanaryConfig) -> CanaryResult:
    """Adjust the p-values over the tested signals, classify each signal, score and decide the verdict."""
    tested = [i for i, s in enumerate(signals) if s.p_value is not None]
    p_values = [signals[i].p_value or 0.0 for i in tested]
    adjusted = p_values if config.correction == "none" else adjust_p_values(p_values, config.correction)
    out = list(signals)
    for i, p_adj in zip(tested, adjusted, strict=True):
        out[i] = replace(out[i], p_value_adjusted=float(p_adj))
    out = [_classify(s, config.alpha, config.correction) for s in out]
    counts = {k: sum(s.classification == k for s in out) for k in ("pass", "better", "worse", "insufficient_data")}
    critical_failures = [s.name for s in out if s.critical and s.classification == "worse"]
    scored = counts["pass"] + counts["better"] + counts["worse"]
    if scored == 0:
        return CanaryResult(
            verdict="fail",
            score=None,
            reason="no signal had enough data to judge: widen the time range or wait for more traffic",
            signals=out,
            config=config,
            counts=counts,
        )
    # Kayenta counts a change in the harmless direction as a pass; only "worse" costs points.
    score = 100.0 * (counts["pass"] + counts["better"]) / scored
    verdict: Verdict
    if critical_failures:
        verdict, reason = "fail", f"critical signal worse: {', '.join(critical_failures)}"
    elif score >= config.pass_threshold:
        verdict, reason = "pass", f"score {score:.0f} >= pass threshold {config.pass_threshold:g}"
    elif score >= config.marginal_threshold:
        verdict, reason = "marginal", f"score {score:.0f} >= marginal threshold {config.marginal_threshold:g}"
    else:
        verdict, reason = "fail", f"score {score:.0f} < marginal threshold {config.marginal_threshold:g}"
    return CanaryResult(
        verdict=verdict,
        score=score,
        reason=reason,
        signals=out,
        config=config,
        counts=counts,
        critical_failures=critical_failures,
    )


def analyse(
    rates: Sequence[RateSignal], numerics: Sequence[NumericSignal], config: CanaryConfig | None = None
) -> CanaryResult:
    """Compare every signal and judge the canary."""
    config = config or CanaryConfig()
    results = [compare_rates(r, config) for r in rates] + [compare_values(n, config) for n in numerics]
    return judge(results, config)
