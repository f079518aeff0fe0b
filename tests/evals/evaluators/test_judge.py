"""LLM-as-judge against a real local HTTP server that speaks POST /v1/chat/completions.

Time is driven through the module's ``_clock`` / ``_sleep`` hooks: no test sleeps for backoff or rate limits,
and none asserts wall-clock durations.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from decimal import Decimal
from typing import Any

import httpx
import pytest
from opentelemetry import context as otel_context
from opentelemetry import propagate
from opentelemetry.sdk.trace import TracerProvider
from pydantic import ValidationError

from evals.evaluators import judge
from evals.evaluators.base import ContextDoc, EvalItem, EvaluatorError
from evals.evaluators.judge import LlmJudge, parse_verdict
from tests import fake_chat_completions
from tests.fake_chat_completions import KEY, KEY_ENV, FakeLLM, Reply
from tests.receiver import raw_server, trickle

# Shared fixtures: pytest finds a fixture by its name in the test's module.
llm = fake_chat_completions.llm

ITEM = EvalItem(
    input="What is the capital of France?",
    output="Paris is the capital of France.",
    context=(
        ContextDoc(id="d1", text="Paris is the capital and largest city of France."),
        ContextDoc(id="d2", text="France borders Spain and Belgium."),
    ),
    expected="Paris",
)


@pytest.fixture(autouse=True)
def _key_variable_allowed(settings: Any) -> None:
    settings.SRE4AI_OUTBOUND_ENV_ALLOW = [KEY_ENV]


@pytest.fixture(autouse=True)
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """No real sleeping for backoff or rate limits: record what would have been slept."""
    slept: list[float] = []
    monkeypatch.setattr(judge, "_sleep", slept.append)
    return slept


def make(llm: FakeLLM, **params: Any) -> LlmJudge:
    config = {
        "base_url": llm.base_url,
        "model": "gpt-4o-mini",
        "api_key_env": KEY_ENV,
        "requests_per_minute": None,
        **params,
    }
    evaluator = LlmJudge.from_config(config)
    assert isinstance(evaluator, LlmJudge)
    return evaluator


# --------------------------------------------------------------------------------------------------------
# Plugin contract and params.


def test_plugin_attributes_and_defaults() -> None:
    assert (LlmJudge.name, LlmJudge.version, LlmJudge.queue, LlmJudge.default_enabled) == ("judge", 2, "judge", False)
    params = LlmJudge.Params()
    assert params.model_dump() == {
        "base_url": "https://api.openai.com/v1",
        "model": "gpt-4o-mini",
        "api_key_env": "OPENAI_API_KEY",
        "template": "faithfulness",
        "threshold": 0.75,
        "temperature": 0.0,
        "timeout_seconds": 30.0,
        "max_retries": 2,
        "requests_per_minute": 60.0,
        "max_concurrency": 4,
        "input_cost_per_million": None,
        "output_cost_per_million": None,
        "max_context_chars": 24000,
    }


def test_params_validation() -> None:
    p = LlmJudge.Params.model_validate({"base_url": "http://llm.local:8000/v1/chat/completions/"})
    assert p.base_url == "http://llm.local:8000/v1"
    with pytest.raises(ValidationError, match="extra"):
        LlmJudge.Params.model_validate({"api_key": KEY})
    with pytest.raises(ValidationError, match="NAME of an environment variable") as exc:
        LlmJudge.Params.model_validate({"api_key_env": KEY})
    assert KEY not in str(exc.value)  # a pasted key is not echoed back
    with pytest.raises(ValidationError, match="or neither"):
        LlmJudge.Params.model_validate({"input_cost_per_million": "1.5"})
    with pytest.raises(ValidationError, match="http"):
        LlmJudge.Params.model_validate({"base_url": "ftp://x/v1"})
    with pytest.raises(ValidationError, match="template"):
        LlmJudge.Params.model_validate({"template": "toxicity"})


# --------------------------------------------------------------------------------------------------------
# Prompts and results.


@pytest.mark.parametrize(
    ("template", "present", "absent"),
    [
        (
            "faithfulness",
            [
                "FAITHFULNESS",
                "[1] Paris is the capital and largest city of France.",
                "[2] France borders Spain",
                ITEM.output,
                '"claims": [{"claim": "<exact quote from the answer>", "verdict": "supported" or "contradicted" or '
                '"baseless",',
            ],
            ["Expected answer"],
        ),
        (
            "answer_correctness",
            ["ANSWER CORRECTNESS", "Expected answer:\n<<<Paris>>>", ITEM.output, ITEM.input],
            ["largest city"],
        ),
        ("relevance", ["RELEVANCE", ITEM.input, ITEM.output], ["largest city", "Expected answer"]),
    ],
)
def test_prompt_contents(llm: FakeLLM, template: str, present: list[str], absent: list[str]) -> None:
    result = make(llm, template=template).evaluate(ITEM)
    assert result is not None and result.value == 1.0
    [request] = llm.requests
    assert request["path"] == "/v1/chat/completions"
    assert request["headers"]["authorization"] == f"Bearer {KEY}"
    body = request["body"]
    assert body["model"] == "gpt-4o-mini"
    assert body["temperature"] == 0
    system, user = body["messages"]
    assert system["role"] == "system" and '"verdict"' in system["content"] and "JSON" in system["content"]
    assert user["role"] == "user"
    for text in present:
        assert text in user["content"]
    for text in absent:
        assert text not in user["content"]


def test_long_context_is_truncated(llm: FakeLLM) -> None:
    item = EvalItem(input="q", output="a", context=(ContextDoc(id="d", text="x" * 5000 + "TAIL"),))
    assert make(llm, max_context_chars=1000).evaluate(item) is not None
    content = llm.requests[0]["body"]["messages"][1]["content"]
    assert "context truncated" in content and "TAIL" not in content


@pytest.mark.parametrize(
    ("template", "item"),
    [
        ("faithfulness", EvalItem(input="q", output="an answer", context=())),
        ("faithfulness", EvalItem(input="q", output="an answer", context=(ContextDoc(id="d", text="  "),))),
        ("answer_correctness", EvalItem(input="q", output="an answer", expected=None)),
        ("answer_correctness", EvalItem(input="q", output="an answer", expected=" ")),
        ("relevance", EvalItem(input="", output="an answer")),
        ("relevance", EvalItem(input="q", output="")),
    ],
)
def test_not_applicable_without_inputs(llm: FakeLLM, template: str, item: EvalItem) -> None:
    assert make(llm, template=template).evaluate(item) is None
    assert llm.requests == []


def test_result_shape(llm: FakeLLM) -> None:
    llm.default = Reply(content='```json\n{"score": 3, "verdict": "fail", "reasoning": "One claim unsupported."}\n```')
    result = make(llm, template="relevance").evaluate(ITEM)
    assert result is not None
    assert result.name == "judge.relevance"
    assert (result.value, result.passed, result.label) == (0.5, False, "fail")
    assert result.evidence == {
        "reasoning": "One claim unsupported.",
        "raw_score": 3,
        "model": "gpt-4o-mini",
        "usage": {"input_tokens": 1000, "output_tokens": 500},
    }
    assert "One claim unsupported." in result.explanation
    lenient = make(llm, template="relevance", threshold=0.5).evaluate(ITEM)
    assert lenient is not None and lenient.passed is True


CLAIMS_ITEM = EvalItem(
    input="Tell me about Paris.",
    output="Paris is the capital of France. It has 9 million residents. It borders Spain.",
    context=(
        ContextDoc(id="d1", text="Paris is the capital and largest city of France, with 2.1 million residents."),
        ContextDoc(id="d2", text="France borders Spain and Belgium."),
    ),
)
CLAIMS_REPLY = {
    "score": 2,
    "verdict": "fail",
    "reasoning": "The population is wrong and the border claim is about France.",
    "claims": [
        {
            "claim": "Paris is the capital of France.",
            "verdict": "supported",
            "evidence": "Paris is the capital and largest city of France",
            "document": 1,
        },
        {"claim": "It has 9 million residents.", "verdict": "Contradicted", "evidence": "2.1  million residents"},
        {"claim": "it borders spain.", "verdict": "unverifiable", "evidence": "", "document": None},
        {"claim": "A claim the answer does not make.", "verdict": "supported", "evidence": "not in any document"},
        {"claim": "", "verdict": "supported"},
        "not a claim object",
    ],
}


def test_faithfulness_claims_map_onto_grounding_evidence(llm: FakeLLM) -> None:
    llm.default = Reply(content="```json\n" + json.dumps(CLAIMS_REPLY) + "\n```")
    result = make(llm).evaluate(CLAIMS_ITEM)
    assert result is not None
    assert (result.value, result.passed, result.label) == (0.25, False, "fail")
    evidence = result.evidence
    assert (evidence["claims"], evidence["supported_claims"]) == (4, 2)
    answer = CLAIMS_ITEM.output
    first, second, third, fourth = evidence["sentences"]
    assert (first["verdict"], first["supported"], first["document_id"]) == ("supported", True, "d1")
    assert answer[first["start"] : first["end"]] == first["text"] == "Paris is the capital of France."
    span = first["context_span"]
    assert CLAIMS_ITEM.context[0].text[span["start"] : span["end"]] == span["text"]
    assert span["text"] == "Paris is the capital and largest city of France"
    # A verdict word in another case; a quote with other spacing is still found in its document.
    assert (second["verdict"], second["contradicted"], second["supported"]) == ("contradicted", True, False)
    assert second["context_span"]["text"] == "2.1 million residents"
    # A claim quoted in another case is found in the answer; an unknown verdict word counts as baseless.
    assert (third["verdict"], third["text"], third["context_span"]) == ("baseless", "It borders Spain.", None)
    assert answer[third["start"] : third["end"]] == "It borders Spain."
    # A claim or a quote that cannot be found keeps its text without offsets, and says so.
    assert (fourth["start"], fourth["end"], fourth["context_span"]) == (None, None, None)
    assert fourth["reason"] == "judge: supported (quoted evidence not found: not in any document)"
    assert evidence["unsupported"] == ["It has 9 million residents.", "It borders Spain."]
    assert set(first) == {
        "text",
        "start",
        "end",
        "claim",
        "supported",
        "verdict",
        "score",
        "reason",
        "document_id",
        "context_span",
        "baseless_spans",
        "missing_specifics",
        "contradicted",
    }


def test_faithfulness_without_claims_keeps_the_plain_verdict(llm: FakeLLM) -> None:
    result = make(llm).evaluate(ITEM)
    assert result is not None and result.value == 1.0
    assert "sentences" not in result.evidence


# --------------------------------------------------------------------------------------------------------
# Verdict parsing.


@pytest.mark.parametrize(
    ("reply", "value", "verdict"),
    [
        ('{"score": 5, "verdict": "pass", "reasoning": "ok"}', 1.0, "pass"),
        ('```json\n{"score": 4, "verdict": "pass", "reasoning": "mostly"}\n```', 0.75, "pass"),
        ('```\n{"score": 1, "verdict": "fail"}\n```', 0.0, "fail"),
        ('{"score": 2, "verdict": "fail", "reasoning": "x"}\n\nI hope this helps!', 0.25, "fail"),
        ('Here is my evaluation: {"score": 0.8, "verdict": "pass"}', 0.8, "pass"),
        ("{'score': 3, 'verdict': 'fail', 'reasoning': 'partly'}", 0.5, "fail"),
        ("{'score': 4, 'verdict': 'pass', 'reasoning': 'It's grounded'}", 0.75, "pass"),
        ('{"score": "4/5", "verdict": "PASS"}', 0.75, "pass"),
        ('{"Score": 5, "Verdict": "Pass"}', 1.0, "pass"),
        ('{"rating": 5, "explanation": "great"}', 1.0, None),
        ('{"verdict": "fail", "reasoning": "nope"}', 0.0, "fail"),
        ('{"passed": true}', 1.0, "pass"),
        ("Score: 4/5\nVerdict: PASS\nReasoning: fine", 0.75, "pass"),
        ("**Score:** 8/10", 0.8, None),
        ("Score: 3 out of 5", 0.5, None),
        ("Score: 90%", 0.9, None),
        ("VERDICT: PASS", 1.0, "pass"),
        ("verdict - fail", 0.0, "fail"),
        ("As a result, the answer drifts. Final verdict: FAIL", 0.0, "fail"),
        ("**PASS**", 1.0, "pass"),
        ("4", 0.75, None),
        ("1", 0.0, None),
        ("0.3", 0.3, None),
        (" 5 ", 1.0, None),
    ],
)
def test_verdict_parsing(reply: str, value: float, verdict: str | None) -> None:
    parsed = parse_verdict(reply)
    assert parsed.value == pytest.approx(value)
    assert parsed.verdict == verdict


def test_verdict_reasoning_is_kept() -> None:
    assert parse_verdict("Score: 4/5\nVerdict: PASS\nReasoning: all claims supported").reasoning == (
        "all claims supported"
    )
    assert parse_verdict("{'score': 4, 'verdict': 'pass', 'reasoning': 'It's grounded'}").reasoning == "It's grounded"


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        ('{"reasoning": "looks good"}', "no score"),
        ("I cannot evaluate this answer.", "no score"),
        ("", "no score"),
        ('{"score": true}', "no score"),
        ("Score: 7", "outside"),
        ('{"score": 9, "verdict": "pass"}', "outside"),
        ("Score: 6/5", "out of its range"),
        ("Score: 120%", "outside"),
    ],
)
def test_unreadable_verdicts(reply: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as exc:
        parse_verdict(reply)
    assert repr(reply.strip()[:20])[:-1] in str(exc.value)  # quotes the start of the reply


def test_unreadable_verdict_is_not_retried(llm: FakeLLM) -> None:
    llm.default = Reply(content="I am unable to judge this. " * 20)
    with pytest.raises(EvaluatorError) as exc:
        make(llm).evaluate(ITEM)
    assert exc.value.retryable is False
    assert "'I am unable to judge this. I am unable" in str(exc.value) and "…" in str(exc.value)
    assert len(llm.requests) == 1


def test_not_a_chat_completion(llm: FakeLLM) -> None:
    llm.default = Reply(body={"hello": "world"})
    with pytest.raises(EvaluatorError, match="did not return a chat completion") as exc:
        make(llm).evaluate(ITEM)
    assert exc.value.retryable is False


# --------------------------------------------------------------------------------------------------------
# Cost.


def test_cost_from_usage_with_genai_prices(llm: FakeLLM) -> None:
    result = make(llm).evaluate(ITEM)  # gpt-4o-mini: $0.15 in / $0.60 out per million tokens
    assert result is not None
    assert result.cost == Decimal("0.00045")


def test_cost_override_prices(llm: FakeLLM) -> None:
    result = make(llm, input_cost_per_million="2", output_cost_per_million="10").evaluate(ITEM)
    assert result is not None
    assert result.cost == Decimal("0.007")


@pytest.mark.parametrize(
    ("model", "usage"),
    [("my-local-llama-7b", {"prompt_tokens": 1000, "completion_tokens": 500}), ("gpt-4o-mini", None)],
)
def test_cost_unknown(llm: FakeLLM, model: str, usage: dict[str, int] | None) -> None:
    llm.default = Reply(model=model, usage=usage)
    result = make(llm, model=model).evaluate(ITEM)
    assert result is not None and result.value == 1.0
    assert result.cost is None


# --------------------------------------------------------------------------------------------------------
# Errors and retries.


def test_429_then_success_is_retried(llm: FakeLLM, sleeps: list[float]) -> None:
    llm.replies = [Reply(status=429, body={"error": {"message": "slow down"}}, headers={"Retry-After": "3"})]
    result = make(llm).evaluate(ITEM)
    assert result is not None and result.value == 1.0
    assert len(llm.requests) == 2
    assert sleeps and sleeps[0] >= 3  # Retry-After honoured


def test_long_retry_after_is_left_to_the_task(llm: FakeLLM) -> None:
    llm.default = Reply(status=429, body={"error": {"message": "quota"}}, headers={"Retry-After": "3600"})
    with pytest.raises(EvaluatorError, match="retry after 3600") as exc:
        make(llm).evaluate(ITEM)
    assert exc.value.retryable is True
    assert len(llm.requests) == 1


def test_500_forever_is_retryable(llm: FakeLLM, sleeps: list[float]) -> None:
    llm.default = Reply(status=500, body={"error": {"message": "overloaded"}})
    with pytest.raises(EvaluatorError) as exc:
        make(llm, max_retries=2).evaluate(ITEM)
    assert exc.value.retryable is True
    assert "HTTP 500: overloaded" in str(exc.value) and "3 time(s)" in str(exc.value)
    assert len(llm.requests) == 3
    assert len(sleeps) == 2  # backoff between attempts, none after the last


def test_401_is_not_retryable_and_says_which_variable(llm: FakeLLM, monkeypatch: pytest.MonkeyPatch) -> None:
    wrong = "sk-wrong-key-9876543210"
    monkeypatch.setenv(KEY_ENV, wrong)
    with pytest.raises(EvaluatorError) as exc:
        make(llm).evaluate(ITEM)
    assert exc.value.retryable is False
    assert f"rejected the key in ${KEY_ENV} (401)" in str(exc.value)
    assert wrong not in str(exc.value)  # the server echoed it; the message redacts it
    assert len(llm.requests) == 1


@pytest.mark.parametrize(
    ("status", "hint"),
    [(400, "check model"), (403, "may not use model"), (404, "check base_url")],
)
def test_client_errors_are_not_retryable(llm: FakeLLM, status: int, hint: str) -> None:
    llm.default = Reply(status=status, body={"error": {"message": "nope"}})
    with pytest.raises(EvaluatorError, match=hint) as exc:
        make(llm).evaluate(ITEM)
    assert exc.value.retryable is False
    assert f"({status})" in str(exc.value) or "404" in str(exc.value)
    assert len(llm.requests) == 1


def test_wrong_base_url_path_is_a_404_hint(llm: FakeLLM) -> None:
    judge_ = make(llm, base_url=llm.base_url.removesuffix("/v1"))
    with pytest.raises(EvaluatorError, match="usually ending in /v1") as exc:
        judge_.evaluate(ITEM)
    assert exc.value.retryable is False


def test_timeout_is_retryable(llm: FakeLLM) -> None:
    llm.default = Reply(hang=True)
    with pytest.raises(EvaluatorError, match=r"no complete answer within 0\.2 s") as exc:
        make(llm, timeout_seconds=0.2, max_retries=1).evaluate(ITEM)
    assert exc.value.retryable is True
    assert len(llm.requests) == 2


def test_connection_refused_is_retryable(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    monkeypatch.setenv(KEY_ENV, KEY)
    evaluator = LlmJudge.from_config(
        {"base_url": f"http://127.0.0.1:{port}/v1", "api_key_env": KEY_ENV, "max_retries": 1}
    )
    with pytest.raises(EvaluatorError, match="connection failed") as exc:
        evaluator.evaluate(ITEM)
    assert exc.value.retryable is True


def test_missing_key_variable(llm: FakeLLM, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV)
    with pytest.raises(EvaluatorError, match=rf"\${KEY_ENV} \(api_key_env\) is not set") as exc:
        make(llm).evaluate(ITEM)
    assert exc.value.retryable is False
    assert llm.requests == []


def test_key_is_read_at_call_time_and_not_stored(llm: FakeLLM, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV)
    evaluator = make(llm)
    monkeypatch.setenv(KEY_ENV, KEY)  # set after construction: still used
    assert evaluator.evaluate(ITEM) is not None
    assert KEY not in repr(vars(evaluator)) and KEY not in evaluator.params.model_dump_json()


# --------------------------------------------------------------------------------------------------------
# Rate limit and concurrency cap.


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.lock = threading.Lock()

    def __call__(self) -> float:
        with self.lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self.lock:
            self.now += seconds


def test_rate_limit_spaces_calls(llm: FakeLLM, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock()
    monkeypatch.setattr(judge, "_clock", clock)
    monkeypatch.setattr(judge, "_sleep", clock.sleep)
    llm.clock = clock
    evaluator = make(llm, requests_per_minute=30)  # one call every 2 s
    for _ in range(4):
        assert evaluator.evaluate(ITEM) is not None
    times = [r["t"] - 1000.0 for r in llm.requests]
    assert times == pytest.approx([0.0, 2.0, 4.0, 6.0])


def test_rate_limiter_is_thread_safe(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock()
    monkeypatch.setattr(judge, "_clock", clock)
    limiter = judge._Limiter()
    waits: list[float] = []
    start = threading.Barrier(5)

    def take() -> None:
        start.wait(timeout=5)
        wait = limiter.reserve(60)
        with clock.lock:
            waits.append(wait)

    threads = [threading.Thread(target=take) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert sorted(waits) == pytest.approx([0.0, 1.0, 2.0, 3.0, 4.0])  # one slot each, none shared
    clock.sleep(60)  # idle for a minute: the bucket refills, but only to its burst of 1
    assert [limiter.reserve(60), limiter.reserve(60)] == pytest.approx([0.0, 1.0])
    assert limiter.reserve(None) == 0.0


def test_concurrency_cap_holds(llm: FakeLLM) -> None:
    llm.barrier = threading.Barrier(2)  # each request waits until a second one is in flight ...
    llm.hold_seconds = 0.15  # ... then lingers, so any third caller would be counted
    evaluator = make(llm, max_concurrency=2)
    results: list[Any] = []
    errors: list[BaseException] = []

    def call() -> None:
        try:
            results.append(evaluator.evaluate(ITEM))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=call) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert errors == []
    assert len(results) == 6 and all(r is not None and r.value == 1.0 for r in results)
    assert llm.max_in_flight == 2


# --------------------------------------------------------------------------------------------------------
# The judge's own calls are invisible to tracing.


def test_no_trace_context_is_sent(llm: FakeLLM) -> None:
    tracer = TracerProvider().get_tracer("app-under-test")
    with tracer.start_as_current_span("scoring task"):
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        assert "traceparent" in carrier  # a span is active: anything that propagated would send this
        assert make(llm).evaluate(ITEM) is not None
    headers = llm.requests[0]["headers"]
    assert not {"traceparent", "tracestate", "baggage"} & set(headers)


def test_global_httpx_instrumentation_is_suppressed(llm: FakeLLM, monkeypatch: pytest.MonkeyPatch) -> None:
    """Mimic an OpenTelemetry httpx instrumentor patched into every transport: it injects trace context
    unless instrumentation is suppressed, which the judge does around its calls."""
    original = httpx.HTTPTransport.handle_request
    seen: list[bool] = []

    def instrumented(self: httpx.HTTPTransport, request: httpx.Request) -> httpx.Response:
        suppressed = bool(otel_context.get_value(otel_context._SUPPRESS_INSTRUMENTATION_KEY))
        seen.append(suppressed)
        if not suppressed:
            propagate.inject(request.headers)
        return original(self, request)

    monkeypatch.setattr(httpx.HTTPTransport, "handle_request", instrumented)
    tracer = TracerProvider().get_tracer("app-under-test")
    with tracer.start_as_current_span("scoring task"):
        assert make(llm).evaluate(ITEM) is not None
        with httpx.Client() as other:  # control: an ordinary call in the same context is instrumented
            other.post(f"{llm.base_url}/chat/completions", json={}, headers={"Authorization": f"Bearer {KEY}"})
    assert seen == [True, False]
    assert "traceparent" not in llm.requests[0]["headers"]
    assert "traceparent" in llm.requests[1]["headers"]


def test_only_variables_the_operator_allows_are_read(llm: FakeLLM, monkeypatch: pytest.MonkeyPatch) -> None:
    """A project's judge settings naming the server's own secret get an error, and nothing is sent."""
    monkeypatch.setenv("DJANGO_SECRET_KEY", "the-server-secret")
    with pytest.raises(
        EvaluatorError, match=r"DJANGO_SECRET_KEY \(api_key_env\) is not one the operator allows"
    ) as exc:
        make(llm, api_key_env="DJANGO_SECRET_KEY").evaluate(ITEM)
    assert exc.value.retryable is False
    assert llm.requests == []


def test_an_internal_base_url_is_refused_unless_allowed(llm: FakeLLM, settings: Any) -> None:
    settings.SRE4AI_OUTBOUND_ALLOW = []
    with pytest.raises(EvaluatorError, match="internal address") as exc:
        make(llm).evaluate(ITEM)
    assert exc.value.retryable is False
    assert llm.requests == []


def test_a_trickling_endpoint_is_cut_off_at_the_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n"
    with raw_server(trickle(0.5, head)) as url:
        evaluator = LlmJudge.from_config({"base_url": f"{url}/v1", "api_key_env": KEY_ENV, "max_retries": 0,
                                          "timeout_seconds": 1.5, "requests_per_minute": None})  # fmt: skip
        began = time.monotonic()
        with pytest.raises(EvaluatorError, match=r"no complete answer within 1\.5 s") as exc:
            evaluator.evaluate(ITEM)
    assert exc.value.retryable is True
    assert time.monotonic() - began < 2.5


@pytest.mark.django_db
def test_a_project_secret_is_the_judges_key_and_other_projects_cannot_use_it(
    llm: FakeLLM, monkeypatch: pytest.MonkeyPatch, tenant: Any, other_tenant: Any
) -> None:
    """A trace's judge call reads the key from its own project's secret store (no environment variable needed)."""
    from dataclasses import replace

    from accounts.services import project_secret_set

    monkeypatch.delenv(KEY_ENV, raising=False)
    project_secret_set(project=tenant.project, name="JUDGE_PROJECT_KEY", value=KEY, user=None)
    evaluator = make(llm, api_key_env="JUDGE_PROJECT_KEY")
    assert evaluator.evaluate(replace(ITEM, metadata={"project_id": tenant.project.pk})) is not None
    assert llm.requests[-1]["headers"]["authorization"] == f"Bearer {KEY}"
    with pytest.raises(EvaluatorError, match="no project secret named JUDGE_PROJECT_KEY"):
        evaluator.evaluate(replace(ITEM, metadata={"project_id": other_tenant.project.pk}))
    assert len(llm.requests) == 1
