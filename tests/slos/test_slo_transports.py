"""slos.transports: exact requests for a fixed alert, delivery to real local servers, retry classification,
config validation.

No database: HTTP transports talk to a stdlib ``http.server`` started on 127.0.0.1 by the test, email goes to
Django's locmem outbox and to a real SMTP server (aiosmtpd) on 127.0.0.1. Expected payloads are written out
here, not computed by the code under test; the webhook signature was computed with ``openssl dgst -sha256
-hmac`` over ``"<timestamp>." + body``.
"""

from __future__ import annotations

import dataclasses
import email
import email.policy
import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from django.core import mail
from pydantic import ValidationError

from slos.transports import REGISTRY
from slos.transports.base import AlertMessage, DeliveryError
from slos.transports.email import Email, EmailConfig
from slos.transports.pagerduty import PagerDuty, PagerDutyConfig
from slos.transports.slack import Slack, SlackConfig
from slos.transports.webhook import Webhook, WebhookConfig, verify_signature

MESSAGE = AlertMessage(
    event_id=4711,
    kind="fired",
    incident_id=12,
    incident_url="https://sre4ai.example.com/p/acme/incidents/12/",
    incident_status="open",
    project="acme",
    slo_id=7,
    slo_name="Grounded answers",
    service="support-bot",
    environment="production",
    objective="99.5%",
    severity="page",
    rule="page when burn rate > 14.4 over 1h and 5m",
    burn_rate_long="16.2",
    burn_rate_short="20.1",
    budget_remaining="-12.5%",
    summary="support-bot Grounded answers: page rule firing (burn 16.2× over 1h)",
    occurred_at=datetime(2026, 5, 4, 3, 12, 0, tzinfo=UTC),
)
SECRET = "whsec-0123456789abcdef"
TIMESTAMP = 1777864330
ROUTING_KEY = "0123456789abcdef0123456789abcdef"

WEBHOOK_BODY = (
    '{"actor":"","budget_remaining":"-12.5%","burn_rate_long":"16.2","burn_rate_short":"20.1",'
    '"environment":"production","event_id":4711,"incident_id":12,"incident_status":"open",'
    '"incident_url":"https://sre4ai.example.com/p/acme/incidents/12/","kind":"fired","note":"","objective":"99.5%",'
    '"occurred_at":"2026-05-04T03:12:00Z","project":"acme","rule":"page when burn rate > 14.4 over 1h and 5m",'
    '"service":"support-bot","severity":"page","slo_id":7,"slo_name":"Grounded answers",'
    '"summary":"support-bot Grounded answers: page rule firing (burn 16.2× over 1h)"}'
).encode()
# openssl dgst -sha256 -hmac whsec-0123456789abcdef over b"1777864330." + WEBHOOK_BODY
WEBHOOK_SIGNATURE = "sha256=1c60be13c8f39c7155297ddf46f1bff10ce0412bb11a58481b41f7f3000b3c6a"


def msg(**changes: Any) -> AlertMessage:
    return dataclasses.replace(MESSAGE, **changes)


# --- a real local HTTP server -------------------------------------------------------------------------------


@dataclass
class Received:
    method: str
    path: str
    headers: Message
    body: bytes


@dataclass
class Reply:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


class Recorder:
    """What the server received, and the replies it will give in order (then 200 "ok")."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.replies: list[Reply] = []
        self.url = ""
        self.release = threading.Event()  # ends a delayed reply early at teardown

    def reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None, delay: float = 0.0) -> None:
        self.replies.append(Reply(status, body, headers or {}, delay))


@pytest.fixture
def server() -> Iterator[Recorder]:
    recorder = Recorder()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            recorder.received.append(Received(self.command, self.path, self.headers, body))
            reply = recorder.replies.pop(0) if recorder.replies else Reply(200, b"ok")
            if reply.delay:
                recorder.release.wait(reply.delay)
            try:
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout test)
                pass

        do_GET = do_POST  # a followed redirect would arrive as a GET: record it too

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    recorder.url = f"http://127.0.0.1:{httpd.server_port}"
    yield recorder
    recorder.release.set()
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


def closed_port() -> int:
    """A port nothing listens on (bound then released), for connection-refused tests."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- registry and contract ----------------------------------------------------------------------------------


