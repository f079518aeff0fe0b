"""One figure for a budget's spend: beat's evaluation stores it (slos.models.BudgetSpend), and the Budgets page,
the overview panel, /metrics and the guard's user_budget check all follow that one stored figure, never a
recount of the traces at view time (a month of a busy project took seconds per view)."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from slos import budgets
from slos.models import BudgetSpend
from tests.budget_data import budget, ingest, trace
from tests.conftest import PASSWORD, Tenant
from tests.guard_data import guard_headers
from tests.slo_data import recompute


def metric_spend(text: str, name: str) -> dict[str, Decimal]:
    pattern = rf'sre4ai_budget_spend_dollars\{{budget="{name}",key="([^"]+)",project="[^"]+",window="day"\}} (\S+)'
    return {key: Decimal(value) for key, value in re.findall(pattern, text)}


def page_spend(html: str) -> dict[str, Decimal]:
    rows = re.findall(r'<td class="mono">([^<]+)</td><td class="num">\$([0-9.,]+)</td>', html)
    return {key: Decimal(value.replace(",", "")) for key, value in rows}


def blocked(tenant: Tenant, headers: dict[str, str], users: list[str]) -> set[str]:
    out = set()
    for user in users:
        body = {"stage": "input", "input": "Hello", "user_id": user, "service": "support-bot"}
        response = Client().post(
            "/api/v1/guard", data=json.dumps(body), content_type="application/json", headers=headers
        )
        assert response.status_code == 200
        if response.json()["decision"] == "block":
            out.add(user)
    return out


@pytest.mark.django_db
def test_page_metrics_overview_and_guard_follow_the_stored_spend(tenant: Tenant) -> None:
    users = ["ann", "bob", "cyd"]
    b = budget(tenant, name="daily per user", warning_usd=Decimal("0.50"))
    ingest(tenant, [trace("1.50", user="ann"), trace("0.60", user="bob"), trace("0.10", user="cyd")])
    recompute()  # the overview shows "send your first trace" until the project's first minute is counted
    client = Client()
    assert client.login(username=tenant.user.username, password=PASSWORD)
    page_url = f"/p/{tenant.project.slug}/budgets/"
    headers = guard_headers(tenant)

    def views() -> tuple[dict[str, Decimal], dict[str, Decimal], str]:
        page = client.get(page_url).content.decode()
        metrics = client.get("/metrics", headers=tenant.bearer).content.decode()
        overview = client.get(f"/p/{tenant.project.slug}/").content.decode()
        return page_spend(page), metric_spend(metrics, b.name), overview

    # Before beat's first evaluation there is no figure, and none is made up at view time.
    page, metrics, overview = views()
    assert page == {} and metrics == {} and "not computed yet" in overview
    assert blocked(tenant, headers, users) == set()

    def agree(expected: dict[str, Decimal]) -> None:
        stored = BudgetSpend.objects.get(budget=b)
        assert {key: Decimal(spend) for key, spend in stored.keys} == expected
        page, metrics, overview = views()
        assert page == expected and metrics == expected
        top = max(expected, key=lambda k: expected[k])
        assert f"${expected[top]:.2f} / $1.00" in overview
        # The guard blocks exactly the users whose stored spend is at the limit.
        at_limit = {k for k, s in expected.items() if s >= b.limit_usd}
        assert blocked(tenant, headers, users) == at_limit

    budgets.budgets_evaluate()
    agree({"ann": Decimal("1.50"), "bob": Decimal("0.60"), "cyd": Decimal("0.10")})
    assert "spend as of" in client.get(page_url).content.decode()

    # New spend shows only once evaluated: the views read the stored figure, not the traces.
    ingest(tenant, [trace("0.50", user="bob")])
    page, metrics, _ = views()
    assert page["bob"] == metrics["bob"] == Decimal("0.60")
    budgets.budgets_evaluate(now=timezone.now())
    agree({"ann": Decimal("1.50"), "bob": Decimal("1.10"), "cyd": Decimal("0.10")})


@pytest.mark.django_db
def test_budget_views_never_read_the_traces(tenant: Tenant) -> None:
    """The Budgets page and /metrics read budgets with their stored spend: no query on the trace or span tables,
    and the same number of queries for one budget as for five."""
    ingest(tenant, [trace("0.30", user="ann", tenant="acme")])
    client = Client()
    assert client.login(username=tenant.user.username, password=PASSWORD)

    def read() -> dict[str, Any]:
        counts = {}
        for name, path, headers in (
            ("page", f"/p/{tenant.project.slug}/budgets/", {}),
            ("metrics", "/metrics", tenant.bearer),
        ):
            with CaptureQueriesContext(connection) as queries:
                assert client.get(path, headers=headers).status_code == 200
            budget_queries = [q["sql"] for q in queries.captured_queries if "slos_budget" in q["sql"]]
            assert budget_queries, name
            for sql in budget_queries:
                assert "traces_trace" not in sql and "traces_span" not in sql, (name, sql)
            counts[name] = len(queries.captured_queries)
        return counts

    budget(tenant, name="users")
    budgets.budgets_evaluate()
    once = read()
    for n in range(4):
        budget(tenant, name=f"tenants {n}", scope="attribute", attribute="tenant")
    budgets.budgets_evaluate()
    assert read() == once
