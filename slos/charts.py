"""SLO page figures (selector output → Plotly dicts, no ORM): the SLI against its objective, the error budget
burn-down, and one burn-rate panel per alert rule with both windows and the threshold line."""

from __future__ import annotations

from typing import Any

from rollups.charts import COLORS, LAYOUT
from slos import burn
from slos.models import SLO
from slos.selectors import RANGES, SloDetail

LONG_COLOR, SHORT_COLOR, LINE_COLOR = "#5aa9ff", "#f0883e", "#f85149"


def _layout(title: str, y_title: str, *, y_format: str = "", height: int = 230) -> dict[str, Any]:
    return {
        **LAYOUT,
        "height": height,
        "title": {"text": title, "x": 0, "font": {"size": 13}},
        "yaxis": {**LAYOUT["yaxis"], "title": {"text": y_title}, "tickformat": y_format},
    }


def _hline(y: float, color: str, text: str) -> tuple[dict[str, Any], dict[str, Any]]:
    shape = {
        "type": "line",
        "xref": "paper",
        "x0": 0,
        "x1": 1,
        "y0": y,
        "y1": y,
        "line": {"color": color, "dash": "dash", "width": 1},
    }
    note = {
        "xref": "paper",
        "x": 1,
        "y": y,
        "text": text,
        "showarrow": False,
        "xanchor": "right",
        "yanchor": "bottom",
        "font": {"size": 10, "color": color},
    }
    return shape, note


def slo_figures(detail: SloDetail, slo: SLO) -> dict[str, dict[str, Any]]:
    times = [t.isoformat() for t in detail.times]
    objective = float(slo.objective)
    figures: dict[str, dict[str, Any]] = {}

    trailing = burn.format_window(RANGES[detail.range_key][2])
    sli_layout = _layout(f"SLI over the trailing {trailing} (share of good events)", "good / valid", y_format=".2%")
    present = [v for v in detail.sli if v is not None]
    low = min([*present, objective]) if present else objective
    sli_layout["yaxis"] = {
        **sli_layout["yaxis"],
        "rangemode": "normal",
        "range": [max(0.0, low - (1 - low) * 0.5), 1.0],
    }
    shape, note = _hline(objective, LINE_COLOR, f"objective {burn.format_percent(slo.objective)}")
    sli_layout["shapes"], sli_layout["annotations"] = [shape], [note]
    figures["sli"] = {
        "data": [
            {
                "type": "scatter",
                "mode": "lines",
                "name": "SLI",
                "x": times,
                "y": detail.sli,
                "line": {"color": COLORS["quality"], "width": 1.5},
                "connectgaps": False,
            }
        ],
        "layout": sli_layout,
    }

    budget_layout = _layout(
        f"Error budget remaining ({slo.window_days}-day window, from its start)", "budget left", y_format=".0%"
    )
    budget_layout["yaxis"] = {**budget_layout["yaxis"], "rangemode": "normal"}
    shape, note = _hline(0.0, LINE_COLOR, "exhausted")
    budget_layout["shapes"], budget_layout["annotations"] = [shape], [note]
    # Budget left is shaded green above zero and red below it (overspent), the line drawn over both.
    left = [None if v is None else max(v, 0.0) for v in detail.budget]
    overspent = [None if v is None else min(v, 0.0) for v in detail.budget]
    shade = {"type": "scatter", "mode": "none", "x": times, "fill": "tozeroy", "hoverinfo": "skip", "showlegend": False}
    figures["budget"] = {
        "data": [
            {**shade, "name": "budget left", "y": left, "fillcolor": "rgba(63,185,80,.12)"},
            {**shade, "name": "overspent", "y": overspent, "fillcolor": "rgba(248,81,73,.25)"},
            {
                "type": "scatter",
                "mode": "lines",
                "name": "budget remaining",
                "x": times,
                "y": detail.budget,
                "line": {"color": COLORS["cost"], "width": 1.5},
            },
        ],
        "layout": budget_layout,
    }

    for index, panel in enumerate(detail.panels):
        rule = panel.rule
        threshold = float(rule.burn_rate_threshold)
        shown = burn.format_number(rule.burn_rate_threshold)
        long_name, short_name = burn.format_window(rule.long_window), burn.format_window(rule.short_window)
        title = f"{rule.severity}: burn rate over {long_name} and {short_name} (fires above {shown})"
        layout = _layout(title, "burn rate (× budget)", height=200)
        peak = max([v for v in panel.long + panel.short if v is not None] + [threshold])
        layout["yaxis"] = {**layout["yaxis"], "range": [0, peak * 1.15]}
        shape, note = _hline(threshold, LINE_COLOR, f"threshold {shown}")
        layout["shapes"], layout["annotations"] = [shape], [note]
        figures[f"burn{index}"] = {
            "data": [
                {
                    "type": "scatter",
                    "mode": "lines",
                    "name": f"{long_name} window",
                    "x": times,
                    "y": panel.long,
                    "line": {"color": LONG_COLOR, "width": 1.5},
                },
                {
                    "type": "scatter",
                    "mode": "lines",
                    "name": f"{short_name} window",
                    "x": times,
                    "y": panel.short,
                    "line": {"color": SHORT_COLOR, "width": 1},
                },
            ],
            "layout": layout,
        }
    return figures
