"""Project secrets: admins set and delete them on a Settings page, nobody reads a value back (not in any page, not
after a form error), values are encrypted at rest and survive a SECRET_KEY rotation through SECRET_KEY_FALLBACKS."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test import Client

from accounts.models import ProjectSecret, Role
from accounts.selectors import SecretUnavailable, secret_value
from accounts.services import membership_set, user_create
from tests.conftest import PASSWORD, Tenant

VALUE = "sk-very-secret-value-42"


def login(username: str) -> Client:
    client = Client()
    assert client.login(username=username, password=PASSWORD)
    return client


@pytest.mark.django_db
def test_admins_set_and_delete_secrets_and_nobody_sees_a_value(tenant: Tenant, other_tenant: Tenant) -> None:
    admin = login("alice")
    response = admin.post("/p/acme/settings/secrets/", {"set_secret": "1", "name": "APP_TOKEN", "value": VALUE})
    assert response.status_code == 302
    page = admin.get("/p/acme/settings/secrets/").content.decode()
    assert "APP_TOKEN" in page and "by alice" in page and VALUE not in page
    assert "/p/acme/settings/secrets/" in admin.get("/p/acme/settings/").content.decode()  # linked from Settings
    assert secret_value(project_id=tenant.project.pk, name="APP_TOKEN") == VALUE

    # At rest: encrypted, the value nowhere in the table.
    with connection.cursor() as cursor:
        cursor.execute("SELECT sealed FROM accounts_projectsecret")
        (sealed,) = cursor.fetchone()
    assert VALUE not in sealed and len(sealed) > 50

    # Setting it again replaces it; a bad name is a form error that does not echo the value back.
    admin.post("/p/acme/settings/secrets/", {"set_secret": "1", "name": "APP_TOKEN", "value": "new-value"})
    assert secret_value(project_id=tenant.project.pk, name="APP_TOKEN") == "new-value"
    bad = admin.post("/p/acme/settings/secrets/", {"set_secret": "1", "name": "1 bad", "value": VALUE})
    assert bad.status_code == 400 and "letters, digits and underscores" in bad.content.decode()
    assert VALUE not in bad.content.decode()

    # Another project neither sees nor uses it.
    assert "APP_TOKEN" not in login("bob").get("/p/globex/settings/secrets/").content.decode()
    assert login("bob").get("/p/acme/settings/secrets/").status_code == 404
    with pytest.raises(SecretUnavailable, match="no project secret named APP_TOKEN"):
        secret_value(project_id=other_tenant.project.pk, name="APP_TOKEN")

    assert admin.post("/p/acme/settings/secrets/", {"delete_secret": "APP_TOKEN"}).status_code == 302
    assert not ProjectSecret.objects.exists()


@pytest.mark.django_db
def test_viewers_and_editors_see_names_but_cannot_change_secrets(tenant: Tenant) -> None:
    login("alice").post("/p/acme/settings/secrets/", {"set_secret": "1", "name": "APP_TOKEN", "value": VALUE})
    for role in (Role.VIEWER, Role.EDITOR):
        user = user_create(username=f"u-{role}", password=PASSWORD)
        membership_set(project=tenant.project, user=user, role=role)
        client = login(user.username)
        page = client.get("/p/acme/settings/secrets/").content.decode()
        assert "APP_TOKEN" in page and VALUE not in page and "Set secret" not in page
        assert client.post("/p/acme/settings/secrets/", {"delete_secret": "APP_TOKEN"}).status_code == 403
        response = client.post("/p/acme/settings/secrets/", {"set_secret": "1", "name": "X", "value": "y"})
        assert response.status_code == 403
    assert list(ProjectSecret.objects.values_list("name", flat=True)) == ["APP_TOKEN"]


@pytest.mark.django_db
def test_a_rotated_secret_key_still_opens_secrets_through_the_fallbacks(tenant: Tenant, settings: Any) -> None:
    login("alice").post("/p/acme/settings/secrets/", {"set_secret": "1", "name": "APP_TOKEN", "value": VALUE})
    old_key = settings.SECRET_KEY
    settings.SECRET_KEY = "a-brand-new-secret-key-0123456789-abcdefghijklmnop"
    with pytest.raises(SecretUnavailable, match=r"cannot be decrypted .* set it again"):
        secret_value(project_id=tenant.project.pk, name="APP_TOKEN")
    settings.SECRET_KEY_FALLBACKS = [old_key]
    assert secret_value(project_id=tenant.project.pk, name="APP_TOKEN") == VALUE
