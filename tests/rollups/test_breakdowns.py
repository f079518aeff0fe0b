"""The service page's breakdown tables (rollups.selectors._breakdowns: every dimension's slices summed in the
database, latency histograms merged there too) give the figures of the definition: every rollup row of the window
read bucket by bucket (``_series``) and merged here."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client

from evals.services import ExternalScore, score_record
from rollups.selectors import DIMENSIONS, Series, _breakdowns, _series, service_detail, window_for
from rollups.services import dirty_process
from tests.conftest import Tenant
from tests.rollups.test_rollups import T0, ingest, trace
from traces.models import Trace


def table(slices: dict[str, Series]) -> dict[str, tuple[object, ...]]:
    return {
        value: (
            s.traffic(),
            s.error_rate(),
            s.latency(0.5),
            s.latency(0.95),
            s.latency(0.99),
            s.rate("quality"),
            s.rate("grounding"),
            s.safety_flags(),
            s.spend(),
            sum(s.tokens.values()),
            s.unpriced,
        )
        for value, s in slices.items()
    }


@pytest.mark.django_db
def test_breakdowns_summed_in_the_database_match_the_hourly_rows(client: Client, tenant: Tenant) -> None:
    traces = []
    # 36 hours of one service in two environments: two models, three releases, latencies from 20 ms to 9 s.
    for i in range(240):
        t = trace(
            i,
            9 * i,
            20.0 * (1 + (i * 37) % 450),
            model=("gpt-4o-mini", "claude-3-5-haiku-20241022")[i % 2],
            release=("v1", "v2", "v3")[(i // 80) % 3],
            status="error" if i % 9 == 0 else "ok",
            tokens=(100 + i, 10 + i % 7),
        )
        t["environment"] = ("production", "staging")[i % 5 == 0]
        traces.append(t)
    ingest(client, tenant, traces)
    for index, stored in enumerate(Trace.objects.filter(project=tenant.project).order_by("start_time")):
        checks = [("grounding", index % 3 != 0), ("answer_relevance", index % 4 != 0), ("pii", index % 6)]
        if index % 5 == 0:  # thumbs up or down on every fifth answer
            checks.append(("human_feedback", index % 10 == 0))
        for name, passed in checks:
            score_record(
                score=ExternalScore(
                    trace=stored, span=None, name=name, value=None, label="", passed=bool(passed), comment="",
                    external_id="",
                )
            )  # fmt: skip
        if index == 0:  # a second person rates the first answer bad: one answer, judged not good
            score_record(
                score=ExternalScore(
                    trace=stored, span=None, name="human_feedback", value=None, label="", passed=False, comment="",
                    external_id="second-rater",
                )
            )  # fmt: skip
    dirty_process()
    now = T0 + timedelta(hours=37)
    for range_key, environment in (("7d", ""), ("7d", "production"), ("24h", "staging")):
        window = window_for(range_key=range_key, now=now)
        fast = _breakdowns(tenant.project, window, environment, "bot")
        for dimension in DIMENSIONS:
            reference = {
                value: series
                for (_, value), series in _series(tenant.project, window, environment, "bot", dimension).items()
            }
            assert table(fast[dimension]) == table(reference), (range_key, environment, dimension)
        # Not vacuous: two models, releases in the window, with traffic, latency and rates.
        assert len(fast["model"]) == 2 and len(fast["release"]) >= 2, (range_key, environment)
        some = fast["model"]["gpt-4o-mini"]
        assert some.traffic() > 0 and some.latency(0.95) is not None and some.rate("grounding") is not None
    # The page's human feedback line counts the answers rated and those all of whose ratings are good (49 ratings of
    # 48 answers): the human_feedback row of the failing-checks table, one definition.
    detail = service_detail(
        project=tenant.project, service="bot", environment="", window=window_for(range_key="7d", now=now)
    )
    assert detail.human_feedback == (23, 48)
    assert ("human_feedback", 48 - 23, 48) in detail.failing_evaluators
    client.force_login(tenant.user)
    page = client.get("/p/acme/service/?name=bot&range=7d").content.decode()
    assert "<dt>Human feedback</dt><dd>23 good of 48</dd>" in page
