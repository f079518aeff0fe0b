"""Cost ceiling: above max_usd fails, equal passes, unknown cost is not scored."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from evals.evaluators.base import EvalItem
from evals.evaluators.cost_ceiling import CostCeiling


def score(cost: Decimal | None, **params: Any):
    return CostCeiling.from_config(params).evaluate(EvalItem(cost=cost))


def test_contract() -> None:
    assert CostCeiling.name == "cost_ceiling"
    assert CostCeiling.version == 1
    assert CostCeiling.default_enabled is True
    assert CostCeiling.from_config({}).params.max_usd == Decimal("0.50")


@pytest.mark.parametrize(
    ("cost", "params", "passed", "label"),
    [
        (Decimal("0.01"), {}, True, "within_budget"),
        (Decimal("0.50"), {}, True, "within_budget"),  # equal to the ceiling passes
        (Decimal("0.5000001"), {}, False, "over_budget"),  # a hair above fails: Decimal, no float rounding
        (Decimal("12.34"), {}, False, "over_budget"),
        (Decimal("0"), {}, True, "within_budget"),
        (Decimal("0.02"), {"max_usd": "0.01"}, False, "over_budget"),  # JSON string params
        (Decimal("0.02"), {"max_usd": 0.05}, True, "within_budget"),  # JSON number params
        (Decimal("0.000001"), {"max_usd": 0}, False, "over_budget"),  # a zero ceiling: any cost fails
        (Decimal("0"), {"max_usd": 0}, True, "within_budget"),
    ],
)
def test_ceiling(cost: Decimal, params: dict[str, Any], passed: bool, label: str) -> None:
    result = score(cost, **params)
    assert result is not None
    assert result.passed is passed
    assert result.label == label
    assert result.value == float(cost)
    assert result.evidence["cost_usd"] == str(cost)
    assert Decimal(result.evidence["max_usd"]) == CostCeiling.from_config(params).params.max_usd


def test_unknown_cost_is_not_scored() -> None:
    assert score(None) is None


def test_explanation_and_ratio() -> None:
    result = score(Decimal("1.25"))
    assert result is not None
    assert result.evidence["ratio"] == 2.5
    assert result.explanation == "The trace cost $1.25, 2.5× the $0.50 ceiling."
    small = score(Decimal("0.001234"))
    assert small is not None
    assert small.explanation == "The trace cost $0.001234, within the $0.50 ceiling."
    zero = score(Decimal("0.1"), max_usd=0)
    assert zero is not None and zero.evidence["ratio"] is None


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"max_usd": -1}, "greater than or equal to 0"),
        ({"max_usd": "abc"}, "Input should be a valid decimal"),
        ({"max_usd": "NaN"}, "finite number"),
        ({"max_usd": "Infinity"}, "finite number"),
        ({"max_usd": 10**7}, "less than or equal to 1000000"),
        ({"max_cost": 1}, "Extra inputs are not permitted"),
    ],
)
def test_invalid_params(params: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as info:
        CostCeiling.from_config(params)
    assert message in str(info.value)
    assert next(iter(params)) in str(info.value)
