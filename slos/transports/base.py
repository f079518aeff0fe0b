"""The notification transport contract.

A transport is one class in one module: a registry ``name``, a human ``label`` for the channel form, a
pydantic ``Config`` (``extra="forbid"``; its error messages are written to be shown in a form as they are),
the config fields that are never shown back (``secret_fields``), ``wants(config, message)`` (False: nothing
to send for this message) and ``send(config, message, *, timeout) -> str`` (the I/O; returns a short
summary of the answer for the attempt log, raises :class:`DeliveryError`).

HTTP transports (webhook, Slack, PagerDuty) derive from :class:`HttpTransport`: they build a pure
``request(config, message) -> HttpRequest`` (exact bytes, no I/O, so tests assert them) and share one way to
send it and to classify the answer. Email is not HTTP: it builds a Django ``EmailMessage`` instead and sends
it through the configured Django email backend.

Transports are stateless: instantiate with no arguments and pass the validated config on each call.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar, Generic, Literal, TypeVar
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

from sre4ai_web.lib import outbound

Severity = Literal["page", "ticket"]
SEVERITIES: tuple[Severity, ...] = ("page", "ticket")

# The answer body is read only to put a snippet in the attempt log; a huge body is not our business.
MAX_RESPONSE_BYTES = 64 * 1024
SNIPPET_CHARS = 200


class DeliveryError(Exception):
    """retryable=True: a later attempt can succeed (timeout, connection refused, 429, 5xx).
    retryable=False: it cannot (4xx other than 408/429, invalid config, bad URL)."""

    def __init__(self, message: str, *, retryable: bool, status: int | None = None):
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.status = status


@dataclass(frozen=True)
class AlertMessage:
    event_id: int  # unique per state change; the idempotency key
    # fired/cleared = one alert rule; acknowledged/resolved = the incident
    kind: Literal["fired", "cleared", "acknowledged", "resolved"]
    incident_id: int
    incident_url: str  # absolute URL of the incident (triage) page
    incident_status: Literal["open", "acknowledged", "resolved"]  # incident status after this change
    project: str  # project slug
    slo_id: int
    slo_name: str
    service: str
    environment: str  # "" = all environments
    objective: str  # e.g. "99.5%"
    severity: Severity  # of the rule (for acknowledged/resolved: the incident's highest)
    rule: str  # e.g. "page when burn rate > 14.4 over 1h and 5m"
    burn_rate_long: str | None  # decimal strings as shown to people, e.g. "16.2"; None when no events
    burn_rate_short: str | None
    budget_remaining: str | None  # e.g. "-12.5%" or "83%"
    summary: str  # one line, e.g. "support-bot grounding SLO: page rule firing (burn 16.2× over 1h)"
    occurred_at: datetime  # aware UTC
    actor: str = ""  # who acknowledged/resolved ("" = automatic)
    note: str = ""


# Words people read in subjects and headers, one per kind of change.
HEADLINES: dict[str, str] = {
    "fired": "FIRING",
    "cleared": "CLEARED",
    "acknowledged": "ACKNOWLEDGED",
    "resolved": "RESOLVED",
}


def utc(moment: datetime) -> datetime:
    """The same instant in UTC; a naive datetime is refused rather than read in the server's time zone."""
    if moment.tzinfo is None:
        raise ValueError("occurred_at must be an aware datetime")
    return moment.astimezone(UTC)


def iso_utc(moment: datetime) -> str:
    """ISO 8601 in UTC with a ``Z``: receivers in any language parse it, and it does not depend on the
    server's time zone."""
    return utc(moment).isoformat().removesuffix("+00:00") + "Z"


def shown(value: str | None) -> str:
    """A burn rate or budget as people read it; None means the window had no events."""
    return "n/a (no events)" if value is None else value


