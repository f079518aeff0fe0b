"""Scoring framework on PostgreSQL: evaluator settings, idempotent upserts, scores API, annotations,
rescoring jobs and offline scoring of files."""

from __future__ import annotations

import json
from datetime import timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone

from accounts.models import Role
from accounts.services import membership_set
from evals.evaluators.registry import REGISTRY
from evals.jobs import job_run_cancel
from evals.models import EvalRun, EvaluatorConfig, Score
from evals.selectors import effective_configs
from evals.services import eval_run_create, eval_run_step, evaluator_config_set, traces_score
from tests.conftest import PASSWORD, Tenant
from tests.scoring_data import GROUNDED, INVENTED, LEAKY, rag_spans, send
from traces.models import Trace


def scores_of(trace: Trace) -> dict[str, Score]:
    return {s.name: s for s in Score.objects.filter(trace=trace)}


@pytest.mark.django_db
def test_defaults_score_a_new_projects_traces_and_rescoring_never_duplicates(client: Client, tenant: Tenant) -> None:
    good, bad = send(client, tenant, rag_spans(GROUNDED)), send(client, tenant, rag_spans(INVENTED))
    leak = send(client, tenant, rag_spans(LEAKY))
    traces_score(project_id=tenant.project.pk, trace_pks=[good.pk, bad.pk, leak.pk])
    first = sorted(Score.objects.values_list("key", "value"))
    traces_score(project_id=tenant.project.pk, trace_pks=[good.pk, bad.pk, leak.pk])  # at-least-once: again
    assert sorted(Score.objects.values_list("key", "value")) == first
    assert scores_of(good)["grounding"].passed is True
    assert scores_of(bad)["grounding"].passed is False
    assert any(s["supported"] is False for s in scores_of(bad)["grounding"].evidence["sentences"])
    assert scores_of(leak)["pii"].passed is False
    assert scores_of(good)["pii"].passed is True
    assert "judge" not in {n.split(".")[0] for n in scores_of(good)}  # off by default
    assert Score.objects.filter(trace=good).count() >= 5
    assert Score.objects.values("key").distinct().count() == Score.objects.count()


@pytest.mark.django_db
def test_service_setting_overrides_project_default(client: Client, tenant: Tenant) -> None:
    user = tenant.user
    evaluator_config_set(project=tenant.project, service="", evaluator="pii", enabled=False, params={},
                         sampling_rate=1.0, user=user)  # fmt: skip
    evaluator_config_set(project=tenant.project, service="support-bot", evaluator="pii", enabled=True, params={},
                         sampling_rate=1.0, user=user)  # fmt: skip
    evaluator_config_set(project=tenant.project, service="", evaluator="grounding", enabled=True, params={},
                         sampling_rate=0.0, user=user)  # fmt: skip
    bot, other = send(client, tenant, rag_spans(LEAKY)), send(client, tenant, rag_spans(LEAKY), service="other")
    traces_score(project_id=tenant.project.pk, trace_pks=[bot.pk, other.pk])
    assert "pii" in scores_of(bot)
    assert "pii" not in scores_of(other)
    assert "grounding" not in scores_of(bot)  # sampled out
    origins = {c.evaluator.name: c.origin for c in effective_configs(project=tenant.project, service="support-bot")}
    assert (origins["pii"], origins["grounding"], origins["refusal"]) == ("service", "project", "default")


