"""POST /api/v1/guard against the real database: decisions per policy, redaction, the deadline and fail modes, the
apply_guardrail span and guardrail score written into the caller's trace, bad input, and the policy page."""

from __future__ import annotations

import json
import secrets
import string
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from accounts.services import membership_set
from evals.evaluators import grounding
from evals.models import Score
from guard.engine import CheckOutcome, redact
from guard.models import GuardPolicy, GuardRecord
from guard.selectors import POLICY_CACHE
from guard.services import guard_records_flush
from slos.selectors import window_counts
from slos.services import sli_history_rebuild
from sre4ai_web.lib.timebuckets import floor_minute
from tests.conftest import PASSWORD, Tenant, make_tenant
from tests.guard_data import INJECTION, guard_headers, save_policy, verdicts
from tests.slo_data import create_slo, recompute
from traces.models import Span, Trace


@pytest.fixture(autouse=True, scope="module")
def _grounding_loaded() -> None:
    """As a web process at start (sre4ai_web/wsgi.py): a call's deadline measures the checks, not loading the model."""
    grounding.warm()


def guard(tenant: Tenant, **body: Any) -> Any:
    return Client().post(
        "/api/v1/guard", data=json.dumps(body), content_type="application/json", headers=guard_headers(tenant)
    )


def decided(tenant: Tenant, **body: Any) -> dict[str, Any]:
    """A guard call, then what the worker does after the answer: record the decision (tests/guard/test_guard_recording.py
    shows the answer does not wait for it, and a real worker doing it)."""
    response = guard(tenant, **body)
    assert response.status_code == 200, response.content
    answer: dict[str, Any] = response.json()
    guard_records_flush()
    return answer


def github_token() -> str:
    return "gh" + "p_" + "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(36))


@pytest.mark.django_db
def test_an_injected_input_is_blocked_and_recorded_as_a_guardrail_span_with_a_failing_score(tenant: Tenant) -> None:
    answer = decided(tenant, stage="input", input=INJECTION, service="support-bot", user_id="u-1")
    assert answer["decision"] == "block"
    assert verdicts(answer)["prompt_injection"] == "fail"
    span = Span.objects.select_related("trace").get(project=tenant.project, span_id=answer["span_id"])
    assert span.trace.trace_id == answer["trace_id"]
    assert (span.name, span.kind, span.service, span.user_id) == ("apply_guardrail", "guardrail", "support-bot", "u-1")
    assert span.attributes["sre4ai.guard.decision"] == "block"
    assert span.input is None  # verdicts and (masked) evidence only: the guarded text is not stored
    score = Score.objects.get(project=tenant.project, span=span, name="guardrail")
    assert (score.passed, score.label, score.value) == (False, "block", 0.0)
    assert "prompt_injection" in score.explanation


@pytest.mark.django_db
def test_a_clean_input_is_allowed_and_scores_a_pass(tenant: Tenant) -> None:
    answer = decided(tenant, stage="input", input="How long do refunds take?")
    assert answer["decision"] == "allow" and verdicts(answer)["prompt_injection"] == "pass"
    assert "redacted_text" not in answer
    assert Score.objects.get(project=tenant.project, name="guardrail").passed is True


@pytest.mark.django_db
def test_pii_in_an_answer_is_redacted_by_the_default_policy(tenant: Tenant) -> None:
    output = "Write to jane.roe@gmail.com or call +44 20 7946 0958. Card 4111 1111 1111 1111 is on file."
    answer = decided(tenant, stage="output", input="Who do I contact?", output=output)
    assert answer["decision"] == "redact"
    redacted = answer["redacted_text"]
    for secret_part in ("jane.roe@gmail.com", "4111 1111 1111 1111", "7946 0958"):
        assert secret_part not in redacted
    assert redacted.startswith("Write to [redacted:email] or call [redacted:phone].")
    assert redacted.endswith("is on file.")
    assert Score.objects.get(project=tenant.project, name="guardrail").passed is True  # redacted, not blocked