def test_registry_lists_the_four_transports_under_their_names() -> None:
    assert {
        "webhook": Webhook,
        "slack": Slack,
        "pagerduty": PagerDuty,
        "email": Email,
    } == REGISTRY
    for cls in REGISTRY.values():
        assert cls.label
        assert set(cls.secret_fields) <= set(cls.Config.model_fields)
    assert Webhook.secret_fields == ("secret",)
    assert Slack.secret_fields == ("webhook_url",)
    assert PagerDuty.secret_fields == ("routing_key",)


@pytest.mark.parametrize("name", ["webhook", "slack", "pagerduty", "email"])
def test_configs_forbid_unknown_fields(name: str) -> None:
    with pytest.raises(ValidationError) as info:
        REGISTRY[name].Config.model_validate({"colour": "red"})
    assert ("colour",) in [e["loc"] for e in info.value.errors()]


# --- webhook ------------------------------------------------------------------------------------------------


def test_webhook_request_is_exact() -> None:
    config = WebhookConfig(url="https://hooks.example.com/sre4ai?team=a", secret=SECRET)
    request = Webhook().request(config, MESSAGE, timestamp=TIMESTAMP)
    assert request.method == "POST"
    assert request.url == "https://hooks.example.com/sre4ai?team=a"
    assert request.body == WEBHOOK_BODY
    assert request.headers == {
        "Content-Type": "application/json",
        "User-Agent": "sre4ai",
        "X-Sre4ai-Event-Id": "4711",
        "X-Sre4ai-Timestamp": "1777864330",
        "X-Sre4ai-Signature": WEBHOOK_SIGNATURE,
    }


def test_webhook_without_secret_sends_no_signature_and_writes_times_in_utc() -> None:
    config = WebhookConfig(url="http://10.0.0.5/hook", secret="")
    paris = timezone(timedelta(hours=2))
    request = Webhook().request(config, msg(occurred_at=datetime(2026, 5, 4, 5, 12, 0, tzinfo=paris)), timestamp=1)
    assert "X-Sre4ai-Signature" not in request.headers
    assert config.secret is None
    assert request.body == WEBHOOK_BODY  # 05:12 at +02:00 is the same instant, written as 03:12:00Z


def test_a_naive_occurred_at_is_refused_not_guessed() -> None:
    naive = msg(occurred_at=datetime(2026, 5, 4, 3, 12, 0))  # naive: the mistake under test
    with pytest.raises(ValueError, match="aware datetime"):
        Webhook().request(WebhookConfig(url="https://x.example.com"), naive, timestamp=1)
    with pytest.raises(ValueError, match="aware datetime"):
        Email().body(naive)


def test_webhook_delivers_and_the_signature_verifies(server: Recorder) -> None:
    server.reply(202, b'{"queued":true}')
    config = WebhookConfig(url=f"{server.url}/hooks/slo", secret=SECRET)
    summary = Webhook().send(config, MESSAGE, timeout=5)
    assert summary == '202 Accepted: {"queued":true}'
    [got] = server.received
    assert (got.method, got.path, got.body) == ("POST", "/hooks/slo", WEBHOOK_BODY)
    assert got.headers["Content-Type"] == "application/json"
    assert got.headers["User-Agent"] == "sre4ai"
    assert got.headers["X-Sre4ai-Event-Id"] == "4711"
    timestamp, signature = got.headers["X-Sre4ai-Timestamp"], got.headers["X-Sre4ai-Signature"]
    assert abs(int(timestamp) - datetime.now(UTC).timestamp()) < 60  # signed at send time
    assert verify_signature(SECRET, timestamp, got.body, signature)
    assert not verify_signature("another-secret-of-16+", timestamp, got.body, signature)
    assert not verify_signature(SECRET, timestamp, got.body.replace(b"16.2", b"1.62"), signature)
    assert not verify_signature(SECRET, str(int(timestamp) + 1), got.body, signature)
    assert not verify_signature(SECRET, timestamp, got.body, "")
    assert not verify_signature(SECRET, "1é", got.body, signature)


