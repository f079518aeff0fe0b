"""Email: a plain-text message sent through Django's email backend (``django.core.mail``).

There is no HTTP request here, so this transport has no ``request()``: :meth:`Email.email_message` builds the
exact Django ``EmailMessage`` (tests read subject and body from ``mail.outbox``) and :meth:`Email.send`
hands it to the backend configured in settings (``EMAIL_BACKEND``, ``EMAIL_HOST``, ...), with the attempt's
timeout. The sender is ``DEFAULT_FROM_EMAIL``.

Subject: ``[sre4ai] FIRING page: <SLO name> (<service>)`` (CLEARED, ACKNOWLEDGED, RESOLVED for the other
kinds). Every message of one incident carries ``References: <sre4ai-<project>-incident-<id>@<host>>`` so mail
clients thread them, and ``Auto-Submitted: auto-generated`` so vacation responders stay quiet.

SMTP errors: a 4xx reply (greylisting, mailbox busy), a dropped connection, a timeout or a refused
connection are worth retrying; a 5xx reply (unknown recipient, rejected sender, failed login) is not.
When the server refuses only some recipients, Django's SMTP backend delivers to the rest and reports
success: those refusals are not seen here.
"""

from __future__ import annotations

import re
import smtplib
from typing import Any
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.mail import EmailMessage, get_connection
from django.core.validators import validate_email
from pydantic import Field, field_validator
from pydantic_core import PydanticCustomError

from slos.transports.base import HEADLINES, AlertMessage, ChannelConfig, DeliveryError, Transport, shown, utc

MAX_RECIPIENTS = 20


class EmailConfig(ChannelConfig):
    to: list[str] = Field(description=f"Recipient addresses (1 to {MAX_RECIPIENTS}), separated by commas.")

    @field_validator("to", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        # A form field gives one string: "a@example.com, b@example.com".
        if isinstance(value, str):
            return [part for part in re.split(r"[\s,;]+", value) if part]
        return value

    @field_validator("to")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        if not value:
            raise PydanticCustomError("no_recipient", "add at least one email address")
        bad = []
        for address in value:
            try:
                validate_email(address)
            except DjangoValidationError:
                bad.append(address)
        if bad:
            raise PydanticCustomError(
                "bad_email", "not a valid email address: {addresses}", {"addresses": ", ".join(bad)}
            )
        unique: dict[str, str] = {}  # lower-cased → the first spelling given, in order
        for address in value:
            unique.setdefault(address.lower(), address)
        if len(unique) > MAX_RECIPIENTS:
            raise PydanticCustomError(
                "too_many",
                "at most {max} addresses (got {got}); use a mailing list",
                {"max": MAX_RECIPIENTS, "got": len(unique)},
            )
        return list(unique.values())


def _one_line(text: str) -> str:
    """Header values cannot hold newlines (Django refuses them); collapse all whitespace."""
    return " ".join(text.split())


class Email(Transport[EmailConfig]):
    name = "email"
    label = "Email"
    Config = EmailConfig

    def subject(self, message: AlertMessage) -> str:
        m = message
        return _one_line(f"[sre4ai] {HEADLINES[m.kind]} {m.severity}: {m.slo_name} ({m.service})")

    def body(self, message: AlertMessage) -> str:
        m = message
        rows = [
            ("Project", m.project),
            ("SLO", f"{m.slo_name} (#{m.slo_id})"),
            ("Service", m.service),
            ("Environment", m.environment or "all"),
            ("Objective", m.objective),
            ("Severity", m.severity),
            ("Rule", m.rule),
            ("Burn rate (long)", shown(m.burn_rate_long)),
            ("Burn rate (short)", shown(m.burn_rate_short)),
            ("Budget remaining", shown(m.budget_remaining)),
            ("Incident", f"#{m.incident_id} ({m.incident_status})"),
            ("Occurred at", utc(m.occurred_at).strftime("%Y-%m-%d %H:%M:%S UTC")),
        ]
        if m.actor:
            rows.append((f"{m.kind.capitalize()} by", m.actor))
        if m.note:
            rows.append(("Note", m.note))
        width = max(len(label) for label, _ in rows) + 2
        lines = [f"{HEADLINES[m.kind]}: {m.summary}", ""]
        lines += [f"{label + ':':<{width}}{value}" for label, value in rows]
        lines += ["", f"Open the incident: {m.incident_url}", "", f"sre4ai event {m.event_id}"]
        return "\n".join(lines) + "\n"

    def email_message(self, config: EmailConfig, message: AlertMessage) -> EmailMessage:
        host = urlsplit(message.incident_url).hostname or "sre4ai"
        thread = f"<sre4ai-{message.project}-incident-{message.incident_id}@{host}>"
        return EmailMessage(
            subject=self.subject(message),
            body=self.body(message),
            to=config.to,
            headers={
                "References": thread,
                "Auto-Submitted": "auto-generated",
                "X-Sre4ai-Event-Id": str(message.event_id),
            },
        )

    def send(self, config: EmailConfig, message: AlertMessage, *, timeout: float) -> str:
        email = self.email_message(config, message)
        email.connection = get_connection(fail_silently=False, timeout=timeout)
        try:
            email.send()
        except smtplib.SMTPNotSupportedError as exc:
            raise DeliveryError(f"mail server: {exc}; check EMAIL_USE_TLS / EMAIL_USE_SSL", retryable=False) from exc
        except smtplib.SMTPRecipientsRefused as exc:
            codes = {code for code, _ in exc.recipients.values()}
            refused = ", ".join(f"{addr} ({code} {_text(reply)})" for addr, (code, reply) in exc.recipients.items())
            raise DeliveryError(
                f"mail server refused every recipient: {refused}", retryable=any(400 <= c < 500 for c in codes)
            ) from exc
        except smtplib.SMTPResponseException as exc:
            hint = "; check EMAIL_HOST_USER / EMAIL_HOST_PASSWORD" if exc.smtp_code == 535 else ""
            raise DeliveryError(
                f"mail server answered {exc.smtp_code} {_text(exc.smtp_error)}{hint}",
                retryable=400 <= exc.smtp_code < 500,
            ) from exc
        except smtplib.SMTPServerDisconnected as exc:
            # smtplib turns a read timeout into "Connection unexpectedly closed: timed out".
            if isinstance(exc.__context__, TimeoutError):
                raise DeliveryError(f"mail server: no answer within {timeout:g} s", retryable=True) from exc
            raise DeliveryError(f"mail server: connection failed ({exc})", retryable=True) from exc
        except TimeoutError as exc:
            raise DeliveryError(f"mail server: no answer within {timeout:g} s", retryable=True) from exc
        except OSError as exc:  # refused, reset, DNS, TLS
            raise DeliveryError(
                f"mail server: connection failed ({type(exc).__name__}: {exc})", retryable=True
            ) from exc
        count = len(config.to)
        return f"sent to {count} recipient{'s' if count > 1 else ''}"


def _text(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
