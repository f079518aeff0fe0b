"""The incident flow: an assignee (a project member, set by editors), "acknowledged by", the who-did-what timeline
with each channel notification (sent, failed, retrying, with attempts and errors) in time order, the delivery status
per channel, links to the burn rates and failing traces of the incident window, the dense incident list with its
state and assignee filters, the audit log, and bounded page queries."""

from __future__ import annotations

import html
import re
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.db import reset_queries
from django.test import Client

from accounts.models import AuditEvent, Role
from accounts.services import membership_set, user_create
from slos import services
from slos.dispatch import deliveries_dispatch
from slos.models import SLO, Channel, DeliveryStatus, EventKind, Incident, IncidentEvent
from slos.selectors import failing_traces_query
from tests.conftest import PASSWORD, Tenant
from tests.receiver import Receiver
from tests.slo_data import at, create_slo, fire_score_slo
from traces.models import Trace

pytestmark = pytest.mark.django_db


def login(user: str = "alice") -> Client:
    client = Client()
    assert client.login(username=user, password=PASSWORD)
    return client


def member(tenant: Tenant, username: str, role: str = Role.EDITOR) -> None:
    user = user_create(username=username, password=PASSWORD)
    membership_set(project=tenant.project, user=user, role=role)


def webhook(tenant: Tenant, url: str, name: str) -> Channel:
    return services.channel_save(project=tenant.project, name=name, kind="webhook", config={"url": url})


def rows(page: str, table: str) -> list[str]:
    """The text of each row of the table with this class, tags stripped and spaces collapsed."""
    body = page.split(f'<table class="{table}">', 1)[1].split("</table>", 1)[0]
    found = re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.S)
    return [" ".join(html.unescape(re.sub(r"<[^>]+>", " ", r)).split()) for r in found]


# --- assignment ------------------------------------------------------------------------------------------------


def test_an_editor_assigns_a_member_and_the_change_is_on_the_page_the_timeline_and_the_audit_log(
    tenant: Tenant,
) -> None:
    incident = fire_score_slo(tenant)
    member(tenant, "bob", Role.VIEWER)  # any member can be handed an incident
    client = login()
    response = client.post(f"/p/acme/incidents/{incident.pk}/act/", {"action": "assign", "assignee": "bob"})
    assert response.status_code == 302
    incident.refresh_from_db()
    assert incident.assignee is not None and incident.assignee.username == "bob"
    event = IncidentEvent.objects.get(incident=incident, kind=EventKind.ASSIGNED)
    assert (event.author, event.assignee) == (tenant.user, incident.assignee)
    assert not event.deliveries.exists()  # the team's bookkeeping is not paged out
    page = client.get(f"/p/acme/incidents/{incident.pk}/").content.decode()
    assert re.search(r'<dd class="assignee"><b>bob</b>', page)
    assert "Assigned to bob by alice" in rows(page, "timeline")[-1]
    audit = AuditEvent.objects.get(action="incident.assign")
    assert (audit.actor, audit.project_id, audit.details["assignee"]) == ("alice", tenant.project.pk, "bob")
    assert audit.target.startswith(f"#{incident.pk} ")

    # Assigning the same person again changes nothing and records nothing; "nobody" unassigns.
    client.post(f"/p/acme/incidents/{incident.pk}/act/", {"action": "assign", "assignee": "bob"})
    assert IncidentEvent.objects.filter(incident=incident, kind=EventKind.ASSIGNED).count() == 1
    client.post(f"/p/acme/incidents/{incident.pk}/act/", {"action": "assign", "assignee": ""})
    incident.refresh_from_db()
    assert incident.assignee is None
    page = client.get(f"/p/acme/incidents/{incident.pk}/").content.decode()
    assert "Unassigned bob by alice" in rows(page, "timeline")[-1]
    assert AuditEvent.objects.get(action="incident.unassign").details == {"previous": "bob"}


