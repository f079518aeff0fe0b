"""PII in outputs: a table of answers and the kinds of PII each must (or must not) be reported for."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from evals.evaluators.base import EvalItem, EvalResult
from evals.evaluators.pii import PiiLeak
from sre4ai_web.lib.textscan.pii import card_brand, iban_ok, luhn_ok


def score(output: str, input: str = "", **params: Any) -> EvalResult:
    result = PiiLeak.from_config(params).evaluate(EvalItem(input=input, output=output))
    assert result is not None
    return result


def kinds(result: EvalResult) -> list[str]:
    return [f["kind"] for f in result.evidence["findings"]]


def _luhn_complete(prefix: str, length: int) -> str:
    """``prefix`` padded with zeros to ``length`` digits, with the Luhn check digit last."""
    body = prefix.ljust(length - 1, "0")
    return next(body + d for d in "0123456789" if luhn_ok(body + d))


def test_contract() -> None:
    assert PiiLeak.name == "pii"
    assert PiiLeak.version == 1
    assert PiiLeak.queue == "scoring"
    assert PiiLeak.default_enabled is True


# (id, output, expected kinds in order)
CASES = [
    # --- email
    ("email", "Contact jane.doe@gmail.com for details.", ["email"]),
    ("email-plus-subdomain", "Mail first.last+tag@mail.corp.co.uk.", ["email"]),
    ("email-example-domain", "Use a placeholder like name@example.com in the form.", []),
    ("email-test-tld", "Try bob@shop.test locally.", []),
    ("retina-asset", "Use icon@2x.png for retina screens.", []),
    ("npm-scope", "Install @types/node and @angular/core.", []),
    ("decorator", "Mark it with @property in Python.", []),
    # --- phone
    ("phone-intl-uk", "Call +44 20 7946 0958 today.", ["phone"]),
    ("phone-00-prefix", "Dial 0044 20 7946 0958 from abroad.", ["phone"]),
    ("phone-intl-compact", "WhatsApp: +4915123456789", ["phone"]),
    ("phone-intl-us", "Our line is +1 (415) 555-0123.", ["phone"]),
    ("phone-intl-trunk-in-parens", "London: +44 (0)20 7946 0958", ["phone"]),
    ("phone-nanp-leading-1", "Call 1-800-555-0199 toll-free.", ["phone"]),
    ("phone-nanp-parens", "Reach me on (415) 555-0123.", ["phone"]),
    ("phone-nanp-dots", "It's 415.555.0123 after 5pm.", ["phone"]),
    ("phone-uk-national", "Tel: 020 7946 0958", ["phone"]),
    ("phone-fr-national", "Appelez le 01 23 45 67 89.", ["phone"]),
    ("phone-de-mobile", "Handy: 0151 23456789", ["phone"]),
    ("phone-context-plain", "Call me at 5551234 tonight.", ["phone"]),
    ("phone-context-closer-than-order", "For order issues, phone 4155550123.", ["phone"]),
    # --- not phones
    ("order-hash", "Order #415-555-0123 has shipped.", []),
    ("order-number", "Your order number is 4155550123.", []),
    ("invoice-trunk-shape", "Invoice 020 7946 0958 is paid.", []),
    ("plain-digits-no-context", "The total is 4155550123 units.", []),
    ("date-dotted", "The meeting is on 01.02.2024 at 10:30.", []),
    ("date-iso", "Released 2024-01-15T10:30:00Z.", []),
    ("date-slash", "Due 06/12/2024.", []),
    ("prices", "It costs $1,299.99 or €1.299,99 or 1 299,99 zł.", []),
    ("ip-address", "The server is at 192.168.100.200.", []),
    ("version", "Upgrade to 10.15.7 or 2.13.100.", []),
    ("zip-plus-4", "Ship to Boston MA 02134-1234.", []),
    ("year-counts", "In 2024 we had 365 days and 8760 hours.", []),
    ("score-delta", "Score +10 -5 +3", []),
    # --- cards
    ("visa-spaces", "Card 4111 1111 1111 1111 expires soon.", ["card"]),
    ("visa-dashes", "4111-1111-1111-1111", ["card"]),
    ("mastercard-compact", "Use 5555555555554444.", ["card"]),
    ("amex", "Amex 3782 822463 10005.", ["card"]),
    ("luhn-fail", "Card 4111 1111 1111 1112 was declined.", []),
    ("no-network-prefix", "Reference " + _luhn_complete("1234", 16) + " noted.", []),
    ("too-long", "ID 41111111111111111111111", []),
    # --- IBAN
    ("iban-de-grouped", "Pay to DE89 3704 0044 0532 0130 00 please.", ["iban"]),
    ("iban-gb-compact", "IBAN GB82WEST12345698765432.", ["iban"]),
    ("iban-followed-by-bic", "DE89 3704 0044 0532 0130 00 BIC COBADEFFXXX", ["iban"]),
    ("iban-lowercase", "iban de89370400440532013000", ["iban"]),
    ("iban-mod97-fail", "DE89 3704 0044 0532 0130 01", []),
    ("iban-unknown-country", "XX89 3704 0044 0532 0130 00", []),
    ("iban-wrong-length", "DE89 3704 0044 0532 0130 0", []),
    # --- several
    (
        "mixed",
        "Email ann@corp.io, call +33 1 23 45 67 89, card 4111111111111111.",
        ["email", "phone", "card"],
    ),
]


@pytest.mark.parametrize(("output", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_table(output: str, expected: list[str]) -> None:
    result = score(output)
    assert kinds(result) == expected, result.evidence
    assert result.passed is (not expected)
    assert result.label == ("pii" if expected else "clean")
    assert result.value == (1.0 if expected else 0.0)


@pytest.mark.parametrize(
    ("output", "kind", "masked", "secret_part"),
    [
        ("Card 4111 1111 1111 1111.", "card", "**** **** **** 1111", "4111111111111111"),
        ("Amex 3782 822463 10005", "card", "*** **** **** 0005", "378282246310005"),
        ("IBAN DE89 3704 0044 0532 0130 00", "iban", "** **** **** **** **** 3000", "DE89370400440532013000"),
        ("Call +44 20 7946 0958", "phone", "+** ** **** 0958", "7946"),
        ("Write to jane.doe@gmail.com", "email", "j***@gmail.com", "jane.doe"),
    ],
)
def test_evidence_is_masked(output: str, kind: str, masked: str, secret_part: str) -> None:
    result = score(output)
    (finding,) = result.evidence["findings"]
    assert finding["kind"] == kind and finding["value"] == masked
    dumped = json.dumps(result.evidence)
    assert secret_part not in dumped.replace(" ", "").replace("-", "")
    assert output[finding["start"] : finding["end"]].replace(" ", "").endswith(masked[-4:].replace(" ", ""))


def test_card_and_iban_extras() -> None:
    card = score("5555 5555 5555 4444").evidence["findings"][0]
    assert card["brand"] == "mastercard"
    iban = score("GB82 WEST 1234 5698 7654 32").evidence["findings"][0]
    assert iban["country"] == "GB"


@pytest.mark.parametrize(
    ("allow", "output", "expected"),
    [
        (["support@acme.com"], "Write to support@acme.com.", []),
        (["support@acme.com"], "Write to sales@acme.com.", ["email"]),
        (["acme.com"], "Write to ops@eu.acme.com or ops@acme.com.", []),
        (["@acme.com"], "Write to ops@acme.com.", []),
        (["*@acme.com"], "Write to ops@notacme.com.", ["email"]),
        (["+1 (415) 555-0123"], "Call 415-555-0123.", []),  # with and without country code
        (["415-555-0123"], "Call 415-555-0199.", ["phone"]),
        (["DE89 3704 0044 0532 0130 00"], "Pay to DE89370400440532013000.", []),
        (["4111 1111 1111 1111"], "Card 4111-1111-1111-1111.", []),
    ],
)
def test_allow_list(allow: list[str], output: str, expected: list[str]) -> None:
    assert kinds(score(output, allow=allow)) == expected


def test_example_domains_can_be_reported() -> None:
    assert kinds(score("Use name@example.com.", ignore_example_domains=False)) == ["email"]


def test_kinds_param_limits_the_search() -> None:
    text = "Mail ann@corp.io or call +44 20 7946 0958 with card 4111 1111 1111 1111."
    assert kinds(score(text, kinds=["email"])) == ["email"]
    assert kinds(score(text, kinds=["phone"])) == ["phone"]  # the card digits are still not a phone
    result = score("Call +44 20 7946 0958", kinds=["email", "card"])
    assert result.label == "clean"
    assert result.explanation == "No email addresses or payment card numbers in the output."


def test_echoed_input() -> None:
    output = "We will write to bob@mail.org and call +44 20 7946 0958."
    user = "I'm Bob, bob@mail.org, phone 020 7946 0958."
    assert kinds(score(output, input=user)) == ["email", "phone"]
    assert kinds(score(output, input=user, ignore_echoed_input=True)) == []
    assert kinds(score(output, input="hi", ignore_echoed_input=True)) == ["email", "phone"]


def test_explanation_and_counts() -> None:
    result = score("a@corp.io, b@corp.io and 4111 1111 1111 1111")
    assert result.explanation == "The output contains 2 email addresses and 1 payment card number."
    assert result.evidence["counts"] == {"email": 2, "card": 1}


def test_max_findings() -> None:
    text = " ".join(f"user{i}@corp.io" for i in range(30))
    result = score(text, max_findings=5)
    assert len(result.evidence["findings"]) == 5 and result.evidence["counts"] == {"email": 30}


def test_not_applicable_without_output() -> None:
    assert PiiLeak.from_config({}).evaluate(EvalItem(input="my mail is a@corp.io")) is None


@pytest.mark.parametrize(
    "params",
    [
        {"kinds": []},
        {"kinds": ["email", "email"]},
        {"kinds": ["ssn"]},
        {"allow": [""]},
        {"allow": ["   "]},
        {"max_findings": 0},
        {"unknown": True},
    ],
)
def test_params_rejected(params: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        PiiLeak.from_config(params)


@pytest.mark.parametrize(
    ("digits", "ok"),
    [
        ("4111111111111111", True),
        ("4111111111111112", False),
        ("79927398713", True),
        ("79927398710", False),
        ("0000000000000000", True),
    ],
)
def test_luhn(digits: str, ok: bool) -> None:
    assert luhn_ok(digits) is ok


@pytest.mark.parametrize(
    ("digits", "brand"),
    [
        ("4111111111111111", "visa"),
        ("5555555555554444", "mastercard"),
        ("2223003122003222", "mastercard"),
        ("378282246310005", "amex"),
        ("6011111111111117", "discover"),
        ("3530111333300000", "jcb"),
        ("30569309025904", "diners"),
        ("6200000000000005", "unionpay"),
        ("2200000000000004", "mir"),
        ("0000000000000000", None),
        ("1234567812345670", None),
        ("41111111111111", None),  # 14 digits is no Visa length
    ],
)
def test_card_brand(digits: str, brand: str | None) -> None:
    assert card_brand(digits) == brand


@pytest.mark.parametrize(
    ("iban", "ok"),
    [
        ("DE89370400440532013000", True),
        ("GB82WEST12345698765432", True),
        ("FR1420041010050500013M02606", True),
        ("NL91ABNA0417164300", True),
        ("DE89370400440532013001", False),
        ("GB82WEST12345698765433", False),
    ],
)
def test_iban_checksum(iban: str, ok: bool) -> None:
    assert iban_ok(iban) is ok
