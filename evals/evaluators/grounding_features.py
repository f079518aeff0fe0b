"""What the grounding evaluator measures: the context read as sentences and facts, and per claim a few
numbers saying how well the context backs it.

The context is indexed once per item, each document read once for its sentences and once for its words (ASCII
text with str.translate and str.split, other text with a regular expression); every distinct word as written is
looked up in memo tables (its folded form, content key, root, whether it negates or is a number word), so a word
is stemmed once per process, not once per item. What only some claims need (a sentence's roots, word order and
clauses, the acronyms) is computed when a claim first asks. Prose is split into
sentences (a quick splitter: contexts are long).
Structured documents become facts: JSON (objects, arrays, nested keys: "hours Monday: 11:0-22:0";
booleans read as present or negated facts: "not Delivery"; Python-style dict strings inside values, as in
Yelp records, read the same way), key-value lines, and CSV or Markdown tables (one fact per cell, named by
its row and column: "Gadget not in stock"). Every fact keeps the offsets of its evidence in the document,
so the evidence can quote it.

Words compare by content key (folded, stemmed, irregular verb forms mapped to their base) and, more
loosely, by root (derivational suffixes dropped: "acquisition" and "acquire" share one). Numbers compare by
value (text.numbers), clock times also in 12-hour form ("22:00" = "10 pm").

Per claim (``claim_features``): the share of its content found anywhere in the context and in the best
window of adjacent sentences (a summary sentence fusing two source sentences), plain and weighed by inverse
document frequency (grounding_idf.txt: "say" says less than "toxophilite"), the share of its pairs of nearby
words that the window states together, its weakest clause, the longest run of content words found nowhere (a
baseless clause: reported as spans), numbers and names the context lacks, a number the passage states
differently, a negation that flips or that no passage backs, a role or antonym swap ("won" where the context
says "nominated"), the speaker's own voice ("I think"), and whether its words that restate the question sit
in the passage its new words come from. grounding.py turns them into probabilities with the trees in
grounding_weights.json.
"""

from __future__ import annotations

import ast
import contextlib
import csv
import heapq
import io
import json
import math
import operator
import re
from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import chain, compress, filterfalse
from pathlib import Path
from typing import Any

from evals.evaluators.text import (
    MONTHS,
    NUMBER_WORDS,
    STOPWORDS,
    fold,
    is_negation,
    normalise_number,
    numbers,
    raw_words,
    sentence_spans,
    stem,
    words,
)

# --- word keys --------------------------------------------------------------------------------------------

_IRREGULAR = dict(
    pair.split(":")
    for pair in str.split(
        "won:win lost:lose sold:sell bought:buy went:go gone:go began:begin begun:begin wrote:write "
        "written:write took:take taken:take gave:give given:give found:find led:lead held:hold told:tell "
        "said:say became:become built:build grew:grow grown:grow known:know knew:know ran:run saw:see seen:see "
        "spent:spend paid:pay brought:bring thought:think fell:fall fallen:fall rose:rise risen:rise met:meet "
        "kept:keep chose:choose chosen:choose drove:drive driven:drive fought:fight taught:teach caught:catch "
        "sent:send left:leave felt:feel meant:mean struck:strike stood:stand spoke:speak spoken:speak "
        "children:child men:man women:woman people:person mice:mouse feet:foot teeth:tooth"
    )
)
# Month abbreviations, as news pages date themselves ("Nov 10, 2018", "Aug. 10"): the month's own word, so that a
# claim's "November" finds them ("may" is the month itself; "mar" is read as March too: a verb rarely written).
MONTH_ABBREVIATIONS = dict(
    pair.split(":")
    for pair in str.split(
        "jan:january feb:february mar:march apr:april jun:june jul:july aug:august sep:september sept:september "
        "oct:october nov:november dec:december"
    )
)
_IRREGULAR.update(MONTH_ABBREVIATIONS)
# A claim word whose counterpart, not the word itself, is in the best matching context passage: a swapped
# role, direction or comparison. Word pairs, read both ways, compared by root.
_OPPOSITE_WORDS = (
    "won:nominated won:lost bought:sold buyer:seller increased:decreased rose:fell higher:lower larger:smaller "
    "last:first opened:closed accepted:rejected included:excluded male:female minimum:maximum fewer:more "
    "earlier:later early:late import:export lender:borrower teacher:student husband:wife father:mother "
    "son:daughter brother:sister north:south east:west older:younger gain:loss profit:loss allowed:prohibited "
    "cheap:expensive positive:negative success:failure best:worst above:below inside:outside strong:weak "
    "fast:slow hot:cold full:empty arrived:departed host:guest winner:loser plaintiff:defendant "
    "employer:employee increase:decrease rise:decline lowest:highest minority:majority senior:junior "
    "elder:younger predecessor:successor mother:daughter father:son parent:child approved:rejected "
    "supported:opposed won:defeated import:export"
)
_DERIVATIONAL = (
    "ation",
    "ition",
    "ement",
    "ment",
    "ness",
    "ity",
    "tion",
    "sion",
    "ance",
    "ence",
    "ive",
    "al",
    "er",
    "or",
)


@lru_cache(maxsize=131072)
def key(token: str) -> str | None:
    """The content key of a folded token: None for stop words, negations and digit runs (numbers compare by
    value); number words read as numbers; irregular forms mapped to their base; the rest lightly stemmed."""
    if token in STOPWORDS or is_negation(token) or token[0].isdigit():
        return None
    number = NUMBER_WORDS.get(token)
    if number is not None:
        return number
    return stem(_IRREGULAR.get(token, token))


@lru_cache(maxsize=131072)
def root(content_key: str) -> str:
    """A looser key: derivational suffixes dropped and cut to six letters, so that "acquisition",
    "acquired" and "acquire" meet, as do "nomination" and "nominated"."""
    if len(content_key) <= 4 or not content_key.isalpha():
        return content_key
    for suffix in _DERIVATIONAL:
        if content_key.endswith(suffix) and len(content_key) - len(suffix) >= 4:
            content_key = content_key[: -len(suffix)]
            break
    return content_key[:6]


def _opposites() -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for pair in _OPPOSITE_WORDS.split():
        a, b = (root(key(w) or w) for w in pair.split(":"))
        out.setdefault(a, set()).add(b)
        out.setdefault(b, set()).add(a)
    return out


OPPOSITE = _opposites()


# Words that speak about the documents rather than about the world ("According to the article, ...", "Reviewers
# mention ...", "The passage states that ..."): an answer may use them without the documents using them.
_META_WORDS = (
    "article articles passage passages text texts document documents context source sources report reports "
    "news story information data record records review reviews reviewer reviewers customer customers "
    "guest guests visitor visitors patron patrons diner diners mention mentioned state stated note noted "
    "reported highlight highlighted discuss discussed describe described explain explained indicate "
    "indicated suggest suggested emphasize emphasized summarize summary provided overall according"
)
_META_KEYS = frozenset(k for k in map(key, _META_WORDS.split()) if k)


def content_keys(tokens: list[str]) -> list[str]:
    return [k for k in map(key, tokens) if k is not None]


_CITATION = re.compile(r"\[\^?\d{1,3}(?:\s*[,–-]\s*\d{1,3})*\]|【[^】]{0,40}】|\^\d{1,3}\b")


_DIGIT = re.compile(r"\d")


def number_keys(text: str) -> list[tuple[str, str]]:
    """Numbers of ``text`` (see ``text.numbers``), citation markers such as "[1]" or "[2, 3]" left out."""
    if not _DIGIT.search(text):  # every number has a digit; most sentences have none, and the search is quick
        return []
    return numbers(_CITATION.sub(" ", text) if "[" in text or "【" in text or "^" in text else text)


# --- structured documents ----------------------------------------------------------------------------------

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|_+|-+")
_KV_LINE = re.compile(r"^\s*[-*•]?\s*([A-Za-z][\w .()/'&-]{0,60}?)\s*[:=]\s*(\S.*?)\s*$")
_TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{2,}")
_FALSE = {"false", "no", "none", "n", "0", "null", "nil", "off", "unavailable", "closed"}
_TRUE = {"true", "yes", "y", "on", "available"}


# Particles that make one word with the verb before them in a field name ("TakeOut", "PickUp", "CheckIn"); other
# small words stay words ("GoodForKids" is "Good For Kids", "ByAppointmentOnly" "By Appointment Only").
_PARTICLES = frozenset({"out", "up", "in", "on", "off"})


def _key_words(name: str) -> str:
    """ "BusinessAcceptsCreditCards" → "Accepts Credit Cards"; "price_range" → "price range". A leading
    "Business" or "Restaurants" (Yelp's attribute names) says nothing about the attribute."""
    parts: list[str] = []
    for part in _CAMEL.sub(" ", str(name)).split():
        previous = parts[-1] if parts else ""
        glued = len(previous) <= 2 and previous[:1].isupper() and previous.casefold() not in STOPWORDS
        if previous and (glued or part.casefold() in _PARTICLES):
            parts[-1] += part.casefold()  # "WiFi", not "Wi Fi"; "Takeout", not "Take Out"
        else:
            parts.append(part)
    if len(parts) > 1 and parts[0].casefold() in ("business", "restaurants"):
        parts = parts[1:]
    return " ".join(parts)


