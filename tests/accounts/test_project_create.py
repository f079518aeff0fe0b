"""Any signed-in user creates a project from the user menu and becomes its admin; the project opens on its
"send your first trace" page. Bad names get the form back with what to fix."""

from __future__ import annotations

import pytest
from django.test import Client

from accounts.models import AuditEvent, Membership, Project, Role
from accounts.services import user_create
from tests.conftest import PASSWORD, Tenant

pytestmark = pytest.mark.django_db


def _client(username: str) -> Client:
    client = Client()
    assert client.login(username=username, password=PASSWORD)
    return client


def test_a_user_creates_a_project_and_lands_on_its_first_trace_page() -> None:
    user_create(username="nina", password=PASSWORD)
    client = _client("nina")
    home = client.get("/", follow=True).content.decode()
    assert "No projects yet" in home and 'href="/projects/new/"' in home
    form = client.get("/projects/new/")
    assert form.status_code == 200 and 'name="name"' in form.content.decode()

    response = client.post("/projects/new/", {"name": "Support <b>bot</b> EU", "slug": ""}, follow=True)
    project = Project.objects.get(slug="support-bbotb-eu")  # the name, slugified
    assert response.redirect_chain[-1][0] == f"/p/{project.slug}/"
    page = response.content.decode()
    assert "Send your first trace" in page
    assert "Support &lt;b&gt;bot&lt;/b&gt; EU" in page and "Support <b>bot" not in page
    assert Membership.objects.get(project=project).role == Role.ADMIN
    assert AuditEvent.objects.filter(project=project, action="project.create", actor="nina").exists()
    assert 'href="/projects/new/"' in page  # the user menu offers the next one


def test_a_taken_or_malformed_short_name_gets_the_form_back_with_what_to_fix(tenant: Tenant) -> None:
    client = _client(tenant.user.username)
    taken = client.post("/projects/new/", {"name": "Another", "slug": tenant.project.slug})
    assert taken.status_code == 400
    assert f"A project named “{tenant.project.slug}” exists already" in taken.content.decode()
    malformed = client.post("/projects/new/", {"name": "Another", "slug": "Not A Slug!"})
    assert malformed.status_code == 400 and "lower-case letters, digits and dashes" in malformed.content.decode()
    no_letters = client.post("/projects/new/", {"name": "!!!", "slug": ""})
    assert no_letters.status_code == 400 and "no letters or digits" in no_letters.content.decode()
    assert client.post("/projects/new/", {"name": ""}).status_code == 400
    assert Project.objects.count() == 1


def test_creating_a_project_needs_a_signed_in_user() -> None:
    response = Client().post("/projects/new/", {"name": "x"})
    assert response.status_code == 302 and "/login/" in response["Location"]
    assert not Project.objects.exists()
