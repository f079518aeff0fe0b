"""A slow receiver against real Celery workers, started the way scripts/run.sh starts them (on PostgreSQL and Redis,
and on SQLite and the filesystem broker): a webhook that trickles a byte every 2 s is cut off at the delivery
deadline, and traces sent meanwhile are scored without waiting for it (notifications have their own queue and
worker, and the dispatcher holds no transaction while it sends, so SQLite's single writer stays free)."""

from __future__ import annotations

import socket
import threading
from typing import Any

import pytest

from evals.models import Score
from slos.models import Channel, Delivery, DeliveryAttempt, DeliveryStatus
from slos.services import channel_test
from tests import processes
from tests.conftest import Tenant
from tests.processes import post_otlp, start_worker, stop, wait_for
from tests.receiver import raw_server, trickle
from tests.scoring_data import GROUNDED, rag_spans

# Shared fixtures: pytest finds a fixture by its name in the test's module.
clean_queues = processes.clean_queues

DEADLINE = 12  # seconds: SRE4AI_SLO_DELIVERY_TIMEOUT_SECONDS of the notify worker


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("clean_queues")
def test_a_trickling_webhook_is_cut_at_the_deadline_while_scoring_goes_on(live_server: Any, tenant: Tenant) -> None:
    sending = threading.Event()
    slow = trickle(2.0)

    def answer(conn: socket.socket) -> None:
        sending.set()
        slow(conn)

    main = start_worker("main", queues=("celery", "scoring", "backfill"))
    notify = start_worker("notify", queues=("notify",), SRE4AI_SLO_DELIVERY_TIMEOUT_SECONDS=str(DEADLINE))
    try:
        with raw_server(answer) as url:
            channel = Channel.objects.create(project=tenant.project, name="slow", kind="webhook", config={"url": url})
            channel_test(channel=channel, user=tenant.user)  # queued on commit, sent by the notify worker
            assert sending.wait(60), "the notify worker never called the receiver"

            spans = [s for _ in range(5) for s in rag_spans(GROUNDED)]
            post_otlp(live_server, tenant, spans)
            wait_for(lambda: Score.objects.filter(name="grounding").count() == 5, DEADLINE - 2,
                     "scoring while the webhook is still trickling")  # fmt: skip
            assert not DeliveryAttempt.objects.exists()  # the send was still in flight

            wait_for(DeliveryAttempt.objects.exists, DEADLINE + 10, "the send to be cut off")
    finally:
        stop(main)
        stop(notify)
    attempt = DeliveryAttempt.objects.get()
    assert not attempt.ok and f"no complete answer within {DEADLINE} s" in attempt.response
    assert DEADLINE * 1000 - 500 < attempt.duration_ms < DEADLINE * 1000 + 2000  # cut at the deadline, not later
    assert Delivery.objects.get().status == DeliveryStatus.FAILED  # a test is tried once
