"""The notification dispatcher: sends the Delivery outbox that the tick, incident actions, budgets and channel
tests write.

It claims due deliveries one at a time (a short transaction writes the claim's end on the row), sends with no
transaction open, and records the answer in another short transaction, so two dispatchers never notify the same
change twice, a dispatcher that dies mid-send leaves the row pending for the next one once its claim lapses, and
no write (SQLite has one writer at a time) waits for a slow receiver.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from slos.budgets import budget_alert_message
from slos.messages import alert_message, channel_test_message
from slos.models import Channel, Delivery, DeliveryAttempt, DeliveryStatus
from slos.transports import REGISTRY, unseal_secrets
from slos.transports.base import DeliveryError

log = logging.getLogger(__name__)

RETRY_BASE_SECONDS = 30


# A dispatcher's claim on a delivery lasts its send deadline plus this; one that died mid-send lets it lapse.
CLAIM_MARGIN_SECONDS = 30


RETRY_MAX_SECONDS = 3600


def retry_delay(attempts: int) -> timedelta:
    """30 s, 1 min, 2 min, … capped at an hour: a receiver that is down gets room to come back."""
    return timedelta(seconds=min(RETRY_BASE_SECONDS * 2 ** max(attempts - 1, 0), RETRY_MAX_SECONDS))


def deliveries_dispatch(*, limit: int = 100, now: datetime | None = None, seconds: float | None = None) -> int:
    """Send due deliveries one at a time until none is left, ``limit`` are handled, or ``seconds`` have passed
    (no new send starts after). Returns the deliveries handled."""
    handled = 0
    deadline = None if seconds is None else time.monotonic() + seconds
    while handled < limit and (deadline is None or time.monotonic() < deadline) and _dispatch_one(now):
        handled += 1
    return handled


@dataclass
class _Outcome:
    """What one send came to, recorded once the network call is over."""

    sent: bool = False
    skipped: bool = False
    response: str = ""
    elapsed_ms: float = 0.0
    retryable: bool = False


def _dispatch_one(now: datetime | None) -> bool:
    """Claim one due delivery (a short transaction), send it with no transaction open, record what it answered
    (another short transaction). No database lock or SQLite write transaction is held while a receiver takes its
    time, so deleting a channel, or any other write, never waits for a send."""
    moment = now or timezone.now()
    delivery = _delivery_claim(moment)
    if delivery is None:
        return False
    try:
        outcome = _deliver(delivery, moment)
    except Exception as exc:  # a bug in a transport: recorded as a failed attempt, never left blocking the queue
        log.exception("delivery %s failed unexpectedly", delivery.pk)
        outcome = _Outcome(response=f"Unexpected error: {exc!r}"[:500], retryable=True)
    _delivery_record(delivery, outcome, moment)
    return True


def _delivery_claim(moment: datetime) -> Delivery | None:
    """The next due delivery, claimed for the length of one send plus a margin: other dispatchers skip it until
    then. A dispatcher that dies mid-send leaves the claim to lapse, and the delivery is sent by the next one."""
    wall = timezone.now()  # claims run on the clock, whatever moment the caller evaluates
    with transaction.atomic():
        # A channel hears one incident's changes in order: a delivery waits while an earlier one of the same
        # incident to the same channel is still pending (a retried "fired" must not land after its "resolved").
        earlier = Delivery.objects.filter(
            channel=OuterRef("channel"),
            event__incident=OuterRef("event__incident"),
            status=DeliveryStatus.PENDING,
            event_id__lt=OuterRef("event_id"),
        )
        due = (
            Delivery.objects.filter(status=DeliveryStatus.PENDING, next_attempt_at__lte=moment)
            .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=wall))
            .exclude(Exists(earlier))
        )
        if connection.vendor == "postgresql":
            due = due.select_for_update(skip_locked=True, of=("self",))
        delivery = (
            due.select_related(
                "channel__project",
                "event__incident__slo__project",
                "event__author",
                "requested_by",
                "budget_alert__budget__project",
            )
            .order_by("next_attempt_at", "pk")
            .first()
        )
        if delivery is None:
            return None
        delivery.claimed_until = wall + timedelta(seconds=settings.SLO_DELIVERY_TIMEOUT_SECONDS + CLAIM_MARGIN_SECONDS)
        delivery.save(update_fields=["claimed_until"])
    return delivery


def _deliver(delivery: Delivery, now: datetime) -> _Outcome:
    """Build the message and send it; writes nothing."""
    channel = delivery.channel
    transport_class = REGISTRY.get(channel.kind)
    if transport_class is None:
        return _Outcome(response=f"Unknown channel type {channel.kind!r}.")
    transport = transport_class()
    try:
        config = transport.Config.model_validate(unseal_secrets(channel.kind, channel.config))
    except ValueError as exc:
        return _Outcome(response=f"Invalid channel configuration: {exc}")
    if delivery.event is not None:
        message = alert_message(delivery.event)
    elif delivery.budget_alert is not None:
        message = budget_alert_message(delivery.budget_alert)
    else:
        message = channel_test_message(channel=channel, config=config, requested_by=delivery.requested_by, now=now)
    if not transport.wants(config, message):
        return _Outcome(skipped=True)
    started = time.monotonic()
    try:
        response = transport.send(config, message, timeout=settings.SLO_DELIVERY_TIMEOUT_SECONDS)
    except DeliveryError as exc:
        return _Outcome(response=str(exc), elapsed_ms=(time.monotonic() - started) * 1000, retryable=exc.retryable)
    return _Outcome(sent=True, response=response, elapsed_ms=(time.monotonic() - started) * 1000)


@transaction.atomic
def _delivery_record(delivery: Delivery, outcome: _Outcome, now: datetime) -> None:
    """Write what the send came to, if the delivery is still ours: deleted meanwhile (with its channel, SLO or
    incident), or taken over after our claim lapsed, it is left alone."""
    held = Delivery.objects.filter(pk=delivery.pk, status=DeliveryStatus.PENDING, claimed_until=delivery.claimed_until)
    if connection.vendor == "postgresql":
        held = held.select_for_update(of=("self",))  # a delete of the channel waits for this short write
    if not held.exists():
        log.info("delivery %s was deleted or taken over while it was sent; its result is not recorded", delivery.pk)
        return
    delivery.claimed_until = None
    if outcome.skipped:
        delivery.status = DeliveryStatus.SKIPPED
        delivery.save(update_fields=["status", "claimed_until"])
        return
    delivery.attempts += 1
    if outcome.sent:
        delivery.status, delivery.sent_at, delivery.last_error = DeliveryStatus.SENT, now, ""
        delivery.save(update_fields=["attempts", "status", "sent_at", "last_error", "claimed_until"])
        DeliveryAttempt.objects.create(
            delivery=delivery, at=now, ok=True, response=outcome.response[:500], duration_ms=outcome.elapsed_ms
        )
        Channel.objects.filter(pk=delivery.channel_id).exclude(failing_since=None).update(
            failing_since=None, last_error=""
        )
        return
    error = outcome.response
    delivery.last_error = error
    # A test is tried once: the person who asked is looking at the log now, not in five hours.
    is_test = delivery.event_id is None and delivery.budget_alert_id is None
    give_up = not outcome.retryable or is_test or delivery.attempts >= settings.SLO_DELIVERY_MAX_ATTEMPTS
    if give_up:
        delivery.status = DeliveryStatus.FAILED
        Channel.objects.filter(pk=delivery.channel_id).update(failing_since=now, last_error=error)
    else:
        delivery.next_attempt_at = now + retry_delay(delivery.attempts)
    delivery.save(update_fields=["attempts", "last_error", "status", "next_attempt_at", "claimed_until"])
    DeliveryAttempt.objects.create(
        delivery=delivery,
        at=now,
        ok=False,
        retryable=outcome.retryable and not give_up,
        response=error[:500],
        duration_ms=outcome.elapsed_ms,
    )
    log.warning("delivery %s on channel %s failed: %s", delivery.pk, delivery.channel_id, error)
