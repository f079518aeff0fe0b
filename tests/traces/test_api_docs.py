"""The API docs: the OpenAPI schema also documents OTLP ingest and /metrics (plain Django views) with their
authentication, content types, limits and answers; the page is in the app's frame, with local assets only."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.test import Client, override_settings

pytestmark = pytest.mark.django_db


def schema() -> dict[str, Any]:
    response = Client().get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


@override_settings(INGEST_MAX_BODY_BYTES=3 * 1024 * 1024, INGEST_MAX_SPANS_PER_REQUEST=700)
def test_otlp_endpoints_and_metrics_are_in_the_schema_with_auth_types_and_limits() -> None:
    paths = schema()["paths"]
    for path, scope in (("/v1/traces", "ingest"), ("/v1/logs", "ingest")):
        post = paths[path]["post"]
        assert set(post["requestBody"]["content"]) == {"application/x-protobuf", "application/json"}
        assert post["security"] == [{"projectKey": []}]
        assert {"200", "400", "401", "403", "413", "415", "429", "503"} <= set(post["responses"])
        text = post["description"]
        assert f"`{scope}` scope" in text and "Content-Encoding: gzip" in text
        assert "at most 3 MiB after decompression" in text and "at most 700 " in text  # this server's settings
        assert "OTEL_EXPORTER_OTLP_HEADERS=Authorization=Bearer%20" in text
    assert "resourceSpans" in paths["/v1/traces"]["post"]["requestBody"]["content"]["application/json"]["example"]
    metrics = paths["/metrics"]["get"]
    assert metrics["security"] == [{"projectKey": []}] and "`read` scope" in metrics["description"]
    assert "sre4ai_traces_total" in metrics["responses"]["200"]["content"]["text/plain"]["example"]
    assert {"401", "403"} <= set(metrics["responses"])
    assert "/api/v1/traces" in paths  # the REST API is still there


def test_the_metrics_example_names_series_the_endpoint_serves(tenant: Any) -> None:
    from slos.api import ProjectCollector

    served = {m.name for m in ProjectCollector(tenant.project).collect()}
    example = schema()["paths"]["/metrics"]["get"]["responses"]["200"]["content"]["text/plain"]["example"]
    names = {re.sub(r"_total$", "", m) for m in re.findall(r"^# TYPE (\S+)", example, re.M)}
    assert names <= served, names - served


def test_the_docs_page_links_back_uses_the_app_theme_and_local_assets() -> None:
    response = Client().get("/api/docs/")
    html = response.content.decode()
    assert response.status_code == 200
    assert '<a href="/" class="back">← Back to the app</a>' in html
    assert re.search(r'<link rel="icon" href="/static/favicon\.[0-9a-f]+\.svg"', html)
    assert re.search(r'href="/static/css/app\.[0-9a-f]+\.css"', html)
    assert re.search(r'href="/static/css/api_docs\.[0-9a-f]+\.css"', html)
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert assets and all(a.startswith(("/", "#")) for a in assets), assets  # nothing from another host
    script = Client().get("/api/docs/", {"script": ""})
    assert script.status_code == 200 and "SwaggerUIBundle" in script.content.decode()
