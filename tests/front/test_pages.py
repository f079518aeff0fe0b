"""Server-rendered pages with Django's test client: access control, key management, escaping, filters."""

from __future__ import annotations

import re
import time

import pytest
from django.test import Client

from accounts.models import ApiKey, Role
from accounts.services import hash_secret, membership_set
from tests import otlp_build as ob
from tests.conftest import PASSWORD, Tenant
from traces.models import Trace


def login(client: Client, tenant: Tenant) -> Client:
    assert client.login(username=tenant.user.username, password=PASSWORD)
    return client


def send(client: Client, tenant: Tenant, spans: list, resource: dict | None = None) -> None:
    body = ob.request(spans, resource=resource).SerializeToString()
    response = client.post("/v1/traces", data=body, content_type="application/x-protobuf", headers=tenant.bearer)
    assert response.status_code == 200


@pytest.mark.django_db
def test_pages_need_login(client: Client, tenant: Tenant) -> None:
    for path in ("/", "/p/acme/traces/", "/p/acme/settings/"):
        response = client.get(path)
        assert response.status_code == 302
        assert response["Location"].startswith("/login/")


@pytest.mark.django_db
def test_member_of_a_gets_404_for_project_b(client: Client, tenant: Tenant, other_tenant: Tenant) -> None:
    trace_id = ob.new_trace_id()
    send(client, other_tenant, [ob.span(trace_id, name="secret-trace")])
    login(client, tenant)
    assert client.get("/p/globex/traces/").status_code == 404
    assert client.get(f"/p/globex/traces/{trace_id}/").status_code == 404
    assert client.get("/p/globex/settings/").status_code == 404
    # Nor does the trace leak through A's own pages.
    assert client.get(f"/p/acme/traces/{trace_id}/").status_code == 404
    assert b"secret-trace" not in client.get("/p/acme/traces/").content
    # The project switcher lists only A.
    home = client.get("/p/acme/traces/").content.decode()
    assert "globex" not in home


@pytest.mark.django_db
def test_home_redirects_to_first_project(client: Client, tenant: Tenant) -> None:
    login(client, tenant)
    assert client.get("/")["Location"] == "/p/acme/"


@pytest.mark.django_db
def test_admin_creates_key_shown_once_and_stored_hashed(client: Client, tenant: Tenant) -> None:
    login(client, tenant)
    response = client.post("/p/acme/settings/", {"create_key": "1", "key-name": "prod bot", "key-scopes": ["ingest"]})
    assert response.status_code == 302  # post/redirect/get: a reload cannot mint a second key
    page = client.get(response["Location"]).content.decode()
    match = re.search(r'id="new-secret-key">(sk-sre-[^<]+)<', page)
    assert match is not None
    secret = match.group(1)
    api_key = ApiKey.objects.get(name="prod bot")
    assert api_key.secret_hash == hash_secret(secret)
    assert secret not in api_key.secret_hash and api_key.secret_hint == secret[-4:]
    assert secret not in client.get("/p/acme/settings/").content.decode()
    # The new key works for ingest, and stops working once revoked.
    body = ob.request([ob.span(ob.new_trace_id())]).SerializeToString()
    auth = {"Authorization": f"Bearer {secret}"}
    assert client.post("/v1/traces", data=body, content_type="application/x-protobuf", headers=auth).status_code == 200
    response = client.post(f"/p/acme/settings/keys/{api_key.pk}/revoke/")
    assert response.status_code == 302
    assert client.post("/v1/traces", data=body, content_type="application/x-protobuf", headers=auth).status_code == 403


@pytest.mark.django_db
@pytest.mark.parametrize("role", [Role.VIEWER, Role.EDITOR])
def test_only_admins_manage_keys_and_members(client: Client, tenant: Tenant, role: str) -> None:
    membership_set(project=tenant.project, user=tenant.user, role=role)
    login(client, tenant)
    page = client.get("/p/acme/settings/")
    assert page.status_code == 200
    assert b"Create API key" not in page.content
    assert client.post("/p/acme/settings/", {"create_key": "1", "key-name": "x"}).status_code == 403
    assert client.post(f"/p/acme/settings/keys/{tenant.api_key.pk}/revoke/").status_code == 403
    tenant.api_key.refresh_from_db()
    assert tenant.api_key.revoked_at is None
    assert not ApiKey.objects.filter(name="x").exists()


