"""The probe target plugin contract, and the helpers every target shares.

A target is one class in one module: a registry ``name``, a pydantic ``Config`` (stored as JSON on the probe),
and ``call(item, client, secrets) -> TargetAnswer``. A failure raises ``TargetError`` with a message that says what went
wrong (timed out, HTTP 502, not JSON, the answer path matched nothing) and whether trying again could help; the
run records it on the item and goes on with the next one.

Secrets never live in a config: a header value (or the chat target's key) names a secret, ``${NAME}``, resolved at
call time from the project's secret store (Settings & keys → Secrets) or, if the operator allowed that name, an environment
variable of the workers (accounts.selectors.secret_value). Resolved values are redacted from every error message.
Every call goes through the outbound client (sre4ai_web.lib.outbound): internal addresses refused unless allowed,
one deadline for the whole exchange, the answer capped.
"""

from __future__ import annotations

import json
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar, cast
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, Field

from accounts.selectors import SecretUnavailable, secret_value
from evals.datasets import input_text
from sre4ai_web.lib import outbound

ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
PLACEHOLDER = re.compile(r"\{\{\s*([a-z_]+)\s*\}\}")
# What a request template can use: {{input}} is the item's input as stored (text or a chat), {{messages}} always a
# chat, {{input_text}} always text (the last user message).
TEMPLATE_FIELDS = ("input", "input_text", "messages", "expected", "context", "tags", "item_id")
SNIPPET = 200  # characters of a response quoted in an error


class TargetError(Exception):
    """A target call that failed. ``retryable``: a timeout or a 5xx can pass next time; a 404 or a bad path cannot."""

    def __init__(self, message: str, *, retryable: bool):
        super().__init__(message)
        self.retryable = retryable


@dataclass(frozen=True)
class ProbeItem:
    id: int
    input: str | list[dict[str, str]]
    expected: str = ""
    context: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()

    @property
    def text(self) -> str:
        return input_text(self.input)

    @property
    def messages(self) -> list[dict[str, str]]:
        return list(self.input) if isinstance(self.input, list) else [{"role": "user", "content": self.input}]

    def fields(self) -> dict[str, Any]:
        return {
            "input": self.input,
            "input_text": self.text,
            "messages": self.messages,
            "expected": self.expected,
            "context": list(self.context),
            "tags": list(self.tags),
            "item_id": self.id,
        }


@dataclass(frozen=True)
class Document:
    id: str
    content: str
    score: float | None = None


@dataclass
class TargetAnswer:
    answer: str
    request: Any  # what was sent (recorded as the trace's input), secrets excluded
    documents: list[Document] = field(default_factory=list)
    model: str = ""
    provider: str = ""
    input_tokens: int | None = None
    output_tokens: int | None = None


class TargetConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    timeout_seconds: float = Field(30.0, gt=0, le=300, description="Per item: a slower answer is an error.")


C = TypeVar("C", bound=TargetConfig)


class Target(ABC, Generic[C]):
    name: ClassVar[str]
    title: ClassVar[str]
    Config: ClassVar[type[TargetConfig]]
    span_kind: ClassVar[str] = "chain"  # the kind of the span that records a call

    def __init__(self, config: C):
        self.config = config

    @classmethod
    def from_config(cls, data: dict[str, Any]) -> Target[Any]:
        """Build from the stored JSON; raises pydantic.ValidationError saying what is wrong."""
        return cls(cast(Any, cls.Config.model_validate(data)))

    @abstractmethod
    def call(self, item: ProbeItem, client: httpx.Client, secrets: Secrets) -> TargetAnswer:
        """Ask the target this item's question (through ``client``, from :func:`outbound.client`); raise
        TargetError on any failure."""

    def display_config(self) -> dict[str, Any]:
        """The config as shown on the probe page: secrets are references, so nothing to hide."""
        return self.config.model_dump()


# --- secrets ------------------------------------------------------------------------------------------------


class Secrets:
    """One call's view of the project's secrets: resolves ``${NAME}`` and remembers what it handed out, so that
    error messages can redact it."""

    def __init__(self, project_id: int):
        self.project_id = project_id
        self.values: list[str] = []

    def resolve(self, text: str) -> str:
        """``text`` with each ``${NAME}`` replaced by the secret's value."""

        def value(match: re.Match[str]) -> str:
            try:
                resolved = secret_value(project_id=self.project_id, name=match.group(1))
            except SecretUnavailable as exc:
                raise TargetError(str(exc), retryable=False) from None
            if resolved:
                self.values.append(resolved)
            return resolved

        return ENV_REF.sub(value, text)

    def redact(self, text: str) -> str:
        for secret in sorted(self.values, key=len, reverse=True):
            text = text.replace(secret, "[redacted]")
        return text


# --- request templates --------------------------------------------------------------------------------------


def template_names(template: Any) -> set[str]:
    if isinstance(template, str):
        return set(PLACEHOLDER.findall(template))
    if isinstance(template, dict):
        return set().union(*(template_names(k) | template_names(v) for k, v in template.items()))
    if isinstance(template, list):
        return set().union(*(template_names(v) for v in template))
    return set()


