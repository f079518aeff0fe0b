"""Selector output → Plotly figure dicts (no ORM). One colour per signal everywhere; units on every axis;
every series named in a legend; every point carries the URL of the trace list filtered to its bucket, so a click
opens the traces behind it. Money and duration axes get computed ticks (Plotly's fixed formats repeat labels
such as "$0.0001 $0.0001" when the step is finer than the format)."""

from __future__ import annotations

import itertools
import math
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import numpy as np

from evals.signals import signal_of
from rollups.selectors import ServiceDetail

COLORS = {
    "traffic": "#5aa9ff",
    "errors": "#f85149",
    "p50": "#8591a0",
    "p95": "#d29922",
    "p99": "#f0883e",
    "quality": "#a371f7",
    "grounding": "#3fb9a0",
    "safety": "#db61a2",
    "runaway": "#e3a03f",
    "cost": "#3fb950",
    "tokens": "#5aa9ff",
}
PALETTE = ["#a371f7", "#3fb9a0", "#e3a03f", "#5aa9ff", "#db61a2", "#f0883e", "#8591a0", "#3fb950"]
LAYOUT: dict[str, Any] = {
    "template": "plotly_dark",
    "paper_bgcolor": "rgba(0,0,0,0)",
    "plot_bgcolor": "rgba(0,0,0,0)",
    "margin": {"l": 56, "r": 16, "t": 32, "b": 36},
    "height": 230,
    "font": {"size": 11, "color": "#d8dee6"},
    "legend": {"orientation": "h", "y": 1.18, "x": 0},
    "showlegend": True,
    "hovermode": "x unified",
    # Plotly's unified hover box is white under a transparent paper: light text on it was unreadable.
    "hoverlabel": {"bgcolor": "#1b222c", "bordercolor": "#3a4452", "font": {"color": "#d8dee6"}},
    # Dragging across a time chart picks a time range (the page's script applies it); the y axis stays put.
    "dragmode": "zoom",
    "xaxis": {"type": "date", "gridcolor": "#2a323d"},
    "yaxis": {"gridcolor": "#2a323d", "rangemode": "tozero", "fixedrange": True},
}
TICKS = 5


def nice_ticks(low: float, high: float, count: int = TICKS) -> tuple[list[float], float]:
    """Round tick values 1, 2 or 5 × 10^k apart from at or below ``low`` to at or above ``high``, and the step."""
    if high <= low:
        high = low + (abs(low) or 1.0)
    raw = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw * (1 - 1e-9))
    first = math.floor(low / step + 1e-9) * step
    ticks = [first]
    while ticks[-1] < high - step * 1e-9:
        ticks.append(first + len(ticks) * step)
    return [round(t, 12) for t in ticks], step


def _decimals(step: float) -> int:
    """Enough decimals that neighbouring ticks ``step`` apart read differently."""
    return max(0, -math.floor(math.log10(step) + 1e-9))


def money_axis(low: float, high: float) -> dict[str, Any]:
    """Tick values and labels for a USD axis: "$0 $0.00002 $0.00004", "$0.5 $1.0", "$10 $20"."""
    ticks, step = nice_ticks(low, high)
    places = _decimals(step)
    labels = [f"${t:,.{places}f}" if t else "$0" for t in ticks]
    return {"tickvals": ticks, "ticktext": labels, "range": [ticks[0], ticks[-1]]}


def duration_axis(high_ms: float) -> dict[str, Any]:
    """Tick values (in ms) and labels for a duration axis from 0, in the unit that suits the peak: ms, s or min."""
    scale, unit = (60_000, "min") if high_ms >= 120_000 else (1000, "s") if high_ms >= 1000 else (1, "ms")
    ticks, step = nice_ticks(0.0, high_ms / scale)
    places = _decimals(step)
    return {
        "tickvals": [t * scale for t in ticks],
        "ticktext": [f"{t:.{places}f} {unit}" for t in ticks],
        "range": [0, ticks[-1] * scale],
    }


def _link(base_url: str, step: timedelta, **extra: str) -> dict[str, Any]:
    """Where a click on a point goes: the trace list with these filters and the point's time bucket (the
    page's script adds since/until from the point's x and the step, so 720 points do not carry 720 URLs)."""
    return {"href": f"{base_url}?{urlencode(extra)}", "step_s": int(step.total_seconds())}


