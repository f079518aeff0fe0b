"""Generate realistic demo traffic and send it through the real OTLP endpoint handler.

Three services of one project: a RAG support bot (retrieval + LLM, OpenInference + GenAI attributes),
a tool-using travel agent (GenAI conventions), and a summariser (Langfuse attributes). Several models,
a release change half-way, a few errors, and some answers that their retrieved documents do not support.
"""

from __future__ import annotations

import json
import os
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.test import RequestFactory
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, Span, Status
from tqdm import tqdm

from accounts.models import Project
from accounts.services import api_key_issue, project_create, user_create
from evals.drift.runs import drift_schedule_queue
from evals.services import evaluator_config_set
from slos.forms import default_rule_rows
from slos.models import SLO
from slos.services import slo_save
from traces.api import otlp_traces
from traces.ingest.otlp import to_key_values
from traces.models import Trace

DRIFT_AFTER_SECONDS = 180  # the worker scores the ~1,500 demo traces in about a minute
SLO_DEFAULTS: dict[str, Any] = {
    "environment": "",
    "route": "",
    "model": "",
    "evaluator": "",
    "comparator": "",
    "threshold": None,
    "window_days": 30,
}
RUNBOOK = """1. Open the incident's **triage page**: which release, model or prompt do the failing answers share?
2. If one release stands out, roll it back: `deploy rollback support-bot`.
3. Otherwise check the retriever: are the documents in the bad traces the right ones?
4. Write what you found as a note on the incident."""
DEMO_SLOS: list[dict[str, Any]] = [
    {
        "name": "Answers are grounded",
        "service": "support-bot",
        "sli_kind": "score",
        "evaluator": "grounding",
        "comparator": "pass",
        "objective": Decimal("0.95"),
        "runbook": RUNBOOK,
    },
    {
        "name": "Answers without errors",
        "service": "support-bot",
        "sli_kind": "error",
        "objective": Decimal("0.99"),
        "runbook": RUNBOOK,
    },
    {
        "name": "Agent answers within 8 s",
        "service": "travel-agent",
        "sli_kind": "latency",
        "threshold": Decimal(8000),
        "objective": Decimal("0.99"),
        "window_days": 7,
    },
    {"name": "No safety flags", "service": "travel-agent", "sli_kind": "safety", "objective": Decimal("0.9")},
]

KB = [
    (
        "kb-101",
        "Refunds are issued within 14 days of receiving the returned item. Refunds go to the original payment method.",
    ),
    ("kb-102", "Standard shipping takes 3 to 5 business days. Express shipping takes 1 business day and costs $12."),
    ("kb-103", "The Pro plan costs $29 per month and includes 5 seats. Extra seats cost $6 per seat per month."),
    (
        "kb-104",
        "To reset your password, open Settings, choose Security, then click Reset password. The link expires after 30 minutes.",
    ),
    (
        "kb-105",
        "Orders can be cancelled free of charge until they ship. After shipping, use the returns process instead.",
    ),
    ("kb-106", "Our support team is available Monday to Friday, 8:00 to 18:00 CET, by chat and email."),
]
QUESTIONS = [
    (
        "How long do refunds take?",
        [0, 4],
        "Refunds are issued within 14 days of receiving the returned item, to the original payment method.",
        "Refunds are issued within 3 days, and we add a $10 goodwill credit.",
    ),
    (
        "How fast is express shipping?",
        [1, 4],
        "Express shipping takes 1 business day and costs $12.",
        "Express shipping arrives the same day and is free for Pro customers.",
    ),
    (
        "What does the Pro plan cost?",
        [2, 5],
        "The Pro plan costs $29 per month with 5 seats; extra seats are $6 each per month.",
        "The Pro plan costs $19 per month with unlimited seats.",
    ),
    (
        "How do I reset my password?",
        [3, 0],
        "Open Settings, choose Security and click Reset password; the link expires after 30 minutes.",
        "Email security@example.com and we will reset it within 48 hours.",
    ),
    (
        "Can I cancel my order?",
        [4, 1],
        "Yes, orders can be cancelled free of charge until they ship; after that, use the returns process.",
        "Orders can be cancelled at any time, even after delivery, for a full refund plus shipping.",
    ),
    (
        "When is support available?",
        [5, 2],
        "Support is available Monday to Friday, 8:00 to 18:00 CET, by chat and email.",
        "Support is available 24/7 by phone at +1 800 555 0199.",
    ),
]
CITIES = ["Lisbon", "Kyoto", "Oslo", "Lima", "Nairobi", "Montreal"]
ARTICLES = [
    (
        "The city council approved a plan to add 40 km of protected bike lanes over three years, funded by a parking levy.",
        "Council backs 40 km of new bike lanes, paid for by parking fees.",
    ),
    (
        "A regional bank reported quarterly profit up 12% as lending to small businesses grew and deposit costs eased.",
        "Bank profit rose 12% on small-business lending and cheaper deposits.",
    ),
    (
        "Researchers found that a new battery chemistry retains 90% of its capacity after 2,000 charge cycles in lab tests.",
        "New battery keeps 90% capacity after 2,000 cycles in the lab.",
    ),
    (
        "The museum will reopen in March after a two-year renovation that doubled its gallery space and added a rooftop cafe.",
        "Museum reopens in March with twice the gallery space.",
    ),
]


