"""The explicit transport registry: name → class. Adding a notification channel means adding a line here."""

from typing import Any

from slos.transports.base import Transport
from slos.transports.email import Email
from slos.transports.pagerduty import PagerDuty
from slos.transports.slack import Slack
from slos.transports.webhook import Webhook

REGISTRY: dict[str, type[Transport[Any]]] = {cls.name: cls for cls in (Webhook, Slack, PagerDuty, Email)}