@pytest.mark.django_db
def test_settings_page_saves_validates_and_resets(client: Client, tenant: Tenant) -> None:
    client.login(username="alice", password=PASSWORD)
    page = client.get("/p/acme/evaluators/")
    assert page.status_code == 200
    for name in REGISTRY:
        assert f'id="ev-{name}"' in page.content.decode()
    bad = client.post("/p/acme/evaluators/", {"evaluator": "tool_loop", "enabled": "on", "sampling_rate": "1",
                                              "params": '{"max_repeats": "many"}'})  # fmt: skip
    assert bad.status_code == 400  # the page again, with the error beside the field
    assert "Invalid params for tool_loop" in bad.content.decode()
    assert not EvaluatorConfig.objects.exists()
    not_json = client.post("/p/acme/evaluators/", {"evaluator": "tool_loop", "sampling_rate": "2", "params": "{"})
    assert "Params must be JSON" in not_json.content.decode()
    assert "less than or equal to 1" in not_json.content.decode()
    ok = client.post("/p/acme/evaluators/", {"evaluator": "tool_loop", "enabled": "on", "sampling_rate": "0.5",
                                             "params": '{"max_repeats": 4}'})  # fmt: skip
    assert ok.status_code == 302
    row = EvaluatorConfig.objects.get()
    assert (row.service, row.params, row.sampling_rate) == ("", {"max_repeats": 4}, 0.5)
    client.post("/p/acme/evaluators/", {"evaluator": "tool_loop", "reset": "1", "sampling_rate": "1"})
    assert not EvaluatorConfig.objects.exists()
    membership_set(project=tenant.project, user=tenant.user, role=Role.VIEWER)
    denied = client.post("/p/acme/evaluators/", {"evaluator": "pii", "sampling_rate": "1"})
    assert denied.status_code == 403


@pytest.mark.django_db
def test_scores_api_is_idempotent_by_id_and_validates(client: Client, tenant: Tenant, other_tenant: Tenant) -> None:
    trace = send(client, tenant, rag_spans(GROUNDED))
    url = "/api/v1/scores"
    body = {"id": "fb-1", "trace_id": trace.trace_id, "name": "user_feedback", "value": 0, "comment": "wrong"}
    for value in (0, 1):
        response = client.post(url, {**body, "value": value}, content_type="application/json", headers=tenant.bearer)
        assert response.status_code == 201, response.content
    score = Score.objects.get(name="user_feedback")
    assert (score.value, score.source, score.comment) == (1.0, "api", "wrong")
    span_id = trace.spans.get(name="chat").span_id
    response = client.post(url, {"trace_id": trace.trace_id, "span_id": span_id, "name": "tone", "label": "rude"},
                           content_type="application/json", headers=tenant.bearer)  # fmt: skip
    assert response.json()["span_id"] == span_id
    bad = client.post(url, {"trace_id": "xyz", "name": "x"}, content_type="application/json", headers=tenant.bearer)
    assert bad.status_code == 400
    assert "trace_id" in bad.json()["details"]
    empty = client.post(url, {"trace_id": trace.trace_id, "name": "x"}, content_type="application/json",
                        headers=tenant.bearer)  # fmt: skip
    assert "at least one of value, label or passed" in json.dumps(empty.json())
    foreign = client.post(url, body, content_type="application/json", headers=other_tenant.bearer)
    assert foreign.status_code == 404
    assert Score.objects.filter(source="api").count() == 2


@pytest.mark.django_db
def test_langfuse_score_shape(client: Client, tenant: Tenant) -> None:
    import base64

    trace = send(client, tenant, rag_spans(GROUNDED))
    basic = base64.b64encode(f"{tenant.api_key.public_key}:{tenant.secret}".encode()).decode()
    headers = {"Authorization": f"Basic {basic}"}
    for payload in (
        {"id": "s1", "traceId": trace.trace_id, "name": "helpful", "value": 0.8, "dataType": "NUMERIC"},
        {"id": "s2", "traceId": trace.trace_id, "name": "correct", "value": 1, "dataType": "BOOLEAN"},
        {"id": "s3", "traceId": trace.trace_id, "name": "topic", "value": "billing", "dataType": "CATEGORICAL"},
    ):
        response = client.post("/api/public/scores", payload, content_type="application/json", headers=headers)
        assert response.status_code == 200, response.content
        assert response.json() == {"id": payload["id"]}
    got = {s.name: (s.value, s.passed, s.label) for s in Score.objects.filter(source="api")}
    assert got == {"helpful": (0.8, None, ""), "correct": (1.0, True, ""), "topic": (None, None, "billing")}


