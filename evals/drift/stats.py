"""Pure statistics of drift detection: one window of a signal against a baseline window.

No Django, no I/O: plain Python sequences in, dataclass results out. Each result has ``to_dict()``, which is
JSON-serialisable (only ``str``, ``int``, ``float``, ``bool``, ``None``, lists and dicts; never NaN or infinity)
so it can be stored as is in a ``JSONField``.

Four tests, one per kind of signal:

- :func:`numeric_drift` (latency, tokens, cost, answer length, score values): two-sample Kolmogorov-Smirnov
  test; effect size = Wasserstein distance divided by a robust scale of the baseline.
- :func:`categorical_drift` (model, tool, finish reason, language): chi-square test of homogeneity on the
  2 x K table (rare categories pooled so expected counts are valid); effect size = Cramér's V of the share
  table (window sizes equalised); new and vanished categories listed.
- :func:`rate_drift` (refusal, error, PII, injection rates): two-proportion z-test (Fisher's exact test when
  expected counts are small); effect size = Cohen's h.
- :func:`text_drift` (answer text): can a bag-of-words classifier tell this window's answers from the
  baseline's? Cross-validated AUC of a binarised multinomial naive Bayes model, permutation p-value.

The verdict rule is the same for all four, so quiet services and huge windows do not raise false alarms:

- ``"insufficient_data"`` when either window has fewer than ``min_samples`` items: no test is run, ``p_value``
  and ``effect_size`` are ``None`` (descriptive figures such as medians or shares are still filled).
- ``"drift"`` when the test is significant (``p_value < alpha``) AND the effect size reaches ``min_effect``:
  significance alone fires on negligible changes in large windows; effect size alone fires on noise in
  small ones.
- ``"no_drift"`` otherwise.

Several signals of one service tested at once: each test runs at ``alpha``; :func:`apply_correction` then
adjusts the p-values of the whole set (Holm by default, which keeps the chance of *any* false alarm for the
service at or below ``alpha``; Benjamini-Hochberg and Bonferroni are available) and re-derives the verdicts.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal, TypeVar

import numpy as np
from numpy.typing import NDArray
from scipy import sparse, special, stats

Verdict = Literal["drift", "no_drift", "insufficient_data"]
CorrectionMethod = Literal["holm", "bonferroni", "bh"]

DRIFT: Verdict = "drift"
NO_DRIFT: Verdict = "no_drift"
INSUFFICIENT_DATA: Verdict = "insufficient_data"

# Defaults, chosen with bench/drift_false_alarms.py (false-alarm rate and power at realistic window sizes).
DEFAULT_ALPHA = 0.01
"""Per-test significance level. 1% rather than 5%: a scheduled job tests many signals of many services every
few hours, and every false alarm costs someone's attention."""

NUMERIC_MIN_EFFECT = 0.2
"""Normalised Wasserstein distance. For a pure location shift of normal data it equals the shift in standard
deviations (Cohen's d), and 0.2 is Cohen's "small" effect. For log-normal latency with a typical spread
(sigma 0.6) it is reached at a slowdown of about 10% (x1.10 gives 0.199, x1.25 gives 0.48)."""
NUMERIC_MIN_SAMPLES = 30
"""Below 30 values per window the KS test has little power and medians/p95 are unstable."""

CATEGORICAL_MIN_EFFECT = 0.1
"""Cramér's V of the share table; 0.1 is Cohen's "small" w. Reached e.g. when a new model takes 2% of the
traffic, or 10 points of traffic move from a 55% model to a 25% one (V = 0.115)."""
CATEGORICAL_MIN_SAMPLES = 50
"""Counts need more items than a continuous test: with 50 items a 10% category has an expected count of 5."""

RATE_MIN_EFFECT = 0.05
"""|Cohen's h|. It scales differences by how rare the rate is: 1% -> 2% (h = 0.083) and 0.1% -> 0.5%
(h = 0.078) pass, 20% -> 21% (h = 0.025) or 1.0% -> 1.2% (h = 0.019) do not."""
RATE_MIN_SAMPLES = 50
"""Events per window (the denominators)."""

TEXT_MIN_EFFECT = 0.65
"""Cross-validated AUC. If a share s of the current answers is perfectly recognisable and the rest is like the
baseline, AUC = 0.5 + s/2: 0.65 means roughly 30% of the answers look different. Lower values fire on the
ordinary day-to-day change of topics between a day and the week before."""
TEXT_MIN_SAMPLES = 50
"""Texts per window: below that the cross-validation folds hold too few answers of the smaller window."""
TEXT_PERMUTATIONS = 1999
"""Permutations for the text p-value. The smallest p it can give is 1/(n+1) = 0.0005, so after a Holm or
Bonferroni correction over m signals at alpha = 0.01 a text drift can still be found when m <= 20 (in general
use at least m / alpha permutations). On no-drift data the loop stops after a few dozen permutations."""

_EPS = 1e-12


