"""Sessions: an idle session expires, an active one is kept alive, and "log out everywhere" ends every session of
the user, in every browser."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.sessions.models import Session
from django.test import Client
from django.utils import timezone

from sre4ai_web.middleware import LAST_SEEN_KEY
from tests.conftest import PASSWORD, Tenant


def _signed_in(username: str) -> Client:
    client = Client()
    assert client.post("/login/", {"username": username, "password": PASSWORD}).status_code == 302
    return client


@pytest.mark.django_db
def test_log_out_everywhere_ends_the_sessions_of_every_browser(tenant: Tenant, other_tenant: Tenant) -> None:
    laptop, phone, bob = _signed_in("alice"), _signed_in("alice"), _signed_in("bob")
    assert phone.get("/p/acme/").status_code == 200
    page = laptop.get("/p/acme/").content.decode()
    assert 'action="/logout/everywhere/"' in page
    done = laptop.post("/logout/everywhere/", follow=True)
    assert "signed out of every session" in done.content.decode()
    assert phone.get("/p/acme/")["Location"].startswith("/login/")
    assert laptop.get("/p/acme/")["Location"].startswith("/login/")
    assert bob.get("/p/globex/").status_code == 200  # another user's sessions are untouched
    # Signing in again works and is not undone by the old revocation.
    again = _signed_in("alice")
    assert again.get("/p/acme/").status_code == 200 and again.get("/p/acme/").status_code == 200


@pytest.mark.django_db
def test_log_out_everywhere_needs_a_post(tenant: Tenant) -> None:
    client = _signed_in("alice")
    assert client.get("/logout/everywhere/").status_code == 405
    assert client.get("/p/acme/").status_code == 200


@pytest.mark.django_db
def test_an_idle_session_expires_and_an_active_one_slides(tenant: Tenant, settings: Any) -> None:
    assert settings.SESSION_COOKIE_AGE == 8 * 3600
    client = _signed_in("alice")
    session = Session.objects.get(session_key=client.session.session_key)
    # Activity pushes the expiry forward (the session was last seen more than a minute ago).
    stored = session.get_decoded()
    stored[LAST_SEEN_KEY] -= 120
    Session.objects.filter(pk=session.pk).update(
        session_data=Session.objects.encode(stored), expire_date=timezone.now() + timedelta(hours=1)
    )
    assert client.get("/p/acme/").status_code == 200
    assert Session.objects.get(pk=session.pk).expire_date > timezone.now() + timedelta(hours=7, minutes=59)
    # Eight idle hours later the session is gone: the next request goes to the login page.
    Session.objects.filter(pk=session.pk).update(expire_date=timezone.now() - timedelta(seconds=1))
    assert client.get("/p/acme/")["Location"].startswith("/login/")
