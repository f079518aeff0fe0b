"""Read replicas (sre4ai_web/replica.py): pages and read APIs read the replica, writes and whatever must see its own
write read the primary, a lagging replica makes pages say "data as of …", one that does not answer is skipped, and
without a replica everything uses the primary.

A second database alias on the same database stands in for the replica: queries counted per connection show which
one each read went to."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.conf import settings
from django.db import OperationalError, connections, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext

from sre4ai_web import replica
from tests.conftest import PASSWORD, Tenant
from tests.replica_db import REPLICA
from traces.models import SavedView, Trace

BOTH = pytest.mark.django_db(transaction=True, databases=["default", REPLICA])
DATA_APPS = ("traces_", "evals_", "rollups_", "slos_", "guard_")


@pytest.fixture
def with_replica(settings: Any) -> Iterator[None]:
    settings.SRE4AI_REPLICA_ALIAS = REPLICA
    settings.DATABASE_ROUTERS = ["sre4ai_web.replica.ReplicaRouter"]
    replica.status_forget()
    yield
    replica.status_forget()


TABLE = re.compile(r"\b((?:traces|evals|rollups|slos|guard|accounts|auth|django)_[a-z_]+)")


def tables(queries: CaptureQueriesContext) -> set[str]:
    return {name for q in queries.captured_queries for name in TABLE.findall(q["sql"])}


def data_tables(queries: CaptureQueriesContext) -> set[str]:
    return {t for t in tables(queries) if t.startswith(DATA_APPS)}


class Counted:
    """Queries on the primary and on the replica during a block."""

    def __enter__(self) -> Counted:
        self.primary = CaptureQueriesContext(connections["default"]).__enter__()
        self.replica = CaptureQueriesContext(connections[REPLICA]).__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.replica.__exit__(*exc)
        self.primary.__exit__(*exc)


def send(client: Client, tenant: Tenant, n: int = 3) -> None:
    start = datetime.now(UTC) - timedelta(minutes=30)
    traces = [{"trace_id": f"{i + 1:032x}", "service": "bot",
               "spans": [{"name": f"chat-{i}", "kind": "llm", "start_time": (start + timedelta(seconds=i)).isoformat(),
                          "end_time": (start + timedelta(seconds=i + 1)).isoformat(), "input": "hello"}]}
              for i in range(n)]  # fmt: skip
    response = client.post("/api/v1/traces", data=json.dumps({"traces": traces}), content_type="application/json",
                           headers=tenant.bearer)  # fmt: skip
    assert response.status_code == 200, response.content


@BOTH
def test_pages_and_read_apis_read_the_replica_and_writes_go_to_the_primary(tenant: Tenant, with_replica: None) -> None:
    client = Client()
    with Counted() as ingest:
        send(client, tenant)
    assert "traces_span" in data_tables(ingest.primary)
    assert ingest.replica.captured_queries == []

    assert client.login(username="alice", password=PASSWORD)
    with Counted() as page:
        response = client.get("/p/acme/traces/")
    assert response.status_code == 200 and "chat-2" in response.content.decode()
    assert "traces_trace" in data_tables(page.replica)
    assert data_tables(page.primary) == set()  # the primary answered only for the session, user and membership
    assert {"django_session", "auth_user", "accounts_membership"} <= tables(page.primary)
    assert "X-Data-As-Of" not in response

    with Counted() as api:
        response = Client().get("/api/v1/traces", headers=tenant.bearer)
    assert response.status_code == 200 and len(response.json()["items"]) == 3
    assert "traces_trace" in data_tables(api.replica)
    assert data_tables(api.primary) == set() and "accounts_apikey" in tables(api.primary)


@BOTH
def test_who_just_wrote_reads_the_primary(tenant: Tenant, with_replica: None) -> None:
    client = Client()
    send(client, tenant)
    assert client.login(username="alice", password=PASSWORD)
    with Counted() as save:
        response = client.post("/p/acme/traces/views/", {"name": "errors", "query": "status=error"})
    assert response.status_code == 302 and SavedView.objects.filter(name="errors").exists()
    assert save.replica.captured_queries == []
    assert response.cookies[replica.PIN_COOKIE]["max-age"] == int(settings.SRE4AI_REPLICA_MAX_LAG_SECONDS) + 1
    # The list after the save, within the lag threshold: from the primary, with the view just saved.
    with Counted() as after:
        page = client.get(response["Location"])
    assert "errors" in page.content.decode()
    assert after.replica.captured_queries == [] and "traces_savedview" in data_tables(after.primary)
    # Later (the cookie expired), reads go to the replica again.
    client.cookies[replica.PIN_COOKIE] = "0"
    with Counted() as later:
        client.get("/p/acme/traces/")
    assert "traces_savedview" in data_tables(later.replica)


@BOTH
def test_a_request_that_wrote_reads_its_own_rows_from_the_primary_as_do_transactions(
    tenant: Tenant, with_replica: None
) -> None:
    send(Client(), tenant, n=1)
    trace = Trace.objects.get()
    with replica.replica_reads(True) as reads, Counted() as counted:
        assert Trace.objects.count() == 1  # before writing: the replica
        with transaction.atomic():
            assert Trace.objects.filter(pk=trace.pk).exists()  # in a transaction: the primary
        Trace.objects.filter(pk=trace.pk).update(name="renamed")
        assert reads.wrote
        assert Trace.objects.get().name == "renamed"  # after writing: the primary
    replica_reads, primary_reads = counted.replica.captured_queries, counted.primary.captured_queries
    assert len(replica_reads) == 1 and "COUNT" in replica_reads[0]["sql"]
    statements = [q["sql"].split()[0] for q in primary_reads]
    assert [s for s in statements if s in ("SELECT", "UPDATE")] == ["SELECT", "UPDATE", "SELECT"]
    # Outside a request (a Celery task, a command): the primary.
    with Counted() as task:
        assert Trace.objects.get().name == "renamed"
    assert task.replica.captured_queries == []


@BOTH
def test_a_lagging_replica_makes_pages_say_data_as_of(
    tenant: Tenant, with_replica: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = Client()
    send(client, tenant)
    assert client.login(username="alice", password=PASSWORD)
    lag = {"seconds": 3.0}
    monkeypatch.setattr(replica, "measure_lag", lambda connection: lag["seconds"])
    assert "Data as of" not in client.get("/p/acme/traces/").content.decode()  # within the threshold (10 s)

    lag["seconds"] = 125.0
    replica.status_forget()
    before = datetime.now(UTC)
    response = client.get("/p/acme/traces/")
    html = response.content.decode()
    assert "Data as of" in html and "replica that is behind" in html
    as_of = datetime.fromisoformat(response["X-Data-As-Of"])
    assert before - timedelta(seconds=127) < as_of < datetime.now(UTC) - timedelta(seconds=124)
    assert f"{as_of:%H:%M:%S} UTC" in html
    api = Client().get("/api/v1/traces", headers=tenant.bearer)
    assert api.status_code == 200 and "X-Data-As-Of" in api
    # Ingest never reads the replica: no banner, no header.
    with Counted() as ingest:
        send(Client(), tenant, n=1)
    assert ingest.replica.captured_queries == []


@BOTH
def test_a_replica_that_does_not_answer_is_skipped(
    tenant: Tenant, with_replica: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    def down(connection: Any) -> float:
        raise OperationalError("connection refused")

    monkeypatch.setattr(replica, "measure_lag", down)
    client = Client()
    send(client, tenant)
    assert client.login(username="alice", password=PASSWORD)
    with Counted() as page:
        response = client.get("/p/acme/traces/")
    assert response.status_code == 200 and "chat-1" in response.content.decode()
    assert page.replica.captured_queries == [] and "traces_trace" in data_tables(page.primary)


@pytest.mark.django_db
def test_without_a_replica_everything_reads_the_primary(client: Client, tenant: Tenant) -> None:
    assert settings.SRE4AI_REPLICA_ALIAS is None and settings.DATABASE_ROUTERS == []
    send(client, tenant)
    assert client.login(username="alice", password=PASSWORD)
    with CaptureQueriesContext(connections["default"]) as primary:
        response = client.get("/p/acme/traces/")
    assert response.status_code == 200 and "traces_trace" in data_tables(primary)
    assert replica.ReplicaRouter().db_for_read(Trace) is None  # no request state: Django's default


@pytest.mark.postgres_only("PostgreSQL's replication functions")
@pytest.mark.django_db
def test_lag_of_a_server_that_is_not_a_standby_is_zero() -> None:
    assert replica.measure_lag(connections["default"]) == 0.0