@pytest.mark.parametrize("who", ["carol", "nobody-at-all", "<script>x</script>"])
def test_assigning_someone_outside_the_project_is_refused_with_a_form_error(
    tenant: Tenant, other_tenant: Tenant, who: str
) -> None:
    incident = fire_score_slo(tenant)
    user_create(username="carol", password=PASSWORD)  # a user of the instance, not of this project
    response = login().post(f"/p/acme/incidents/{incident.pk}/act/", {"action": "assign", "assignee": who})
    assert response.status_code == 400
    page = response.content.decode()
    assert f"“{html.escape(who)}” is not a member of this project" in page
    assert "<script>x</script>" not in page  # the refused name is escaped
    assert 'role="alert"' in page and "Who did what" in page  # the whole page, with the error beside the field
    incident.refresh_from_db()
    assert incident.assignee is None
    assert not IncidentEvent.objects.filter(kind=EventKind.ASSIGNED).exists()
    assert not AuditEvent.objects.filter(action__startswith="incident.").exists()
    # bob is a member of another project only: refused by the service as well.
    with pytest.raises(services.NotAMemberError):
        services.incident_assign(incident_id=incident.pk, assignee=other_tenant.user, user=tenant.user)


def test_a_viewer_cannot_assign_acknowledge_or_resolve(tenant: Tenant, other_tenant: Tenant) -> None:
    incident = fire_score_slo(tenant)
    member(tenant, "vera", Role.VIEWER)
    viewer = login("vera")
    for action in ({"action": "assign", "assignee": "vera"}, {"action": "acknowledge"}, {"action": "resolve"}):
        assert viewer.post(f"/p/acme/incidents/{incident.pk}/act/", action).status_code == 403
    page = viewer.get(f"/p/acme/incidents/{incident.pk}/").content.decode()
    assert 'value="assign"' not in page and "Assign to me" not in page
    # Another project's admin cannot see or touch it.
    assert login("bob").post(f"/p/acme/incidents/{incident.pk}/act/", {"action": "assign"}).status_code == 404
    incident.refresh_from_db()
    assert (incident.assignee, incident.status) == (None, "open")


def test_assign_to_me_and_acknowledged_by_are_shown_and_audited(tenant: Tenant) -> None:
    incident = fire_score_slo(tenant)
    client = login()
    page = client.get(f"/p/acme/incidents/{incident.pk}/").content.decode()
    assert '<input type="hidden" name="assignee" value="alice">' in page  # the "Assign to me" form
    client.post(f"/p/acme/incidents/{incident.pk}/act/", {"action": "assign", "assignee": "alice"})
    client.post(f"/p/acme/incidents/{incident.pk}/act/", {"action": "acknowledge"})
    page = client.get(f"/p/acme/incidents/{incident.pk}/").content.decode()
    assert "Assign to me" not in page  # already mine
    assert re.search(r'<dd class="acknowledged"><b>alice</b> at \d\d:\d\d', page)
    client.post(f"/p/acme/incidents/{incident.pk}/act/", {"action": "resolve", "note": "rolled back"})
    actions = list(AuditEvent.objects.order_by("pk").values_list("action", "actor"))
    assert actions[-3:] == [("incident.assign", "alice"), ("incident.acknowledge", "alice"),
                            ("incident.resolve", "alice")]  # fmt: skip


# --- timeline and delivery status ------------------------------------------------------------------------------


