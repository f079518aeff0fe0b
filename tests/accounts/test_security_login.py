"""Sign-in throttling: repeated failures lock the username (and the client address) for a while, the login page
says for how long, and the correct password does not get in while locked."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from accounts.models import LoginThrottle
from tests.conftest import PASSWORD, Tenant


def _login(client: Client, username: str, password: str, ip: str = "198.51.100.7", path: str = "/login/") -> Any:
    return client.post(path, {"username": username, "password": password}, REMOTE_ADDR=ip)


@pytest.mark.django_db
def test_five_failures_lock_the_account_and_the_page_says_how_long(client: Client, tenant: Tenant,
                                                                    settings: Any) -> None:  # fmt: skip
    settings.SRE4AI_LOGIN_LOCKOUT_SECONDS = 900
    for _ in range(4):
        page = _login(client, "alice", "wrong").content.decode()
        assert "Please enter a correct username and password" in page
    # A post without a password is neither a failure nor a success: it must not clear the count.
    _login(client, "alice", "")
    locked = _login(client, "alice", "wrong").content.decode()
    assert "Too many failed sign-ins" in locked and "try again in 15 minutes" in locked
    # The right password does not get in while locked, from another address either (the account is locked).
    refused = _login(client, "alice", PASSWORD, ip="203.0.113.9")
    assert refused.status_code == 200 and "try again in 15 minutes" in refused.content.decode()
    assert "_auth_user_id" not in client.session
    # The admin's sign-in is the same door.
    admin = _login(client, "alice", PASSWORD, path="/admin/login/")
    assert "Too many failed sign-ins" in admin.content.decode()
    # When the lock expires the right password works and clears the count.
    LoginThrottle.objects.filter(key="user:alice").update(locked_until=timezone.now() - timedelta(seconds=1))
    assert _login(client, "alice", PASSWORD).status_code == 302
    assert not LoginThrottle.objects.filter(key="user:alice").exists()


@pytest.mark.django_db
def test_one_address_guessing_many_accounts_is_locked(client: Client, tenant: Tenant, settings: Any) -> None:
    settings.SRE4AI_LOGIN_MAX_FAILURES_PER_IP = 6
    settings.SRE4AI_LOGIN_LOCKOUT_SECONDS = 120
    for n in range(6):
        _login(client, f"user{n}", "guess", ip="192.0.2.50")
    locked = _login(client, "alice", PASSWORD, ip="192.0.2.50").content.decode()
    assert "try again in 2 minutes" in locked
    # alice herself, from her own address, is not locked out by someone else's spraying.
    assert _login(client, "alice", PASSWORD, ip="192.0.2.51").status_code == 302


@pytest.mark.django_db
def test_failures_spread_over_more_than_the_period_do_not_lock(client: Client, tenant: Tenant) -> None:
    for _ in range(4):
        _login(client, "alice", "wrong")
    LoginThrottle.objects.filter(key="user:alice").update(window_start=timezone.now() - timedelta(hours=1))
    _login(client, "alice", "wrong")
    assert _login(client, "alice", PASSWORD).status_code == 302


@pytest.mark.django_db
def test_behind_a_proxy_the_named_header_tells_clients_apart(client: Client, tenant: Tenant, settings: Any) -> None:
    settings.SRE4AI_CLIENT_IP_HEADER = "X-Forwarded-For"
    settings.SRE4AI_LOGIN_MAX_FAILURES_PER_IP = 3
    for n in range(3):  # the client forges a first entry; the proxy appends the real address
        client.post("/login/", {"username": f"u{n}", "password": "x"}, REMOTE_ADDR="10.0.0.1",
                    headers={"X-Forwarded-For": f"1.2.3.{n}, 198.51.100.66"})  # fmt: skip
    assert LoginThrottle.objects.filter(key="ip:198.51.100.66", locked_until__isnull=False).exists()
    # Another client behind the same proxy still signs in.
    ok = client.post("/login/", {"username": "alice", "password": PASSWORD}, REMOTE_ADDR="10.0.0.1",
                     headers={"X-Forwarded-For": "198.51.100.77"})  # fmt: skip
    assert ok.status_code == 302