@pytest.mark.django_db
def test_editor_annotates_and_trace_page_shows_scores_escaped(client: Client, tenant: Tenant) -> None:
    trace = send(client, tenant, rag_spans(INVENTED + " <img src=x onerror=alert(1)>"))
    traces_score(project_id=tenant.project.pk, trace_pks=[trace.pk])
    client.login(username="alice", password=PASSWORD)
    response = client.post(f"/p/acme/traces/{trace.trace_id}/annotate/",
                           {"verdict": "down", "label": "invented", "comment": "<b>made up</b>"})  # fmt: skip
    assert response.status_code == 302
    human = Score.objects.get(source="human")
    assert (human.value, human.passed, human.label, human.author) == (0.0, False, "invented", tenant.user)
    html = client.get(f"/p/acme/traces/{trace.trace_id}/").content.decode()
    assert '<mark class="unsupported"' in html
    assert "human_feedback" in html
    assert "&lt;b&gt;made up&lt;/b&gt;" in html
    assert "<img src=x" not in html
    empty = client.post(f"/p/acme/traces/{trace.trace_id}/annotate/", {"verdict": ""}, follow=True)
    assert "Give a thumbs up or down" in empty.content.decode()
    membership_set(project=tenant.project, user=tenant.user, role=Role.VIEWER)
    assert client.post(f"/p/acme/traces/{trace.trace_id}/annotate/", {"verdict": "up"}).status_code == 403


@pytest.mark.django_db
def test_rescore_job_progress_and_cancel(client: Client, tenant: Tenant) -> None:
    traces = [send(client, tenant, rag_spans(GROUNDED)) for _ in range(5)]
    now = timezone.now()
    run = eval_run_create(project=tenant.project, service="support-bot", since=now - timedelta(hours=1),
                          until=now + timedelta(hours=1), evaluators=["grounding"], user=None)  # fmt: skip
    assert run.total == 5
    run = eval_run_step(run_id=run.pk, chunk=2)
    assert (run.status, run.done) == ("running", 2)
    job_run_cancel(run=run)
    run = eval_run_step(run_id=run.pk, chunk=2)
    assert (run.status, run.done) == ("cancelled", 2)  # a cancelled run does not advance
    assert Score.objects.filter(name="grounding").count() == 2
    assert set(Score.objects.values_list("name", flat=True)) == {"grounding"}
    out = StringIO()
    call_command("rescore", "--project", "acme", "--since", (now - timedelta(hours=1)).isoformat(),
                 "--until", (now + timedelta(hours=1)).isoformat(), stdout=out, verbosity=0)  # fmt: skip
    assert "done: 5 of 5 traces" in out.getvalue()
    assert Score.objects.filter(name="grounding").count() == 5
    assert {s.trace_id for s in Score.objects.filter(name="pii")} == {t.pk for t in traces}
    client.login(username="alice", password=PASSWORD)
    progress = client.get(f"/p/acme/evaluators/runs/{EvalRun.objects.latest('pk').pk}/progress/").json()
    assert progress == {"status": "done", "done": 5, "total": 5, "percent": 100, "failed": 0, "error": ""}
    page = client.get("/p/acme/evaluators/runs/").content.decode()
    assert 'role="progressbar"' in page


@pytest.mark.django_db
def test_rescore_form_and_command_reject_bad_input(client: Client, tenant: Tenant) -> None:
    client.login(username="alice", password=PASSWORD)
    page = client.post("/p/acme/evaluators/runs/", {"since": "2026-02-01T00:00Z", "until": "2026-01-01T00:00Z"})
    assert "must be before" in page.content.decode()
    with pytest.raises(CommandError, match="timezone"):
        call_command("rescore", "--project", "acme", "--since", "2026-01-01", "--until", "2026-01-02T00:00Z")
    with pytest.raises(CommandError, match="Unknown evaluator"):
        call_command("rescore", "--project", "acme", "--since", "2026-01-01T00:00Z", "--until", "2026-01-02T00:00Z",
                     "--evaluator", "nope")  # fmt: skip
    assert not EvalRun.objects.exists()