def test_the_timeline_tells_who_did_what_in_time_order_with_every_notification(
    tenant: Tenant, receiver: Receiver
) -> None:
    member(tenant, "bob")
    # "flaky" answers 503, then 404 <script> (permanent); "pager" takes everything.
    receiver.statuses, receiver.body = [503, 200, 404, 200], b"<script>alert(1)</script>"
    flaky, pager = webhook(tenant, receiver.url + "/flaky", "flaky"), webhook(tenant, receiver.url + "/pager", "pager")
    incident = fire_score_slo(tenant, [flaky, pager])
    assert deliveries_dispatch(now=at(12)) == 2  # flaky: 503 (retrying); pager: 200
    bob = incident.slo.project.memberships.get(user__username="bob").user
    services.incident_assign(incident_id=incident.pk, assignee=bob, user=tenant.user, now=at(12).replace(second=40))
    services.incident_acknowledge(incident_id=incident.pk, user=bob, now=at(13))
    # At minute 13 the flaky retry is due first (404: failed for good), then both channels hear the acknowledgement.
    assert deliveries_dispatch(now=at(13)) == 3
    services.incident_note(incident_id=incident.pk, user=bob, text="<b>rolled back</b> v2", now=at(14))
    services.incident_resolve(incident_id=incident.pk, user=bob, now=at(15))

    page = login().get(f"/p/acme/incidents/{incident.pk}/").content.decode()
    lines = rows(page, "timeline")
    stamp = lambda minute, second=10: at(minute).replace(second=second).strftime("%m-%d %H:%M:%S")  # noqa: E731
    assert lines[0].startswith(f"{stamp(12)} Opened by rule page when the burn rate exceeds 2 over 10m and over 2m")
    assert lines[1] == f"{stamp(12)} delivered notified pager of “rule fired” · 1 attempt"
    assert lines[2] == f"{stamp(12, 40)} Assigned to bob by alice"
    assert lines[3] == f"{stamp(13)} Acknowledged by bob"
    assert lines[4].startswith(f"{stamp(13)} failed notified flaky of “rule fired” · 2 attempts")
    assert "answered 404 Not Found: <script>alert(1)</script>" in lines[4]  # the receiver's words, as text
    assert {lines[5], lines[6]} == {f"{stamp(13)} delivered notified {c} of “acknowledged” · 1 attempt"
                                    for c in ("flaky", "pager")}  # fmt: skip
    assert lines[7] == f"{stamp(14)} Note by bob <b>rolled back</b> v2"
    assert lines[8] == f"{stamp(15)} Resolved by bob"
    assert lines[9:] == [f"{stamp(15)} queued notified {c} of “resolved”" for c in ("flaky", "pager")]
    assert "<script>alert(1)</script>" not in page and "&lt;b&gt;rolled back&lt;/b&gt;" in page

    status = {line.split()[0]: line for line in rows(page, "channel-status")[1:]}
    assert status["flaky"].startswith("flaky webhook queued 1 sent, 1 failed, 1 pending resolved 0")
    assert re.search(rf"{stamp(13)} webhook 127.0.0.1:\d+ answered 404 Not Found", status["flaky"])
    assert status["pager"].startswith("pager webhook queued 2 sent, 1 pending resolved 0") and "none" in status["pager"]


def test_delivery_status_shows_a_retrying_channel_with_its_error_and_next_try(
    tenant: Tenant, receiver: Receiver
) -> None:
    receiver.statuses = [503]
    incident = fire_score_slo(tenant, [webhook(tenant, receiver.url, "oncall <hook>")])
    assert deliveries_dispatch(now=at(12)) == 1
    page = login().get(f"/p/acme/incidents/{incident.pk}/").content.decode()
    [line] = rows(page, "channel-status")[1:]
    next_try = (at(12).replace(second=40)).strftime("%H:%M:%S")  # 30 s after the first attempt
    assert line.startswith(f"oncall <hook> webhook retrying rule fired 1 {at(12).strftime('%m-%d %H:%M:%S')} "
                           f"next try {next_try}")  # fmt: skip
    assert "answered 503 Service Unavailable" in line
    assert "oncall &lt;hook&gt;" in page
    assert rows(page, "timeline")[1].startswith(
        f"{at(12).strftime('%m-%d %H:%M:%S')} retrying notified oncall <hook> of “rule fired” · 1 attempt · next try"
    )
    assert incident.events.get().deliveries.get().status == DeliveryStatus.PENDING


def test_an_slo_without_channels_says_so(tenant: Tenant) -> None:
    incident = fire_score_slo(tenant)
    page = login().get(f"/p/acme/incidents/{incident.pk}/").content.decode()
    assert rows(page, "channel-status")[1].startswith("This SLO notifies no channel.")


# --- links back to the SLO and the traces ------------------------------------------------------------------------