@pytest.mark.django_db
def test_a_secret_in_an_answer_is_blocked_and_a_redact_policy_masks_it_instead(tenant: Tenant) -> None:
    token = github_token()
    answer = decided(tenant, stage="output", output=f"Use the token {token} to push.")
    assert answer["decision"] == "block" and verdicts(answer)["secrets"] == "fail"
    assert token not in json.dumps(answer)

    save_policy(tenant, checks=[{"check": "secrets", "action": "redact"}])
    answer = decided(tenant, stage="output", output=f"Use the token {token} to push.")
    assert answer["decision"] == "redact"
    assert answer["redacted_text"] == "Use the token [redacted:github_token] to push."


@pytest.mark.django_db
def test_the_service_policy_wins_over_the_project_default(tenant: Tenant) -> None:
    save_policy(tenant, checks=[{"check": "pii", "action": "block"}])
    save_policy(tenant, "internal-bot", checks=[{"check": "pii", "action": "flag"}])
    output = "Mail jane.roe@gmail.com."
    flagged = decided(tenant, stage="output", output=output, service="internal-bot")
    assert (flagged["decision"], flagged["flagged"]) == ("allow", True)
    assert verdicts(flagged) == {"pii": "fail"}
    assert decided(tenant, stage="output", output=output, service="support-bot")["decision"] == "block"


@pytest.mark.django_db
def test_forbidden_tools_and_grounding_block_as_configured(tenant: Tenant) -> None:
    save_policy(
        tenant,
        checks=[
            {"check": "forbidden_tools", "params": {"deny": ["shell.*"]}},
            {"check": "grounding", "action": "block"},
        ],
    )
    tools = decided(tenant, stage="input", input="list files", tool_calls=[{"name": "shell.exec", "arguments": "ls"}])
    assert tools["decision"] == "block" and verdicts(tools)["forbidden_tools"] == "fail"
    allowed = decided(tenant, stage="input", input="weather", tool_calls=[{"name": "weather.get"}])
    assert allowed["decision"] == "allow"

    docs = [{"id": "policy", "text": "Refunds are paid back within 14 days of the return."}]
    grounded = decided(tenant, stage="output", output="Refunds are paid back within 14 days.", documents=docs)
    assert grounded["decision"] == "allow" and verdicts(grounded)["grounding"] == "pass"
    invented = decided(
        tenant, stage="output", output="Refunds are paid in cash by Captain Nemo on 3 March 2031.", documents=docs
    )
    assert invented["decision"] == "block" and verdicts(invented)["grounding"] == "fail"
    no_docs = decided(tenant, stage="output", output="Refunds take 14 days.")
    assert verdicts(no_docs)["grounding"] == "skipped" and no_docs["decision"] == "allow"


@pytest.mark.django_db
def test_the_decision_joins_the_callers_trace_and_the_cost_ceiling_reads_its_cost(tenant: Tenant) -> None:
    start = datetime.now(UTC) - timedelta(seconds=5)
    trace = {
        "trace_id": "ab" * 16,
        "service": "support-bot",
        "spans": [
            {
                "span_id": "cd" * 8,
                "name": "chat",
                "kind": "llm",
                "start_time": start.isoformat(),
                "end_time": (start + timedelta(seconds=1)).isoformat(),
                "cost": 0.75,
            }
        ],
    }
    response = Client().post(
        "/api/v1/traces", data=json.dumps({"traces": [trace]}), content_type="application/json", headers=tenant.bearer
    )
    assert response.status_code == 200
    save_policy(tenant, checks=[{"check": "cost_ceiling", "params": {"max_usd": "0.50"}}])
    answer = decided(tenant, stage="output", output="Sure.", trace_id="AB" * 16, span_id="cd" * 8)
    assert answer["decision"] == "block" and answer["trace_id"] == "ab" * 16
    (cost,) = [c for c in answer["checks"] if c["check"] == "cost_ceiling"]
    assert cost["evidence"]["cost_usd"] == "0.7500000000"
    stored = Trace.objects.get(project=tenant.project, trace_id="ab" * 16)
    assert stored.span_count == 2
    guard_span = Span.objects.get(trace=stored, span_id=answer["span_id"])
    assert guard_span.parent_span_id == "cd" * 8


