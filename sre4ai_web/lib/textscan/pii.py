"""PII detectors: email addresses, phone numbers, payment card numbers and IBANs in free text.

Shared by the ``pii`` evaluator (evals.evaluators.pii) and the opt-in redaction at ingest (traces.ingest.redact).

- ``email``: an address with a dotted domain and a letter TLD. Reserved example domains (example.com/.net/.org,
  ``*.example``, ``*.test``, ``*.invalid``, ``*.localhost``, RFC 2606 / 6761) are placeholders, not PII, unless
  ``ignore_example_domains`` is off; retina asset names (``icon@2x.png``) are not addresses.
- ``phone``: international numbers (``+44 20 7946 0958``, ``0044 …``; 8 to 15 digits as E.164 allows),
  North-American numbers with separators (``(415) 555-0123``, ``415.555.0123``), national numbers with a
  trunk 0 and separators (``020 7946 0958``, ``01 23 45 67 89``, ``0151 23456789``: 9 to 12 digits), and any
  7-to-15-digit number when a phone word ("call", "phone", "tel", "mobile", "fax", "WhatsApp", …) precedes it
  more closely than an identifier word ("order", "invoice", "tracking", "account", "ticket", "ref", "#", …).
  Not phones: dates (8 digits at most, so "01.02.2024" is out), prices, times, IP addresses, ZIP+4 codes,
  order numbers ("Order #415-555-0123"), digits inside card numbers and IBANs.
- ``card``: 13 to 19 digits, optionally grouped by spaces or dashes, that pass the Luhn check *and* start
  with the prefix of a card network (Visa, Mastercard, Amex, Discover, JCB, Diners, UnionPay, Maestro, Mir).
  A number failing Luhn is not a card; about one random number in ten passes Luhn, so the network prefix keeps
  16-digit identifiers from being reported. Published test numbers (4111 1111 1111 1111) are reported like any
  other: a card number in an answer is a leak pattern whoever owns it.
- ``iban``: a country code with the registered IBAN length for that country and a valid mod-97 check, printed
  compact or in groups of four.

A hit never leaves this process with its full value: ``masked`` keeps the last 4 characters of cards, IBANs and
phone numbers, the first character and the domain of e-mail addresses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

Kind = Literal["email", "phone", "card", "iban"]


ALL_KINDS: tuple[Kind, ...] = ("email", "phone", "card", "iban")


_EMAIL = re.compile(
    r"(?<![\w.%+-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@((?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24})"
    r"(?![\w-]|\.[A-Za-z0-9])"
)


_RETINA = re.compile(r"\d+(?:\.\d+)?x\.", re.IGNORECASE)


_EXAMPLE_DOMAINS = ("example.com", "example.net", "example.org")


_EXAMPLE_TLDS = ("example", "test", "invalid", "localhost")


_CARD = re.compile(r"(?<![\d.,/-])\d{4}(?:[ -]?\d{2,6}){1,4}(?![\d/]|[.,-]\d)")


IBAN = re.compile(r"(?<![A-Za-z0-9])[A-Za-z]{2}\d{2}(?:[ -]?[A-Za-z0-9]){10,32}")


_IBAN_SHAPE = re.compile(r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?:[ -]?[A-Z0-9]{4})+(?:[ -]?[A-Z0-9]{1,3})?(?![A-Za-z0-9])")


# Possessive quantifiers: digit groups split only at separators, so a long digit run cannot backtrack.
_PHONE_INTL = re.compile(
    r"(?<![\w+])(?:\+|(?<!\d)00)[1-9]\d*+(?:[ .-]?\(\d{1,4}\)[ .-]?\d++)?(?:[ .-]\d++){0,6}+(?![\w-]|[.,]\d)"
)


_PHONE_NANP = re.compile(
    r"(?<![\w+.,/-])(?:1[ .-])?(?:\([2-9]\d{2}\)[ .-]?|[2-9]\d{2}[ .-])[2-9]\d{2}[ .-]\d{4}(?![\w-]|[.,]\d)"
)


_PHONE_TRUNK = re.compile(r"(?<![\w+.,/-])\(?0\d{1,4}\)?(?:[ /.-]|\)\s?)\d{2,4}(?:[ .-]?\d{2,4}){1,3}(?![\w-]|[.,]\d)")


_PHONE_CONTEXT = re.compile(r"(?<![\w+.,/-])\(?\d[\d ().-]{5,18}\d(?![\w-]|[.,]\d)")


_ZIP4 = re.compile(r"\d{5}-\d{4}")


_PHONE_WORDS = re.compile(
    r"\b(?:phone|telephone|tel|mobile|cell|cellphone|call|calling|fax|whats\s?app|sms|text\s+(?:me|us)|hotline|"
    r"dial|ring|reach\s+(?:me|us|him|her|them)|contact\s+number|telefon|t[ée]l[ée]phone|handy)\b",
    re.IGNORECASE,
)


_ID_WORDS = re.compile(
    r"\b(?:order|invoice|ref|reference|tracking|account|acct|ticket|case|serial|sku|isbn|iban|confirmation|booking|"
    r"transaction|receipt|id|nr|number\s+of|customer\s+(?:id|number)|policy|claim|member|zip|postcode)\b|\bno\.|#",
    re.IGNORECASE,
)


_CONTEXT_WINDOW = 30


# ISO 13616 registry: IBAN length per country.
IBAN_LENGTHS = {
    "AD": 24,
    "AE": 23,
    "AL": 28,
    "AT": 20,
    "AZ": 28,
    "BA": 20,
    "BE": 16,
    "BG": 22,
    "BH": 22,
    "BI": 27,
    "BR": 29,
    "BY": 28,
    "CH": 21,
    "CR": 22,
    "CY": 28,
    "CZ": 24,
    "DE": 22,
    "DJ": 27,
    "DK": 18,
    "DO": 28,
    "EE": 20,
    "EG": 29,
    "ES": 24,
    "FI": 18,
    "FK": 18,
    "FO": 18,
    "FR": 27,
    "GB": 22,
    "GE": 22,
    "GI": 23,
    "GL": 18,
    "GR": 27,
    "GT": 28,
    "HR": 21,
    "HU": 28,
    "IE": 22,
    "IL": 23,
    "IQ": 23,
    "IS": 26,
    "IT": 27,
    "JO": 30,
    "KW": 30,
    "KZ": 20,
    "LB": 28,
    "LC": 32,
    "LI": 21,
    "LT": 20,
    "LU": 20,
    "LV": 21,
    "LY": 25,
    "MC": 27,
    "MD": 24,
    "ME": 22,
    "MK": 19,
    "MN": 20,
    "MR": 27,
    "MT": 31,
    "MU": 30,
    "NI": 28,
    "NL": 18,
    "NO": 15,
    "OM": 23,
    "PK": 24,
    "PL": 28,
    "PS": 29,
    "PT": 25,
    "QA": 29,
    "RO": 24,
    "RS": 22,
    "RU": 33,
    "SA": 24,
    "SC": 31,
    "SD": 18,
    "SE": 24,
    "SI": 19,
    "SK": 24,
    "SM": 27,
    "SO": 23,
    "ST": 25,
    "SV": 28,
    "TL": 23,
    "TN": 24,
    "TR": 26,
    "UA": 29,
    "VA": 22,
    "VG": 24,
    "XK": 20,
    "YE": 30,
}


# What ingest redaction leaves in place of a value (traces.ingest.redact writes it, evaluate() counts it).
REDACTION_MARKER = "[REDACTED:{kind}]"


@dataclass
class PiiHit:
    kind: str
    start: int
    end: int
    key: str  # normalised value, for the allow-list and echo checks; never stored
    masked: str
    extra: dict[str, str]

    def as_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "value": self.masked, "start": self.start, "end": self.end, **self.extra}


def find_pii(text: str, kinds: frozenset[str], ignore_example_domains: bool = True) -> list[PiiHit]:
    """Every PII value in ``text``, in order of position; cards and IBANs win over phone numbers they overlap."""
    hits: list[PiiHit] = []
    if "email" in kinds and "@" in text:
        hits.extend(_emails(text, ignore_example_domains))
    has_digits = _ANY_DIGIT.search(text) is not None
    taken: list[tuple[int, int]] = []
    if has_digits and "card" in kinds:
        for h in _cards(text):
            hits.append(h)
            taken.append((h.start, h.end))
    if has_digits and "iban" in kinds:
        for h in _ibans(text):
            hits.append(h)
            taken.append((h.start, h.end))
    if has_digits and "phone" in kinds:
        if "card" not in kinds:
            taken.extend((h.start, h.end) for h in _cards(text))
        # Digits inside anything shaped like an IBAN, valid or not, are not a phone number.
        taken.extend((m.start(), m.end()) for m in _IBAN_SHAPE.finditer(text))
        taken.extend((h.start, h.end) for h in hits if h.kind == "email")
        hits.extend(_phones(text, taken))
    hits.sort(key=lambda h: h.start)
    return hits


_ANY_DIGIT = re.compile(r"\d")


def _emails(text: str, ignore_example_domains: bool) -> list[PiiHit]:
    out = []
    for m in _EMAIL.finditer(text):
        domain = m.group(1).lower()
        if _RETINA.match(domain):
            continue
        if ignore_example_domains and (
            domain in _EXAMPLE_DOMAINS
            or domain.endswith(tuple("." + d for d in _EXAMPLE_DOMAINS))
            or domain.rsplit(".", 1)[-1] in _EXAMPLE_TLDS
        ):
            continue
        value = m.group()
        local = value.split("@", 1)[0]
        out.append(PiiHit("email", m.start(), m.end(), value.lower(), f"{local[0]}***@{domain}", {}))
    return out


def _cards(text: str) -> list[PiiHit]:
    out = []
    for m in _CARD.finditer(text):
        digits = re.sub(r"[ -]", "", m.group())
        if not 13 <= len(digits) <= 19 or not luhn_ok(digits):
            continue
        brand = card_brand(digits)
        if brand is None:
            continue
        out.append(PiiHit("card", m.start(), m.end(), digits, _mask_grouped(digits), {"brand": brand}))
    return out


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def card_brand(digits: str) -> str | None:
    """The card network by IIN prefix and length, or None when no network issues such a number."""
    n = len(digits)
    p2, p3, p4, p6 = int(digits[:2]), int(digits[:3]), int(digits[:4]), int(digits[:6])
    if digits[0] == "4" and n in (13, 16, 19):
        return "visa"
    if (51 <= p2 <= 55 or 2221 <= p4 <= 2720) and n == 16:
        return "mastercard"
    if p2 in (34, 37) and n == 15:
        return "amex"
    if 2200 <= p4 <= 2204 and 16 <= n <= 19:
        return "mir"
    if (p4 == 6011 or 644 <= p3 <= 649 or p2 == 65 or 622126 <= p6 <= 622925) and 16 <= n <= 19:
        return "discover"
    if 3528 <= p4 <= 3589 and 16 <= n <= 19:
        return "jcb"
    if (300 <= p3 <= 305 or p2 in (36, 38, 39)) and 14 <= n <= 19:
        return "diners"
    if p2 == 62 and 16 <= n <= 19:
        return "unionpay"
    if (p2 == 50 or 56 <= p2 <= 69) and 13 <= n <= 19:
        return "maestro"
    return None


def _ibans(text: str) -> list[PiiHit]:
    out = []
    for m in IBAN.finditer(text):
        country = m.group()[:2].upper()
        length = IBAN_LENGTHS.get(country)
        if length is None:
            continue
        raw = m.group()
        compact, end = [], m.start()
        for i, ch in enumerate(raw):
            if ch.isalnum():
                compact.append(ch.upper())
                if len(compact) == length:
                    end = m.start() + i + 1
                    break
        if len(compact) < length or (end < len(text) and text[end].isalnum()):
            continue
        iban = "".join(compact)
        if not iban_ok(iban):
            continue
        out.append(PiiHit("iban", m.start(), end, iban, _mask_grouped(iban), {"country": country}))
    return out


def iban_ok(iban: str) -> bool:
    """ISO 7064 mod-97-10 on an upper-case compact IBAN."""
    rearranged = iban[4:] + iban[:4]
    try:
        number = int("".join(str(int(c, 36)) for c in rearranged))
    except ValueError:
        return False
    return number % 97 == 1


def _phones(text: str, taken: list[tuple[int, int]]) -> list[PiiHit]:
    out: list[PiiHit] = []
    spans: list[tuple[int, int]] = list(taken)

    def free(s: int, e: int) -> bool:
        return all(e <= a or s >= b for a, b in spans)

    for regex, lo, hi, needs_context in (
        (_PHONE_INTL, 8, 15, False),
        (_PHONE_NANP, 10, 11, False),
        (_PHONE_TRUNK, 9, 12, False),
        (_PHONE_CONTEXT, 7, 15, True),
    ):
        for m in regex.finditer(text):
            s, e = m.start(), m.end()
            value = m.group()
            digits = re.sub(r"\D", "", value)
            if not lo <= len(digits) <= hi or not free(s, e) or _ZIP4.fullmatch(value):
                continue
            context = _context_kind(text, s)
            if context == "id" or (needs_context and context != "phone"):
                continue
            spans.append((s, e))
            out.append(PiiHit("phone", s, e, digits, _mask_digits(value), {}))
    return out


def _context_kind(text: str, start: int) -> str | None:
    """Which word stands closest before a number: a phone word, an identifier word, or neither."""
    window = text[max(0, start - _CONTEXT_WINDOW) : start]
    phone = max((m.end() for m in _PHONE_WORDS.finditer(window)), default=-1)
    ident = max((m.end() for m in _ID_WORDS.finditer(window)), default=-1)
    if phone < 0 and ident < 0:
        return None
    return "phone" if phone > ident else "id"


def same_phone(a: str, b: str) -> bool:
    """The same number written with or without country code: '+44 20 7946 0958' and '020 7946 0958'."""
    a, b = a.lstrip("0"), b.lstrip("0")  # international 00 prefix, national trunk 0
    if a == b:
        return True
    short, long_ = sorted((a, b), key=len)
    return len(short) >= 7 and long_.endswith(short)


def phone_in(digits: str, keys: set[str]) -> bool:
    return any(same_phone(digits, k) for k in keys if k.isdigit())


def _mask_grouped(compact: str) -> str:
    """All but the last four characters masked, in groups of four counted from the end: '*** **** **** 0005'."""
    masked = "*" * (len(compact) - 4) + compact[-4:]
    head = len(masked) % 4
    groups = ([masked[:head]] if head else []) + [masked[i : i + 4] for i in range(head, len(masked), 4)]
    return " ".join(groups)


def _mask_digits(value: str) -> str:
    """Every digit but the last four replaced by *, separators kept: '+** ** **** 0958'."""
    total = sum(c.isdigit() for c in value)
    out, seen = [], 0
    for c in value:
        if c.isdigit():
            seen += 1
            out.append(c if seen > total - 4 else "*")
        else:
            out.append(c)
    return "".join(out)
