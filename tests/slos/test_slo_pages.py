"""SLO form and REST API (same errors in words), the SLO list / page / incident triage / channel pages, untrusted
text escaped, runbooks sanitised, roles and project isolation, and /metrics in the Prometheus format."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from accounts.models import Role
from accounts.services import membership_set, user_create
from slos import burn, messages, selectors, services
from slos.models import SLO, Channel, Delivery, EventKind, Incident, IncidentEvent
from slos.services import slos_evaluate
from tests.conftest import PASSWORD, Tenant
from tests.slo_data import FORM, T0, at, create_slo, ingest, make_trace, manager, recompute, score

pytestmark = pytest.mark.django_db


def login(user: str = "alice") -> Client:
    client = Client()
    assert client.login(username=user, password=PASSWORD)
    return client


@pytest.fixture
def seeded(tenant: Tenant) -> Tenant:
    ingest(tenant, [make_trace(0)])
    recompute()
    return tenant


def test_the_form_creates_an_slo_with_the_default_policy_scaled_to_its_window(seeded: Tenant) -> None:
    client = login()
    page = client.get("/p/acme/slos/new/")
    assert page.status_code == 200 and 'name="rule-0-burn_rate_threshold" value="14.4"' in page.content.decode()
    response = client.post("/p/acme/slos/new/", FORM)
    slo = SLO.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/p/acme/slos/{slo.pk}/"
    assert slo.objective == Decimal("0.995") and slo.threshold == Decimal("0.7")
    assert [r["burn_rate_threshold"] for r in slo.policy] == ["3.36", "1.4", "0.7", "0.2333"]
    assert slo.owner is None and slo.runbook == "Check the **retriever**."


@pytest.mark.parametrize(
    ("changes", "rules", "field", "message"),
    [
        ({"objective": "99.5"}, None, "objective", "did you mean 0.995 (99.5%)?"),
        ({"objective": "100%"}, None, "objective", "100% is not below 100%"),
        ({"objective": "150%"}, None, "objective", "150% is not below 100%"),
        ({"objective": "abc"}, None, "objective", "is not a number"),
        ({"service": "suport-bot"}, None, "service", "check the spelling (services seen: support-bot)"),
        ({"evaluator": ""}, None, "evaluator", "Name the score this SLO judges"),
        ({"evaluator": "groundedness"}, None, "evaluator", "No score named “groundedness”"),
        ({"sli_kind": "score_threshold", "comparator": ""}, None, "comparator",
         "Choose how the score's value is compared with the threshold"),
        ({"sli_kind": "score_threshold", "comparator": "pass"}, None, "comparator", "compared with the threshold"),
        ({"threshold": ""}, None, "threshold", "Give the threshold the score is compared with"),
        ({"sli_kind": "latency", "threshold": "-5"}, None, "threshold", "The limit must be above 0, in milliseconds"),
        ({"policy_mode": "custom", "objective": "99.9%"},
         [{"severity": "page", "burn_rate_threshold": "1000", "long_window": "1h", "short_window": "5m"}],
         "rules.0.burn_rate_threshold", "the highest possible burn rate (every event bad) is 1000"),
        ({"policy_mode": "custom"},
         [{"severity": "page", "burn_rate_threshold": "14.4", "long_window": "5m", "short_window": "1h"}],
         "rules.0.short_window", "must be shorter than the long window"),
        ({"policy_mode": "custom"},
         [{"severity": "page", "burn_rate_threshold": "2", "long_window": "10d", "short_window": "1h"}],
         "rules.0.long_window", "longer than the SLO window"),
        ({"policy_mode": "custom"},
         [{"severity": "urgent", "burn_rate_threshold": "x", "long_window": "1 hour", "short_window": "5m"}],
         "rules.0.burn_rate_threshold", "is not a number"),
        ({"policy_mode": "custom"}, [], "rules", "at least one rule"),
        ({"policy_mode": "custom"},
         [{"severity": "page", "burn_rate_threshold": "14.4", "long_window": "1h", "short_window": "5m"},
          {"severity": "page", "burn_rate_threshold": "14.40", "long_window": "60m", "short_window": "5m"}],
         "rules.1.severity", "This rule repeats rule 1"),
        ({"policy_mode": "custom"},
         [{"severity": "page", "burn_rate_threshold": "1e-100000000", "long_window": "1h", "short_window": "5m"}],
         "rules.0.burn_rate_threshold", "is not a number"),
        ({"policy_mode": "custom"},
         [{"severity": "page", "burn_rate_threshold": "2", "long_window": "99999999999d", "short_window": "5m"}],
         "rules.0.long_window", "is not a duration"),
    ],
)  # fmt: skip
def test_form_and_api_reject_the_same_input_with_the_same_words(
    seeded: Tenant, changes: dict[str, str], rules: list[dict[str, str]] | None, field: str, message: str
) -> None:
    data = {**FORM, **changes}
    post = dict(data)
    for i, rule in enumerate(rules or []):
        post.update({f"rule-{i}-{k}": v for k, v in rule.items()})
    page = login().post("/p/acme/slos/new/", post)
    assert page.status_code == 400
    assert message in page.content.decode().replace("&quot;", '"').replace("&#x27;", "'")
    body: dict[str, Any] = {**data, "policy": rules if data["policy_mode"] == "custom" else "default"}
    body.pop("policy_mode")
    api = Client().post("/api/v1/slos", json.dumps(body), content_type="application/json", headers=manager(seeded))
    assert api.status_code == 400
    errors = api.json()["errors"]
    assert any(message in m for m in errors[field]), errors
    assert api.json()["error"] == "The SLO is not valid; see errors."  # raised and formatted by the one handler
    assert not SLO.objects.exists()


def test_rest_api_creates_reads_updates_and_deletes(seeded: Tenant, other_tenant: Tenant) -> None:
    app_key = Client(headers=seeded.bearer)  # the key an app sends traces with: reads, but cannot change SLOs
    assert app_key.post("/api/v1/slos", "{}", content_type="application/json").status_code == 403
    api = Client(headers=manager(seeded))
    Channel.objects.create(project=seeded.project, name="oncall", kind="webhook", config={"url": "http://x.test/"})
    body = {**FORM, "policy": [{"severity": "page", "burn_rate_threshold": "10", "long_window": "1h",
                                "short_window": "5m"}], "channels": ["oncall"], "owner": "alice"}  # fmt: skip
    body.pop("policy_mode")
    created = api.post("/api/v1/slos", json.dumps(body), content_type="application/json")
    assert created.status_code == 201, created.content
    slo = created.json()
    assert (slo["objective"], slo["window_days"], slo["channels"], slo["owner"]) == ("0.995", 7, ["oncall"], "alice")
    assert slo["rules"][0]["burn_rate_threshold"] == "10" and slo["status"] == "computing"
    assert api.get("/api/v1/slos").json()["data"][0]["id"] == slo["id"]
    updated = api.put(f"/api/v1/slos/{slo['id']}", json.dumps({**body, "objective": 0.99}),
                      content_type="application/json")  # fmt: skip
    assert updated.status_code == 200 and updated.json()["objective"] == "0.99"
    assert app_key.get(f"/api/v1/slos/{slo['id']}").status_code == 200
    refused = app_key.delete(f"/api/v1/slos/{slo['id']}")
    assert refused.status_code == 403 and "--scope manage" in refused.json()["error"]
    assert app_key.put(f"/api/v1/slos/{slo['id']}", "{}", content_type="application/json").status_code == 403
    # Another project's key cannot see or change it.
    other = Client(headers=manager(other_tenant))
    assert other.get(f"/api/v1/slos/{slo['id']}").status_code == 404
    assert other.delete(f"/api/v1/slos/{slo['id']}").status_code == 404
    assert Client().get("/api/v1/slos").status_code == 401
    assert api.delete(f"/api/v1/slos/{slo['id']}").status_code == 204
    assert not SLO.objects.exists()
    bad = api.post("/api/v1/slos", "[1, 2]", content_type="application/json")
    assert bad.status_code == 400 and "JSON object" in bad.json()["errors"]["body"][0]


def post_form(client: Client, data: dict[str, str], rules: dict[int, dict[str, str]]) -> Any:
    post = dict(data)
    for i, rule in rules.items():
        post.update({f"rule-{i}-{k}": v for k, v in rule.items()})
    return client.post("/p/acme/slos/new/", post)


def test_one_submit_shows_every_error_beside_its_field_and_rule_row(seeded: Tenant) -> None:
    """Field, SLI and rule errors at once, also while the objective is wrong; errors of a rule row land beside that
    row when the rows above it are empty; an unreadable value does not hide the row's other errors."""
    rules = {
        0: {"severity": "", "burn_rate_threshold": "", "long_window": "", "short_window": ""},
        1: {"severity": "urgent", "burn_rate_threshold": "x", "long_window": "1h", "short_window": "5m"},
        2: {"severity": "page", "burn_rate_threshold": "2", "long_window": "5m", "short_window": "1h"},
    }
    data = {**FORM, "objective": "150%", "sli_kind": "score_threshold", "comparator": "", "threshold": "",
            "service": "suport-bot", "policy_mode": "custom"}  # fmt: skip
    response = post_form(login(), data, rules)
    assert response.status_code == 400
    form = response.context["form"]
    assert set(form.errors) == {"objective", "comparator", "threshold", "service", "__all__"}, form.errors
    assert "150% is not below 100%" in form.errors["objective"][0]
    assert set(form.rule_errors) == {"rules.1.severity", "rules.1.burn_rate_threshold", "rules.2.short_window"}
    rows = {i: errors for i, _, errors in response.context["rule_rows"]}
    assert not rows[0] and set(rows[1]) == {"severity", "burn_rate_threshold"} and set(rows[2]) == {"short_window"}
    html = response.content.decode().replace("&#x27;", "'")
    assert "'x' is not a number" in html and "got 'urgent'" in html and "must be shorter than the long window" in html
    # The API answers the same errors with the same row numbers.
    body: dict[str, Any] = {k: v for k, v in data.items() if k != "policy_mode"}
    body["policy"] = list(rules.values())
    api = Client().post("/api/v1/slos", json.dumps(body), content_type="application/json", headers=manager(seeded))
    assert api.status_code == 400
    assert {"objective", "comparator", "threshold", "service", "rules.1.severity", "rules.2.short_window"} <= set(
        api.json()["errors"]
    )