# --------------------------------------------------------------------------------------------------- results
@dataclass(kw_only=True)
class DriftResult:
    """Fields common to every test.

    ``significant`` is ``p_value < alpha`` (False when no test ran); ``meets_min_effect`` is
    ``effect_size >= min_effect``; ``verdict`` is ``"drift"`` only when both hold. ``p_value_adjusted`` and
    ``correction`` are set by :func:`apply_correction`; the verdict then uses the adjusted p-value.
    """

    kind: str
    verdict: Verdict
    reason: str
    n_baseline: int
    n_current: int
    p_value: float | None
    effect_size: float | None
    effect_name: str
    alpha: float
    min_effect: float
    min_samples: int
    significant: bool
    meets_min_effect: bool
    p_value_adjusted: float | None = None
    correction: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict (plain Python types, no NaN/inf), e.g. for a JSONField."""
        out = _jsonable(asdict(self))
        assert isinstance(out, dict)
        return out


@dataclass
class Histogram:
    """Counts of both windows on shared bin edges (``len(edges) == len(counts) + 1``), for overlaid charts.

    Bins are log-spaced (``log_scale``) when all values are positive and span two orders of magnitude or
    more (latency, cost); plot the x axis in log then. The last bin includes its right edge. Divide counts by
    ``n_baseline`` / ``n_current`` to overlay windows of different sizes.
    """

    edges: list[float]
    baseline_counts: list[int]
    current_counts: list[int]
    log_scale: bool


@dataclass(kw_only=True)
class NumericDriftResult(DriftResult):
    """Result of :func:`numeric_drift`. ``effect_size`` is ``wasserstein_normalised``."""

    ks_statistic: float | None
    wasserstein: float | None
    wasserstein_normalised: float | None
    scale: float | None
    scale_method: str | None
    baseline_median: float | None
    current_median: float | None
    baseline_p95: float | None
    current_p95: float | None
    dropped_non_finite: int
    histogram: Histogram | None


@dataclass
class CategoryShare:
    category: str
    baseline_count: int
    current_count: int
    baseline_share: float
    current_share: float


@dataclass(kw_only=True)
class CategoricalDriftResult(DriftResult):
    """Result of :func:`categorical_drift`. ``effect_size`` is ``cramers_v_balanced`` (Cramér's V of the share
    table, independent of the window sizes); ``total_variation`` is the share of items that would have to
    change category to turn one window's mix into the other's.

    ``categories`` lists at most ``max_listed`` categories (the largest share in either window first); the
    rest is summed in ``other_baseline_count`` / ``other_current_count``. ``pooled_categories`` is the number
    of rare categories merged into one "other" column for the test.
    """

    chi2: float | None
    dof: int | None
    cramers_v: float | None
    cramers_v_balanced: float | None
    total_variation: float | None
    n_categories: int
    pooled_categories: int
    new_categories: list[str]
    vanished_categories: list[str]
    categories: list[CategoryShare]
    other_baseline_count: int
    other_current_count: int


@dataclass(kw_only=True)
class RateDriftResult(DriftResult):
    """Result of :func:`rate_drift`. ``effect_size`` is ``abs(cohens_h)``; ``difference`` is current - baseline."""

    baseline_hits: int
    baseline_total: int
    current_hits: int
    current_total: int
    baseline_rate: float | None
    current_rate: float | None
    difference: float | None
    cohens_h: float | None
    z_statistic: float | None
    method: str | None
    direction: Literal["up", "down", "none"] | None


@dataclass
class TokenContrast:
    """A token's document share in both windows; ``z`` is the log odds ratio over its standard error
    (positive: more frequent in the current window)."""

    token: str
    baseline_doc_share: float
    current_doc_share: float
    log_odds_ratio: float
    z: float


@dataclass(kw_only=True)
class TextDriftResult(DriftResult):
    """Result of :func:`text_drift`. ``effect_size`` is ``auc``.

    ``current_tokens`` / ``baseline_tokens`` are the tokens that most distinguish each window (descriptive;
    meaningful when the verdict is drift). They are user content: escape them where shown.
    ``permutations_run`` can be below ``n_permutations``: the loop stops once significance is out of reach,
    and ``p_value`` is then the estimate so far (always >= alpha).
    """

    auc: float | None
    n_folds: int
    n_permutations: int
    permutations_run: int
    vocabulary_size: int
    subsampled: bool
    current_tokens: list[TokenContrast] = field(default_factory=list)
    baseline_tokens: list[TokenContrast] = field(default_factory=list)


R = TypeVar("R", bound=DriftResult)


# --------------------------------------------------------------------------------------------------- helpers
def _jsonable(value: Any) -> Any:
    """Plain JSON types: numpy scalars converted, NaN and infinities replaced by None."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        f = float(value)
        return f if math.isfinite(f) else None
    return value


def _f(value: Any) -> float | None:
    """A finite Python float, or None."""
    if value is None:
        return None
    f = float(value)
    return f if math.isfinite(f) else None


def _fmt(x: float) -> str:
    return f"{x:.3g}"


