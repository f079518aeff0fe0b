"""What changed: which release, model, prompt, route, tool or retrieval source the failing traces of an
incident have in excess. Pure functions: no Django, no ORM (``slos.selectors_triage`` loads the events).

Input: the traces of the incident window, each bad (it failed the SLO) or good, and the traces of a
baseline window before the incident. Each trace has, per dimension, the set of values it used (a trace
can call several models or tools and retrieve from several sources; the set may be empty).

Counts for one value (say release v2), incident window:
    bad_with / bad_total     failing traces with the value / all failing traces   -> bad_share
    good_with / good_total   good traces with the value / all good traces         -> good_share
    all_share = (bad_with + good_with) / (bad_total + good_total)                  the value's share of traffic

How much a value explains
    expected_bad_with = bad_total × all_share     (bad traces with the value if it failed like the rest)
    explained = (bad_with − expected_bad_with) / bad_total = bad_share − all_share
The share of the failing traces that is in excess of the value's share of traffic. It is 0 for a value
present in every trace (or in none), negative for a value that is rarer among failures than in traffic
(not a suspect), and at most good_total / total. A value in 80% of the bad traces and 10% of all traces
explains 0.7; a value in 100% of both explains nothing. Equivalently explained = (bad_share − good_share)
× good_total / total: a fixed multiple of the difference of the two shares, so it rewards a value that is
both common among failures and rare among successes.

Why not the epidemiologists' population attributable fraction, PAF = (bad_with − with × r0) / bad_total,
where r0 is the bad rate of the traces without the value ("the share of failures that would vanish if the
traces with the value failed like the others")? PAF does not penalise a value that spreads beyond the
cause: traces that carry it but fail at the normal rate add nothing to either term. A model used by every
v2 trace and by some v1 traces then ties with release v2 itself (worked example below), while the excess
share ranks the tighter value, release v2, first, which is where the on-call should look.

Worked example (checked in tests/slos/test_slo_triage.py). 100 incident traces: 20 bad, 80 good.
Release v2 is on 20 traces, 16 of them bad; model m2 is on those 20 and on 20 v1 traces, 1 of them bad.
    v2: bad_share 16/20 = 0.8, good_share 4/80 = 0.05, all_share 20/100 = 0.2,
        expected_bad_with = 20 × 0.2 = 4, explained = (16 − 4) / 20 = 0.6, lift = 0.8 / 0.05 = 16
    m2: bad_share 17/20 = 0.85, good_share 23/80 = 0.2875, all_share 40/100 = 0.4,
        expected_bad_with = 20 × 0.4 = 8, explained = (17 − 8) / 20 = 0.45
    PAF would give both (16 − 20 × 4/80) / 20 = (17 − 40 × 3/60) / 20 = 0.75: a tie.

Lift = bad_share / good_share: how many times more common the value is among failures than among
successes. None when no good trace has the value (the ratio is unbounded; say "only in failing traces").

Significance and filters
- p_value: two-sided test that bad and good traces carry the value at the same rate, on the 2 × 2 table
  (bad, good) × (with, without). Fisher's exact test when an expected cell count is below 5, where the
  normal approximation is poor; Pearson's chi-square (no continuity correction, the same test as the
  pooled two-proportion z-test of ``evals.drift``) otherwise.
- Holm's correction across the candidates, each p-value replaced by its Holm-adjusted value. Holm rather
  than Benjamini-Hochberg because the tests are strongly dependent (release v2, its prompt version and
  its model sit on the same traces), Holm's guarantee holds under any dependence, and each false suspect
  on a 3 a.m. page costs the on-call a detour.
- Candidates (the m of the correction) are the values on at least ``min_bad`` incident traces and not on
  every one: a value on fewer traces can never reach ``min_bad`` bad traces and one on every trace explains
  nothing, and as these rules read the table margins, not the bad/good split, dropping them keeps Holm's
  guarantee while not diluting it with hopeless tests (Tarone's argument).
- A suspect has bad_with >= ``min_bad``, explained > 0 and adjusted p_value < ``alpha``.

Against the baseline
The baseline is all traces of the window before (good or bad alike): what "normal" looked like.
- baseline_share = baseline_with / baseline_total (0.0 when the baseline is empty).
- new_since_baseline: the baseline has traces and none of them had the value (release v2 was not out).
- baseline_p_value: two-sided test (same choice of test, Holm across the same candidates) that the value's
  share of incident traffic differs from its baseline share; None without baseline traces. A small value
  with all_share above baseline_share says the value became more common: a change, not only a correlate.
A value that is on every incident trace is no suspect even when new (a full rollout that coincides with
the incident): bad and good traces cannot be told apart by it. The release and model markers of the
service page show such a change.

Order: explained descending, then adjusted p_value ascending, then dimension (release, model, prompt,
route, tool, source, any other alphabetically) and value, so equal inputs give the same list.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from evals.drift import adjust_p_values
from evals.drift.stats import two_by_two_p_value

Dimension = Literal["release", "model", "prompt", "route", "tool", "source"]
DIMENSIONS: tuple[Dimension, ...] = ("release", "model", "prompt", "route", "tool", "source")
_RANK: dict[str, int] = {dimension: index for index, dimension in enumerate(DIMENSIONS)}


@dataclass(frozen=True)
class Event:
    """One trace: failing the SLO (bad) or not, and per dimension the values it used (possibly none)."""

    bad: bool
    values: Mapping[str, frozenset[str]]


@dataclass(frozen=True)
class Suspect:
    """One value over-represented among the failing traces; the module docstring defines every figure."""

    dimension: str
    value: str
    bad_with: int
    bad_total: int
    good_with: int
    good_total: int
    baseline_with: int
    baseline_total: int
    bad_share: float
    good_share: float
    baseline_share: float
    lift: float | None
    explained: float
    p_value: float
    baseline_p_value: float | None
    new_since_baseline: bool


Key = tuple[str, str]


@dataclass(frozen=True)
class Tally:
    """Traces having each (dimension, value), bad and good apart, and the bad and good totals."""

    bad: Counter[Key]
    good: Counter[Key]
    bad_total: int
    good_total: int


def tally(events: Iterable[Event]) -> Tally:
    bad: Counter[Key] = Counter()
    good: Counter[Key] = Counter()
    bad_total = good_total = 0
    for event in events:
        keys = [(dimension, value) for dimension, values in event.values.items() for value in values]
        if event.bad:
            bad_total += 1
            bad.update(keys)
        else:
            good_total += 1
            good.update(keys)
    return Tally(bad, good, bad_total, good_total)


def _order(suspect: Suspect, excess: int) -> tuple[int, float, int, str, str]:
    rank = _RANK.get(suspect.dimension, len(DIMENSIONS))
    return (-excess, suspect.p_value, rank, suspect.dimension, suspect.value)


def what_changed(
    incident: Iterable[Event], baseline: Iterable[Event], *, min_bad: int = 3, alpha: float = 0.01, limit: int = 10
) -> list[Suspect]:
    """The values that explain the incident's failing traces, best explanation first (see the module docstring)."""
    return suspects(tally(incident), tally(baseline), min_bad=min_bad, alpha=alpha, limit=limit)