class ChannelConfig(BaseModel):
    """Fields every channel has. ``severities``: which rule severities this channel receives (a channel for
    the pager takes only "page")."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    severities: list[Severity] = Field(
        default_factory=lambda: list(SEVERITIES),
        description='Severities this channel receives: "page", "ticket" or both.',
    )

    @field_validator("severities")
    @classmethod
    def _some_severity(cls, value: list[Severity]) -> list[Severity]:
        if not value:
            raise PydanticCustomError("no_severity", 'choose at least one severity ("page" or "ticket")')
        # Keep a stable order and no repeats, whatever order the form sent.
        return [s for s in SEVERITIES if s in value]


ConfigT = TypeVar("ConfigT", bound=ChannelConfig)


class Transport(ABC, Generic[ConfigT]):
    name: ClassVar[str]  # registry key
    label: ClassVar[str]  # human name for the channel form
    Config: type[ConfigT]
    secret_fields: ClassVar[tuple[str, ...]] = ()  # config fields never shown back in the UI
    # Templates may show transport classes; without this Django would call (instantiate) them.
    do_not_call_in_templates: ClassVar[bool] = True

    def wants(self, config: ConfigT, message: AlertMessage) -> bool:
        """False when this channel has nothing to send for this message."""
        return message.severity in config.severities

    @abstractmethod
    def send(self, config: ConfigT, message: AlertMessage, *, timeout: float) -> str:
        """Deliver once; return a short summary of the answer (e.g. "202 Accepted"); raise DeliveryError."""


@dataclass(frozen=True)
class HttpRequest:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class HttpResponse:
    status: int
    reason: str
    headers: dict[str, str]  # names lower-cased
    body: bytes

    @property
    def snippet(self) -> str:
        """The start of the body on one line, for logs and error messages."""
        text = " ".join(self.body.decode("utf-8", "replace").split())
        return text if len(text) <= SNIPPET_CHARS else text[: SNIPPET_CHARS - 1] + "…"

    @property
    def summary(self) -> str:
        head = f"{self.status} {self.reason}".strip()
        return f"{head}: {self.snippet}" if self.snippet else head


def http_send(request: HttpRequest, *, timeout: float, peer: str) -> HttpResponse:
    """Send ``request`` through the outbound client (internal addresses refused, redirects not followed, the body
    capped) and return the answer whatever its status. No complete answer within ``timeout`` seconds overall, or
    a connection that fails (refused, reset, TLS, closed mid-answer) raises a retryable DeliveryError; an address
    the operator did not allow, a permanent one. ``peer`` names the other side in messages without repeating a
    URL that may hold a secret."""
    if urlsplit(request.url).scheme not in ("http", "https"):
        raise DeliveryError(f"{peer}: only http and https URLs can be used", retryable=False)
    try:
        with outbound.client() as http:
            response, _cut = outbound.request(
                http,
                request.method,
                request.url,
                deadline=timeout,
                max_bytes=MAX_RESPONSE_BYTES,
                headers=request.headers,
                content=request.body,
            )
    except outbound.OutboundError as exc:
        raise DeliveryError(f"{peer}: {exc}", retryable=exc.retryable) from exc
    return HttpResponse(
        response.status_code, response.reason_phrase, _lower(response.headers.items()), response.content
    )


def classify(response: HttpResponse, *, peer: str) -> str:
    """The usual HTTP reading: 2xx delivered; 408, 429 and 5xx worth retrying; 3xx (not followed) and other
    4xx are permanent. Returns the attempt-log summary or raises DeliveryError."""
    status = response.status
    if 200 <= status < 300:
        return response.summary
    if 300 <= status < 400:
        location = response.headers.get("location", "?")
        raise DeliveryError(
            f"{peer} answered {status} redirecting to {location}; redirects are not followed, configure the final URL",
            retryable=False,
            status=status,
        )
    retryable = status in (408, 429) or status >= 500
    message = f"{peer} answered {response.summary}"
    if retry_after := response.headers.get("retry-after"):
        message += f" (Retry-After: {retry_after})"
    raise DeliveryError(message, retryable=retryable, status=status)


class HttpTransport(Transport[ConfigT]):
    """A transport that POSTs one HTTP request per message."""

    @abstractmethod
    def request(self, config: ConfigT, message: AlertMessage) -> HttpRequest:
        """The exact request for this message. Pure: no I/O, no clock unless a subclass documents it."""

    @abstractmethod
    def peer(self, config: ConfigT) -> str:
        """Who we talk to, for messages (never a secret URL)."""

    def interpret(self, config: ConfigT, response: HttpResponse) -> str:
        """Turn the answer into a log summary or a DeliveryError; subclasses add what their API documents."""
        return classify(response, peer=self.peer(config))

    def send(self, config: ConfigT, message: AlertMessage, *, timeout: float) -> str:
        response = http_send(self.request(config, message), timeout=timeout, peer=self.peer(config))
        return self.interpret(config, response)


def _lower(items: Any) -> dict[str, str]:
    return {str(k).lower(): str(v) for k, v in items}