def _figure(
    title: str, traces: list[dict[str, Any]], y_title: str, changes: list[tuple[datetime, str, str]], y_format: str = ""
) -> dict[str, Any]:
    layout = {
        **LAYOUT,
        "title": {"text": title, "x": 0, "font": {"size": 13}},
        "yaxis": {**LAYOUT["yaxis"], "title": {"text": y_title}, "tickformat": y_format},
    }
    layout["shapes"] = [
        {
            "type": "line",
            "xref": "x",
            "yref": "paper",
            "x0": at.isoformat(),
            "x1": at.isoformat(),
            "y0": 0,
            "y1": 1,
            "line": {"color": "#8591a0", "dash": "dot", "width": 1},
        }
        for at, _, _ in changes
    ]
    layout["annotations"] = [
        {
            "x": at.isoformat(),
            "y": 1,
            "xref": "x",
            "yref": "paper",
            "text": f"{dim} {value}",
            "showarrow": False,
            "font": {"size": 10, "color": "#8591a0"},
            "xanchor": "left",
            "yanchor": "top",
        }
        for at, dim, value in changes
    ]
    return {"data": traces, "layout": layout}


COST_BINS = 40


def cost_bars(costs: list[float], money_range: list[float]) -> list[dict[str, Any]]:
    """The cost-per-request histogram binned here, 40 bins over the money axis's range: the page carries 40 bars,
    not every request's cost (20,000 numbers were a third of a 30-day service page). One cost shared by every
    request is one narrow bar, not the whole width."""
    low, high = money_range
    counts, edges = np.histogram(np.asarray(costs, dtype=float), bins=COST_BINS, range=(low, high))
    width = (high - low) / COST_BINS
    places = _decimals(width) + 1
    return [
        {
            "type": "bar",
            "name": "requests",
            "x": [float(e + width / 2) for e in edges[:-1]],
            "y": [int(c) for c in counts],
            "width": width,
            "customdata": [[f"${a:,.{places}f}", f"${b:,.{places}f}"] for a, b in itertools.pairwise(edges)],
            "marker": {"color": COLORS["cost"]},
            "hovertemplate": "%{customdata[0]}–%{customdata[1]}: %{y} requests<extra></extra>",
        }
    ]


