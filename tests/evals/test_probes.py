"""Probes against a deterministic fake LLM app (a real HTTP server on 127.0.0.1 whose answers are switched
mid-test): traces recorded through the ingest service, evaluator and "probe" scores, answers that changed or
flipped, per-item errors that never stop a run, secrets that never show, the schedule, pages and isolation."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from accounts.services import project_secret_delete, project_secret_set
from evals.models import Dataset, Probe, ProbeResult, ProbeRun, RunStatus, Score, ScoreSource
from evals.probes.runs import probe_run_create, probe_run_execute, probes_claim_due
from evals.services import probe_save
from tests.conftest import PASSWORD, Tenant
from tests.fake_llm_app import FakeLlmApp
from tests.probe_data import QUESTIONS, golden, http_probe, run_once
from traces.models import Trace


@pytest.fixture
def app() -> Iterator[FakeLlmApp]:
    fake = FakeLlmApp(answers=dict(QUESTIONS)).start()
    yield fake
    fake.stop()


def results(run: ProbeRun) -> dict[str, ProbeResult]:
    return {r.question: r for r in ProbeResult.objects.filter(run=run)}


def login(client: Client, tenant: Tenant) -> Client:
    assert client.login(username=tenant.user.username, password=PASSWORD)
    return client


@pytest.mark.django_db
def test_a_run_records_each_answer_as_a_probe_trace_and_scores_it(tenant: Tenant, app: FakeLlmApp) -> None:
    app.answers["What is six times seven?"] = "41"
    probe = http_probe(tenant, golden(tenant), app)
    run = run_once(probe)
    assert (run.status, run.total, run.done, run.passed, run.errors) == (RunStatus.DONE, 3, 3, 2, 0)
    assert [r["body"] for r in app.requests] == [{"question": q} for q in QUESTIONS]

    traces = Trace.objects.filter(project=tenant.project)
    assert traces.count() == 3
    for trace in traces:
        assert trace.service == "support-bot" and trace.environment == "probe" and trace.tags == ["probe"]
        span = trace.spans.get()
        assert span.attributes["sre4ai.probe.id"] == probe.pk
        assert span.attributes["sre4ai.probe.run_id"] == run.pk
    by_question = results(run)
    wrong = by_question["What is six times seven?"]
    assert wrong.answer == "41" and wrong.passed is False and wrong.trace is not None
    # The contract with SLOs: one "probe" score per item trace, passed = every configured evaluator passed.
    probe_scores = Score.objects.filter(name="probe")
    assert probe_scores.count() == 3
    assert {s.trace_id: s.passed for s in probe_scores} == {r.trace_id: r.passed for r in by_question.values()}
    assert all(s.source == ScoreSource.PROBE and s.value == (1.0 if s.passed else 0.0) for s in probe_scores)
    reference = Score.objects.get(trace=wrong.trace, name="reference")
    assert reference.passed is False and reference.source == ScoreSource.EVALUATOR

    # The probe traces show in the trace list like any other trace of the service.
    client = login(Client(), tenant)
    listing = client.get("/p/acme/traces/", {"service": "support-bot"}).content.decode()
    assert wrong.trace.trace_id in listing


@pytest.mark.django_db
def test_changed_answers_are_flagged_even_when_both_pass_and_flips_are_counted(tenant: Tenant, app: FakeLlmApp) -> None:
    probe = http_probe(tenant, golden(tenant), app)
    first = run_once(probe)
    assert (first.passed, first.changed, first.flipped) == (3, 0, 0)
    # Mid-test the app changes: one answer breaks, one is reworded but still right, one is unchanged.
    app.answers["How long is the refund window?"] = "14 days"
    app.answers["What is the capital of France?"] = "paris."
    second = run_once(probe)
    assert (second.passed, second.changed, second.flipped) == (2, 2, 1)
    now = results(second)
    refund, capital, product = (now[q] for q in QUESTIONS)
    assert refund.flipped and refund.answer_changed and refund.previous_answer == "30 days"
    assert capital.passed and capital.answer_changed and not capital.flipped
    assert not product.answer_changed and not product.flipped

    page = login(Client(), tenant).get(f"/p/acme/probes/{probe.pk}/").content.decode()
    assert "flipped from pass" in page
    assert "<del>30</del>" in page and "<ins>14</ins>" in page  # the side-by-side diff of the changed word


@pytest.mark.django_db
def test_timeouts_garbage_and_errors_are_recorded_per_item_and_never_stop_the_run(
    tenant: Tenant, app: FakeLlmApp
) -> None:
    questions = {"slow?": "a", "garbage?": "b", "boom?": "c", "shape?": "d", "fine?": "ok"}
    app.answers["fine?"] = "ok"
    app.modes.update({"slow?": "slow", "garbage?": "garbage", "boom?": "error", "shape?": "shape"})
    app.delay = 2.0
    probe = http_probe(tenant, golden(tenant, questions), app, timeout_seconds=0.5)
    run = run_once(probe)
    assert (run.status, run.done, run.errors, run.passed) == (RunStatus.DONE, 5, 4, 1)
    by_question = results(run)
    assert "no complete answer within 0.5 s" in by_question["slow?"].error
    assert "not JSON" in by_question["garbage?"].error and "text/html" in by_question["garbage?"].error
    assert "HTTP 500" in by_question["boom?"].error and "model overloaded" in by_question["boom?"].error
    assert "matched nothing" in by_question["shape?"].error and "result" in by_question["shape?"].error
    assert by_question["fine?"].passed and not by_question["fine?"].error
    for question in ("slow?", "garbage?", "boom?", "shape?"):
        result = by_question[question]
        assert result.trace is not None and result.trace.status == "error"
        assert Score.objects.get(trace=result.trace, name="probe").passed is False


@pytest.mark.django_db
def test_openai_chat_target_takes_its_key_from_the_project_secrets_and_never_shows_it(
    tenant: Tenant, app: FakeLlmApp
) -> None:
    secret = "sk-live-very-secret-value-123"
    project_secret_set(project=tenant.project, name="FAKE_LLM_KEY", value=secret, user=tenant.user)
    dataset = golden(tenant, {"What is six times seven?": "42"})
    dataset.items.update(context=["The answer to six times seven is 42."])
    probe = probe_save(probe=Probe(
        project=tenant.project, name="model probe", dataset=dataset, service="support-bot", target_kind="openai_chat",
        target_config={"base_url": f"{app.url}/v1", "model": "gpt-4o-mini", "system_prompt": "Answer briefly.",
                       "api_key_env": "FAKE_LLM_KEY"},
        evaluators=["reference", "grounding"],
    ))  # fmt: skip
    run = run_once(probe)
    assert (run.done, run.passed, run.errors) == (1, 1, 0)
    sent = app.requests[-1]
    assert sent["headers"]["Authorization"] == f"Bearer {secret}"
    assert (
        sent["body"]["messages"][0]["role"] == "system"
        and "six times seven is 42" in sent["body"]["messages"][0]["content"]
    )
    span = ProbeResult.objects.get(run=run).trace.spans.get()  # type: ignore[union-attr]
    assert (span.kind, span.model, span.input_tokens, span.output_tokens) == ("llm", "gpt-4o-mini", 20, 5)
    assert span.documents.count() == 1  # the context documents, so grounding can check the answer
    assert Score.objects.filter(trace=span.trace, name="grounding").exists()
    assert ProbeRun.objects.get(pk=run.pk).cost is not None  # priced from the tokens like any LLM call

    client = login(Client(), tenant)
    for path in (f"/p/acme/probes/{probe.pk}/", "/p/acme/probes/", f"/p/acme/traces/{span.trace.trace_id}/"):
        assert secret not in client.get(path).content.decode()
    assert secret not in str(list(Trace.objects.values()))

    project_secret_delete(project=tenant.project, name="FAKE_LLM_KEY")
    failed = run_once(probe)
    assert "no project secret named FAKE_LLM_KEY" in ProbeResult.objects.get(run=failed).error


@pytest.mark.django_db
def test_a_server_error_echoing_the_secret_is_redacted(tenant: Tenant) -> None:
    secret = "tok-echoed-back-987"
    project_secret_set(project=tenant.project, name="APP_TOKEN", value=secret, user=tenant.user)

    class Echo(FakeLlmApp):
        def answer_for(self, question: str) -> str:
            return self.requests[-1]["headers"]["Authorization"]

    echo = Echo().start()
    try:
        probe = http_probe(tenant, golden(tenant, {"q": "a"}), echo, headers={"Authorization": "Bearer ${APP_TOKEN}"},
                           answer_path="missing")  # fmt: skip
        run = run_once(probe)
    finally:
        echo.stop()
    error = ProbeResult.objects.get(run=run).error
    assert "matched nothing" in error and secret not in error


@pytest.mark.django_db
def test_a_cancelled_run_stops_before_its_next_item(tenant: Tenant, app: FakeLlmApp) -> None:
    probe = http_probe(tenant, golden(tenant), app)
    run = probe_run_create(probe=probe)
    ProbeRun.objects.filter(pk=run.pk).update(status=RunStatus.CANCELLED)
    finished = probe_run_execute(run_id=run.pk)
    assert finished.status == RunStatus.CANCELLED and finished.done == 0 and not app.requests


@pytest.mark.django_db
def test_a_resumed_run_asks_only_the_unfinished_items(tenant: Tenant, app: FakeLlmApp) -> None:
    probe = http_probe(tenant, golden(tenant), app)
    run = run_once(probe)
    first_item = ProbeResult.objects.filter(run=run).order_by("pk").first()
    assert first_item is not None
    ProbeResult.objects.filter(run=run).exclude(pk=first_item.pk).delete()  # as if the worker died after item 1
    ProbeRun.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING)
    asked = len(app.requests)
    again = probe_run_execute(run_id=run.pk)
    assert len(app.requests) - asked == 2
    assert again.done == 3 and Trace.objects.count() == 3 and Score.objects.filter(name="probe").count() == 3


# --- schedule --------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_due_probes_start_once_per_slot(tenant: Tenant, app: FakeLlmApp) -> None:
    probe = http_probe(tenant, golden(tenant), app)
    assert probe.next_run_at is None  # no interval, no cron: on demand only
    probe.interval_minutes = 15
    probe_save(probe=probe)
    start = probe.next_run_at
    assert start is not None and timedelta(minutes=14) < start - timezone.now() <= timedelta(minutes=15)
    assert probes_claim_due(now=timezone.now()) == []
    later = start + timedelta(seconds=30)
    runs = probes_claim_due(now=later)
    assert [(r.probe_id, r.trigger, r.scheduled_for) for r in runs] == [(probe.pk, "schedule", start)]
    assert probes_claim_due(now=later) == []
    probe.refresh_from_db()
    assert probe.next_run_at == later + timedelta(minutes=15)

    probe.cron, probe.interval_minutes = "0 */6 * * *", None
    probe_save(probe=probe)
    assert probe.next_run_at is not None and probe.next_run_at.minute == 0 and probe.next_run_at.hour % 6 == 0


@pytest.mark.postgres_only("two beats race for a due slot: PostgreSQL's row locks (SKIP LOCKED)")
@pytest.mark.django_db(transaction=True)
def test_two_concurrent_beats_never_start_the_same_slot_twice(tenant: Tenant, app: FakeLlmApp) -> None:
    assert connection.vendor == "postgresql"
    probe = http_probe(tenant, golden(tenant), app)
    Probe.objects.filter(pk=probe.pk).update(interval_minutes=5, next_run_at=timezone.now() - timedelta(minutes=1))
    barrier = threading.Barrier(4)
    claimed: list[int] = []

    def beat() -> None:
        try:
            barrier.wait()
            claimed.extend(r.pk for r in probes_claim_due(now=timezone.now()))
        finally:
            connection.close()

    threads = [threading.Thread(target=beat) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(claimed) == 1 and ProbeRun.objects.filter(probe=probe).count() == 1


# --- pages -----------------------------------------------------------------------------------------------


def probe_post(golden_set: Dataset, **fields: Any) -> dict[str, Any]:
    return {"action": "save", "name": "faq probe", "dataset": golden_set.pk, "service": "support-bot",
            "environment": "probe", "target_kind": "http_endpoint", "timeout_seconds": "5", "url": "http://127.0.0.1:9/ask",
            "method": "POST", "body_template": '{"question": "{{input_text}}"}', "answer_path": "answer",
            "evaluators": ["reference"], "enabled": "on", **fields}  # fmt: skip


@pytest.mark.django_db
def test_probe_form_refuses_literal_secrets_and_bad_schedules_with_what_to_fix(client: Client, tenant: Tenant) -> None:
    dataset = golden(tenant)
    login(client, tenant)
    cases = {
        "Authorization: Bearer sk-literal": "header Authorization carries a secret",
        "Not a header line": "Line 1: write a header as Name: value.",
    }
    for headers, message in cases.items():
        html = client.post("/p/acme/probes/", probe_post(dataset, headers=headers)).content.decode()
        assert message in html
    for fields, message in [
        ({"cron": "every hour"}, "five fields"),
        ({"cron": "61 * * * *"}, "is not a valid cron expression"),
        ({"cron": "*/5 * * * *", "interval_minutes": "5"}, "either an interval or a cron expression"),
        ({"body_template": "{not json"}, "The request template must be JSON"),
        ({"body_template": '{"q": "{{question}}"}'}, "unknown placeholder {{question}}"),
        ({"url": "ftp://example"}, "must start with http:// or https://"),
        ({"answer_path": "a..b"}, "cannot read the path"),
        ({"environment": "Prod!"}, "lower-case letters"),
        (
            {
                "target_kind": "openai_chat",
                "base_url": "http://127.0.0.1:9/v1",
                "model": "m",
                "api_key_env": "sk-abc def",
            },
            "give the name of a project secret",
        ),
    ]:
        response = client.post("/p/acme/probes/", probe_post(dataset, **fields))
        assert response.status_code == 200 and message in response.content.decode(), fields
    assert not Probe.objects.exists()

    response = client.post("/p/acme/probes/", probe_post(dataset, headers="Authorization: Bearer ${APP_TOKEN}",
                                                         cron="*/30 * * * *"))  # fmt: skip
    probe = Probe.objects.get()
    assert response["Location"] == f"/p/acme/probes/{probe.pk}/"
    assert probe.target_config["headers"] == {"Authorization": "Bearer ${APP_TOKEN}"}
    assert probe.next_run_at is not None and probe.next_run_at.minute in (0, 30)


@pytest.mark.django_db
def test_run_now_queues_a_run_and_progress_is_reported(client: Client, tenant: Tenant, app: FakeLlmApp) -> None:
    probe = http_probe(tenant, golden(tenant), app)
    login(client, tenant)
    response = client.post(f"/p/acme/probes/{probe.pk}/", {"action": "run"})
    run = ProbeRun.objects.get(probe=probe)
    assert response["Location"] == f"/p/acme/probes/{probe.pk}/?run={run.pk}"
    assert (run.status, run.trigger, run.total, run.created_by) == (RunStatus.QUEUED, "manual", 3, tenant.user)
    progress = client.get(f"/p/acme/probes/{probe.pk}/runs/{run.pk}/progress/").json()
    assert progress == {"status": "queued", "done": 0, "total": 3, "percent": 0, "passed": 0, "errors": 0, "error": ""}
    probe_run_execute(run_id=run.pk)
    assert client.get(f"/p/acme/probes/{probe.pk}/runs/{run.pk}/progress/").json()["percent"] == 100


@pytest.mark.django_db
def test_answers_render_as_text_not_html(client: Client, tenant: Tenant, app: FakeLlmApp) -> None:
    probe = http_probe(tenant, golden(tenant, {"q?": "<b>safe</b>"}), app)
    app.answers["q?"] = "<img src=x onerror=alert(1)>"
    run_once(probe)
    app.answers["q?"] = "<script>alert(2)</script>"
    run_once(probe)
    html = login(client, tenant).get(f"/p/acme/probes/{probe.pk}/").content.decode()
    assert "<script>alert(2)" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in html and "&lt;img" in html


@pytest.mark.django_db
def test_another_projects_probe_is_a_404(client: Client, tenant: Tenant, other_tenant: Tenant, app: FakeLlmApp) -> None:
    theirs = http_probe(other_tenant, golden(other_tenant, name="their faq"), app)
    run = probe_run_create(probe=theirs)
    login(client, tenant)
    for path in (f"/p/acme/probes/{theirs.pk}/", f"/p/acme/probes/{theirs.pk}/runs/{run.pk}/progress/",
                 f"/p/globex/probes/{theirs.pk}/"):  # fmt: skip
        assert client.get(path).status_code == 404
    assert client.post(f"/p/acme/probes/{theirs.pk}/", {"action": "run"}).status_code == 404
    assert ProbeRun.objects.filter(probe=theirs).count() == 1
    assert "faq probe" not in client.get("/p/acme/probes/").content.decode()
    # Nor can a probe of ours use their dataset.
    ours = golden(tenant)
    html = client.post("/p/acme/probes/", probe_post(ours, dataset=theirs.dataset_id)).content.decode()
    assert "Select a valid choice" in html and not Probe.objects.filter(project=tenant.project).exists()


# --- outbound rules: secrets only from the project's store (or allowed variables), no internal addresses ----------


@pytest.mark.django_db
def test_a_header_cannot_send_the_servers_environment(
    tenant: Tenant, app: FakeLlmApp, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    monkeypatch.setenv("DJANGO_SECRET_KEY", "the-server-secret-key")
    probe = http_probe(tenant, golden(tenant, {"q": "a"}), app, headers={"X-Leak": "${DJANGO_SECRET_KEY}"})
    error = ProbeResult.objects.get(run=run_once(probe)).error
    assert "no project secret named DJANGO_SECRET_KEY" in error and "SRE4AI_OUTBOUND_ENV_ALLOW" in error
    assert app.requests == []  # nothing left the server

    # A variable the operator listed is used; a project secret of the same name wins over it.
    settings.SRE4AI_OUTBOUND_ENV_ALLOW = ["DJANGO_SECRET_KEY"]
    run_once(probe)
    assert app.requests[-1]["headers"]["X-Leak"] == "the-server-secret-key"
    project_secret_set(project=tenant.project, name="DJANGO_SECRET_KEY", value="project-value", user=tenant.user)
    run_once(probe)
    assert app.requests[-1]["headers"]["X-Leak"] == "project-value"


@pytest.mark.django_db
def test_a_chat_probe_cannot_send_the_servers_environment(
    tenant: Tenant, app: FakeLlmApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DJANGO_SECRET_KEY", "the-server-secret-key")
    probe = probe_save(probe=Probe(
        project=tenant.project, name="model probe", dataset=golden(tenant, {"q": "a"}), service="support-bot",
        target_kind="openai_chat", evaluators=["reference"],
        target_config={"base_url": f"{app.url}/v1", "model": "m", "api_key_env": "DJANGO_SECRET_KEY"},
    ))  # fmt: skip
    assert "no project secret named DJANGO_SECRET_KEY" in ProbeResult.objects.get(run=run_once(probe)).error
    assert app.requests == []


@pytest.mark.django_db
def test_a_probe_of_an_internal_url_is_refused_and_shows_nothing(
    tenant: Tenant, app: FakeLlmApp, settings: Any
) -> None:
    settings.SRE4AI_OUTBOUND_ALLOW = []
    app.answers["q"] = "internal-only answer"
    probe = http_probe(tenant, golden(tenant, {"q": "a"}), app, method="GET", body_template={"q": "{{input_text}}"})
    run = run_once(probe)
    result = ProbeResult.objects.get(run=run)
    assert "internal address" in result.error and not result.answer
    assert app.requests == []
    page = login(Client(), tenant).get(f"/p/acme/probes/{probe.pk}/").content.decode()
    assert "internal-only answer" not in page


@pytest.mark.django_db
def test_a_huge_answer_is_cut_and_reported(tenant: Tenant, app: FakeLlmApp, settings: Any) -> None:
    settings.SRE4AI_OUTBOUND_MAX_RESPONSE_BYTES = 1000
    app.answers["q"] = "x" * 5000
    run = run_once(http_probe(tenant, golden(tenant, {"q": "a"}), app))
    assert "larger than 1000 bytes" in ProbeResult.objects.get(run=run).error
