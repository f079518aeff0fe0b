"""Cost ceiling: a trace that cost more than ``max_usd`` fails.

The value is the trace's cost in USD (so charts can plot it); a cost equal to the ceiling passes. Not
applicable (None) when the cost is unknown, e.g. a model missing from the price table: an unknown cost is
neither cheap nor expensive.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from evals.evaluators.base import EvalItem, EvalResult, Evaluator


class CostCeilingParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_usd: Decimal = Field(
        Decimal("0.50"),
        ge=0,
        le=1_000_000,
        allow_inf_nan=False,
        description="Most a single trace may cost, in USD; above it the trace fails.",
    )


class CostCeiling(Evaluator[CostCeilingParams]):
    name = "cost_ceiling"
    version = 1
    title = "Cost ceiling"
    description = "Fails a trace whose LLM cost is above a ceiling in USD."
    Params = CostCeilingParams
    queue = "scoring"
    default_enabled = True

    @classmethod
    def summary(cls, value: float | None, passed: bool | None, label: str, evidence: dict[str, Any]) -> str:
        return f"${_usd(Decimal(evidence['cost_usd']))} (ceiling ${_usd(Decimal(evidence['max_usd']))})"

    def evaluate(self, item: EvalItem) -> EvalResult | None:
        if item.cost is None:
            return None
        cost, ceiling = item.cost, self.params.max_usd
        ok = cost <= ceiling
        ratio = round(float(cost / ceiling), 4) if ceiling > 0 else None
        if ok:
            explanation = f"The trace cost ${_usd(cost)}, within the ${_usd(ceiling)} ceiling."
        elif ratio is not None:
            explanation = f"The trace cost ${_usd(cost)}, {ratio:.1f}× the ${_usd(ceiling)} ceiling."
        else:
            explanation = f"The trace cost ${_usd(cost)}, above the ${_usd(ceiling)} ceiling."
        return EvalResult(
            value=float(cost),
            passed=ok,
            label="within_budget" if ok else "over_budget",
            explanation=explanation,
            evidence={"cost_usd": str(cost), "max_usd": str(ceiling), "ratio": ratio},
        )


def _usd(amount: Decimal) -> str:
    """At least cents, more digits only when they matter: 0.5 → 0.50, 0.001234 → 0.001234."""
    text = format(amount.normalize(), "f") if amount else "0"
    whole, _, frac = text.partition(".")
    return f"{whole}.{frac.ljust(2, '0')}"