def service_figures(detail: ServiceDetail, trace_list_url: str) -> dict[str, dict[str, Any]]:
    window, series, changes = detail.window, detail.series, detail.changes
    buckets = window.buckets()
    # Every time series of the page has a point per bucket, evenly spaced: Plotly places them from the first
    # bucket and the step (milliseconds on a date axis), so the page does not carry 720 dates for each series.
    x = {"x0": buckets[0].isoformat(), "dx": window.step.total_seconds() * 1000} if buckets else {"x": []}
    base = {"service": detail.service}
    links = _link(trace_list_url, window.step, **base)
    error_links = _link(trace_list_url, window.step, status="error", **base)
    samples = [series.traces.get(b, 0) for b in buckets]  # every trace lands in its bucket's latency histogram

    def line(name: str, y: list[Any], color: str, link: dict[str, Any], **extra: Any) -> dict[str, Any]:
        return {
            "type": "scatter",
            "mode": "lines+markers",
            "name": name,
            **x,
            "y": y,
            "meta": link,
            "line": {"color": color, "width": 2},
            "marker": {"size": 4},
            "connectgaps": False,
            **extra,
        }

    figures = {
        "traffic": _figure(
            "Traffic and errors",
            [
                {
                    "type": "bar",
                    "name": "traces",
                    **x,
                    "y": [series.traces.get(b, 0) for b in buckets],
                    "marker": {"color": COLORS["traffic"]},
                    "meta": links,
                },
                {
                    "type": "bar",
                    "name": "errors",
                    **x,
                    "y": [series.errors.get(b, 0) for b in buckets],
                    "marker": {"color": COLORS["errors"]},
                    "meta": error_links,
                },
            ],
            f"traces per {'minute' if window.step < timedelta(hours=1) else 'hour'}",
            changes,
        ),
        "latency": _figure(
            f"Latency of {series.traffic():,} traces (hover: n per point; p99 of fewer than 100 is near the max)",
            [
                line(
                    q,
                    [series.latency(v, b) for b in buckets],
                    COLORS[q],
                    links,
                    customdata=samples,
                    hovertemplate=f"{q} %{{y:,.0f}} ms (n=%{{customdata:,}})<extra></extra>",
                )
                for q, v in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))
            ],
            "latency",
            changes,
        ),
        "cost": _figure(
            "Spend by model",
            [
                {
                    "type": "bar",
                    "name": model or "(none)",
                    **x,
                    "y": [float(costs.get(b, 0)) for b in buckets],
                    "marker": {"color": PALETTE[i % len(PALETTE)]},
                    "meta": _link(trace_list_url, window.step, model=model, **base),
                    "hovertemplate": "%{fullData.name}: $%{y:.3~g}<extra></extra>",
                }
                for i, (model, costs) in enumerate(sorted(detail.cost_by_model.items()))
            ],
            "USD",
            changes,
        ),
        "tokens": _figure(
            "Tokens",
            [
                {
                    "type": "bar",
                    "name": "tokens",
                    **x,
                    "y": [series.tokens.get(b, 0) for b in buckets],
                    "marker": {"color": COLORS["tokens"]},
                    "meta": links,
                },
            ],
            "tokens",
            changes,
        ),
    }
    cost_x: dict[str, Any] = {**LAYOUT["xaxis"], "type": "linear", "title": {"text": "USD per request"}}
    bars: list[dict[str, Any]] = []
    if detail.request_costs:
        cost_x.update(money_axis(min(detail.request_costs), max(detail.request_costs)))
        bars = cost_bars(detail.request_costs, cost_x["range"])
    figures["cost_distribution"] = _figure("Cost per request", bars, "requests", [])
    figures["cost_distribution"]["layout"]["xaxis"] = cost_x
    figures["cost_distribution"]["layout"]["hovermode"] = "closest"
    figures["cost_distribution"]["layout"]["dragmode"] = False  # its x axis is money, not time
    latency_peak = max((series.latency(0.99, b) or 0 for b in buckets), default=0)
    if latency_peak:
        figures["latency"]["layout"]["yaxis"].update(duration_axis(latency_peak))
    spend_peak = max((sum(float(c.get(b, 0)) for c in detail.cost_by_model.values()) for b in buckets), default=0)
    if spend_peak:
        figures["cost"]["layout"]["yaxis"].update(money_axis(0.0, spend_peak))
    for figure in (figures["traffic"], figures["cost"]):
        figure["layout"]["barmode"] = "stack" if figure is figures["cost"] else "overlay"
    for signal in ("quality", "grounding", "safety"):
        names = sorted(n for n in series.total if signal_of(n) == signal)
        traces = [
            line(
                name,
                [
                    (series.good[name].get(b, 0) / series.total[name][b]) if series.total[name].get(b) else None
                    for b in buckets
                ],
                PALETTE[i % len(PALETTE)] if len(names) > 1 else COLORS[signal],
                _link(trace_list_url, window.step, failing=name, **base),
            )
            for i, name in enumerate(names)
        ]
        if signal == "safety" and any(series.safety_judged.values()):
            # The per-trace flag the overview counts and the "No safety flag" SLI judges, above its parts.
            flag_share = [series.safety_share(b) for b in buckets]
            traces.insert(0, line("no safety flag (any check)", flag_share, "#24292f", links))
        title = {
            "quality": "Quality: pass rate per evaluator",
            "grounding": "Grounding: supported answers",
            "safety": "Safety: traces without a flag, and each check's pass rate",
        }[signal]
        figures[signal] = _figure(title, traces, "pass rate", changes, ".0%")
        figures[signal]["layout"]["yaxis"]["range"] = [0, 1.05]
    return figures


def breakdown_rows(detail: ServiceDetail, dimension: str) -> list[dict[str, Any]]:
    """Every signal of each slice side by side (model, release, prompt version, route)."""
    rows = []
    for value, s in sorted(detail.breakdowns.get(dimension, {}).items(), key=lambda kv: -kv[1].traffic()):
        rows.append(
            {
                "value": value,
                "traffic": s.traffic(),
                "error_rate": s.error_rate(),
                "p95": s.latency(0.95),
                "quality": s.rate("quality"),
                "grounding": s.rate("grounding"),
                "safety_failures": s.safety_flags(),
                "cost_per_request": s.cost_per_request(),
                "spend": s.spend(),
            }
        )
    return rows


def sparkline(values: list[float | None], width: int = 90, height: int = 22) -> str:
    """SVG polyline points for a sparkline (numbers only, so safe to put in an attribute)."""
    present = [v for v in values if v is not None]
    if len(present) < 2:
        return ""
    low, high = min(present), max(present)
    span = (high - low) or 1.0
    step = width / max(len(values) - 1, 1)
    points = [
        f"{i * step:.1f},{height - 2 - (v - low) / span * (height - 4):.1f}"
        for i, v in enumerate(values)
        if v is not None
    ]
    return " ".join(points)
