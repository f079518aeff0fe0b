"""The service page's runaway traces: the newest failing cost-ceiling, tool-loop and LLM-call checks of the window,
read from its last day first (sre4ai_web.lib.newest.newest_first) yet the same as sorting every such score."""

from __future__ import annotations

from datetime import timedelta

import pytest

from evals.models import Score
from evals.signals import RUNAWAY_CHECKS
from rollups.selectors import service_detail, window_for
from tests.conftest import Tenant
from tests.explorer_data import T0, make_trace, score

pytestmark = pytest.mark.django_db
DAY = 86400


@pytest.mark.parametrize(
    "ages_in_days",
    [
        [0.1 * n for n in range(12)],  # more than ten in the last day
        [0.2, 0.5, 0.9, 3, 3.5, 4, 5, 20, 21, 22, 23, 25],  # three in the last day, four in its week, the rest older
        [12, 15, 29],  # only old ones
        [0.5, 0.9, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 6.5, 9, 20],  # two in the last day, more than ten in its week
    ],
)
def test_runaway_traces_are_the_newest_failing_runaway_checks(tenant: Tenant, ages_in_days: list[float]) -> None:
    checks = sorted(RUNAWAY_CHECKS)
    for n, age in enumerate(ages_in_days):
        trace = make_trace(tenant.project, n, seconds=-age * DAY)
        score(trace, checks[n % len(checks)], passed=False)
        score(trace, "grounding", passed=False)  # not a runaway check
    passing = make_trace(tenant.project, 99, seconds=-60)
    score(passing, "cost_ceiling", passed=True)
    window = window_for(range_key="30d", now=T0 + timedelta(minutes=1))

    shown = service_detail(project=tenant.project, service="bot", environment="", window=window).runaway

    every = Score.objects.current().filter(name__in=RUNAWAY_CHECKS, passed=False, trace_start__gte=window.since)
    expected = [
        s.trace_id
        for s in sorted(every, key=lambda s: s.trace_start.timestamp() if s.trace_start else 0.0, reverse=True)[:10]
    ]
    assert [s.trace_id for s in shown] == expected
    assert len(shown) == min(10, len(ages_in_days)) and all(s.trace.service == "bot" for s in shown)


@pytest.mark.parametrize("environment", ["", "staging"])
def test_least_grounded_answers_link_their_own_traces_in_the_environment_shown(
    tenant: Tenant, environment: str
) -> None:
    # Grounding values 0.0, 0.05, ... over 14 traces in two environments and four weeks; the panel's ten lowest,
    # each with its own trace (id and answer preview), read without joining the scores to the traces.
    for n in range(14):
        trace = make_trace(
            tenant.project, n, seconds=-2 * n * DAY - 60, environment=("production", "staging")[n % 2],
            answer=f"answer {n}",
        )  # fmt: skip
        score(trace, "grounding", passed=n > 6, value=n / 20)
    window = window_for(range_key="30d", now=T0 + timedelta(minutes=1))

    shown = service_detail(project=tenant.project, service="bot", environment=environment, window=window).least_grounded

    expected = [n for n in range(14) if not environment or n % 2][:10]
    assert [s.value for s in shown] == [n / 20 for n in expected]
    assert [(s.trace.trace_id, s.trace.output_preview) for s in shown] == [
        (f"{tenant.project.pk:04x}{n:028x}", f"answer {n}") for n in expected
    ]
