"""Canary results → Plotly figures (no ORM): both cohorts' distributions side by side, in the drift page's
colours (baseline grey, canary blue)."""

from __future__ import annotations

import itertools
from typing import Any

from evals.charts import BASELINE, CURRENT, LAYOUT, rate_axis


def _numeric(signal: dict[str, Any]) -> dict[str, Any] | None:
    hist = signal.get("histogram")
    if not hist:
        return None
    edges = hist["edges"]
    centres = [(a * b) ** 0.5 if hist["log_scale"] and a > 0 else (a + b) / 2 for a, b in itertools.pairwise(edges)]
    title = f"{signal['label']} ({signal['unit']})" if signal["unit"] else signal["label"]
    traces = []
    for name, colour, counts, n in (
        ("baseline", BASELINE, hist["baseline_counts"], signal["n_baseline"]),
        ("canary", CURRENT, hist["canary_counts"], signal["n_canary"]),
    ):
        traces.append(
            {
                "type": "scatter",
                "mode": "lines",
                "line": {"shape": "hvh", "color": colour},
                "name": name,
                "x": centres,
                "y": [c / max(n, 1) for c in counts],
                "fill": "tozeroy",
            }
        )
    layout = {
        **LAYOUT,
        "xaxis": {"title": {"text": title}, "type": "log" if hist["log_scale"] else "linear"},
        "yaxis": {"title": {"text": "share of traces"}, "tickformat": ".0%"},
    }
    return {"data": traces, "layout": layout}


def _rate(signal: dict[str, Any]) -> dict[str, Any] | None:
    if signal["baseline"] is None or signal["canary"] is None:
        return None
    layout = {
        **LAYOUT,
        "yaxis": {"title": {"text": signal["label"]}, **rate_axis(max(signal["baseline"], signal["canary"]))},
    }
    bars = {
        "type": "bar",
        "x": ["baseline", "canary"],
        "y": [signal["baseline"], signal["canary"]],
        "marker": {"color": [BASELINE, CURRENT]},
    }
    return {"data": [bars], "layout": layout}


def canary_figures(signals: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """One figure per signal that has data, keyed by its position in ``signals``."""
    figures = {}
    for index, signal in enumerate(signals):
        figure = _numeric(signal) if signal["kind"] == "numeric" else _rate(signal)
        if figure is not None:
            figures[str(index)] = figure
    return figures