@dataclass
class Fact:
    text: str  # what is compared: words of the key path and the value ("not" before a false boolean)
    start: int  # offsets of its evidence in the document text
    end: int


def _scalar(value: Any) -> tuple[str, bool | None]:
    """A JSON leaf as words, and its truth when it is a boolean-like value."""
    if isinstance(value, bool):
        return ("", value)
    if value is None:
        return ("", False)
    text = str(value).strip().strip("'\"")
    if text.startswith("u'"):
        text = text[2:].strip("'")
    low = text.casefold()
    if low in _FALSE:
        return ("", False)
    if low in _TRUE:
        return ("", True)
    return (text, None)


def _literal_dict(text: str) -> dict[str, Any] | None:
    """A Python-style dict stored as a string ("{'garage': False, 'street': True}"), else None."""
    if not (text.startswith("{") and text.endswith("}")) or len(text) > 2000:
        return None
    with contextlib.suppress(ValueError, SyntaxError, MemoryError, RecursionError):
        value = ast.literal_eval(text)
        if isinstance(value, dict):
            return value
    return None


def _written(value: Any, python: bool) -> str | None:
    """How a key or leaf is written in the document: JSON, or Python's repr inside a string-held dict."""
    if value is None or isinstance(value, str | bool | int | float):
        return repr(value) if python else json.dumps(value)
    return None


def _json_facts(
    value: Any,
    path: list[str],
    raw: str,
    cursor: list[int],
    out: list[Fact],
    depth: int = 0,
    key_at: int | None = None,
    python: bool = False,
) -> None:
    """The facts of a JSON value, each with the offsets of its key and value in ``raw`` (so that the evidence
    quotes ``"OutdoorSeating": false``, ``'street': True``); ``python``: inside a Python-style dict string."""
    if depth > 20:
        return
    if isinstance(value, dict):
        for k, v in value.items():
            # The key first, so that the value is looked for after it and the fact quotes both.
            written = _written(k, python)
            found = raw.find(written, cursor[0]) if written else -1
            if found >= 0:
                cursor[0] = found + len(written or "")
            _json_facts(v, [*path, _key_words(k)], raw, cursor, out, depth + 1, found if found >= 0 else None, python)
        return
    if isinstance(value, list):
        for v in value:
            _json_facts(v, path, raw, cursor, out, depth + 1, None, python)
        return
    if isinstance(value, str):
        nested = _literal_dict(value.strip())
        if nested is not None:
            _json_facts(nested, path, raw, cursor, out, depth + 1, key_at, python=True)
            return
    # Locate the leaf in the raw text, moving forward: json.loads keeps the document's order.
    needle = _written(value, python)
    start = raw.find(needle, cursor[0]) if needle else -1
    if start < 0:
        needle = None
        start = key_at if key_at is not None else cursor[0]
    end = min(len(raw), start + len(needle) if needle else max(cursor[0], start + 1))
    cursor[0] = max(cursor[0], end)
    text, truth = _scalar(value)
    label = " ".join(path[-2:]) if truth is None else path[-1] if path else ""
    if truth is None and len(text) > 120:  # free text (a review, a description): read as prose
        out.append(Fact(text, start + 1, end - 1))
        return
    if key_at is not None:
        start = min(start, key_at)
    if truth is None:
        out.append(Fact(f"{label}: {text}", start, end))
    elif truth:
        out.append(Fact(label, start, end))
    else:
        out.append(Fact(f"not {label}", start, end))


def _table_facts(lines: list[tuple[int, int, str]], delimiter: str) -> list[Fact]:
    """One fact per cell, named by the row's first cell and the column ("Gadget price: 30", "Gadget not in
    stock"), so that each can be checked on its own."""
    header: list[str] | None = None
    facts: list[Fact] = []
    for start, end, line in lines:
        if delimiter == "|":
            if _TABLE_RULE.match(line):
                continue
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
        else:
            cells = next(csv.reader(io.StringIO(line)), [])
        if header is None:
            header = [_key_words(c) for c in cells]
            continue
        row = cells[0] if cells else ""
        facts.append(Fact(f"{header[0]}: {row}" if header else row, start, end))
        for name, cell in zip(header[1:], cells[1:], strict=False):
            text, truth = _scalar(cell)
            said = f"{name}: {text}" if truth is None else (name if truth else f"not {name}")
            facts.append(Fact(f"{row} {said}", start, end))
    return facts


def structured_facts(text: str) -> list[Fact] | None:
    """The facts of a structured document (JSON, key-value lines, CSV or Markdown table), or None for prose."""
    stripped = text.strip()
    if stripped[:1] in "{[" and stripped[-1:] in "}]":
        with contextlib.suppress(ValueError, RecursionError):
            value = json.loads(stripped)
            facts: list[Fact] = []
            _json_facts(value, [], text, [0], facts)
            return facts
    lines = []
    position = 0
    for line in text.split("\n"):
        if line.strip():
            lines.append((position, position + len(line), line))
        position += len(line) + 1
    if len(lines) < 2:
        return None
    if sum(line.count("|") >= 2 for _, _, line in lines) >= 0.8 * len(lines):
        return _table_facts(lines, "|")
    commas = [line.count(",") for _, _, line in lines]
    if min(commas) >= 1 and len(set(commas)) == 1 and len(lines) >= 3:
        return _table_facts(lines, ",")
    matches = [_KV_LINE.match(line) for _, _, line in lines]
    if sum(m is not None for m in matches) >= 0.6 * len(lines) and len(lines) >= 3:
        facts = []
        for (start, end, line), m in zip(lines, matches, strict=True):
            if m is None:
                facts.append(Fact(line.strip(), start, end))
                continue
            value, truth = _scalar(m.group(2))
            name = _key_words(m.group(1))
            facts.append(Fact(f"{name}: {value}" if truth is None else (name if truth else f"not {name}"), start, end))
        return facts
    return None


# --- word information --------------------------------------------------------------------------------------

IDF_FILE = Path(__file__).with_name("grounding_idf.txt")
# The weights are multiples of 2**-32 (at most 1.2e-10 from the exact inverse document frequency, all of them at
# most 1), so that any sum of them (of fewer than 2**21 terms) is exact in floating point: the same whatever the
# order of its terms. The
# claim measures sum weights over sets of roots, whose iteration order depends on how each set was built and
# on Python's string hash seed (PYTHONHASHSEED): with inexact sums two passages that tie could differ in the
# last bit and swap places as a claim's best passage from one process to the next.
IDF_GRID = float(2**32)


@lru_cache(maxsize=1)
def idf_table() -> tuple[dict[str, float], float]:
    """(inverse document frequency per root, the value of a root the table lacks), both scaled to 0..1.
    grounding_idf.txt lists the roots that occur in more than a handful of the training contexts (written by
    bench/grounding_train.py from dev-part texts): a root it lacks is rare, so it weighs most."""
    documents = 1
    counts: dict[str, int] = {}
    # A root the file lacks is rarer than those it lists: it weighs as the rarest listed ones do.
    for line in IDF_FILE.read_text(encoding="utf-8").splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name, count = line.split()
        if name == "documents":
            documents = int(count)
        else:
            counts[name] = int(count)
    top = math.log(documents + 1)
    table = {
        name: round(math.log((documents + 1) / (count + 1)) / top * IDF_GRID) / IDF_GRID
        for name, count in counts.items()
    }
    return table, max(table.values(), default=1.0)


# The month abbreviations as a context may write them (``index_context`` looks them up among its distinct words).
_MONTH_SPELLINGS = frozenset(chain.from_iterable((a, a.title(), a.upper()) for a in MONTH_ABBREVIATIONS))


# --- the context index -------------------------------------------------------------------------------------


# Each memo table holds at most this many words as written (then starts afresh): a few tens of MB per process.
_MEMO_WORDS = 100_000


class _Memo(dict[str, Any]):
    """raw word → (folded word, content key, root); computed once per word as written. A plain dict with
    ``__missing__``: the index looks up every word of every context, so this is the hot path."""

    def __missing__(self, raw: str) -> tuple[str, str | None, str | None]:
        if len(self) > _MEMO_WORDS:
            self.clear()
        folded = fold(raw)
        k = key(folded)
        info = self[raw] = (folded, k, root(k) if k else None)
        return info


class _RootMemo(dict[str, Any]):
    """raw word → its root; for a word without one, None, or a marker the index reads: ``NEGATED`` for a
    negation word, "#" and the value for a number word ("three" → "#3"). Digits are indexed by value."""

    def __missing__(self, raw: str) -> str | None:
        if len(self) > _MEMO_WORDS:
            self.clear()
        folded, k, r = _TOKENS[raw]
        if is_negation(folded):
            value: str | None = NEGATED
        elif k and k[0].isdigit():
            value = f"#{k}" if not raw[0].isdigit() else None
        else:
            value = r
        self[raw] = value
        return value


