"""The grounding evaluator's cheaper ways of reading a claim agree with the plain definitions they replace.

claim_features reads a claim's words, clauses, word pairs, numbers, names and acronyms with shortcuts (one scan
for the words and clauses, memo tables, offsets found with str.find, the context's initials as one string); each
test here compares a shortcut with the straightforward computation on many generated sentences, so that a
shortcut that drifts from its definition fails here before it changes a verdict.
"""

from __future__ import annotations

import random

import pytest

from evals.evaluators import grounding_features as gf
from evals.evaluators.text import STOPWORDS, numbers, raw_words, stem, words

# Words chosen for the edge cases: apostrophes inside, at the end and typographic, clause delimiters and the
# conjunctions that end a clause, digits with separators and ordinals, a superscript digit, accents, capitals,
# acronyms, number words, negations and a sharp s whose capital casefolds to two letters.
VOCABULARY = str.split(
    "the refund was issued but while although however except don't Jones' rock’n’roll O'Neil students’ "
    "1,000 3rd 1990s 29.50 $5 ² 2024-03-05 10:30 Café Ünïcödé NASA National Aeronautics Space Administration "
    "three twenty first not never no Not only New York City Acme Pro plan costs per month seats ẞ ẞX won "
    "nominated Award Academy of Arts and Sciences co-founded well-known a_b x"
)
PUNCTUATION = (" ", " ", " ", ", ", "; ", ": ", " (", ") ", " [", "] ", ". ", "  ", "\n", " - ", "'", "’", " '")


def sentences(count: int, seed: int = 17) -> list[str]:
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        parts = []
        for _ in range(rng.randint(1, 30)):
            parts.append(rng.choice(VOCABULARY))
            parts.append(rng.choice(PUNCTUATION))
        out.append("".join(parts).strip())
    return out


SENTENCES = sentences(600)


def test_the_generated_sentences_reach_every_case() -> None:
    joined = " ".join(SENTENCES)
    assert "'" in joined and "’" in joined and " but " in joined and "," in joined and "ẞ" in joined
    assert sum("'" not in s and "’" not in s for s in SENTENCES) > 50  # the scan's own words are used too


@pytest.mark.parametrize("sentence", SENTENCES)
def test_claim_words_read_what_the_three_patterns_read(sentence: str) -> None:
    raw, loose, clauses = gf._claim_words(sentence)
    assert raw == raw_words(sentence) == gf._WORD_SPAN.findall(sentence)
    assert loose == gf._WORD.findall(sentence)
    assert clauses == [gf._WORD.findall(clause) for clause in gf._CLAUSE.split(sentence)]


@pytest.mark.parametrize("sentence", SENTENCES[:200])
def test_word_starts_are_the_match_offsets(sentence: str) -> None:
    raw = gf._WORD_SPAN.findall(sentence)
    assert gf._starts(sentence, raw) == [m.start() for m in gf._WORD_SPAN.finditer(sentence)]


def _pairs_reference(sequence: list[str], reach: int) -> set[tuple[str, str]]:
    pairs = set()
    for i, a in enumerate(sequence):
        for b in sequence[i + 1 : i + 1 + reach]:
            if a != b:
                pairs.add((a, b) if a < b else (b, a))
    return pairs


@pytest.mark.parametrize("reach", [1, 2, 3])
def test_word_pairs_are_the_pairs_within_reach(reach: int) -> None:
    rng = random.Random(reach)
    for _ in range(300):
        sequence = [rng.choice("abcdef") for _ in range(rng.randint(0, 12))]
        assert gf.word_pairs(sequence, reach) == _pairs_reference(sequence, reach)


def _sequence_reference(raw: list[str]) -> list[str]:
    out = []
    for w in raw:
        r = gf._ROOTS[w]
        if r:
            out.append(r[1:] if r[0] == "#" else r)
        elif w[0].isdigit():
            out.append(w.replace(",", "").lstrip("0") or "0")
    return out


