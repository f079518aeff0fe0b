"""Probe targets: the explicit registry, name → class. Adding a target means adding a line here."""

from typing import Any

from evals.probes.base import Target
from evals.probes.http_endpoint import HttpEndpoint
from evals.probes.openai_chat import OpenAIChat

TARGETS: dict[str, type[Target[Any]]] = {cls.name: cls for cls in (HttpEndpoint, OpenAIChat)}