NEGATED = ""
_NONE: frozenset[str] = frozenset()
_NUMBER_MARKS = frozenset(f"#{v}" for v in NUMBER_WORDS.values())
_MARKERS = _NUMBER_MARKS | {NEGATED}


class _Forms(dict[str, Any]):
    """raw word → one of its forms (``pick`` of its ``_TOKENS`` entry), memoised, so that a sequence of words
    maps to its forms with ``map`` rather than a Python loop."""

    def __init__(self, pick: int):
        super().__init__()
        self.pick = pick

    def __missing__(self, raw: str) -> str | None:
        if len(self) > _MEMO_WORDS:
            self.clear()
        entry = _TOKENS[raw]
        value = self[raw] = entry[self.pick]
        return value


class _ContextForms(dict[str, Any]):
    """raw word → the forms ``ContextWords`` knows it by: folded, and folded and stemmed."""

    def __missing__(self, raw: str) -> tuple[str, str]:
        if len(self) > _MEMO_WORDS:
            self.clear()
        folded = _TOKENS[raw][0]
        forms = self[raw] = (folded, stem(folded))
        return forms


class _AskedForms(dict[str, Any]):
    """raw word of an answer → the forms claims ask ``ContextWords`` about for it: folded (word overlap, the
    speaker's own voice) and, for a capitalised word (a name's words start with a capital, ``NAME``, but for
    "of", "de", ...), also folded and stemmed and folded without its last letter (``missing_specifics``)."""

    def __missing__(self, raw: str) -> tuple[str, ...]:
        if len(self) > _MEMO_WORDS:
            self.clear()
        folded = _TOKENS[raw][0]
        forms = self[raw] = (folded, stem(folded), folded[:-1]) if raw[0].isupper() else (folded,)
        return forms


class _GluedParts(dict[str, Any]):
    """raw word → its parts when it is glued ("WilkinsonBlack": text scraped without a space between sentences;
    a word neither lower case, nor upper case, nor capitalised), else (). The index asks about the words that
    are not lower case (most are: ``str.islower`` rules them out for less than a look-up)."""

    def __missing__(self, raw: str) -> tuple[str, ...]:
        if len(self) > _MEMO_WORDS:
            self.clear()
        glued = not (raw.islower() or raw.isupper() or raw.istitle())
        parts = self[raw] = tuple(_WORD.findall(_GLUED.sub(" ", raw))) if glued else ()
        return parts


class _SequenceMemo(dict[str, Any]):
    """raw word → what ``token_sequence`` lists for it: its root, a number word's or a digit run's value, or
    None (a stop word, a negation)."""

    def __missing__(self, raw: str) -> str | None:
        if len(self) > _MEMO_WORDS:
            self.clear()
        r = _ROOTS[raw]
        if r:
            value: str | None = r[1:] if r[0] == "#" else r
        elif raw[0].isdigit():
            value = raw.replace(",", "").lstrip("0") or "0"
        else:
            value = None
        self[raw] = value
        return value


class _InitialMemo(dict[str, str]):
    """raw word → the initial of its content key ("" for a stop word or a number): the acronym check."""

    def __missing__(self, raw: str) -> str:
        if len(self) > _MEMO_WORDS:
            self.clear()
        k = _KEYS[raw]
        value = self[raw] = k[0] if k and not k[0].isdigit() else ""
        return value


class _ContentMemo(dict[str, Any]):
    """raw word → (content key, root) of a content word; None for a stop word, a negation or a number."""

    def __missing__(self, raw: str) -> tuple[str, str] | None:
        if len(self) > _MEMO_WORDS:
            self.clear()
        _folded, k, r = _TOKENS[raw]
        value = self[raw] = (k, r) if k and r and not k[0].isdigit() else None
        return value


class _NumberWordMemo(dict[str, Any]):
    """raw word → the value of a number word ("three" → "3"), else None."""

    def __missing__(self, raw: str) -> str | None:
        if len(self) > _MEMO_WORDS:
            self.clear()
        k = _KEYS[raw]
        value = self[raw] = k if k and k[0].isdigit() else None
        return value


_TOKENS = _Memo()
_CONTEXT_FORMS = _ContextForms()
_ASKED_FORMS = _AskedForms()
_GLUED_PARTS = _GluedParts()
_ROOTS = _RootMemo()
_FOLDED, _KEYS = _Forms(0), _Forms(1)
_SEQUENCE = _SequenceMemo()
_INITIALS = _InitialMemo()
_CONTENT = _ContentMemo()
_NUMBER_WORD = _NumberWordMemo()


def token(raw: str) -> tuple[str, str | None, str | None]:
    """(folded word, content key, root) of a word as written."""
    return _TOKENS[raw]


_WORD = re.compile(r"\w[\w'’]*")
_GLUED = re.compile(r"(?<=[a-z])(?=[A-Z])")
_NEGATION_SCOPE = 3  # a negation applies to the next few words
_SCOPE_ENDS = frozenset({"and", "or", "but", "while", "whereas"})
# Context sentences end at . ! ? (and closing quotes) before white space, or at a line break. Cruder than
# text.sentence_spans (an abbreviation may end one), and much faster on long documents; a claim is also
# compared with adjacent sentences, so a sentence cut in two is still found whole. Written to start with one
# character set (a line break, or a stop then closing quotes and a space). The definition: _prose_pieces finds its
# matches with _BREAK_AT_STOP.
_CONTEXT_BREAK = re.compile(r"[.!?。！？\n](?:(?<=\n)\s*|(?<!\n)[\"'”’)\]]*\s+)")
# _CONTEXT_BREAK as one pattern per stop, each starting with its stop: the engine finds that character by a plain
# character search, several times faster than testing a set at every character of a long text.
_BREAK_AT_STOP = tuple(
    (stop, re.compile(re.escape(stop) + (r"\s*" if stop == "\n" else r"[\"'”’)\]]*\s+"))) for stop in ".!?。！？\n"
)
# ASCII text in which every character that cannot be part of a _WORD word is a space (line breaks aside):
# str.split then reads the runs of word characters and apostrophes, which are _WORD's words once the apostrophes
# that start a run are dropped. str.translate maps an ASCII text several times faster than _WORD.findall reads it.
_SPACE_FOR_NON_WORD = str.maketrans(
    dict.fromkeys((c for c in map(chr, range(128)) if c != "\n" and not re.fullmatch(r"[\w'’]", c)), " ")
)
# ASCII text reduced to its digits (and line breaks): which pieces of a text have a number at all.
_DIGITS_ONLY = str.maketrans("", "", "".join(c for c in map(chr, range(128)) if c != "\n" and not c.isdigit()))
_CLAUSE = re.compile(r"[,;:()\[\]]|\s(?:but|while|whereas|although|though|however|except)\s")


@dataclass(slots=True)
class Sentence:
    """A context sentence, or a fact of a structured document. What only some claims need (the order of its
    words, its clauses) is computed the first time one asks."""

    doc: int
    start: int
    end: int
    text: str
    numbers: frozenset[str]
    negated: bool  # has a negation word (most sentences have none: their negation check is skipped)
    fact: bool  # a fact of a structured document (short: its negation is checked whenever a claim names it)
    words: list[str]  # its words as written (``_WORD``), read once by the index: word pairs and acronyms reuse them
    _roots: set[str] | None = None
    _clauses: list[tuple[frozenset[str], list[tuple[str | None, bool | None]]]] | None = None
    _pairs: frozenset[tuple[str, str]] | None = None

    @property
    def roots(self) -> set[str]:
        """The roots of its words (number words are among its ``numbers``). Claims read the roots of the few
        sentences near their best matches (and of the negated ones): each set is built when first asked for."""
        if self._roots is None:
            roots = set(map(_ROOTS.__getitem__, self.words))
            roots.discard(None)
            roots.discard(NEGATED)
            if not _NUMBER_MARKS.isdisjoint(roots):
                roots -= _NUMBER_MARKS
            self._roots = roots
        return self._roots

    @property
    def clauses(self) -> list[tuple[frozenset[str], list[tuple[str | None, bool | None]]]]:
        """(roots, polar sequence) per clause. A negation bears on its own clause only ("..., while the
        defense, the team without control of the ball")."""
        if self._clauses is None:
            self._clauses = []
            for clause in _CLAUSE.split(self.text):
                sequence = polar_sequence(_WORD.findall(clause))
                self._clauses.append((frozenset(r for r, _ in sequence if r), sequence))
        return self._clauses

    @property
    def pairs(self) -> frozenset[tuple[str, str]]:
        """Pairs of content roots (and numbers) at most two content words apart, in either order: the word
        pairs of a claim that a passage states together."""
        if self._pairs is None:
            self._pairs = frozenset(word_pairs(token_sequence(self.words), reach=2))
        return self._pairs