def test_token_sequence_and_word_memos_follow_the_word_forms() -> None:
    for sentence in SENTENCES:
        raw = gf._WORD.findall(sentence)
        assert gf.token_sequence(raw) == _sequence_reference(raw)
        for w in raw:
            _folded, k, r = gf.token(w)
            assert gf._CONTENT[w] == ((k, r) if k and not k[0].isdigit() else None)
            assert gf._NUMBER_WORD[w] == (k if k and k[0].isdigit() else None)


@pytest.mark.parametrize("sentence", [*SENTENCES[:300], "Paid in 2024, [1] not [2, 3] ^4 nor 【5】."])
def test_number_keys_skips_only_texts_without_numbers(sentence: str) -> None:
    cited = gf._CITATION.sub(" ", sentence)
    assert gf.number_keys(sentence) == numbers(cited)


def _acronyms_reference(ctx: gf.Context) -> set[str]:
    found: set[str] = set()
    for s in ctx.sentences:
        keys = [gf.token(w)[1] for w in gf._WORD.findall(s.text)]
        initials = "".join(k[0] for k in keys if k and not k[0].isdigit())
        for n in range(2, 7):
            found.update(initials[j : j + n] for j in range(len(initials) - n + 1))
    return found


def test_acronyms_are_initials_of_adjacent_content_words_of_one_sentence() -> None:
    docs = [(f"d{i}", text) for i, text in enumerate(sentences(40, seed=3))]
    nine_s = "Smith sells ships, sails, spices, salt, soap, silk and seeds."
    docs.append(("nasa", f"The National Aeronautics and Space Administration. {nine_s}"))
    ctx = gf.index_context(docs)
    acronyms = _acronyms_reference(ctx)
    # "ẞẞẞẞ" casefolds to eight letters: no acronym of six at most, though that sentence's initials hold them.
    candidates = {a.upper() for a in acronyms} | {"NASA", "NASAS", "ASS", "ẞX", "ẞẞẞẞ", "SS", "XY", "NSA", "SSN"}
    assert "NASA" in candidates and "NASA".casefold() in acronyms
    assert any(a.casefold() not in acronyms for a in candidates)
    for written in candidates:
        expected = written.isupper() and 2 <= len(written) <= 6 and written.isalpha() and written.casefold() in acronyms
        assert gf._is_acronym_of(written, ctx) == expected, written


def _missing_reference(sentence: str, ctx: gf.Context, known_words: set[str], known_numbers: set[str]) -> list[str]:
    """missing_specifics without memo tables, as version 4 first wrote it."""
    missing: list[str] = []
    for written, value in gf.number_keys(sentence):
        if value.isalpha():
            present = value in ctx.words or value in known_words
        else:
            present = value in ctx.numbers or value in known_numbers
        if not present and written not in missing:
            missing.append(written)
    first = gf._FIRST_WORD.match(sentence)
    first_end = first.end() if first else 0
    for match in gf.NAME.finditer(sentence):
        written = match.group()
        is_acronym = sum(map(str.isupper, written)) >= 2
        if match.start() < first_end and not is_acronym and " " not in written:
            continue
        parts = [w for w in words(written) if w not in STOPWORDS and w not in gf._NOT_NAMES]
        parts = [w for w in parts if len(w) > 1 and not w[0].isdigit()]
        if not parts:
            continue
        if all(p in ctx.words or stem(p) in ctx.words or p in known_words or p[:-1] in ctx.words for p in parts):
            continue
        if gf._is_acronym_of(written, ctx):
            continue
        if written not in missing:
            missing.append(written)
    return missing


def test_missing_specifics_agree_with_the_plain_loop() -> None:
    docs = [(f"d{i}", text) for i, text in enumerate(sentences(8, seed=5))]
    ctx = gf.index_context(docs)
    known = {"york", "acme"}
    flagged = 0
    for sentence in SENTENCES:
        for known_words in (set(), known):
            expected = _missing_reference(sentence, ctx, known_words, {"1000"})
            assert gf.missing_specifics(sentence, ctx, known_words, {"1000"}) == expected, sentence
            flagged += bool(expected)
    assert flagged > 50  # the comparison covers names and numbers that are missing, not only present ones
