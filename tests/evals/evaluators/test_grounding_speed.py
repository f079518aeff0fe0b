"""The grounding evaluator's cheaper ways of reading a claim agree with the plain definitions they replace.

claim_features reads a claim's words, clauses, word pairs, numbers, names and acronyms with shortcuts (one scan
for the words and clauses, memo tables, offsets found with str.find, the context's initials as one string, the
small sets the claim already has); the text patterns start with the character they need; the model's trees are
evaluated for all rows at once with numpy. Each test here compares a shortcut with the straightforward
computation on many generated sentences (or rows), so that a shortcut that drifts from its definition fails here
before it changes a verdict."""

from __future__ import annotations

import json
import math
import random
import re
from pathlib import Path
from typing import Any

import pytest

from evals.evaluators import grounding, text
from evals.evaluators import grounding_features as gf
from evals.evaluators.text import MONTHS, STOPWORDS, normalise_number, numbers, raw_words, stem, words

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
SAMPLE = Path(__file__).resolve().parents[3] / "bench" / "data" / "halueval_qa_sample.jsonl"


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


# text.numbers as first written: the optional prefix and the word boundary before the digits, in the patterns.
_ISO_DATE_PLAIN = re.compile(r"\b(\d{4})-(\d{1,2})-(\d{1,2})\b")
_MONTH_NAMES = {number: name for name, number in MONTHS.items()}
_NUMBER_PLAIN = re.compile(r"[$€£¥₹]?\s?(?<![\w.])(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d+))?(?:st|nd|rd|th|s)?%?(?!\w)")


def _numbers_reference(text: str) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for match in _ISO_DATE_PLAIN.finditer(text):
        year, month, day = match.groups()
        found.append((match.group(), normalise_number(year)))
        found.append((match.group(), normalise_number(day)))
        if 1 <= int(month) <= 12:
            found.append((match.group(), _MONTH_NAMES[int(month)]))
    rest = _ISO_DATE_PLAIN.sub(" ", text) if found else text
    for match in _NUMBER_PLAIN.finditer(rest):
        found.append((match.group().strip(), normalise_number(match.group(1), match.group(2))))
    return found


# Characters around numbers: currency signs, spaces of several kinds (a no-break space, a tab, a line break, the
# information separator that str.isspace counts), separators, suffixes, letters, an underscore and a superscript
# digit (a \\w character that is no \\d).
NUMBER_PIECES = [
    *"0123456789",
    *"$€£¥₹",
    " ",
    " ",
    " ",
    "\t",
    "\n",
    "\x1c",
    *",.-:%_²'",
    "st",
    "nd",
    "th",
    "s",
    "x",
    "A",
]


def test_numbers_read_what_the_plain_patterns_read() -> None:
    rng = random.Random(11)
    texts = ["".join(rng.choice(NUMBER_PIECES) for _ in range(rng.randint(1, 40))) for _ in range(20_000)]
    texts += ["$ 5 and $5, 1,000.50 the 3rd 1990s 20% 2024-03-05 x2024-03-05 2024-13-05", "a$ 7 €\t8 £\n9"]
    texts += [json.loads(line)["knowledge"] for line in SAMPLE.read_text().splitlines()]
    written: list[str] = []
    for sample in texts:
        expected = _numbers_reference(sample)
        assert numbers(sample) == expected, sample
        written += [w for w, _value in expected]
    assert len(written) > 40_000  # most texts have numbers: the comparison is not of empty lists
    assert sum(w[0] in "$€£¥₹" and w[1].isspace() for w in written) > 500  # nor only of bare digits


def _sample_texts() -> list[str]:
    rows = [json.loads(line) for line in SAMPLE.read_text().splitlines()]
    return [text for row in rows for text in (row["knowledge"], row["question"], row["right_answer"])]


def test_answer_roots_are_the_roots_of_both_tokenisers() -> None:
    texts = [*SENTENCES, " ".join(SENTENCES), "'twas rock’n’roll’ O''Neil ’90s students’ x'"]
    for sample in texts:
        expected = set(map(gf._ROOTS.__getitem__, gf._WORD.findall(sample)))
        expected.update(map(gf._ROOTS.__getitem__, raw_words(sample)))
        expected.discard(None)
        assert gf.answer_roots(gf.answer_words(sample)) == expected, sample
    assert any(gf._WORD.findall(s) != raw_words(s) for s in texts)  # the two tokenisers do differ on some


