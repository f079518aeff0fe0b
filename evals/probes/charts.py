"""Probe run history → Plotly figure dicts (no ORM): pass rate per run, and latency and cost per run."""

from __future__ import annotations

from typing import Any

from evals.models import ProbeRun
from traces.templatetags.trace_format import USD_AXIS_FORMAT

LAYOUT: dict[str, Any] = {
    "template": "plotly_dark",
    "paper_bgcolor": "rgba(0,0,0,0)",
    "plot_bgcolor": "rgba(0,0,0,0)",
    "margin": {"l": 56, "r": 56, "t": 32, "b": 36},
    "height": 230,
    "font": {"size": 11, "color": "#d8dee6"},
    "legend": {"orientation": "h", "y": 1.18, "x": 0},
    "hovermode": "x unified",
    "xaxis": {"type": "date", "gridcolor": "#2a323d"},
}
PASS, FLIPPED, LATENCY, COST = "#a371f7", "#f85149", "#d29922", "#3fb950"


def probe_history_figures(runs: list[ProbeRun]) -> list[dict[str, Any]]:
    """Finished runs that asked at least one item; x is the run's start."""
    runs = [r for r in runs if r.done and r.is_finished]
    if not runs:
        return []
    x = [(r.started_at or r.created_at).isoformat() for r in runs]
    labels = [f"run {r.pk}: {r.passed}/{r.done} passed, {r.flipped} flipped, {r.errors} errors" for r in runs]
    pass_rate = {
        "data": [
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": "pass rate",
                "x": x,
                "text": labels,
                "y": [r.pass_rate for r in runs],
                "line": {"color": PASS},
                "hovertemplate": "%{y:.0%} · %{text}<extra></extra>",
            },
            {
                "type": "bar",
                "name": "flipped items",
                "x": x,
                "y": [r.flipped for r in runs],
                "yaxis": "y2",
                "marker": {"color": FLIPPED},
                "opacity": 0.6,
            },
        ],
        "layout": {
            **LAYOUT,
            "title": {"text": "Pass rate per run", "x": 0, "font": {"size": 13}},
            "yaxis": {"title": {"text": "passed"}, "tickformat": ".0%", "range": [0, 1.05], "gridcolor": "#2a323d"},
            "yaxis2": {
                "title": {"text": "flipped"},
                "overlaying": "y",
                "side": "right",
                "rangemode": "tozero",
                "showgrid": False,
            },
        },
    }
    costs = [float(r.cost) if r.cost is not None else None for r in runs]
    latency_cost = {
        "data": [
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": "mean latency (ms)",
                "x": x,
                "y": [r.latency_ms_avg for r in runs],
                "line": {"color": LATENCY},
            },
            # An app endpoint that reports no tokens has no cost: no empty bars on a meaningless axis then.
            *(
                [
                    {
                        "type": "bar",
                        "name": "cost (USD)",
                        "x": x,
                        "y": costs,
                        "yaxis": "y2",
                        "marker": {"color": COST},
                        "opacity": 0.6,
                    }
                ]
                if any(c is not None for c in costs)
                else []
            ),
        ],
        "layout": {
            **LAYOUT,
            "title": {"text": "Latency and cost per run", "x": 0, "font": {"size": 13}},
            "yaxis": {"title": {"text": "ms per item"}, "rangemode": "tozero", "gridcolor": "#2a323d"},
            "yaxis2": {
                "title": {"text": "USD"},
                "overlaying": "y",
                "side": "right",
                "rangemode": "tozero",
                "showgrid": False,
                "tickformat": USD_AXIS_FORMAT,
            },
        },
    }
    return [pass_rate, latency_cost]