@pytest.mark.django_db
def test_admin_adds_members_and_unknown_user_gets_a_form_error(client: Client, tenant: Tenant, other_tenant) -> None:
    login(client, tenant)
    response = client.post(
        "/p/acme/settings/", {"add_member": "1", "member-username": "nobody", "member-role": "viewer"}
    )
    assert response.status_code == 200
    assert "No user named" in response.content.decode()
    response = client.post("/p/acme/settings/", {"add_member": "1", "member-username": "bob", "member-role": "editor"})
    assert response.status_code == 302
    assert other_tenant.user.memberships.get(project=tenant.project).role == "editor"


@pytest.mark.django_db
def test_trace_pages_escape_untrusted_text(client: Client, tenant: Tenant) -> None:
    trace_id = ob.new_trace_id()
    evil = '<script>alert(1)</script><img src=x onerror="alert(2)">'
    send(client, tenant, [ob.span(trace_id, name=evil, attributes={"input.value": evil, "output.value": evil,
                                                                   "user.id": evil})],
         resource={"service.name": evil})  # fmt: skip
    login(client, tenant)
    for path in ("/p/acme/traces/", f"/p/acme/traces/{trace_id}/"):
        html = client.get(path).content.decode()
        assert "<script>alert(1)" not in html
        assert "<img src=x" not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


@pytest.mark.django_db
def test_trace_list_filters_live_in_the_url_and_bad_ones_are_explained(client: Client, tenant: Tenant) -> None:
    for service in ("alpha", "beta"):
        send(client, tenant, [ob.span(ob.new_trace_id(), name=f"{service}-op")], resource={"service.name": service})
    login(client, tenant)
    html = client.get("/p/acme/traces/", {"service": "beta"}).content.decode()
    assert "beta-op" in html and "alpha-op" not in html
    html = client.get("/p/acme/traces/", {"min_duration_ms": "-5", "since": "soon"}).content.decode()
    assert "greater than or equal to 0" in html
    assert "Enter a valid date/time" in html
    response = client.get("/p/acme/traces/", {"cursor": "garbage"})
    assert response.status_code == 200 and "cursor is not valid" in response.content.decode()


@pytest.mark.django_db
def test_trace_list_pages_with_keyset_cursor(client: Client, tenant: Tenant) -> None:
    start = (time.time_ns() // 10**9 - 2 * 86400) * 10**9  # two days ago: within the raw retention
    spans = [ob.span(ob.new_trace_id(), name=f"op-{i:03d}", start_ns=start + i * 10**9) for i in range(60)]
    send(client, tenant, spans)
    login(client, tenant)
    first = client.get("/p/acme/traces/").content.decode()
    assert "op-059" in first and "op-010" in first and "op-009" not in first
    match = re.search(r'href="\?([^"]*cursor=[^"]+)" rel="next"', first)
    assert match is not None
    next_href = match.group(1).replace("&amp;", "&")
    second = client.get("/p/acme/traces/?" + next_href).content.decode()
    assert "op-009" in second and "op-000" in second and "op-010" not in second
    assert 'rel="next"' not in second
    assert Trace.objects.count() == 60


@pytest.mark.django_db
def test_not_found_pages_are_styled_and_say_what_is_missing(client: Client, tenant: Tenant) -> None:
    client.force_login(tenant.user)
    response = client.get("/p/acme/service/?name=%3Cb%3Enope%3C/b%3E")
    page = response.content.decode()
    assert response.status_code == 404
    assert "No such service in this project." in page and "your projects" in page
    assert 'class="top"' in page  # the app's own header, not Django's bare page