# The patterns as first written, each with its leading check in front (slower: see the module).
_NAME_PLAIN = re.compile(r"(?<![\w'’])[A-Z][\w'’]*(?:(?:[-–]| (?:of |de |van |von |da |del |la )?)[A-Z][\w'’]*)*")
_END_PLAIN = re.compile(r"""[.!?…。！？]+["'”’)\]]*(?=\s|$)|(?<=[a-z0-9)\]"”])\.(?=[A-Z][a-z])|[。！？]+""")
STOP_PIECES = [*".!?…。！？\"'”’)]", " ", "\n", "a", "Z", "Th", "0", "e.g", "U.S", "Mr"]


def test_names_and_sentence_stops_are_what_the_plain_patterns_find() -> None:
    rng = random.Random(5)
    texts = [*SENTENCES, *_sample_texts()]
    texts += ["".join(rng.choice(STOP_PIECES) for _ in range(rng.randint(1, 30))) for _ in range(5_000)]
    names = stops = 0
    for sample in texts:
        expected_names = [m.span() for m in _NAME_PLAIN.finditer(sample)]
        assert [m.span() for m in gf.NAME.finditer(sample)] == expected_names, sample
        expected_stops = [m.span() for m in _END_PLAIN.finditer(sample)]
        assert [m.span() for m in text._END.finditer(sample)] == expected_stops, sample
        names, stops = names + len(expected_names), stops + len(expected_stops)
    assert names > 10_000 and stops > 10_000


def _plain_claim_measures(sentence: str, ctx: gf.Context) -> dict[str, float]:
    """The measures of a claim that claim_features reads from smaller sets, as first written: the weakest clause
    from the window sentences' roots and the context's, the word pairs, the speaker's voice, a swapped role, a
    disagreeing number (a user's input that knows nothing)."""
    raw, _loose, clauses = gf._claim_words(sentence)
    content = [c for c in map(gf._CONTENT.__getitem__, raw) if c]
    root_of = dict(content)
    keys = [k for k, _r in content]
    number_values = {v for _w, v in gf.number_keys(sentence) if not v.isalpha()}
    number_values.update(filter(None, map(gf._NUMBER_WORD.__getitem__, raw)))
    novel = [k for k in keys if k not in gf._META_KEYS]
    judged_roots = {root_of[k] for k in (set(novel) if (novel or number_values) else set(keys))}
    wanted = judged_roots | number_values
    table, rare = gf.idf_table()
    hits: dict[int, float] = {}
    for r in judged_roots:
        for i in ctx.by_root.get(r, ()):
            hits[i] = hits.get(i, 0.0) + table.get(r, rare)
    for value in number_values:
        for i in ctx.by_number.get(value, ()):
            hits[i] = hits.get(i, 0.0) + 1.0
    ranked = [i for _w, i in sorted((-w, i) for i, w in hits.items())[:4]]
    window = gf.claim_features(sentence, ctx, set(), set(), set()).window
    sentences = ctx.sentences
    span = range(window[0], window[1] + 1) if window else range(0)
    clause_found = clause_near = 1.0
    if window is not None and len(wanted) >= 4:
        near = set().union(*(sentences[j].roots | sentences[j].numbers for j in span))
        for clause in clauses:
            said = wanted.intersection(gf.token_sequence(clause))
            if len(said) >= 2:
                clause_found = min(clause_found, len(said & (ctx.roots | ctx.numbers)) / len(said))
                clause_near = min(clause_near, len(said & near) / len(said))
    claim_pairs = gf.word_pairs([r for r in gf.token_sequence(raw) if r in wanted], reach=1)
    stated = set().union(*(claim_pairs & sentences[j].pairs for j in span))
    pairs = len(stated) / len(claim_pairs) if claim_pairs and window else 0.0 if claim_pairs else 1.0
    near_roots = frozenset().union(*(sentences[i].roots for i in ranked[:3]))
    opposite = any(r not in near_roots and gf.OPPOSITE.get(r, set()) & near_roots for r in judged_roots)
    folded = set(map(gf._FOLDED.__getitem__, raw))
    named_roots = judged_roots | {root_of[k] for k in keys}
    missing_numbers = number_values - ctx.numbers
    number_conflict = bool(
        missing_numbers and gf._states_other_number(ctx, window, hits, named_roots, missing_numbers, number_values)
    ) or gf._field_disagrees(ctx, hits, named_roots, number_values)
    return {
        "clause_found": clause_found,
        "clause_near": clause_near,
        "pairs": pairs,
        "first_person": float(any(w in gf._FIRST_PERSON and w not in ctx.words for w in folded)),
        "opposite": float(opposite),
        "number_conflict": float(number_conflict),
    }


