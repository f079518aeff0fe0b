"""An OpenAI-compatible chat-completions endpoint (OpenAI, vLLM, Ollama, LiteLLM, ...): a model and a system
prompt probed directly, without the app around them.

The messages are the system prompt, the item's context documents (when ``include_context``) and the item's
input (a chat as is, or text as one user message). The key is the project secret named by ``api_key_env``
(Settings & keys → Secrets; or an environment variable the operator allowed), read at call time; it is never stored in
the probe. Tokens and the model from the response are recorded on the
trace, so its cost is computed with the price table like any ingested LLM call.
"""

from __future__ import annotations

import re

import httpx
from pydantic import Field, field_validator

from evals.probes.base import (
    Document,
    ProbeItem,
    Secrets,
    Target,
    TargetAnswer,
    TargetConfig,
    TargetError,
    send_json,
)
from sre4ai_web.lib import chat_completions


class OpenAIChatConfig(TargetConfig):
    base_url: str = Field(max_length=2000, description="Up to /v1, e.g. https://api.openai.com/v1.")
    model: str = Field(min_length=1, max_length=200)
    system_prompt: str = Field("", max_length=20_000)
    api_key_env: str = Field("", max_length=100, description="Name of the project secret holding the key.")
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    max_tokens: int | None = Field(None, ge=1, le=100_000)
    include_context: bool = Field(True, description="Send the item's context documents in the system message.")

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if not re.match(r"^https?://[^\s/]+", value):
            raise ValueError("the base URL must start with http:// or https:// and name a host")
        return value

    @field_validator("api_key_env")
    @classmethod
    def _env_name(cls, value: str) -> str:
        value = value.strip().removeprefix("${").removesuffix("}")
        if value and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value):
            raise ValueError("give the name of a project secret (e.g. OPENAI_API_KEY), not the key itself")
        return value


class OpenAIChat(Target[OpenAIChatConfig]):
    name = "openai_chat"
    title = "OpenAI-compatible chat completions"
    Config = OpenAIChatConfig
    span_kind = "llm"

    def messages(self, item: ProbeItem) -> list[dict[str, str]]:
        system = self.config.system_prompt
        if self.config.include_context and item.context:
            documents = "\n\n".join(f"[{i + 1}] {doc}" for i, doc in enumerate(item.context))
            system = f"{system}\n\nContext:\n{documents}".strip()
        return ([{"role": "system", "content": system}] if system else []) + item.messages

    def call(self, item: ProbeItem, client: httpx.Client, secrets: Secrets) -> TargetAnswer:
        config = self.config
        key = secrets.resolve("${" + config.api_key_env + "}") if config.api_key_env else None
        body = chat_completions.request_body(
            model=config.model,
            messages=self.messages(item),
            temperature=config.temperature,
            max_tokens=config.max_tokens,
        )
        document = send_json(
            client,
            "POST",
            chat_completions.url(config.base_url),
            headers=chat_completions.headers(key),
            body=body,
            timeout=config.timeout_seconds,
            secrets=secrets,
        )
        reply = chat_completions.reply_of(document, model=config.model)
        if reply is None:
            raise TargetError("the target did not return a chat completion (no choices)", retryable=False)
        if not reply.text.strip() and reply.finish_reason == "content_filter":
            raise TargetError("the model returned no answer (finish_reason content_filter)", retryable=False)
        return TargetAnswer(
            answer=reply.text,
            request=body["messages"],
            documents=[Document(id=f"context:{i}", content=doc) for i, doc in enumerate(item.context)],
            model=reply.model,
            provider="openai",
            input_tokens=reply.tokens("prompt_tokens"),
            output_tokens=reply.tokens("completion_tokens"),
        )
