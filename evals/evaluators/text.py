"""Small text helpers shared by evaluators: sentence spans, word tokens, a light stemmer, numbers.

Pure Python and fast (compiled regular expressions, no model). Everything works on any script: words are
Unicode ``\\w`` runs, case is folded and accents are stripped before comparison. Sentence splitting returns
character spans so that callers can quote each sentence as an exact substring of the original text.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from functools import lru_cache
from typing import Any


def _wordlist(text: str) -> tuple[str, ...]:
    """Word lists are written as text: one space-separated string reads better than a column of quotes."""
    return tuple(text.split())


def _wordset(text: str) -> frozenset[str]:
    return frozenset(text.split())


# --- sentences -------------------------------------------------------------------------------------------

# Words after which a period does not end a sentence (compared case-folded, without the period).
ABBREVIATIONS = _wordset(
    "mr mrs ms dr prof sr jr st vs etc e.g i.e eg ie inc ltd co corp no nos fig figs approx dept est u.s "
    "u.k u.s.a a.m p.m jan feb mar apr jun jul aug sep sept oct nov dec mt ft gen col lt sgt capt gov rev "
    "hon al cf ca op vol pp ed eds"
)

# A sentence ends at . ! ? … (or CJK 。！？), with any closing quotes or brackets after it, when followed by
# whitespace or the end. A period glued to a capitalised word ("century.First") also ends one: retrieved
# text often loses the space between sentences. Every alternative starts with one of the stops: the lookahead
# for them in front rejects the other characters before the engine tries the alternatives (3x faster).
_END = re.compile(
    r"""(?=[.!?…。！？])(?:[.!?…。！？]+["'”’)\]]*(?=\s|$)|(?<=[a-z0-9)\]"”])\.(?=[A-Z][a-z])|[。！？]+)"""
)
_BULLET = re.compile(r"\s*(?:[-*•‣◦·–—>]+|\(?\d{1,3}[.)]|\([a-z]\))\s+")
_LINE_BREAK = re.compile(r"\n\s*\n|\n(?=\s*(?:[-*•‣◦·>]|\d{1,3}[.)]|#)\s)")


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) offsets of the sentences of ``text``: stripped of surrounding whitespace and of a
    leading list marker, never empty. ``text[start:end]`` is the sentence."""
    spans: list[tuple[int, int]] = []
    for block_start, block_end in _blocks(text):
        start = block_start
        for match in _END.finditer(text, block_start, block_end):
            end = match.end()
            if _is_false_stop(text, start, match.start(), match.group()):
                continue
            _add_span(text, start, end, spans)
            start = end
        _add_span(text, start, block_end, spans)
    return spans


def split_sentences(text: str) -> list[str]:
    return [text[a:b] for a, b in sentence_spans(text)]


def _blocks(text: str) -> list[tuple[int, int]]:
    """Paragraphs and list items: a blank line, or a line break before a list marker or a heading, always
    ends a sentence; a single line break inside a paragraph does not (hard-wrapped text)."""
    blocks = []
    start = 0
    for match in _LINE_BREAK.finditer(text):
        blocks.append((start, match.start()))
        start = match.end()
    blocks.append((start, len(text)))
    return blocks


def _is_false_stop(text: str, start: int, stop: int, punct: str) -> bool:
    if not punct.startswith("."):
        return False
    begin = stop
    while begin > start and (text[begin - 1].isalnum() or text[begin - 1] == "."):
        begin -= 1
    token = text[begin:stop]
    if not token:
        return False
    if token.isdigit() and not text[start:begin].strip():
        return True  # "1. First item": a list number, not the end of a sentence
    folded = token.casefold()
    if folded in ABBREVIATIONS:
        return True
    # An initial ("J. K. Rowling") or a dotted acronym ("U.S."); not a unit after a number ("18°C.", "5 V.").
    if len(token) == 1 and token.isupper():
        before = text[start:begin].rstrip(" ")
        return not (before and (before[-1].isdigit() or before[-1] == "°"))
    return bool(re.fullmatch(r"(?:[A-Za-z]\.)+[A-Za-z]", token))


def _add_span(text: str, start: int, end: int, spans: list[tuple[int, int]]) -> None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    bullet = _BULLET.match(text, start, end)
    if bullet and bullet.end() < end:
        start = bullet.end()
    if start < end and any(ch.isalnum() for ch in text[start:end]):
        spans.append((start, end))


# --- words -----------------------------------------------------------------------------------------------

STOPWORDS = _wordset(
    "a about above after again against all also am an and any are as at be because been before being "
    "below between both but by can could did do does doing down during each few for from further had has "
    "have having he her here hers herself him himself his how i if in into is it its itself just me more "
    "most my myself of off on once only or other our ours ourselves out over own same she should so some "
    "such than that the their theirs them themselves then there these they this those through to too "
    "under until up very was we were what when where which while who whom why will with would you your "
    "yours yourself yourselves let lets may might must shall also yes ok okay well oh via per upon onto "
    "within among amongst whether though although however therefore thus hence yet still even just really "
    "actually basically here's there's it's that's what's i'm i've i'd i'll you're you've you'd you'll "
    "he's she's we're we've they're they've let's one ones s t get gets got make makes made use used "
    "using like"
)

NEGATIONS = _wordset("not no never none nobody nothing nowhere neither nor cannot without n't unable unavailable")

_WORD = re.compile(r"\w+(?:['’]\w+)*")