RECORD = '{"name": "Acme Pro plan", "seats": 5, "price": {"monthly": 29.5, "first year": 1990}, "open": true}'
FACTS = "We founded the Acme Pro plan in 1990 and it has 5 seats. Jones won the Academy Award in 2001."
SUPPORT_MEASURES = ("clause_found", "clause_near", "pairs")  # 1.0 by default; the others 0.0


@pytest.mark.parametrize("structured", [False, True])
def test_claim_measures_read_from_smaller_sets_agree_with_the_plain_ones(structured: bool) -> None:
    docs = [(f"d{i}", text) for i, text in enumerate(sentences(12, seed=9))] + [("facts", FACTS)]
    if structured:
        docs.append(("record", RECORD))
    ctx = gf.index_context(docs)
    voices = ("", "I think ", "We saw that ", "my ")
    claims = [voices[n % 4] + s for n, s in enumerate(SENTENCES)]
    claims += ["The Acme Pro plan was founded in 1995 and has 7 seats.", "The Acme Pro plan has 20 seats."]
    seen = dict.fromkeys(("clause_found", "clause_near", "pairs", "first_person", "opposite", "number_conflict"), 0)
    for claim in claims:
        expected = _plain_claim_measures(claim, ctx)
        values = gf.claim_features(claim, ctx, set(), set(), set()).values
        assert {name: values[name] for name in expected} == expected, claim
        for name, value in expected.items():
            seen[name] += value != (1.0 if name in SUPPORT_MEASURES else 0.0)
    assert min(seen.values()) > 0, seen  # every measure leaves its default on some claims


def _walk(tree: list[list[Any]], row: list[float]) -> float:
    """The leaf value a row reaches in a tree, node by node (the trees as bench/grounding_train.py writes them)."""
    feature, threshold, left, right, value = tree
    node = 0
    while int(feature[node]) >= 0:
        node = int(left[node]) if row[int(feature[node])] <= float(threshold[node]) else int(right[node])
    return float(value[node])


def test_the_trees_evaluated_together_give_the_sums_of_the_walks_one_by_one() -> None:
    data = json.loads(grounding.WEIGHTS.read_text())
    model = grounding._model()
    # Values at, just under and just over the thresholds each feature is tested against, and others.
    cuts: dict[int, list[float]] = {}
    for feature, threshold, _left, _right, _value in data["trees"]:
        for f, t in zip(feature, threshold, strict=True):
            if f >= 0:
                cuts.setdefault(int(f), []).extend((t, math.nextafter(t, -math.inf), math.nextafter(t, math.inf)))
    rng = random.Random(3)
    width = len(data["features"])
    rows = [
        [rng.choice(cuts[f]) if f in cuts and rng.random() < 0.7 else rng.uniform(-1, 5) for f in range(width)]
        for _ in range(3_000)
    ]
    expected = []
    for row in rows:
        score = float(data["base"])
        for tree in data["trees"]:
            score += _walk(tree, row)  # in order, from the base: the float the sum must be
        expected.append(score)
    assert model.scores(rows) == expected
    assert model.scores(rows[:1]) == expected[:1]


def test_the_inputs_words_and_keys_are_those_of_every_word() -> None:
    for sample in [*SENTENCES, " ".join(SENTENCES), *_sample_texts()[:300]]:
        folded = words(sample)
        keys = {k for k in map(gf.key, folded) if k is not None}
        assert gf.folded_words_and_keys(sample) == (set(folded), keys), sample