def _decide(
    *,
    n_baseline: int,
    n_current: int,
    min_samples: int,
    p_value: float | None,
    alpha: float,
    effect: float | None,
    min_effect: float,
    effect_label: str,
) -> tuple[Verdict, str, bool, bool]:
    """(verdict, reason, significant, meets_min_effect) under the common rule."""
    if n_baseline < min_samples or n_current < min_samples or p_value is None:
        return (
            INSUFFICIENT_DATA,
            f"fewer than {min_samples} items in a window (baseline {n_baseline}, current {n_current})",
            False,
            False,
        )
    significant = p_value < alpha
    meets = effect is not None and effect >= min_effect
    sig_txt = f"p = {_fmt(p_value)} {'<' if significant else '>='} alpha {_fmt(alpha)}"
    eff_txt = f"{effect_label} {_fmt(effect or 0.0)} {'>=' if meets else '<'} {_fmt(min_effect)}"
    if significant and meets:
        return DRIFT, f"{sig_txt} and {eff_txt}", True, True
    if not significant:
        return NO_DRIFT, f"not significant: {sig_txt} ({eff_txt})", False, meets
    return NO_DRIFT, f"effect too small: {eff_txt} ({sig_txt})", True, False


def _check_common(alpha: float, min_effect: float, min_samples: int) -> None:
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if min_effect < 0:
        raise ValueError(f"min_effect must be >= 0, got {min_effect}")
    if min_samples < 1:
        raise ValueError(f"min_samples must be >= 1, got {min_samples}")


# --------------------------------------------------------------------------------------- multiple testing
def adjust_p_values(p_values: Sequence[float], method: CorrectionMethod = "holm") -> list[float]:
    """Adjusted p-values for testing several hypotheses at once (same order as given).

    - ``"holm"`` (default): Holm-Bonferroni step-down; controls the family-wise error rate (the chance of one
      or more false alarms among the set) and is never less powerful than Bonferroni.
    - ``"bonferroni"``: ``min(1, m * p)``.
    - ``"bh"``: Benjamini-Hochberg; controls the false discovery rate (the expected share of false alarms
      among the alarms) under independence or positive dependence; more alarms, weaker guarantee.

    Compare the adjusted values with the unadjusted alpha.
    """
    p = np.asarray(p_values, dtype=float)
    m = p.size
    if m == 0:
        return []
    if np.any(~np.isfinite(p)) or np.any(p < 0) or np.any(p > 1):
        raise ValueError("p-values must be finite and in [0, 1]")
    if method == "bonferroni":
        adjusted = np.minimum(1.0, p * m)
    elif method == "holm":
        order = np.argsort(p, kind="stable")
        steps = np.minimum(1.0, (m - np.arange(m)) * p[order])
        adjusted = np.empty(m)
        adjusted[order] = np.maximum.accumulate(steps)
    elif method == "bh":
        order = np.argsort(p, kind="stable")
        steps = p[order] * m / np.arange(1, m + 1)
        adjusted = np.empty(m)
        adjusted[order] = np.minimum(1.0, np.minimum.accumulate(steps[::-1])[::-1])
    else:
        raise ValueError(f"unknown correction method {method!r}")
    return [float(x) for x in adjusted]


def apply_correction(results: Sequence[R], *, method: CorrectionMethod = "holm") -> list[R]:
    """Copies of ``results`` with ``p_value_adjusted`` set and verdicts re-derived from it.

    Use it on all signals of one service tested in one run. Results without a test (insufficient data) are
    left out of the count m and unchanged. All tested results must share one ``alpha``. A text result's
    p-value cannot be below ``1 / (n_permutations + 1)``: after correction it can only reach significance if
    ``n_permutations >= m / alpha`` (Bonferroni/Holm worst case).
    """
    tested: list[int] = []
    p_values: list[float] = []
    for i, r in enumerate(results):
        if r.p_value is not None and r.verdict != INSUFFICIENT_DATA:
            tested.append(i)
            p_values.append(r.p_value)
    alphas = {results[i].alpha for i in tested}
    if len(alphas) > 1:
        raise ValueError(f"results to correct together must share one alpha, got {sorted(alphas)}")
    adjusted = adjust_p_values(p_values, method)
    out = list(results)
    for i, p_adj in zip(tested, adjusted, strict=True):
        r = results[i]
        verdict, reason, significant, meets = _decide(
            n_baseline=r.n_baseline,
            n_current=r.n_current,
            min_samples=r.min_samples,
            p_value=p_adj,
            alpha=r.alpha,
            effect=r.effect_size,
            min_effect=r.min_effect,
            effect_label=r.effect_name,
        )
        reason = f"{reason} [{method}-adjusted over {len(tested)} tests]"
        out[i] = replace(
            r,
            verdict=verdict,
            reason=reason,
            significant=significant,
            meets_min_effect=meets,
            p_value_adjusted=p_adj,
            correction=method,
        )
    return out


# ------------------------------------------------------------------------------------------------- numeric
def _finite(values: Sequence[float]) -> tuple[NDArray[np.float64], int]:
    arr = np.asarray(list(values), dtype=float).ravel()
    keep = np.isfinite(arr)
    return arr[keep], int(arr.size - keep.sum())