def test_a_score_passes_needs_no_comparator_and_keeps_no_threshold(seeded: Tenant) -> None:
    client = login()
    response = client.post("/p/acme/slos/new/", {**FORM, "comparator": "", "threshold": "0.7"})
    assert response.status_code == 302, response.context["form"].errors
    slo = SLO.objects.get()
    assert (slo.sli_kind, slo.evaluator, slo.comparator, slo.threshold) == ("score", "grounding", "pass", None)
    edit = client.get(f"/p/acme/slos/{slo.pk}/edit/").content.decode()
    assert '<option value="score" selected>' in edit
    assert '<option value="pass"' not in edit  # the verdict is the "a score passes" kind, not a comparator


def test_a_threshold_on_a_score_is_stored_as_a_score_slo_with_its_comparator(seeded: Tenant) -> None:
    client = login()
    created = client.post("/p/acme/slos/new/", {**FORM, "sli_kind": "score_threshold", "comparator": "<",
                                                "threshold": "0.3", "evaluator": "pii"})  # fmt: skip
    assert created.status_code == 302
    slo = SLO.objects.get()
    assert (slo.sli_kind, slo.evaluator, slo.comparator, slo.threshold) == ("score", "pii", "<", Decimal("0.3"))
    edit = client.get(f"/p/acme/slos/{slo.pk}/edit/").content.decode()
    assert '<option value="score_threshold" selected>' in edit and '<option value="&lt;" selected>' in edit


