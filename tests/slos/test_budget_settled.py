"""A budget's spend is summed whole once an hour for the traces that started before the previous hour (settled),
and each minute only for the traces since: the stored figure is the whole window's, whatever hour it is read at,
and a minute's evaluation does not read the settled traces again."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from slos import budgets
from slos.models import BudgetSpend
from tests.budget_data import budget, ingest, trace
from tests.conftest import Tenant

pytestmark = pytest.mark.django_db
# Two days ago at 12:30 UTC: an evaluation then sees that day's window (00:00 to 24:00); hours before 11:00 are
# settled, 11:00 on are summed each minute.
NOW = (timezone.now() - timedelta(days=2)).replace(hour=12, minute=30, second=0, microsecond=0)


def at(hour: int, minute: int) -> datetime:
    return NOW.replace(hour=hour, minute=minute)


def stored(budget_id: int) -> dict[str, Decimal]:
    return {key: Decimal(text) for key, text in BudgetSpend.objects.get(budget_id=budget_id).keys}


def whole_window(b: budgets.Budget, now: datetime) -> dict[str, Decimal]:
    start, end = budgets.window_bounds(b.window, now)
    return {str(row["key"]): row["spend"] for row in budgets._spend_by_key(b, start, end)}


def test_settled_hours_are_summed_once_an_hour_and_the_rest_every_minute(tenant: Tenant) -> None:
    b = budget(tenant, name="tenants", scope="attribute", attribute="tenant", limit_usd=Decimal("100"))
    ingest(tenant, [
        trace("1.00", tenant="acme", start=at(7, 10)), trace("0.25", tenant="globex", start=at(9, 40)),
        trace("0.50", tenant="acme", start=at(11, 20)), trace("0.10", tenant="globex", start=at(12, 10)),
    ])  # fmt: skip
    budgets.budgets_evaluate(now=NOW)
    assert stored(b.pk) == whole_window(b, NOW) == {"acme": Decimal("1.50"), "globex": Decimal("0.35")}
    row = BudgetSpend.objects.get(budget=b)
    settled = {key: Decimal(text) for key, text in row.settled.items()}
    assert row.settled_until == at(11, 0) and settled == {"acme": Decimal("1.00"), "globex": Decimal("0.25")}

    # A minute later: a new trace counts at once; one that starts in a settled hour (a late arrival) waits for the
    # hour, and the minute's sum reads no trace that started before 11:00.
    ingest(tenant, [trace("0.20", tenant="acme", start=at(12, 20)), trace("0.40", tenant="globex", start=at(8, 0))])
    with CaptureQueriesContext(connection) as queries:
        budgets.budgets_evaluate(now=NOW + timedelta(minutes=1))
    trace_reads = [q["sql"] for q in queries.captured_queries if '"traces_trace"' in q["sql"]]
    assert len(trace_reads) == 1
    assert stored(b.pk) == {"acme": Decimal("1.70"), "globex": Decimal("0.35")}

    # The next hour sums the settled traces again, the late one with them: the whole window's figure.
    later = NOW + timedelta(hours=1)
    budgets.budgets_evaluate(now=later)
    assert stored(b.pk) == whole_window(b, later) == {"acme": Decimal("1.70"), "globex": Decimal("0.75")}
    assert BudgetSpend.objects.get(budget=b).settled_until == at(12, 0)


def test_a_new_window_starts_from_nothing_settled(tenant: Tenant) -> None:
    b = budget(tenant, name="users", limit_usd=Decimal("100"))
    ingest(tenant, [trace("0.30", user="ann", start=at(3, 0)), trace("0.70", user="ann", start=at(23, 50))])
    budgets.budgets_evaluate(now=at(23, 55))
    assert stored(b.pk) == {"ann": Decimal("1.00")}
    next_day = at(23, 55) + timedelta(minutes=10)
    ingest(tenant, [trace("0.05", user="bob", start=next_day - timedelta(minutes=1))])
    budgets.budgets_evaluate(now=next_day)
    assert stored(b.pk) == whole_window(b, next_day) == {"bob": Decimal("0.05")}
    assert BudgetSpend.objects.get(budget=b).settled == {}


def test_a_settled_figure_of_another_window_is_not_reused(tenant: Tenant) -> None:
    """A row left from another window with the same settled hour (a weekly and a daily window can share it) is
    summed again, not read back."""
    b = budget(tenant, name="users", limit_usd=Decimal("100"))
    ingest(tenant, [trace("0.30", user="ann", start=at(3, 0))])
    budgets.budgets_evaluate(now=NOW)
    BudgetSpend.objects.filter(budget=b).update(
        window_start=at(0, 0) - timedelta(days=1), settled={"ann": "9.99", "ghost": "5"}
    )
    budgets.budgets_evaluate(now=NOW + timedelta(minutes=1))
    assert stored(b.pk) == {"ann": Decimal("0.30")}
