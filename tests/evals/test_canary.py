"""Canary analysis, on PostgreSQL and on the embedded SQLite alike: cohort selectors (release, model, prompt, span and resource attributes), the
page, the REST endpoint and ``manage.py canary`` (verdict JSON, exit codes), bad input and project isolation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from accounts.models import Project
from evals.canary.charts import canary_figures
from evals.canary.cohorts import CohortError, canary_analyse, cohort_load
from evals.models import Score
from evals.services import scores_upsert
from rollups.services import rollups_rebuild
from tests import ROOT
from tests.canary_data import NOW, Version, seed
from tests.conftest import PASSWORD, Tenant, database_url
from traces.models import Trace


def login(client: Client, tenant: Tenant) -> Client:
    assert client.login(username=tenant.user.username, password=PASSWORD)
    return client


def analyse(project: Project, attribute: str, baseline: str, canary: str, **kwargs: Any) -> Any:
    return canary_analyse(project=project, service="bot", attribute=attribute, baseline=baseline, canary=canary,
                          since=kwargs.pop("since", NOW - timedelta(days=1)), until=kwargs.pop("until", NOW),
                          **kwargs)  # fmt: skip


# --------------------------------------------------------------------------------------------------- selectors
@pytest.mark.django_db
def test_release_cohorts_with_a_planted_regression_fail_and_equal_ones_pass(
    tenant: Tenant, django_assert_max_num_queries: Any
) -> None:
    seed(tenant.project, Version("v1"), 400, rng_seed=1)
    seed(tenant.project, Version("v2", latency_mu=6.9, pass_rate=0.8), 400, rng_seed=2)
    seed(tenant.project, Version("v3"), 400, rng_seed=3)
    with django_assert_max_num_queries(5):
        regressed = analyse(tenant.project, "release", "v1", "v2")
    by_name = {s.name: s for s in regressed.result.signals}
    assert (regressed.baseline.traces, regressed.canary.traces) == (400, 400)
    assert set(by_name) == {"error", "latency", "cost", "refusal", "grounding"}
    assert by_name["latency"].classification == "worse"
    assert by_name["grounding"].classification == "worse"
    assert by_name["refusal"].kind == "rate" and not by_name["refusal"].higher_is_better
    assert regressed.result.verdict == "fail"
    assert regressed.result.critical_failures == ["grounding"]

    equal = analyse(tenant.project, "release", "v1", "v3")
    assert {s.classification for s in equal.result.signals} == {"pass"}, [s.reason for s in equal.result.signals]
    assert equal.result.verdict == "pass"
    assert equal.to_dict()["cohorts"]["canary"] == {"value": "v3", "traces": 400, "sampled": False,
                                                     "unpriced_traces": 0}  # fmt: skip


@pytest.mark.django_db
def test_cohorts_by_model_prompt_span_and_resource_attribute(
    tenant: Tenant, django_assert_max_num_queries: Any
) -> None:
    seed(tenant.project, Version("r", model="gpt-4o-mini", prompt=("answer", "3"),
                                 attributes={"app.flag": True, "app.shard": 3, "app.ratio": 0.5},
                                 resource={"k8s.deployment": "blue"}), 30, rng_seed=4)  # fmt: skip
    seed(tenant.project, Version("r", model="gpt-4.1", prompt=("answer", "4"),
                                 attributes={"app.flag": False, "app.shard": 4, "app.ratio": 0.25},
                                 resource={"k8s.deployment": "green"}), 20, rng_seed=5)  # fmt: skip
    window = Trace.objects.filter(project=tenant.project, service="bot", start_time__gte=NOW - timedelta(days=1),
                                  start_time__lt=NOW)  # fmt: skip

    def size(attribute: str, value: str) -> int:
        with django_assert_max_num_queries(2):
            return cohort_load(window=window, attribute=attribute, value=value).traces

    assert size("model", "gpt-4o-mini") == 30
    assert size("model", "gpt-4.1") == 20
    assert size("model", "gpt-4") == 0  # exact model names, not prefixes
    assert size("prompt", "answer v3") == 30
    assert size("prompt", "4") == 20  # a bare version
    assert size("prompt", "answer") == 0  # both prompts are versioned
    assert size("app.flag", "true") == 30  # JSON booleans compared as text
    assert size("app.flag", "false") == 20
    assert size("app.shard", "4") == 20  # JSON numbers compared as text
    assert size("app.ratio", "0.5") == 30
    assert size("app.flag", "maybe") == 0  # a value that is no JSON is just a value nobody has
    assert size("no.such.attribute", "x") == 0
    assert size("k8s.deployment", "green") == 20  # resource attribute
    assert size("environment", "production") == 50
    assert size("release", "r") == 50


@pytest.mark.django_db
def test_window_is_half_open_other_services_and_projects_are_excluded(tenant: Tenant, other_tenant: Tenant) -> None:
    inside = seed(tenant.project, Version("v1"), 10, rng_seed=6)
    seed(tenant.project, Version("v1"), 10, service="other-bot", rng_seed=7)
    seed(other_tenant.project, Version("v1"), 10, rng_seed=8)
    Trace.objects.filter(pk=inside[0].pk).update(start_time=NOW)  # 'until' itself is outside
    Trace.objects.filter(pk=inside[1].pk).update(start_time=NOW - timedelta(days=1))  # 'since' itself is inside
    window = Trace.objects.filter(project=tenant.project, service="bot", start_time__gte=NOW - timedelta(days=1),
                                  start_time__lt=NOW)  # fmt: skip
    assert cohort_load(window=window, attribute="release", value="v1").traces == 9


@pytest.mark.django_db
def test_cohort_limit_keeps_the_most_recent_and_says_so(tenant: Tenant) -> None:
    traces = seed(tenant.project, Version("v1"), 30, rng_seed=9)
    window = Trace.objects.filter(project=tenant.project, service="bot")
    cohort = cohort_load(window=window, attribute="release", value="v1", limit=10)
    newest = sorted(traces, key=lambda t: t.start_time, reverse=True)[:10]
    assert cohort.sampled and cohort.traces == 10
    assert sorted(cohort.latency_ms) == sorted(t.duration_ms for t in newest)


@pytest.mark.django_db
def test_newest_evaluator_version_and_unpriced_traces(tenant: Tenant) -> None:
    (trace,) = seed(tenant.project, Version("v1", pass_rate=0.0), 1, rng_seed=10)
    scores_upsert([Score(project=tenant.project, trace=trace, key="eval:v2:grounding", service="bot",
                         trace_start=trace.start_time, name="grounding", value=0.0, passed=True,
                         evaluator="grounding", evaluator_version=2, source="evaluator")])  # fmt: skip
    Trace.objects.filter(pk=trace.pk).update(has_unpriced=True)
    cohort = cohort_load(window=Trace.objects.filter(project=tenant.project), attribute="release", value="v1")
    assert cohort.judged["grounding"] == [1, 1]  # version 1's failure is superseded by version 2's pass
    assert cohort.cost_usd == [] and cohort.unpriced == 1


@pytest.mark.django_db
def test_unknown_service_and_empty_cohorts_are_errors_that_say_what_to_fix(tenant: Tenant) -> None:
    seed(tenant.project, Version("v1"), 5, rng_seed=11)
    with pytest.raises(CohortError, match="No service named 'nope'"):
        canary_analyse(project=tenant.project, service="nope", attribute="release", baseline="v1", canary="v2",
                       since=NOW - timedelta(days=1), until=NOW)  # fmt: skip
    with pytest.raises(CohortError, match=r"canary cohort is empty.*release = 'v2'"):
        analyse(tenant.project, "release", "v1", "v2")
    with pytest.raises(CohortError, match="baseline cohort is empty"):
        analyse(tenant.project, "release", "v1", "v2", since=NOW - timedelta(days=30), until=NOW - timedelta(days=20))


# ------------------------------------------------------------------------------------------------------- API
@pytest.mark.django_db
def test_api_returns_the_verdict_and_rejects_bad_input_with_400(client: Client, tenant: Tenant) -> None:
    seed(tenant.project, Version("v1"), 300, rng_seed=12)
    seed(tenant.project, Version("v2", error_rate=0.15), 300, rng_seed=13)
    url = "/api/v1/canary"
    response = client.get(url, {"service": "bot", "baseline": "v1", "canary": "v2", "since": "2d"},
                          headers=tenant.bearer)  # fmt: skip
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["verdict"] == "fail"
    assert body["critical_failures"] == ["error"]
    assert body["attribute"] == "release"
    assert {s["name"]: s["classification"] for s in body["signals"]}["error"] == "worse"
    # Critical signals can be changed per request: without one, a single worse signal of five is marginal.
    relaxed = client.get(url, {"service": "bot", "baseline": "v1", "canary": "v2", "since": "2d", "critical": "none"},
                         headers=tenant.bearer).json()  # fmt: skip
    assert relaxed["verdict"] == "marginal" and relaxed["score"] == 80

    cases = [
        ({"service": "bot", "baseline": "v1"}, "canary"),
        ({"service": "bot", "baseline": "v1", "canary": "v1"}, "must differ"),
        ({"service": "bot", "baseline": "v1", "canary": "v2", "since": "yesterday"}, "not a time"),
        ({"service": "bot", "baseline": "v1", "canary": "v2", "since": "2025-02-30"}, "not a valid date"),
        ({"service": "bot", "baseline": "v1", "canary": "v2", "since": "1h", "until": "2h"}, "must be before"),
        ({"service": "bot", "baseline": "v1", "canary": "v2", "alpha": "2"}, "less than 1"),
        ({"service": "bot", "baseline": "v1", "canary": "v2", "pass_threshold": "50"}, "must not exceed"),
        ({"service": "bot", "baseline": "v1", "canary": "v2", "min_events": "x"}, "whole number"),
        ({"service": "nope", "baseline": "v1", "canary": "v2"}, "No service named"),
        ({"service": "bot", "baseline": "v1", "canary": "v9"}, "canary cohort is empty"),
    ]
    for params, message in cases:
        response = client.get(url, params, headers=tenant.bearer)
        assert response.status_code == 400, (params, response.content)
        assert message in json.dumps(response.json()), (params, response.json())
    assert client.get(url, {"service": "bot", "baseline": "v1", "canary": "v2"}).status_code == 401


@pytest.mark.django_db
def test_api_compares_by_model_prompt_and_span_or_resource_attribute(client: Client, tenant: Tenant) -> None:
    """Every kind of attribute reaches a verdict through the API, on SQLite as on PostgreSQL."""
    seed(tenant.project, Version("r", model="gpt-4o-mini", prompt=("answer", "3"), attributes={"app.variant": "a"},
                                 resource={"service.version": "1.4"}), 60, rng_seed=33)  # fmt: skip
    seed(tenant.project, Version("r", model="gpt-4.1", prompt=("answer", "4"), attributes={"app.variant": "b"},
                                 resource={"service.version": "1.5"}), 60, rng_seed=34)  # fmt: skip
    for attribute, baseline, canary in [("model", "gpt-4o-mini", "gpt-4.1"), ("prompt", "answer v3", "answer v4"),
                                        ("app.variant", "a", "b"), ("service.version", "1.4", "1.5")]:  # fmt: skip
        response = client.get("/api/v1/canary", {"service": "bot", "attribute": attribute, "baseline": baseline,
                                                 "canary": canary, "since": "2d"}, headers=tenant.bearer)  # fmt: skip
        assert response.status_code == 200, (attribute, response.content)
        cohorts = response.json()["cohorts"]
        assert (cohorts["baseline"]["traces"], cohorts["canary"]["traces"]) == (60, 60), attribute


@pytest.mark.django_db
def test_api_answers_an_unexpected_error_as_json_and_logs_it(
    client: Client, tenant: Tenant, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A bug must not reach a pipeline as Django's HTML error page: a JSON 500, and the traceback in the log."""

    def broken(**kwargs: Any) -> None:
        raise ZeroDivisionError("a bug in the analysis")

    monkeypatch.setattr("evals.canary.forms.canary_analyse", broken)  # what the form calls
    response = client.get("/api/v1/canary", {"service": "bot", "baseline": "v1", "canary": "v2"},
                          headers=tenant.bearer)  # fmt: skip
    assert response.status_code == 500
    assert response["Content-Type"] == "application/json"
    assert "Internal server error" in response.json()["error"]
    assert "a bug in the analysis" not in response.content.decode()  # internals stay in the log
    failure = next(r for r in caplog.records if r.name == "django.request")
    assert failure.levelname == "ERROR" and failure.exc_info and failure.exc_info[0] is ZeroDivisionError


