"""Reference correctness: compare the answer with the expected answer of a golden item.

Applies only to items that carry ``expected`` (None otherwise). One ``mode`` per evaluator config:

- ``exact``: identical strings (surrounding whitespace ignored unless ``strip`` is off).
- ``normalised``: identical after SQuAD-style normalisation: case folded, punctuation and the articles
  a/an/the dropped, whitespace collapsed; numbers are canonicalised ("$1,299.00" → "1299", "3.50" → "3.5")
  and, with ``number_words`` on, English number words become digits ("fourteen days" → "14 days",
  "twenty-one" → "21", "one hundred and five" → "105"). Number words in other languages are not converted.
- ``fuzzy``: difflib similarity ratio of the normalised strings ≥ ``fuzzy_threshold``. Because a one-digit
  change barely moves a ratio ("30 days" vs "31 days" scores 0.97), ``fuzzy_require_same_numbers`` (on by
  default) also requires both sides to contain the same set of numbers. The value is the ratio. Texts longer
  than 2000 characters are compared word by word (difflib is quadratic), at most 3000 words each.
- ``numeric``: extract the numbers on both sides (signs, thousands separators, decimals, exponents, currency
  signs, and English number words when ``number_words`` is on). ``numeric_match="contains"``: every expected
  number must appear in the answer within tolerance (the value is the share found); ``"exact"``: the answer's
  numbers must be exactly the expected ones, in order. Tolerance: |a − b| ≤ max(rel_tol·max(|a|, |b|),
  abs_tol); both default to 0 (exact decimal comparison, so 0.1 + 0.2 issues do not arise). "1.299,00"
  (European separators) is read as 1.299 and 0: not supported. A percent sign is ignored ("15%" is 15).
- ``regex``: ``pattern`` (or, when unset, the expected answer itself) must match the answer with
  ``re.search`` (anchors work as usual: "^42$" does not match "The answer is 42") or, with
  ``regex_full_match``, the whole stripped answer.
- ``json_schema``: the answer must parse as JSON (one ```json fence tolerated) and validate against
  ``json_schema`` or, when unset, the expected answer parsed as a JSON Schema.

A golden item that cannot be used in the configured mode (no number in ``expected`` in numeric mode, an
invalid pattern or schema in ``expected``) raises a non-retryable EvaluatorError saying what to fix.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from difflib import SequenceMatcher
from functools import lru_cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from evals.evaluators.base import EvalItem, EvalResult, Evaluator, EvaluatorError
from evals.evaluators.output_format import check_json_schema, json_validator, parse_json_answer, schema_errors

Mode = Literal["exact", "normalised", "fuzzy", "numeric", "regex", "json_schema"]

_CAP = 200  # characters of any text quoted in evidence


class ReferenceParams(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    mode: Mode = Field(
        "normalised", description="How to compare: exact, normalised, fuzzy, numeric, regex or json_schema."
    )
    strip: bool = Field(True, description="exact and regex: ignore whitespace around the answer and expected.")
    number_words: bool = Field(True, description="normalised, fuzzy, numeric: English number words count as numbers.")
    fuzzy_threshold: float = Field(0.85, ge=0.0, le=1.0, description="fuzzy: minimum similarity ratio to pass.")
    fuzzy_require_same_numbers: bool = Field(True, description="fuzzy: both sides must also contain the same numbers.")
    numeric_match: Literal["contains", "exact"] = Field(
        "contains",
        description="numeric: 'contains' = every expected number appears in the answer; 'exact' = the same "
        "numbers in the same order.",
    )
    rel_tol: float = Field(0.0, ge=0.0, le=1.0, description="numeric: relative tolerance (0.01 = 1%).")
    abs_tol: float = Field(0.0, ge=0.0, description="numeric: absolute tolerance.")
    pattern: str | None = Field(None, max_length=2000, description="regex: pattern to use instead of expected.")
    regex_full_match: bool = Field(False, description="regex: the pattern must match the whole answer.")
    regex_ignore_case: bool = Field(False, description="regex: case-insensitive matching.")
    json_schema: dict[str, Any] | None = Field(None, description="json_schema: the schema to use instead of expected.")
    allow_code_fence: bool = Field(True, description="json_schema: accept a JSON answer wrapped in a ```json fence.")

    @field_validator("mode", mode="before")
    @classmethod
    def _american_spelling(cls, value: Any) -> Any:
        return "normalised" if value == "normalized" else value

    @field_validator("json_schema")
    @classmethod
    def _valid_schema(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            check_json_schema(value)
        return value

    @model_validator(mode="after")
    def _mode_specific(self) -> ReferenceParams:
        if self.pattern is not None:
            if self.mode != "regex":
                raise ValueError(f"pattern is only used in regex mode (mode is {self.mode!r}): remove it or set mode")
            try:
                re.compile(self.pattern, _flags(self))
            except re.error as exc:
                raise ValueError(f"pattern is not a valid regular expression: {exc}") from None
        if self.json_schema is not None and self.mode != "json_schema":
            raise ValueError(
                f"json_schema is only used in json_schema mode (mode is {self.mode!r}): remove it or set mode"
            )
        return self


def _flags(params: ReferenceParams) -> int:
    return re.IGNORECASE if params.regex_ignore_case else 0


class ReferenceCorrectness(Evaluator[ReferenceParams]):
    name = "reference"
    version = 2  # 2: an empty answer (an errored call) is not applicable instead of failing
    requires = frozenset({"answer", "expected"})
    title = "Reference correctness"
    description = (
        "Compares the answer with the expected answer of golden items: exact, normalised, fuzzy, numeric "
        "with tolerance, regular expression or JSON Schema."
    )
    Params = ReferenceParams
    queue = "scoring"
    default_enabled = True

    def evaluate(self, item: EvalItem) -> EvalResult | None:
        if item.expected is None:
            return None
        mode = self.params.mode
        if mode == "exact":
            return self._exact(item.output, item.expected)
        if mode == "normalised":
            return self._normalised(item.output, item.expected)
        if mode == "fuzzy":
            return self._fuzzy(item.output, item.expected)
        if mode == "numeric":
            return self._numeric(item.output, item.expected)
        if mode == "regex":
            return self._regex(item.output, item.expected)
        return self._json_schema(item.output, item.expected)

    # --- modes -------------------------------------------------------------------------------------------

    def _exact(self, output: str, expected: str) -> EvalResult:
        if self.params.strip:
            output, expected = output.strip(), expected.strip()
        ok = output == expected
        detail = "" if ok else f": expected {_quote(expected)}, got {_quote(output)}"
        return _verdict(
            ok,
            f"The answer {'is identical to' if ok else 'differs from'} the expected answer{detail}.",
            {"mode": "exact", "expected": _cap(expected), "output": _cap(output)},
        )

    def _normalised(self, output: str, expected: str) -> EvalResult:
        norm_out = normalise(output, number_words=self.params.number_words)
        norm_exp = normalise(expected, number_words=self.params.number_words)
        ok = norm_out == norm_exp
        detail = "" if ok else f": expected {_quote(norm_exp)}, got {_quote(norm_out)}"
        return _verdict(
            ok,
            f"After normalisation the answer {'matches' if ok else 'differs from'} the expected answer{detail}.",
            {"mode": "normalised", "expected_normalised": _cap(norm_exp), "output_normalised": _cap(norm_out)},
        )

    def _fuzzy(self, output: str, expected: str) -> EvalResult:
        out_tokens = _tokens(output, number_words=self.params.number_words)
        exp_tokens = _tokens(expected, number_words=self.params.number_words)
        norm_out, norm_exp = _joined(out_tokens), _joined(exp_tokens)
        ratio, granularity = _similarity(exp_tokens, out_tokens, norm_exp, norm_out)
        out_numbers = {t.text for t in out_tokens if t.number is not None}
        exp_numbers = {t.text for t in exp_tokens if t.number is not None}
        numbers_ok = not self.params.fuzzy_require_same_numbers or out_numbers == exp_numbers
        ok = ratio >= self.params.fuzzy_threshold and numbers_ok
        if ok:
            explanation = f"The answer is similar to the expected answer (ratio {ratio:.2f})."
        elif not numbers_ok:
            explanation = (
                f"The answer's numbers ({', '.join(sorted(out_numbers)) or 'none'}) differ from the expected "
                f"ones ({', '.join(sorted(exp_numbers)) or 'none'}), similarity ratio {ratio:.2f}."
            )
        else:
            explanation = (
                f"The answer is not similar enough to the expected answer (ratio {ratio:.2f} < "
                f"{self.params.fuzzy_threshold:.2f})."
            )
        return EvalResult(
            value=ratio,
            passed=ok,
            label="correct" if ok else "incorrect",
            explanation=explanation,
            evidence={
                "mode": "fuzzy",
                "ratio": ratio,
                "threshold": self.params.fuzzy_threshold,
                "granularity": granularity,
                "expected_numbers": sorted(exp_numbers)[:20],
                "output_numbers": sorted(out_numbers)[:20],
            },
        )

    def _numeric(self, output: str, expected: str) -> EvalResult:
        expected_numbers = extract_numbers(expected, number_words=self.params.number_words)
        if not expected_numbers:
            raise EvaluatorError(
                f"numeric mode needs a number in the expected answer; got {_quote(expected)}", retryable=False
            )
        output_numbers = extract_numbers(output, number_words=self.params.number_words)
        rel, abs_ = Decimal(str(self.params.rel_tol)), Decimal(str(self.params.abs_tol))

        def close(a: Decimal, b: Decimal) -> bool:
            return abs(a - b) <= max(rel * max(abs(a), abs(b)), abs_)

        if self.params.numeric_match == "exact":
            found = sum(1 for e, o in zip(expected_numbers, output_numbers, strict=False) if close(e, o))
            ok = len(output_numbers) == len(expected_numbers) and found == len(expected_numbers)
            missing = [
                e for i, e in enumerate(expected_numbers) if i >= len(output_numbers) or not close(e, output_numbers[i])
            ]
        else:
            unused = list(output_numbers)
            missing = []
            for number in expected_numbers:
                hit = next((i for i, o in enumerate(unused) if close(number, o)), None)
                if hit is None:
                    missing.append(number)
                else:
                    del unused[hit]
            found = len(expected_numbers) - len(missing)
            ok = not missing
        if ok:
            explanation = f"The answer contains the expected number{'s' if len(expected_numbers) > 1 else ''}."
        elif not output_numbers:
            explanation = "The answer contains no number."
        elif self.params.numeric_match == "exact":
            explanation = (
                f"The answer's numbers ({_numlist(output_numbers)}) are not exactly the expected "
                f"{_numlist(expected_numbers)}."
            )
        else:
            explanation = f"Expected {_numlist(missing)} not found in the answer (found {_numlist(output_numbers)})."
        return EvalResult(
            value=round(found / len(expected_numbers), 4) if self.params.numeric_match == "contains" else float(ok),
            passed=ok,
            label="correct" if ok else "incorrect",
            explanation=explanation,
            evidence={
                "mode": "numeric",
                "expected_numbers": [_fmt(n) for n in expected_numbers[:20]],
                "output_numbers": [_fmt(n) for n in output_numbers[:20]],
                "missing": [_fmt(n) for n in missing[:20]],
                "rel_tol": self.params.rel_tol,
                "abs_tol": self.params.abs_tol,
            },
        )

    def _regex(self, output: str, expected: str) -> EvalResult:
        source = self.params.pattern if self.params.pattern is not None else expected
        try:
            compiled = _compile(source, _flags(self.params))
        except re.error as exc:
            raise EvaluatorError(
                f"the expected answer is used as a regular expression but does not compile: {exc}", retryable=False
            ) from exc
        text = output.strip() if self.params.strip else output
        match = compiled.fullmatch(text) if self.params.regex_full_match else compiled.search(text)
        how = "the whole answer" if self.params.regex_full_match else "the answer"
        return _verdict(
            match is not None,
            f"The pattern {_quote(source)} {'matches' if match else 'does not match'} {how}.",
            {
                "mode": "regex",
                "pattern": _cap(source),
                "matched": _cap(match.group(0)) if match else None,
                "span": list(match.span()) if match else None,
            },
        )

    def _json_schema(self, output: str, expected: str) -> EvalResult:
        schema: Any = self.params.json_schema
        if schema is None:
            try:
                schema = json.loads(expected)
                check_json_schema(schema)
            except ValueError as exc:
                raise EvaluatorError(
                    f"json_schema mode uses the expected answer as a JSON Schema, but it is not one: {exc}",
                    retryable=False,
                ) from exc
        parsed = parse_json_answer(output, allow_code_fence=self.params.allow_code_fence)
        evidence: dict[str, Any] = {"mode": "json_schema", "fenced": parsed.fenced}
        if not parsed.ok:
            evidence.update(parsed.error_evidence())
            return EvalResult(
                value=0.0,
                passed=False,
                label="invalid_json",
                explanation=f"The answer is not valid JSON: {parsed.error}.",
                evidence=evidence,
            )
        errors, count = schema_errors(json_validator(schema), parsed.value, limit=5)
        evidence.update(errors=errors, error_count=count)
        if errors:
            explanation = (
                f"The answer does not match the schema; first error at {errors[0]['path']}: {errors[0]['message']}."
            )
        else:
            explanation = "The answer is JSON that matches the schema."
        return _verdict(not errors, explanation, evidence)


# difflib is quadratic in the worst case: characters up to this length (golden answers are short), words beyond
# it, and at most _FUZZY_MAX_WORDS words of each side (a few hundred milliseconds at worst).
_FUZZY_MAX_CHARS = 2000
_FUZZY_MAX_WORDS = 3000


def _similarity(exp_tokens: list[_Token], out_tokens: list[_Token], norm_exp: str, norm_out: str) -> tuple[float, str]:
    if norm_exp == norm_out:
        return 1.0, "chars"
    if len(norm_exp) <= _FUZZY_MAX_CHARS and len(norm_out) <= _FUZZY_MAX_CHARS:
        return round(SequenceMatcher(None, norm_exp, norm_out, autojunk=False).ratio(), 4), "chars"
    exp_words = [t.text for t in exp_tokens if t.number is not None or t.text not in ARTICLES][:_FUZZY_MAX_WORDS]
    out_words = [t.text for t in out_tokens if t.number is not None or t.text not in ARTICLES][:_FUZZY_MAX_WORDS]
    return round(SequenceMatcher(None, exp_words, out_words, autojunk=False).ratio(), 4), "words"


def _verdict(ok: bool, explanation: str, evidence: dict[str, Any]) -> EvalResult:
    return EvalResult(
        value=1.0 if ok else 0.0,
        passed=ok,
        label="correct" if ok else "incorrect",
        explanation=explanation,
        evidence=evidence,
    )


@lru_cache(maxsize=256)
def _compile(pattern: str, flags: int) -> re.Pattern[str]:
    return re.compile(pattern, flags)


def _cap(text: str) -> str:
    return text if len(text) <= _CAP else text[: _CAP - 1] + "…"


def _quote(text: str, limit: int = 80) -> str:
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    return f"“{text}”"


def _fmt(number: Decimal) -> str:
    if number == 0:
        return "0"
    return format(number.normalize(), "f")


def _numlist(numbers: list[Decimal]) -> str:
    shown = ", ".join(_fmt(n) for n in numbers[:10])
    return shown + (", …" if len(numbers) > 10 else "") if numbers else "none"


# --- tokens, numbers and normalisation --------------------------------------------------------------------

# A number token: a sign only when it starts a token ("-5", "(−5)", but "5-10" is 5 and 10, "COVID-19" is 19),
# an optional currency sign, digits with optional thousands separators and decimals, an optional exponent.
# Units glued after the digits are allowed ("5kg", "10%"), letters glued before are not ("v2", "A1").
_NUMBER = (
    r"(?<![\w.])(?P<sign>[-−+]?)[$€£¥₹]?"
    r"(?P<digits>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)"
    r"(?:[eE](?P<exp>[-+]?\d{1,2})(?!\d))?(?!\d)"
)
_TOKEN = re.compile(rf"{_NUMBER}|(?P<word>[^\W_]+)")
_APOSTROPHES = str.maketrans({"’": "'", "‘": "'", "ʼ": "'"})

ARTICLES = frozenset({"a", "an", "the"})

_UNITS = {
    w: i
    for i, w in enumerate(
        [
            "zero",
            "one",
            "two",
            "three",
            "four",
            "five",
            "six",
            "seven",
            "eight",
            "nine",
            "ten",
            "eleven",
            "twelve",
            "thirteen",
            "fourteen",
            "fifteen",
            "sixteen",
            "seventeen",
            "eighteen",
            "nineteen",
        ]
    )
}
_TENS = {
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "fifty": 50,
    "sixty": 60,
    "seventy": 70,
    "eighty": 80,
    "ninety": 90,
}
_SCALES = {"thousand": 1000, "million": 10**6, "billion": 10**9}


@dataclass(frozen=True)
class _Token:
    text: str  # folded word, or canonical number ("1299", "-5", "3.5")
    number: Decimal | None = None


def _tokens(text: str, *, number_words: bool) -> list[_Token]:
    raw: list[_Token] = []
    for match in _TOKEN.finditer(text.translate(_APOSTROPHES)):
        if match.group("word") is not None:
            raw.append(_Token(match.group("word").casefold()))
            continue
        number = _to_decimal(match.group("sign"), match.group("digits"), match.group("exp"))
        if number is not None:
            raw.append(_Token(_fmt(number), number))
    return list(_merge_number_words(raw)) if number_words else raw


def _to_decimal(sign: str, digits: str, exp: str | None) -> Decimal | None:
    try:
        value = Decimal(digits.replace(",", ""))
    except InvalidOperation:  # pragma: no cover - the regex only lets decimal literals through
        return None
    if exp:
        value = value.scaleb(int(exp))
    return -value if sign in ("-", "−") else value


def _merge_number_words(tokens: list[_Token]) -> Iterator[_Token]:
    """Replace runs of English number words by one number token: "twenty one" → 21, "one hundred and five"
    → 105, "two thousand twenty four" → 2024. A run ends where the next word cannot extend the number
    ("one two" is 1 and 2)."""
    i = 0
    while i < len(tokens):
        value, end = _parse_number_words(tokens, i)
        if end > i:
            yield _Token(_fmt(Decimal(value)), Decimal(value))
            i = end
        else:
            yield tokens[i]
            i += 1


def _parse_number_words(tokens: list[_Token], start: int) -> tuple[int, int]:
    total = current = 0
    last = ""  # kind of the last word consumed: unit, teen, ten, hundred, scale
    last_scale = 10**12
    i = start
    consumed = start
    while i < len(tokens):
        word = tokens[i].text if tokens[i].number is None else ""
        if word in _UNITS:
            value = _UNITS[word]
            kind = "unit" if value < 10 else "teen"
            if word == "zero" and last:
                break
            if kind == "unit" and last not in ("", "ten", "hundred", "scale"):
                break
            if kind == "teen" and last not in ("", "hundred", "scale"):
                break
            current += value
            last = kind
        elif word in _TENS:
            if last not in ("", "hundred", "scale"):
                break
            current += _TENS[word]
            last = "ten"
        elif word == "hundred":
            if last not in ("unit", "teen", "ten") or current >= 100 or current == 0:
                break
            current *= 100
            last = "hundred"
        elif word in _SCALES:
            scale = _SCALES[word]
            if last not in ("unit", "teen", "ten", "hundred") or scale >= last_scale or current == 0:
                break
            total += current * scale
            current = 0
            last_scale = scale
            last = "scale"
        elif word == "and" and last in ("hundred", "scale") and i + 1 < len(tokens):
            following = tokens[i + 1].text
            if following not in _UNITS and following not in _TENS:
                break
            i += 1
            continue  # "and" is consumed with the number it joins
        else:
            break
        i += 1
        consumed = i
        if word == "zero":
            break
    return total + current, consumed


def _joined(tokens: list[_Token]) -> str:
    return " ".join(t.text for t in tokens if t.number is not None or t.text not in ARTICLES)


def normalise(text: str, *, number_words: bool = True) -> str:
    """Case folded, punctuation and articles dropped, numbers canonical, whitespace collapsed."""
    return _joined(_tokens(text, number_words=number_words))


def extract_numbers(text: str, *, number_words: bool = True) -> list[Decimal]:
    return [t.number for t in _tokens(text, number_words=number_words) if t.number is not None]