@pytest.mark.django_db
def test_checks_unfinished_at_the_deadline_fail_open_or_closed_as_the_policy_says(tenant: Tenant) -> None:
    # ~190,000 characters of prose with an injection at the end: far more than 1 ms of scanning.
    text = ("The refund policy covers returns made within thirty days of delivery. " * 2600) + INJECTION
    save_policy(tenant, checks=[{"check": "prompt_injection"}], deadline_ms=1, fail="closed")
    closed = decided(tenant, stage="input", input=text)
    assert (closed["decision"], verdicts(closed)) == ("block", {"prompt_injection": "timeout"})
    save_policy(tenant, checks=[{"check": "prompt_injection"}], deadline_ms=1, fail="open")
    opened = decided(tenant, stage="input", input=text)
    assert (opened["decision"], verdicts(opened)) == ("allow", {"prompt_injection": "timeout"})
    # A call may shorten the policy's deadline for itself, never lengthen it.
    save_policy(tenant, checks=[{"check": "prompt_injection"}], deadline_ms=10_000, fail="closed")
    hurried = decided(tenant, stage="input", input=text, deadline_ms=1)
    assert (hurried["decision"], verdicts(hurried)) == ("block", {"prompt_injection": "timeout"})
    # With time to finish, the same text is blocked for what it says.
    save_policy(tenant, checks=[{"check": "prompt_injection"}], deadline_ms=10_000, fail="open")
    finished = decided(tenant, stage="input", input=text, deadline_ms=10_000)
    assert (finished["decision"], verdicts(finished)) == ("block", {"prompt_injection": "fail"})


@pytest.mark.django_db
def test_a_stored_policy_that_no_longer_validates_fails_as_it_said(tenant: Tenant) -> None:
    GuardPolicy.objects.create(
        project=tenant.project, service="", spec={"checks": [{"check": "vibes"}], "fail": "closed"}
    )
    answer = decided(tenant, stage="input", input="hello")
    assert answer["decision"] == "block"
    (check,) = answer["checks"]
    assert check["verdict"] == "error" and "unknown check 'vibes'" in check["explanation"]
    GuardPolicy.objects.filter(project=tenant.project).update(spec={"checks": [{"check": "vibes"}]})
    # An update that bypasses the model (no save signal) is seen within SRE4AI_GUARD_CACHE_SECONDS, like a change
    # made in another server process (test_guard_recording.py); here the cached policy is dropped to not wait.
    POLICY_CACHE.clear()
    assert decided(tenant, stage="input", input="hello")["decision"] == "allow"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"input": "hi"}, "stage: Field required"),
        ({"stage": "answer", "input": "hi"}, "stage: Input should be 'input' or 'output'"),
        ({"stage": "output", "input": "hi"}, "stage output needs the answer in 'output'"),
        ({"stage": "input", "input": "hi", "trace_id": "xyz"}, "trace_id must be 32 hexadecimal characters"),
        ({"stage": "input", "input": "hi", "span_id": "ab" * 8}, "span_id needs the trace_id"),
        ({"stage": "input", "input": "hi", "colour": "red"}, "colour: Extra inputs are not permitted"),
        ({"stage": "input", "input": "x" * 200_001}, "input: String should have at most 200000 characters"),
        (
            {"stage": "input", "input": "hi", "deadline_ms": 0},
            "deadline_ms: Input should be greater than or equal to 1",
        ),
    ],
)
def test_bad_requests_get_a_400_that_says_what_is_wrong(tenant: Tenant, body: dict[str, Any], message: str) -> None:
    response = guard(tenant, **body)
    assert response.status_code == 400
    assert message in response.json()["error"]
    assert not GuardRecord.objects.exists()


@pytest.mark.django_db
def test_a_guard_call_needs_a_project_key_and_stays_in_its_project(tenant: Tenant, other_tenant: Tenant) -> None:
    response = Client().post("/api/v1/guard", data="{}", content_type="application/json")
    assert response.status_code == 401
    assert (
        Client()
        .post("/api/v1/guard", data="[1]", content_type="application/json", headers=guard_headers(tenant))
        .status_code
        == 400
    )
    no_scope = Client().post("/api/v1/guard", data="{}", content_type="application/json", headers=tenant.bearer)
    assert no_scope.status_code == 403 and "guard" in no_scope.json()["error"]
    save_policy(other_tenant, checks=[{"check": "pii", "action": "block"}])
    assert decided(tenant, stage="output", output="Mail jane.roe@gmail.com.")["decision"] == "redact"
    assert not Span.objects.filter(project=other_tenant.project).exists()