def _robust_scale(baseline: NDArray[np.float64], current: NDArray[np.float64]) -> tuple[float, str]:
    """A scale of the baseline in standard-deviation units, robust to outliers, never zero.

    IQR / 1.349, else MAD * 1.4826 (both equal the standard deviation for normal data), else the baseline's
    standard deviation, else the pooled one (a constant baseline), else 1.
    """
    center = float(np.median(baseline))
    tiny = _EPS * max(1.0, abs(center))
    q75, q25 = np.percentile(baseline, [75, 25])
    if q75 - q25 > tiny:
        return float(q75 - q25) / 1.349, "iqr"
    mad = float(np.median(np.abs(baseline - center)))
    if mad > tiny:
        return mad * 1.4826, "mad"
    if baseline.size > 1 and float(np.std(baseline, ddof=1)) > tiny:
        return float(np.std(baseline, ddof=1)), "baseline_std"
    pooled = np.concatenate([baseline, current])
    if pooled.size > 1 and float(np.std(pooled, ddof=1)) > tiny:
        return float(np.std(pooled, ddof=1)), "pooled_std"
    return 1.0, "unit"


def _histogram(baseline: NDArray[np.float64], current: NDArray[np.float64], bins: int) -> Histogram:
    pooled = np.concatenate([baseline, current])
    lo, hi = float(pooled.min()), float(pooled.max())
    log_scale = lo > 0 and hi / lo >= 100.0
    if hi - lo <= _EPS * max(1.0, abs(lo)):
        half = abs(lo) * 0.05 if lo != 0 else 0.5
        edges = np.array([lo - half, hi + half])
    elif log_scale:
        edges = np.geomspace(lo, hi, bins + 1)
    else:
        edges = np.linspace(lo, hi, bins + 1)
    edges[0], edges[-1] = min(edges[0], lo), max(edges[-1], hi)
    b_counts, _ = np.histogram(baseline, bins=edges)
    c_counts, _ = np.histogram(current, bins=edges)
    return Histogram(
        edges=[float(e) for e in edges],
        baseline_counts=[int(c) for c in b_counts],
        current_counts=[int(c) for c in c_counts],
        log_scale=bool(log_scale),
    )


def numeric_drift(
    baseline: Sequence[float],
    current: Sequence[float],
    *,
    alpha: float = DEFAULT_ALPHA,
    min_effect: float = NUMERIC_MIN_EFFECT,
    min_samples: int = NUMERIC_MIN_SAMPLES,
    bins: int = 30,
) -> NumericDriftResult:
    """Has the distribution of a numeric signal changed?

    Test: two-sample Kolmogorov-Smirnov (``scipy.stats.ks_2samp``, exact for small samples; with ties, as
    in integer token counts, it is conservative). Effect size: ``wasserstein_distance(baseline, current)``
    divided by a robust scale of the baseline (IQR / 1.349; see ``scale_method``), i.e. roughly "by how many
    standard deviations the values moved". Non-finite values (NaN, inf) are dropped and counted in
    ``dropped_non_finite``.
    """
    _check_common(alpha, min_effect, min_samples)
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    b, dropped_b = _finite(baseline)
    c, dropped_c = _finite(current)

    def q(arr: NDArray[np.float64], pct: float) -> float | None:
        return _f(np.percentile(arr, pct)) if arr.size else None

    hist = _histogram(b, c, bins) if b.size + c.size else None
    ks_stat = p_value = w = w_norm = scale = None
    scale_method = None
    if b.size >= min_samples and c.size >= min_samples:
        ks = stats.ks_2samp(b, c)
        ks_stat, p_value = _f(ks.statistic), _f(ks.pvalue)
        w = _f(stats.wasserstein_distance(b, c))
        scale, scale_method = _robust_scale(b, c)
        w_norm = _f((w or 0.0) / scale)
    verdict, reason, significant, meets = _decide(
        n_baseline=int(b.size),
        n_current=int(c.size),
        min_samples=min_samples,
        p_value=p_value,
        alpha=alpha,
        effect=w_norm,
        min_effect=min_effect,
        effect_label="normalised Wasserstein",
    )
    return NumericDriftResult(
        kind="numeric",
        verdict=verdict,
        reason=reason,
        n_baseline=int(b.size),
        n_current=int(c.size),
        p_value=p_value,
        effect_size=w_norm,
        effect_name="normalised Wasserstein",
        alpha=alpha,
        min_effect=min_effect,
        min_samples=min_samples,
        significant=significant,
        meets_min_effect=meets,
        ks_statistic=ks_stat,
        wasserstein=w,
        wasserstein_normalised=w_norm,
        scale=scale,
        scale_method=scale_method,
        baseline_median=q(b, 50),
        current_median=q(c, 50),
        baseline_p95=q(b, 95),
        current_p95=q(c, 95),
        dropped_non_finite=dropped_b + dropped_c,
        histogram=hist,
    )


# --------------------------------------------------------------------------------------------- categorical
def _pool_rare(totals: dict[str, int], n_small: int, n_all: int, min_expected: float) -> tuple[list[str], list[str]]:
    """(kept, pooled): rare categories go to one "other" column so every expected count is >= min_expected.

    The expected count of a category in the smaller window is ``total * n_small / n_all``. Categories are
    visited from the rarest; one is pooled while its own expected count is too small, or while the pool
    itself is still too small.
    """
    order = sorted(totals, key=lambda k: (totals[k], k))
    pooled: list[str] = []
    pool = 0
    for idx, cat in enumerate(order):
        own_ok = totals[cat] * n_small / n_all >= min_expected
        pool_ok = not pooled or pool * n_small / n_all >= min_expected
        if own_ok and pool_ok:
            return order[idx:], pooled
        pooled.append(cat)
        pool += totals[cat]
    return [], pooled


