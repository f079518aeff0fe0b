"""The notification dispatcher against real local HTTP servers: each state change is sent once per channel (also
with two dispatchers racing), retried with backoff on a transient failure, marked failed for good on a permanent
one, and never lost when a dispatcher dies mid-send."""

from __future__ import annotations

import socket
import threading
import time
from datetime import timedelta
from typing import Any

import pytest
from django.core import mail
from django.db import connection
from django.test import Client
from django.utils import timezone

from slos import services
from slos.dispatch import deliveries_dispatch
from slos.models import Channel, Delivery, DeliveryAttempt, DeliveryStatus, Incident
from slos.services import slos_evaluate
from slos.transports import REGISTRY, unseal_secrets
from slos.transports.webhook import Webhook, verify_signature
from tests.conftest import PASSWORD, Tenant
from tests.receiver import Receiver, raw_server
from tests.slo_data import at, create_slo, ingest, make_trace, recompute

SECRET = "0123456789abcdef-shared"
ROUTING_KEY = "R0123456789abcdef0123456789abcde"


def fire(tenant: Tenant, channels: list[Channel]) -> Incident:
    """An error SLO (90%, page when burn > 2 over 10m and 2m) whose rule fires at minute 12."""
    ingest(tenant, [make_trace(m) for m in range(10)])
    recompute()
    slo = create_slo(tenant.project, channels=channels)
    services.sli_history_rebuild(slo_id=slo.pk, now=at(9))
    ingest(tenant, [make_trace(m, status="error") for m in (10, 11, 12)])
    recompute()
    assert slos_evaluate(now=at(12)).changes == 1
    return Incident.objects.get(slo=slo)


def webhook(tenant: Tenant, url: str, name: str = "hook") -> Channel:
    return Channel.objects.create(project=tenant.project, name=name, kind="webhook",
                                  config={"url": url, "secret": SECRET})  # fmt: skip


@pytest.mark.django_db
def test_a_firing_rule_is_sent_once_signed_with_every_fact(tenant: Tenant, receiver: Receiver) -> None:
    incident = fire(tenant, [webhook(tenant, receiver.url + "/hook")])
    assert deliveries_dispatch(now=at(12)) == 1
    assert deliveries_dispatch(now=at(12)) == 0  # nothing left: sent once
    assert len(receiver.requests) == 1
    sent = receiver.requests[0]
    assert verify_signature(SECRET, sent.headers["x-sre4ai-timestamp"], sent.body, sent.headers["x-sre4ai-signature"])
    body = sent.json()
    assert body["kind"] == "fired" and body["severity"] == "page" and body["incident_id"] == incident.pk
    assert (body["burn_rate_long"], body["burn_rate_short"], body["objective"]) == ("3", "10", "90%")
    assert body["incident_url"].endswith(f"/p/acme/incidents/{incident.pk}/")
    assert body["rule"] == "page when the burn rate exceeds 2 over 10m and over 2m"
    assert sent.headers["x-sre4ai-event-id"] == str(body["event_id"])
    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.SENT, 1)
    attempt = DeliveryAttempt.objects.get()
    assert attempt.ok and attempt.response.startswith("200")


@pytest.mark.django_db
def test_a_transient_failure_is_retried_with_backoff_then_sent(tenant: Tenant, receiver: Receiver) -> None:
    receiver.statuses = [503, 200]
    fire(tenant, [webhook(tenant, receiver.url)])
    assert deliveries_dispatch(now=at(12)) == 1
    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.PENDING, 1)
    assert delivery.next_attempt_at == at(12) + timedelta(seconds=30)
    assert deliveries_dispatch(now=at(12) + timedelta(seconds=29)) == 0  # not due yet
    assert deliveries_dispatch(now=at(12) + timedelta(seconds=30)) == 1
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.SENT, 2)
    assert [a.ok for a in DeliveryAttempt.objects.order_by("pk")] == [False, True]
    assert DeliveryAttempt.objects.order_by("pk").first().retryable  # type: ignore[union-attr]
    # Both attempts carried the same idempotency key.
    assert len({r.headers["x-sre4ai-event-id"] for r in receiver.requests}) == 1


