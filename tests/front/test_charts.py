"""Charts and drift in words: the summary sentence from real drift results, tick labels that never repeat, axes
that fit the data, every series named, sample counts beside percentiles, SLO burn panels and the budget forecast.
Pure functions first (no database), then the pages with Django's test client."""

from __future__ import annotations

import itertools
import json
import random
import re
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.test import Client
from django.utils import timezone

from evals.charts import drift_figures
from evals.drift import stats
from evals.drift.runs import drift_run_create, drift_run_execute
from evals.drift.summary import drift_changes, headline
from evals.models import DriftRun
from rollups.charts import cost_bars, duration_axis, money_axis, nice_ticks
from slos import burn
from slos.charts import burn_figure, exhaustion_forecast
from slos.selectors import BurnPanel, SloDetail
from tests.conftest import PASSWORD, Tenant
from tests.drift_data import batch, send
from tests.slo_data import T0, at, create_slo, ingest, make_trace, recompute


def row(signal: str, result: stats.DriftResult) -> dict[str, Any]:
    """A drift result as a run stores it."""
    return {"signal": signal, **result.to_dict()}


def lengths(rng: random.Random, centre: float, n: int = 400) -> list[float]:
    return [rng.gauss(centre, centre * 0.1) for _ in range(n)]


# --- drift in words ------------------------------------------------------------------------------------------


def test_each_kind_of_drift_is_said_in_the_units_people_use() -> None:
    rng = random.Random(1)
    longer = row("answer length (output tokens)", stats.numeric_drift(lengths(rng, 100), lengths(rng, 138)))
    grounding = row("failure rate: grounding", stats.rate_drift(40, 400, 80, 400))
    model = row("model", stats.categorical_drift(["gpt-4o-mini"] * 300, ["gpt-4o-mini"] * 100 + ["haiku"] * 200))
    faster = row("latency (ms)", stats.numeric_drift(lengths(rng, 1000), lengths(rng, 750)))
    errors = row("error rate", stats.rate_drift(4, 400, 40, 400))
    texts = {c.signal: c.text for c in drift_changes([longer, grounding, model, faster, errors])}
    median_change = round((longer["current_median"] / longer["baseline_median"] - 1) * 100)
    assert 33 <= median_change <= 43
    assert texts["answer length (output tokens)"] == f"answers got {median_change} % longer"
    assert texts["failure rate: grounding"] == "grounding passes fell 10 points (90 % → 80 %)"
    assert texts["model"] == "model changed to haiku (67 % of traces, new)"
    assert re.fullmatch(r"traces got 2\d % faster", texts["latency (ms)"])
    assert texts["error rate"] == "error rate rose from 1.0 % to 10.0 %"


def test_changes_are_ranked_by_effect_and_only_drifted_signals_count() -> None:
    rng = random.Random(2)
    big = row("tokens", stats.numeric_drift(lengths(rng, 100), lengths(rng, 200)))
    small = row("failure rate: pii", stats.rate_drift(20, 1000, 60, 1000))
    steady = row("latency (ms)", stats.numeric_drift(lengths(rng, 500), lengths(rng, 500)))
    assert (big["verdict"], small["verdict"], steady["verdict"]) == ("drift", "drift", "no_drift")
    changes = drift_changes([small, steady, big])
    assert [c.signal for c in changes] == ["tokens", "failure rate: pii"]
    assert changes[0].strength > changes[1].strength > 1
    assert [c.index for c in changes] == [2, 0]  # where each signal's statistics are


def test_headline_puts_the_strongest_changes_in_one_sentence() -> None:
    rng = random.Random(3)
    rows = [
        row("answer length (output tokens)", stats.numeric_drift(lengths(rng, 100), lengths(rng, 160))),
        row("failure rate: grounding", stats.rate_drift(40, 400, 80, 400)),
        row("model", stats.categorical_drift(["a"] * 300, ["a"] * 150 + ["b"] * 150)),
        row("error rate", stats.rate_drift(4, 400, 30, 400)),
    ]
    changes = drift_changes(rows)
    sentence = headline(changes, since="Tuesday 1 Dec 14:00 UTC")
    first, second, third = (c.text for c in changes[:3])
    assert sentence == (
        f"{first[0].upper()}{first[1:]} and {second} since Tuesday 1 Dec 14:00 UTC; {third}; 1 more change below."
    )
    assert headline([], since="Tuesday") == ""