def test_verify_signature_accepts_the_reference_signature() -> None:
    assert verify_signature(SECRET, TIMESTAMP, WEBHOOK_BODY, WEBHOOK_SIGNATURE)
    assert verify_signature(SECRET, str(TIMESTAMP), WEBHOOK_BODY, WEBHOOK_SIGNATURE)
    assert not verify_signature(SECRET, TIMESTAMP, WEBHOOK_BODY, WEBHOOK_SIGNATURE.replace("sha256=", "sha1="))


@pytest.mark.parametrize(
    ("status", "retryable"),
    [(400, False), (401, False), (404, False), (410, False), (408, True), (429, True), (500, True), (503, True)],
)
def test_webhook_failures_are_classified(server: Recorder, status: int, retryable: bool) -> None:
    server.reply(status, b"nope", {"Retry-After": "30"} if status == 429 else None)
    with pytest.raises(DeliveryError) as info:
        Webhook().send(WebhookConfig(url=server.url), MESSAGE, timeout=5)
    assert info.value.retryable is retryable
    assert info.value.status == status
    assert f"answered {status}" in info.value.message
    assert "nope" in info.value.message
    assert ("Retry-After: 30" in info.value.message) is (status == 429)


@pytest.mark.parametrize("status", [302, 307])
def test_webhook_redirect_is_not_followed(server: Recorder, status: int) -> None:
    # Another host name for the same local server: a followed redirect would show up as a second request.
    elsewhere = server.url.replace("127.0.0.1", "localhost") + "/elsewhere"
    server.reply(status, headers={"Location": elsewhere})
    with pytest.raises(DeliveryError) as info:
        Webhook().send(WebhookConfig(url=server.url, secret=SECRET), MESSAGE, timeout=5)
    assert not info.value.retryable
    assert info.value.status == status
    assert f"redirecting to {elsewhere}; redirects are not followed" in info.value.message
    assert [r.path for r in server.received] == ["/"]


def test_webhook_connection_refused_is_retryable() -> None:
    port = closed_port()
    with pytest.raises(DeliveryError) as info:
        Webhook().send(WebhookConfig(url=f"http://127.0.0.1:{port}/x"), MESSAGE, timeout=5)
    assert info.value.retryable
    assert info.value.status is None
    assert info.value.message == (
        f"webhook 127.0.0.1:{port}: connection failed (ConnectError: [Errno 111] Connection refused)"
    )


def test_webhook_timeout_is_retryable(server: Recorder) -> None:
    server.reply(200, b"late", delay=10)
    with pytest.raises(DeliveryError) as info:
        Webhook().send(WebhookConfig(url=server.url), MESSAGE, timeout=0.3)
    assert info.value.retryable
    assert info.value.message.endswith("no complete answer within 0.3 s")


def test_a_url_of_another_scheme_is_refused_even_if_it_slipped_past_validation() -> None:
    config = WebhookConfig.model_construct(url="file:///etc/passwd", secret=None, severities=["page", "ticket"])
    with pytest.raises(DeliveryError) as info:
        Webhook().send(config, MESSAGE, timeout=1)
    assert not info.value.retryable
    assert "only http and https" in info.value.message


def test_severities_filter_what_a_channel_wants() -> None:
    pager_only = WebhookConfig(url="https://x.example.com", severities=["page"])
    assert Webhook().wants(pager_only, MESSAGE)
    assert not Webhook().wants(pager_only, msg(severity="ticket"))
    both = WebhookConfig(url="https://x.example.com")
    assert both.severities == ["page", "ticket"]
    assert Webhook().wants(both, msg(severity="ticket"))
    assert WebhookConfig(url="https://x.example.com", severities=["ticket", "page", "ticket"]).severities == [
        "page",
        "ticket",
    ]


# --- Slack --------------------------------------------------------------------------------------------------

