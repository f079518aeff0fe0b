"""Spend budgets on the real database: spend per service, user and trace attribute in the current window, the
forecast, alerts once per window and key delivered to a real local webhook receiver by the SLO dispatcher, the
guard blocking a user over a limit, /metrics, the Budgets page and the overview panel."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from accounts.services import membership_set
from slos import budgets
from slos.dispatch import deliveries_dispatch
from slos.models import Budget, BudgetAlert, Channel, Delivery, DeliveryStatus
from slos.transports.webhook import verify_signature
from tests.budget_data import budget, ingest, trace
from tests.conftest import PASSWORD, Tenant, make_tenant
from tests.guard_data import guard_headers
from tests.receiver import Receiver
from tests.slo_data import recompute

SECRET = "budget-hook-secret"


def spend(b: Budget) -> dict[str, Decimal]:
    """The budget's spend per key as the pages read it: evaluated (and stored) first, as beat does every minute."""
    now = timezone.now()
    budgets.budget_evaluate(budget_id=b.pk, now=now)
    (status,) = [s for s in budgets.budget_statuses(project=b.project, now=now) if s.budget.pk == b.pk]
    return {k.key: k.spend for k in status.keys}


def test_windows_are_the_utc_day_iso_week_and_month_and_the_forecast_extrapolates() -> None:
    now = datetime(2026, 2, 18, 15, 30, tzinfo=UTC)  # a Wednesday
    assert budgets.window_bounds("day", now) == (datetime(2026, 2, 18, tzinfo=UTC), datetime(2026, 2, 19, tzinfo=UTC))
    assert budgets.window_bounds("week", now) == (datetime(2026, 2, 16, tzinfo=UTC), datetime(2026, 2, 23, tzinfo=UTC))
    assert budgets.window_bounds("month", now) == (datetime(2026, 2, 1, tzinfo=UTC), datetime(2026, 3, 1, tzinfo=UTC))
    december = budgets.window_bounds("month", datetime(2026, 12, 31, 23, 59, tzinfo=UTC))
    assert december == (datetime(2026, 12, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))
    start, end = datetime(2026, 2, 18, tzinfo=UTC), datetime(2026, 2, 19, tzinfo=UTC)
    # $3 in the first 6 hours → $12 by midnight; in the first minutes the rate is taken over at least an hour.
    assert budgets.forecast(Decimal(3), start, end, start + timedelta(hours=6)) == Decimal(12)
    assert budgets.forecast(Decimal(1), start, end, start + timedelta(minutes=1)) < Decimal(25)


@pytest.mark.django_db
def test_spend_is_summed_per_user_service_and_attribute_value_in_the_window_only(tenant: Tenant) -> None:
    yesterday = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(hours=2)
    ingest(
        tenant,
        [
            trace("0.40", user="ann", tenant="acme-corp"),
            trace("0.35", user="ann", tenant="acme-corp", service="search"),
            trace("0.10", user="bob", tenant="initech"),
            trace("5.00", user="ann", tenant="acme-corp", start=yesterday),  # an earlier window
            trace("0.05"),  # nobody's
        ],
    )
    assert spend(budget(tenant)) == {"ann": Decimal("0.75"), "bob": Decimal("0.10")}
    assert spend(budget(tenant, name="bot users", service="support-bot")) == {
        "ann": Decimal("0.40"),
        "bob": Decimal("0.10"),
    }
    by_tenant = budget(tenant, name="tenants", scope="attribute", attribute="tenant")
    assert spend(by_tenant) == {"acme-corp": Decimal("0.75"), "initech": Decimal("0.10")}
    assert spend(budget(tenant, name="search", scope="service", value="search")) == {"search": Decimal("0.35")}
    assert spend(budget(tenant, name="all services", scope="service")) == {
        "support-bot": Decimal("0.55"),
        "search": Decimal("0.35"),
    }
    assert spend(budget(tenant, name="just ann", value="ann")) == {"ann": Decimal("0.75")}


