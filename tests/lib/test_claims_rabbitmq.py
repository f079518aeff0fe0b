"""Beat counts the messages waiting in a queue before sending lost jobs again (sre4ai_web/lib/claims.py,
``waiting_messages``). On RabbitMQ (docs/operations.md, "Running more than one node") the count must come from a
passive declaration: Celery declares its queues durable, and RabbitMQ refuses a plain declaration with other options
(PRECONDITION_FAILED), which left beat without a count and so without its guard against flooding a backlog.

Runs against a RabbitMQ on 127.0.0.1:5672 (the default guest account) when there is one, else skips."""

from __future__ import annotations

import socket
import uuid

import pytest
from kombu import Connection, Exchange, Queue

from sre4ai_web.celery import app
from sre4ai_web.lib.claims import waiting_messages

AMQP_URL = "amqp://guest:guest@127.0.0.1:5672//"


def _rabbitmq_up() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 5672), timeout=0.5).close()
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _rabbitmq_up(), reason="no RabbitMQ on 127.0.0.1:5672")
def test_messages_waiting_in_a_durable_rabbitmq_queue_are_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"sre4ai-test-waiting-{uuid.uuid4().hex[:8]}"
    queue = Queue(name, Exchange(name, type="direct"), routing_key=name, durable=True)  # as Celery declares its own
    # Publisher confirms: each publish returns once RabbitMQ has queued the message (without them the count raced
    # the publishes and could read 1 of 3).
    with Connection(AMQP_URL, transport_options={"confirm_publish": True}) as conn:
        producer = conn.Producer()
        bound = queue(conn.default_channel)
        bound.declare()
        try:
            for n in range(3):
                producer.publish({"n": n}, exchange=queue.exchange, routing_key=name, declare=[queue])
            monkeypatch.setattr(app.conf, "broker_read_url", AMQP_URL)
            assert waiting_messages(name) == 3
            assert waiting_messages(f"{name}-never-declared") == 0
        finally:
            bound.delete()
            queue.exchange(conn.default_channel).delete()
