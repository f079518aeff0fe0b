"""The guard call's own path: the answer does not wait for the decision's span and score (an outbox row, recorded
by a real Celery worker, or by beat when the broker was down), the key and policy come from per-process caches that
forget a change made in this process at once and one made elsewhere within SRE4AI_GUARD_CACHE_SECONDS, the call
reads nothing else, and the deadline counts the reads too."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from django.test import Client
from django.utils import timezone

from accounts.models import ApiKey, Scope
from accounts.selectors import API_KEY_CACHE
from accounts.services import api_key_issue, api_key_revoke
from evals.models import Score
from guard.models import GuardPolicy, GuardRecord
from guard.selectors import POLICY_CACHE
from guard.services import guard_records_flush
from guard.tasks import record_decisions
from slos.budgets import budget_create
from sre4ai_web.lib.nudge import Nudger
from sre4ai_web.lib.ttl_cache import TTLCache
from tests import processes
from tests.conftest import Tenant
from tests.guard_data import INJECTION, save_policy, verdicts
from tests.processes import start_worker, stop, wait_for
from tests.web_server import gunicorn
from traces.models import Span, Trace

# Shared fixtures: pytest finds a fixture by its name in the test's module.
clean_queues = processes.clean_queues


@pytest.fixture
def key(tenant: Tenant) -> tuple[ApiKey, dict[str, str]]:
    issued = api_key_issue(project=tenant.project, name="guarded app", scopes=[Scope.INGEST, Scope.GUARD])
    return issued.api_key, {"Authorization": f"Bearer {issued.secret_key}"}


def call(headers: dict[str, str], **body: Any) -> Any:
    return Client().post("/api/v1/guard", data=json.dumps(body), content_type="application/json", headers=headers)


@pytest.mark.django_db
def test_the_answer_does_not_wait_for_the_recording_and_each_decision_is_recorded_once(tenant: Tenant, key) -> None:
    _, headers = key
    answer = call(headers, stage="input", input=INJECTION, service="support-bot", user_id="u-1").json()
    assert answer["decision"] == "block"
    assert not Span.objects.exists()  # answered: the span is written after the answer
    (row,) = GuardRecord.objects.all()
    assert (row.payload["trace_id"], row.payload["span_id"]) == (answer["trace_id"], answer["span_id"])
    assert "input" not in row.payload and "output" not in row.payload  # verdicts and evidence, not the texts

    GuardRecord.objects.create(project=tenant.project, payload=row.payload)  # the same decision twice
    assert guard_records_flush() == 2
    assert not GuardRecord.objects.exists()
    span = Span.objects.select_related("trace").get(project=tenant.project)
    assert (span.name, span.span_id, span.trace.trace_id) == ("apply_guardrail", answer["span_id"], answer["trace_id"])
    assert (span.service, span.user_id, span.attributes["sre4ai.guard.decision"]) == ("support-bot", "u-1", "block")
    assert span.duration_ms is not None and span.duration_ms >= 0
    score = Score.objects.get(span=span)  # one score, though the row was recorded twice
    assert (score.name, score.passed, score.label) == ("guardrail", False, "block")
    assert "prompt_injection" in score.explanation
    assert guard_records_flush() == 0


@pytest.mark.django_db
def test_decisions_of_several_projects_and_traces_are_recorded_in_one_run(tenant: Tenant, other_tenant: Tenant) -> None:
    answers = []
    for t in (tenant, other_tenant):
        issued = api_key_issue(project=t.project, name="app", scopes=[Scope.GUARD])
        headers = {"Authorization": f"Bearer {issued.secret_key}"}
        first = call(headers, stage="input", input="How do refunds work?").json()
        second = call(headers, stage="output", output="Mail jane.roe@gmail.com.", trace_id=first["trace_id"]).json()
        answers.append((t, first, second))
    assert record_decisions() == 4
    for t, first, second in answers:
        trace = Trace.objects.get(project=t.project, trace_id=first["trace_id"])
        assert trace.span_count == 2
        spans = dict(Span.objects.filter(trace=trace).values_list("span_id", "attributes__sre4ai.guard.decision"))
        assert spans == {first["span_id"]: "allow", second["span_id"]: "redact"}
        assert Score.objects.filter(project=t.project, name="guardrail", passed=True).count() == 2


@pytest.mark.django_db
def test_with_warm_caches_a_call_reads_only_what_its_checks_need(
    tenant: Tenant, key, django_assert_num_queries: Callable[..., Any]
) -> None:
    _, headers = key
    call(headers, stage="input", input="hello", user_id="u-1")  # loads the key, the policy, the budgets
    with django_assert_num_queries(1):  # the outbox row
        assert call(headers, stage="input", input="hello again", user_id="u-1").status_code == 200
    budget_create(project=tenant.project, name="per user", scope="user", window="day", limit_usd=Decimal("1"))
    call(headers, stage="input", input="hello", user_id="u-1")
    with django_assert_num_queries(2):  # and the user's budget alerts
        assert call(headers, stage="input", input="hello again", user_id="u-1").status_code == 200


@pytest.fixture
def cache_clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[float], None]]:
    """The guard's caches on a clock the test moves: an entry expires when the test says so, not when a slow call on
    a loaded machine happens to take longer than a short cache time (which made this test flaky)."""
    now = [1000.0]
    monkeypatch.setattr("sre4ai_web.lib.ttl_cache.time", SimpleNamespace(monotonic=lambda: now[0]))
    for cache in (API_KEY_CACHE, POLICY_CACHE):
        cache.clear()

    def advance(seconds: float) -> None:
        now[0] += seconds

    yield advance
    for cache in (API_KEY_CACHE, POLICY_CACHE):
        cache.clear()


@pytest.mark.django_db
def test_a_change_made_elsewhere_applies_within_the_cache_time_and_one_made_here_at_once(
    tenant: Tenant, key, cache_clock: Callable[[float], None]
) -> None:
    api_key, headers = key
    pii = {"stage": "output", "output": "Mail jane.roe@gmail.com."}
    assert call(headers, **pii).json()["decision"] == "redact"  # the built-in default, now cached
    # Another server process blocks PII and revokes the key (bulk_create and update send no signal here).
    GuardPolicy.objects.bulk_create(
        [GuardPolicy(project=tenant.project, service="", spec={"checks": [{"check": "pii"}]})]
    )
    ApiKey.objects.filter(pk=api_key.pk).update(revoked_at=timezone.now())
    stale = call(headers, **pii)
    assert stale.status_code == 200 and stale.json()["decision"] == "redact"
    cache_clock(max(API_KEY_CACHE.seconds, POLICY_CACHE.seconds) + 0.1)
    assert call(headers, **pii).status_code == 403
    issued = api_key_issue(project=tenant.project, name="second", scopes=[Scope.GUARD])
    second = {"Authorization": f"Bearer {issued.secret_key}"}
    assert call(second, **pii).json()["decision"] == "block"

    # Changed through the services in this process: applied on the very next call.
    save_policy(tenant, checks=[{"check": "pii", "action": "flag"}])
    answer = call(second, **pii).json()
    assert (answer["decision"], answer["flagged"]) == ("allow", True)
    api_key_revoke(api_key=issued.api_key)
    assert call(second, **pii).status_code == 403


@pytest.mark.django_db
def test_the_deadline_counts_the_reads_before_the_checks(tenant: Tenant, key, monkeypatch: pytest.MonkeyPatch) -> None:
    _, headers = key
    import guard.services

    slow_reads = guard.services._facts

    def facts(*args: Any) -> Any:
        time.sleep(0.08)  # a database under load
        return slow_reads(*args)

    monkeypatch.setattr(guard.services, "_facts", facts)
    save_policy(tenant, checks=[{"check": "prompt_injection"}, {"check": "user_budget"}], deadline_ms=50, fail="closed")
    answer = call(headers, stage="input", input="How long do refunds take?", user_id="u-1").json()
    assert verdicts(answer) == {"prompt_injection": "timeout", "user_budget": "timeout"}
    assert answer["decision"] == "block" and answer["elapsed_ms"] >= 80
    save_policy(tenant, checks=[{"check": "prompt_injection"}], deadline_ms=500, fail="closed")
    answer = call(headers, stage="input", input="How long do refunds take?").json()
    assert (answer["decision"], verdicts(answer)) == ("allow", {"prompt_injection": "pass"})


@pytest.mark.django_db(transaction=True)
def test_a_worker_records_the_decision_after_the_answer(live_server: Any, tenant: Tenant, clean_queues) -> None:
    issued = api_key_issue(project=tenant.project, name="app", scopes=[Scope.GUARD])
    headers = {"Authorization": f"Bearer {issued.secret_key}"}
    worker = start_worker("guard-recorder", queues=("celery",))
    try:
        answers = [
            httpx.post(f"{live_server.url}/api/v1/guard", json=body, headers=headers, timeout=30).json()
            for body in ({"stage": "input", "input": INJECTION}, {"stage": "output", "output": "Sure, 3 days."})
        ]
        wait_for(lambda: Score.objects.filter(name="guardrail").count() == 2, 60, "the worker to record both")
    finally:
        stop(worker)
    assert not GuardRecord.objects.exists()
    recorded = dict(Span.objects.values_list("span_id", "attributes__sre4ai.guard.decision"))
    assert recorded == {answers[0]["span_id"]: "block", answers[1]["span_id"]: "allow"}


@pytest.mark.django_db(transaction=True)
def test_a_decision_answered_while_the_broker_is_down_is_recorded_by_beat(tenant: Tenant) -> None:
    issued = api_key_issue(project=tenant.project, name="app", scopes=[Scope.GUARD])
    headers = {"Authorization": f"Bearer {issued.secret_key}"}
    with gunicorn(CELERY_BROKER_URL="redis://127.0.0.1:9/0") as url:  # nothing listens on the discard port
        started = time.monotonic()
        response = httpx.post(f"{url}/api/v1/guard", json={"stage": "input", "input": INJECTION}, headers=headers,
                              timeout=30)  # fmt: skip
        took = time.monotonic() - started
    assert response.status_code == 200 and response.json()["decision"] == "block"
    assert took < 3, "the call waited for the broker"
    assert GuardRecord.objects.count() == 1 and not Span.objects.exists()
    assert record_decisions() == 1  # beat's run, with the broker back
    assert Span.objects.get().span_id == response.json()["span_id"]
    assert not GuardRecord.objects.exists()


def test_the_process_cache_expires_and_stays_bounded() -> None:
    loads: list[str] = []

    def load(key: str) -> Callable[[], str]:
        def loaded() -> str:
            loads.append(key)
            return f"value of {key}"

        return loaded

    cache: TTLCache[str, str] = TTLCache(seconds=0.2, max_entries=2)
    assert [cache.get_or_load(k, load(k)) for k in ("a", "a", "b")] == ["value of a", "value of a", "value of b"]
    assert loads == ["a", "b"]
    cache.get_or_load("c", load("c"))  # a third key: the oldest ("a") goes
    cache.get_or_load("b", load("b"))
    cache.get_or_load("a", load("a"))
    assert loads == ["a", "b", "c", "a"]
    time.sleep(0.25)
    cache.get_or_load("a", load("a"))
    assert loads[-1] == "a" and len(loads) == 5
    cache.discard_where(lambda key, _: key == "a")
    cache.get_or_load("a", load("a"))
    assert len(loads) == 6


def test_nudges_coalesce_and_a_broker_failure_does_not_stop_the_next_one(monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[float] = []

    def send_task(name: str) -> None:
        sent.append(time.monotonic())
        if len(sent) == 1:
            raise ConnectionError("broker down")

    monkeypatch.setattr("sre4ai_web.celery.app.send_task", send_task)
    nudger = Nudger("guard.tasks.record_decisions", every=0.3)
    nudger.nudge()
    wait_for(lambda: len(sent) == 1, 5, "the first nudge")
    for _ in range(50):  # during the pause after the first send (which failed)
        nudger.nudge()
    wait_for(lambda: len(sent) == 2, 5, "the second nudge after the first failed")
    time.sleep(0.5)
    assert len(sent) == 2  # fifty nudges in the pause: one send after it
    assert sent[1] - sent[0] >= 0.3
    nudger.nudge()
    wait_for(lambda: len(sent) == 3, 5, "a later nudge")