@pytest.mark.django_db
def test_crossing_a_level_alerts_once_per_window_and_key_through_a_webhook(tenant: Tenant, receiver: Receiver) -> None:
    hook = Channel.objects.create(
        project=tenant.project, name="hook", kind="webhook", config={"url": receiver.url + "/budget", "secret": SECRET}
    )
    b = budget(tenant, warning_usd=Decimal("0.50"), channels=[hook])
    ingest(tenant, [trace("0.60", user="ann"), trace("0.20", user="bob")])
    assert budgets.budgets_evaluate() == 1  # ann's warning
    assert deliveries_dispatch() == 1
    (sent,) = receiver.requests
    assert verify_signature(SECRET, sent.headers["x-sre4ai-timestamp"], sent.body, sent.headers["x-sre4ai-signature"])
    body = sent.json()
    assert body["severity"] == "ticket" and body["project"] == tenant.project.slug
    assert "per user" in body["summary"] and "ann" in body["summary"] and "$0.60" in body["summary"]
    assert int(sent.headers["x-sre4ai-event-id"]) < 0  # never the id of an incident event
    client = Client()
    assert client.login(username=tenant.user.username, password=PASSWORD)
    log = client.get(f"/p/{tenant.project.slug}/channels/").content.decode()
    assert "per user · ann warning" in log and "Test asked for" not in log

    assert budgets.budgets_evaluate() == 0  # the same level of the same key in the same window: not again
    ingest(tenant, [trace("0.50", user="ann")])
    assert budgets.budgets_evaluate() == 1  # now ann's limit
    assert deliveries_dispatch() == 1
    assert receiver.requests[-1].json()["severity"] == "page"
    assert budgets.budgets_evaluate() == 0
    alerts = BudgetAlert.objects.filter(budget=b).order_by("at", "id")
    assert [(a.key, a.level, a.spend_usd) for a in alerts] == [
        ("ann", "warning", Decimal("0.60")),
        ("ann", "limit", Decimal("1.10")),
    ]
    # The next window starts over: the same levels alert again.
    tomorrow = timezone.now() + timedelta(days=1)
    ingest(tenant, [trace("1.20", user="ann", start=tomorrow - timedelta(minutes=1))])
    assert budgets.budgets_evaluate(now=tomorrow) == 2


@pytest.mark.django_db
def test_a_budget_alert_that_fails_transiently_is_retried_not_dropped_like_a_test(
    tenant: Tenant, receiver: Receiver
) -> None:
    receiver.statuses = [503, 200]
    hook = Channel.objects.create(project=tenant.project, name="hook", kind="webhook", config={"url": receiver.url})
    budget(tenant, channels=[hook])
    ingest(tenant, [trace("2.00", user="ann")])
    assert budgets.budgets_evaluate() == 1
    deliveries_dispatch()
    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.PENDING, 1)
    deliveries_dispatch(now=delivery.next_attempt_at + timedelta(seconds=1))
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, len(receiver.requests)) == (DeliveryStatus.SENT, 2, 2)


@pytest.mark.django_db
def test_the_guard_blocks_a_user_at_a_per_user_limit_and_no_one_else(tenant: Tenant) -> None:
    budget(tenant, name="daily per user")
    ingest(tenant, [trace("1.50", user="ann"), trace("0.20", user="bob")])

    headers = guard_headers(tenant)

    def decision(user: str) -> dict[str, Any]:
        body = {"stage": "input", "input": "Hello", "user_id": user, "service": "support-bot"}
        response = Client().post(
            "/api/v1/guard", data=json.dumps(body), content_type="application/json", headers=headers
        )
        assert response.status_code == 200
        answer: dict[str, Any] = response.json()
        return answer

    assert decision("ann")["decision"] == "allow"  # not evaluated yet: the guard reads the alerts beat writes
    budgets.budgets_evaluate()
    ann = decision("ann")
    assert ann["decision"] == "block"
    (check,) = [c for c in ann["checks"] if c["check"] == "user_budget"]
    assert check["verdict"] == "fail" and check["evidence"]["budgets"][0]["budget"] == "daily per user"
    assert decision("bob")["decision"] == "allow"


