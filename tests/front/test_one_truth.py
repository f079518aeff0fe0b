"""One number, one definition: the same project seen through the overview, the service page, SLO SLIs, canary
cohorts, /metrics and the read API gives the same pass rate, grounded share, safety-flag count, error rate and
cost. Stale scores of an older evaluator version disagree with the current ones on purpose: every reader must
ignore them (Score.objects.current)."""

from __future__ import annotations

import json
import re
import time
from datetime import timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import pytest
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from evals.canary.cohorts import canary_analyse
from evals.models import Score, ScoreSource
from evals.services import scores_upsert, traces_score
from evals.signals import signal_of
from rollups.selectors import overview, service_detail, window_for
from slos.selectors import slo_summaries
from slos.services import sli_history_rebuild
from tests import otlp_build as ob
from tests.conftest import PASSWORD, Tenant
from tests.native_data import T0, native_trace
from tests.scoring_data import GROUNDED, INVENTED, LEAKY, rag_spans
from tests.slo_data import create_slo, recompute
from traces.models import Trace

pytestmark = pytest.mark.django_db
SERVICE = "support-bot"
REFUSED = "I can't help with that."


def send(client: Client, tenant: Tenant, answer: str, release: str, error: bool) -> Trace:
    start = time.time_ns() - 180 * 10**9  # three minutes ago: inside every window, before the last complete minute
    spans = rag_spans(answer, start=start)
    if error:
        spans[0] = ob.span(spans[0].trace_id.hex(), spans[0].span_id.hex(), name="answer", start_ns=start,
                           duration_ms=900, error="upstream timeout",
                           attributes={"openinference.span.kind": "CHAIN", "input.value": "Refunds?",
                                       "output.value": answer})  # fmt: skip
    resource = {"service.name": SERVICE, "service.version": release, "deployment.environment.name": "production"}
    body = ob.request(spans, resource=resource).SerializeToString()
    response = client.post("/v1/traces", data=body, content_type="application/x-protobuf", headers=tenant.bearer)
    assert response.status_code == 200
    return Trace.objects.get(project=tenant.project, trace_id=spans[0].trace_id.hex())