@pytest.mark.django_db
def test_a_permanent_failure_marks_the_channel_failing_in_the_ui(tenant: Tenant, receiver: Receiver) -> None:
    receiver.statuses, receiver.body = [404], b"no_service"
    fire(tenant, [webhook(tenant, receiver.url, name="broken-hook")])
    deliveries_dispatch(now=at(12))
    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.FAILED, 1)
    channel = Channel.objects.get()
    assert channel.failing_since == at(12) and "404" in channel.last_error
    client = Client()
    assert client.login(username="alice", password=PASSWORD)
    html = client.get("/p/acme/channels/").content.decode()
    assert "failing since" in html and "no_service" in html
    assert SECRET not in html  # secrets are never shown back


@pytest.mark.django_db
def test_retries_stop_after_the_configured_attempts(tenant: Tenant, receiver: Receiver, settings: Any) -> None:
    settings.SLO_DELIVERY_MAX_ATTEMPTS = 3
    receiver.statuses = [500]
    fire(tenant, [webhook(tenant, receiver.url)])
    moment = at(12)
    for _ in range(5):
        deliveries_dispatch(now=moment)
        moment += timedelta(hours=1)
    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.attempts, len(receiver.requests)) == (DeliveryStatus.FAILED, 3, 3)


@pytest.mark.django_db
def test_a_dispatcher_that_dies_mid_send_loses_nothing(
    tenant: Tenant, receiver: Receiver, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    fire(tenant, [webhook(tenant, receiver.url)])

    def die(*args: Any, **kwargs: Any) -> str:
        raise SystemExit("worker killed")

    with monkeypatch.context() as patch:
        patch.setattr(Webhook, "send", die)
        with pytest.raises(SystemExit):
            deliveries_dispatch(now=at(12))
    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.PENDING, 0)  # nothing recorded
    # Its claim lasts one send deadline and a margin: no other dispatcher sends it meanwhile, the next one does.
    assert delivery.claimed_until is not None
    left = (delivery.claimed_until - timezone.now()).total_seconds()
    assert settings.SLO_DELIVERY_TIMEOUT_SECONDS < left <= settings.SLO_DELIVERY_TIMEOUT_SECONDS + 30
    assert deliveries_dispatch(now=at(12)) == 0
    Delivery.objects.update(claimed_until=timezone.now() - timedelta(seconds=1))  # the claim lapsed
    assert deliveries_dispatch(now=at(12)) == 1
    assert len(receiver.requests) == 1
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.claimed_until) == (DeliveryStatus.SENT, 1, None)


@pytest.mark.postgres_only("two dispatchers race for the outbox: PostgreSQL's SKIP LOCKED")
@pytest.mark.django_db(transaction=True)
def test_two_dispatchers_racing_send_each_change_once(tenant: Tenant, receiver: Receiver) -> None:
    assert connection.vendor == "postgresql"
    channels = [webhook(tenant, f"{receiver.url}/{i}", name=f"hook-{i}") for i in range(6)]
    fire(tenant, channels)
    barrier = threading.Barrier(2)

    def run() -> None:
        barrier.wait()
        try:
            deliveries_dispatch(now=at(12))
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.path for r in receiver.requests) == [f"/{i}" for i in range(6)]
    assert Delivery.objects.filter(status=DeliveryStatus.SENT, attempts=1).count() == 6


@pytest.mark.django_db
def test_pagerduty_triggers_acknowledges_and_resolves_one_alert(tenant: Tenant, receiver: Receiver) -> None:
    receiver.statuses = [202]
    pd = Channel.objects.create(project=tenant.project, name="pd", kind="pagerduty",
                                config={"routing_key": ROUTING_KEY, "events_url": receiver.url + "/v2/enqueue"})  # fmt: skip
    incident = fire(tenant, [pd])
    deliveries_dispatch(now=at(12))
    services.incident_acknowledge(incident_id=incident.pk, user=tenant.user, now=at(13))
    deliveries_dispatch(now=at(13))
    ingest(tenant, [make_trace(14), make_trace(15)])
    recompute()
    slos_evaluate(now=at(15))  # the rule clears (not sent to PagerDuty), the incident resolves (sent)
    deliveries_dispatch(now=at(15))
    actions = [(r.json()["event_action"], r.json()["dedup_key"], r.json()["routing_key"]) for r in receiver.requests]
    key = f"sre4ai-acme-incident-{incident.pk}"
    assert actions == [("trigger", key, ROUTING_KEY), ("acknowledge", key, ROUTING_KEY), ("resolve", key, ROUTING_KEY)]
    assert receiver.requests[0].json()["payload"]["severity"] == "critical"
    assert Delivery.objects.filter(status=DeliveryStatus.SKIPPED).count() == 1  # the "cleared"