def categorical_drift(
    baseline: Sequence[str],
    current: Sequence[str],
    *,
    alpha: float = DEFAULT_ALPHA,
    min_effect: float = CATEGORICAL_MIN_EFFECT,
    min_samples: int = CATEGORICAL_MIN_SAMPLES,
    min_expected: float = 5.0,
    min_category_share: float = 0.01,
    near_absent_share: float = 0.001,
    max_listed: int = 30,
) -> CategoricalDriftResult:
    """Has the mix of a categorical signal changed? One item per trace or span (map missing values to a
    label such as ``"(none)"`` first; every item is converted with ``str``).

    Test: chi-square test of homogeneity (``scipy.stats.chi2_contingency``, no continuity correction) on the
    2 x K table of counts, with categories whose expected count would be below ``min_expected`` pooled into
    one "other" column (so a long tail of rare values neither breaks the test nor dominates it).

    Effect size: Cramér's V of the *share* table (both windows scaled to the same size). The usual V of the
    count table depends on the ratio of the window sizes (a day against a week is 1:7, an hour against a
    week 1:168), so one threshold would mean different shifts for different windows; the share-table V
    depends only on the two distributions. ``cramers_v`` (count table) is reported too.

    New categories: current count >= 5, current share >= ``min_category_share``, baseline share <=
    ``near_absent_share``, and the baseline large enough that a category of that share would have shown at
    least 5 times. Vanished: the same with the windows swapped.
    """
    _check_common(alpha, min_effect, min_samples)
    b_counts = Counter(str(x) for x in baseline)
    c_counts = Counter(str(x) for x in current)
    n_b, n_c = sum(b_counts.values()), sum(c_counts.values())
    cats = set(b_counts) | set(c_counts)

    def share(count: int, n: int) -> float:
        return count / n if n else 0.0

    rows = [CategoryShare(k, b_counts[k], c_counts[k], share(b_counts[k], n_b), share(c_counts[k], n_c)) for k in cats]
    rows.sort(key=lambda r: (-max(r.baseline_share, r.current_share), r.category))
    listed, rest = rows[:max_listed], rows[max_listed:]

    def appeared(count_new: int, share_new: float, share_old: float, n_old: int) -> bool:
        return (
            count_new >= 5
            and share_new >= min_category_share
            and share_old <= near_absent_share
            and share_new * n_old >= 5
        )

    new = sorted(
        (r for r in rows if appeared(r.current_count, r.current_share, r.baseline_share, n_b)),
        key=lambda r: -r.current_share,
    )
    vanished = sorted(
        (r for r in rows if appeared(r.baseline_count, r.baseline_share, r.current_share, n_c)),
        key=lambda r: -r.baseline_share,
    )

    chi2 = p_value = v = v_bal = tv = None
    dof: int | None = None
    pooled: list[str] = []
    if n_b >= min_samples and n_c >= min_samples:
        totals = {k: b_counts[k] + c_counts[k] for k in cats}
        kept, pooled = _pool_rare(totals, min(n_b, n_c), n_b + n_c, min_expected)
        columns = [[b_counts[k], c_counts[k]] for k in kept]
        if pooled:
            columns.append([sum(b_counts[k] for k in pooled), sum(c_counts[k] for k in pooled)])
        table = np.array(columns, dtype=float).T  # 2 x K
        shares = table / table.sum(axis=1, keepdims=True)
        diff = shares[0] - shares[1]
        tv = _f(0.5 * np.abs(diff).sum())
        if table.shape[1] < 2:
            chi2, p_value, dof, v, v_bal = 0.0, 1.0, 0, 0.0, 0.0
        else:
            res = stats.chi2_contingency(table, correction=False)
            chi2, p_value, dof = _f(res.statistic), _f(res.pvalue), int(res.dof)
            v = _f(math.sqrt((chi2 or 0.0) / (n_b + n_c)))
            v_bal = _f(math.sqrt(0.5 * float(np.sum(diff**2 / (shares[0] + shares[1])))))
    verdict, reason, significant, meets = _decide(
        n_baseline=n_b,
        n_current=n_c,
        min_samples=min_samples,
        p_value=p_value,
        alpha=alpha,
        effect=v_bal,
        min_effect=min_effect,
        effect_label="Cramér's V",
    )
    if verdict == DRIFT and new:
        reason += f"; new: {', '.join(r.category for r in new[:5])}"
    if verdict == DRIFT and vanished:
        reason += f"; vanished: {', '.join(r.category for r in vanished[:5])}"
    return CategoricalDriftResult(
        kind="categorical",
        verdict=verdict,
        reason=reason,
        n_baseline=n_b,
        n_current=n_c,
        p_value=p_value,
        effect_size=v_bal,
        effect_name="Cramér's V",
        alpha=alpha,
        min_effect=min_effect,
        min_samples=min_samples,
        significant=significant,
        meets_min_effect=meets,
        chi2=chi2,
        dof=dof,
        cramers_v=v,
        cramers_v_balanced=v_bal,
        total_variation=tv,
        n_categories=len(cats),
        pooled_categories=len(pooled),
        new_categories=[r.category for r in new],
        vanished_categories=[r.category for r in vanished],
        categories=listed,
        other_baseline_count=sum(r.baseline_count for r in rest),
        other_current_count=sum(r.current_count for r in rest),
    )