@pytest.mark.parametrize(
    ("text", "value"),
    [("99.5%", "0.995"), (" 99.5 % ", "0.995"), ("0.995", "0.995"), ("99.95%", "0.9995"), ("1.5%", "0.015"),
     ("90%", "0.9")],
)  # fmt: skip
def test_objective_is_read_as_written(seeded: Tenant, text: str, value: str) -> None:
    assert login().post("/p/acme/slos/new/", {**FORM, "objective": text}).status_code == 302
    assert SLO.objects.get().objective == Decimal(value)


@pytest.fixture
def incident(tenant: Tenant) -> Incident:
    """A firing grounding SLO whose bad answers all come from release v2: 30 good v1 answers in minutes 0-9, then 6
    bad v2 answers in minutes 10-12 (22% bad over 10 minutes at a 90% objective: burn rate 2.2 > 2)."""
    traces = ingest(tenant, [make_trace(m, release="v1") for m in range(10) for _ in range(3)])
    recompute()
    slo = create_slo(tenant.project, name="<script>alert('slo')</script>", sli_kind="score", evaluator="grounding",
                     comparator="pass", runbook="# Steps\n<script>alert(1)</script>\n[roll back](javascript:alert(2))")  # fmt: skip
    for t in traces:
        score(t, "grounding", passed=True, value=0.9)
    bad = ingest(
        tenant, [make_trace(m, release="v2", output="<img src=x onerror=alert(3)>") for m in (10, 11, 12, 11, 12, 10)]
    )
    for t in bad:
        score(t, "grounding", passed=False, value=0.1)
    recompute()
    services.sli_history_rebuild(slo_id=slo.pk, now=at(12))
    assert slos_evaluate(now=at(12)).changes == 1
    return Incident.objects.get()