# --- axes and ticks ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("low", "high"), [(0.00005, 0.00031), (0.0001, 0.00012), (0.0, 0.0047), (0.2, 3.7), (0.0, 1234.0), (5.0, 5.0)]
)
def test_money_ticks_are_round_cover_the_data_and_never_repeat(low: float, high: float) -> None:
    axis = money_axis(low, high)
    labels, values = axis["ticktext"], axis["tickvals"]
    assert len(set(labels)) == len(labels) >= 2, labels
    assert values[0] <= low and values[-1] >= high
    assert all(label.startswith("$") for label in labels)
    assert all(label == "$0" for value, label in zip(values, labels, strict=True) if value == 0)
    steps = {round(b - a, 12) for a, b in itertools.pairwise(values)}
    assert len(steps) == 1
    assert f"{steps.pop():e}"[0] in "125"  # 1, 2 or 5 times a power of ten


def test_money_ticks_of_the_cost_histogram_that_used_to_repeat() -> None:
    assert money_axis(0.00005, 0.00034)["ticktext"] == ["$0", "$0.0001", "$0.0002", "$0.0003", "$0.0004"]
    assert money_axis(0.00011, 0.00019)["ticktext"] == ["$0.00010", "$0.00012", "$0.00014", "$0.00016", "$0.00018",
                                                         "$0.00020"]  # fmt: skip


def test_cost_histogram_is_binned_on_the_server_over_the_money_axis() -> None:
    costs = [0.000111] * 3 + [0.000191]
    axis = money_axis(min(costs), max(costs))  # $0.00010 to $0.00020: 40 bins of $0.0000025
    (bars,) = cost_bars(costs, axis["range"])
    assert len(bars["y"]) == 40 and sum(bars["y"]) == 4
    assert bars["y"][4] == 3 and bars["y"][36] == 1
    assert bars["customdata"][4] == ["$0.0001100", "$0.0001125"]
    assert bars["x"][4] == pytest.approx(0.00011125)


DURATIONS = [(850.0, "ms", "1000 ms"), (1900.0, "s", "2.0 s"), (7400.0, "s", "8 s"), (300_000.0, "min", "5 min")]


@pytest.mark.parametrize(("peak", "unit", "last"), DURATIONS)
def test_duration_ticks_use_the_unit_of_the_peak(peak: float, unit: str, last: str) -> None:
    axis = duration_axis(peak)
    assert axis["ticktext"][-1] == last
    assert all(t.endswith(f" {unit}") for t in axis["ticktext"])
    assert len(set(axis["ticktext"])) == len(axis["ticktext"])
    assert axis["range"] == [0, axis["tickvals"][-1]] and axis["tickvals"][-1] >= peak


def test_nice_ticks_steps() -> None:
    assert nice_ticks(0, 10) == ([0, 2, 4, 6, 8, 10], 2)
    assert nice_ticks(0, 0.0047)[1] == 0.001


def test_zero_rates_get_an_axis_from_zero_not_minus_one() -> None:
    figures = drift_figures([row("failure rate: secrets", stats.rate_drift(0, 300, 0, 300)),
                             row("error rate", stats.rate_drift(30, 300, 60, 300))])  # fmt: skip
    zero, errors = figures["0"]["layout"]["yaxis"], figures["1"]["layout"]["yaxis"]
    assert zero["range"] == [0, 0.01] and zero["tickformat"] == ".2%"
    assert errors["range"][0] == 0 and 0.2 <= errors["range"][1] <= 0.3
    assert figures["0"]["data"][0]["name"] == "failure rate: secrets"


def test_a_constant_signal_is_drawn_as_bars_at_its_value() -> None:
    figure = drift_figures([row("score: secrets", stats.numeric_drift([0.0] * 100, [0.0] * 80))])["0"]
    assert [trace["type"] for trace in figure["data"]] == ["bar", "bar"]
    assert figure["data"][0]["x"] == ["0"] and figure["data"][1]["y"] == [1.0]


# --- SLO charts ----------------------------------------------------------------------------------------------


def panel(long: list[float | None], short: list[float | None], fired: list[bool]) -> BurnPanel:
    rule = burn.AlertRule.parse("page", "14.4", "1h", "5m")
    times = [T0 + timedelta(minutes=5 * i) for i in range(len(long))]
    return BurnPanel(rule=rule, firing=False, times=times, long=long, short=short, fired=fired)