# ---------------------------------------------------------------------------------------------------- rate
# Below this expected count in a cell of a 2 x 2 table the chi-square approximation is poor (Cochran's rule).
MIN_EXPECTED = 5.0


def _empty_margin(a: int, b: int, c: int, d: int) -> bool:
    return 0 in (a + b, c + d, a + c, b + d)


def two_by_two_uses_fisher(a: int, b: int, c: int, d: int) -> bool:
    """Whether two_by_two_p_value takes Fisher's exact test for this table (an expected count below 5)."""
    if _empty_margin(a, b, c, d):
        return False
    n = a + b + c + d
    return min(r * k for r in (a + b, c + d) for k in (a + c, b + d)) / n < MIN_EXPECTED


def two_by_two_p_value(a: int, b: int, c: int, d: int) -> float:
    """Two-sided p-value that the rows (a, b) and (c, d) have the same proportion a/(a+b) = c/(c+d): the one 2 x 2
    test of drift rates, canary rates and the triage page's suspects.

    Pearson's chi-square with one degree of freedom, which is the pooled two-proportion z-test squared (closed
    form: n (ad - bc)^2 / (row and column sums multiplied)); Fisher's exact test when an expected count is below 5.
    1.0 when a margin is empty: there is nothing to compare.
    """
    if _empty_margin(a, b, c, d):
        return 1.0
    if two_by_two_uses_fisher(a, b, c, d):
        return float(stats.fisher_exact([[a, b], [c, d]]).pvalue)
    n = a + b + c + d
    chi2 = n * (a * d - b * c) ** 2 / ((a + b) * (c + d) * (a + c) * (b + d))
    # chdtrc is the chi-square survival function (scipy.stats.chi2.sf) without the distribution-object overhead.
    return min(1.0, float(special.chdtrc(1, chi2)))


def rate_drift(
    baseline_hits: int,
    baseline_total: int,
    current_hits: int,
    current_total: int,
    *,
    alpha: float = DEFAULT_ALPHA,
    min_effect: float = RATE_MIN_EFFECT,
    min_samples: int = RATE_MIN_SAMPLES,
) -> RateDriftResult:
    """Has a rate (hits / total: refusals, errors, PII findings) changed? Two-sided.

    Test: two-proportion z-test with the pooled proportion. When an expected count of the 2 x 2 table is
    below 5 (rare events in a small window, where the normal approximation is poor) Fisher's exact test is
    used instead (``method`` says which). Effect size: ``abs(cohens_h)``, h = 2 asin(sqrt(p_current)) -
    2 asin(sqrt(p_baseline)), which weighs a change by how rare the rate is.
    """
    _check_common(alpha, min_effect, min_samples)
    for name, hits, total in (("baseline", baseline_hits, baseline_total), ("current", current_hits, current_total)):
        if total < 0 or hits < 0 or hits > total:
            raise ValueError(f"{name}: need 0 <= hits <= total, got hits={hits}, total={total}")
    n_b, n_c = int(baseline_total), int(current_total)
    p_b = baseline_hits / n_b if n_b else None
    p_c = current_hits / n_c if n_c else None
    diff = h = z = p_value = None
    method = None
    direction: Literal["up", "down", "none"] | None = None
    if p_b is not None and p_c is not None:
        diff = p_c - p_b
        h = 2 * math.asin(math.sqrt(p_c)) - 2 * math.asin(math.sqrt(p_b))
        direction = "up" if diff > 0 else "down" if diff < 0 else "none"
    if n_b >= min_samples and n_c >= min_samples and p_b is not None and p_c is not None:
        pooled = (baseline_hits + current_hits) / (n_b + n_c)
        se = math.sqrt(pooled * (1 - pooled) * (1 / n_b + 1 / n_c))
        z = (p_c - p_b) / se if se > 0 else 0.0  # reported; the p-value is the same test's (z^2 = chi-square)
        table = (current_hits, n_c - current_hits, baseline_hits, n_b - baseline_hits)
        p_value = two_by_two_p_value(*table)
        method = "fisher_exact" if two_by_two_uses_fisher(*table) else "z"
    effect = abs(h) if h is not None else None
    verdict, reason, significant, meets = _decide(
        n_baseline=n_b,
        n_current=n_c,
        min_samples=min_samples,
        p_value=p_value,
        alpha=alpha,
        effect=effect,
        min_effect=min_effect,
        effect_label="|Cohen's h|",
    )
    return RateDriftResult(
        kind="rate",
        verdict=verdict,
        reason=reason,
        n_baseline=n_b,
        n_current=n_c,
        p_value=p_value,
        effect_size=effect,
        effect_name="|Cohen's h|",
        alpha=alpha,
        min_effect=min_effect,
        min_samples=min_samples,
        significant=significant,
        meets_min_effect=meets,
        baseline_hits=int(baseline_hits),
        baseline_total=n_b,
        current_hits=int(current_hits),
        current_total=n_c,
        baseline_rate=p_b,
        current_rate=p_c,
        difference=diff,
        cohens_h=h,
        z_statistic=z,
        method=method,
        direction=direction,
    )