@pytest.mark.django_db
def test_the_policy_page_saves_a_valid_policy_and_explains_an_invalid_one(tenant: Tenant) -> None:
    client = Client()
    assert client.login(username=tenant.user.username, password=PASSWORD)
    url = f"/p/{tenant.project.slug}/guard/"
    page = client.get(url)
    assert page.status_code == 200 and b"prompt_injection" in page.content
    # The form starts from the built-in default, one key a line (as the reference above it), ready to edit.
    textarea = page.content.decode().split('name="spec"')[1].split("</textarea>")[0]
    assert "{\n  &quot;checks&quot;: [\n    {\n      &quot;check&quot;: &quot;prompt_injection&quot;," in textarea
    bad = {"checks": [{"check": "grounding", "action": "redact"}, {"check": "<b>x</b>"}]}
    response = client.post(url, {"service": "bot", "spec": json.dumps(bad)})
    assert response.status_code == 400
    assert b"grounding cannot redact" in response.content and b"<b>x</b>" not in response.content
    assert not GuardPolicy.objects.exists()
    good = {"checks": [{"check": "pii", "action": "flag", "params": {"kinds": ["email"]}}], "deadline_ms": 30}
    assert client.post(url, {"service": "bot", "spec": json.dumps(good)}).status_code == 302
    stored = GuardPolicy.objects.get(project=tenant.project, service="bot")
    assert stored.spec["deadline_ms"] == 30 and stored.spec["checks"][0]["action"] == "flag"
    viewer = make_tenant("viewer-co", "vic", role="viewer")
    membership_set(project=tenant.project, user=viewer.user, role="viewer")
    reader = Client()
    assert reader.login(username="vic", password=PASSWORD)
    assert reader.get(url).status_code == 200
    assert reader.post(url, {"service": "bot", "delete": "1"}).status_code == 403
    assert reader.post(url, {"service": "x", "spec": json.dumps(good)}).status_code == 403
    assert client.post(url, {"service": "bot", "delete": "1"}).status_code == 302
    assert not GuardPolicy.objects.exists()


def test_redaction_covers_overlapping_findings_once_and_refuses_when_findings_were_cut() -> None:
    text = "use postgres://u:hunter2x@db/app or AKIA-example"
    url = {"kind": "url_credentials", "start": 4, "end": 32}
    inner = {"kind": "password", "start": 17, "end": 25}
    example = {"kind": "aws_access_key", "start": 36, "end": 48, "example": True}
    failing = CheckOutcome("secrets", "redact", "fail", evidence={"findings": [inner, url, example]})
    assert redact(text, [failing]) == "use [redacted:url_credentials] or AKIA-example"
    cut = CheckOutcome("pii", "redact", "fail", evidence={"findings": [url], "more_findings": 3})
    assert redact(text, [failing, cut]) is None


@pytest.mark.django_db
def test_guard_decisions_back_an_slo_on_the_share_of_blocked_calls(tenant: Tenant) -> None:
    for text in ("Hello", "How long do refunds take?", "Thanks!", INJECTION):
        decided(tenant, stage="input", input=text, service="support-bot")
    decided(tenant, stage="input", input=INJECTION, service="other-bot")  # another service: not this SLO's
    recompute()
    # The SLO form accepts "guardrail" as a score name once guard calls have written one.
    slo = create_slo(
        tenant.project, name="Inputs not blocked", sli_kind="score", evaluator="guardrail", comparator="pass"
    )
    now = timezone.now() + timedelta(minutes=1)
    sli_history_rebuild(slo_id=slo.pk, now=now)
    counts = window_counts(slos=[slo], end=floor_minute(now), windows=[60])
    assert counts[(slo.pk, 60)] == (3, 4)