def test_pages_show_status_panels_and_escape_untrusted_text(tenant: Tenant, incident: Incident) -> None:
    client = login()
    listing = client.get("/p/acme/slos/").content.decode()
    assert "&lt;script&gt;alert(&#x27;slo&#x27;)&lt;/script&gt;" in listing and "<script>alert('slo')" not in listing
    assert "firing: page" in listing
    detail = client.get(f"/p/acme/slos/{incident.slo_id}/?range=window")
    html = detail.content.decode()
    assert detail.status_code == 200
    figures = json.loads(re.search(r'<script id="figures" type="application/json">(.*?)</script>', html, re.S)[1])  # type: ignore[index]
    assert set(figures) == {"sli", "budget", "burn0"}
    assert figures["burn0"]["layout"]["shapes"][0]["y0"] == 2.0  # the threshold line
    # Each 30-minute point shows the windows at its end. The rule fired at minute 10-12 and, with no event since,
    # still fires (no data cannot end an alert): shaded from the point of minute 10 to the end. The 2-minute window
    # is drawn only where the 10-minute one is above the threshold.
    burn0 = {trace["name"]: trace for trace in figures["burn0"]["data"]}
    fired = [bool(v) for v in burn0["both above: fires"]["y"]]
    first = fired.index(True)
    assert all(fired[first:]) and not any(fired[:first])
    start = datetime.fromisoformat(burn0["both above: fires"]["x"][first])
    # Points are 30 minutes apart from "now", so the first one after the rule fired (by minute 12) is within 30.
    assert T0 + timedelta(minutes=10) <= start < T0 + timedelta(minutes=12 + 30)
    long, short = burn0["10m window"]["y"], burn0["2m window (while 10m is above)"]["y"]
    assert all(s is None for lw, s in zip(long, short, strict=True) if lw is None or lw <= 2)
    assert "<h1>Steps</h1>" in html and "<script>alert(1)" not in html and "javascript:" not in html
    backtest = client.get(f"/p/acme/slos/{incident.slo_id}/?backtest=1").content.decode()
    assert "still firing" in backtest
    triage = client.get(f"/p/acme/incidents/{incident.pk}/").content.decode()
    assert "onerror=alert(3)" not in triage.replace("&lt;img src=x onerror=alert(3)&gt;", "")
    assert triage.count('href="/p/acme/traces/') >= 3  # the bad events, linked to their trace pages
    against_good, against_before = triage.split('class="suspects since"')
    assert re.search(r"release</span> <b>v2</b>", against_good.split('class="suspects"')[1]), "v2 fails, v1 passes"
    assert re.search(r"release</span> <b>v2</b> <span class=\"chip firing\">new</span>", against_before)
    assert "Acknowledge" in triage