@pytest.mark.django_db
def test_api_key_sees_only_its_project(client: Client, tenant: Tenant, other_tenant: Tenant) -> None:
    seed(tenant.project, Version("v1"), 60, rng_seed=14)
    seed(tenant.project, Version("v2"), 60, rng_seed=15)
    response = client.get("/api/v1/canary", {"service": "bot", "baseline": "v1", "canary": "v2"},
                          headers=other_tenant.bearer)  # fmt: skip
    assert response.status_code == 400
    assert "No service named 'bot'" in response.json()["error"]


@pytest.mark.django_db
def test_openapi_schema_documents_the_endpoint(client: Client) -> None:
    schema = client.get("/api/schema/", {"format": "json"}).json()
    operation = schema["paths"]["/api/v1/canary"]["get"]
    assert {p["name"] for p in operation["parameters"]} >= {"service", "attribute", "baseline", "canary", "since",
                                                             "until", "alpha", "critical"}  # fmt: skip
    assert {p["name"]: p["schema"]["type"] for p in operation["parameters"]}["alpha"] == "number"
    assert "CanaryOut" in json.dumps(operation["responses"]["200"])


# ---------------------------------------------------------------------------------------------------- command
def run_command(*args: str) -> dict[str, Any]:
    out = StringIO()
    call_command("canary", *args, stdout=out)
    return dict(json.loads(out.getvalue()))