# ---------------------------------------------------------------------------------------------------- text
_TOKEN_RE = re.compile(r"\w+")


def tokenize(text: str, max_chars: int = 2000) -> list[str]:
    """Lower-cased word tokens (Unicode ``\\w+`` runs) of the first ``max_chars`` characters."""
    return _TOKEN_RE.findall(text[:max_chars].lower())


def _auc_columns(scores: NDArray[np.float64], labels: NDArray[np.float64]) -> NDArray[np.float64]:
    """ROC AUC of each column of scores against the 0/1 labels in the same column (ties count half)."""
    ranks = stats.rankdata(scores, axis=0)
    n1 = labels.sum(axis=0)
    n0 = labels.shape[0] - n1
    u = (ranks * labels).sum(axis=0) - n1 * (n1 + 1) / 2
    return np.asarray(u / (n1 * n0), dtype=float)


class _CrossValidatedNB:
    """Out-of-fold scores of a binarised multinomial naive Bayes model, for many label vectors at once.

    The folds are fixed by index (drawn once from the seed, independent of the labels), so the statistic is
    the same function of (texts, labels) for the observed and for every permuted labelling: the
    permutation p-value is exact.
    """

    def __init__(self, x: sparse.csr_matrix, folds: NDArray[np.int64], n_folds: int, smoothing: float = 1.0):
        self.x = x
        self.folds = folds
        self.n_folds = n_folds
        self.smoothing = smoothing
        self.vocab = x.shape[1]
        self.xt = x.T.tocsr()
        self.fold_rows = [np.flatnonzero(folds == f) for f in range(n_folds)]
        self.fold_x = [x[rows] for rows in self.fold_rows]
        doc_freq = np.asarray(x.sum(axis=0)).ravel()
        # Documents containing each token in the training part of each fold (label-free).
        self.train_df = [doc_freq - np.asarray(fx.sum(axis=0)).ravel() for fx in self.fold_x]

    def auc(self, labels: NDArray[np.float64]) -> NDArray[np.float64]:
        """AUC of the pooled out-of-fold scores, one per column of ``labels`` (n_docs x B, 1 = current)."""
        all_pos = np.asarray(self.xt @ labels)  # V x B: current-window documents containing each token
        scores = np.empty(labels.shape, dtype=float)
        a, v = self.smoothing, self.vocab
        for f, rows in enumerate(self.fold_rows):
            if rows.size == 0:
                continue
            pos = all_pos - np.asarray(self.fold_x[f].T @ labels[rows])
            neg = self.train_df[f][:, None] - pos
            weights = np.log((pos + a) / (pos.sum(axis=0) + a * v)) - np.log((neg + a) / (neg.sum(axis=0) + a * v))
            scores[rows] = np.asarray(self.fold_x[f] @ weights)
        return _auc_columns(scores, labels)


def _token_contrasts(
    x: sparse.csr_matrix, labels: NDArray[np.float64], vocab: list[str], top: int
) -> tuple[list[TokenContrast], list[TokenContrast]]:
    """Tokens whose document share differs most between windows, by the z-score of the log odds ratio."""
    n_c = float(labels.sum())
    n_b = float(labels.size - n_c)
    k_c = np.asarray(x.T @ labels).ravel()
    k_b = np.asarray(x.sum(axis=0)).ravel() - k_c
    lor = np.log((k_c + 0.5) / (n_c - k_c + 0.5)) - np.log((k_b + 0.5) / (n_b - k_b + 0.5))
    se = np.sqrt(1 / (k_c + 0.5) + 1 / (n_c - k_c + 0.5) + 1 / (k_b + 0.5) + 1 / (n_b - k_b + 0.5))
    z = lor / se

    def item(i: int) -> TokenContrast:
        return TokenContrast(vocab[i], float(k_b[i] / n_b), float(k_c[i] / n_c), float(lor[i]), float(z[i]))

    order = np.argsort(-z, kind="stable")
    current = [item(int(i)) for i in order[:top] if z[i] >= 2.0]
    order = np.argsort(z, kind="stable")
    baseline = [item(int(i)) for i in order[:top] if z[i] <= -2.0]
    return current, baseline