def test_overview_and_service_page_show_slo_state_and_open_incidents(
    tenant: Tenant, incident: Incident, django_assert_max_num_queries: Any
) -> None:
    """The on-call's landing page names the open incident and which service's SLO fires; the service page lists
    its SLOs with status and budget. Untrusted SLO names stay text."""
    ingest(tenant, [make_trace(0, service="other-bot")])
    recompute()
    create_slo(tenant.project, name="Quiet SLO", service="other-bot")
    client = login()
    overview = client.get("/p/acme/?range=30d").content.decode()
    banner = overview.split('class="incident-banner"')[1].split("</ul>")[0]
    assert f'href="/p/acme/incidents/{incident.pk}/"' in banner and "Incident #" in banner
    assert "&lt;script&gt;alert(&#x27;slo&#x27;)&lt;/script&gt;" in banner and "<script>alert" not in overview
    row = overview.split('data-service="support-bot"')[1].split("</tr>")[0]
    assert re.search(r'class="slo-cell"><a href="/p/acme/slos/" class="status error"[^>]*>firing: page</a>', row)
    service = client.get("/p/acme/service/?name=support-bot&range=30d").content.decode()
    strip = service.split('class="slo-strip"')[1].split("</p>")[0]
    assert f'href="/p/acme/slos/{incident.slo_id}/"' in strip and "firing: page" in strip
    assert '· budget <span class="error">-66.7%</span>' in strip.replace("−", "-")  # 1 - (6/36)/0.1, in red
    assert f'href="/p/acme/incidents/{incident.pk}/"' in strip and "Quiet SLO" not in strip
    assert "<script>alert('slo')" not in service
    # Resolved: the banner goes, the SLO stays listed.
    client.post(f"/p/acme/incidents/{incident.pk}/act/", {"action": "resolve"})
    with django_assert_max_num_queries(17) as counted:  # 16 + the navigation's open-incident count
        after = client.get("/p/acme/?range=30d").content.decode()
    assert 'class="incident-banner"' not in after
    for i in range(4):
        create_slo(tenant.project, name=f"extra {i}")
    with django_assert_max_num_queries(len(counted.captured_queries)):
        client.get("/p/acme/?range=30d")


def test_incident_actions_need_an_editor_and_stay_in_their_project(
    tenant: Tenant, other_tenant: Tenant, incident: Incident
) -> None:
    viewer = user_create(username="vera", password=PASSWORD)
    membership_set(project=tenant.project, user=viewer, role=Role.VIEWER)
    assert login("vera").post(f"/p/acme/incidents/{incident.pk}/act/", {"action": "acknowledge"}).status_code == 403
    assert login("bob").get(f"/p/acme/incidents/{incident.pk}/").status_code == 404
    assert login("bob").get(f"/p/globex/incidents/{incident.pk}/").status_code == 404
    client = login()
    client.post(f"/p/acme/incidents/{incident.pk}/act/", {"action": "acknowledge"})
    client.post(f"/p/acme/incidents/{incident.pk}/act/", {"action": "note", "note": "<b>rolled back</b>"})
    client.post(f"/p/acme/incidents/{incident.pk}/act/", {"action": "resolve"})
    incident.refresh_from_db()
    assert incident.status == "resolved"
    page = client.get(f"/p/acme/incidents/{incident.pk}/").content.decode()
    assert "&lt;b&gt;rolled back&lt;/b&gt;" in page
    assert client.post(f"/p/acme/incidents/{incident.pk}/act/", {"action": "explode"}).status_code == 400


def test_channel_form_validates_and_masks_secrets(tenant: Tenant) -> None:
    client = login()
    bad = client.post("/p/acme/channels/", {"name": "pd", "kind": "pagerduty", "config": '{"routing_key": "short"}'})
    assert bad.status_code == 400 and "routing_key" in bad.content.decode()
    ok = client.post("/p/acme/channels/", {"name": "hook", "kind": "webhook",
                                           "config": '{"url": "https://hooks.example.com/x", "secret": "s3cret-s3cret-s3cret"}'})  # fmt: skip
    assert ok.status_code == 302
    page = client.get("/p/acme/channels/").content.decode()
    assert "https://hooks.example.com/x" in page and "s3cret-s3cret-s3cret" not in page
    viewer = user_create(username="vera", password=PASSWORD)
    membership_set(project=tenant.project, user=viewer, role=Role.VIEWER)
    as_viewer = login("vera").get("/p/acme/channels/").content.decode()
    assert "https://hooks.example.com/…" in as_viewer and "hooks.example.com/x" not in as_viewer  # tokens hide in paths
    assert login("vera").post("/p/acme/channels/", {"name": "x", "kind": "email", "config": "{}"}).status_code == 403


