"""Every HTTP call the server makes to a URL that a user configured: probe targets, the LLM judge and the webhook,
Slack and PagerDuty channels. One client, one set of rules:

- **Internal addresses are refused.** The host is resolved here and each address checked: loopback, private,
  link-local (the cloud metadata service 169.254.169.254 among them), carrier-grade NAT, multicast, reserved and
  unspecified ranges, in IPv4 and IPv6 (an IPv4-mapped IPv6 address is judged as the IPv4 one), are refused unless
  the operator allows the host or a network containing the address in ``SRE4AI_OUTBOUND_ALLOW``. The socket is
  then opened to the address that was checked, never to a second resolution of the name (no DNS-rebinding gap);
  TLS still verifies the certificate against the host name.
- **Redirects are never followed**: the caller gets the 3xx and says so.
- **One deadline per call**, for everything from connecting to the last byte of the body: a receiver that
  trickles a byte every few seconds is cut off when it passes, not given a fresh timeout per read.
- **Bodies are capped**: at most ``max_bytes`` are read (after decompression); the rest is never downloaded.
- No proxy or certificate settings are taken from the environment (``trust_env=False``).

The check lives in the network backend under httpx, where the connection is made, so it applies to every
connection the client opens whatever the caller does.
"""

from __future__ import annotations

import contextvars
import ipaddress
import re
import socket
import time
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx
from django.conf import settings
from pydantic_core import PydanticCustomError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# 100.64.0.0/10 (carrier-grade NAT) and 64:ff9b::/96 (NAT64, which reaches any IPv4 address) are spelled out:
# whatever a Python version's is_global says about them, they lead inside.
_ALWAYS_INTERNAL = (ipaddress.ip_network("100.64.0.0/10"), ipaddress.ip_network("64:ff9b::/96"))
# The deadline of the call running in this thread; the sockets read it before every read and write.
_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar("outbound_deadline", default=None)
# A header name a user may set (an RFC 9110 token), checked by every form that takes headers for calls out.
HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
# Headers that describe the bytes on the wire, not the decoded body handed back.
_WIRE_HEADERS = ("content-encoding", "content-length", "transfer-encoding")


class OutboundError(Exception):
    """A call that got no usable answer. ``retryable``: a later try can succeed (timeout, refused, reset);
    otherwise the configuration must change (an internal address, a malformed URL). The message never repeats
    the URL, which may hold a token: callers name the peer."""

    def __init__(self, message: str, *, retryable: bool):
        super().__init__(message)
        self.retryable = retryable


def is_internal(address: IPAddress) -> bool:
    """True for any address that is not plainly on the public internet."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return (
        not address.is_global
        or address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or any(address in network for network in _ALWAYS_INTERNAL if network.version == address.version)
    )


def _allowlist() -> tuple[set[str], list[ipaddress.IPv4Network | ipaddress.IPv6Network]]:
    hosts: set[str] = set()
    networks = []
    for entry in settings.SRE4AI_OUTBOUND_ALLOW:
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            hosts.add(entry.lower().rstrip("."))
    return hosts, networks


def allowed_addresses(host: str, port: int) -> list[str]:
    """The addresses of ``host`` that may be called, in resolver order; raises OutboundError when none may."""
    allowed_hosts, allowed_networks = _allowlist()
    host_allowed = host.lower().rstrip(".") in allowed_hosts
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise OutboundError(f"cannot resolve the host {host}: {exc}", retryable=True) from None
    usable: list[str] = []
    refused: list[IPAddress] = []
    for *_, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if host_allowed or not is_internal(address) or any(address in n for n in allowed_networks):
            if str(address) not in usable:
                usable.append(str(address))
        else:
            refused.append(address)
    if not usable:
        raise OutboundError(
            f"{host} resolves to {refused[0] if refused else 'no address'}, an internal address (loopback, private, "
            "link-local or another non-public range): calls to internal addresses are refused unless the operator "
            "allows them in SRE4AI_OUTBOUND_ALLOW",
            retryable=False,
        )
    return usable


def _time_left(timeout: float | None, timeout_error: type[Exception]) -> float | None:
    """The smaller of httpx's per-operation timeout and what is left of the call's deadline."""
    deadline = _deadline.get()
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise timeout_error("the call's deadline has passed")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    """A socket whose every read and write waits at most until the call's deadline."""

    def __init__(self, inner: httpcore.NetworkStream):
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _time_left(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _time_left(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        left = _time_left(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._inner.start_tls(ssl_context, server_hostname, left))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _CheckedBackend(httpcore.NetworkBackend):
    """Resolves, checks and connects to a checked address; TLS is started by httpcore with the host name."""

    def __init__(self) -> None:
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        last: Exception | None = None
        for address in allowed_addresses(host, port):
            try:
                stream = self._inner.connect_tcp(
                    address, port, _time_left(timeout, httpcore.ConnectTimeout), local_address, socket_options
                )
            except httpcore.ConnectError as exc:  # try the host's next address
                last = exc
                continue
            return _DeadlineStream(stream)
        assert last is not None  # allowed_addresses returns at least one address
        raise last

    def connect_unix_socket(self, *args: Any, **kwargs: Any) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("outbound calls use TCP only")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class _CheckedTransport(httpx.HTTPTransport):
    def __init__(self) -> None:
        super().__init__(trust_env=False, retries=0)
        # httpx builds its pool without a way to pass a network backend: replace it by the same pool on ours.
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False), network_backend=_CheckedBackend()
        )


