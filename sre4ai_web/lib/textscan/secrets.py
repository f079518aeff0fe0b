"""Secret detectors: API keys, tokens, private keys and password assignments in free text.

Shared by the ``secrets`` evaluator (evals.evaluators.secrets) and the opt-in redaction at ingest
(traces.ingest.redact).

Formats current in 2026:

=========================  =====================================================================================
``aws_access_key_id``      ``AKIA`` (long-term), ``ASIA`` (STS session), ``ABIA``, ``ACCA`` + 16 upper-case chars
``aws_secret_access_key``  40 base64 chars within 200 characters of an access key id, or after an
                           ``aws_secret_access_key`` / ``SecretAccessKey`` label
``gcp_api_key``            ``AIza`` + 35 chars
``google_oauth``           ``GOCSPX-`` client secrets and ``ya29.`` access tokens
``github_token``           ``ghp_`` ``gho_`` ``ghu_`` ``ghs_`` ``ghr_`` + 36+ chars, ``github_pat_`` fine-grained tokens
``gitlab_token``           ``glpat-`` (also routable ``glpat-….01.…``), ``gldt-`` ``glrt-`` ``glptt-`` ``glft-`` …
``slack_token``            ``xoxb-`` ``xoxp-`` ``xoxa-`` ``xoxr-`` ``xoxs-`` ``xoxe-``, ``xapp-``; ``slack_webhook`` URLs
``stripe_key``             ``sk_live_`` ``rk_live_`` (severity high), ``sk_test_`` ``rk_test_`` (severity low),
                           ``whsec_`` webhook signing secrets
``openai_api_key``         ``sk-proj-`` ``sk-svcacct-`` ``sk-admin-``, legacy ``sk-…T3BlbkFJ…``, other ``sk-`` + 32+
                           alphanumerics (OpenAI-compatible providers use the same shape)
``anthropic_api_key``      ``sk-ant-api03-…``, ``sk-ant-admin01-…``, ``sk-ant-oat01-…``
``huggingface_token``      ``hf_`` + 34 letters;  ``npm_token`` ``npm_`` + 36;  ``pypi_token`` ``pypi-AgEIcHlwaS5vcmc…``
``sendgrid_key``           ``SG.`` + 22 + ``.`` + 43
``private_key``            a PEM ``-----BEGIN … PRIVATE KEY-----`` block (RSA, EC, DSA, OPENSSH, PGP, ENCRYPTED)
``jwt``                    three base64url parts whose header decodes to JSON with an ``alg``
``url_credentials``        ``scheme://user:password@host``
``password_assignment``    ``password=…``, ``"api_key": "…"``, ``DB_PASSWORD=…``, ``client_secret: …`` whose value has
                           Shannon entropy ≥ ``min_entropy`` bits per character and either two character classes
                           or 16+ characters; references (``os.environ[…]``, ``${DB_PASS}``, ``settings.KEY``), UUIDs
                           and placeholders are skipped
=========================  =====================================================================================

Examples and placeholders are reported, not failed (the documented choice): AWS's documented example key id
(it ends in ``EXAMPLE``) and secret (``…EXAMPLEKEY``), anything containing ``EXAMPLE``, the jwt.io sample
token, a PEM header with no key body, ``ghp_xxxx…``, ``sk-proj-your-key-here…``, a body of one repeated
character. They appear in the evidence with ``example: true``; when they are all that was found the label is
``example`` and the check passes. Shapes that no real key has (``sk-...``) do not match at all. UUIDs are
never secrets, not even as ``api_key=<uuid>``. The generic ``password=…`` rule misses low-entropy passwords
(``password=hunter22``, 2.75 bits per character): the price of not flagging every config example.

Evidence is masked: the format's public prefix and, for values of 20+ characters, the last four characters
(``ghp_…x9Qz``); passwords show only their length; a PEM block only its header.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class SecretHit:
    kind: str
    start: int
    end: int
    value: str  # the raw secret; used for masking and the allow-list, never stored
    masked: str
    severity: str = "high"
    example: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class _Rule:
    kind: str
    regex: re.Pattern[str]
    literals: tuple[str, ...]  # at least one must occur in the text for the regex to run
    prefix: Callable[[str], str]  # the public part of the value, shown in the mask
    severity: Callable[[str], str] = lambda _v: "high"


def _fixed(n: int) -> Callable[[str], str]:
    return lambda v: v[:n]


def _upto(sep: str, extra: int = 0) -> Callable[[str], str]:
    return lambda v: v[: v.find(sep, extra) + 1] if v.find(sep, extra) >= 0 else v[:4]


_B = r"(?<![A-Za-z0-9_-])"  # not glued to a longer token


_E = r"(?![A-Za-z0-9_-])"


_RULES: tuple[_Rule, ...] = (
    _Rule(
        "aws_access_key_id",
        re.compile(r"(?<![A-Za-z0-9])(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}(?![A-Za-z0-9])"),
        ("AKIA", "ASIA", "ABIA", "ACCA"),
        _fixed(4),
    ),
    _Rule("gcp_api_key", re.compile(_B + r"AIza[0-9A-Za-z_-]{35}" + _E), ("AIza",), _fixed(4)),
    _Rule(
        "google_oauth",
        re.compile(_B + r"(?:GOCSPX-[A-Za-z0-9_-]{28}|ya29\.[0-9A-Za-z_-]{30,})" + _E),
        ("GOCSPX-", "ya29."),
        _upto("-", 0),
    ),
    _Rule(
        "github_token",
        re.compile(_B + r"(?:gh[pousr]_[A-Za-z0-9]{36,251}|github_pat_[A-Za-z0-9_]{50,255})" + _E),
        ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
        lambda v: "github_pat_" if v.startswith("github_pat_") else v[:4],
    ),
    _Rule(
        "gitlab_token",
        re.compile(
            _B + r"gl(?:pat|dt|rt|ptt|ft|imt|agent|oas|soat|cbt|wt|ffct)-[A-Za-z0-9_-]{20,}(?:\.[A-Za-z0-9_-]+)*" + _E
        ),
        ("gl",),
        _upto("-"),
    ),
    _Rule(
        "slack_token",
        re.compile(_B + r"(?:xox[baprse]-[0-9A-Za-z-]{10,}|xapp-\d-[A-Za-z0-9-]{10,})" + _E),
        ("xox", "xapp-"),
        _upto("-"),
    ),
    _Rule(
        "slack_webhook",
        re.compile(r"https://hooks\.slack\.com/(?:services|workflows|triggers)/T[A-Z0-9]+/[A-Za-z0-9]+/[A-Za-z0-9]+"),
        ("hooks.slack.com",),
        lambda v: v[: v.find("/T") + 1] if "/T" in v else v[:30],
    ),
    _Rule(
        "stripe_key",
        re.compile(_B + r"(?:(?:sk|rk)_(?:live|test)_[0-9A-Za-z]{24,}|whsec_[A-Za-z0-9]{32,})" + _E),
        ("_live_", "_test_", "whsec_"),
        lambda v: v[: v.find("_", 3) + 1] if v.startswith(("sk_", "rk_")) else "whsec_",
        lambda v: "low" if "_test_" in v else "high",
    ),
    _Rule(
        "anthropic_api_key",
        re.compile(_B + r"sk-ant-[a-z]{2,8}\d{2}-[A-Za-z0-9_-]{32,}" + _E),
        ("sk-ant-",),
        lambda v: v[: v.find("-", 7) + 1],
    ),
    _Rule(
        "openai_api_key",
        re.compile(
            _B + r"sk-(?:(?:proj|svcacct|admin|None)-[A-Za-z0-9_-]{20,}|[A-Za-z0-9]{20}T3BlbkFJ[A-Za-z0-9]{20}|"
            r"[A-Za-z0-9]{32,})" + _E
        ),
        ("sk-",),
        lambda v: v[: v.find("-", 3) + 1] if v[3:].split("-", 1)[0] in ("proj", "svcacct", "admin", "None") else "sk-",
    ),
    _Rule("huggingface_token", re.compile(_B + r"hf_[A-Za-z]{34}" + _E), ("hf_",), _fixed(3)),
    _Rule("npm_token", re.compile(_B + r"npm_[A-Za-z0-9]{36}" + _E), ("npm_",), _fixed(4)),
    _Rule("pypi_token", re.compile(_B + r"pypi-AgEIcHlwaS5vcmc[A-Za-z0-9_-]{50,}" + _E), ("pypi-",), _fixed(5)),
    _Rule(
        "sendgrid_key",
        re.compile(r"(?<![A-Za-z0-9_.-])SG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}" + _E),
        ("SG.",),
        _fixed(3),
    ),
)


_PEM = re.compile(r"-----BEGIN ((?:[A-Z0-9]+ )*)PRIVATE KEY( BLOCK)?-----")


_PEM_BODY = re.compile(r"[A-Za-z0-9+/=]")


_JWT = re.compile(r"(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*")


_AWS_SECRET_LABELLED = re.compile(
    r"(?i:aws_?secret_?access_?key|secret_?access_?key|aws_?secret(?:_?key)?)[\"']?\s*(?:[:=]|=>)\s*[\"']?"
    r"([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])"
)


_B64_40 = re.compile(r"(?<![A-Za-z0-9/+])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])")


_URL_CREDS = re.compile(r"\b([a-z][a-z0-9+.-]{1,20}://)([^\s:/@]{1,64}):([^\s:/@]{3,128})@([^\s/@?#]+)", re.IGNORECASE)


_ASSIGNMENT = re.compile(
    r"(?<![A-Za-z0-9])(password|passwd|pwd|pass|passphrase|secret|secret[_-]?key|api[_-]?key|apikey|access[_-]?key|"
    r"access[_-]?token|auth[_-]?token|bearer[_-]?token|client[_-]?secret|private[_-]?key|token)(?![A-Za-z0-9])"
    r"[\"']?\s*(?:[:=]|=>|:=)\s*[\"'`]?([^\s\"'`,;]{8,128})",
    re.IGNORECASE,
)


_ASSIGNMENT_HINTS = ("pass", "pwd", "secret", "key", "token")


_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)


# Not a value but a reference: settings.API_KEY, DB_PASSWORD, ${PASS}, %(pw)s, {{ secret }}, getenv("X"),
# <your-key>, or a bare lower-case identifier (user_password).
_REFERENCE = re.compile(
    r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)+|[A-Z][A-Z0-9]*_[A-Z0-9_]+|[$%<{].*|.*[(\[].*|[a-z]+(?:_[a-z]+)*"
)


_PLACEHOLDER_WORDS = (
    "example",
    "xxxx",
    "****",
    "...",
    "…",
    "your",
    "here",
    "placeholder",
    "changeme",
    "change_me",
    "redacted",
    "dummy",
    "sample",
    "fake",
    "replace",
    "insert",
    "password",
    "secret",
    "todo",
    "<",
    ">",
)


_JWT_IO_SAMPLE = {"sub": "1234567890", "name": "John Doe"}


_KINDS = (
    *(r.kind for r in _RULES),
    "aws_secret_access_key",
    "private_key",
    "jwt",
    "url_credentials",
    "password_assignment",
)


SECRET_KINDS: tuple[str, ...] = tuple(dict.fromkeys(_KINDS))


def find_secrets(text: str, *, min_entropy: float = 3.0) -> list[SecretHit]:
    """Every secret-looking value in ``text``, in order of position; a value matched by a specific format is
    not reported again by the generic rules."""
    hits: list[SecretHit] = []
    for rule in _RULES:
        if not any(lit in text for lit in rule.literals):
            continue
        for m in rule.regex.finditer(text):
            value = m.group().rstrip(".")
            prefix = rule.prefix(value)
            hits.append(
                SecretHit(
                    rule.kind,
                    m.start(),
                    m.start() + len(value),
                    value,
                    _mask(value, prefix),
                    rule.severity(value),
                    _looks_example(value, prefix),
                )
            )
    if "PRIVATE KEY" in text:
        hits.extend(_pem(text))
    if "eyJ" in text:
        hits.extend(_jwts(text))
    hits.extend(_aws_secrets(text, [h for h in hits if h.kind == "aws_access_key_id"]))
    if "://" in text and "@" in text:
        hits.extend(_url_credentials(text, hits))
    lower = text.lower()
    if ("=" in text or ":" in text) and any(h in lower for h in _ASSIGNMENT_HINTS):
        hits.extend(_assignments(text, hits, min_entropy))
    hits.sort(key=lambda h: h.start)
    return hits


def _pem(text: str) -> Iterable[SecretHit]:
    for m in _PEM.finditer(text):
        end_marker = text.find("-----END", m.end())
        body = text[m.end() : end_marker if end_marker >= 0 else m.end() + 400]
        body_chars = len(_PEM_BODY.findall(body[:4000]))
        algo = (m.group(1) or "").strip()
        header = m.group()
        yield SecretHit(
            "private_key",
            m.start(),
            _pem_end(text, end_marker) if end_marker >= 0 else m.end(),
            header + body,
            header,
            "low" if "ENCRYPTED" in algo else "high",
            example=body_chars < 64 or _looks_example(body, ""),
            extra={"algorithm": algo or "PKCS#8"},
        )


def _pem_end(text: str, end_marker: int) -> int:
    close = text.find("-----", end_marker + 8)
    return close + 5 if 0 <= close < end_marker + 80 else end_marker + 8


def _jwts(text: str) -> Iterable[SecretHit]:
    for m in _JWT.finditer(text):
        value = m.group()
        header_b64, payload_b64, _signature = value.split(".", 2)
        header = _b64json(header_b64)
        if not isinstance(header, dict) or "alg" not in header:
            continue
        payload = _b64json(payload_b64)
        example = isinstance(payload, dict) and all(payload.get(k) == v for k, v in _JWT_IO_SAMPLE.items())
        alg = str(header.get("alg"))[:20]
        yield SecretHit("jwt", m.start(), m.end(), value, _mask(value, header_b64[:10]), "high", example, {"alg": alg})


def _b64json(part: str) -> Any:
    try:
        return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return None


def _aws_secrets(text: str, key_ids: list[SecretHit]) -> Iterable[SecretHit]:
    seen: set[int] = set()
    candidates: list[re.Match[str]] = []
    for k in key_ids:
        lo, hi = max(0, k.start - 200), min(len(text), k.end + 200)
        candidates.extend(_B64_40.finditer(text, lo, hi))
    if "ecret" in text or "ECRET" in text:
        candidates.extend(m for m in _AWS_SECRET_LABELLED.finditer(text))
    for m in candidates:
        start = m.start(1) if m.re is _AWS_SECRET_LABELLED else m.start()
        value = m.group(1) if m.re is _AWS_SECRET_LABELLED else m.group()
        if start in seen or not _aws_secret_shape(value):
            continue
        seen.add(start)
        yield SecretHit(
            "aws_secret_access_key",
            start,
            start + 40,
            value,
            _mask(value, ""),
            "high",
            _looks_example(value, ""),
        )


def _aws_secret_shape(value: str) -> bool:
    """Random base64: mixed case and a digit or symbol (a hex digest or an all-letter word is not)."""
    return (
        any(c.islower() for c in value)
        and any(c.isupper() for c in value)
        and any(c.isdigit() or c in "+/" for c in value)
    )


def _url_credentials(text: str, taken: list[SecretHit]) -> Iterable[SecretHit]:
    for m in _URL_CREDS.finditer(text):
        scheme, user, password, host = m.groups()
        if _overlaps(m.start(3), m.end(3), taken) or _placeholder(password):
            continue
        yield SecretHit(
            "url_credentials",
            m.start(),
            m.end(),
            password,
            f"{scheme}{user}:****@{host}",
            "high",
            False,
        )


def _assignments(text: str, taken: list[SecretHit], min_entropy: float) -> Iterable[SecretHit]:
    for m in _ASSIGNMENT.finditer(text):
        key, value = m.group(1), m.group(2).rstrip(".")
        s, e = m.start(2), m.start(2) + len(value)
        if len(value) < 8 or _overlaps(s, e, taken):
            continue
        if _UUID.fullmatch(value) or _REFERENCE.fullmatch(value) or _placeholder(value):
            continue
        classes = sum(
            (
                any(c.islower() for c in value),
                any(c.isupper() for c in value),
                any(c.isdigit() for c in value),
                any(not c.isalnum() for c in value),
            )
        )
        if shannon_entropy(value) < min_entropy or (classes < 2 and len(value) < 16):
            continue
        yield SecretHit(
            "password_assignment",
            s,
            e,
            value,
            f"{key}=******** ({len(value)} chars)",
            "high",
            False,
            {"key": key.lower()},
        )


def shannon_entropy(value: str) -> float:
    """Bits per character of the value's own character distribution."""
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in Counter(value).values()) if n else 0.0


def _looks_example(value: str, prefix: str) -> bool:
    """A documentation example or a placeholder rather than a key."""
    body = value[len(prefix) :]
    if "EXAMPLE" in value or not body:
        return True
    lower = body.lower()
    if any(w in lower for w in ("example", "your", "placeholder", "redacted", "dummy", "xxxx", "here")):
        return True
    distinct = len(set(body.replace("-", "").replace("_", "")))
    filler = sum(body.count(c) for c in "xX*0.")
    return distinct <= 3 or filler * 2 >= len(body)


def _placeholder(value: str) -> bool:
    lower = value.lower()
    return any(w in lower for w in _PLACEHOLDER_WORDS) or len(set(lower)) <= 2


def _overlaps(s: int, e: int, hits: list[SecretHit]) -> bool:
    return any(s < h.end and e > h.start for h in hits)


def _mask(value: str, prefix: str) -> str:
    tail = value[-4:] if len(value) >= 20 else ""
    return f"{prefix}…{tail}"