@pytest.mark.django_db
def test_email_goes_through_django_mail_and_severity_filters_apply(tenant: Tenant) -> None:
    pager = Channel.objects.create(project=tenant.project, name="mail", kind="email",
                                   config={"to": ["oncall@example.com"], "severities": ["page"]})  # fmt: skip
    tickets = Channel.objects.create(project=tenant.project, name="tickets", kind="email",
                                     config={"to": ["team@example.com"], "severities": ["ticket"]})  # fmt: skip
    fire(tenant, [pager, tickets])
    deliveries_dispatch(now=at(12))
    assert [m.to for m in mail.outbox] == [["oncall@example.com"]]
    assert "FIRING" in mail.outbox[0].subject and "Answers without errors" in mail.outbox[0].subject
    assert Delivery.objects.get(channel=tickets).status == DeliveryStatus.SKIPPED


@pytest.mark.django_db
def test_channels_are_edited_without_showing_secrets_and_tested_from_the_page(
    tenant: Tenant, receiver: Receiver
) -> None:
    channel = webhook(tenant, "https://old.example.com/hook")
    client = Client()
    assert client.login(username="alice", password=PASSWORD)
    form = client.get(f"/p/acme/channels/{channel.pk}/edit/").content.decode()
    assert "old.example.com" in form and SECRET not in form
    saved = client.post(f"/p/acme/channels/{channel.pk}/edit/",
                        {"name": "hook", "kind": "webhook", "config": f'{{"url": "{receiver.url}/new"}}'})  # fmt: skip
    assert saved.status_code == 302
    channel.refresh_from_db()
    assert channel.config["url"] == receiver.url + "/new" and SECRET not in str(channel.config)  # sealed at rest
    assert unseal_secrets("webhook", channel.config)["secret"] == SECRET  # kept
    # Send test only queues the message (no web thread waits on the receiver); the dispatcher sends it.
    page = client.post(f"/p/acme/channels/{channel.pk}/test/", follow=True).content.decode()
    assert "Test queued for “hook”" in page and "Test asked for by alice" in page
    assert receiver.requests == []
    assert deliveries_dispatch() == 1
    assert len(receiver.requests) == 1 and receiver.requests[0].path == "/new"
    sent = receiver.requests[0]
    assert sent.json()["summary"] == "Test notification from sre4ai (project acme) sent by alice"
    assert verify_signature(SECRET, sent.headers["x-sre4ai-timestamp"], sent.body, sent.headers["x-sre4ai-signature"])
    receiver.statuses = [503]
    client.post(f"/p/acme/channels/{channel.pk}/test/")
    assert deliveries_dispatch() == 1
    failed = Delivery.objects.order_by("pk").last()
    assert failed is not None and (failed.status, failed.attempts) == (DeliveryStatus.FAILED, 1)  # a test: once
    page = client.get("/p/acme/channels/").content.decode()
    assert page.count("Test asked for by alice") == 2 and "answered 503" in page
    bad = client.post(f"/p/acme/channels/{channel.pk}/edit/", {"name": "hook", "kind": "webhook", "config": "{"})
    assert bad.status_code == 400


