"""Messages that send people somewhere ("create a key under Settings & keys → Create API key") name entries that
exist: each path of accounts.menus is followed through the rendered pages, menu entry then link or button."""

from __future__ import annotations

from html import unescape
from html.parser import HTMLParser

import pytest
from django.test import Client

from accounts import menus
from tests.conftest import PASSWORD, Tenant

pytestmark = pytest.mark.django_db


class Clickables(HTMLParser):
    """Text and target of every link and button of a page (the header's menu entries under ``nav``)."""

    def __init__(self) -> None:
        super().__init__()
        self.items: list[tuple[str, str, bool]] = []  # (text, href, inside the header's nav)
        self._open: list[tuple[str, str]] = []
        self._nav = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "nav":
            self._nav += 1
        if tag in ("a", "button"):
            self._open.append((tag, dict(attrs).get("href") or ""))
            self._text: list[str] = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "nav":
            self._nav -= 1
        if tag in ("a", "button") and self._open:
            _, href = self._open.pop()
            self.items.append((" ".join("".join(self._text).split()), href, self._nav > 0))

    def handle_data(self, data: str) -> None:
        if self._open:
            self._text.append(data)


def clickables(client: Client, url: str) -> list[tuple[str, str, bool]]:
    response = client.get(url)
    assert response.status_code == 200, url
    parser = Clickables()
    parser.feed(response.content.decode())
    return parser.items


@pytest.mark.parametrize("path", menus.ALL)
def test_each_menu_path_in_messages_leads_somewhere(tenant: Tenant, path: str) -> None:
    client = Client()
    assert client.login(username="alice", password=PASSWORD)  # an admin: every button is there
    entry, target = (unescape(part.strip()) for part in path.split("→"))
    menu = [(text, href) for text, href, in_nav in clickables(client, "/p/acme/traces/") if in_nav]
    hrefs = [href for text, href in menu if text == entry]
    assert hrefs, f"{entry!r} is not a menu entry: {[text for text, _ in menu]}"
    on_page = [text for text, _, _ in clickables(client, hrefs[0])]
    assert any(text.startswith(target) for text in on_page), f"no {target!r} on {entry}: {on_page}"


def test_api_errors_name_the_menu_where_keys_are_made(tenant: Tenant) -> None:
    missing = Client().get("/api/v1/traces")
    assert missing.status_code == 401 and menus.CREATE_API_KEY in missing.json()["error"]
    ingest_only = tenant.secret
    tenant.api_key.scopes = ["ingest"]
    tenant.api_key.save()
    lacking = Client(headers={"Authorization": f"Bearer {ingest_only}"}).get("/api/v1/traces")
    assert lacking.status_code == 403 and menus.CREATE_API_KEY in lacking.json()["error"]
    metrics = Client(headers={"Authorization": f"Bearer {ingest_only}"}).get("/metrics")
    assert metrics.status_code == 403 and menus.CREATE_API_KEY in metrics.content.decode()
