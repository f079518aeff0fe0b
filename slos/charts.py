"""SLO page figures (selector output → Plotly dicts, no ORM): the SLI against its objective, the error budget
burn-down, and one burn-rate panel per alert rule with both windows and the threshold line."""

from __future__ import annotations

from typing import Any

from rollups.charts import COLORS, LAYOUT
from slos import burn
from slos.models import SLO
from slos.selectors import RANGES, BurnPanel, SloDetail
from slos.templatetags.slo_format import span

LONG_COLOR, SHORT_COLOR, LINE_COLOR, FIRED_COLOR = "#5aa9ff", "#f0883e", "#f85149", "rgba(248,81,73,.18)"


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


def exhaustion_forecast(detail: SloDetail) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The budget line carried on from now at the current burn rate (the page rule's long window): down to zero
    when that comes within half the shown range, else as far as that, with a note saying when it runs out."""
    last = detail.budget[-1] if detail.budget else None
    if not detail.times or last is None or last <= 0 or detail.exhaustion is None:
        return None
    now = detail.times[-1]
    horizon = min(detail.exhaustion, (now - detail.times[0]) / 2)
    end = last * (1 - horizon / detail.exhaustion) if detail.exhaustion else 0.0
    line = {
        "type": "scatter",
        "mode": "lines",
        "name": f"forecast at the last {detail.exhaustion_basis}'s burn rate",
        "x": [now.isoformat(), (now + horizon).isoformat()],
        "y": [last, end],
        "line": {"color": LINE_COLOR, "width": 1.5, "dash": "dot"},
        "hovertemplate": "%{y:.1%} left at %{x}<extra>forecast</extra>",
    }
    note = {
        "x": (now + horizon).isoformat(),
        "y": end,
        "xref": "x",
        "yref": "y",
        "text": f"empty in {span(detail.exhaustion)}",
        "showarrow": False,
        "xanchor": "right",
        "yanchor": "bottom",
        "font": {"size": 10, "color": LINE_COLOR},
    }
    return line, note


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
    forecast = exhaustion_forecast(detail)
    if forecast:
        figures["budget"]["data"].append(forecast[0])
        budget_layout["annotations"].append(forecast[1])

    for index, panel in enumerate(detail.panels):
        figures[f"burn{index}"] = burn_figure(panel, times)
    return figures


def burn_figure(panel: BurnPanel, times: list[str]) -> dict[str, Any]:
    """The rule's two windows against its threshold, shaded red where the rule fired (both windows above it). The
    short window is drawn where it decides (while the long window is above the threshold); the axis fits the long
    window and the threshold, and a short-window peak above it is named in a note (and shown on hover)."""
    rule = panel.rule
    threshold = float(rule.burn_rate_threshold)
    shown = burn.format_number(rule.burn_rate_threshold)
    long_name, short_name = burn.format_window(rule.long_window), burn.format_window(rule.short_window)
    title = f"{rule.severity}: burn rate over {long_name} and {short_name} (fires when both exceed {shown})"
    layout = _layout(title, "burn rate (× budget)", height=200)
    # The short window only decides while the long one is above the threshold (it stops a recovered burst from
    # paging, and ends the alert fast); elsewhere it is a few events wide and a wall of spikes on quiet services.
    short = [s if lg is not None and lg > threshold else None for lg, s in zip(panel.long, panel.short, strict=True)]
    short_peak = max((v for v in short if v is not None), default=0.0)
    long_peak = max((v for v in panel.long if v is not None), default=0.0)
    top = max(threshold * 1.5, long_peak * 1.15)
    layout["yaxis"] = {**layout["yaxis"], "range": [0, top]}
    shape, note = _hline(threshold, LINE_COLOR, f"threshold {shown}")
    layout["shapes"], layout["annotations"] = [shape], [note]
    if short_peak > top:
        layout["annotations"].append(
            {
                "xref": "paper",
                "yref": "paper",
                "x": 0,
                "y": 1,
                "xanchor": "left",
                "yanchor": "top",
                "showarrow": False,
                "font": {"size": 10, "color": SHORT_COLOR},
                "text": f"{short_name} window peaks at {short_peak:.3g}, above the axis",
            }
        )
    data: list[dict[str, Any]] = []
    if any(panel.fired):
        data.append(
            {
                "type": "bar",
                "name": "both above: fires",
                "x": times,
                "y": [top if f else None for f in panel.fired],
                "marker": {"color": FIRED_COLOR, "line": {"width": 0}},
                "hoverinfo": "skip",
            }
        )
        layout["bargap"] = 0
    data += [
        {
            "type": "scatter",
            "mode": "lines",
            "name": f"{long_name} window",
            "x": times,
            "y": panel.long,
            "line": {"color": LONG_COLOR, "width": 2},
            "hovertemplate": f"{long_name}: %{{y:.3g}}×<extra></extra>",
        },
        {
            "type": "scatter",
            "mode": "lines",
            "name": f"{short_name} window (while {long_name} is above)",
            "x": times,
            "y": short,
            "line": {"color": SHORT_COLOR, "width": 1, "shape": "hv"},
            "opacity": 0.55,
            "hovertemplate": f"{short_name}: %{{y:.3g}}×<extra></extra>",
        },
    ]
    return {"data": data, "layout": layout}