def test_every_surface_gives_the_same_numbers(client: Client, tenant: Tenant) -> None:
    plan = [(GROUNDED, "v1", False)] * 4 + [(INVENTED, "v2", False)] * 3 + [(LEAKY, "v2", True)] * 2
    plan += [(REFUSED, "v1", True), (GROUNDED, "v2", False)]
    traces = [send(client, tenant, *row) for row in plan]
    traces_score(project_id=tenant.project.pk, trace_pks=[t.pk for t in traces])
    # Stale rows of an older grounding version, each saying the opposite of the current one.
    scores_upsert([
        Score(
            project=tenant.project, trace=row.trace, key=f"stale:{row.pk}", service=row.service,
            trace_start=row.trace_start, name="grounding", value=1 - (row.value or 0),
            passed=not row.passed, evaluator="grounding", evaluator_version=row.evaluator_version - 1,
            source=ScoreSource.EVALUATOR,
        )
        for row in Score.objects.filter(trace__in=traces, name="grounding")
    ])  # fmt: skip
    recompute()
    now = timezone.now()
    slos = {
        kind: create_slo(tenant.project, name=kind, service=SERVICE, window_days="7", **fields)
        for kind, fields in {
            "grounding": {"sli_kind": "score", "evaluator": "grounding", "comparator": "pass"},
            "refusal": {"sli_kind": "score", "evaluator": "refusal", "comparator": "pass"},
            "error": {"sli_kind": "error"},
            "safety": {"sli_kind": "safety"},
        }.items()
    }
    for slo in slos.values():
        sli_history_rebuild(slo_id=slo.pk, now=now)
    current = list(Score.objects.current().filter(trace__in=traces))

    # The truth, counted by hand from the current scores and the traces.
    def judged(name: str) -> tuple[int, int]:
        rows = [s for s in current if s.name == name and s.passed is not None]
        return sum(bool(s.passed) for s in rows), len(rows)

    safety_names = {s.name for s in current if signal_of(s.name) == "safety"}
    flagged = sum(any(s.passed is False for s in current if s.trace_id == t.pk and s.name in safety_names)
                  for t in traces)  # fmt: skip
    errors, spend = sum(t.status == "error" for t in traces), sum((t.cost or Decimal(0)) for t in traces)
    grounded, refusal = judged("grounding"), judged("refusal")
    assert 0 < grounded[0] < grounded[1] and 0 < refusal[0] < refusal[1] and 0 < flagged < len(traces) and spend > 0

    # Overview and service page (the same selectors the pages render).
    window = window_for(range_key="1h", now=now + timedelta(minutes=1))
    health = next(h for h in overview(project=tenant.project, environment="", window=window, now=now)
                  if h.service == SERVICE)  # fmt: skip
    signals = {s["key"]: s["value"] for s in health.signals}
    assert signals["traffic"] == len(traces) and signals["errors"] == errors / len(traces)
    assert signals["grounding"] == grounded[0] / grounded[1]
    assert signals["safety"] == flagged
    detail = service_detail(project=tenant.project, service=SERVICE, environment="", window=window)
    assert detail.series.rate("grounding") == signals["grounding"] and detail.series.safety_flags() == flagged
    assert detail.series.rate("quality") == signals["quality"]
    assert detail.series.spend() == spend
    failing = {name: (bad, total) for name, bad, total in detail.failing_evaluators}
    assert failing["refusal"] == (refusal[1] - refusal[0], refusal[1])
    assert failing["grounding"] == (grounded[1] - grounded[0], grounded[1])
    client.login(username="alice", password=PASSWORD)
    page = client.get(f"/p/acme/service/?name={SERVICE}&range=1h").content.decode()
    assert f"<dt>Grounded</dt><dd>{grounded[0] / grounded[1]:.1%}</dd>" in page
    assert f"<dt>Safety flags</dt><dd>{flagged} traces</dd>" in page
    # No answer rated: not applicable, never "0 good of 0".
    assert (
        '<dt>Human feedback</dt><dd><span class="muted" title="No answer of this service was rated in the range">none rated</span>'
        in page
    )
    figures = json.loads(page.split('<script id="figures" type="application/json">')[1].split("</script>")[0])
    quality_lines = {line["name"] for line in figures["quality"]["data"]}
    assert "refusal" in quality_lines and "human_feedback" not in quality_lines  # no line for an evaluator with no data

    # SLO SLIs over their window.
    summaries = {s.slo.name: s for s in slo_summaries(project=tenant.project, now=now + timedelta(minutes=1))}
    assert (summaries["grounding"].good, summaries["grounding"].total) == grounded
    assert (summaries["refusal"].good, summaries["refusal"].total) == refusal
    assert (summaries["error"].good, summaries["error"].total) == (len(traces) - errors, len(traces))
    assert summaries["safety"].total - summaries["safety"].good == flagged

    # Canary: the two cohorts (releases v1 and v2) together are every trace.
    report = canary_analyse(project=tenant.project, service=SERVICE, attribute="release", baseline="v1",
                            canary="v2", since=now - timedelta(hours=1), until=now + timedelta(minutes=1))  # fmt: skip
    cohorts = (report.baseline, report.canary)
    assert sum(c.traces for c in cohorts) == len(traces) and sum(c.errors for c in cohorts) == errors
    assert tuple(sum(c.judged["grounding"][i] for c in cohorts) for i in (0, 1)) == grounded
    assert tuple(sum(c.judged["refusal"][i] for c in cohorts) for i in (0, 1)) == refusal
    assert sum(c.safety_flagged for c in cohorts) == flagged

    # /metrics.
    text = client.get("/metrics", headers=tenant.bearer).content.decode()
    samples = {
        (s.name, s.labels.get("name", "")): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.labels.get("service") == SERVICE
    }
    assert samples[("sre4ai_traces_total", "")] == len(traces)
    assert samples[("sre4ai_trace_errors_total", "")] == errors
    assert samples[("sre4ai_safety_flagged_traces_total", "")] == flagged
    assert (samples[("sre4ai_scores_passed_total", "grounding")], samples[("sre4ai_scores_judged_total", "grounding")]) \
        == grounded  # fmt: skip
    assert samples[("sre4ai_cost_dollars_total", "")] == pytest.approx(float(spend))

    # The read API: the list and each trace's current scores.
    items = client.get(f"/api/v1/traces?service={SERVICE}", headers=tenant.bearer).json()["items"]
    assert len(items) == len(traces) and sum(i["status"] == "error" for i in items) == errors
    api_grounding = []
    for item in items:
        scores = client.get(f"/api/v1/traces/{item['trace_id']}", headers=tenant.bearer).json()["scores"]
        names = [s["name"] for s in scores]
        assert len(names) == len(set(names))  # one current score per name: the stale version is not there
        api_grounding += [s["passed"] for s in scores if s["name"] == "grounding"]
        assert all(re.fullmatch(r"\d+", str(s["evaluator_version"])) for s in scores)
    assert (sum(api_grounding), len(api_grounding)) == grounded


def test_a_model_means_the_same_traces_in_the_list_and_the_breakdown(client: Client, tenant: Tenant) -> None:
    """A trace's models are those of its LLM and embedding spans (``Trace.model_names``): the service page's model
    breakdown, SLIs and canary cohorts read them, and so does the trace list's model filter and its count. A model
    named on another kind of span (a reranker called as a tool, here) is none of the trace's models anywhere."""
    plan = {"gpt-4o-mini": 3, "claude-3-5-haiku-20241022": 2}
    traces: list[dict[str, Any]] = []
    for model, n in plan.items():
        for _ in range(n):
            trace = native_trace(len(traces))
            chat = trace["spans"][0]["children"][1]
            chat["model"] = model
            rerank = dict(trace["spans"][0]["children"][2], name="rerank", model="rerank-v3")
            trace["spans"][0]["children"].append(rerank)
            traces.append(trace)
    response = client.post("/api/v1/traces", data=json.dumps({"traces": traces}), content_type="application/json",
                           headers=tenant.bearer)  # fmt: skip
    assert response.status_code in (200, 202), response.content
    recompute()
    window = window_for(range_key="7d", now=T0 + timedelta(days=1))
    breakdown = service_detail(project=tenant.project, service=SERVICE, environment="", window=window).breakdowns
    by_model = {model: series.traffic() for model, series in breakdown["model"].items()}
    assert by_model == plan

    client.login(username="alice", password=PASSWORD)
    for model in [*plan, "rerank-v3"]:
        query = urlencode({"model": model, "since": (T0 - timedelta(hours=1)).isoformat(),
                           "until": (T0 + timedelta(hours=1)).isoformat()})  # fmt: skip
        count = client.get(f"/p/acme/traces/count/?{query}").content.decode()
        listed = client.get(f"/p/acme/traces/?{query}").content.decode().count('<tr class="')
        api = client.get(f"/api/v1/traces?{query}", headers=tenant.bearer).json()["items"]
        expected = plan.get(model, 0)
        assert listed == len(api) == expected, model
        assert count.strip() == f"{expected} traces", count