def text_drift(
    baseline_texts: Sequence[str],
    current_texts: Sequence[str],
    *,
    alpha: float = DEFAULT_ALPHA,
    min_effect: float = TEXT_MIN_EFFECT,
    min_samples: int = TEXT_MIN_SAMPLES,
    n_folds: int = 5,
    n_permutations: int = TEXT_PERMUTATIONS,
    max_texts: int = 2000,
    max_chars: int = 2000,
    max_features: int = 5000,
    min_df: int = 2,
    top_tokens: int = 10,
    seed: int = 0,
) -> TextDriftResult:
    """Can this window's texts be told apart from the baseline's?

    Features: presence of each word token (:func:`tokenize`) that occurs in at least ``min_df`` texts, the
    ``max_features`` most frequent kept (chosen without looking at the windows, so no label leaks).
    Classifier: binarised multinomial naive Bayes (Laplace smoothing), scored out of fold with
    ``n_folds``-fold cross-validation. Effect size: ROC AUC of the out-of-fold scores (0.5 = cannot tell
    apart, 1 = always can). p-value: share of ``n_permutations`` random relabellings of the same texts
    whose AUC is at least the observed one, ``(1 + hits) / (1 + permutations)``; it stops early once
    ``p < alpha`` is out of reach.

    At most ``max_texts`` texts per window are used (a seeded random sample; ``subsampled`` says so) and
    ``max_chars`` characters per text, which keeps a call well under a second. Same inputs and seed, same
    result.
    """
    _check_common(alpha, min_effect, min_samples)
    if n_folds < 2:
        raise ValueError(f"n_folds must be >= 2, got {n_folds}")
    if n_permutations < 1:
        raise ValueError(f"n_permutations must be >= 1, got {n_permutations}")
    rng = np.random.default_rng(seed)
    b_texts, c_texts = list(baseline_texts), list(current_texts)
    n_b, n_c = len(b_texts), len(c_texts)
    subsampled = n_b > max_texts or n_c > max_texts

    def sample(texts: list[str]) -> list[str]:
        if len(texts) <= max_texts:
            return texts
        return [texts[i] for i in sorted(rng.choice(len(texts), size=max_texts, replace=False))]

    common: dict[str, Any] = {
        "kind": "text",
        "n_baseline": n_b,
        "n_current": n_c,
        "effect_name": "AUC",
        "alpha": alpha,
        "min_effect": min_effect,
        "min_samples": min_samples,
        "n_folds": n_folds,
        "n_permutations": n_permutations,
        "subsampled": subsampled,
    }
    if n_b < min_samples or n_c < min_samples:
        verdict, reason, _, _ = _decide(
            n_baseline=n_b,
            n_current=n_c,
            min_samples=min_samples,
            p_value=None,
            alpha=alpha,
            effect=None,
            min_effect=min_effect,
            effect_label="AUC",
        )
        return TextDriftResult(
            **common,
            verdict=verdict,
            reason=reason,
            p_value=None,
            effect_size=None,
            significant=False,
            meets_min_effect=False,
            auc=None,
            permutations_run=0,
            vocabulary_size=0,
        )

    docs = [set(tokenize(t, max_chars)) for t in sample(b_texts)] + [
        set(tokenize(t, max_chars)) for t in sample(c_texts)
    ]
    labels = np.zeros(len(docs))
    labels[len(docs) - min(n_c, max_texts) :] = 1.0
    doc_freq = Counter(tok for d in docs for tok in d)
    vocab = sorted((t for t, k in doc_freq.items() if k >= min_df), key=lambda t: (-doc_freq[t], t))[:max_features]
    index = {t: i for i, t in enumerate(vocab)}
    indptr, cols = [0], []
    for d in docs:
        cols.extend(sorted(index[t] for t in d if t in index))
        indptr.append(len(cols))
    x = sparse.csr_matrix(
        (np.ones(len(cols)), np.asarray(cols, dtype=np.int64), np.asarray(indptr, dtype=np.int64)),
        shape=(len(docs), max(len(vocab), 1)),
    )
    n = len(docs)
    folds = np.empty(n, dtype=np.int64)
    folds[rng.permutation(n)] = np.arange(n) % n_folds

    permutations_run = 0
    current_tokens: list[TokenContrast] = []
    baseline_tokens: list[TokenContrast] = []
    if not vocab:
        auc, p_value = 0.5, 1.0
    else:
        model = _CrossValidatedNB(x, folds, n_folds)
        auc = float(model.auc(labels[:, None])[0])
        # Observed statistic counts as one of the relabellings: p = (1 + #{perm >= obs}) / (1 + perms).
        hits = 0
        stop_at = alpha * (1 + n_permutations)  # once 1 + hits reaches it, p < alpha is impossible
        batch = 50
        while permutations_run < n_permutations and (permutations_run == 0 or 1 + hits < stop_at):
            size = min(batch, n_permutations - permutations_run)
            perm_labels = np.ascontiguousarray(rng.permuted(np.tile(labels, (size, 1)), axis=1).T)
            hits += int(np.sum(model.auc(perm_labels) >= auc - 1e-12))
            permutations_run += size
            batch = min(batch * 2, 400)
        p_value = (1 + hits) / (1 + permutations_run)
        current_tokens, baseline_tokens = _token_contrasts(x, labels, vocab, top_tokens)
    verdict, reason, significant, meets = _decide(
        n_baseline=n_b,
        n_current=n_c,
        min_samples=min_samples,
        p_value=p_value,
        alpha=alpha,
        effect=auc,
        min_effect=min_effect,
        effect_label="AUC",
    )
    return TextDriftResult(
        **common,
        verdict=verdict,
        reason=reason,
        p_value=p_value,
        effect_size=auc,
        significant=significant,
        meets_min_effect=meets,
        auc=auc,
        permutations_run=permutations_run,
        vocabulary_size=len(vocab),
        current_tokens=current_tokens,
        baseline_tokens=baseline_tokens,
    )