def answer_words(text: str) -> list[str]:
    """The words of an answer as the context index reads them: ``answer_roots`` and ``word_overlap`` take them,
    so that a long answer is read once."""
    return _WORD.findall(text)


def _both_readings(words: list[str]) -> set[str]:
    """The distinct words of an answer (``answer_words``) as either tokeniser reads them. text.raw_words reads
    other words than ``_WORD`` only where a word has an apostrophe ("rock’n’roll’", "'twas"), and reads them from
    that word alone: those words are read again, not the text."""
    distinct = set(words)
    joined = "".join(distinct)  # one search for an apostrophe rather than two per word
    if "'" in joined or "’" in joined:
        for word in [w for w in distinct if "'" in w or "’" in w]:
            distinct.update(raw_words(word))
    return distinct


def answer_roots(words: list[str]) -> set[str]:
    """The roots of the words of an answer (``answer_words``) as either tokeniser reads them: the ``focus`` of
    ``index_context``."""
    found = set(map(_ROOTS.__getitem__, _both_readings(words)))
    found.discard(None)
    return found


def asked_forms(words: list[str]) -> set[str]:
    """The forms the claims of an answer (its ``answer_words``) ask ``Context.words`` about, as either tokeniser
    reads its words (see ``answer_roots``): each folded, a capitalised one also folded and stemmed and folded
    without its last letter; and month names and first-person words. The context's words are listed for these
    only (``ContextWords``)."""
    forms = set(chain.from_iterable(map(_ASKED_FORMS.__getitem__, _both_readings(words))))
    forms |= _ALWAYS_ASKED
    return forms


class ContextWords(dict[str, bool]):
    """folded form → whether a word of the context has it, folded or folded and stemmed (or, ``extra``, is a month
    name read from an ISO date). Filled up front for the ``asked`` forms (``asked_forms`` of the answer; every form
    when None): a context has several times more distinct words than an answer, and listing each word's forms
    in a set was about a twentieth of an item's time. Any other form is answered on first use, from the forms
    of every word of the context, listed then (once). ``form in words`` reads the same entry."""

    def __init__(self, raw: Collection[str] = (), extra: Collection[str] = (), asked: set[str] | None = None):
        super().__init__()
        self._raw = raw
        self._extra = extra
        self._every: set[str] | None = None
        if asked is None:
            self.update(dict.fromkeys(self._every_form(), True))
        else:
            self.update(dict.fromkeys(asked, False))
            found = asked.intersection(chain.from_iterable(map(_CONTEXT_FORMS.__getitem__, raw)))
            found.update(asked.intersection(extra))
            self.update(dict.fromkeys(found, True))

    def _every_form(self) -> set[str]:
        if self._every is None:
            self._every = set(chain.from_iterable(map(_CONTEXT_FORMS.__getitem__, self._raw)))
            self._every.update(self._extra)
        return self._every

    def __missing__(self, form: str) -> bool:
        found = self[form] = form in self._every_form()
        return found

    def __contains__(self, form: object) -> bool:
        return isinstance(form, str) and self[form]


def folded_words_and_keys(text: str) -> tuple[set[str], set[str]]:
    """The set of ``words(text)`` and the set of their content keys, each distinct word looked up once in the
    memo tables (a user's input may be thousands of words)."""
    distinct = set(raw_words(text))
    keys = set(map(_KEYS.__getitem__, distinct))
    keys.discard(None)
    return set(map(_FOLDED.__getitem__, distinct)), keys


def text_keys(text: str) -> list[str]:
    """``content_keys(words(text))``, each word looked up in the memo table rather than folded and keyed anew."""
    return [k for k in map(_KEYS.__getitem__, raw_words(text)) if k is not None]


def token_sequence(raw: list[str]) -> list[str]:
    """The roots of the content words of ``raw`` (words as written) in order, numbers (digits and number words)
    by value."""
    return [value for value in map(_SEQUENCE.__getitem__, raw) if value]


def word_pairs(sequence: list[str], reach: int) -> set[tuple[str, str]]:
    """The pairs of distinct items at most ``reach`` apart in ``sequence``, each in sorted order."""
    near = chain.from_iterable(zip(sequence, sequence[step:], strict=False) for step in range(1, reach + 1))
    return {(a, b) if a < b else (b, a) for a, b in near if a != b}


def polar_sequence(raw: list[str]) -> list[tuple[str | None, bool | None]]:
    """(root or None, is a negation cue) per word; (None, None) for a conjunction, where a negation's scope
    ends ("has no TV and accepts cards"). A capitalised "Not"/"No" inside a clause belongs to a name ("Not
    Ready for Prime Time Players") and "not only" is no negation."""
    out: list[tuple[str | None, bool | None]] = []
    roots = _ROOTS
    last = len(raw) - 1
    for i, word in enumerate(raw):
        r = roots[word]
        if r == NEGATED:
            name_or_only = (i > 0 and word[0].isupper()) or (i < last and raw[i + 1].casefold() == "only")
            out.append((None, not name_or_only))
        elif r is None and word.casefold() in _SCOPE_ENDS:
            out.append((None, None))
        else:
            out.append((r[1:] if r and r[0] == "#" else r, False))
    return out


def negates(sequence: list[tuple[str | None, bool | None]], shared: set[str] | frozenset[str]) -> bool:
    """Whether a negation cue in ``sequence`` bears on one of the ``shared`` roots."""
    for i, (_root, cue) in enumerate(sequence):
        if not cue:
            continue
        for k, after in sequence[i + 1 : i + 1 + _NEGATION_SCOPE]:
            if after is None:
                break
            if k in shared:
                return True
    return False


MONTH_NAMES = {number: name for name, number in MONTHS.items()}
_NUMBER_RUN = re.compile(r"\d[\d,.:-]*\d|\d")
_ISO_DAY = re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})")
_CLOCK_TIME = re.compile(r"(\d{1,2}):(\d{1,2})")
_THOUSANDS = re.compile(r"\d{1,3}(?:,\d{3})+")


def context_numbers(text: str) -> list[tuple[int, str]]:
    """(offset, value) of the numbers of a context text, the values ``text.numbers`` gives ("1,000" → "1000",
    "29.00" → "29", an ISO date as its year, day and month name), and a clock time's hour in both 24- and
    12-hour form ("22:0" → "22" and "10"). One quick pattern finds digit runs (contexts are long); each run
    is read in Python."""
    found: list[tuple[int, str]] = []
    for match in _NUMBER_RUN.finditer(text):
        at, run = match.start(), match.group()
        if run.isdigit():
            found.append((at, run.lstrip("0") or "0"))
            continue
        date = _ISO_DAY.fullmatch(run)
        if date:
            year, month, day = date.groups()
            found.extend(((at, normalise_number(year)), (at, normalise_number(day))))
            if 1 <= int(month) <= 12:
                found.append((at, MONTH_NAMES[int(month)]))
            continue
        for part in run.split("-"):
            clock = _CLOCK_TIME.fullmatch(part)
            if clock and int(clock.group(1)) <= 23:
                hour = int(clock.group(1))
                found.extend(((at, str(hour)), (at, str(hour % 12 or 12)), (at, normalise_number(clock.group(2)))))
                continue
            for piece in part.split(":"):
                piece = piece.strip(",.")
                if not piece:
                    continue
                if _THOUSANDS.fullmatch(piece.split(".")[0]):
                    integer, _dot, decimals = piece.replace(",", "").partition(".")
                    found.append((at, normalise_number(integer, decimals)))
                    continue
                for number in piece.split(","):
                    integer, _dot, decimals = number.partition(".")
                    if integer.isdigit() and (not decimals or decimals.isdigit()):
                        found.append((at, normalise_number(integer, decimals)))
    return found


def _prose_pieces(text: str) -> list[tuple[str, int, int]]:
    """The sentences of ``text`` between the matches of _CONTEXT_BREAK (found with ``_BREAK_AT_STOP``, for the
    stops the text has), with their offsets."""
    breaks = sorted(
        chain.from_iterable(
            map(re.Match.span, pattern.finditer(text)) for stop, pattern in _BREAK_AT_STOP if stop in text
        )
    )
    pieces: list[tuple[str, int, int]] = []
    start = 0
    for at, end in breaks:
        if at < start:
            # A line break in the white space after a stop: one scan of _CONTEXT_BREAK takes it with the stop, and
            # its own match ends where the stop's does.
            continue
        stop = at + len(text[at:end].rstrip())  # the stop and closing quotes stay in the sentence
        if stop > start:
            pieces.append((text[start:stop], start, stop))
        start = end
    if start < len(text) and not text[start:].isspace():
        pieces.append((text[start:], start, len(text)))
    return pieces


