"""The overview's fast read (rollups.selectors.overview: bucket minutes read as integers, the previous period summed
over the whole period, the score rows of signals it does not show left out) gives the figures of the full read, the
definition: every rollup row of both periods, bucket by bucket, every score name."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from evals.services import ExternalScore, score_record, traces_score
from rollups import selectors
from rollups.selectors import OVERVIEW_SKIPPED_SCORES, ServiceHealth, _series, overview, window_for
from rollups.services import dirty_process
from tests.conftest import Tenant
from tests.rollups.test_rollups import ingest, trace
from traces.models import Trace


def reference(tenant: Tenant, window: selectors.Window, now: Any) -> list[ServiceHealth]:
    """The overview as defined: both periods read in full (every bucket, every score name)."""
    current = _series(tenant.project, window, "", None)
    before = _series(tenant.project, window.previous, "", None)
    rows = overview(project=tenant.project, environment="", window=window, now=now)
    return [
        ServiceHealth(
            service=r.service,
            now=current.get((r.service, ""), selectors.Series()),
            before=before.get((r.service, ""), selectors.Series()),
            buckets=window.buckets(),
            spend_today=r.spend_today,
        )
        for r in rows
    ]


def figures(rows: list[ServiceHealth]) -> list[tuple[str, float, list[dict[str, Any]]]]:
    return [(r.service, r.badness, r.signals) for r in rows]


@pytest.mark.django_db
def test_the_overview_fast_read_gives_the_full_reads_figures(client: Client, tenant: Tenant) -> None:
    now = timezone.now().replace(second=30, microsecond=0)
    batch = []
    # Two services over the last two days (so 24 h has a previous period, 1 h minute buckets), errors and latencies.
    for i in range(96):
        service = ("bot", "agent")[i % 2]
        t = trace(i, 0, 50.0 * (1 + i % 13), service=service, status="error" if i % 7 == 0 else "ok")
        start = now - timedelta(minutes=1 + 29 * i)
        for span in t["spans"]:
            span["start_time"], span["end_time"] = start.isoformat(), (start + timedelta(seconds=1)).isoformat()
        batch.append(t)
    # And a few in the last hour, a minute apart.
    for i in range(96, 110):
        t = trace(i, 0, 80.0 * (i % 5 + 1), service=("bot", "agent")[i % 2])
        start = now - timedelta(minutes=i - 95)
        for span in t["spans"]:
            span["start_time"], span["end_time"] = start.isoformat(), (start + timedelta(seconds=1)).isoformat()
        batch.append(t)
    ingest(client, tenant, batch)
    traces = list(Trace.objects.filter(project=tenant.project).order_by("start_time"))
    traces_score(project_id=tenant.project.pk, trace_pks=[t.pk for t in traces])  # the built-in checks
    # Grounding and a quality check that pass and fail, and safety and runaway checks the overview does not read.
    for index, stored in enumerate(traces):
        for name, passed in (
            ("grounding", index % 3 != 0),
            ("answer_relevance", index % 4 != 0),
            ("pii", index % 5 != 0),
            ("cost_ceiling", index % 2 == 0),
        ):
            score_record(
                score=ExternalScore(
                    trace=stored, span=None, name=name, value=None, label="", passed=passed, comment="", external_id=""
                )
            )
    dirty_process()
    assert {"pii", "cost_ceiling"} <= OVERVIEW_SKIPPED_SCORES
    assert not {"grounding", "answer_relevance"} & OVERVIEW_SKIPPED_SCORES
    for range_key in ("1h", "24h", "7d"):
        window = window_for(range_key=range_key, now=now)
        fast = overview(project=tenant.project, environment="", window=window, now=now)
        expected = reference(tenant, window, now)
        assert figures(fast) == figures(expected), range_key
        assert len(fast) == 2
        by_key = {s["key"]: s for s in fast[0].signals}
        # Not vacuous: the rates, latency, changes and sparklines have values in each range.
        assert by_key["grounding"]["value"] is not None and by_key["quality"]["value"] is not None
        assert by_key["p95"]["value"] is not None and any(v is not None for v in by_key["p95"]["spark"])
        if range_key == "24h":  # the traces span two days: 24 h has a previous period
            assert by_key["grounding"]["change"] is not None and by_key["traffic"]["change"] is not None