def suspects(
    incident: Tally, baseline: Tally, *, min_bad: int = 3, alpha: float = 0.01, limit: int = 10
) -> list[Suspect]:
    """``what_changed`` from the tallies of both windows (a page that shows two analyses tallies each window once)."""
    bad, good, bad_total, good_total = incident.bad, incident.good, incident.bad_total, incident.good_total
    base, base_total = baseline.bad + baseline.good, baseline.bad_total + baseline.good_total
    total = bad_total + good_total
    floor = max(min_bad, 1)
    if bad_total < floor or good_total == 0:
        return []  # no failures to explain, or no successes to contrast them with
    candidates = sorted(key for key in bad.keys() | good.keys() if floor <= bad[key] + good[key] < total)
    p_values = adjust_p_values(
        [two_by_two_p_value(bad[k], bad_total - bad[k], good[k], good_total - good[k]) for k in candidates], "holm"
    )
    base_p_values: list[float | None] = [None] * len(candidates)
    if base_total:
        base_p_values = list(
            adjust_p_values(
                [
                    two_by_two_p_value(bad[k] + good[k], total - bad[k] - good[k], base[k], base_total - base[k])
                    for k in candidates
                ],
                "holm",
            )
        )
    ranked: list[tuple[tuple[int, float, int, str, str], Suspect]] = []
    for (dimension, value), p_value, base_p_value in zip(candidates, p_values, base_p_values, strict=True):
        bad_with, good_with = bad[(dimension, value)], good[(dimension, value)]
        # explained × bad_total × total, in integers: exact ties and an exact sign, whatever the float rounding.
        excess = bad_with * total - (bad_with + good_with) * bad_total
        if bad_with < min_bad or excess <= 0 or p_value >= alpha:
            continue
        bad_share, good_share = bad_with / bad_total, good_with / good_total
        baseline_with = base[(dimension, value)]
        suspect = Suspect(
            dimension=dimension,
            value=value,
            bad_with=bad_with,
            bad_total=bad_total,
            good_with=good_with,
            good_total=good_total,
            baseline_with=baseline_with,
            baseline_total=base_total,
            bad_share=bad_share,
            good_share=good_share,
            baseline_share=baseline_with / base_total if base_total else 0.0,
            lift=bad_share / good_share if good_with else None,
            explained=excess / (bad_total * total),
            p_value=p_value,
            baseline_p_value=base_p_value,
            new_since_baseline=base_total > 0 and baseline_with == 0,
        )
        ranked.append((_order(suspect, excess), suspect))
    ranked.sort(key=lambda pair: pair[0])
    return [suspect for _, suspect in ranked[: max(limit, 0)]]


def changes_since_baseline(incident: Tally, baseline: Tally) -> list[Suspect]:
    """The same analysis with the day before as the "good" side: values the incident's failing traces have far more
    often than every trace of the baseline had (a release rolled out to every trace shows here, not in
    ``suspects(incident, baseline)``). Empty without failing traces or without a baseline."""
    before = baseline.bad_total + baseline.good_total
    if not incident.bad_total or not before:
        return []
    against = Tally(
        bad=incident.bad, good=baseline.bad + baseline.good, bad_total=incident.bad_total, good_total=before
    )
    return suspects(against, tally([]))
