"""Reference correctness: one table per mode, tricky cases included, plus params validation."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from evals.evaluators.base import EvalItem, EvaluatorError
from evals.evaluators.reference import ReferenceCorrectness, extract_numbers, normalise


def score(mode: str, output: str, expected: str | None, **params: Any):
    return ReferenceCorrectness.from_config({"mode": mode, **params}).evaluate(
        EvalItem(input="q", output=output, expected=expected)
    )


def test_contract() -> None:
    assert ReferenceCorrectness.name == "reference"
    assert ReferenceCorrectness.version == 2
    assert ReferenceCorrectness.queue == "scoring"
    assert ReferenceCorrectness.default_enabled is True
    assert ReferenceCorrectness.from_config(None).params.mode == "normalised"


@pytest.mark.parametrize("mode", ["exact", "normalised", "fuzzy", "numeric", "regex", "json_schema"])
def test_not_applicable_without_expected(mode: str) -> None:
    assert score(mode, "anything 42 {}", None) is None


@pytest.mark.parametrize(
    ("output", "expected", "params", "passed"),
    [
        ("Paris", "Paris", {}, True),
        ("  Paris\n", "Paris", {}, True),  # surrounding whitespace ignored by default
        ("  Paris\n", "Paris", {"strip": False}, False),
        ("Paris.", "Paris", {}, False),  # exact means exact: punctuation counts
        ("paris", "Paris", {}, False),
        ("", "", {}, True),
        ("", "Paris", {}, False),
    ],
)
def test_exact(output: str, expected: str, params: dict[str, Any], passed: bool) -> None:
    result = score("exact", output, expected, **params)
    assert result is not None
    assert result.passed is passed
    assert result.value == (1.0 if passed else 0.0)
    assert result.label == ("correct" if passed else "incorrect")
    assert result.evidence["mode"] == "exact"


@pytest.mark.parametrize(
    ("output", "expected", "params", "passed"),
    [
        ("The Eiffel Tower!", "eiffel tower", {}, True),  # case, punctuation, article
        ("An   apple,\n a day", "apple day", {}, True),  # whitespace collapsed, "an" and "a" dropped
        ("PARIS", "Paris", {}, True),
        ("It costs $1,299.00", "it costs 1299", {}, True),  # currency, separators, trailing zeros
        ("3.50 EUR", "3.5 eur", {}, True),
        ("14 days", "fourteen days", {}, True),  # English number words become digits
        ("21 items", "twenty-one items", {}, True),
        ("105", "one hundred and five", {}, True),
        ("14 days", "fourteen days", {"number_words": False}, False),
        ("14 jours", "quatorze jours", {}, False),  # only English number words are converted
        ("30 days", "31 days", {}, False),  # one digit differs
        ("-5 degrees", "5 degrees", {}, False),  # the sign is kept
        ("−5 degrees", "-5 degrees", {}, True),  # Unicode minus sign
        ("not available", "available", {}, False),  # negation is content
        ("Théâtre", "théâtre", {}, True),
        ("there", "the", {}, False),  # articles are whole words only
        ("", "", {}, True),
    ],
)
def test_normalised(output: str, expected: str, params: dict[str, Any], passed: bool) -> None:
    result = score("normalised", output, expected, **params)
    assert result is not None
    assert result.passed is passed, result.explanation
    assert result.value == (1.0 if passed else 0.0)
    assert set(result.evidence) == {"mode", "expected_normalised", "output_normalised"}


def test_normalised_accepts_american_spelling() -> None:
    assert ReferenceCorrectness.from_config({"mode": "normalized"}).params.mode == "normalised"


@pytest.mark.parametrize(
    ("text", "normalised"),
    [
        ("The Eiffel Tower!", "eiffel tower"),
        ("$1,299.00", "1299"),
        ("two thousand twenty-four", "2024"),
        ("one two three", "1 2 3"),  # units do not chain
        ("twenty twenty", "20 20"),
        ("one hundred and five apples and pears", "105 apples and pears"),
        ("five and six", "5 and 6"),  # "and" joins only after hundred/thousand
        ("1e3", "1000"),
        ("5-10 days", "5 10 days"),  # a range, not minus ten
        ("COVID-19", "covid 19"),
        ("(-3)", "-3"),
        ("v2", "v2"),  # letters glued before digits: not a number
        ("don’t", "don t"),  # typographic apostrophe treated like a plain one
    ],
)
def test_normalise_helper(text: str, normalised: str) -> None:
    assert normalise(text) == normalised


@pytest.mark.parametrize(
    ("output", "expected", "params", "passed", "ratio_at_least"),
    [
        ("The refund window is 30 days", "The refund window is 30 days.", {}, True, 1.0),
        ("The refund windw is 30 days", "The refund window is 30 days.", {}, True, 0.95),  # typo
        ("Refund window: 30 days", "The refund window is 30 days.", {}, True, 0.85),
        # One digit: the ratio stays high, the number guard fails it...
        ("The refund window is 31 days.", "The refund window is 30 days.", {}, False, 0.9),
        # ...and without the guard the ratio alone passes it.
        (
            "The refund window is 31 days.",
            "The refund window is 30 days.",
            {"fuzzy_require_same_numbers": False},
            True,
            0.9,
        ),
        ("Shipping is free worldwide.", "The refund window is 30 days.", {}, False, 0.0),
        ("fourteen days", "14 days", {}, True, 1.0),
        ("The refund window is 30 days", "The refund window is 30 days.", {"fuzzy_threshold": 1.0}, True, 1.0),
        ("The refund windw is 30 days", "The refund window is 30 days.", {"fuzzy_threshold": 1.0}, False, 0.9),
    ],
)
def test_fuzzy(output: str, expected: str, params: dict[str, Any], passed: bool, ratio_at_least: float) -> None:
    result = score("fuzzy", output, expected, **params)
    assert result is not None
    assert result.passed is passed, result.explanation
    assert result.value is not None
    assert ratio_at_least <= result.value <= 1.0
    assert result.evidence["ratio"] == result.value
    if passed:
        assert result.value >= result.evidence["threshold"]


def test_fuzzy_number_guard_is_explained() -> None:
    result = score("fuzzy", "The refund window is 31 days.", "The refund window is 30 days.")
    assert result is not None
    assert result.evidence["expected_numbers"] == ["30"]
    assert result.evidence["output_numbers"] == ["31"]
    assert "31" in result.explanation and "30" in result.explanation


@pytest.mark.parametrize(
    ("output", "expected", "params", "passed", "value"),
    [
        ("It costs $1,299.00.", "1299", {}, True, 1.0),
        ("It costs 1299 dollars", "$1,299.00", {}, True, 1.0),
        ("It costs $1,289.00.", "1299", {}, False, 0.0),  # one digit differs
        ("It costs $12,990.", "1299", {}, False, 0.0),
        ("The window is fourteen days.", "14 days", {}, True, 1.0),
        ("The window is fourteen days.", "14 days", {"number_words": False}, False, 0.0),
        ("The low was -5 °C.", "-5", {}, True, 1.0),
        ("The low was 5 °C.", "-5", {}, False, 0.0),  # sign matters
        ("The low was −5 °C.", "-5", {}, True, 1.0),  # Unicode minus
        ("Between 5-10 days", "-10", {}, False, 0.0),  # a range end is not a negative number
        ("0.1 + 0.2 = 0.3", "0.3", {}, True, 1.0),  # decimal, not float, comparison
        ("pi is about 3.14159", "3.14", {}, False, 0.0),
        ("pi is about 3.14159", "3.14", {"abs_tol": 0.01}, True, 1.0),
        ("Revenue was 1,010,000", "1e6", {"rel_tol": 0.01}, True, 1.0),
        ("Revenue was 1,020,000", "1e6", {"rel_tol": 0.01}, False, 0.0),
        ("No idea.", "42", {}, False, 0.0),
        ("12 apples and 7 pears", "7 and 12", {}, True, 1.0),  # contains: order-free
        ("12 apples", "7 and 12", {}, False, 0.5),  # value = share of expected numbers found
        ("7 apples", "7 and 7", {}, False, 0.5),  # each answer number is used once
        ("It is 12 or 14 days", "14", {}, True, 1.0),  # contains tolerates extra numbers...
        ("It is 12 or 14 days", "14", {"numeric_match": "exact"}, False, 0.0),  # ...exact does not
        ("It is 14 days", "14", {"numeric_match": "exact"}, True, 1.0),
        ("12 apples and 7 pears", "7 and 12", {"numeric_match": "exact"}, False, 0.0),  # exact keeps order
        ("Version 2 of A1", "1", {}, False, 0.0),  # "A1" is an identifier, "2" is a number
    ],
)
def test_numeric(output: str, expected: str, params: dict[str, Any], passed: bool, value: float) -> None:
    result = score("numeric", output, expected, **params)
    assert result is not None
    assert result.passed is passed, result.explanation
    assert result.value == value
    assert result.label == ("correct" if passed else "incorrect")


def test_numeric_evidence_lists_missing_numbers() -> None:
    result = score("numeric", "It costs $1,289.00.", "$1,299.00")
    assert result is not None
    assert result.evidence["expected_numbers"] == ["1299"]
    assert result.evidence["output_numbers"] == ["1289"]
    assert result.evidence["missing"] == ["1299"]
    assert "1299" in result.explanation


def test_numeric_expected_without_number_is_a_configuration_error() -> None:
    with pytest.raises(EvaluatorError, match="needs a number") as info:
        score("numeric", "42", "the answer")
    assert info.value.retryable is False


@pytest.mark.parametrize(
    ("text", "numbers"),
    [
        ("$1,299.00", ["1299"]),
        ("-$5 and +3", ["-5", "3"]),
        ("1,2,3", ["1", "2", "3"]),
        (".5 and 2.", ["0.5", "2"]),
        ("5kg, 10%, 3rd", ["5", "10", "3"]),  # units glued after the digits are fine
        ("1e-3", ["0.001"]),
        ("one of them", ["1"]),  # documented: "one" as a pronoun also counts
    ],
)
def test_extract_numbers(text: str, numbers: list[str]) -> None:
    from decimal import Decimal

    assert extract_numbers(text) == [Decimal(n) for n in numbers]


@pytest.mark.parametrize(
    ("output", "expected", "params", "passed", "matched"),
    [
        ("The answer is 42", r"\b42\b", {}, True, "42"),
        ("The answer is 420", r"\b42\b", {}, False, None),
        ("The answer is 42", "^42$", {}, False, None),  # anchors: search does not make ^ match mid-string
        ("42", "^42$", {}, True, "42"),
        ("  42\n", "^42$", {}, True, "42"),  # surrounding whitespace stripped by default
        ("  42\n", "^42$", {"strip": False}, False, None),
        ("The answer is 42", "42", {"regex_full_match": True}, False, None),
        ("42", "42", {"regex_full_match": True}, True, "42"),
        ("ORDER-123", "order-\\d+", {}, False, None),
        ("ORDER-123", "order-\\d+", {"regex_ignore_case": True}, True, "ORDER-123"),
        ("Call 555-0100", "ignored", {"pattern": r"\d{3}-\d{4}"}, True, "555-0100"),  # pattern param wins
    ],
)
def test_regex(output: str, expected: str, params: dict[str, Any], passed: bool, matched: str | None) -> None:
    result = score("regex", output, expected, **params)
    assert result is not None
    assert result.passed is passed
    assert result.evidence["matched"] == matched
    assert (result.evidence["span"] is None) is (matched is None)


def test_regex_invalid_expected_pattern_is_a_configuration_error() -> None:
    with pytest.raises(EvaluatorError, match="does not compile") as info:
        score("regex", "x", "(unclosed")
    assert info.value.retryable is False


SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0}},
    "required": ["name", "age"],
    "additionalProperties": False,
}


@pytest.mark.parametrize(
    ("output", "passed", "label", "path"),
    [
        ('{"name": "Ada", "age": 36}', True, "correct", None),
        ('```json\n{"name": "Ada", "age": 36}\n```', True, "correct", None),
        ('{"name": "Ada"}', False, "incorrect", "$"),  # missing required
        ('{"name": "Ada", "age": -1}', False, "incorrect", "$.age"),
        ('{"name": "Ada", "age": "36"}', False, "incorrect", "$.age"),
        ('{"name": "Ada", "age": 36, "x": 1}', False, "incorrect", "$"),
        ('{"name": "Ada", "age": 36,}', False, "invalid_json", None),  # trailing comma
        ("{'name': 'Ada', 'age': 36}", False, "invalid_json", None),  # Python, not JSON
        ('{"name": "Ada", "age": NaN}', False, "invalid_json", None),
        ('Sure! {"name": "Ada", "age": 36}', False, "invalid_json", None),
        ("", False, "invalid_json", None),
    ],
)
def test_json_schema(output: str, passed: bool, label: str, path: str | None) -> None:
    result = score("json_schema", output, "unused", json_schema=SCHEMA)
    assert result is not None
    assert result.passed is passed
    assert result.label == label
    if path is not None:
        assert result.evidence["errors"][0]["path"] == path


def test_json_schema_from_expected() -> None:
    expected = '{"type": "array", "items": {"type": "integer"}}'
    ok = score("json_schema", "[1, 2, 3]", expected)
    bad = score("json_schema", '[1, "two"]', expected)
    assert ok is not None and ok.passed is True
    assert bad is not None and bad.passed is False
    assert bad.evidence["errors"][0]["path"] == "$[1]"


@pytest.mark.parametrize(
    ("expected", "message"),
    [
        ("not json", "not one"),
        ('{"name": "Ada", "age": 36}', "looks like a JSON value"),  # an expected value, not a schema
        ('{"type": "nonsense"}', "invalid JSON Schema"),
        ("[1, 2]", "is an object"),
    ],
)
def test_json_schema_bad_expected_is_a_configuration_error(expected: str, message: str) -> None:
    with pytest.raises(EvaluatorError, match=message) as info:
        score("json_schema", "{}", expected)
    assert info.value.retryable is False


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        ({"mode": "semantic"}, "mode", "Input should be 'exact', 'normalised'"),
        ({"mode": "fuzzy", "fuzzy_threshold": 1.5}, "fuzzy_threshold", "less than or equal to 1"),
        ({"mode": "numeric", "rel_tol": -0.1}, "rel_tol", "greater than or equal to 0"),
        ({"mode": "numeric", "abs_tol": "inf"}, "abs_tol", "finite number"),
        ({"mode": "regex", "pattern": "(unclosed"}, "", "pattern is not a valid regular expression"),
        ({"mode": "exact", "pattern": "x"}, "", "pattern is only used in regex mode"),
        ({"mode": "exact", "json_schema": {"type": "object"}}, "", "json_schema is only used in json_schema mode"),
        ({"mode": "json_schema", "json_schema": {"type": 5}}, "json_schema", "invalid JSON Schema"),
        ({"mode": "json_schema", "json_schema": {"name": "x"}}, "json_schema", "looks like a JSON value"),
        ({"mode": "exact", "typo": True}, "typo", "Extra inputs are not permitted"),
    ],
)
def test_invalid_params(params: dict[str, Any], field: str, message: str) -> None:
    with pytest.raises(ValidationError) as info:
        ReferenceCorrectness.from_config(params)
    text = str(info.value)
    assert message in text
    assert field in text


def test_fuzzy_long_texts_compare_words() -> None:
    # > 2000 characters of distinct words (difflib aligns repeated paragraphs poorly): compared word by word
    expected = " ".join(f"clause{i} of the refund policy" for i in range(120))
    typo = expected.replace("clause7 ", "clawse7 ", 1)
    close = score("fuzzy", typo, expected)
    assert close is not None
    assert close.evidence["granularity"] == "words"
    assert close.passed is True and 0.99 < close.value < 1.0
    other = score("fuzzy", "Shipping is free worldwide. " * 100, expected)
    assert other is not None and other.passed is False
    short = score("fuzzy", "The refund windw is 30 days", "The refund window is 30 days.")
    assert short is not None and short.evidence["granularity"] == "chars"


@pytest.mark.parametrize(
    ("output", "expected", "missing"),
    [
        ("12 apples and 7 pears", "7 and 12", ["7", "12"]),  # right numbers, wrong order
        ("1 and 2", "1 and 3", ["3"]),
        ("1", "1 and 3", ["3"]),  # too few numbers
    ],
)
def test_numeric_exact_missing(output: str, expected: str, missing: list[str]) -> None:
    result = score("numeric", output, expected, numeric_match="exact")
    assert result is not None
    assert result.passed is False
    assert result.evidence["missing"] == missing