def test_command_help_prints_every_option() -> None:
    """argparse expands % in help texts: the form's "0.1 = 10%" crashed --help (ValueError: incomplete format)."""
    done = subprocess.run([sys.executable, "manage.py", "canary", "--help"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "--relative-margin" in done.stdout and "0.1 = 10%" in " ".join(done.stdout.split())


@pytest.mark.django_db
def test_command_prints_json_and_exits_by_verdict(tenant: Tenant) -> None:
    seed(tenant.project, Version("v1"), 300, rng_seed=16)
    seed(tenant.project, Version("v2"), 300, rng_seed=17)
    seed(tenant.project, Version("v3", latency_mu=7.0, pass_rate=0.75), 300, rng_seed=18)
    base = ["--project", "acme", "--service", "bot", "--attribute", "release", "--baseline", "v1", "--json"]
    passed = run_command(*base, "--canary", "v2", "--since", "1d")
    assert passed["verdict"] == "pass" and passed["cohorts"]["canary"]["traces"] == 300
    with pytest.raises(SystemExit) as exited:
        run_command(*base, "--canary", "v3")
    assert exited.value.code == 1
    for args, message in [
        (["--project", "nope", "--service", "bot", "--baseline", "v1", "--canary", "v2"], "No project"),
        (["--project", "acme", "--service", "nope", "--baseline", "v1", "--canary", "v2"], "No service"),
        ([*base, "--canary", "v2", "--since", "2h", "--until", "3h"], "--since: 'since'"),
        ([*base, "--canary", "v2", "--until", "next week"], "--until:"),
        ([*base, "--canary", "v2", "--rate-margin", "-1"], "--rate-margin: Input should be greater than or equal"),
        ([*base, "--canary", "v9"], "canary cohort is empty"),
    ]:
        with pytest.raises(CommandError, match=message) as failed:
            call_command("canary", *args)
        assert failed.value.returncode == 2


@pytest.mark.django_db(transaction=True)
def test_command_line_exit_codes_for_a_pipeline(tenant: Tenant) -> None:
    """The real CLI in a subprocess, on the test database: exit 0 pass, 1 fail, 2 bad input with stderr."""
    seed(tenant.project, Version("v1"), 200, rng_seed=19)
    seed(tenant.project, Version("v2", error_rate=0.2), 200, rng_seed=20)
    env = {**os.environ, "DATABASE_URL": database_url()}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "manage.py", "canary", "--project", "acme", "--service", "bot", *args]
        return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)

    failed = cli("--baseline", "v1", "--canary", "v2", "--json")
    assert failed.returncode == 1, failed.stderr
    assert json.loads(failed.stdout)["verdict"] == "fail"
    passed = cli("--baseline", "v1", "--canary", "v2", "--critical", "none", "--marginal-threshold", "0",
                 "--pass-threshold", "0")  # fmt: skip
    assert passed.returncode == 0, passed.stderr
    assert "verdict: pass" in passed.stdout and "worse" in passed.stdout
    bad = cli("--baseline", "v1", "--canary", "v2", "--since", "soon")
    assert bad.returncode == 2
    assert "'soon' is not a time" in bad.stderr and bad.stdout == ""