def test_channel_page_shows_the_newest_deliveries_of_every_channel_in_constant_queries(
    tenant: Tenant, incident: Incident, django_assert_max_num_queries: Any
) -> None:
    config = {"url": "https://hooks.example.com/x"}
    channels = [services.channel_save(project=tenant.project, name=f"hook {i}", kind="webhook", config=config)
                for i in range(3)]  # fmt: skip
    events = [
        IncidentEvent.objects.create(incident=incident, kind=EventKind.NOTE, at=at(20 + i), text=f"note {i}")
        for i in range(12)
    ]
    for channel in channels[:2]:
        Delivery.objects.bulk_create([Delivery(event=e, channel=channel, next_attempt_at=e.at) for e in events])
    client = login()
    with django_assert_max_num_queries(12) as counted:
        page = client.get("/p/acme/channels/").content.decode()
    for channel in channels[:2]:
        section = page.split(f"hook {channels.index(channel)}")[1].split("hook ")[0]
        shown = re.findall(r"\d\d-\d\d \d\d:\d\d:\d\d", section)
        assert shown == [at(20 + i).strftime("%m-%d %H:%M:%S") for i in range(11, 1, -1)]  # newest ten, newest first
    services.channel_save(project=tenant.project, name="hook 3", kind="webhook", config=config)
    with django_assert_max_num_queries(len(counted.captured_queries)):
        client.get("/p/acme/channels/")


def test_metrics_export_slo_and_service_series(tenant: Tenant, incident: Incident) -> None:
    assert Client().get("/metrics").status_code == 401
    response = Client().get("/metrics", headers=tenant.bearer)
    assert response.status_code == 200 and response["Content-Type"].startswith("text/plain")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.content.decode())
        for s in family.samples
    }
    base = (("project", "acme"), ("service", "support-bot"), ("slo", "<script>alert('slo')</script>"),
            ("slo_id", str(incident.slo_id)))  # fmt: skip
    assert samples[("sre4ai_slo_objective_ratio", base)] == 0.9
    # Scraped now, two days after the test's data: only the 30-day window holds its 36 events.
    assert samples[("sre4ai_slo_events", tuple(sorted((*base, ("window", "30d")))))] == 36.0
    assert samples[("sre4ai_slo_events", tuple(sorted((*base, ("window", "10m")))))] == 0.0
    assert samples[("sre4ai_slo_sli_ratio", tuple(sorted((*base, ("window", "30d")))))] == 30 / 36
    assert samples[("sre4ai_slo_error_budget_remaining_ratio", base)] == pytest.approx(1 - (6 / 36) / 0.1)
    firing = tuple(sorted((*base, ("rule", "page:2:10m:2m"), ("severity", "page"))))
    assert samples[("sre4ai_slo_alert_firing", firing)] == 1.0
    service = (("environment", "production"), ("project", "acme"), ("service", "support-bot"))
    assert samples[("sre4ai_traces_total", service)] == 36.0


def test_page_queries_do_not_grow_with_the_number_of_slos(
    tenant: Tenant, incident: Incident, django_assert_max_num_queries: Any
) -> None:
    client = login()
    with django_assert_max_num_queries(12) as one:
        client.get("/p/acme/slos/")
    for i in range(5):
        create_slo(tenant.project, name=f"extra {i}")
    with django_assert_max_num_queries(len(one.captured_queries)):
        assert client.get("/p/acme/slos/").content.decode().count('href="/p/acme/slos/') >= 6
    with django_assert_max_num_queries(20):
        client.get(f"/p/acme/slos/{incident.slo_id}/?range=window")
    with django_assert_max_num_queries(40):
        client.get(f"/p/acme/incidents/{incident.pk}/")
    with django_assert_max_num_queries(12):
        Client().get("/metrics", headers=tenant.bearer)


def test_an_slo_with_an_open_incident_cannot_be_deleted(tenant: Tenant, incident: Incident) -> None:
    client = login()
    page = client.post(f"/p/acme/slos/{incident.slo_id}/delete/", follow=True).content.decode()
    assert f"Incident #{incident.pk} of this SLO is still open: resolve it first" in page
    api = Client(headers=manager(tenant)).delete(f"/api/v1/slos/{incident.slo_id}")
    assert api.status_code == 409
    services.incident_resolve(incident_id=incident.pk, user=tenant.user)
    assert client.post(f"/p/acme/slos/{incident.slo_id}/delete/").status_code == 302
    assert not SLO.objects.exists()


