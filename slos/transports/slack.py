"""Slack incoming webhook: a Block Kit message with a plain ``text`` fallback (used in notifications).

Blocks: a header (kind, severity and SLO name), a section with the summary and mrkdwn fields (service, SLO
and objective, severity, environment, burn rates, budget remaining), a context line (rule, incident status,
who acknowledged/resolved and their note) and a link button to the incident page.

Escaping: Slack parses ``&``, ``<`` and ``>`` in mrkdwn and in ``text`` (``<!channel>`` pings everyone,
``<url|label>`` makes a link), so every string placed there is escaped as ``&amp;``, ``&lt;``, ``&gt;``, as
Slack's "Escaping text" guide asks. ``plain_text`` objects (the header, the button label) are not parsed and
take the text as is. Texts are cut to Slack's block limits so a long note cannot get the message rejected.

Answers: 200 ``ok``. 4xx such as 404 ``no_service`` or 403 ``invalid_token`` are permanent; 429 and 5xx are
worth retrying. The webhook URL holds the token: it is a secret field and never appears in messages.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import Field, field_validator

from slos.transports.base import (
    HEADLINES,
    AlertMessage,
    ChannelConfig,
    DeliveryError,
    HttpRequest,
    HttpResponse,
    HttpTransport,
    classify,
    shown,
)
from sre4ai_web.lib.outbound import check_http_url, host_of

# Block Kit limits (characters): header text 150, section text 3000, a section field 2000, context element
# 2000; kept a little under.
HEADER_CHARS = 150
SECTION_CHARS = 2900
FIELD_CHARS = 1900

# What to do about Slack's documented permanent errors (the body of a non-200 answer).
_HINTS = {
    "no_service": "the webhook was disabled or removed; create a new one and update the channel",
    "invalid_token": "the webhook token is invalid; create a new webhook and update the channel",
    "channel_not_found": "its channel was deleted; create a webhook for an existing channel",
    "channel_is_archived": "its channel is archived; unarchive it or use another channel",
    "action_prohibited": "a Slack admin restricted posting to this channel",
    "posting_to_general_channel_denied": "only admins may post to this channel; use another one",
    "invalid_payload": "Slack rejected the message format (a bug in sre4ai: please report it)",
    "invalid_blocks": "Slack rejected the message blocks (a bug in sre4ai: please report it)",
}

_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}


def escape(text: str, limit: int | None = None) -> str:
    """Escape Slack's control characters; with ``limit``, cut (with …) so the escaped text fits, never
    inside an entity."""
    out: list[str] = []
    size = 0
    for ch in text:
        piece = _ESCAPES.get(ch, ch)
        if limit is not None and size + len(piece) > limit - 1:
            out.append("…")
            break
        out.append(piece)
        size += len(piece)
    return "".join(out)


def _plain(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class SlackConfig(ChannelConfig):
    webhook_url: str = Field(description="Slack incoming webhook URL (https://hooks.slack.com/services/...).")

    @field_validator("webhook_url")
    @classmethod
    def _url(cls, value: str) -> str:
        return check_http_url(value, what="the Slack webhook URL", https_only=True)


class Slack(HttpTransport[SlackConfig]):
    name = "slack"
    label = "Slack"
    Config = SlackConfig
    secret_fields = ("webhook_url",)

    def request(self, config: SlackConfig, message: AlertMessage) -> HttpRequest:
        body = json.dumps(self.message_json(message), separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": "sre4ai"}
        return HttpRequest("POST", config.webhook_url, headers, body)

    @staticmethod
    def message_json(message: AlertMessage) -> dict[str, Any]:
        m = message
        headline = HEADLINES[m.kind]
        env = m.environment or "all environments"
        fields = [
            ("Service", m.service),
            ("SLO", f"{m.slo_name} ({m.objective})"),
            ("Severity", m.severity),
            ("Environment", env),
            ("Burn rate", f"{shown(m.burn_rate_long)} long window, {shown(m.burn_rate_short)} short window"),
            ("Budget remaining", shown(m.budget_remaining)),
        ]
        context = f"{m.rule} · incident #{m.incident_id} {m.incident_status}"
        if m.actor:
            context += f" · {m.kind} by {m.actor}"
        if m.note:
            context += f" · note: {m.note}"
        return {
            "text": escape(f"{headline} {m.severity}: {m.summary}", SECTION_CHARS),
            "blocks": [
                {
                    "type": "header",
                    "text": {
                        "type": "plain_text",
                        "text": _plain(f"{headline} {m.severity}: {m.slo_name}", HEADER_CHARS),
                    },
                },
                {
                    "type": "section",
                    "text": {"type": "mrkdwn", "text": escape(m.summary, SECTION_CHARS)},
                    "fields": [
                        {"type": "mrkdwn", "text": f"*{title}*\n{escape(value, FIELD_CHARS)}"}
                        for title, value in fields
                    ],
                },
                {"type": "context", "elements": [{"type": "mrkdwn", "text": escape(context, FIELD_CHARS)}]},
                {
                    "type": "actions",
                    "elements": [
                        {
                            "type": "button",
                            "text": {"type": "plain_text", "text": f"Open incident #{m.incident_id}"},
                            "url": m.incident_url,
                        }
                    ],
                },
            ],
        }

    def peer(self, config: SlackConfig) -> str:
        return f"Slack ({host_of(config.webhook_url)})"

    def interpret(self, config: SlackConfig, response: HttpResponse) -> str:
        hint = _HINTS.get(response.snippet)
        if hint and 400 <= response.status < 500 and response.status not in (408, 429):
            raise DeliveryError(
                f"Slack answered {response.status} {response.snippet}: {hint}",
                retryable=False,
                status=response.status,
            )
        return classify(response, peer=self.peer(config))