SLACK_EXPECTED = {
    "text": "FIRING page: support-bot Grounded answers: page rule firing (burn 16.2× over 1h)",
    "blocks": [
        {"type": "header", "text": {"type": "plain_text", "text": "FIRING page: Grounded answers"}},
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": "support-bot Grounded answers: page rule firing (burn 16.2× over 1h)"},
            "fields": [
                {"type": "mrkdwn", "text": "*Service*\nsupport-bot"},
                {"type": "mrkdwn", "text": "*SLO*\nGrounded answers (99.5%)"},
                {"type": "mrkdwn", "text": "*Severity*\npage"},
                {"type": "mrkdwn", "text": "*Environment*\nproduction"},
                {"type": "mrkdwn", "text": "*Burn rate*\n16.2 long window, 20.1 short window"},
                {"type": "mrkdwn", "text": "*Budget remaining*\n-12.5%"},
            ],
        },
        {
            "type": "context",
            "elements": [
                {"type": "mrkdwn", "text": "page when burn rate &gt; 14.4 over 1h and 5m · incident #12 open"}
            ],
        },
        {
            "type": "actions",
            "elements": [
                {
                    "type": "button",
                    "text": {"type": "plain_text", "text": "Open incident #12"},
                    "url": "https://sre4ai.example.com/p/acme/incidents/12/",
                }
            ],
        },
    ],
}


def test_slack_request_is_exact() -> None:
    config = SlackConfig(webhook_url="https://hooks.slack.com/services/T000/B000/XXXX")
    request = Slack().request(config, MESSAGE)
    assert (request.method, request.url) == ("POST", "https://hooks.slack.com/services/T000/B000/XXXX")
    assert request.headers == {"Content-Type": "application/json; charset=utf-8", "User-Agent": "sre4ai"}
    assert json.loads(request.body) == SLACK_EXPECTED
    assert request.body == json.dumps(SLACK_EXPECTED, separators=(",", ":"), ensure_ascii=False).encode()


def test_slack_escapes_hostile_names_in_mrkdwn() -> None:
    hostile = "<!channel> & <script>"
    message = msg(
        kind="acknowledged",
        incident_status="acknowledged",
        slo_name=hostile,
        service="bot <@U123>",
        summary=f"{hostile} burning",
        actor="bob",
        note="looking <https://evil.example|here>",
    )
    body = json.loads(Slack().request(SlackConfig(webhook_url="https://hooks.slack.com/x"), message).body)
    header, section, context, _ = body["blocks"]
    assert body["text"] == "ACKNOWLEDGED page: &lt;!channel&gt; &amp; &lt;script&gt; burning"
    assert header["text"] == {"type": "plain_text", "text": "ACKNOWLEDGED page: <!channel> & <script>"}
    assert section["text"]["text"] == "&lt;!channel&gt; &amp; &lt;script&gt; burning"
    assert section["fields"][0]["text"] == "*Service*\nbot &lt;@U123&gt;"
    assert section["fields"][1]["text"] == "*SLO*\n&lt;!channel&gt; &amp; &lt;script&gt; (99.5%)"
    assert context["elements"][0]["text"] == (
        "page when burn rate &gt; 14.4 over 1h and 5m · incident #12 acknowledged · acknowledged by bob"
        " · note: looking &lt;https://evil.example|here&gt;"
    )
    mrkdwn = [body["text"], section["text"]["text"], context["elements"][0]["text"]]
    mrkdwn += [f["text"] for f in section["fields"]]
    assert not any("<" in text or ">" in text for text in mrkdwn)


def test_slack_cuts_long_texts_to_block_limits_without_breaking_an_entity() -> None:
    message = msg(note="&" * 5000, slo_name="n" * 400, summary="s" * 4000)
    body = json.loads(Slack().request(SlackConfig(webhook_url="https://hooks.slack.com/x"), message).body)
    header, section, context, _ = body["blocks"]
    assert len(header["text"]["text"]) == 150 and header["text"]["text"].endswith("…")
    assert len(section["text"]["text"]) <= 3000
    note = context["elements"][0]["text"]
    assert len(note) <= 2000
    assert note.endswith("&amp;…")


def test_slack_delivers_ok(server: Recorder) -> None:
    config = SlackConfig(webhook_url=f"{server.url}/services/T000/B000/XXXX")
    assert Slack().send(config, MESSAGE, timeout=5) == "200 OK: ok"
    [got] = server.received
    assert got.path == "/services/T000/B000/XXXX"
    assert json.loads(got.body) == SLACK_EXPECTED


