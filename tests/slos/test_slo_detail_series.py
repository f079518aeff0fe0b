"""The SLO page's series (``slo_detail``) are computed in numpy over whole arrays, for speed at 30 days of minutes
(docs/benchmarks.md §13). These tests hold them to the per-minute definitions they replace: the prefix sums and
``burn.burn_rate_series`` of slos.burn, and the evaluator's rule state carried over minutes without events."""

from __future__ import annotations

import math
import random
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from slos import burn
from slos.burn import MINUTE
from slos.models import SLO, SliMinute
from slos.policy import policy_rules
from slos.selectors import RANGES, evaluation_minute, sli_series, slo_detail
from tests.conftest import Tenant

POLICY = [
    {"severity": "page", "burn_rate_threshold": "14.4", "long_window": "1h", "short_window": "5m"},
    {"severity": "ticket", "burn_rate_threshold": "2", "long_window": "6h", "short_window": "30m"},
]


def reference(slo: SLO, now: datetime, range_key: str) -> dict[str, list[object]]:
    """The series as the page defines them, minute by minute in plain Python."""
    span, step, sli_minutes = RANGES[range_key]
    span = min(span, timedelta(days=slo.window_days))
    end = evaluation_minute(now)
    window_start = end - timedelta(days=slo.window_days) + MINUTE
    rules = policy_rules(slo.policy)
    display_start = end - span + MINUTE
    longest = max(r.long_minutes for r in rules)
    data_start = min(window_start, display_start - (max(longest, sli_minutes) - 1) * MINUTE)
    series = sli_series(slo=slo, start=data_start, end=end)
    sums = burn.PrefixSums(series)
    offset = (display_start - data_start) // MINUTE
    window_offset = (window_start - data_start) // MINUTE
    minutes = len(series) - offset
    sli: list[object] = []
    budget: list[object] = []
    for i in range(0, minutes, step):
        last = min(offset + i + step, len(series)) - 1
        trailing = sums.window(last, sli_minutes)
        sli.append(trailing.good / trailing.total if trailing.total else None)
        so_far = sums.window(last, last - window_offset + 1) if last >= window_offset else burn.Counts(0, 0)
        remaining = burn.budget_remaining(so_far.good, so_far.total, slo.objective)
        budget.append(None if remaining is None else float(remaining))
    result: dict[str, list[object]] = {"sli": sli, "budget": budget}
    ends = [min(i + step, minutes) - 1 for i in range(0, minutes, step)]
    for n, rule in enumerate(rules):
        long = burn.burn_rate_series(sums, rule.long_minutes, slo.objective, start=offset)
        short = burn.burn_rate_series(sums, rule.short_minutes, slo.objective, start=offset)
        state, states = False, []
        for lr, sr in zip(long, short, strict=True):
            if lr is not None and sr is not None:
                state = lr > float(rule.burn_rate_threshold) and sr > float(rule.burn_rate_threshold)
            states.append(state)
        result[f"long{n}"] = [long[e] for e in ends]
        result[f"short{n}"] = [short[e] for e in ends]
        result[f"fired{n}"] = [any(states[i : i + step]) for i in range(0, minutes, step)]
    return result


def same(got: list[float | None], expected: list[object], rel: float = 1e-12) -> bool:
    """None at the same places, numbers equal within `rel` (float rounding of the exact fractions)."""
    return len(got) == len(expected) and all(
        (g is None and e is None) or (g is not None and isinstance(e, float) and math.isclose(g, e, rel_tol=rel))
        for g, e in zip(got, expected, strict=True)
    )


@pytest.mark.parametrize("seed", [1, 2])
def test_page_series_match_the_minute_by_minute_definitions(tenant: Tenant, seed: int) -> None:
    rng = random.Random(seed)
    now = timezone.now()
    slo = SLO.objects.create(project=tenant.project, name="grounded", service="support-bot", sli_kind="error",
                             objective=Decimal("0.99"), window_days=2, policy=POLICY)  # fmt: skip
    end = evaluation_minute(now)
    rows = []
    # Two and a half days of minutes: stretches without events (rates unknown, the state carried), one right after
    # a burst of bad events that fires both rules (so a firing state is carried), and minutes before the window
    # (history for the burn rates only).
    for back in range(int(2.5 * 24 * 60)):
        minute = end - back * MINUTE
        if rng.random() < 0.3 or 600 <= back < 700 or 900 <= back < 1000:
            continue
        total = rng.randint(1, 12)
        bad_share = 0.6 if 1000 <= back < 1100 or 2900 <= back < 2950 else 0.01
        bad = sum(rng.random() < bad_share for _ in range(total))
        rows.append(SliMinute(slo=slo, minute=minute, good=total - bad, total=total))
    SliMinute.objects.bulk_create(rows)
    for range_key in ("1d", "7d", "window"):
        detail = slo_detail(slo=slo, now=now, range_key=range_key)
        expected = reference(slo, now, range_key)
        assert len(detail.times) == len(expected["sli"]) > 0
        assert same(detail.sli, expected["sli"]), range_key
        assert same(detail.budget, expected["budget"], rel=1e-9), range_key
        for n, panel in enumerate(detail.panels):
            assert same(panel.long, expected[f"long{n}"]), (range_key, n)
            assert same(panel.short, expected[f"short{n}"]), (range_key, n)
            assert panel.fired == expected[f"fired{n}"], (range_key, n)
        # The data has what the comparison needs to mean something: gaps, fired and quiet buckets.
        assert None in detail.panels[0].short and any(detail.panels[0].fired) and not all(detail.panels[0].fired)
