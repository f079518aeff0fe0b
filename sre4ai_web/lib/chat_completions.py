"""The one OpenAI-compatible chat-completions client: the LLM judge (evals.evaluators.judge) and the openai_chat
probe target (evals.probes.openai_chat) build the request and read the reply here; the judge also sends it here
(a probe target sends through the probes' own JSON exchange, which words its errors for the probe page).

``POST {base_url}/chat/completions`` with a Bearer key, through the outbound client (sre4ai_web.lib.outbound:
internal addresses refused unless allowed, one deadline, the answer capped). Each caller words failures for its
own page (an evaluator error, a probe target error): this module returns what happened and raises nothing of its
own but the outbound client's OutboundError.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from sre4ai_web.lib import outbound


def url(base_url: str) -> str:
    return f"{base_url}/chat/completions"


def request_body(
    *, model: str, messages: list[dict[str, str]], temperature: float | None = None, max_tokens: int | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "messages": messages}
    if temperature is not None:
        body["temperature"] = temperature
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    return body


def headers(key: str | None) -> dict[str, str]:
    found = {"Content-Type": "application/json", "Accept": "application/json"}
    if key:
        found["Authorization"] = f"Bearer {key}"
    return found


def send(
    client: httpx.Client, *, base_url: str, body: dict[str, Any], key: str | None, deadline: float
) -> tuple[httpx.Response, bool]:
    """One exchange; the answer whatever its status, and whether its body was cut. Raises OutboundError when
    there is no complete answer."""
    return outbound.request(client, "POST", url(base_url), json=body, headers=headers(key), deadline=deadline)


@dataclass(frozen=True)
class ChatReply:
    text: str  # the first choice's message (content parts joined); "" when it has none
    finish_reason: str
    model: str  # the model that answered, as the endpoint names it (the one asked for when it does not)
    usage: dict[str, Any]  # as returned: prompt_tokens, completion_tokens, …

    def tokens(self, key: str) -> int | None:
        value = self.usage.get(key)
        return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def reply_of(document: Any, *, model: str) -> ChatReply | None:
    """The reply in a decoded JSON answer; None when it is not a chat completion (no choices)."""
    if not isinstance(document, dict) or not isinstance(document.get("choices"), list) or not document["choices"]:
        return None
    choice = document["choices"][0] if isinstance(document["choices"][0], dict) else {}
    message = choice.get("message") or {}
    content = message.get("content") if isinstance(message, dict) else None
    if isinstance(content, list):  # content parts
        content = "".join(part.get("text", "") for part in content if isinstance(part, dict))
    usage = document.get("usage")
    served = document.get("model")
    return ChatReply(
        text=content if isinstance(content, str) else "",
        finish_reason=str(choice.get("finish_reason") or ""),
        model=served if isinstance(served, str) and served else model,
        usage=usage if isinstance(usage, dict) else {},
    )


def error_detail(response: httpx.Response) -> str:
    """': <message>' from an OpenAI-style error body, or the start of the body."""
    try:
        data = response.json()
    except ValueError:
        data = None
    message: Any = None
    if isinstance(data, dict):
        error = data.get("error")
        message = error.get("message") if isinstance(error, dict) else error or data.get("message")
    text = str(message) if message else response.text.strip()
    return f": {text[:200]}" if text else ""


def retry_after(response: httpx.Response) -> float | None:
    """Seconds the endpoint asks to wait (Retry-After in seconds or as a date), or None."""
    value = response.headers.get("retry-after", "").strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError, IndexError):
        return None
