"""What is evaluated: the one definition of a trace's question and answer (traces.exchange), shared by the trace
list's preview and every evaluator, and 'not applicable is not failed' end to end."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client

from evals.models import Score
from evals.services import traces_score
from tests import otlp_build as ob
from tests.conftest import Tenant
from traces.exchange import SpanFacts, exchange_of
from traces.models import Trace

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def fact(span_id: str, parent: str = "", kind: str = "llm", at: int = 0, end: int = 1, i: str = "", o: str = ""):
    return SpanFacts(span_id, parent, kind, T0 + timedelta(seconds=at), T0 + timedelta(seconds=end), i, o)


def ids(spans: list[SpanFacts]) -> tuple[str, str | None, str | None]:
    exchange = exchange_of(spans)
    return (
        exchange.root.span_id,
        exchange.question.span_id if exchange.question else None,
        exchange.answer.span_id if exchange.answer else None,
    )


def test_the_root_holds_question_and_answer_when_it_has_them() -> None:
    spans = [fact("root", kind="chain", end=9, i="q", o="a"), fact("llm", "root", at=1, end=2, i="q2", o="a2")]
    assert ids(spans) == ("root", "root", "root")


def test_an_agent_without_root_output_is_answered_by_its_last_generation_with_text() -> None:
    spans = [
        fact("root", kind="agent", end=9, i="Where is my order?"),
        fact("plan", "root", at=1, end=2, i="Where is my order?", o=""),  # a tool call only: no text
        fact("tool", "root", kind="tool", at=2, end=3, o="shipped"),
        fact("final", "root", at=3, end=5, i="…", o="It shipped; mail ops@example.com."),
        fact("after", "final", at=5, end=6, o=""),  # a later call without text is no answer
    ]
    assert ids(spans) == ("root", "root", "final")


def test_calls_outside_the_main_path_and_missing_text_give_no_answer() -> None:
    spans = [
        fact("root", kind="chain", end=9),
        fact("stray", "elsewhere", at=4, end=8, i="other question", o="other answer"),  # another subtree's orphan
        fact("llm", "root", at=1, end=2, i="the question"),
    ]
    root, question, answer = ids(spans)
    assert (root, question, answer) == ("root", "llm", None)


def test_the_root_is_the_earliest_orphan_until_the_real_root_arrives() -> None:
    spans = [fact("b", "missing", at=2, end=3, o="late"), fact("a", "missing", at=1, end=2, i="q", o="early")]
    assert ids(spans) == ("a", "a", "a")


# --- end to end: ingest, the trace list preview, scoring ---------------------------------------------------------


def send(client: Client, tenant: Tenant, spans: list) -> Trace:
    body = ob.request(spans, resource={"service.name": "agent"}).SerializeToString()
    response = client.post("/v1/traces", data=body, content_type="application/x-protobuf", headers=tenant.bearer)
    assert response.status_code == 200
    return Trace.objects.get(project=tenant.project, trace_id=spans[0].trace_id.hex())


def chat(role: str, text: str) -> str:
    return json.dumps([{"role": role, "parts": [{"type": "text", "content": text}]}])


@pytest.mark.django_db
def test_an_agent_trace_is_judged_on_its_final_answer(client: Client, tenant: Tenant) -> None:
    trace_id, root = ob.new_trace_id(), ob.new_span_id()
    question = "Who do I write to about my refund?"
    answer = "Please write to refunds.desk@acme-corp.net and we will sort it out."
    spans = [
        ob.span(trace_id, root, name="agent run", duration_ms=50, attributes={"gen_ai.operation.name": "invoke_agent"}),
        ob.span(
            trace_id,
            parent=root,
            name="chat plan",
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.input.messages": chat("user", question),
                "gen_ai.output.messages": json.dumps(
                    [{"role": "assistant", "parts": [{"type": "tool_call", "name": "lookup_contact", "arguments": {}}]}]
                ),
            },
        ),
        ob.span(
            trace_id,
            parent=root,
            name="chat answer",
            start_ns=time.time_ns() + 20_000_000,
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.input.messages": chat("user", question),
                "gen_ai.output.messages": chat("assistant", answer),
            },
        ),
        ob.span(  # a last bookkeeping call that only calls a tool: a step, not the answer
            trace_id,
            parent=root,
            name="chat remember",
            start_ns=time.time_ns() + 30_000_000,
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.output.messages": json.dumps(
                    [{"role": "assistant", "parts": [{"type": "tool_call", "name": "save_memory", "arguments": {}}]}]
                ),
            },
        ),
    ]
    trace = send(client, tenant, spans)
    assert trace.input_preview == question
    assert trace.output_preview == answer  # the list shows the answer the evaluators judge
    traces_score(project_id=tenant.project.pk, trace_pks=[trace.pk])
    scores = {s.name: s for s in Score.objects.filter(trace=trace)}
    assert scores["refusal"].passed is True  # not "answer empty"
    assert scores["pii"].passed is False  # the e-mail address in the final answer is found
    assert "email" in json.dumps(scores["pii"].evidence)


@pytest.mark.django_db
def test_a_trace_without_content_or_with_a_failed_call_is_not_applicable(client: Client, tenant: Tenant) -> None:
    """The README's OTel snippet (no message content) and an HTTP 429: no refusal, no PII verdict, no failure."""
    quiet = ob.new_trace_id()
    failed = ob.new_trace_id()
    traces = [
        send(
            client,
            tenant,
            [
                ob.span(
                    quiet,
                    name="chat gpt-4o-mini",
                    attributes={
                        "gen_ai.operation.name": "chat",
                        "gen_ai.request.model": "gpt-4o-mini",
                        "gen_ai.usage.input_tokens": 812,
                        "gen_ai.usage.output_tokens": 64,
                    },
                )
            ],
        ),
        send(
            client,
            tenant,
            [
                ob.span(
                    failed,
                    name="chat",
                    error="HTTP 429 Too Many Requests",
                    attributes={"gen_ai.operation.name": "chat", "gen_ai.input.messages": chat("user", "Hi")},
                )
            ],
        ),
    ]
    traces_score(project_id=tenant.project.pk, trace_pks=[t.pk for t in traces])
    judged = Score.objects.filter(trace__in=traces, name__in=["refusal", "pii", "grounding", "output_format"])
    assert list(judged) == []
    assert not Score.objects.filter(trace__in=traces, passed=False).exists()