def _plain_window_and_runs(sentence: str, ctx: gf.Context) -> tuple[Any, ...]:
    """The best window (every window around the four best sentences scored, none skipped), and the words found
    nowhere (each content word's root looked up), as first written; a user's input that knows nothing."""
    raw, _loose, _clauses = gf._claim_words(sentence)
    per_word = list(map(gf._CONTENT.__getitem__, raw))
    content = [c for c in per_word if c]
    root_of = dict(content)
    keys = [k for k, _r in content]
    number_values = {v for _w, v in gf.number_keys(sentence) if not v.isalpha()}
    number_values.update(filter(None, map(gf._NUMBER_WORD.__getitem__, raw)))
    novel = [k for k in keys if k not in gf._META_KEYS]
    judged = set(novel) if (novel or number_values) else set(keys)
    judged_roots = {root_of[k] for k in judged}
    wanted = judged_roots | number_values
    table, rare = gf.idf_table()
    weight = {r: table.get(r, rare) for r in judged_roots} | dict.fromkeys(number_values, 1.0)
    total = sum(weight.values())
    hits: dict[int, float] = {}
    for item in wanted:
        for i in ctx.by_root.get(item, ()) if item in judged_roots else ctx.by_number.get(item, ()):
            hits[i] = hits.get(i, 0.0) + weight[item]
    ranked = [i for _w, i in sorted((-w, i) for i, w in hits.items())[:4]]
    sentences = ctx.sentences
    best_window = idf_window = 0.0
    window = (ranked[0], ranked[0]) if ranked else None
    for i in ranked:
        for lo, hi in ((i, i), (i - 1, i), (i, i + 1), (i - 1, i + 1)):
            if lo < 0 or hi >= len(sentences) or sentences[lo].doc != sentences[hi].doc:
                continue
            shared = wanted & set().union(*(sentences[j].roots | sentences[j].numbers for j in range(lo, hi + 1)))
            share = sum(weight[w] for w in shared) / total if total else 0.0
            if share > idf_window + 1e-9:
                idf_window, window = share, (lo, hi)
            if wanted:
                best_window = max(best_window, len(shared) / len(wanted))
    absent = [k in judged and r not in ctx.roots for k, r in content]
    absent += [True for w in raw if w[0].isdigit() and normalise_number(w) in number_values - ctx.numbers]
    longest = run = 0
    for word_absent in absent:  # (the order of numbers among the words aside: these sentences have few)
        run = run + 1 if word_absent else 0
        longest = max(longest, run)
    return window, idf_window, best_window, sum(absent), longest == 0


def test_windows_and_baseless_words_agree_with_every_window_scored() -> None:
    """Claims backed word for word (the chosen window holds every wanted word: the windows left, the clauses and
    the baseless runs are not read) and claims that are not give the plain loop's window and missing words."""
    docs = [(f"d{i}", text) for i, text in enumerate(sentences(12, seed=9))] + [("facts", FACTS)]
    ctx = gf.index_context(docs)
    claims = [s for _d, doc in docs for s in text.split_sentences(doc)][:150] + SENTENCES[:150]
    whole = 0
    for claim in claims:
        window, idf_window, best_window, missing, no_run = _plain_window_and_runs(claim, ctx)
        features = gf.claim_features(claim, ctx, set(), set(), set())
        values = features.values
        assert (features.window, values["idf_window"], values["best_window"]) == (window, idf_window, best_window)
        assert values["missing_words"] == math.log1p(missing), claim
        assert (values["baseless_run"] == 0.0) == no_run, claim
        if best_window == 1.0:
            whole += 1
            assert values["clause_found"] == values["clause_near"] == 1.0
    assert 20 < whole < len(claims) - 20  # both kinds of claim


# Pieces of context text for the index: stops, closing quotes, white space of several kinds (a line separator, a
# no-break space), apostrophes, digits with separators, a word with an accent and a curly quote (non-ASCII
# pieces are read by the regular expressions, the others with str.translate).
CONTEXT_PIECES = [
    *".!?。！？\n\"'”’)]",
    " ",
    "  ",
    "\t",
    "\u2028",
    "\xa0",
    " '",
    "''",
    "x'",
    "Jones' ",
    "don't ",
    "won ",
    "not ",
    "three ",
    "1,000.5 ",
    "2024-03-05 ",
    "10:30 ",
    "٣ ",
    "Café ",
    "“quoted” ",
    "U.S. ",
    "a_b ",
]


def _plain_prose_pieces(text: str) -> list[tuple[str, int, int]]:
    pieces = []
    start = 0
    for match in gf._CONTEXT_BREAK.finditer(text):
        stop = match.start() + len(match.group().rstrip())
        if stop > start:
            pieces.append((text[start:stop], start, stop))
        start = match.end()
    if start < len(text) and not text[start:].isspace():
        pieces.append((text[start:], start, len(text)))
    return pieces


def _context_texts(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice(CONTEXT_PIECES) for _ in range(rng.randint(0, 40))) for _ in range(count)]