@dataclass
class Context:
    doc_ids: list[str]
    doc_texts: list[str] = field(default_factory=list)
    structured: bool = False
    sentences: list[Sentence] = field(default_factory=list)
    by_root: defaultdict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    by_number: defaultdict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    keys: set[str] = field(default_factory=set)
    roots: set[str] = field(default_factory=set)
    words: ContextWords = field(default_factory=ContextWords)
    numbers: set[str] = field(default_factory=set)
    negated: list[int] = field(default_factory=list)  # indices of the sentences with a negation word
    size: int = 0  # words
    _initials: str | None = None
    _negated_roots: set[str] | None = None

    @property
    def negated_roots(self) -> set[str]:
        """The roots of every sentence with a negation word (a claim sharing few of them is not contradicted
        by a negation, whatever the clauses say)."""
        if self._negated_roots is None:
            self._negated_roots = set().union(*(self.sentences[i].roots for i in self.negated))
        return self._negated_roots

    @property
    def initials(self) -> str:
        """The initials of the content words of each sentence, one line per sentence ("nasa" for "National
        Aeronautics and Space Administration"): an acronym stands for adjacent words of one sentence when it is
        part of a line. For the acronym check, rare, so built on first use, once."""
        if self._initials is None:
            initial = _INITIALS.__getitem__
            self._initials = "\n".join("".join(map(initial, s.words)) for s in self.sentences)
        return self._initials


def _read_prose(pieces: list[tuple[str, int, int]]) -> tuple[list[list[str]], defaultdict[int, set[str]]]:
    """The words (``_WORD.findall``) and the numbers (``context_numbers``' values) of each of the ``pieces`` of a
    text (``_prose_pieces``: no line break inside one, as _CONTEXT_BREAK ends a sentence at every one, and no
    number across two, as white space parts them). The words of the ASCII pieces (most, in most texts) are read
    at once with str.translate and str.split, several times faster than the regular expression
    (``_SPACE_FOR_NON_WORD``; a line break between two pieces, a space before each, so that an apostrophe starting
    a word follows a space), and only those of them with a digit are searched for numbers."""
    texts = [piece for piece, _a, _b in pieces]
    is_ascii = list(map(str.isascii, texts))
    joined = "\n ".join(compress(texts, is_ascii))
    spaced = " " + joined.translate(_SPACE_FOR_NON_WORD)
    while " '" in spaced:  # "'twas", "''quoted'": the apostrophes that start a run are no part of its word
        spaced = spaced.replace(" '", "  ")
    ascii_words = iter(spaced.split("\n"))
    ascii_digits = iter(joined.translate(_DIGITS_ONLY).split("\n"))
    words_of: list[list[str]] = []
    numbers_of: defaultdict[int, set[str]] = defaultdict(set)
    for i, (text, ascii_text) in enumerate(zip(texts, is_ascii, strict=True)):
        if ascii_text:
            words_of.append(next(ascii_words).split())
            if not next(ascii_digits):
                continue
        else:  # non-ASCII word characters, apostrophes and digits: the regular expressions read them
            words_of.append(_WORD.findall(text))
        numbers_of[i].update(value for _o, value in context_numbers(text))
    return words_of, numbers_of


def index_context(docs: list[tuple[str, str]], focus: set[str] | None = None, asked: set[str] | None = None) -> Context:
    """``docs``: (id, text) of the non-empty documents. Each text is split into sentences and read for words
    once (``_prose_pieces``, ``_read_prose``), each distinct word looked up once in a memo table (its root, or
    whether it is a negation or a number word); what only some claims need is computed when one asks (a
    sentence's roots, its clauses, its word pairs). ``focus``: the roots the claims can ask for (``answer_roots``);
    only those are listed by sentence in ``by_root`` (a context has many more distinct roots than an answer, and
    listing each was a fifth of the time), and ``keys`` holds the content keys of the words with such a root
    (those are the keys of the answer's words). ``asked``: the forms the claims ask ``words`` about
    (``asked_forms``), listed up front (``ContextWords``)."""
    ctx = Context(doc_ids=[d for d, _ in docs], doc_texts=[t for _, t in docs])
    by_root, by_number, findall = ctx.by_root, ctx.by_number, _WORD.findall
    # What is listed by sentence: the focus (every root without one), negation words and number words.
    listed = None if focus is None else focus | _MARKERS
    all_roots: set[str] = set()
    all_numbers: set[str] = set()
    unique: set[str] = set()
    # The words whose content key goes into ``keys``: with a focus, those with a listed root (and the record's own
    # names and the parts of glued words, few), not all.
    keyed: set[str] = set()
    sentences = ctx.sentences
    for position, (_doc_id, text) in enumerate(docs):
        facts = structured_facts(text)
        if facts is not None:
            ctx.structured = True
            pieces: list[tuple[str, int, int]] = []
            for fact in facts:
                if len(fact.text) > 120:
                    pieces.extend(
                        (fact.text[a:b], fact.start + a, fact.start + b) for a, b in sentence_spans(fact.text)
                    )
                else:
                    pieces.append((fact.text, fact.start, fact.end))
            # Fact texts are not substrings of the document (and may hold line breaks): each is read on its own.
            numbers_of: defaultdict[int, set[str]] = defaultdict(set)  # by sentence of the document
            for i, (piece, _a, _b) in enumerate(pieces):
                numbers_of[i].update(value for _o, value in context_numbers(piece))
            words_of = list(map(findall, [piece for piece, _a, _b in pieces]))
            # The record's own names are words of the context too ("BusinessParking": "parking").
            names = findall(_GLUED.sub(" ", text))
            unique.update(names)
            keyed.update(names)
        else:
            pieces = _prose_pieces(text)
            words_of, numbers_of = _read_prose(pieces)
        # Each distinct word of the document is looked up once in the memo table; a sentence's words are then
        # looked up in the set of those whose root is listed (most are not), in C.
        distinct = set(chain.from_iterable(words_of))
        distinct_roots = list(map(_ROOTS.__getitem__, distinct))  # in the order of ``distinct``, which stays as is
        all_roots.update(distinct_roots)
        listed_words = None if listed is None else set(compress(distinct, map(listed.__contains__, distinct_roots)))
        keyed.update(distinct if listed_words is None else listed_words)
        if unique:
            unique |= distinct
        else:
            unique = distinct  # the first document's words serve as they are (most contexts are one document)
        is_fact = facts is not None
        for i, ((piece, start, end), piece_words) in enumerate(zip(pieces, words_of, strict=True)):
            index = len(sentences)
            nums = numbers_of.get(i) or _NONE
            roots = set(
                map(_ROOTS.__getitem__, piece_words if listed_words is None else listed_words.intersection(piece_words))
            )
            roots.discard(None)
            negated = NEGATED in roots
            if negated:
                roots.discard(NEGATED)
                ctx.negated.append(index)
            if not _NUMBER_MARKS.isdisjoint(roots):  # number words ("three") count as their value
                marks = roots & _NUMBER_MARKS
                roots -= marks
                nums = set(nums) | {m[1:] for m in marks}
            for r in roots:
                by_root[r].append(index)
            if nums:
                nums = frozenset(nums)
                for value in nums:
                    by_number[value].append(index)
                all_numbers |= nums
            sentences.append(Sentence(position, start, end, piece, nums, negated, is_fact, piece_words))
        ctx.size += sum(map(len, words_of))
    # "WilkinsonBlack": text scraped without a space between sentences; its parts are words of the context too.
    glued_parts = set(chain.from_iterable(map(_GLUED_PARTS.__getitem__, filterfalse(str.islower, unique))))
    unique |= glued_parts
    keyed |= glued_parts
    ctx.keys = set(map(_KEYS.__getitem__, keyed))
    ctx.keys.discard(None)
    all_roots.discard(None)
    all_roots.discard(NEGATED)
    ctx.roots = all_roots - _NUMBER_MARKS
    ctx.numbers.update(v for v in all_numbers if not v.isalpha())
    months = {v for v in all_numbers if v.isalpha()}  # a month name read from an ISO date
    # A month abbreviation ("Nov 10", "Aug."): the month's name is a word of the context too.
    months.update(MONTH_ABBREVIATIONS[w] for w in map(_FOLDED.__getitem__, unique & _MONTH_SPELLINGS))
    ctx.words = ContextWords(unique, months, asked)
    return ctx


# --- one claim ----------------------------------------------------------------------------------------------

# A capital that starts a word, then its words (and "of", "de", ... between capitalised ones). The capital comes
# first and what is before it is checked behind it, so that the engine skips from capital to capital rather than
# trying the check at every character (1.5x faster).
NAME = re.compile(r"[A-Z](?<![\w'’][A-Z])[\w'’]*(?:(?:[-–]| (?:of |de |van |von |da |del |la )?)[A-Z][\w'’]*)*")
_FIRST_WORD = re.compile(r"""^[\s"'“‘(\[*_#>]*[\w'’]+""")
_NOT_NAMES = frozenset({"i", "i'm", "i've", "i'd", "i'll", "ok", "okay", "faq", "yes", "no", "a", "an", "am", "pm"})
# The speaker's own voice ("I think", "my favourite", "we went"): a remark about oneself, which documents
# rarely support.
_FIRST_PERSON = frozenset(
    {"i", "me", "my", "mine", "myself", "i'm", "i've", "i'd", "i'll"}
    | {"we", "us", "our", "ours", "ourselves", "we're", "we've"}
)
# What a claim may ask ``ContextWords`` about besides the forms of the answer's words (``asked_forms``): a month
# name (a date it states) and the speaker's own voice.
_ALWAYS_ASKED = frozenset(MONTHS) | _FIRST_PERSON