def check_template(template: Any) -> Any:
    unknown = sorted(template_names(template) - set(TEMPLATE_FIELDS))
    if unknown:
        raise ValueError(f"unknown placeholder {{{{{unknown[0]}}}}} (available: {', '.join(TEMPLATE_FIELDS)})")
    return template


def render_template(template: Any, fields: dict[str, Any]) -> Any:
    """A string that is exactly one placeholder becomes the field's JSON value (a chat stays a list); inside
    longer strings a placeholder becomes text."""
    if isinstance(template, str):
        whole = PLACEHOLDER.fullmatch(template.strip())
        if whole:
            return fields[whole.group(1)]

        def text(match: re.Match[str]) -> str:
            value = fields[match.group(1)]
            return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)

        return PLACEHOLDER.sub(text, template)
    if isinstance(template, dict):
        return {render_template(k, fields): render_template(v, fields) for k, v in template.items()}
    if isinstance(template, list):
        return [render_template(v, fields) for v in template]
    return template


# --- responses ----------------------------------------------------------------------------------------------

_STEP = re.compile(r"\.?([^.\[\]]+)|\[(\d+)\]")


def parse_path(path: str) -> list[str | int]:
    """``answer``, ``data.answer``, ``choices[0].message.content``, ``choices.0.message.content`` or the same
    with a leading ``$.``: dotted keys and list indexes. Raises ValueError on anything else."""
    rest = path.strip().removeprefix("$").removeprefix(".") if path.strip() != "$" else ""
    steps: list[str | int] = []
    pos = 0
    while pos < len(rest):
        match = _STEP.match(rest, pos)
        if not match or match.end() == pos:
            raise ValueError(
                f"cannot read the path {path!r} at {rest[pos:]!r}: use keys and [n], e.g. data.items[0].text"
            )
        key, index = match.groups()
        steps.append(int(index) if index is not None else (int(key) if key.isdigit() else key))
        pos = match.end()
    return steps


def json_path_get(document: Any, path: str, what: str) -> Any:
    node = document
    walked = "$"
    for step in parse_path(path):
        if isinstance(step, int) and isinstance(node, list):
            if step >= len(node):
                raise TargetError(
                    f"{what} path {path!r}: {walked} has {len(node)} elements, no [{step}]", retryable=False
                )
            node = node[step]
            walked += f"[{step}]"
        elif isinstance(node, dict) and str(step) in node:
            node = node[str(step)]
            walked += f".{step}"
        else:
            keys = ", ".join(list(map(str, node))[:10]) if isinstance(node, dict) else type(node).__name__
            raise TargetError(
                f"{what} path {path!r} matched nothing: no {step!r} in {walked} (it has: {keys or 'nothing'})",
                retryable=False,
            )
    return node


def answer_text(value: Any, path: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    kind = "an object" if isinstance(value, dict) else "a list" if isinstance(value, list) else repr(value)
    raise TargetError(f"the answer path {path!r} points at {kind}, not text", retryable=False)


def documents_from(value: Any, path: str) -> list[Document]:
    """Retrieved documents: a list of strings, or of objects with content / text / page_content (and id, score)."""
    if not isinstance(value, list):
        raise TargetError(f"the documents path {path!r} must point at a list", retryable=False)
    docs: list[Document] = []
    for index, entry in enumerate(value[:100]):
        if isinstance(entry, str):
            docs.append(Document(id=str(index), content=entry))
            continue
        if not isinstance(entry, dict):
            raise TargetError(f"document {index} at {path!r} is neither text nor an object", retryable=False)
        content = next((entry[k] for k in ("content", "text", "page_content") if isinstance(entry.get(k), str)), None)
        if content is None:
            raise TargetError(f"document {index} at {path!r} has no content, text or page_content", retryable=False)
        score = entry.get("score")
        docs.append(
            Document(
                id=str(entry.get("id", index)),
                content=content,
                score=float(score) if isinstance(score, int | float) else None,
            )
        )
    return docs


def send_json(
    client: httpx.Client,
    method: str,
    url: str,
    *,
    headers: dict[str, str],
    timeout: float,
    secrets: Secrets,
    body: Any = None,
    params: dict[str, Any] | None = None,
) -> Any:
    """One HTTP exchange whose answer must be JSON; every failure becomes a TargetError with a clear message."""
    try:
        response, cut = outbound.request(
            client, method, url, deadline=timeout, headers=headers, json=body, params=params
        )
    except outbound.OutboundError as exc:
        raise TargetError(secrets.redact(f"{urlsplit(url).netloc}: {exc}"), retryable=exc.retryable) from None
    snippet = secrets.redact(response.text[:SNIPPET])
    if response.status_code >= 400:
        retryable = response.status_code in (408, 429) or response.status_code >= 500
        raise TargetError(f"HTTP {response.status_code} from the target: {snippet!r}", retryable=retryable)
    if cut:
        raise TargetError(
            f"the answer is larger than {len(response.content)} bytes (the limit): {snippet!r}", retryable=False
        )
    try:
        return response.json()
    except ValueError:
        kind = response.headers.get("content-type", "no content type")
        raise TargetError(f"the response is not JSON ({kind}): {snippet!r}", retryable=False) from None