@pytest.mark.django_db(transaction=True)
def test_default_critical_signals_gate_a_pipeline_on_quality_not_on_latency(tenant: Tenant) -> None:
    """With default settings the real CLI exits 1 on a grounding regression beyond the margin (it was marginal, exit
    0, when only errors were critical) and 0 on a latency-only regression, which stays marginal."""
    seed(tenant.project, Version("v1"), 400, rng_seed=41)
    seed(tenant.project, Version("v2", pass_rate=0.8), 400, rng_seed=42)  # grounding 90% -> 80%
    seed(tenant.project, Version("v3", latency_mu=6.9), 400, rng_seed=43)  # median latency +35%
    env = {**os.environ, "DATABASE_URL": database_url()}

    def cli(canary: str, *args: str) -> tuple[int, dict[str, Any]]:
        command = [sys.executable, "manage.py", "canary", "--project", "acme", "--service", "bot", "--baseline", "v1",
                   "--canary", canary, "--json", *args]  # fmt: skip
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode in (0, 1), done.stderr
        return done.returncode, json.loads(done.stdout)

    code, grounding = cli("v2")
    signals = {s["name"]: s for s in grounding["signals"]}
    assert signals["grounding"]["classification"] == "worse" and signals["grounding"]["critical"]
    assert signals["grounding"]["canary"] - signals["grounding"]["baseline"] <= -0.02  # beyond the 2-point margin
    assert grounding["score"] == 80 and grounding["critical_failures"] == ["grounding"]
    assert (code, grounding["verdict"]) == (1, "fail")

    code, latency = cli("v3")
    signals = {s["name"]: s for s in latency["signals"]}
    assert signals["latency"]["classification"] == "worse" and not signals["latency"]["critical"]
    assert latency["critical_failures"] == [] and latency["score"] == 80
    assert (code, latency["verdict"]) == (0, "marginal")

    # Explicit lists still override the default: none makes the grounding regression marginal again, and a
    # pipeline that must not get slower lists latency.
    code, relaxed = cli("v2", "--critical", "none")
    assert (code, relaxed["verdict"], relaxed["critical_failures"]) == (0, "marginal", [])
    code, strict = cli("v3", "--critical", "error,latency")
    assert (code, strict["verdict"], strict["critical_failures"]) == (1, "fail", ["latency"])