def test_the_incident_links_to_its_burn_rates_and_failing_traces_of_its_window(tenant: Tenant) -> None:
    incident = fire_score_slo(tenant)
    client = login()
    page = client.get(f"/p/acme/incidents/{incident.pk}/").content.decode()
    burn = html.unescape(re.search(r'href="([^"]*)">Burn rates over this window', page)[1])  # type: ignore[index]
    traces = html.unescape(re.search(r'href="([^"]*)">Failing traces in this window', page)[1])  # type: ignore[index]
    # The window: the opening rule's long window (10m) before it opened, to now (still open).
    assert urlsplit(burn).path == f"/p/acme/slos/{incident.slo_id}/" and burn.endswith("#burn-rates")
    query = parse_qs(urlsplit(traces).query)
    assert {k: v[0] for k, v in query.items() if k not in ("since", "until")} == {
        "service": "support-bot", "failing": "grounding"
    }  # fmt: skip
    assert query["since"] == [(incident.opened_at - (at(12) - at(2))).isoformat()]
    # Following it lists exactly the three failing traces.
    listed = client.get(traces).content.decode()
    assert len(re.findall(r'<tr [^>]*data-trace="', listed)) == 3
    # The SLO page opened from it shows the range holding the incident, zoomed to it.
    slo_page = client.get(burn.split("#")[0]).content.decode()
    zoom = re.search(r'id="burn-rates" data-zoom="sync" data-since="([^"]+)" data-until="([^"]+)"', slo_page)
    assert zoom is not None and zoom[1].startswith((incident.opened_at - (at(12) - at(2))).strftime("%Y-%m-%dT%H:%M"))
    assert 'class="chip active" href="?range=7d"' in slo_page  # two days ago: the 7-day range shows it
    # A range that cannot be read is ignored, not an error.
    assert client.get(f"/p/acme/slos/{incident.slo_id}/?since=yesterday&until=x").status_code == 200


@pytest.mark.parametrize(
    ("fields", "expected", "narrowed"),
    [
        ({"sli_kind": "score", "evaluator": "grounding", "comparator": "pass"}, {"failing": "grounding"}, True),
        ({"sli_kind": "score", "evaluator": "grounding", "comparator": ">=", "threshold": "0.7"},
         {"score": "grounding", "sort": "score"}, False),
        ({"sli_kind": "score", "evaluator": "toxicity", "comparator": "<", "threshold": "0.2"},
         {"score": "toxicity", "sort": "-score"}, False),
        ({"sli_kind": "error", "environment": "production"}, {"status": "error", "environment": "production"}, True),
        ({"sli_kind": "latency", "threshold": "2000"}, {"min_duration_ms": "2000", "sort": "-latency"}, False),
        ({"sli_kind": "cost", "threshold": "0.05"}, {"min_cost": "0.05", "sort": "-cost"}, False),
        ({"sli_kind": "safety"}, {}, False),
    ],
)  # fmt: skip
def test_failing_traces_query_uses_the_trace_list_filters_of_each_sli(
    fields: dict[str, str], expected: dict[str, str], narrowed: bool
) -> None:
    threshold = Decimal(fields["threshold"]) if "threshold" in fields else None
    slo = SLO(service="support-bot", threshold=threshold, **{k: v for k, v in fields.items() if k != "threshold"})
    query, is_narrowed = failing_traces_query(slo=slo, since=at(0), until=at(5))
    params = {k: v[0] for k, v in parse_qs(query).items()}
    assert params == {"service": "support-bot", **expected, "since": at(0).isoformat(), "until": at(5).isoformat()}
    assert is_narrowed is narrowed


# --- the incident list -------------------------------------------------------------------------------------------


