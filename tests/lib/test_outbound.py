"""The outbound client every user-configured call goes through: internal addresses refused unless allowed, one
deadline for the whole call, bodies capped, redirects not followed, a cut-off answer is a failure. Real local
servers throughout."""

from __future__ import annotations

import ipaddress
import logging
import socket
import time
from typing import Any

import pytest

from sre4ai_web.lib import outbound
from tests.receiver import Receiver, raw_server, trickle

INTERNAL = [
    "127.0.0.1", "127.8.9.10", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0",
    "224.0.0.251", "255.255.255.255", "::1", "::", "fe80::1", "fc00::1", "fd12::1", "::ffff:127.0.0.1",
    "::ffff:169.254.169.254", "::ffff:10.0.0.1", "64:ff9b::a9fe:a9fe", "ff02::1",
]  # fmt: skip
PUBLIC = ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8"]


@pytest.mark.parametrize("address", INTERNAL)
def test_internal_addresses_are_internal(address: str) -> None:
    assert outbound.is_internal(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_are_not(address: str) -> None:
    assert not outbound.is_internal(ipaddress.ip_address(address))


def call(url: str, **kwargs: Any) -> Any:
    with outbound.client() as http:
        return outbound.request(http, "POST", url, deadline=kwargs.pop("deadline", 5), json={"a": 1}, **kwargs)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_loopback_is_refused_unless_the_operator_allows_it(receiver: Receiver, settings: Any, host: str) -> None:
    url = receiver.url.replace("127.0.0.1", host)
    settings.SRE4AI_OUTBOUND_ALLOW = []
    with pytest.raises(outbound.OutboundError, match="internal address") as refused:
        call(url)
    assert not refused.value.retryable
    assert receiver.requests == []  # refused before connecting

    settings.SRE4AI_OUTBOUND_ALLOW = ["127.0.0.0/8"]  # a network
    assert call(url)[0].status_code == 200
    settings.SRE4AI_OUTBOUND_ALLOW = [host.upper()]  # or the host name (the IP for 127.0.0.1)
    assert call(url)[0].status_code == 200
    assert len(receiver.requests) == 2


def test_the_checked_address_is_the_one_connected(receiver: Receiver, settings: Any, monkeypatch: Any) -> None:
    """A name that resolves differently on a second lookup (DNS rebinding) cannot slip through: the check and the
    connection use the same lookup."""
    settings.SRE4AI_OUTBOUND_ALLOW = []
    real = socket.getaddrinfo
    answers = iter(["93.184.216.34", "127.0.0.1"])  # public when checked, loopback if looked up again

    def rebinding(host: str, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "rebind.example":
            return real(next(answers), port, *args, **kwargs)
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    port = receiver.url.rsplit(":", 1)[1]
    with pytest.raises(outbound.OutboundError):
        call(f"http://rebind.example:{port}/", deadline=2)  # connects to 93.184.216.34 (no network here): fails
    assert receiver.requests == []


def test_a_trickling_receiver_is_cut_off_at_the_deadline() -> None:
    # A byte every 2 s: each read alone would be well within any per-read timeout.
    with raw_server(trickle(2.0)) as url:
        began = time.monotonic()
        with pytest.raises(outbound.OutboundError, match=r"no complete answer within 3 s") as cut:
            call(url, deadline=3)
    assert cut.value.retryable
    assert 2.9 < time.monotonic() - began < 4.0


def test_a_trickling_body_is_cut_off_at_the_deadline() -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 1000\r\n\r\n"
    with raw_server(trickle(1.0, head)) as url:
        began = time.monotonic()
        with pytest.raises(outbound.OutboundError, match="no complete answer"):
            call(url, deadline=2.5)
    assert time.monotonic() - began < 3.5


def test_bodies_are_capped(receiver: Receiver) -> None:
    receiver.body = b"x" * 5_000_000
    response, cut = call(receiver.url, max_bytes=1000)
    assert (response.status_code, len(response.content), cut) == (200, 1000, True)
    receiver.body = b"small"
    response, cut = call(receiver.url, max_bytes=1000)
    assert (response.content, cut) == (b"small", False)


def test_a_connection_dropped_mid_headers_is_a_retryable_failure() -> None:
    def half_a_head(conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/pl")

    with raw_server(half_a_head) as url, pytest.raises(outbound.OutboundError, match="connection failed") as failed:
        call(url)
    assert failed.value.retryable


def test_redirects_are_not_followed(receiver: Receiver) -> None:
    def redirect(conn: socket.socket) -> None:
        conn.sendall(f"HTTP/1.1 302 Found\r\nLocation: {receiver.url}/\r\nContent-Length: 0\r\n\r\n".encode())

    with raw_server(redirect) as url:
        response, _ = call(url)
    assert (response.status_code, response.headers["location"]) == (302, f"{receiver.url}/")
    assert receiver.requests == []


def test_urls_are_not_logged(receiver: Receiver, caplog: Any) -> None:
    """A Slack webhook URL is its token: httpx's request log (full URL, at INFO) stays off."""
    caplog.set_level(logging.INFO)
    call(f"{receiver.url}/services/T000/B000/token-in-the-path")
    assert len(receiver.requests) == 1
    assert "token-in-the-path" not in caplog.text
