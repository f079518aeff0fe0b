"""slos.triage: planted causes rank first, innocent values stay out, tiny samples stay quiet, the docstring's
worked example holds to the digit, and the order never depends on the input order.

Pure functions: no database is touched (the repository's conftest still wants DATABASE_URL). Every random
cohort comes from a numpy Generator with a fixed seed, so each test is deterministic.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
from scipy import stats

from evals.drift.stats import two_by_two_p_value
from slos.triage import Event, Suspect, changes_since_baseline, suspects, tally, what_changed

MODELS = ["gpt-4o-mini", "gpt-4o", "claude-sonnet-4"]
ROUTES = ["answer", "summarise", "search", "chat"]
TOOLS = ["get_weather", "search_hotels", "lookup_order", "send_email", "web_search"]
DOCS = [f"kb-{100 + i}" for i in range(8)]


def event(bad: bool, **values: str | set[str]) -> Event:
    return Event(bad=bad, values={k: frozenset({v} if isinstance(v, str) else v) for k, v in values.items()})


def cohort(
    g: np.random.Generator,
    n: int,
    *,
    v2_share: float = 0.0,
    bad_rate: float = 0.05,
    v2_bad_rate: float | None = None,
    tool_bad_rate: float | None = None,
    doc_bad_rate: float | None = None,
) -> list[Event]:
    """n traces of a RAG agent. Each trace: a release (v2 with probability v2_share), one model, a route,
    1–3 tools out of five, 3 documents out of eight. A trace fails with ``bad_rate`` unless a planted cause
    applies: release v2 (``v2_bad_rate``), the tool web_search (``tool_bad_rate``, the tool is on ~20% of
    traces) or the stale document kb-104 (``doc_bad_rate``)."""
    events = []
    for _ in range(n):
        release = "v2" if g.random() < v2_share else "v1"
        tools = {str(t) for t in g.choice(TOOLS[:4], size=int(g.integers(1, 4)), replace=False)}
        if g.random() < 0.2:
            tools.add("web_search")
        docs = {str(d) for d in g.choice(DOCS, size=3, replace=False)}
        rate = bad_rate
        if release == "v2" and v2_bad_rate is not None:
            rate = v2_bad_rate
        if "web_search" in tools and tool_bad_rate is not None:
            rate = tool_bad_rate
        if "kb-104" in docs and doc_bad_rate is not None:
            rate = doc_bad_rate
        events.append(
            event(
                bool(g.random() < rate),
                release=release,
                model=str(g.choice(MODELS)),
                prompt="answer v3",
                route=str(g.choice(ROUTES)),
                tool=tools,
                source=docs,
            )
        )
    return events


def keys(suspects: list[Suspect]) -> list[tuple[str, str]]:
    return [(s.dimension, s.value) for s in suspects]


# ------------------------------------------------------------------------------------------ worked example
def worked_example() -> list[Event]:
    """The module docstring's example: 100 traces, 20 bad; v2 on 20 (16 bad); m2 on the v2 traces and on 20
    v1 traces (1 bad)."""
    events = [event(i < 16, release="v2", model="m2") for i in range(20)]
    events += [event(i == 0, release="v1", model="m2") for i in range(20)]
    events += [event(i < 3, release="v1", model="m1") for i in range(60)]
    return events


def test_worked_example_from_the_docstring() -> None:
    v2, m2 = what_changed(worked_example(), [])
    # By hand: v2 bad_share 16/20 = 0.8, good_share 4/80 = 0.05, share of traffic 20/100 = 0.2,
    # expected bad with v2 = 20 × 0.2 = 4, explained = (16 − 4) / 20 = 0.6, lift = 0.8 / 0.05 = 16.
    assert (v2.dimension, v2.value) == ("release", "v2")
    assert (v2.bad_with, v2.bad_total, v2.good_with, v2.good_total) == (16, 20, 4, 80)
    assert (v2.bad_share, v2.good_share, v2.explained, v2.lift) == pytest.approx((0.8, 0.05, 0.6, 16.0))
    # m2: bad 17/20 = 0.85, good 23/80 = 0.2875, traffic 40/100, expected 8, explained (17 − 8) / 20 = 0.45.
    assert (m2.value, m2.bad_with, m2.good_with) == ("m2", 17, 23)
    assert (m2.bad_share, m2.good_share, m2.explained) == pytest.approx((0.85, 0.2875, 0.45))
    assert m2.lift == pytest.approx(0.85 / 0.2875)
    # The attributable fraction would tie them: (16 − 20 × 4/80) / 20 = (17 − 40 × 3/60) / 20 = 0.75.
    assert (16 - 20 * 4 / 80) / 20 == (17 - 40 * 3 / 60) / 20 == 0.75
    # Candidates are v1, v2, m1, m2 (m = 4). v2's table has an expected count of 20 × 20 / 100 = 4 < 5, so
    # Fisher; it has the smallest p-value, so Holm multiplies it by 4.
    assert v2.p_value == pytest.approx(4 * stats.fisher_exact([[16, 4], [4, 76]]).pvalue)
    assert v2.p_value < 1e-9
    # No baseline: nothing can be called new, and there is no baseline test.
    assert (v2.baseline_total, v2.baseline_share, v2.baseline_p_value, v2.new_since_baseline) == (0, 0.0, None, False)


def test_p_value_uses_fisher_for_small_counts_and_chi_square_otherwise() -> None:
    assert two_by_two_p_value(3, 1, 1, 3) == pytest.approx(stats.fisher_exact([[3, 1], [1, 3]]).pvalue)
    large = [[120, 380], [60, 440]]
    expected = stats.chi2_contingency(large, correction=False).pvalue
    assert two_by_two_p_value(120, 380, 60, 440) == pytest.approx(expected, rel=1e-9)
    # 5 traces with the value among 1,000: expected counts 2.5 < 5, so the exact test.
    assert two_by_two_p_value(5, 495, 0, 500) == pytest.approx(stats.fisher_exact([[5, 495], [0, 500]]).pvalue)
    assert two_by_two_p_value(0, 10, 0, 10) == 1.0  # nobody has the value: nothing to compare
    assert two_by_two_p_value(5, 0, 0, 0) == 1.0


# ------------------------------------------------------------------------------------------ planted causes
def test_bad_release_ranks_first_and_is_new_since_the_baseline() -> None:
    g = np.random.default_rng(1)
    incident = cohort(g, 2000, v2_share=0.2, v2_bad_rate=0.6)
    baseline = cohort(g, 2000)  # v1 only, 5% failing
    suspects = what_changed(incident, baseline)
    top = suspects[0]
    assert (top.dimension, top.value) == ("release", "v2")
    assert top.new_since_baseline and top.baseline_with == 0 and top.baseline_total == 2000
    assert top.baseline_p_value is not None and top.baseline_p_value < 1e-6
    assert top.bad_share > 0.6 and top.good_share < 0.15 and top.p_value < 1e-20
    # v1, the model and route drawn at random, and the prompt on every trace are not suspects.
    assert ("release", "v1") not in keys(suspects)
    assert not [s for s in suspects if s.dimension in ("model", "route", "prompt")]


def test_tool_used_by_most_failing_traces_ranks_first() -> None:
    g = np.random.default_rng(2)
    incident = cohort(g, 1500, tool_bad_rate=0.5)
    suspects = what_changed(incident, cohort(g, 1500))
    assert keys(suspects)[0] == ("tool", "web_search")
    top = suspects[0]
    assert top.bad_share > 0.6 and top.good_share < 0.2
    # web_search is on ~20% of traces before too: more common among failures, but not a change.
    assert not top.new_since_baseline and 0.15 < top.baseline_share < 0.25
    assert top.baseline_p_value is not None and top.baseline_p_value > 0.01


def test_stale_retrieval_source_ranks_first_among_multi_valued_sources() -> None:
    g = np.random.default_rng(3)
    incident = cohort(g, 1500, doc_bad_rate=0.4)
    suspects = what_changed(incident, cohort(g, 1500))
    assert keys(suspects)[0] == ("source", "kb-104")
    # Every trace retrieves three documents: the other seven are each on ~3/8 of the traces and, kb-104
    # taking a place, rarer among failures; none is reported.
    assert [s for s in suspects if s.dimension == "source"] == suspects[:1]


def test_value_equally_common_in_bad_and_good_is_not_reported() -> None:
    g = np.random.default_rng(4)
    events = cohort(g, 3000, v2_share=0.2, v2_bad_rate=0.6)
    # gpt-4o is drawn independently of failure: its share is ~1/3 in both cohorts.
    bad_share = np.mean([e.values["model"] == {"gpt-4o"} for e in events if e.bad])
    good_share = np.mean([e.values["model"] == {"gpt-4o"} for e in events if not e.bad])
    assert abs(bad_share - good_share) < 0.05
    suspects = what_changed(events, [])
    assert suspects and ("model", "gpt-4o") not in keys(suspects)


def test_value_on_every_trace_explains_nothing() -> None:
    events = [event(i < 30, route="answer", release="v2" if i < 25 else "v1") for i in range(100)]
    assert keys(what_changed(events, [])) == [("release", "v2")]


def test_diluted_superset_ranks_below_the_cause() -> None:
    """m2 covers every v2 trace plus healthy v1 traffic: release v2 is the tighter explanation."""
    assert keys(what_changed(worked_example(), [])) == [("release", "v2"), ("model", "m2")]


# ------------------------------------------------------------------------------------------ baseline
def test_new_flag_needs_a_baseline_without_the_value() -> None:
    incident = [event(i < 20, release="v2" if i < 20 else "v1", model="m1") for i in range(100)]
    before_without = [event(False, release="v1", model="m1") for _ in range(50)]
    before_with = [*before_without, event(False, release="v2", model="m1")]
    (fresh,) = what_changed(incident, before_without)
    assert fresh.new_since_baseline and fresh.baseline_with == 0 and fresh.baseline_share == 0.0
    (seen,) = what_changed(incident, before_with)
    assert not seen.new_since_baseline and seen.baseline_with == 1 and seen.baseline_share == pytest.approx(1 / 51)
    # 20% of traffic now against 0% of 50 traces before: v2 became more common.
    assert fresh.baseline_p_value is not None and fresh.baseline_p_value < 0.01


def test_baseline_failures_count_as_baseline_traffic() -> None:
    """The baseline has no bad/good split: a bad baseline trace with the value still counts."""
    incident = [event(i < 20, release="v2" if i < 20 else "v1") for i in range(100)]
    (suspect,) = what_changed(incident, [event(True, release="v2"), event(False, release="v1")])
    assert (suspect.baseline_with, suspect.baseline_total, suspect.baseline_share) == (1, 2, 0.5)


# ------------------------------------------------------------------------------------------ no false suspects
def test_tiny_samples_produce_no_suspects() -> None:
    g = np.random.default_rng(5)
    reported = 0
    for _ in range(300):
        n = int(g.integers(5, 31))
        events = [
            event(
                bool(g.random() < 0.3),
                release=str(g.choice(["v1", "v2"])),
                model=str(g.choice(MODELS)),
                tool={str(t) for t in g.choice(TOOLS, size=2, replace=False)},
            )
            for _ in range(n)
        ]
        reported += len(what_changed(events, []))
    assert reported == 0
    # Control: a small cohort with a real, perfect split is reported, so the quiet above is not blanket.
    planted = [event(i < 8, release="v2" if i < 8 else "v1") for i in range(30)]
    assert keys(what_changed(planted, [])) == [("release", "v2")]


def test_many_noise_values_are_held_back_by_the_correction() -> None:
    """1,000 documents drawn at random: some pass p < 0.01 on their own, none after Holm's correction."""
    g = np.random.default_rng(6)
    docs = [f"doc-{i}" for i in range(1000)]
    events = [event(bool(g.random() < 0.2), source={str(d) for d in g.choice(docs, size=20)}) for _ in range(2000)]
    bad = [e for e in events if e.bad]
    good = [e for e in events if not e.bad]
    raw = []
    for d in docs:
        a = sum(d in e.values["source"] for e in bad)
        c = sum(d in e.values["source"] for e in good)
        if a * len(events) > (a + c) * len(bad):  # over-represented among failures
            raw.append(two_by_two_p_value(a, len(bad) - a, c, len(good) - c))
    assert sum(p < 0.01 for p in raw) >= 2  # without the correction there would be false suspects
    assert what_changed(events, []) == []


