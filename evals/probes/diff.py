"""Side-by-side word diff of two answers (difflib), as plain segments: the template escapes and marks them, so
no HTML is ever built from an answer here."""

from __future__ import annotations

import re
from dataclasses import dataclass
from difflib import SequenceMatcher

_TOKENS = re.compile(r"\s+|[^\s]+")
MAX_TOKENS = 3000  # difflib is quadratic in the worst case; golden answers are short


@dataclass(frozen=True)
class Segment:
    text: str
    changed: bool


@dataclass(frozen=True)
class SideBySide:
    left: list[Segment]
    right: list[Segment]


def _merge(segments: list[Segment]) -> list[Segment]:
    merged: list[Segment] = []
    for seg in segments:
        if seg.text and merged and merged[-1].changed == seg.changed:
            merged[-1] = Segment(merged[-1].text + seg.text, seg.changed)
        elif seg.text:
            merged.append(seg)
    return merged


def side_by_side(before: str, after: str) -> SideBySide:
    """Words removed from ``before`` and added in ``after`` are ``changed``; whitespace keeps its place."""
    a, b = _TOKENS.findall(before)[:MAX_TOKENS], _TOKENS.findall(after)[:MAX_TOKENS]
    left: list[Segment] = []
    right: list[Segment] = []
    for op, i1, i2, j1, j2 in SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        left.append(Segment("".join(a[i1:i2]), op != "equal"))
        right.append(Segment("".join(b[j1:j2]), op != "equal"))
    return SideBySide(_merge(left), _merge(right))


def same_answer(a: str, b: str) -> bool:
    """Answers equal up to surrounding and repeated whitespace: a reflowed answer has not changed."""
    return " ".join(a.split()) == " ".join(b.split())
