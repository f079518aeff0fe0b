"""Channel secrets at rest: webhook HMAC keys, Slack webhook URLs and PagerDuty routing keys are stored encrypted
(accounts.vault); the transports get them decrypted; rows from before are sealed by the migration."""

from __future__ import annotations

import json

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test import Client

from accounts.models import Project
from slos.dispatch import deliveries_dispatch
from slos.models import Channel
from slos.services import channel_test
from slos.transports import unseal_secrets
from slos.transports.webhook import verify_signature
from tests.conftest import PASSWORD, Tenant
from tests.receiver import Receiver

HMAC_KEY = "hmac-key-0123456789-abcdef"
SLACK_URL = "https://hooks.slack.com/services/T000/B000/token-abcdef123456"
ROUTING_KEY = "R0123456789abcdef0123456789abcde"


def _stored_config(channel: Channel) -> str:
    """The config as PostgreSQL holds it, read past the ORM."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT CAST(config AS TEXT) FROM slos_channel WHERE id = %s", [channel.pk])
        return cursor.fetchone()[0]


@pytest.mark.django_db
def test_secrets_saved_from_the_page_are_encrypted_and_the_receiver_gets_a_valid_signature(
    tenant: Tenant, receiver: Receiver
) -> None:
    client = Client()
    assert client.login(username="alice", password=PASSWORD)
    for name, kind, config in [
        ("hook", "webhook", {"url": receiver.url + "/hook", "secret": HMAC_KEY}),
        ("slack", "slack", {"webhook_url": SLACK_URL}),
        ("pd", "pagerduty", {"routing_key": ROUTING_KEY}),
    ]:
        saved = client.post("/p/acme/channels/", {"name": name, "kind": kind, "config": json.dumps(config)})
        assert saved.status_code == 302, saved.content
    for channel, secret in [("hook", HMAC_KEY), ("slack", "token-abcdef123456"), ("pd", ROUTING_KEY)]:
        stored = _stored_config(Channel.objects.get(project=tenant.project, name=channel))
        assert secret not in stored and "sealed:" in stored
    hook = Channel.objects.get(project=tenant.project, name="hook")
    assert receiver.url + "/hook" in _stored_config(hook)  # the address stays readable for admins
    channel_test(channel=hook, user=tenant.user)
    assert deliveries_dispatch() == 1
    sent = receiver.requests[0]
    assert verify_signature(HMAC_KEY, sent.headers["x-sre4ai-timestamp"], sent.body, sent.headers["x-sre4ai-signature"])
    page = client.get("/p/acme/channels/").content.decode()
    assert HMAC_KEY not in page and "sealed:" not in page and "token-abcdef123456" not in page


@pytest.mark.postgres_only("migrating back and forth on SQLite rebuilds tables under the tests that share its file")
@pytest.mark.django_db(transaction=True)
def test_migration_seals_secrets_stored_in_plain_text() -> None:
    executor = MigrationExecutor(connection)
    before = [("slos", "0004_delivery_test_messages")]
    executor.migrate(before)
    project = Project.objects.create(slug="old", name="old")  # accounts is not rolled back: today's model
    old = executor.loader.project_state(before).apps.get_model("slos", "Channel")
    old.objects.create(project_id=project.pk, name="hook", kind="webhook",
                       config={"url": "https://x.test/", "secret": HMAC_KEY})  # fmt: skip
    old.objects.create(project_id=project.pk, name="mail", kind="email", config={"to": ["a@example.com"]})
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
    hook = Channel.objects.get(name="hook")
    assert HMAC_KEY not in _stored_config(hook)
    assert unseal_secrets("webhook", hook.config) == {"url": "https://x.test/", "secret": HMAC_KEY}
    assert Channel.objects.get(name="mail").config == {"to": ["a@example.com"]}