@pytest.mark.parametrize(
    ("status", "body", "retryable", "words"),
    [
        (404, b"no_service", False, "the webhook was disabled or removed"),
        (403, b"invalid_token", False, "the webhook token is invalid"),
        (410, b"channel_is_archived", False, "its channel is archived"),
        (400, b"invalid_blocks", False, "Slack rejected the message blocks"),
        (429, b"rate_limited", True, "answered 429"),
        (500, b"rollup_error", True, "answered 500"),
        (503, b"", True, "answered 503"),
    ],
)
def test_slack_failures_are_classified(server: Recorder, status: int, body: bytes, retryable: bool, words: str) -> None:
    server.reply(status, body)
    with pytest.raises(DeliveryError) as info:
        Slack().send(SlackConfig(webhook_url=f"{server.url}/services/T000/B000/SECRETTOKEN"), MESSAGE, timeout=5)
    assert info.value.retryable is retryable
    assert info.value.status == status
    assert words in info.value.message
    assert "SECRETTOKEN" not in info.value.message  # the webhook URL is a secret


def test_slack_connection_refused_is_retryable_and_keeps_the_url_secret() -> None:
    with pytest.raises(DeliveryError) as info:
        Slack().send(
            SlackConfig(webhook_url=f"http://localhost:{closed_port()}/services/SECRETTOKEN"), MESSAGE, timeout=5
        )
    assert info.value.retryable
    assert "connection failed" in info.value.message
    assert "SECRETTOKEN" not in info.value.message


# --- PagerDuty ----------------------------------------------------------------------------------------------

PAGERDUTY_TRIGGER = {
    "routing_key": ROUTING_KEY,
    "event_action": "trigger",
    "dedup_key": "sre4ai-acme-incident-12",
    "payload": {
        "summary": "support-bot Grounded answers: page rule firing (burn 16.2× over 1h)",
        "source": "support-bot",
        "severity": "critical",
        "timestamp": "2026-05-04T03:12:00Z",
        "component": "Grounded answers",
        "group": "acme",
        "class": "slo_burn_rate",
        "custom_details": {
            "environment": "production",
            "objective": "99.5%",
            "rule": "page when burn rate > 14.4 over 1h and 5m",
            "burn_rate_long": "16.2",
            "burn_rate_short": "20.1",
            "budget_remaining": "-12.5%",
            "slo_id": 7,
            "incident_id": 12,
            "event_id": 4711,
        },
    },
    "links": [{"href": "https://sre4ai.example.com/p/acme/incidents/12/", "text": "sre4ai incident #12"}],
    "client": "sre4ai",
    "client_url": "https://sre4ai.example.com/p/acme/incidents/12/",
}
ACKNOWLEDGED = msg(event_id=4712, kind="acknowledged", incident_status="acknowledged", actor="bob")
RESOLVED = msg(event_id=4713, kind="resolved", incident_status="resolved", actor="bob", note="rolled back")


def test_pagerduty_trigger_is_exact() -> None:
    request = PagerDuty().request(PagerDutyConfig(routing_key=ROUTING_KEY), MESSAGE)
    assert (request.method, request.url) == ("POST", "https://events.pagerduty.com/v2/enqueue")
    assert request.headers == {"Content-Type": "application/json", "User-Agent": "sre4ai"}
    assert request.body == json.dumps(PAGERDUTY_TRIGGER, separators=(",", ":"), ensure_ascii=False).encode()


def test_pagerduty_acknowledge_and_resolve_are_exact() -> None:
    config = PagerDutyConfig(routing_key=ROUTING_KEY)
    assert PagerDuty().request(config, ACKNOWLEDGED).body == (
        b'{"routing_key":"0123456789abcdef0123456789abcdef","event_action":"acknowledge",'
        b'"dedup_key":"sre4ai-acme-incident-12"}'
    )
    assert PagerDuty().request(config, RESOLVED).body == (
        b'{"routing_key":"0123456789abcdef0123456789abcdef","event_action":"resolve",'
        b'"dedup_key":"sre4ai-acme-incident-12"}'
    )


def test_pagerduty_ticket_is_a_warning_and_long_summaries_are_cut() -> None:
    request = PagerDuty().request(PagerDutyConfig(routing_key=ROUTING_KEY), msg(severity="ticket", summary="x" * 2000))
    payload = json.loads(request.body)["payload"]
    assert payload["severity"] == "warning"
    assert payload["summary"] == "x" * 1023 + "…"


