"""The explicit transport registry: name → class. Adding a notification channel means adding a line here."""

from collections.abc import Mapping
from typing import Any

from accounts.vault import seal, unseal
from slos.transports.base import Transport
from slos.transports.email import Email
from slos.transports.pagerduty import PagerDuty
from slos.transports.slack import Slack
from slos.transports.webhook import Webhook

REGISTRY: dict[str, type[Transport[Any]]] = {cls.name: cls for cls in (Webhook, Slack, PagerDuty, Email)}

# Secret config fields (HMAC keys, token URLs, routing keys) are stored encrypted with accounts.vault, marked so.
SEALED_PREFIX = "sealed:"


def _secret_fields(kind: str) -> tuple[str, ...]:
    transport = REGISTRY.get(kind)
    return transport.secret_fields if transport else ()


def seal_secrets(kind: str, config: Mapping[str, Any]) -> dict[str, Any]:
    """The config as stored: the transport's secret fields encrypted."""
    secret = _secret_fields(kind)
    return {
        k: SEALED_PREFIX + seal(v)
        if k in secret and isinstance(v, str) and v and not v.startswith(SEALED_PREFIX)
        else v
        for k, v in config.items()
    }


def unseal_secrets(kind: str, config: Mapping[str, Any]) -> dict[str, Any]:
    """The config with its secrets decrypted, for the transport and the edit form; never for display. Raises
    ValueError when SECRET_KEY changed without the old key in SECRET_KEY_FALLBACKS."""
    secret = _secret_fields(kind)
    return {
        k: unseal(v.removeprefix(SEALED_PREFIX))
        if k in secret and isinstance(v, str) and v.startswith(SEALED_PREFIX)
        else v
        for k, v in config.items()
    }