def test_incident_figures_come_from_snapshots_taken_when_they_happened(tenant: Tenant, incident: Incident) -> None:
    """Budget consumed = budget at open − budget now (not the window's whole spend); acknowledged shows its own
    time; every delivery of an event reports the budget of the moment it was written."""
    from slos.templatetags.slo_format import pct

    fired = incident.events.get(kind=EventKind.FIRED)
    assert fired.budget_remaining == incident.budget_at_open is not None
    client = login()
    page = client.get(f"/p/acme/incidents/{incident.pk}/").content.decode()
    consumed = re.search(r"Budget consumed by this incident</dt><dd>([^<]*)</dd>", page)[1]  # type: ignore[index]
    assert consumed == pct(Decimal(0), 1)  # nothing spent since it opened (the old figure was 207%-like)
    assert '<dd class="error">' in page  # the overspent budget in red
    # More bad answers after the incident opened: the budget falls, the message of the old event does not change.
    for t in ingest(tenant, [make_trace(13, release="v2") for _ in range(6)]):
        score(t, "grounding", passed=False, value=0.1)
    recompute()
    later = selectors.slo_budget_remaining(slo=incident.slo, now=at(14))
    assert later is not None and later < incident.budget_at_open
    assert fired.budget_remaining is not None
    assert messages.alert_message(fired).budget_remaining == burn.format_percent(fired.budget_remaining)
    page = client.get(f"/p/acme/incidents/{incident.pk}/").content.decode()
    consumed = re.search(r"Budget consumed by this incident</dt><dd>([^<]*)</dd>", page)[1]  # type: ignore[index]
    assert consumed == pct(incident.budget_at_open - later, 1)
    services.incident_acknowledge(incident_id=incident.pk, user=tenant.user, now=at(30))
    banner = client.get("/p/acme/").content.decode().split('class="incident-banner"')[1].split("</ul>")[0]
    assert f"acknowledged since {at(30):%m-%d %H:%M} UTC" in banner
    assert f"{incident.opened_at:%m-%d %H:%M}" not in banner
    services.incident_resolve(incident_id=incident.pk, user=tenant.user, now=at(31))
    incident.refresh_from_db()
    at_resolve = selectors.slo_budget_remaining(slo=incident.slo, now=at(31))
    assert at_resolve is not None and incident.budget_at_resolve == at_resolve.quantize(Decimal("1e-10"))


def test_a_new_slo_is_computing_until_its_history_is_counted_and_an_overspent_budget_is_shaded_red(
    tenant: Tenant, incident: Incident
) -> None:
    fresh = create_slo(tenant.project, name="Fresh", sli_kind="error")
    client = login()
    page = client.get(f"/p/acme/slos/{fresh.pk}/").content.decode()
    states = page.split('class="rule-states"')[1].split("</table>")[0]
    assert "computing" in states and 'class="status ok"' not in states
    detail = client.get(f"/p/acme/slos/{incident.slo_id}/?range=window").content.decode()
    figures = json.loads(re.search(r'<script id="figures" type="application/json">(.*?)</script>', detail, re.S)[1])  # type: ignore[index]
    overspent = next(t for t in figures["budget"]["data"] if t["name"] == "overspent")
    assert min(v for v in overspent["y"] if v is not None) < 0 and "248,81,73" in overspent["fillcolor"]
    left = next(t for t in figures["budget"]["data"] if t["name"] == "budget left")
    assert min(v for v in left["y"] if v is not None) >= 0


def test_incidents_and_channels_are_in_the_navigation_with_the_open_count(tenant: Tenant, incident: Incident) -> None:
    client = login()
    nav = client.get("/p/acme/").content.decode().split("<nav>")[1].split("</nav>")[0]
    assert re.search(r'href="/p/acme/incidents/"[^>]*>Incidents <span class="nav-count"[^>]*>1</span>', nav)
    assert 'href="/p/acme/channels/"' in nav
    services.incident_resolve(incident_id=incident.pk, user=tenant.user)
    nav = client.get("/p/acme/").content.decode().split("<nav>")[1].split("</nav>")[0]
    assert "nav-count" not in nav