@lru_cache(maxsize=65536)
def fold(word: str) -> str:
    """Case-folded, accents stripped, typographic apostrophe made plain, possessive 's removed."""
    word = word.casefold().replace("’", "'")
    if not word.isascii():
        decomposed = unicodedata.normalize("NFKD", word)
        word = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    if word.endswith("'s"):
        word = word[:-2]
    return word


def raw_words(text: str) -> list[str]:
    """Word tokens as written (Unicode letters and digits, inner apostrophes kept)."""
    return _WORD.findall(text)


def words(text: str) -> list[str]:
    """Folded word tokens ("Acme's" → "acme", "Café" → "cafe")."""
    return [fold(raw) for raw in _WORD.findall(text)]


@lru_cache(maxsize=65536)
def is_negation(word: str) -> bool:
    return word in NEGATIONS or word.endswith("n't")


@lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """A light, deterministic suffix stripper (plural, -ed, -ing, -ly, final e). It only needs to map the
    inflections of one word to one key, on both sides of a comparison; it is not a linguistic stemmer."""
    if len(word) <= 3 or not word.isalpha():
        return word
    if (word.endswith("ies") and len(word) > 4) or (word.endswith("ied") and len(word) > 4):
        word = word[:-3] + "y"
    elif word.endswith("sses") or (word.endswith("es") and word[-3] in "sxz") or word.endswith(("ches", "shes")):
        word = word[:-2]
    elif word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    for suffix in ("ingly", "edly", "ing", "ed", "ly"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)]
            if len(word) > 3 and word[-1] == word[-2] and word[-1] not in "lsz":
                word = word[:-1]  # running → run, stopped → stop
            break
    if word.endswith("e") and len(word) > 3:
        word = word[:-1]
    return word


# --- numbers ---------------------------------------------------------------------------------------------

_NUMBER_NAMES = _wordlist(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty"
)
NUMBER_WORDS = {w: str(i) for i, w in enumerate(_NUMBER_NAMES)}
NUMBER_WORDS.update(
    {"thirty": "30", "forty": "40", "fifty": "50", "sixty": "60", "seventy": "70", "eighty": "80", "ninety": "90"}
)
NUMBER_WORDS.update({"hundred": "100", "thousand": "1000", "dozen": "12", "first": "1", "second": "2", "third": "3"})

_MONTH_LIST = _wordlist("january february march april may june july august september october november december")
MONTHS = {m: i + 1 for i, m in enumerate(_MONTH_LIST)}
_MONTH_NAMES = {v: k for k, v in MONTHS.items()}

# A number as written: optional currency sign and one space (read backwards from the digits, ``_written``),
# digits with thousands separators, decimals, then an optional ordinal suffix, decade "s", or percent sign. ISO
# dates are handled first. Both patterns start with a digit, their word boundary checked behind it: the engine
# then skips from digit to digit, where an optional prefix or a leading assertion made it try every character
# (7x slower on a long text).
_ISO_DATE = re.compile(r"(\d(?<!\w\d)\d{3})-(\d{1,2})-(\d{1,2})\b")
_NUMBER = re.compile(r"(\d(?<![\w.]\d)(?:\d{0,2}(?:,\d{3})+|\d*))(?:\.(\d+))?(?:st|nd|rd|th|s)?%?(?!\w)")
_CURRENCY = frozenset("$€£¥₹")
_SPACE = re.compile(r"\s")


def normalise_number(integer: str, decimals: str | None = None) -> str:
    """'1,000' → '1000', '29.00' → '29', '29.50' → '29.5', '007' → '7'."""
    value = integer.replace(",", "").lstrip("0") or "0"
    if decimals:
        decimals = decimals.rstrip("0")
        if decimals:
            value = f"{value}.{decimals}"
    return value


def numbers(text: str) -> list[tuple[str, str]]:
    """(as written, normalised) for each number in ``text``; an ISO date yields its year, month name and
    day so that it compares with "March 5, 2024"."""
    found: list[tuple[str, str]] = []
    for match in _ISO_DATE.finditer(text):
        year, month, day = match.groups()
        found.append((match.group(), normalise_number(year)))
        found.append((match.group(), normalise_number(day)))
        if 1 <= int(month) <= 12:
            found.append((match.group(), _MONTH_NAMES[int(month)]))
    rest = _ISO_DATE.sub(" ", text) if found else text
    for match in _NUMBER.finditer(rest):
        found.append((_written(rest, match), normalise_number(match.group(1), match.group(2))))
    return found


def _written(text: str, match: re.Match[str]) -> str:
    """The number ``match`` as written: with the currency sign and the one space before its digits, when there
    are ("$5", "$ 5"). The previous number cannot end on either, so they belong to this one."""
    start = match.start()
    if start and _SPACE.match(text, start - 1):
        start -= 1
    if start and text[start - 1] in _CURRENCY:
        start -= 1
    return text[start : match.end()].strip()


def string_leaves(value: Any, depth: int = 0) -> Iterable[str]:
    """The string leaves of a tool result (a string, or JSON-like dicts and lists)."""
    if isinstance(value, str):
        yield value
    elif depth > 20:
        return
    elif isinstance(value, dict):
        for v in value.values():
            yield from string_leaves(v, depth + 1)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from string_leaves(v, depth + 1)
    elif isinstance(value, bytes):
        yield value.decode("utf-8", errors="replace")