def client() -> httpx.Client:
    """A client for :func:`request` (keep one per job to reuse connections; close it after)."""
    return httpx.Client(
        transport=_CheckedTransport(), follow_redirects=False, trust_env=False, headers={"User-Agent": "sre4ai"}
    )


def request(
    http: httpx.Client,
    method: str,
    url: str,
    *,
    deadline: float,
    max_bytes: int | None = None,
    headers: dict[str, str] | None = None,
    json: Any = None,
    content: bytes | None = None,
    params: dict[str, Any] | None = None,
) -> tuple[httpx.Response, bool]:
    """One exchange, all of it within ``deadline`` seconds. Returns the answer (whatever its status; its body
    decoded and cut at ``max_bytes``, default SRE4AI_OUTBOUND_MAX_RESPONSE_BYTES) and whether the body was cut.
    Raises OutboundError when there is no complete answer."""
    limit = settings.SRE4AI_OUTBOUND_MAX_RESPONSE_BYTES if max_bytes is None else max_bytes
    token = _deadline.set(time.monotonic() + deadline)
    try:
        with http.stream(
            method, url, headers=headers, json=json, content=content, params=params, timeout=deadline
        ) as response:
            body = bytearray()
            cut = False
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > limit:
                    del body[limit:]
                    cut = True
                    break
            kept = [(k, v) for k, v in response.headers.multi_items() if k.lower() not in _WIRE_HEADERS]
            answer = httpx.Response(response.status_code, headers=kept, content=bytes(body), request=response.request)
            return answer, cut
    except httpx.TimeoutException:
        raise OutboundError(f"no complete answer within {deadline:g} s", retryable=True) from None
    except (httpx.UnsupportedProtocol, httpx.InvalidURL, httpx.LocalProtocolError) as exc:
        raise OutboundError(f"cannot call this URL ({type(exc).__name__}: {exc})", retryable=False) from None
    except httpx.DecodingError as exc:
        raise OutboundError(f"the answer could not be decoded ({exc})", retryable=False) from None
    except httpx.TransportError as exc:  # refused, reset, TLS, a connection closed before the answer was complete
        raise OutboundError(f"connection failed ({type(exc).__name__}: {exc})", retryable=True) from None
    finally:
        _deadline.reset(token)


def host_of(url: str) -> str:
    """The host (and port) of a URL, for messages and the audit log: its path or query may hold a token."""
    return urlsplit(url).netloc.rpartition("@")[2] or url


def check_http_url(value: str, *, what: str, https_only: bool) -> str:
    """A URL we may POST to: http(s), a host, no spaces. With ``https_only``, plain http is still accepted for
    loopback hosts (127.0.0.1, ::1, localhost) so a local test server can stand in; anything else would send
    a secret in clear text."""
    if not value:
        raise PydanticCustomError("url_missing", "{what} is required", {"what": what})
    if any(c.isspace() for c in value):
        raise PydanticCustomError("url_space", "{what} must not contain spaces", {"what": what})
    if not value.isascii():  # what is typed must be what is sent: no silent re-encoding of an accented path
        raise PydanticCustomError(
            "url_ascii",
            "{what} must be ASCII: percent-encode other characters (and use the punycode form of the host)",
            {"what": what},
        )
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https"):
        raise PydanticCustomError("url_scheme", "{what} must start with https:// or http://", {"what": what})
    try:
        host, _port = parts.hostname, parts.port  # .port raises ValueError for a port out of range
    except ValueError:
        host = None
    if not host:
        raise PydanticCustomError("url_host", "{what} has no valid host: {url}", {"what": what, "url": value})
    if https_only and parts.scheme == "http" and not _is_loopback(host):
        raise PydanticCustomError(
            "url_https", "{what} must use https:// (plain http is only accepted for localhost)", {"what": what}
        )
    return value


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