def missing_specifics(
    sentence: str,
    ctx: Context,
    known_words: set[str],
    known_numbers: set[str],
    stated_numbers: list[tuple[str, str]] | None = None,
) -> list[str]:
    """Numbers, amounts, dates and names of ``sentence`` that neither the context nor the user's input has
    (``stated_numbers``: ``number_keys(sentence)`` when the caller has it)."""
    missing: list[str] = []
    for written, value in number_keys(sentence) if stated_numbers is None else stated_numbers:
        if value.isalpha():
            present = ctx.words[value] or value in known_words
        else:
            present = value in ctx.numbers or value in known_numbers
        if not present and written not in missing:
            missing.append(written)
    first = _FIRST_WORD.match(sentence)
    first_end = first.end() if first else 0
    context_words = ctx.words
    for match in NAME.finditer(sentence):
        written = match.group()
        single_word, parts = _NAME_PARTS[written]
        if single_word and match.start() < first_end:
            continue  # a single capitalised word at the start of a sentence says nothing
        if not parts:
            continue
        if all(
            context_words[p] or context_words[stemmed] or p in known_words or context_words[shorter]
            for p, stemmed, shorter in parts
        ):
            continue
        if _is_acronym_of(written, ctx):
            continue
        if written not in missing:
            missing.append(written)
    return missing


class _NamePartsMemo(dict[str, Any]):
    """name as written → (whether it is one word and no acronym, its words that must be in the context: each
    folded, stemmed and without its last letter)."""

    def __missing__(self, written: str) -> tuple[bool, tuple[tuple[str, str, str], ...]]:
        if len(self) > _MEMO_WORDS:
            self.clear()
        single_word = sum(map(str.isupper, written)) < 2 and " " not in written
        parts = [w for w in words(written) if w not in STOPWORDS and w not in _NOT_NAMES]
        parts = [w for w in parts if len(w) > 1 and not w[0].isdigit()]
        value = self[written] = (single_word, tuple((p, stem(p), p[:-1]) for p in parts))
        return value


_NAME_PARTS = _NamePartsMemo()


def _is_acronym_of(written: str, ctx: Context) -> bool:
    """ "NASA" when the context has "National Aeronautics and Space Administration" (initials of adjacent
    content words)."""
    if not (written.isupper() and 2 <= len(written) <= 6 and written.isalpha()):
        return False
    folded = written.casefold()
    return 2 <= len(folded) <= 6 and folded in ctx.initials  # casefold may lengthen it ("ẞ" → "ss")


FEATURES = (
    "coverage",  # share of the claim's content (roots and numbers) found anywhere in the context
    "exact_coverage",  # same, by exact content key
    "idf_coverage",  # same, each word weighed by how much it says (inverse document frequency)
    "best_window",  # share found in the best window of adjacent sentences (fusion)
    "idf_window",  # same, weighed by inverse document frequency
    "pairs",  # share of the claim's pairs of nearby content words that the best window states together
    "anchored",  # share of the claim's words restating the question found in the best window
    "clause_found",  # the weakest clause's share of content found anywhere in the context
    "clause_near",  # the weakest clause's share of content found in the best window
    "missing_words",  # log(1 + content words found nowhere)
    "missing_idf",  # the most telling content word found nowhere (its inverse document frequency)
    "baseless_run",  # longest run of adjacent content words found nowhere, as a share of the claim
    "missing_numbers",
    "missing_names",
    "number_conflict",  # the best sentence states a different number
    "negation_flip",
    "bare_negation",  # the claim negates and no passage it rests on does
    "opposite",  # a role, direction or comparison swapped
    "first_person",  # the speaker's own voice ("I think", "my favourite"), the context not using it
    "length",  # log(1 + content words)
    "peer_overlap",  # share of the claim's words (any word, as written) found in the context
)


@dataclass
class ClaimFeatures:
    values: dict[str, float]
    best: int | None  # index of the best context sentence
    window: tuple[int, int] | None  # sentence index range of the best window
    baseless: list[tuple[int, int]]  # character spans of the claim found nowhere (relative to the claim)
    missing: list[str]
    conflict: str | None  # what contradicts: "number", "negation", "opposite"


def _may_disagree(roots: set[str], needed: int, ctx: Context, negated: list[int]) -> bool:
    """Whether a negated context sentence (of ``negated``) shares enough of a (not negated) claim clause's
    words, under its negation, to contradict it."""
    for i in negated:
        candidate = ctx.sentences[i]
        if candidate.fact and candidate.roots <= roots:
            return True
        if len(roots & candidate.roots) < needed:
            continue
        for clause_roots, clause_sequence in candidate.clauses:
            shared = roots & clause_roots
            if len(shared) >= needed and negates(clause_sequence, shared):
                return True
    return False