@pytest.mark.django_db
def test_the_trace_page_says_what_each_score_means_and_why_others_do_not_apply(client: Client, tenant: Tenant) -> None:
    quiet_id, agent_id = ob.new_trace_id(), ob.new_trace_id()
    quiet = send(client, tenant, [ob.span(quiet_id, name="chat", error="HTTP 429 Too Many Requests", attributes={
        "gen_ai.operation.name": "chat", "gen_ai.input.messages": chat("user", "Hi")})])  # fmt: skip
    root = ob.new_span_id()
    agent = send(client, tenant, [
        ob.span(agent_id, root, name="agent", duration_ms=40),
        *[ob.span(agent_id, parent=root, name=f"chat {n}", attributes={
            "gen_ai.operation.name": "chat", "gen_ai.output.messages": chat("assistant", "Mail bob@acme-corp.net")})
          for n in range(4)],
    ])  # fmt: skip
    traces_score(project_id=tenant.project.pk, trace_pks=[quiet.pk, agent.pk])
    client.force_login(tenant.user)
    page = client.get(f"/p/acme/traces/{agent_id}/").content.decode()
    assert "PII found: email" in page
    assert "4 LLM calls (limit" in page
    assert "n/a · no retrieved documents" in page  # grounding: nothing to check the answer against
    quiet_page = client.get(f"/p/acme/traces/{quiet_id}/").content.decode()
    assert "n/a · no answer: the call failed (HTTP 429 Too Many Requests)" in quiet_page
    assert "Not scored yet" not in quiet_page


@pytest.mark.django_db
def test_the_answer_of_an_agent_is_searchable_in_the_trace_list(client: Client, tenant: Tenant) -> None:
    trace_id, root = ob.new_trace_id(), ob.new_span_id()
    send(client, tenant, [
        ob.span(trace_id, root, name="agent", duration_ms=40),
        ob.span(trace_id, parent=root, name="chat", attributes={
            "gen_ai.operation.name": "chat", "gen_ai.output.messages": chat("assistant", "Your parcel is in Zaragoza")}),
    ])  # fmt: skip
    response = client.get("/api/v1/traces?text=zaragoza", headers=tenant.bearer)
    assert [t["trace_id"] for t in response.json()["items"]] == [trace_id]