def test_score_file_shares_the_evaluators(tmp_path: Path) -> None:
    items = tmp_path / "items.jsonl"
    items.write_text(
        "\n".join([
            json.dumps({"input": "q", "output": GROUNDED, "context": [GROUNDED]}),
            json.dumps({"input": "q", "output": INVENTED, "context": [GROUNDED]}),
            "not json",
            json.dumps({"input": "q", "output": "x", "context": "single doc as a string"}),
        ])
    )  # fmt: skip
    out = tmp_path / "scores.jsonl"
    call_command("score_file", "--evaluator", "grounding", "--in", str(items), "--out", str(out), verbosity=0,
                 stderr=StringIO())  # fmt: skip
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["line"] for r in rows] == [1, 2, 3, 4]
    assert rows[0]["passed"] is True
    assert rows[1]["passed"] is False
    assert "unsupported" in rows[1]["evidence"]
    assert "error" in rows[2]
    with pytest.raises(CommandError, match="below --fail-under"):
        call_command("score_file", "--evaluator", "grounding", "--in", str(items), "--out", str(out),
                     "--fail-under", "0.9", verbosity=0, stderr=StringIO())  # fmt: skip
    with pytest.raises(CommandError, match="Invalid --params"):
        call_command("score_file", "--evaluator", "grounding", "--params", '{"nope": 1}', "--in", str(items),
                     "--out", str(out))  # fmt: skip


@pytest.mark.django_db
def test_trace_list_shows_and_filters_failing_checks(client: Client, tenant: Tenant) -> None:
    good, bad = send(client, tenant, rag_spans(GROUNDED)), send(client, tenant, rag_spans(INVENTED))
    traces_score(project_id=tenant.project.pk, trace_pks=[good.pk, bad.pk])
    client.login(username="alice", password=PASSWORD)
    html = client.get("/p/acme/traces/", {"failing": "grounding"}).content.decode()
    assert bad.trace_id in html
    assert good.trace_id not in html
    assert 'class="score-chip fail" href="/p/acme/traces/?failing=grounding"' in html
    api = client.get("/api/v1/traces", {"failing": "grounding"}, headers=tenant.bearer).json()
    assert [t["trace_id"] for t in api["items"]] == [bad.trace_id]


@pytest.mark.postgres_only("scores are unique by (project, key, trace start) only where they are partitioned")
@pytest.mark.django_db(transaction=True)
def test_two_writers_of_one_traces_score_at_once_leave_one_row(client: Client, tenant: Tenant) -> None:
    """Two jobs scoring one trace at once, the second after an earlier span moved its start (seen once in the
    fault run of tests/ops/test_scaleout.py as a duplicate score): the second writer waits for the first to commit,
    then replaces its row, so the key keeps one score, the last one written."""
    import threading
    import time

    from django.db import connection, transaction

    from evals.models import ScoreSource
    from evals.services import score_key_evaluator, scores_upsert

    stored = send(client, tenant, rag_spans(GROUNDED))
    key = score_key_evaluator(stored.pk, "", "grounding", 1, "grounding")

    def row(start_shift: timedelta, value: float) -> Score:
        return Score(
            project_id=stored.project_id, trace=stored, key=key, service=stored.service, name="grounding",
            trace_start=stored.start_time + start_shift, value=value, passed=True, evaluator="grounding",
            evaluator_version=1, source=ScoreSource.EVALUATOR,
        )  # fmt: skip

    first_written, errors = threading.Event(), []

    def first_writer() -> None:
        try:
            with transaction.atomic():
                scores_upsert([row(timedelta(0), 0.5)])
                first_written.set()
                time.sleep(1.0)  # uncommitted while the second writer runs
        except Exception as exc:
            errors.append(exc)
        finally:
            connection.close()

    def second_writer() -> None:
        assert first_written.wait(30)
        try:
            with transaction.atomic():
                scores_upsert([row(timedelta(seconds=-3), 0.9)])  # an earlier span arrived: the start moved
        except Exception as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=first_writer), threading.Thread(target=second_writer)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    rows = list(Score.objects.filter(project=tenant.project, key=key).values_list("value", "trace_start"))
    assert rows == [(0.9, stored.start_time - timedelta(seconds=3))]
