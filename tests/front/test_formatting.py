"""Number formatting of the dashboards (template filters)."""

from decimal import Decimal
from types import SimpleNamespace

import pytest
from django.template.loader import render_to_string
from django.utils.html import json_script

from rollups.templatetags.rollup_format import chart_json, sig3, signal_change
from traces.templatetags.trace_format import usd


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, "–"),
        (Decimal(0), "$0"),
        (Decimal("1234.5"), "$1,234.5"),
        (Decimal("0.0284"), "$0.0284"),
        (Decimal("0.01"), "$0.01"),
        (Decimal("0.00018"), "$0.00018"),
        (Decimal("0.000123456"), "$0.000123"),
        (Decimal("0.0000042"), "$0.0000042"),
        (Decimal("0.000000015"), "$0.000000015"),
        (Decimal("0.000000001"), "<$0.00000001"),
        (0.0042, "$0.0042"),
        (Decimal("-0.0000042"), "-$0.0000042"),
        (Decimal("NaN"), "–"),
    ],
)
def test_usd_keeps_three_significant_figures_below_a_cent(value: Decimal | float | None, text: str) -> None:
    assert usd(value) == text


def test_a_tiny_cost_change_is_shown_with_its_digits() -> None:
    # The overview printed "▲ $0." for a change of a few millionths of a dollar per request.
    assert signal_change({"key": "cost_per_request", "change": 0.0000042}) == "▲ $0.0000042"
    assert signal_change({"key": "cost_per_request", "change": -0.00013}) == "▼ $0.00013"


@pytest.mark.parametrize(
    ("value", "text"),
    [(None, "–"), (5.2345e-05, "0.0000523"), (0.000328, "0.000328"), (26.0, "26"), (1234567.0, "1230000")],
)
def test_drift_medians_use_plain_notation(value: float | None, text: str) -> None:
    assert sig3(value) == text


def test_money_in_templates_uses_usd() -> None:
    """A cost SLO's threshold and a judge call's cost keep their digits below a cent."""
    slo = SimpleNamespace(sli_kind="cost", threshold=Decimal("0.000123456"), route="", model="")
    assert render_to_string("slos/_sli.html", {"slo": slo}).strip() == "cost ≤ $0.000123"
    judged = SimpleNamespace(pk=1, name="judge.relevance", passed=False, value=0.0, label="", source="evaluator",
                             explanation="", span=None, evaluator="judge", evaluator_version=1, author=None,
                             cost=Decimal("0.0000042"), evidence={})  # fmt: skip
    page = render_to_string("evals/_trace_scores.html", {"scores": [judged], "failing_scores": [judged],
                                                         "project": SimpleNamespace(slug="acme")})  # fmt: skip
    assert "cost $0.0000042" in page


def test_chart_figures_are_written_as_djangos_json_script_writes_them() -> None:
    # Names in figures come from apps: a release "</script><script>alert(1)</script>" must not end the script.
    figures = {
        "data": [{"name": "</script><script>alert('x')</script> & <b>", "y": [1, 2.5, None], "at": Decimal("0.1")}],
        "title": 'naïve — 😀 \u2028 "quoted"',
    }
    written = chart_json(figures, "figures")
    assert written == json_script(figures, "figures")
    assert "</script><script>" not in written and "\\u003C/script\\u003E" in written