@pytest.mark.django_db
def test_a_retried_fired_is_never_overtaken_by_its_resolved(tenant: Tenant, receiver: Receiver) -> None:
    receiver.statuses = [503, 200]
    incident = fire(tenant, [webhook(tenant, receiver.url)])
    deliveries_dispatch(now=at(12))  # "fired" fails, retry in 30 s
    services.incident_resolve(incident_id=incident.pk, user=tenant.user, now=at(12) + timedelta(seconds=10))
    assert deliveries_dispatch(now=at(12) + timedelta(seconds=10)) == 0  # "resolved" waits for "fired"
    assert deliveries_dispatch(now=at(12) + timedelta(seconds=30)) == 2
    assert [r.json()["kind"] for r in receiver.requests] == ["fired", "fired", "resolved"]


@pytest.mark.django_db
def test_an_unexpected_error_is_logged_as_an_attempt_and_blocks_no_other_channel(
    tenant: Tenant, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = Channel.objects.create(project=tenant.project, name="mail", kind="email",
                                    config={"to": ["oncall@example.com"]})  # fmt: skip
    fire(tenant, [broken, webhook(tenant, receiver.url)])

    def bug(*args: Any, **kwargs: Any) -> str:
        raise RuntimeError("a bug in a transport")

    monkeypatch.setattr(REGISTRY["email"], "send", bug)
    assert deliveries_dispatch(now=at(12)) == 2
    assert len(receiver.requests) == 1  # the webhook went out
    failed = Delivery.objects.get(channel=broken)
    assert (failed.status, failed.attempts) == (DeliveryStatus.PENDING, 1)
    attempt = DeliveryAttempt.objects.get(delivery=failed)
    assert not attempt.ok and attempt.retryable and "a bug in a transport" in attempt.response


@pytest.mark.django_db
def test_a_connection_dropped_mid_headers_is_a_failed_retryable_attempt(tenant: Tenant) -> None:
    def half_a_head(conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/pl")

    with raw_server(half_a_head) as url:
        fire(tenant, [webhook(tenant, url)])
        assert deliveries_dispatch(now=at(12)) == 1
    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.sent_at) == (DeliveryStatus.PENDING, 1, None)
    attempt = DeliveryAttempt.objects.get()
    assert not attempt.ok and attempt.retryable and "connection failed" in attempt.response


@pytest.mark.django_db
def test_an_internal_address_is_refused_unless_allowed(tenant: Tenant, receiver: Receiver, settings: Any) -> None:
    settings.SRE4AI_OUTBOUND_ALLOW = []
    fire(tenant, [webhook(tenant, receiver.url)])
    assert deliveries_dispatch(now=at(12)) == 1
    assert receiver.requests == []
    delivery = Delivery.objects.get()
    assert delivery.status == DeliveryStatus.FAILED  # permanent: the configuration must change
    assert "internal address" in delivery.last_error and "SRE4AI_OUTBOUND_ALLOW" in delivery.last_error


@pytest.mark.django_db(transaction=True)
def test_deleting_a_channel_while_it_sends_works_at_once(tenant: Tenant, settings: Any) -> None:
    """No lock and no SQLite write transaction is held during the send: the delete neither waits for the receiver
    nor is refused, and the dispatcher drops the result of a delivery that is gone."""
    settings.SLO_DELIVERY_TIMEOUT_SECONDS = 10
    sending = threading.Event()

    def slow(conn: socket.socket) -> None:
        sending.set()
        time.sleep(3)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    errors: list[BaseException] = []
    with raw_server(slow) as url:
        channel = webhook(tenant, url)
        fire(tenant, [channel])

        def send() -> None:
            try:
                deliveries_dispatch(now=at(12))
            except BaseException as exc:  # reported by the assertion below
                errors.append(exc)
            finally:
                connection.close()  # this thread's own connection

        client = Client()
        assert client.login(username="alice", password=PASSWORD)  # signing in writes too: before the send
        sending_thread = threading.Thread(target=send)
        sending_thread.start()
        try:
            assert sending.wait(10), "the dispatcher never called the receiver"
            started = time.monotonic()
            response = client.post(f"/p/acme/channels/{channel.pk}/delete/")
            took = time.monotonic() - started
            assert response.status_code == 302
            assert took < 2, f"the delete waited {took:.1f} s for the send"
            assert not Channel.objects.filter(pk=channel.pk).exists()
        finally:
            sending_thread.join()
    assert errors == []
    assert not Delivery.objects.exists() and not DeliveryAttempt.objects.exists()