def test_burn_panel_draws_the_short_window_where_it_decides_and_fits_the_long_one() -> None:
    p = panel(long=[2.0, 20.0, 16.0, 3.0], short=[60.0, 30.0, 10.0, 40.0], fired=[False, True, False, False])
    figure = burn_figure(p, [t.isoformat() for t in p.times])
    by_name = {trace["name"]: trace for trace in figure["data"]}
    assert by_name["1h window"]["y"] == [2.0, 20.0, 16.0, 3.0]
    assert by_name["5m window (while 1h is above)"]["y"] == [None, 30.0, 10.0, None]
    assert by_name["both above: fires"]["y"][1] and by_name["both above: fires"]["y"][0] is None
    top = figure["layout"]["yaxis"]["range"][1]
    assert top == pytest.approx(23.0)  # the long window's peak × 1.15, not the short window's 60
    assert any("peaks at 30" in note["text"] for note in figure["layout"]["annotations"])
    assert figure["layout"]["shapes"][0]["y0"] == 14.4


def detail_with(budget: list[float | None], exhaustion: timedelta | None) -> SloDetail:
    times = [T0 + timedelta(hours=i) for i in range(len(budget))]
    return SloDetail(summary=None, range_key="1d", times=times, sli=[None] * len(budget), budget=budget,  # type: ignore[arg-type]
                     panels=[], incidents=[], alert_events=[], exhaustion=exhaustion, exhaustion_basis="1h")  # fmt: skip


def test_budget_forecast_reaches_zero_when_it_runs_out_within_the_shown_range() -> None:
    line, note = exhaustion_forecast(detail_with([0.9, 0.7, 0.5, 0.3, 0.2], timedelta(hours=1))) or ({}, {})
    assert line["y"] == [0.2, 0.0]
    assert line["x"] == [(T0 + timedelta(hours=4)).isoformat(), (T0 + timedelta(hours=5)).isoformat()]
    assert line["name"] == "forecast at the last 1h's burn rate" and note["text"] == "empty in 1h 0m"


def test_budget_forecast_stops_at_half_the_range_when_exhaustion_is_far() -> None:
    line, note = exhaustion_forecast(detail_with([1.0, 0.9, 0.8, 0.8, 0.8], timedelta(days=8))) or ({}, {})
    assert line["x"][1] == (T0 + timedelta(hours=6)).isoformat()  # 4 h shown: 2 h ahead
    assert line["y"][1] == pytest.approx(0.8 * (1 - 2 / (8 * 24)))
    assert note["text"] == "empty in 8d 0h"
    assert exhaustion_forecast(detail_with([0.5, 0.4], None)) is None  # nothing burns
    assert exhaustion_forecast(detail_with([0.5, -0.1], timedelta(0))) is None  # already spent


# --- pages ---------------------------------------------------------------------------------------------------


def figures_of(html: str) -> dict[str, Any]:
    match = re.search(r'<script id="figures" type="application/json">(.*?)</script>', html, re.S)
    assert match
    data: dict[str, Any] = json.loads(match[1])
    return data


@pytest.mark.django_db
def test_drift_page_opens_with_the_summary_and_keeps_statistics_one_click_away(client: Client, tenant: Tenant) -> None:
    rng = random.Random(5)
    now = timezone.now()
    send(client, tenant, batch(rng, 300, now - timedelta(days=8), timedelta(days=6), False, "gpt-4o-mini")
         + batch(rng, 150, now - timedelta(hours=20), timedelta(hours=18), True, "<b>haiku</b>"))  # fmt: skip
    run = drift_run_execute(run_id=drift_run_create(project=tenant.project, service="bot", now=now).pk)
    assert client.login(username="alice", password=PASSWORD)
    html = client.get("/p/acme/drift/", {"service": "bot"}).content.decode()
    summary = html.split('class="card drift-summary"')[1].split("</section>")[0]
    day = run.current_since
    assert f"since {day:%A} {day.day} {day:%b %H:%M} UTC" in summary
    assert re.search(r"Traces got \d+ % slower", summary), summary
    assert "model changed to &lt;b&gt;haiku&lt;/b&gt; (100 % of traces, new)" in summary
    assert "<b>haiku</b>" not in html
    # Each change opens its statistics; the other signals' statistics sit in one closed <details>.
    assert summary.count('<details class="drift-change">') == sum(r["verdict"] == "drift" for r in run.results)
    others = html.split('<details class="drift-stats">')[1]
    assert others.count('class="card drift-card') == sum(r["verdict"] != "drift" for r in run.results)
    assert html.index("drift-summary") < html.index("drift-stats")


