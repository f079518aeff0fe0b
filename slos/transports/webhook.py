"""Generic webhook: POSTs the whole alert message as JSON to any HTTP(S) endpoint.

Body: every :class:`AlertMessage` field as compact JSON with sorted keys, UTF-8, ``occurred_at`` in ISO 8601
UTC with a ``Z``. Headers: ``X-Sre4ai-Event-Id`` (the idempotency key: a retried delivery carries the same
id), ``X-Sre4ai-Timestamp`` (unix seconds when this attempt was signed) and, when a secret is configured,
``X-Sre4ai-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">``. Receivers check it with
:func:`verify_signature` (or the few lines in docs/alerting.md).
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import time

from pydantic import Field, field_validator
from pydantic_core import PydanticCustomError

from slos.transports.base import (
    AlertMessage,
    ChannelConfig,
    HttpRequest,
    HttpTransport,
    iso_utc,
)
from sre4ai_web.lib.outbound import check_http_url, host_of

MIN_SECRET_CHARS = 16


class WebhookConfig(ChannelConfig):
    url: str = Field(description="Endpoint that receives the POST (http:// or https://).")
    secret: str | None = Field(
        default=None,
        max_length=512,
        description=f"Optional HMAC secret ({MIN_SECRET_CHARS}+ characters); when set, every request is signed.",
    )

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        # A receiver on an internal network may speak plain http; the signature still protects integrity.
        return check_http_url(value, what="the webhook URL", https_only=False)

    @field_validator("secret")
    @classmethod
    def _secret(cls, value: str | None) -> str | None:
        if not value:  # an empty form field means "no signature"
            return None
        if len(value) < MIN_SECRET_CHARS:
            raise PydanticCustomError(
                "secret_short",
                "the secret must be at least {min} characters long (got {got}); use a random string",
                {"min": MIN_SECRET_CHARS, "got": len(value)},
            )
        return value


def payload(message: AlertMessage) -> bytes:
    """The JSON body: all message fields, compact, sorted keys, UTF-8 (non-ASCII kept as is)."""
    data = dataclasses.asdict(message)
    data["occurred_at"] = iso_utc(message.occurred_at)
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def sign(secret: str, timestamp: int | str, body: bytes) -> str:
    """``sha256=<hex>`` of HMAC-SHA256 over ``b"<timestamp>." + body``. The timestamp is signed so a captured
    request cannot be replayed later with a fresh timestamp."""
    digest = hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode("ascii") + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


def verify_signature(secret: str, timestamp: int | str, body: bytes, header: str) -> bool:
    """True when ``header`` (the X-Sre4ai-Signature value) signs exactly this timestamp and raw body.
    Constant-time. It checks the signature only: also reject stale timestamps and dedupe on the event id."""
    try:
        expected = sign(secret, timestamp, body)
    except UnicodeEncodeError:  # a timestamp header with non-ASCII junk cannot be ours
        return False
    return hmac.compare_digest(expected.encode("ascii"), header.strip().encode("utf-8"))


class Webhook(HttpTransport[WebhookConfig]):
    name = "webhook"
    label = "Generic webhook"
    Config = WebhookConfig
    secret_fields = ("secret",)

    def request(self, config: WebhookConfig, message: AlertMessage, *, timestamp: int | None = None) -> HttpRequest:
        """``timestamp`` (unix seconds) defaults to now: each attempt is signed when it is sent, so receivers
        can reject old requests. Tests pass a fixed one."""
        ts = int(time.time()) if timestamp is None else timestamp
        body = payload(message)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "sre4ai",
            "X-Sre4ai-Event-Id": str(message.event_id),
            "X-Sre4ai-Timestamp": str(ts),
        }
        if config.secret:
            headers["X-Sre4ai-Signature"] = sign(config.secret, ts, body)
        return HttpRequest("POST", config.url, headers, body)

    def peer(self, config: WebhookConfig) -> str:
        return f"webhook {host_of(config.url)}"
