"""Deleting golden datasets and probes: editors only, a dataset that probes ask cannot go, a probe takes its run
history with it but its traces stay in the service's history."""

from __future__ import annotations

import pytest
from django.test import Client

from accounts.models import Role
from accounts.services import membership_set, user_create
from evals.models import Dataset, Probe, ProbeRun
from tests.conftest import PASSWORD, Tenant
from tests.fake_llm_app import FakeLlmApp
from tests.probe_data import QUESTIONS, golden, http_probe, run_once
from traces.models import Trace

pytestmark = pytest.mark.django_db


def test_a_probe_then_its_dataset_are_deleted_by_an_editor(tenant: Tenant) -> None:
    app = FakeLlmApp(answers=dict(QUESTIONS)).start()
    try:
        dataset = golden(tenant)
        probe = http_probe(tenant, dataset, app)
        run_once(probe)
    finally:
        app.stop()
    viewer = user_create(username="vera", password=PASSWORD)
    membership_set(project=tenant.project, user=viewer, role=Role.VIEWER)
    as_viewer = Client()
    assert as_viewer.login(username="vera", password=PASSWORD)
    assert as_viewer.post(f"/p/acme/probes/{probe.pk}/", {"action": "delete_probe"}).status_code == 403

    client = Client()
    assert client.login(username="alice", password=PASSWORD)
    refused = client.post(f"/p/acme/datasets/{dataset.pk}/", {"action": "delete_dataset"}, follow=True)
    assert "Probes still ask this dataset (faq probe)" in refused.content.decode()
    assert Dataset.objects.filter(pk=dataset.pk).exists()

    gone = client.post(f"/p/acme/probes/{probe.pk}/", {"action": "delete_probe"})
    assert gone.status_code == 302 and not Probe.objects.exists() and not ProbeRun.objects.exists()
    assert Trace.objects.filter(project=tenant.project).count() == 3  # the answers stay in the trace list
    client.post(f"/p/acme/datasets/{dataset.pk}/", {"action": "delete_dataset"})
    assert not Dataset.objects.exists()


def test_another_projects_dataset_cannot_be_deleted(tenant: Tenant, other_tenant: Tenant) -> None:
    dataset = golden(tenant)
    client = Client()
    assert client.login(username="bob", password=PASSWORD)
    assert client.post(f"/p/acme/datasets/{dataset.pk}/", {"action": "delete_dataset"}).status_code == 404
    assert client.post(f"/p/globex/datasets/{dataset.pk}/", {"action": "delete_dataset"}).status_code == 404
    assert Dataset.objects.filter(pk=dataset.pk).exists()