@pytest.mark.django_db
def test_metrics_export_spend_forecast_and_limit_per_budget(tenant: Tenant, other_tenant: Tenant) -> None:
    budget(tenant, name="tenants", scope="attribute", attribute="tenant")
    budget(other_tenant, name="secret budget")
    ingest(tenant, [trace("0.25", user="ann", tenant="acme-corp")])
    budgets.budgets_evaluate()  # beat's minute: the spend /metrics exports is the one it stored
    text = Client().get("/metrics", headers=tenant.bearer).content.decode()
    assert 'sre4ai_budget_spend_dollars{budget="tenants",key="acme-corp",project="acme",window="day"} 0.25' in text
    assert 'sre4ai_budget_limit_dollars{budget="tenants",project="acme",window="day"} 1.0' in text
    assert 'sre4ai_budget_forecast_dollars{budget="tenants",key="acme-corp"' in text
    assert "secret budget" not in text


@pytest.mark.django_db
def test_the_budgets_page_shows_spend_and_adds_budgets_for_editors_only(tenant: Tenant) -> None:
    client = Client()
    assert client.login(username=tenant.user.username, password=PASSWORD)
    url = f"/p/{tenant.project.slug}/budgets/"
    ingest(tenant, [trace("0.80", user="<script>ann</script>")])
    response = client.post(
        url, {"name": "users", "scope": "user", "window": "day", "warning_usd": "0.5", "limit_usd": "1"}
    )
    assert response.status_code == 302
    assert "Not computed yet" in client.get(url).content.decode()  # until beat's next minute
    budgets.budgets_evaluate()
    page = client.get(url).content.decode()
    assert "$0.8000" in page and "&lt;script&gt;ann&lt;/script&gt;" in page and "<script>ann" not in page
    assert 'class="status warn">warning' in page
    recompute()  # the overview shows "send your first trace" until the project's first minute is counted
    overview = client.get(f"/p/{tenant.project.slug}/").content.decode()
    assert "Budgets" in overview and "$0.80 / $1.00" in overview

    bad = client.post(url, {"name": "t", "scope": "attribute", "window": "day", "warning_usd": "2", "limit_usd": "1"})
    assert bad.status_code == 400
    text = bad.content.decode()
    assert "Name the attribute" in text and "The warning must be below the limit." in text
    assert client.post(url, {"name": "users", "scope": "user", "window": "day", "limit_usd": "1"}).status_code == 400

    viewer = make_tenant("viewer-co", "vic", role="viewer")
    membership_set(project=tenant.project, user=viewer.user, role="viewer")
    other = Client()
    assert other.login(username="vic", password=PASSWORD)
    assert other.get(url).status_code == 200
    assert other.post(url, {"name": "x", "scope": "user", "window": "day", "limit_usd": "1"}).status_code == 403
    b = Budget.objects.get(project=tenant.project)
    assert other.post(f"{url}{b.pk}/delete/").status_code == 403
    assert client.post(f"{url}{b.pk}/delete/").status_code == 302
    assert not Budget.objects.filter(project=tenant.project).exists()


@pytest.mark.django_db
def test_the_channels_box_says_where_to_add_a_channel_while_the_project_has_none(tenant: Tenant) -> None:
    client = Client()
    assert client.login(username=tenant.user.username, password=PASSWORD)
    pages = [f"/p/{tenant.project.slug}/budgets/", f"/p/{tenant.project.slug}/slos/new/"]
    for url in pages:
        page = client.get(url).content.decode()
        assert "data-no-channels" in page and f'href="/p/{tenant.project.slug}/channels/"' in page
        assert 'name="channels"' not in page  # no empty box to choose from
    Channel.objects.create(project=tenant.project, name="ops <b>hook</b>", kind="webhook", config={})
    for url in pages:
        page = client.get(url).content.decode()
        assert "data-no-channels" not in page and 'name="channels"' in page
        assert "ops &lt;b&gt;hook&lt;/b&gt;" in page
