"""Drift run results → Plotly figures (no ORM): both windows overlaid for numeric signals, shares side by side
for categorical ones. Colours: baseline grey, current blue, on every drift chart."""

from __future__ import annotations

import itertools
from decimal import Decimal
from typing import Any

BASELINE, CURRENT = "#8591a0", "#5aa9ff"
LAYOUT: dict[str, Any] = {
    "template": "plotly_dark",
    "paper_bgcolor": "rgba(0,0,0,0)",
    "plot_bgcolor": "rgba(0,0,0,0)",
    "margin": {"l": 50, "r": 10, "t": 28, "b": 40},
    "height": 200,
    "font": {"size": 11, "color": "#d8dee6"},
    "legend": {"orientation": "h", "y": 1.2, "x": 0},
    "barmode": "group",
    "bargap": 0.05,
    "hoverlabel": {"bgcolor": "#1b222c", "bordercolor": "#3a4452", "font": {"color": "#d8dee6"}},
}


def _numeric(result: dict[str, Any]) -> dict[str, Any] | None:
    hist = result.get("histogram")
    if not hist or not hist["edges"]:
        return None
    edges = hist["edges"]
    n_base, n_cur = max(result["n_baseline"], 1), max(result["n_current"], 1)
    if len(edges) == 2:
        # Every value is the same (a check that always scores 0, say): a line over one bin draws nothing, so show
        # both windows' shares at that value as bars, on an axis with just that value.
        value = format(Decimal(f"{(edges[0] + edges[1]) / 2:.3g}"), "f")
        return _categorical(
            {
                **result,
                "categories": [
                    {
                        "category": value,
                        "baseline_share": hist["baseline_counts"][0] / n_base,
                        "current_share": hist["current_counts"][0] / n_cur,
                    }
                ],
            }
        )
    centres = [(a * b) ** 0.5 if hist["log_scale"] and a > 0 else (a + b) / 2 for a, b in itertools.pairwise(edges)]
    layout = {
        **LAYOUT,
        "xaxis": {
            "title": {"text": result["signal"]},
            "type": "log" if hist["log_scale"] else "linear",
            # Money in dollars with the digits each tick needs ("$0.00015"), not SI ("150µ").
            "tickformat": "$~g" if result["signal"] == "cost (USD)" else "",
        },
        "yaxis": {"title": {"text": "share"}, "tickformat": ".0%"},
    }
    return {
        "data": [
            {
                "type": "scatter",
                "mode": "lines",
                "line": {"shape": "hvh", "color": BASELINE},
                "name": "baseline",
                "x": centres,
                "y": [c / n_base for c in hist["baseline_counts"]],
                "fill": "tozeroy",
            },
            {
                "type": "scatter",
                "mode": "lines",
                "line": {"shape": "hvh", "color": CURRENT},
                "name": "current",
                "x": centres,
                "y": [c / n_cur for c in hist["current_counts"]],
                "fill": "tozeroy",
            },
        ],
        "layout": layout,
    }


def _categorical(result: dict[str, Any]) -> dict[str, Any] | None:
    categories = result.get("categories") or []
    if not categories:
        return None
    names = [c["category"] for c in categories][:15]
    layout = {
        **LAYOUT,
        "xaxis": {"type": "category", "title": {"text": result["signal"]}},
        "yaxis": {"title": {"text": "share"}, "tickformat": ".0%", "range": [0, 1.05]},
    }
    return {
        "data": [
            {
                "type": "bar",
                "name": "baseline",
                "x": names,
                "y": [c["baseline_share"] for c in categories][:15],
                "marker": {"color": BASELINE},
            },
            {
                "type": "bar",
                "name": "current",
                "x": names,
                "y": [c["current_share"] for c in categories][:15],
                "marker": {"color": CURRENT},
            },
        ],
        "layout": layout,
    }


def rate_axis(peak: float) -> dict[str, Any]:
    """A rate axis from 0 to a little above the larger rate (drift and canary pages): zero rates get 0…1 %, not
    Plotly's −1…1 default, and small rates get the decimals they need (".2%" below 1 %)."""
    top = max(peak * 1.25, 0.01)
    return {"range": [0, min(top, 1.0)], "tickformat": ".2%" if top <= 0.02 else ".1%" if top <= 0.2 else ".0%"}


def _rate(result: dict[str, Any]) -> dict[str, Any] | None:
    before, after = result.get("baseline_rate"), result.get("current_rate")
    if before is None or after is None:
        return None
    layout = {
        **LAYOUT,
        "showlegend": False,
        "yaxis": {"title": {"text": result["signal"]}, **rate_axis(max(before, after))},
    }
    return {
        "data": [
            {
                "type": "bar",
                "name": result["signal"],
                "x": ["baseline", "current"],
                "y": [before, after],
                "text": [f"{before:.2%}", f"{after:.2%}"],
                "textposition": "outside",
                "marker": {"color": [BASELINE, CURRENT]},
            }
        ],
        "layout": layout,
    }


def drift_figures(results: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """One figure per signal that has something to draw, keyed by its position in ``results``."""
    figures = {}
    for index, result in enumerate(results):
        figure = {"numeric": _numeric, "categorical": _categorical, "rate": _rate}.get(result["kind"], lambda r: None)(
            result
        )
        if figure is not None:
            figures[str(index)] = figure
    return figures