def test_pagerduty_trigger_acknowledge_resolve_share_one_dedup_key(server: Recorder) -> None:
    accepted = b'{"status":"success","message":"Event processed","dedup_key":"sre4ai-acme-incident-12"}'
    for _ in range(3):
        server.reply(202, accepted)
    config = PagerDutyConfig(routing_key=ROUTING_KEY, events_url=f"{server.url}/v2/enqueue")
    transport = PagerDuty()
    for message in (MESSAGE, ACKNOWLEDGED, RESOLVED):
        assert transport.wants(config, message)
        assert transport.send(config, message, timeout=5) == f"202 Accepted: {accepted.decode()}"
    events = [json.loads(r.body) for r in server.received]
    assert [r.path for r in server.received] == ["/v2/enqueue"] * 3
    assert [e["event_action"] for e in events] == ["trigger", "acknowledge", "resolve"]
    assert {e["dedup_key"] for e in events} == {"sre4ai-acme-incident-12"}
    assert {e["routing_key"] for e in events} == {ROUTING_KEY}


def test_pagerduty_ignores_a_rule_cleared_while_the_incident_is_open() -> None:
    config = PagerDutyConfig(routing_key=ROUTING_KEY)
    transport = PagerDuty()
    for status in ("open", "acknowledged"):
        cleared = msg(kind="cleared", incident_status=status)
        assert not transport.wants(config, cleared)
        with pytest.raises(ValueError, match="check wants"):
            transport.request(config, cleared)
    # The last rule clearing resolved the incident: PagerDuty's alert must close too.
    cleared_and_resolved = msg(kind="cleared", incident_status="resolved")
    assert transport.wants(config, cleared_and_resolved)
    assert json.loads(transport.request(config, cleared_and_resolved).body)["event_action"] == "resolve"
    # Other channels still hear about the cleared rule.
    assert Webhook().wants(WebhookConfig(url="https://x.example.com"), msg(kind="cleared"))
    assert not transport.wants(PagerDutyConfig(routing_key=ROUTING_KEY, severities=["page"]), msg(severity="ticket"))


@pytest.mark.parametrize(
    ("status", "retryable"), [(400, False), (404, False), (429, True), (500, True), (502, True), (503, True)]
)
def test_pagerduty_failures_are_classified(server: Recorder, status: int, retryable: bool) -> None:
    server.reply(status, b'{"status":"invalid event","message":"Event object is invalid"}' if status == 400 else b"")
    config = PagerDutyConfig(routing_key=ROUTING_KEY, events_url=f"{server.url}/v2/enqueue")
    with pytest.raises(DeliveryError) as info:
        PagerDuty().send(config, MESSAGE, timeout=5)
    assert info.value.retryable is retryable
    assert info.value.status == status
    assert info.value.message.startswith(f"PagerDuty (127.0.0.1:{server.url.rsplit(':', 1)[1]}) answered {status}")
    assert ROUTING_KEY not in info.value.message
    if status == 400:
        assert "Event object is invalid" in info.value.message


def test_pagerduty_timeout_is_retryable(server: Recorder) -> None:
    server.reply(202, delay=10)
    config = PagerDutyConfig(routing_key=ROUTING_KEY, events_url=f"{server.url}/v2/enqueue")
    with pytest.raises(DeliveryError) as info:
        PagerDuty().send(config, MESSAGE, timeout=0.3)
    assert info.value.retryable
    assert "no complete answer within 0.3 s" in info.value.message


# --- email --------------------------------------------------------------------------------------------------

EMAIL_BODY = """\
FIRING: support-bot Grounded answers: page rule firing (burn 16.2× over 1h)

Project:           acme
SLO:               Grounded answers (#7)
Service:           support-bot
Environment:       production
Objective:         99.5%
Severity:          page
Rule:              page when burn rate > 14.4 over 1h and 5m
Burn rate (long):  16.2
Burn rate (short): 20.1
Budget remaining:  -12.5%
Incident:          #12 (open)
Occurred at:       2026-05-04 03:12:00 UTC

Open the incident: https://sre4ai.example.com/p/acme/incidents/12/

sre4ai event 4711
"""


