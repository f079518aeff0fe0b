"""An HTTP endpoint of the application: the probe asks the question the way a client of the app would.

The request body is a JSON template whose placeholders take the item's fields (``{{input}}``, ``{{messages}}``,
``{{input_text}}``, ``{{expected}}``, ``{{context}}``, ``{{tags}}``, ``{{item_id}}``); for GET the rendered
template's keys become query parameters. The answer is read from the JSON response at ``answer_path`` and the
retrieved documents, when ``documents_path`` is set, from there (so grounding can check the answer).

Header values that carry a secret (Authorization, API keys, tokens, cookies) must reference a project secret,
``Bearer ${APP_TOKEN}`` (Settings & keys → Secrets): a literal secret is refused when the probe is saved.
"""

from __future__ import annotations

import re
from typing import Any, Literal

import httpx
from pydantic import Field, field_validator, model_validator

from accounts import menus
from evals.probes.base import (
    ENV_REF,
    ProbeItem,
    Secrets,
    Target,
    TargetAnswer,
    TargetConfig,
    answer_text,
    check_template,
    documents_from,
    json_path_get,
    parse_path,
    render_template,
    send_json,
)
from sre4ai_web.lib.outbound import HEADER_NAME

SECRET_HEADER = re.compile(r"authorization|api[-_]?key|token|secret|cookie|password|credential", re.IGNORECASE)


class HttpEndpointConfig(TargetConfig):
    url: str = Field(max_length=2000, description="http(s) URL of the app's endpoint.")
    method: Literal["POST", "PUT", "GET"] = "POST"
    headers: dict[str, str] = Field(default_factory=dict, description=f"Secrets as ${{NAME}} ({menus.SECRETS}).")
    body_template: Any = Field(default_factory=lambda: {"input": "{{input}}"})
    answer_path: str = Field("answer", min_length=1, max_length=300)
    documents_path: str = Field("", max_length=300)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        value = value.strip()
        if not re.match(r"^https?://[^\s/]+", value):
            raise ValueError("the URL must start with http:// or https:// and name a host")
        if ENV_REF.search(value):
            raise ValueError("put secrets in a header, not in the URL")
        return value

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, str]) -> dict[str, str]:
        for name, header in value.items():
            if not HEADER_NAME.match(name):
                raise ValueError(f"{name!r} is not a valid header name")
            if SECRET_HEADER.search(name) and not ENV_REF.search(header):
                raise ValueError(
                    f"header {name} carries a secret: write it as a reference to a project secret "
                    f"({menus.SECRETS}), e.g. Bearer ${{APP_TOKEN}}, never the value itself"
                )
        return value

    @field_validator("body_template")
    @classmethod
    def _template(cls, value: Any) -> Any:
        return check_template(value)

    @field_validator("answer_path", "documents_path")
    @classmethod
    def _path(cls, value: str) -> str:
        if value:
            parse_path(value)
        return value

    @model_validator(mode="after")
    def _get_takes_a_flat_object(self) -> HttpEndpointConfig:
        template = self.body_template
        if self.method == "GET" and not (
            isinstance(template, dict) and all(isinstance(v, str | int | float) for v in template.values())
        ):
            raise ValueError(
                'GET sends the template as query parameters: make it a flat object, e.g. {"q": "{{input_text}}"}'
            )
        return self


class HttpEndpoint(Target[HttpEndpointConfig]):
    name = "http_endpoint"
    title = "HTTP endpoint of the app"
    Config = HttpEndpointConfig
    span_kind = "chain"

    def call(self, item: ProbeItem, client: httpx.Client, secrets: Secrets) -> TargetAnswer:
        config = self.config
        headers = {name: secrets.resolve(value) for name, value in config.headers.items()}
        payload = render_template(config.body_template, item.fields())
        get = config.method == "GET"
        document = send_json(
            client,
            config.method,
            config.url,
            headers=headers,
            timeout=config.timeout_seconds,
            secrets=secrets,
            body=None if get else payload,
            params=payload if get else None,
        )
        answer = answer_text(json_path_get(document, config.answer_path, "the answer"), config.answer_path)
        documents = []
        if config.documents_path:
            documents = documents_from(
                json_path_get(document, config.documents_path, "the documents"), config.documents_path
            )
        return TargetAnswer(answer=answer, request=payload, documents=documents)