def test_the_incident_list_is_a_dense_table_filtered_by_state_and_assignee(
    tenant: Tenant, django_assert_max_num_queries: Any
) -> None:
    member(tenant, "bob")
    first = fire_score_slo(tenant)
    services.incident_resolve(incident_id=first.pk, user=tenant.user, now=at(20))
    second = fire_score_slo(tenant, name="Grounded answers again")
    bob = first.slo.project.memberships.get(user__username="bob").user
    services.incident_assign(incident_id=second.pk, assignee=bob, user=tenant.user)
    client = login()
    reset_queries()  # the capture counts by the query log, which stops growing at 9,000 entries
    with django_assert_max_num_queries(11) as counted:  # 10: incidents, members, open budgets, navigation, session
        page = client.get("/p/acme/incidents/?status=all").content.decode()
    bound = len(counted.captured_queries)  # now: the capture is a slice of the query log, read when asked
    lines = rows(page, "incident-list dense")
    assert lines[0].split() == ["#", "State", "Sev", "SLO", "/", "service", "Opened", "(UTC)", "Duration", "Assignee",
                                "Acknowledged", "by", "Budget", "consumed"]  # fmt: skip
    by_id = {line.split()[0]: line for line in lines[1:]}
    resolved, open_ = by_id[f"#{first.pk}"], by_id[f"#{second.pk}"]
    assert resolved.startswith(f"#{first.pk} Resolved page Answers without errors support-bot")
    assert " 8m " in resolved and "so far" not in resolved  # opened at minute 12, resolved at 20
    assert open_.startswith(f"#{second.pk} Open page Grounded answers again support-bot") and "so far bob" in open_
    consumed = re.findall(r"(\d+(?:\.\d)?%|–)$", resolved)
    assert consumed and consumed[0] != "–"  # snapshots at open and resolve

    def listed(query: str, user: str = "alice") -> set[str]:
        return {line.split()[0] for line in rows(login(user).get(f"/p/acme/incidents/?{query}").content.decode(),
                                                 "incident-list dense")[1:] if line.startswith("#")}  # fmt: skip

    assert listed("") == {f"#{second.pk}"}  # unresolved by default
    assert listed("status=resolved") == {f"#{first.pk}"}
    assert listed("status=all&assignee=mine") == set()
    assert listed("status=all&assignee=mine", user="bob") == {f"#{second.pk}"}
    assert listed("status=all&assignee=unassigned") == {f"#{first.pk}"}
    assert listed("status=all&assignee=bob") == {f"#{second.pk}"}
    assert "No open incidents assigned to you." in client.get("/p/acme/incidents/?assignee=mine").content.decode()
    # More incidents do not cost more queries.
    for i in range(3):
        extra = create_slo(tenant.project, name=f"extra {i}")
        Incident.objects.create(project=tenant.project, slo=extra, severity="ticket", opened_at=at(30), assignee=bob)
    with django_assert_max_num_queries(bound):
        assert client.get("/p/acme/incidents/?status=all").content.decode().count("so far") == 4


def test_incident_page_queries_do_not_grow_with_its_timeline(
    tenant: Tenant, receiver: Receiver, django_assert_max_num_queries: Any
) -> None:
    incident = fire_score_slo(tenant, [webhook(tenant, receiver.url, "a"), webhook(tenant, receiver.url, "b")])
    deliveries_dispatch(now=at(12))
    client = login()
    reset_queries()  # the capture counts by the query log, which stops growing at 9,000 entries
    with django_assert_max_num_queries(30) as counted:  # 29: the triage reads, the SLO summary, the channels, members
        client.get(f"/p/acme/incidents/{incident.pk}/")
    bound = len(counted.captured_queries)  # now: the capture is a slice of the query log, read when asked
    member(tenant, "bob")
    bob = incident.slo.project.memberships.get(user__username="bob").user
    services.incident_assign(incident_id=incident.pk, assignee=bob, user=tenant.user)
    services.incident_acknowledge(incident_id=incident.pk, user=bob, now=at(13))
    deliveries_dispatch(now=at(13))
    for minute in range(14, 20):
        services.incident_note(incident_id=incident.pk, user=bob, text=f"note {minute}", now=at(minute))
    with django_assert_max_num_queries(bound):
        page = client.get(f"/p/acme/incidents/{incident.pk}/").content.decode()
    assert page.count("note 1") == 6


def test_a_threshold_score_slo_links_to_its_traces_worst_first(tenant: Tenant) -> None:
    incident = fire_score_slo(tenant, comparator=">=", threshold="0.5")
    client = login()
    page = client.get(f"/p/acme/incidents/{incident.pk}/").content.decode()
    link = html.unescape(re.search(r'href="([^"]*)">Traces in this window, worst first', page)[1])  # type: ignore[index]
    listed = client.get(link)
    assert listed.status_code == 200
    body = listed.content.decode()
    assert "Sorting by score needs" not in body
    ids = re.findall(r'<tr [^>]*data-trace="([^"]+)"', body)
    assert len(ids) == 9  # minutes 3-12: the opening rule's 10 minutes before it opened
    failing = {t.trace_id for t in Trace.objects.filter(scores__value=0.1)}
    assert set(ids[:3]) == failing  # the three failing answers (0.1) first