def test_email_goes_through_django_with_exact_subject_and_body(settings: Any) -> None:
    settings.DEFAULT_FROM_EMAIL = "sre4ai@example.com"
    config = EmailConfig.model_validate({"to": "oncall@example.com, sre@example.com"})
    assert Email().send(config, MESSAGE, timeout=5) == "sent to 2 recipients"
    [sent] = mail.outbox
    assert sent.subject == "[sre4ai] FIRING page: Grounded answers (support-bot)"
    assert sent.body == EMAIL_BODY
    assert sent.to == ["oncall@example.com", "sre@example.com"]
    assert sent.from_email == "sre4ai@example.com"
    assert sent.extra_headers == {
        "References": "<sre4ai-acme-incident-12@sre4ai.example.com>",
        "Auto-Submitted": "auto-generated",
        "X-Sre4ai-Event-Id": "4711",
    }


def test_email_subjects_and_the_actor_for_each_kind() -> None:
    transport = Email()
    assert transport.subject(msg(kind="cleared")) == "[sre4ai] CLEARED page: Grounded answers (support-bot)"
    assert transport.subject(ACKNOWLEDGED) == "[sre4ai] ACKNOWLEDGED page: Grounded answers (support-bot)"
    assert transport.subject(RESOLVED) == "[sre4ai] RESOLVED page: Grounded answers (support-bot)"
    assert transport.subject(msg(slo_name="two\nlines", service="a\r\nb")) == "[sre4ai] FIRING page: two lines (a b)"
    body = transport.body(msg(**{**dataclasses.asdict(RESOLVED), "burn_rate_long": None, "environment": ""}))
    assert body.startswith("RESOLVED: support-bot")
    assert "\nResolved by:       bob\nNote:              rolled back\n" in body
    assert "\nBurn rate (long):  n/a (no events)\n" in body
    assert "\nEnvironment:       all\n" in body
    assert "\nIncident:          #12 (resolved)\n" in body


class SmtpHandler:
    """aiosmtpd handler: refuses chosen mailboxes with a permanent or a transient code, keeps the rest."""

    def __init__(self) -> None:
        self.envelopes: list[Any] = []

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any) -> str:
        if address.startswith("nobody@"):
            return "550 5.1.1 No such user"
        if address.startswith("later@"):
            return "451 4.7.1 Greylisted, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def smtp(settings: Any) -> Iterator[SmtpHandler]:
    handler = SmtpHandler()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = controller.port
    settings.DEFAULT_FROM_EMAIL = "sre4ai@example.com"
    yield handler
    controller.stop()


def test_email_through_a_real_smtp_server(smtp: SmtpHandler) -> None:
    config = EmailConfig(to=["oncall@example.com"])
    assert Email().send(config, MESSAGE, timeout=5) == "sent to 1 recipient"
    [envelope] = smtp.envelopes
    assert envelope.mail_from == "sre4ai@example.com"
    assert envelope.rcpt_tos == ["oncall@example.com"]
    received = email.message_from_bytes(envelope.content, policy=email.policy.default)
    assert received["Subject"] == "[sre4ai] FIRING page: Grounded answers (support-bot)"
    assert received["References"] == "<sre4ai-acme-incident-12@sre4ai.example.com>"
    assert received["X-Sre4ai-Event-Id"] == "4711"
    assert received.get_content().replace("\r\n", "\n") == EMAIL_BODY


@pytest.mark.parametrize(
    ("address", "retryable", "words"),
    [("nobody@example.com", False, "550 5.1.1 No such user"), ("later@example.com", True, "451 4.7.1 Greylisted")],
)
def test_smtp_refusals_are_classified(smtp: SmtpHandler, address: str, retryable: bool, words: str) -> None:
    with pytest.raises(DeliveryError) as info:
        Email().send(EmailConfig(to=[address]), MESSAGE, timeout=5)
    assert info.value.retryable is retryable
    assert info.value.message.startswith(f"mail server refused every recipient: {address} (")
    assert words in info.value.message
    assert smtp.envelopes == []