def test_fewer_than_min_bad_failures_are_not_suspects() -> None:
    # v2 on 5 traces, 3 of them failing, among 1,000 traces with 4 failures: p ≈ 1e-7, but only 3 bad traces.
    events = [event(i < 3, release="v2" if i < 5 else "v1") for i in range(1000)]
    events[500] = event(True, release="v1")
    assert keys(what_changed(events, [], min_bad=3)) == [("release", "v2")]
    assert what_changed(events, [], min_bad=4) == []


def test_values_too_rare_to_reach_min_bad_do_not_dilute_the_correction() -> None:
    """Every trace has its own route: 300 values that can never have 3 bad traces are not tested, so they do not
    multiply v2's p-value (2.1e-4 raw; 300 more tests would push it to ~0.065 under Holm)."""
    events = [event(i < 8, release="v2", route=f"/orders/{i}") for i in range(20)]
    events += [event(i < 22, release="v1", route=f"/orders/{20 + i}") for i in range(280)]
    (v2,) = what_changed(events, [])
    assert v2.value == "v2"
    # Two candidates (v1 and v2): Holm doubles the smaller p-value.
    assert v2.p_value == pytest.approx(2 * stats.fisher_exact([[8, 12], [22, 258]]).pvalue)


@pytest.mark.parametrize(
    ("incident", "baseline"),
    [
        ([], []),
        ([], [event(True, release="v2")]),
        ([event(True, release="v2") for _ in range(50)], []),  # only failures: nothing to contrast with
        ([event(False, release="v2") for _ in range(50)], []),  # no failures: nothing to explain
        ([event(i < 10) for i in range(50)], []),  # traces without any value
        ([event(i < 10, tool=set()) for i in range(50)], []),
    ],
)
def test_empty_or_one_sided_inputs_give_nothing(incident: list[Event], baseline: list[Event]) -> None:
    assert what_changed(incident, baseline) == []


