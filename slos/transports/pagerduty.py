"""PagerDuty Events API v2.

A rule firing sends ``trigger``; the incident being acknowledged or resolved sends ``acknowledge`` or
``resolve``. Every event of one sre4ai incident carries the same ``dedup_key``,
``sre4ai-<project>-incident-<incident_id>``, so they all act on one PagerDuty alert: a second rule firing on
the same incident adds to that alert instead of paging again, and the resolve closes it.

A rule clearing while its incident stays open sends nothing (:meth:`PagerDuty.wants` is False): the
PagerDuty alert stands for the incident, which is not over. A "cleared" that leaves the incident resolved
is sent as ``resolve``.

Answers: 202 accepted; 400 (invalid event) is permanent; 429 and 5xx are worth retrying.
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal

from pydantic import Field, field_validator
from pydantic_core import PydanticCustomError

from slos.transports.base import (
    AlertMessage,
    ChannelConfig,
    HttpRequest,
    HttpTransport,
    iso_utc,
    shown,
)
from sre4ai_web.lib.outbound import check_http_url, host_of

DEFAULT_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
SUMMARY_CHARS = 1024  # the Events API's limit on payload.summary
_ROUTING_KEY = re.compile(r"[A-Za-z0-9]{32}")

_SEVERITY = {"page": "critical", "ticket": "warning"}


class PagerDutyConfig(ChannelConfig):
    routing_key: str = Field(
        description="Integration key of an Events API v2 integration (32 characters), from the service's "
        "Integrations tab in PagerDuty."
    )
    events_url: str = Field(
        default=DEFAULT_EVENTS_URL, description="Events API endpoint (change it for the EU region)."
    )

    @field_validator("routing_key")
    @classmethod
    def _key(cls, value: str) -> str:
        if not _ROUTING_KEY.fullmatch(value):
            raise PydanticCustomError(
                "routing_key",
                "the routing key must be the 32 letters and digits of an Events API v2 integration key "
                "(got {got} characters)",
                {"got": len(value)},
            )
        return value

    @field_validator("events_url")
    @classmethod
    def _url(cls, value: str) -> str:
        return check_http_url(value, what="the events URL", https_only=True)


def dedup_key(message: AlertMessage) -> str:
    return f"sre4ai-{message.project}-incident-{message.incident_id}"


def event_action(message: AlertMessage) -> Literal["trigger", "acknowledge", "resolve"] | None:
    """The Events API action for a message; None when there is nothing to tell PagerDuty."""
    if message.kind == "fired":
        return "trigger"
    if message.kind == "acknowledged":
        return "acknowledge"
    if message.kind == "resolved" or message.incident_status == "resolved":
        return "resolve"
    return None  # a rule cleared, the incident goes on


class PagerDuty(HttpTransport[PagerDutyConfig]):
    name = "pagerduty"
    label = "PagerDuty (Events API v2)"
    Config = PagerDutyConfig
    secret_fields = ("routing_key",)

    def wants(self, config: PagerDutyConfig, message: AlertMessage) -> bool:
        return super().wants(config, message) and event_action(message) is not None

    def request(self, config: PagerDutyConfig, message: AlertMessage) -> HttpRequest:
        action = event_action(message)
        if action is None:
            raise ValueError("PagerDuty has no event for a rule cleared while its incident is open; check wants()")
        m = message
        event: dict[str, Any] = {
            "routing_key": config.routing_key,
            "event_action": action,
            "dedup_key": dedup_key(m),
        }
        if action == "trigger":
            summary = m.summary if len(m.summary) <= SUMMARY_CHARS else m.summary[: SUMMARY_CHARS - 1] + "…"
            event["payload"] = {
                "summary": summary,
                "source": m.service,
                "severity": _SEVERITY[m.severity],
                "timestamp": iso_utc(m.occurred_at),
                "component": m.slo_name,
                "group": m.project,
                "class": "slo_burn_rate",
                "custom_details": {
                    "environment": m.environment or "all",
                    "objective": m.objective,
                    "rule": m.rule,
                    "burn_rate_long": shown(m.burn_rate_long),
                    "burn_rate_short": shown(m.burn_rate_short),
                    "budget_remaining": shown(m.budget_remaining),
                    "slo_id": m.slo_id,
                    "incident_id": m.incident_id,
                    "event_id": m.event_id,
                },
            }
            event["links"] = [{"href": m.incident_url, "text": f"sre4ai incident #{m.incident_id}"}]
            event["client"] = "sre4ai"
            event["client_url"] = m.incident_url
        body = json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        headers = {"Content-Type": "application/json", "User-Agent": "sre4ai"}
        return HttpRequest("POST", config.events_url, headers, body)

    def peer(self, config: PagerDutyConfig) -> str:
        return f"PagerDuty ({host_of(config.events_url)})"