def test_smtp_connection_refused_and_silence_are_retryable(settings: Any) -> None:
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = closed_port()
    with pytest.raises(DeliveryError) as info:
        Email().send(EmailConfig(to=["oncall@example.com"]), MESSAGE, timeout=5)
    assert info.value.retryable
    assert "connection failed (ConnectionRefusedError" in info.value.message

    # A server that accepts the connection but never sends its greeting.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        settings.EMAIL_PORT = silent.getsockname()[1]
        with pytest.raises(DeliveryError) as info:
            Email().send(EmailConfig(to=["oncall@example.com"]), MESSAGE, timeout=0.3)
    assert info.value.retryable
    assert info.value.message == "mail server: no answer within 0.3 s"


# --- config validation: errors a form can show as they are -----------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "raw", "loc", "text"),
    [
        (
            WebhookConfig,
            {"url": "ftp://files.example.com/x"},
            ("url",),
            "the webhook URL must start with https:// or http://",
        ),
        (
            WebhookConfig,
            {"url": "javascript:alert(1)"},
            ("url",),
            "the webhook URL must start with https:// or http://",
        ),
        (WebhookConfig, {"url": "https://"}, ("url",), "the webhook URL has no valid host: https://"),
        (
            WebhookConfig,
            {"url": "https://x.example.com:99999/"},
            ("url",),
            "the webhook URL has no valid host: https://x.example.com:99999/",
        ),
        (WebhookConfig, {"url": "https://x.example.com/a b"}, ("url",), "the webhook URL must not contain spaces"),
        (WebhookConfig, {"url": ""}, ("url",), "the webhook URL is required"),
        (
            WebhookConfig,
            {"url": "https://example.com/crochets/élan"},
            ("url",),
            "the webhook URL must be ASCII: percent-encode other characters (and use the punycode form of the host)",
        ),
        (
            WebhookConfig,
            {"url": "https://x.example.com", "secret": "tooshort"},
            ("secret",),
            "the secret must be at least 16 characters long (got 8); use a random string",
        ),
        (
            WebhookConfig,
            {"url": "https://x.example.com", "severities": []},
            ("severities",),
            'choose at least one severity ("page" or "ticket")',
        ),
        (
            SlackConfig,
            {"webhook_url": "http://hooks.slack.com/services/T/B/X"},
            ("webhook_url",),
            "the Slack webhook URL must use https:// (plain http is only accepted for localhost)",
        ),
        (
            PagerDutyConfig,
            {"routing_key": "abc123"},
            ("routing_key",),
            "the routing key must be the 32 letters and digits of an Events API v2 integration key (got 6 characters)",
        ),
        (
            PagerDutyConfig,
            {"routing_key": "0123456789abcdef0123456789abcde!"},
            ("routing_key",),
            "the routing key must be the 32 letters and digits of an Events API v2 integration key (got 32 characters)",
        ),
        (
            PagerDutyConfig,
            {"routing_key": ROUTING_KEY, "events_url": "http://events.pagerduty.com/v2/enqueue"},
            ("events_url",),
            "the events URL must use https:// (plain http is only accepted for localhost)",
        ),
        (
            EmailConfig,
            {"to": "oncall@example.com, not-an-address"},
            ("to",),
            "not a valid email address: not-an-address",
        ),
        (EmailConfig, {"to": " , "}, ("to",), "add at least one email address"),
        (
            EmailConfig,
            {"to": [f"u{i}@example.com" for i in range(21)]},
            ("to",),
            "at most 20 addresses (got 21); use a mailing list",
        ),
    ],
)
def test_config_errors_read_well_in_a_form(cls: Any, raw: dict[str, Any], loc: tuple[str, ...], text: str) -> None:
    with pytest.raises(ValidationError) as info:
        cls.model_validate(raw)
    assert [(e["loc"], e["msg"]) for e in info.value.errors()] == [(loc, text)]


def test_valid_configs_are_normalised() -> None:
    assert EmailConfig.model_validate({"to": " a@example.com;B@example.com\nA@Example.com "}).to == [
        "a@example.com",
        "B@example.com",
    ]
    assert SlackConfig(webhook_url="http://127.0.0.1:8080/x").webhook_url == "http://127.0.0.1:8080/x"
    assert SlackConfig(webhook_url="http://[::1]:8080/x").webhook_url == "http://[::1]:8080/x"
    assert PagerDutyConfig(routing_key=f" {ROUTING_KEY} ").routing_key == ROUTING_KEY
    assert WebhookConfig(url="http://alerts.internal:8080/hook").url == "http://alerts.internal:8080/hook"
