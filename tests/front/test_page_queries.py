"""Query-count guards for the pages that had none: each page's queries stay under a bound, and three times the
data (traces, scores, members, keys, secrets, datasets, probes, SLOs, budgets, channels, guard policies, rescoring
runs) costs no more queries than once (one query per table, never one per row). The overview, the trace list,
sessions and users, SLOs, incidents and channels have their own guards beside their other tests."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from accounts.models import Role
from accounts.services import api_key_issue, membership_set, project_secret_set, user_create
from evals.datasets import ItemData
from evals.models import Dataset, Probe
from evals.services import dataset_create, dataset_items_add, eval_run_create, probe_save
from guard.policy import DEFAULT_SPEC
from guard.services import guard_policy_save
from slos.budgets import budget_create
from slos.models import SLO, Channel
from slos.services import channel_save
from tests.conftest import PASSWORD, Tenant
from tests.slo_data import T0, create_slo, ingest, make_trace, recompute, score
from traces.models import Trace

pytestmark = pytest.mark.django_db

# Queries of each page (a GET by an admin) with one round of data, navigation and session included.
BOUNDS = {
    "service": 33,
    "trace": 11,
    "evaluator settings": 11,
    "rescoring runs": 7,
    "drift": 11,
    "canary": 11,  # one more: the releases seen, offered as baseline and canary
    "datasets": 7,
    "dataset": 9,
    "dataset export": 6,
    "trace to dataset": 11,
    "probes": 13,
    "probe": 10,
    "new SLO": 13,  # one more: whether the project has a channel to choose (else a link to add one)
    "SLO edit": 15,
    "channel edit": 7,
    "budgets": 11,
    "guard": 7,
    "settings": 11,
    "secrets": 7,
    "audit log": 8,
    "first-trace status": 6,
}


# Queries a page may add per row it shows, by design. None now: the budgets page reads each budget's stored
# spend with the budget (slos.budgets.budget_statuses) instead of one aggregate per budget.
PER_ROW: dict[str, int] = {}


@dataclass
class Round:
    trace: Trace
    dataset: Dataset
    probe: Probe
    slo: SLO
    channel: Channel


def grow(tenant: Tenant, r: int) -> Round:
    """One more of everything the pages list."""
    traces = ingest(tenant, [make_trace(r * 3 + k, release=f"v{r}") for k in range(3)])
    for k, trace in enumerate(traces):
        score(trace, "grounding", passed=k != 0, value=0.5 + k / 10)
    recompute()
    member = user_create(username=f"member{r}", password=PASSWORD)
    membership_set(project=tenant.project, user=member, role=Role.VIEWER, actor=tenant.user)
    api_key_issue(project=tenant.project, name=f"key {r}", created_by=tenant.user)
    project_secret_set(project=tenant.project, name=f"TOKEN_{r}", value="s3cret-value", user=tenant.user)
    dataset = dataset_create(project=tenant.project, name=f"golden {r}", user=tenant.user)
    dataset_items_add(dataset=dataset, items=[ItemData(input=f"question {r}.{i}", expected="answer") for i in range(2)])
    probe = probe_save(
        probe=Probe(
            project=tenant.project,
            name=f"probe {r}",
            dataset=dataset,
            service="support-bot",
            target_kind="http_endpoint",
            target_config={
                "url": "http://127.0.0.1:9/ask",
                "body_template": {"q": "{{input_text}}"},
                "answer_path": "a",
            },
            evaluators=["reference"],
            interval_minutes=60,
        ),
        user=tenant.user,
    )
    channel = channel_save(
        project=tenant.project, name=f"hook {r}", kind="webhook", config={"url": f"http://127.0.0.1:9/hook{r}"}
    )
    slo = create_slo(tenant.project, name=f"errors {r}", channels=[channel])
    budget_create(
        project=tenant.project, name=f"budget {r}", scope="user", window="day", limit_usd=Decimal(1), channels=[channel]
    )
    guard_policy_save(project=tenant.project, service=f"service-{r}", spec=DEFAULT_SPEC)
    eval_run_create(
        project=tenant.project,
        service="support-bot",
        since=T0 - timedelta(hours=1),
        until=T0 + timedelta(hours=1),
        evaluators=[],
        user=tenant.user,
    )
    return Round(trace=traces[0], dataset=dataset, probe=probe, slo=slo, channel=channel)


def pages(first: Round) -> dict[str, str]:
    p = "/p/acme"
    return {
        "service": f"{p}/service/?name=support-bot&range=30d",
        "trace": f"{p}/traces/{first.trace.trace_id}/",
        "evaluator settings": f"{p}/evaluators/",
        "rescoring runs": f"{p}/evaluators/runs/",
        "drift": f"{p}/drift/",
        "canary": f"{p}/canary/",
        "datasets": f"{p}/datasets/",
        "dataset": f"{p}/datasets/{first.dataset.pk}/",
        "dataset export": f"{p}/datasets/{first.dataset.pk}/export.csv",
        "trace to dataset": f"{p}/traces/{first.trace.trace_id}/to-dataset/",
        "probes": f"{p}/probes/",
        "probe": f"{p}/probes/{first.probe.pk}/",
        "new SLO": f"{p}/slos/new/",
        "SLO edit": f"{p}/slos/{first.slo.pk}/edit/",
        "channel edit": f"{p}/channels/{first.channel.pk}/edit/",
        "budgets": f"{p}/budgets/",
        "guard": f"{p}/guard/",
        "settings": f"{p}/settings/",
        "secrets": f"{p}/settings/secrets/",
        "audit log": f"{p}/settings/audit/",
        "first-trace status": f"{p}/first-trace/",
    }


def counts(client: Client, urls: dict[str, str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for name, url in urls.items():
        client.get(url)  # once first: what a process caches on its first request is not counted
        with CaptureQueriesContext(connection) as queries:
            response = client.get(url)
        assert response.status_code == 200, (name, response.status_code)
        found[name] = len(queries.captured_queries)
    return found


def test_pages_have_bounded_query_counts_that_do_not_grow_with_the_data(tenant: Tenant) -> None:
    client = Client()
    assert client.login(username=tenant.user.username, password=PASSWORD)
    urls = pages(grow(tenant, 0))
    assert set(urls) == set(BOUNDS)
    once = counts(client, urls)
    over = {name: (n, BOUNDS[name]) for name, n in once.items() if n > BOUNDS[name]}
    assert not over, f"pages over their query bound (queries, bound): {over}"
    grow(tenant, 1)
    grow(tenant, 2)
    thrice = counts(client, urls)
    grew = {name: (once[name], n) for name, n in thrice.items() if n > once[name] + 2 * PER_ROW.get(name, 0)}
    assert not grew, f"pages whose queries grow with the data (once, three times): {grew}"
