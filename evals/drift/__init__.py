"""Drift detection: pure statistics (``stats``) comparing a current window of a signal with a baseline window.

Wiring (models, Celery tasks, pages) lives elsewhere; this package has no Django imports.
"""

from evals.drift.stats import (
    DEFAULT_ALPHA,
    DRIFT,
    INSUFFICIENT_DATA,
    NO_DRIFT,
    CategoricalDriftResult,
    CategoryShare,
    CorrectionMethod,
    DriftResult,
    Histogram,
    NumericDriftResult,
    RateDriftResult,
    TextDriftResult,
    TokenContrast,
    Verdict,
    adjust_p_values,
    apply_correction,
    categorical_drift,
    numeric_drift,
    rate_drift,
    text_drift,
    tokenize,
)

__all__ = [
    "DEFAULT_ALPHA",
    "DRIFT",
    "INSUFFICIENT_DATA",
    "NO_DRIFT",
    "CategoricalDriftResult",
    "CategoryShare",
    "CorrectionMethod",
    "DriftResult",
    "Histogram",
    "NumericDriftResult",
    "RateDriftResult",
    "TextDriftResult",
    "TokenContrast",
    "Verdict",
    "adjust_p_values",
    "apply_correction",
    "categorical_drift",
    "numeric_drift",
    "rate_drift",
    "text_drift",
    "tokenize",
]