# ------------------------------------------------------------------------------------------------------- page
@pytest.mark.django_db
def test_page_shows_verdict_signals_and_charts(client: Client, tenant: Tenant) -> None:
    seed(tenant.project, Version("v1"), 300, rng_seed=21)
    seed(tenant.project, Version("v2", latency_mu=7.0), 300, rng_seed=22)
    login(client, tenant)
    empty = client.get("/p/acme/canary/")
    assert empty.status_code == 200
    assert 'class="active">Canary</a>' in empty.content.decode().replace('href="/p/acme/canary/" ', "")
    response = client.get("/p/acme/canary/", {"service": "bot", "attribute": "release", "baseline": "v1",
                                              "canary": "v2", "since": "1d"})  # fmt: skip
    page = response.content.decode()
    assert response.status_code == 200
    # Latency is worse, the other four signals pass: score 80, between the marginal (75) and pass (95) thresholds.
    assert 'id="canary-verdict">marginal<' in page and "score <b>80</b>" in page
    assert 'data-signal="latency"' in page and ">worse<" in page
    assert "2 points of a rate, 10% median shift" in page
    figures = json.loads(page.split('<script id="figures" type="application/json">')[1].split("</script>")[0])
    assert len(figures) == 5  # every signal has data to draw
    assert {t["name"] for t in figures["0"]["data"]} == {"baseline", "canary"}