def test_prose_pieces_are_those_between_the_matches_of_one_scan() -> None:
    texts = _context_texts(20_000, seed=21)
    for sample in texts:
        assert gf._prose_pieces(sample) == _plain_prose_pieces(sample), sample
    assert sum(".\n" in t or ". \n" in t for t in texts) > 500  # line breaks inside a stop's white space


def test_prose_words_and_numbers_are_those_of_the_regular_expressions_piece_by_piece() -> None:
    texts = [*_context_texts(5_000, seed=22), " ".join(SENTENCES)]
    ascii_pieces = 0
    for sample in texts:
        pieces = gf._prose_pieces(sample)
        words_of, numbers_of = gf._read_prose(pieces)
        assert words_of == [gf._WORD.findall(piece) for piece, _a, _b in pieces], sample
        expected: dict[int, set[str]] = {}
        for offset, value in gf.context_numbers(sample):  # the whole text's numbers, placed by offset
            i = max(n for n, (_p, start, _e) in enumerate(pieces) if start <= offset)
            expected.setdefault(i, set()).add(value)
        assert {i: values for i, values in numbers_of.items() if values} == expected, sample
        ascii_pieces += sum(piece.isascii() and "'" in piece for piece, _a, _b in pieces)
    assert ascii_pieces > 1_000  # the str.translate reading is compared, apostrophes included


def test_the_index_lists_what_each_sentence_holds() -> None:
    """The roots, numbers, negations and root lists of the one-scan index against each sentence's words read on
    their own, with and without a focus."""
    docs = [(f"d{i}", text) for i, text in enumerate(_context_texts(30, seed=23) + sentences(10, seed=24))]
    docs.append(("record", RECORD))
    focus = gf.answer_roots(gf.answer_words(" ".join(text for _d, text in docs[::3])))
    for listed in (None, focus):
        ctx = gf.index_context(docs, listed)
        by_root: dict[str, list[int]] = {}
        for index, s in enumerate(ctx.sentences):
            assert s.words == gf._WORD.findall(s.text)
            found = {gf._ROOTS[w] for w in s.words} - {None}
            assert s.negated == (gf.NEGATED in found) and (index in ctx.negated) == s.negated
            marks = found & gf._NUMBER_MARKS
            assert {m[1:] for m in marks} <= s.numbers
            assert s.roots == found - {gf.NEGATED} - marks
            for r in s.roots if listed is None else s.roots & listed:
                by_root.setdefault(r, []).append(index)
        assert dict(ctx.by_root) == by_root
        assert ctx.roots == set().union(*(s.roots for s in ctx.sentences))


def test_the_context_words_and_keys_asked_for_are_those_of_every_word() -> None:
    """``Context.words`` filled for the forms an answer asks about (``asked_forms``), and ``keys`` limited to
    the words with a listed root, against the forms and keys of every word of the context (glued words' parts,
    a record's own names and month names of ISO dates included); a form nobody listed is answered too."""
    texts = [*_context_texts(30, seed=25), *sentences(10, seed=26), "WilkinsonBlack said on 2024-03-05 McDonald."]
    docs = [(f"d{i}", text) for i, text in enumerate(texts)]
    docs.append(("record", RECORD))
    every: list[str] = []
    for _d, doc_text in docs:
        every += gf._WORD.findall(doc_text if gf.structured_facts(doc_text) is None else gf._GLUED.sub(" ", doc_text))
    every += [part for w in list(every) for part in gf._WORD.findall(gf._GLUED.sub(" ", w))]
    plain_words = {form for w in every for form in (text.fold(w), stem(text.fold(w)))} | {"march"}
    plain_keys = {gf.key(text.fold(w)) for w in every} - {None}
    answer = gf.answer_words(" ".join(text for _d, text in docs[::4]) + " Wilkinson Blacks March O'Neil's")
    focus, asked = gf.answer_roots(answer), gf.asked_forms(answer)
    others = [*sorted(plain_words)[::7], "toxophilite", "blacks", "wilkinso"]
    assert not set(others) <= asked  # some forms are answered on first use
    for ctx in (gf.index_context(docs), gf.index_context(docs, focus, asked)):
        for form in sorted(asked) + others:
            assert ctx.words[form] == (form in plain_words) == (form in ctx.words), form
    assert gf.index_context(docs).keys == plain_keys
    limited = gf.index_context(docs, focus, asked).keys
    assert limited <= plain_keys
    assert {k for k in plain_keys if gf.root(k) in focus} <= limited
    assert {"wilkinson", "black", "march", "o'neil"} <= {form for form in asked if form in plain_words}