@pytest.mark.django_db
def test_drift_page_says_when_nothing_drifted(client: Client, tenant: Tenant) -> None:
    rng = random.Random(6)
    now = timezone.now()
    send(client, tenant, batch(rng, 300, now - timedelta(days=8), timedelta(days=6), False, "m")
         + batch(rng, 150, now - timedelta(hours=20), timedelta(hours=18), False, "m"))  # fmt: skip
    drift_run_execute(run_id=drift_run_create(project=tenant.project, service="bot", now=now).pk)
    assert client.login(username="alice", password=PASSWORD)
    html = client.get("/p/acme/drift/", {"service": "bot"}).content.decode()
    run = DriftRun.objects.get()
    steady = sum(r["verdict"] == "no_drift" for r in run.results)
    too_few = sum(r["verdict"] == "insufficient_data" for r in run.results)
    assert steady > 5 and too_few == 0
    assert f"Nothing drifted: {steady} signals look like the baseline." in html


@pytest.mark.django_db
def test_service_page_latency_has_sample_counts_and_every_link_carries_the_range(
    client: Client, tenant: Tenant
) -> None:
    # 3 traces in minute 0, 1 in minute 1, of one service; a custom 10-minute range around them.
    ingest(tenant, [make_trace(0, duration_ms=d) for d in (100, 200, 3000)] + [make_trace(1, duration_ms=150)])
    recompute()
    assert client.login(username="alice", password=PASSWORD)
    since, until = T0.isoformat(), (T0 + timedelta(minutes=10)).isoformat()
    response = client.get(
        "/p/acme/service/", {"name": "support-bot", "range": "custom", "since": since, "until": until}
    )
    html = response.content.decode()
    figures = figures_of(html)
    latency = figures["latency"]
    assert "Latency of 4 traces" in latency["layout"]["title"]["text"]
    p95 = next(t for t in latency["data"] if t["name"] == "p95")
    assert p95["customdata"][:3] == [3, 1, 0] and "n=%{customdata" in p95["hovertemplate"]
    assert latency["layout"]["yaxis"]["ticktext"][-1].endswith(" s")  # p99 near 3 s: seconds, not "3000 ms"
    assert all(f["layout"]["showlegend"] for f in figures.values())
    assert all(t.get("name") for f in figures.values() for t in f["data"])
    assert len(set(figures["cost_distribution"]["layout"]["xaxis"]["ticktext"])) == len(
        figures["cost_distribution"]["layout"]["xaxis"]["ticktext"]
    )
    # Every trace link of the page shows the page's range (a drag on a chart changes since/until and reloads).
    links = re.findall(r'href="(/p/acme/traces/\?[^"]+)"', html)
    assert links
    for link in links:
        query = parse_qs(urlsplit(link.replace("&amp;", "&")).query)
        assert query["since"] == [since] and query["until"] == [until], link
    # The trace list reads those links as given ("+00:00" survives the URL).
    listing = client.get(links[0].replace("&amp;", "&"))
    assert listing.status_code == 200 and listing.context["form"].is_valid()


@pytest.mark.django_db
def test_slo_page_burn_panels_and_traces_link(client: Client, tenant: Tenant) -> None:
    good = ingest(tenant, [make_trace(m) for m in range(30) for _ in range(2)])
    bad = ingest(tenant, [make_trace(m, status="error") for m in (20, 21, 22)])
    assert len(good) == 60 and len(bad) == 3
    recompute()
    slo = create_slo(tenant.project)
    from slos import services

    services.sli_history_rebuild(slo_id=slo.pk, now=at(29))
    assert client.login(username="alice", password=PASSWORD)
    html = client.get(f"/p/acme/slos/{slo.pk}/", {"range": "1d"}).content.decode()
    figures = figures_of(html)
    burn0 = {t["name"]: t for t in figures["burn0"]["data"]}
    assert set(burn0) >= {"10m window", "2m window (while 10m is above)"}
    link = re.search(r'<a class="button" data-range-link href="([^"]+)"', html)
    assert link and "status=error" in link[1] and "since=" in link[1]
    assert 'data-zoom="sync"' in html