def test_a_rate_chart_starts_at_zero_even_when_both_rates_are_zero() -> None:
    # Plotly's default axis for two zero bars runs from -100 % to 100 %: a rate is drawn from 0 to above the larger.
    signal = {"kind": "rate", "label": "refusal rate", "baseline": 0.0, "canary": 0.0}
    assert canary_figures([signal])["0"]["layout"]["yaxis"]["range"] == [0, 0.01]
    signal.update(baseline=0.2, canary=0.4)
    assert canary_figures([signal])["0"]["layout"]["yaxis"]["range"] == [0, 0.5]


@pytest.mark.django_db
def test_page_bad_input_is_a_400_with_the_message_and_values_are_escaped(client: Client, tenant: Tenant) -> None:
    xss = "<script>alert(1)</script>"
    seed(tenant.project, Version(xss), 40, rng_seed=23)
    seed(tenant.project, Version("v2"), 40, rng_seed=24)
    login(client, tenant)
    response = client.get("/p/acme/canary/", {"service": "bot", "baseline": xss, "canary": "v2", "since": "1d"})
    page = response.content.decode()
    assert response.status_code == 200
    assert xss not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    response = client.get("/p/acme/canary/", {"service": "bot", "baseline": xss, "canary": "v2", "until": "x"})
    assert response.status_code == 400
    assert "&#x27;x&#x27; is not a time" in response.content.decode()
    response = client.get("/p/acme/canary/", {"service": xss, "baseline": "a", "canary": "b"})
    assert response.status_code == 400
    assert xss not in response.content.decode() and "No service named" in response.content.decode()


@pytest.mark.django_db
def test_page_of_another_project_is_404_and_login_is_required(
    client: Client, tenant: Tenant, other_tenant: Tenant
) -> None:
    assert client.get("/p/acme/canary/")["Location"].startswith("/login/")
    seed(other_tenant.project, Version("v1"), 40, rng_seed=25)
    seed(other_tenant.project, Version("v2"), 40, rng_seed=26)
    login(client, tenant)
    params = {"service": "bot", "baseline": "v1", "canary": "v2"}
    assert client.get("/p/globex/canary/", params).status_code == 404
    own = client.get("/p/acme/canary/", params)
    assert own.status_code == 400 and "No service named" in own.content.decode()


@pytest.mark.django_db
def test_page_offers_the_releases_the_service_has_seen_as_baseline_and_canary(client: Client, tenant: Tenant) -> None:
    xss = "<b>1.6</b>"
    seed(tenant.project, Version("v1"), 30, rng_seed=31)
    seed(tenant.project, Version(xss), 30, rng_seed=32)
    seed(tenant.project, Version("other-9"), 30, service="other", rng_seed=33)
    rollups_rebuild(project_id=tenant.project.pk, since=NOW - timedelta(days=1), until=NOW + timedelta(hours=1))
    login(client, tenant)
    page = client.get("/p/acme/canary/", {"service": "bot"}).content.decode()
    offered = page.split('<datalist id="canary-values">')[1].split("</datalist>")[0]
    assert '<option value="v1">' in offered and '<option value="&lt;b&gt;1.6&lt;/b&gt;">' in offered
    assert "other-9" not in offered and xss not in page  # another service's releases; escaped
    by_model = client.get("/p/acme/canary/", {"service": "bot", "attribute": "model"}).content.decode()
    assert "v1" not in by_model.split('<datalist id="canary-values">')[1].split("</datalist>")[0]
    custom = client.get("/p/acme/canary/", {"service": "bot", "attribute": "app.flag"}).content.decode()
    assert '<datalist id="canary-values"></datalist>' in custom  # any span attribute: typed freely