def negation_flip(
    sentence: str, ctx: Context, claim_roots: set[str] | None = None, has_negation: bool | None = None
) -> bool:
    """True when a clause of the sentence best matches a context sentence that negates the shared words
    while the claim does not (or the other way round), and no equally good context sentence agrees.
    ``claim_roots``: the claim's roots, when the caller has them: a negated sentence of prose sharing fewer
    than two of them cannot contradict a claim that does not negate. ``has_negation``: whether the sentence
    has a negation word, when the caller knows."""
    negated = ctx.negated
    if claim_roots is not None and not ctx.structured:
        sentences = ctx.sentences
        # What a negated sentence shares with the claim is among these (most claims share fewer than two).
        shared = claim_roots & ctx.negated_roots
        negated = [i for i in negated if len(shared & sentences[i].roots) >= 2] if len(shared) >= 2 else []
        if has_negation is None:
            has_negation = NEGATED in map(_ROOTS.__getitem__, raw_words(sentence))
        if not negated and not has_negation:
            return False  # the usual case, settled without reading the clauses
    for clause in _CLAUSE.split(sentence):
        raw = raw_words(clause)
        found = set(map(_ROOTS.__getitem__, raw))
        sequence = None
        if NEGATED in found:  # a negation word ("Not" may still be part of a name: the sequence tells)
            sequence = polar_sequence(raw)
            roots = {k for k, _ in sequence if k}
            claim_negated = any(cue for _, cue in sequence)
        else:  # the usual case: the roots without reading the sequence (number words by value)
            found.discard(None)
            roots = {r[1:] if r[0] == "#" else r for r in found}
            claim_negated = False
        if not roots:
            continue
        needed = max(2 if len(roots) > 1 else 1, (len(roots) + 1) // 2)
        if not claim_negated and (
            (not ctx.structured and len(roots & ctx.negated_roots) < needed)
            or not _may_disagree(roots, needed, ctx, negated)
        ):
            continue  # the usual case, settled without counting every sentence's overlap
        if sequence is None:
            sequence = polar_sequence(raw)
        candidates: dict[int, int] = {}
        for r in roots:
            for i in ctx.by_root.get(r, ()):
                candidates[i] = candidates.get(i, 0) + 1
        best_same = best_other = 0
        for i, overlap in candidates.items():
            candidate = ctx.sentences[i]
            if candidate.fact and candidate.roots <= roots:
                # A record field the claim names in full ("delivery" for "Delivery: False"): its truth decides.
                if negates(sequence, candidate.roots) != negates(candidate.clauses[0][1], candidate.roots):
                    return True
                continue
            if overlap < needed or overlap <= min(best_same, best_other):
                continue
            if not claim_negated and not candidate.negated:
                best_same = max(best_same, overlap)
                continue
            for clause_roots, clause_sequence in candidate.clauses:
                shared = roots & clause_roots
                if len(shared) < needed:
                    continue
                if negates(sequence, shared) == negates(clause_sequence, shared):
                    best_same = max(best_same, len(shared))
                else:
                    best_other = max(best_other, len(shared))
        if best_other > best_same:
            return True
    return False


def best_passage(sentence: str, ctx: Context) -> tuple[int, int] | None:
    """The window of up to three adjacent context sentences of one document (a tool result's "key: value."
    lines, a passage) that holds most of the content roots and numbers of ``sentence``, the shortest and
    earliest of equals; None when no sentence shares any."""
    wanted = {r for r in map(_ROOTS.__getitem__, raw_words(sentence)) if r}
    wanted |= {v for _w, v in number_keys(sentence)}
    hits: dict[int, int] = {}
    for item in wanted:
        for i in ctx.by_number.get(item, ()) if item[0].isdigit() else ctx.by_root.get(item, ()):
            hits[i] = hits.get(i, 0) + 1
    sentences = ctx.sentences
    best: tuple[int, int, int] | None = None  # (-covered, width, lo)
    for i in heapq.nlargest(4, hits, key=lambda i: (hits[i], -i)):
        for lo, hi in ((i, i), (i - 1, i), (i, i + 1), (i - 1, i + 1)):
            if lo < 0 or hi >= len(sentences) or sentences[lo].doc != sentences[hi].doc:
                continue
            covered = wanted & set().union(*(sentences[j].roots | sentences[j].numbers for j in range(lo, hi + 1)))
            candidate = (-len(covered), hi - lo, lo)
            if best is None or candidate < best:
                best = candidate
    return (best[2], best[2] + best[1]) if best else None


def word_overlap(words: list[str], ctx: Context) -> float:
    """Share of the words of an answer (``answer_words``; any word, folded) found in the context."""
    return _overlap(words, ctx)


def _overlap(raw: list[str], ctx: Context) -> float:
    return sum(map(ctx.words.__getitem__, map(_FOLDED.__getitem__, raw))) / len(raw) if raw else 1.0


def _field_disagrees(ctx: Context, hits: dict[int, float], roots: set[str], claimed: set[str]) -> bool:
    """A record field the claim names in full ("Pro seats: 5" for "the Pro plan has 20 seats") whose numbers
    the claim does not repeat, though it states a number of their kind (20 may be elsewhere in the table),
    and no other field it names in full that has the claim's number ("review stars: 5" beside "stars: 3")."""
    if not claimed or not ctx.structured:
        return False
    kinds = {_kind(n) for n in claimed}
    named = [f for f in (ctx.sentences[i] for i in hits) if f.fact and f.numbers and f.roots <= roots]
    if any(f.numbers & claimed for f in named):
        return False
    return any(_kind(n) in kinds for f in named for n in f.numbers if not n.isalpha())


def _kind(number: str) -> str:
    """Numbers compare with numbers of their kind: a year with a year, not with "14 days"."""
    whole = number.isdigit()
    return "year" if whole and 1000 <= int(number) <= 2100 else "number"


def _states_other_number(
    ctx: Context,
    window: tuple[int, int] | None,
    hits: dict[int, float],
    roots: set[str],
    missing: set[str],
    claimed: set[str],
) -> bool:
    """Whether the passage a claim rests on gives, where the claim has a number the context lacks, another
    number of that kind: in the best window of prose, or in a record field the claim names in full ("4 stars"
    against "stars: 4.5")."""
    kinds = {_kind(m) for m in missing}
    passages = [i for i in range(window[0], window[1] + 1) if not ctx.sentences[i].fact] if window else []
    if ctx.structured:
        passages += [i for i in hits if ctx.sentences[i].fact and ctx.sentences[i].roots <= roots]
    return any(_kind(n) in kinds for i in passages for n in ctx.sentences[i].numbers - claimed if not n.isalpha())


_WORD_SPAN = re.compile(r"\w+(?:['’]\w+)*")  # text.raw_words' words: inner apostrophes only


# A clause delimiter (_CLAUSE) or a word (_WORD): the two never start with the same character, so one scan reads
# the words of each clause as _CLAUSE.split and _WORD.findall per clause would.
_CLAUSE_OR_WORD = re.compile(f"{_CLAUSE.pattern}|{_WORD.pattern}")
_DELIMITERS = frozenset(",;:()[]")


def _claim_words(sentence: str) -> tuple[list[str], list[str], list[list[str]]]:
    """The words of ``sentence`` as text.raw_words reads them (``_WORD_SPAN``), as ``_WORD`` does, and the
    latter per clause."""
    clauses: list[list[str]] = [[]]
    loose: list[str] = []
    for item in _CLAUSE_OR_WORD.findall(sentence):
        if item[0] in _DELIMITERS:
            clauses.append([])
        elif item[0].isspace():  # " but ": ends a clause, and is a word of the sentence
            clauses.append([])
            loose.append(item.strip())
        else:
            clauses[-1].append(item)
            loose.append(item)
    # Without an apostrophe both patterns read the same words.
    raw = loose if "'" not in sentence and "’" not in sentence else _WORD_SPAN.findall(sentence)
    return raw, loose, clauses


def _starts(text: str, raw: list[str]) -> list[int]:
    """Where each of ``raw``, the words a pattern found in ``text`` in order, starts: no word character lies
    between two of them, so each starts at the next occurrence of its text (cheaper than match objects)."""
    starts = []
    at = 0
    for word in raw:
        at = text.find(word, at)
        starts.append(at)
        at += len(word)
    return starts


def claim_features(
    sentence: str,
    ctx: Context,
    known_words: set[str],
    known_numbers: set[str],
    input_keys: set[str],
    *,
    check_negation: bool = True,
    flag_specifics: bool = True,
) -> ClaimFeatures:
    raw, loose, clauses = _claim_words(sentence)
    # (content key, root) per content word, None for the others; number words ("three") compare as numbers.
    per_word = list(map(_CONTENT.__getitem__, raw))
    content = [c for c in per_word if c]
    root_of = dict(content)
    keys = [k for k, _r in content]
    stated_numbers = number_keys(sentence)
    number_values = {v for _, v in stated_numbers if not v.isalpha()}
    number_values.update(filter(None, map(_NUMBER_WORD.__getitem__, raw)))
    novel = [k for k in keys if k not in input_keys and k not in _META_KEYS]
    novel_numbers = number_values - known_numbers
    judged = set(novel) if (novel or novel_numbers) else set(keys)
    judged_numbers = novel_numbers if (novel or novel_numbers) else number_values
    total = len(judged) + len(judged_numbers)
    judged_roots = {root_of[k] for k in judged}
    table, rare = idf_table()  # how much a root says, 0..1: "say" little, "toxophilite" and numbers the most
    weight = {r: table.get(r, rare) for r in judged_roots}
    weight.update(dict.fromkeys(judged_numbers, 1.0))
    weight_total = sum(weight.values())

    found_root = {k for k in judged if root_of[k] in ctx.roots}
    found_exact = judged & ctx.keys
    found_numbers = judged_numbers & ctx.numbers
    coverage = (len(found_root) + len(found_numbers)) / total if total else 1.0
    exact = (len(found_exact) + len(found_numbers)) / total if total else 1.0
    absent_roots = judged_roots - ctx.roots
    missing_numbers_set = judged_numbers - found_numbers
    absent_weight = sum(map(weight.__getitem__, absent_roots)) + len(missing_numbers_set)
    weighted = (weight_total - absent_weight) / weight_total if weight_total else 1.0

    # The best sentence and window, by shared roots and numbers (each weighed by what it says).
    hits: dict[int, float] = {}
    by_root, by_number = ctx.by_root, ctx.by_number
    for r in judged_roots:
        says = weight[r]
        for i in by_root.get(r, ()):
            hits[i] = hits.get(i, 0.0) + says
    for value in judged_numbers:
        for i in by_number.get(value, ()):
            hits[i] = hits.get(i, 0.0) + 1.0
    # The four best, the earliest of equals (a sort of (-weight, index) pairs: cheaper than heapq here).
    ranked = [i for _w, i in sorted(zip(map(operator.neg, hits.values()), hits, strict=True))[:4]]
    best = ranked[0] if ranked else None
    sentences = ctx.sentences
    count = len(sentences)
    denominator = len(judged_roots) + len(judged_numbers)
    best_window = idf_window = 0.0
    window = (best, best) if best is not None else None
    wanted = judged_roots | judged_numbers
    found_in: dict[int, set[str]] = {}  # per sentence near a ranked one: the wanted roots and numbers it has
    for i in ranked:
        for j in (i - 1, i, i + 1):
            if j not in found_in and 0 <= j < count:
                found_in[j] = (wanted & sentences[j].roots) | (wanted & sentences[j].numbers)
    # A window holds a subset of the wanted items, so neither share exceeds 1 (the weights are exact multiples of
    # 2**-32: a subset's sum is at most the total's); once the shares reach 1 no later window can replace the
    # chosen one (the comparisons are strict), and the windows left are not read. ``whole``: the chosen window
    # holds every wanted item.
    whole = False
    for i in ranked:
        if (idf_window + 1e-9 >= 1.0 or not weight_total) and (best_window >= 1.0 or not denominator):
            break
        for lo, hi in ((i, i), (i - 1, i), (i, i + 1), (i - 1, i + 1)):
            if lo < 0 or hi >= count or sentences[lo].doc != sentences[hi].doc:
                continue
            shared = found_in[lo] if lo == hi else found_in[lo].union(found_in[lo + 1], found_in[hi])
            share = sum(map(weight.__getitem__, shared)) / weight_total if weight_total else 0.0
            if share > idf_window + 1e-9:
                idf_window, window = share, (lo, hi)
                whole = len(shared) == len(wanted)
            if denominator and len(shared) / denominator > best_window:
                best_window = len(shared) / denominator
    # The claim's words that restate the question must sit in the passage its new words come from: "Bela Lugosi
    # was the original werewolf" is not grounded by a passage on Lugosi and another on the werewolf.
    # (Words of the question the context never uses are the user's own names for things: not counted.)
    restated = ({root_of[k] for k in keys if k in input_keys and k not in _META_KEYS} - judged_roots) & ctx.roots
    anchored = 1.0
    if restated and window is not None:
        near = set().union(*(sentences[j].roots for j in range(window[0], window[1] + 1)))
        anchored = len(restated & near) / len(restated)
    # The weakest clause: a baseless clause in an otherwise supported sentence ("..., after a bidding war").
    clause_found = clause_near = 1.0
    # (A window that holds every wanted item leaves every clause at 1: nothing to read.)
    if window is not None and len(wanted) >= 4 and not whole:
        # A clause's words are among the wanted ones: what the window and the context hold of those is enough.
        # (Every sentence of the window is a ranked one or next to one: ``found_in`` has it.)
        near = set().union(*(found_in[j] for j in range(window[0], window[1] + 1)))
        found = {w for w in wanted if w in ctx.roots or w in ctx.numbers}
        for clause in clauses:
            # Sequence values that are no wanted root or number (None for a stop word) drop out.
            said = wanted.intersection(map(_SEQUENCE.__getitem__, clause))
            if len(said) >= 2:
                clause_found = min(clause_found, len(said & found) / len(said))
                clause_near = min(clause_near, len(said & near) / len(said))
    pairs = 1.0
    claim_pairs = word_pairs([r for r in map(_SEQUENCE.__getitem__, raw) if r in wanted], reach=1)
    if claim_pairs and window is not None:
        stated: set[tuple[str, str]] = set()
        for j in range(window[0], window[1] + 1):
            stated |= claim_pairs & sentences[j].pairs
        pairs = len(stated) / len(claim_pairs)
    elif claim_pairs:
        pairs = 0.0

    # Content words found nowhere, and the longest run of them (numbers missing count too).
    # A content word is found nowhere when its root is one of ``absent_roots``: without those and without missing
    # numbers (a claim the context backs word for word, the usual case) there is no run to read.
    ctx_roots = ctx.roots
    absent = [k in judged and r not in ctx_roots for k, r in content] if absent_roots else []
    counted = [index for index, c in enumerate(per_word) if c] if absent_roots else []  # the index in ``raw`` of each
    if missing_numbers_set:
        if not absent_roots:
            absent = [False] * len(content)
            counted = [index for index, c in enumerate(per_word) if c]
        numbers_at = [
            index
            for index, w in enumerate(raw)
            if w[0].isdigit() and (w.replace(",", "").lstrip("0") or "0") in missing_numbers_set
        ]
        if numbers_at:  # in the order of the words (of one word, its content key first)
            merged = sorted(
                [(i, 0, a) for i, a in zip(counted, absent, strict=True)] + [(i, 1, True) for i in numbers_at]
            )
            counted = [i for i, _kind, _a in merged]
            absent = [a for _i, _kind, a in merged]
    baseless: list[tuple[int, int]] = []
    run_start = run_end = -1
    run_len = longest = 0
    if True in absent:  # offsets only for the claims with baseless words
        starts = _starts(sentence, raw)
        for index, found_nowhere in zip(counted, absent, strict=True):
            if found_nowhere:
                if run_len == 0:
                    run_start = starts[index]
                run_end, run_len = starts[index] + len(raw[index]), run_len + 1
                longest = max(longest, run_len)
            else:
                if run_len:
                    baseless.append((run_start, run_end))
                run_len = 0
        if run_len:
            baseless.append((run_start, run_end))
    missing_count = sum(absent)
    missing_idf = max([weight[r] for r in absent_roots] + [1.0 for _ in missing_numbers_set], default=0.0)

    missing = missing_specifics(sentence, ctx, known_words, known_numbers, stated_numbers) if flag_specifics else []
    missing_numbers = sum(1 for m in missing if any(ch.isdigit() for ch in m) or m.casefold() in NUMBER_WORDS)
    missing_names = len(missing) - missing_numbers

    conflict = None
    number_conflict = 0.0
    # Without a number the context lacks, nor a number and a record (``_field_disagrees``), no number disagrees.
    if missing_numbers_set or (number_values and ctx.structured):
        # A record field counts as named by the claim with all its words, the meta words too ("review stars: 4").
        named_roots = judged_roots | {root_of[k] for k in keys}
        if (
            missing_numbers_set
            and _states_other_number(ctx, window, hits, named_roots, missing_numbers_set, number_values)
        ) or _field_disagrees(ctx, hits, named_roots, number_values):
            number_conflict, conflict = 1.0, "number"
    claim_negated = NEGATED in map(_ROOTS.__getitem__, raw)
    flip = 1.0 if check_negation and negation_flip(sentence, ctx, judged_roots, claim_negated) else 0.0
    if flip and conflict is None:
        conflict = "negation"
    bare_negation = 0.0
    if check_negation and claim_negated and not flip:
        passage = list(range(window[0], window[1] + 1)) if window else []
        bare_negation = 0.0 if any(sentences[i].negated for i in (*passage, *ranked)) else 1.0
    opposite = 0.0
    swappable = judged_roots & OPPOSITE.keys()  # most claims have no word with a counterpart: nothing to read
    if swappable:
        near_roots = frozenset().union(*(sentences[i].roots for i in ranked[:3]))
        for r in swappable:
            if r not in near_roots and OPPOSITE[r] & near_roots:
                opposite = 1.0
    if opposite and conflict is None:
        conflict = "opposite"
    spoken = _FIRST_PERSON.intersection(map(_FOLDED.__getitem__, raw))
    if "us" in spoken and not any(
        (w == "us" and (i == 0 or raw[i - 1].casefold() != "the")) or w == "Us" for i, w in enumerate(raw)
    ):
        spoken = spoken - {"us"}  # "the US", "in the us": the country, not the speaker
    first_person = 1.0 if not all(map(ctx.words.__getitem__, spoken)) else 0.0

    values = {
        "coverage": coverage,
        "exact_coverage": exact,
        "idf_coverage": weighted,
        "best_window": best_window,
        "idf_window": idf_window,
        "pairs": pairs,
        "anchored": anchored,
        "clause_found": clause_found,
        "clause_near": clause_near,
        "missing_words": math.log1p(missing_count),
        "missing_idf": missing_idf,
        "baseless_run": longest / max(1, len(counted)),  # 0.0 without a baseless word, whatever ``counted``
        "missing_numbers": float(missing_numbers),
        "missing_names": float(missing_names),
        "number_conflict": number_conflict,
        "negation_flip": flip,
        "bare_negation": bare_negation,
        "opposite": opposite,
        "first_person": first_person,
        "length": math.log1p(len(keys)),
        "peer_overlap": _overlap(loose, ctx),
    }
    return ClaimFeatures(values, best, window, baseless, missing, conflict)


_SUPPORT = (
    "coverage",
    "exact_coverage",
    "idf_coverage",
    "best_window",
    "idf_window",
    "pairs",
    "anchored",
    "clause_found",
    "clause_near",
    "peer_overlap",
)
_MEAN_ONLY = ("length",)
ANSWER_FEATURES = (
    "answer_overlap",  # share of the whole answer's words found in the context
    "non_claims",  # share of the answer's sentences that make no claim (a personal remark beside the claims)
    "structured",  # the context holds a structured record
    "context_size",  # log(1 + words of context): the more context, the more words match by chance
)


_SINGLE = tuple((name, name in _MEAN_ONLY) for name in FEATURES)


def answer_features(claims: list[dict[str, float]], answer: dict[str, float]) -> list[float]:
    """The model's input for a set of claims (one claim: that claim alone): the weakest claim and the mean
    of each measure of support, the worst and the mean of each measure of trouble, the number of claims; and
    the measures of the whole answer (``ANSWER_FEATURES``)."""
    n = len(claims)
    out: list[float] = [answer[name] for name in ANSWER_FEATURES]
    if n == 1:  # one claim (every claim's own probability): its values stand for the weakest and the mean
        (claim,) = claims
        for name, single in _SINGLE:
            value = claim[name]
            if single:
                out.append(value)
            else:
                out += (value, value)
        out.append(0.0)
        return out
    for name in FEATURES:
        column = [c[name] for c in claims]
        if name in _SUPPORT:
            out.extend((min(column), sum(column) / n))
        elif name in _MEAN_ONLY:
            out.append(sum(column) / n)
        else:
            out.extend((max(column), sum(column) / n))
    out.append(math.log(n))
    return out


def answer_feature_names() -> list[str]:
    names: list[str] = list(ANSWER_FEATURES)
    for name in FEATURES:
        if name in _SUPPORT:
            names.extend((f"min_{name}", f"mean_{name}"))
        elif name in _MEAN_ONLY:
            names.append(f"mean_{name}")
        else:
            names.extend((f"max_{name}", f"mean_{name}"))
    names.append("log_claims")
    return names