def _user_of(conversation: int) -> str:
    """The end user of a conversation: one person per session, as in a real app (150 users)."""
    return f"user-{conversation * 37 % 150 + 1:03d}"


class DemoBuilder:
    """Builds OTLP spans for one trace at a time."""

    def __init__(self, rng: random.Random):
        self.rng = rng

    def ids(self) -> tuple[bytes, bytes]:
        return self.rng.randbytes(16), self.rng.randbytes(8)

    def span(
        self,
        trace_id: bytes,
        parent: bytes,
        name: str,
        start: datetime,
        ms: float,
        attrs: dict[str, Any],
        error: str = "",
    ) -> Span:
        span_id = self.rng.randbytes(8)
        start_ns = int(start.timestamp() * 1e9)
        return Span(
            trace_id=trace_id,
            span_id=span_id,
            parent_span_id=parent,
            name=name,
            kind=Span.SPAN_KIND_INTERNAL,
            start_time_unix_nano=start_ns,
            end_time_unix_nano=start_ns + int(ms * 1e6),
            attributes=to_key_values(attrs),
            status=Status(code=Status.STATUS_CODE_ERROR, message=error)
            if error
            else Status(code=Status.STATUS_CODE_OK),
        )

    def support_bot(self, at: datetime, release: str) -> list[Span]:
        rng = self.rng
        trace_id, _ = self.ids()
        question, doc_ix, good, bad = rng.choice(QUESTIONS)
        invented = rng.random() < (0.08 if release == "v1.4.0" else 0.22)
        answer = bad if invented else good
        model = "gpt-4o-mini" if release == "v1.4.0" else rng.choice(["gpt-4o-mini", "claude-3-5-haiku-20241022"])
        provider = "anthropic" if model.startswith("claude") else "openai"
        retrieval_ms = rng.uniform(20, 90)
        llm_ms = rng.lognormvariate(6.6, 0.35)
        failed = rng.random() < 0.02
        session = rng.randint(1, 400)
        root = self.span(
            trace_id,
            b"",
            "answer_question",
            at,
            retrieval_ms + llm_ms + 15,
            {
                "openinference.span.kind": "CHAIN",
                "input.value": question,
                "output.value": "" if failed else answer,
                "session.id": f"sess-{session:04d}",
                "user.id": _user_of(session),
                "tag.tags": ["support", "rag"],
            },
            error="LLM call failed" if failed else "",
        )
        docs: dict[str, Any] = {"openinference.span.kind": "RETRIEVER", "input.value": question}
        scores = sorted((rng.uniform(0.55, 0.93) for _ in doc_ix), reverse=True)
        for i, ix in enumerate(doc_ix):
            docs[f"retrieval.documents.{i}.document.id"] = KB[ix][0]
            docs[f"retrieval.documents.{i}.document.content"] = KB[ix][1]
            docs[f"retrieval.documents.{i}.document.score"] = round(scores[i], 3)
        retrieval = self.span(trace_id, root.span_id, "retrieve_kb", at + timedelta(milliseconds=5), retrieval_ms, docs)
        context = "\n".join(KB[ix][1] for ix in doc_ix)
        prompt_tokens = 180 + len(context) // 4 + rng.randint(0, 40)
        llm_attrs: dict[str, Any] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": provider,
            "gen_ai.request.model": model,
            "gen_ai.response.model": model,
            "gen_ai.request.temperature": 0.2,
            "gen_ai.input.messages": json.dumps(
                [
                    {
                        "role": "system",
                        "parts": [{"type": "text", "content": "Answer only from the context.\n" + context}],
                    },
                    {"role": "user", "parts": [{"type": "text", "content": question}]},
                ]
            ),
            "gen_ai.prompt.name": "support-answer",
            "langfuse.observation.prompt.version": 3 if release == "v1.4.0" else 4,
        }
        if failed:
            llm_attrs["error.type"] = "timeout"
        else:
            llm_attrs.update(
                {
                    "gen_ai.output.messages": json.dumps(
                        [{"role": "assistant", "parts": [{"type": "text", "content": answer}], "finish_reason": "stop"}]
                    ),
                    "gen_ai.usage.input_tokens": prompt_tokens,
                    "gen_ai.usage.output_tokens": len(answer) // 4 + rng.randint(2, 9),
                    "gen_ai.response.finish_reasons": ["stop"],
                }
            )
        llm = self.span(
            trace_id,
            root.span_id,
            f"chat {model}",
            at + timedelta(milliseconds=retrieval_ms + 10),
            llm_ms,
            llm_attrs,
            error="Request timed out after 30s" if failed else "",
        )
        return [root, retrieval, llm]

    def travel_agent(self, at: datetime, release: str) -> list[Span]:
        rng = self.rng
        trace_id, _ = self.ids()
        city = rng.choice(CITIES)
        model = "gpt-4o" if release == "v1.4.0" else "gpt-4.1-mini"
        loops = 3 if rng.random() < 0.04 else 1
        conversation = rng.randint(1, 300)
        spans: list[Span] = []
        t = at
        root = self.span(
            trace_id,
            b"",
            "invoke_agent trip-planner",
            at,
            0,
            {
                "gen_ai.operation.name": "invoke_agent",
                "gen_ai.agent.name": "trip-planner",
                "gen_ai.conversation.id": f"conv-{conversation:04d}",
                "user.id": _user_of(conversation),
            },
        )
        spans.append(root)
        request = f"Plan a weekend in {city}: weather and a hotel under $200."
        messages: list[dict[str, Any]] = [{"role": "user", "parts": [{"type": "text", "content": request}]}]
        for step in range(loops + 1):
            llm_ms = rng.lognormvariate(6.9, 0.3)
            last = step == loops
            if last:
                reply = f"For {city}: expect mild weather around 18°C. Hotel Central has rooms at $165 per night."
                out = [{"role": "assistant", "parts": [{"type": "text", "content": reply}], "finish_reason": "stop"}]
            else:
                out = [
                    {
                        "role": "assistant",
                        "parts": [
                            {
                                "type": "tool_call",
                                "id": f"call_{step}",
                                "name": "get_weather",
                                "arguments": {"city": city},
                            }
                        ],
                        "finish_reason": "tool_calls",
                    }
                ]
            spans.append(
                self.span(
                    trace_id,
                    root.span_id,
                    f"chat {model}",
                    t,
                    llm_ms,
                    {
                        "gen_ai.operation.name": "chat",
                        "gen_ai.provider.name": "openai",
                        "gen_ai.request.model": model,
                        "gen_ai.input.messages": json.dumps(messages),
                        "gen_ai.output.messages": json.dumps(out),
                        "gen_ai.usage.input_tokens": 420 + 90 * step,
                        "gen_ai.usage.output_tokens": rng.randint(20, 80),
                    },
                )
            )
            t += timedelta(milliseconds=llm_ms + 2)
            if not last:
                tool_ms = rng.uniform(40, 250)
                result = {"city": city, "forecast": "mild", "celsius": 18}
                spans.append(
                    self.span(
                        trace_id,
                        root.span_id,
                        "execute_tool get_weather",
                        t,
                        tool_ms,
                        {
                            "gen_ai.operation.name": "execute_tool",
                            "gen_ai.tool.name": "get_weather",
                            "gen_ai.tool.call.id": f"call_{step}",
                            "gen_ai.tool.call.arguments": json.dumps({"city": city}),
                            "gen_ai.tool.call.result": json.dumps(result),
                        },
                    )
                )
                messages = [
                    *messages,
                    out[0],
                    {"role": "tool", "parts": [{"type": "tool_call_response", "id": f"call_{step}", "result": result}]},
                ]
                t += timedelta(milliseconds=tool_ms + 2)
        hotel_ms = rng.uniform(80, 400)
        hotel_failed = rng.random() < 0.03
        spans.append(
            self.span(
                trace_id,
                root.span_id,
                "execute_tool search_hotels",
                t,
                hotel_ms,
                {
                    "gen_ai.operation.name": "execute_tool",
                    "gen_ai.tool.name": "search_hotels",
                    "gen_ai.tool.call.arguments": json.dumps({"city": city, "max_price": 200}),
                    "gen_ai.tool.call.result": None
                    if hotel_failed
                    else json.dumps([{"name": "Hotel Central", "price": 165}]),
                },
                error="HTTP 502 from hotels API" if hotel_failed else "",
            )
        )
        t += timedelta(milliseconds=hotel_ms)
        root.end_time_unix_nano = int(t.timestamp() * 1e9)
        return spans

    def summariser(self, at: datetime, release: str) -> list[Span]:
        rng = self.rng
        trace_id, _ = self.ids()
        article, summary = rng.choice(ARTICLES)
        model = rng.choice(["claude-3-5-haiku-20241022", "gpt-4o-mini", "acme-summarizer-7b"])
        ms = rng.lognormvariate(7.0, 0.4)
        root = self.span(
            trace_id,
            b"",
            "summarise",
            at,
            ms + 8,
            {
                "langfuse.observation.type": "span",
                "langfuse.trace.name": "summarise-article",
                "langfuse.observation.input": json.dumps({"article": article}),
                "langfuse.observation.output": summary,
                "langfuse.environment": "production",
                "langfuse.release": release,
                "user.id": f"user-{rng.randint(1, 150):03d}",
            },
        )
        gen = self.span(
            trace_id,
            root.span_id,
            "summary-generation",
            at + timedelta(milliseconds=4),
            ms,
            {
                "langfuse.observation.type": "generation",
                "langfuse.observation.model.name": model,
                "langfuse.observation.input": json.dumps(
                    [{"role": "system", "content": "Summarise in one sentence."}, {"role": "user", "content": article}]
                ),
                "langfuse.observation.output": json.dumps({"role": "assistant", "content": summary}),
                "langfuse.observation.usage_details": json.dumps(
                    {"input": 60 + len(article) // 4, "output": len(summary) // 4}
                ),
                "langfuse.observation.model.parameters": json.dumps({"temperature": 0, "max_tokens": 120}),
                "langfuse.environment": "production",
                "langfuse.release": release,
            },
        )
        return [root, gen]


class Command(BaseCommand):
    help = "Create the demo user and project and send realistic traces through the OTLP endpoint handler."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--project", default="demo")
        parser.add_argument("--username", default="demo")
        parser.add_argument("--hours", type=int, default=48, help="Spread traffic over the last N hours.")
        parser.add_argument("--traces", type=int, default=1500, help="How many traces to generate.")
        parser.add_argument("--seed", type=int, default=7)
        parser.add_argument("--if-empty", action="store_true", help="Do nothing if the project already has traces.")

    def handle(self, *args: Any, **options: Any) -> None:
        user = get_user_model().objects.filter(username=options["username"]).first() or user_create(
            username=options["username"], password=os.environ.get("SRE4AI_DEMO_PASSWORD", "sre4ai-demo")
        )
        project = Project.objects.filter(slug=options["project"]).first() or project_create(
            slug=options["project"], name="Demo shop", owner=user
        )
        if options["if_empty"] and Trace.objects.filter(project=project).exists():
            self.stdout.write("Demo data already loaded.")
            return
        # The agent's context is structured tool results: ground its answers on the specifics they state.
        evaluator_config_set(
            project=project,
            service="travel-agent",
            evaluator="grounding",
            enabled=True,
            params={"claims": "specifics"},
            sampling_rate=1.0,
            user=user,
        )
        secret = api_key_issue(project=project, name="seed_demo").secret_key
        rng = random.Random(options["seed"])
        builder = DemoBuilder(rng)
        now = datetime.now(UTC)
        start = now - timedelta(hours=options["hours"])
        factory = RequestFactory()
        services = [
            ("support-bot", builder.support_bot, 0.5),
            ("travel-agent", builder.travel_agent, 0.25),
            ("summariser", builder.summariser, 0.25),
        ]
        batch: dict[str, list[Span]] = {name: [] for name, _, _ in services}
        for i in tqdm(range(options["traces"]), desc="demo traces", disable=options["verbosity"] == 0):
            at = start + (now - start) * (i / options["traces"]) + timedelta(seconds=rng.uniform(0, 30))
            release = "v1.4.0" if at < now - (now - start) / 2 else "v1.5.0"
            name, build, _ = rng.choices(services, weights=[w for _, _, w in services])[0]
            batch[name].extend(build(at, release))
            if sum(len(b) for b in batch.values()) >= 400 or i == options["traces"] - 1:
                self._send(factory, secret, batch, release)
                batch = {name: [] for name, _, _ in services}
        self.stdout.write(f"Loaded {options['traces']} demo traces into project {project.slug}.")
        for values in DEMO_SLOS:
            if not SLO.objects.filter(project=project, name=values["name"]).exists():
                policy = default_rule_rows(values.get("window_days", SLO_DEFAULTS["window_days"]))
                slo_save(
                    project=project, values={**SLO_DEFAULTS, **values, "policy": policy, "owner": user}, channels=[]
                )
        self.stdout.write(f"Defined {len(DEMO_SLOS)} SLOs; the worker computes their history.")
        # Beat runs drift detection hourly, the first time an hour after it starts; a fresh demo would show
        # "not run" until then. Once the worker has scored the demo traces, run it now-ish.
        drift_schedule_queue(countdown=DRIFT_AFTER_SECONDS)
        self.stdout.write(f"Drift detection runs in {DRIFT_AFTER_SECONDS // 60} minutes, then hourly.")

    def _send(self, factory: RequestFactory, secret: str, batch: dict[str, list[Span]], release: str) -> None:
        request = ExportTraceServiceRequest()
        for service, spans in batch.items():
            if not spans:
                continue
            resource_spans = ResourceSpans()
            resource_spans.resource.attributes.extend(
                to_key_values(
                    {"service.name": service, "service.version": release, "deployment.environment.name": "production"}
                )
            )
            scope_spans = resource_spans.scope_spans.add()
            scope_spans.scope.name = "sre4ai.seed_demo"
            scope_spans.spans.extend(spans)
            request.resource_spans.append(resource_spans)
        http_request = factory.post(
            "/v1/traces",
            data=request.SerializeToString(),
            content_type="application/x-protobuf",
            headers={"Authorization": f"Bearer {secret}"},
        )
        response = otlp_traces(http_request)
        if response.status_code != 200:
            raise CommandError(f"OTLP ingest answered {response.status_code}: {response.content[:300]!r}")