def test_limit_keeps_the_best() -> None:
    events = worked_example()
    assert keys(what_changed(events, [], limit=1)) == [("release", "v2")]
    assert what_changed(events, [], limit=0) == []


# ------------------------------------------------------------------------------------------ order
def test_order_is_deterministic_and_ties_break_by_dimension_then_value() -> None:
    # release v2, prompt "answer v4", tools b and a and a custom dimension all sit on exactly the same traces.
    events = [
        event(i < 20, release="v2", prompt="answer v4", tool={"b", "a"}, custom="x")
        if i < 25
        else event(i in (25, 26), release="v1", prompt="answer v3", tool="c", custom="y")
        for i in range(200)
    ]
    expected = [("release", "v2"), ("prompt", "answer v4"), ("tool", "a"), ("tool", "b"), ("custom", "x")]
    assert keys(what_changed(events, [])) == expected
    shuffled = list(events)
    random.Random(7).shuffle(shuffled)
    assert what_changed(shuffled, []) == what_changed(events, [])
    # The inputs may be one-shot iterables (a generator from the selector).
    assert keys(what_changed(iter(shuffled), iter([]))) == expected


def test_the_tallied_analyses_are_those_of_the_events() -> None:
    """The triage page tallies each window once and runs both analyses from the tallies: the suspects are those of
    ``what_changed`` on the events, and the page's "since the day before" is ``what_changed`` of the failing
    traces against every baseline trace as good."""
    g = np.random.default_rng(11)
    current = cohort(g, 1500, v2_share=0.5, v2_bad_rate=0.4)
    baseline = cohort(g, 1500)
    assert suspects(tally(current), tally(baseline)) == what_changed(current, baseline)
    expected = what_changed([e for e in current if e.bad] + [Event(bad=False, values=e.values) for e in baseline], [])
    assert [(s.dimension, s.value) for s in expected][:1] == [("release", "v2")]  # a release new to all traffic
    assert changes_since_baseline(tally(current), tally(baseline)) == expected
    assert changes_since_baseline(tally([e for e in current if not e.bad]), tally(baseline)) == []
    assert changes_since_baseline(tally(current), tally([])) == []
