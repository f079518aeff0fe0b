"""Refusal and non-answer detection.

Labels:
- ``refusal``: the model declines ("I can't help with that", "As an AI, I cannot…", "I don't have access to…").
- ``non_answer``: the model answers nothing: "I don't know", "the context does not contain the information",
  an empty answer, a placeholder ("null", "Let me check."), or an answer that only restates the question.
- ``answer``: anything else.

``value`` is 1.0 for a refusal or non-answer, 0.0 for an answer; ``passed`` is False for a refusal or a non-answer,
except that ``dont_know_passes`` lets an honest "I don't know" pass (for services where admitting ignorance
is the right behaviour when the context lacks the answer). ``evidence.matched`` is the phrase that matched.

Phrases are looked for in the opening ``scan_chars`` characters (refusals come first; a long answer that
mentions "I can't" in its tenth paragraph is an answer). They are written to avoid the usual false
positives: "I can't wait to help!", "I can't help but notice…", "No, refunds are not available…", "I don't
know if you have seen our new plan…", Spanish "No se aceptan devoluciones" ("no sé" only counts when it ends a
clause, so its common accent-less spelling "No se, lo siento" is still caught).
A refusal that goes on to answer ("I can't share the file, but the fee is 5 €") still counts as a refusal.
English plus a few common French, Spanish and German phrases; ``extra_patterns`` adds your own.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from difflib import SequenceMatcher
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from evals.evaluators.base import EvalItem, EvalResult, Evaluator

Language = Literal["en", "fr", "es", "de"]
Kind = Literal["refusal", "non_answer"]
ALL_LANGUAGES: tuple[Language, ...] = ("en", "fr", "es", "de")


@dataclass(frozen=True)
class _Phrase:
    id: str
    language: str
    kind: Kind
    dont_know: bool  # an admission of ignorance, which ``dont_know_passes`` may accept
    regex: re.Pattern[str]


def _p(id_: str, language: str, kind: Kind, pattern: str, *, dont_know: bool = False) -> _Phrase:
    return _Phrase(id_, language, kind, dont_know, re.compile(pattern, re.IGNORECASE))


_NEG = (
    r"(?:can(?:'t|not| not)|could(?:n't| not)|won't|will not|(?:am|'m) (?:not able|unable|not allowed|not permitted))"
)
_HELP_VERBS = (
    r"(?:help(?!\s+but\b)|assist|answer|provide|comply|fulfil+|share|disclose|discuss|give|support|process|"
    r"complete|engage|respond|generate|create|write|do (?:that|this))"
)
_END = r"(?=\s*(?:[.!?,;:…]|$))"  # the phrase ends a clause: "I don't know." but not "I don't know if…"
_AI = (
    r"(?:an? )?(?:AI|A\.I\.|artificial intelligence|(?:large )?language model|LLM|AI (?:language )?model|AI assistant)"
)

PHRASES: tuple[_Phrase, ...] = (
    # --- English refusals
    _p("en.cannot_help", "en", "refusal", rf"(?:\bI\s*|\bsorry,?\s+(?:but\s+)?){_NEG}\s+(?:to\s+)?{_HELP_VERBS}\b"),
    _p("en.not_something_i_can", "en", "refusal", r"\bnot something I(?:'m| am)? (?:can|able to) (?:help|assist)"),
    _p(
        "en.decline",
        "en",
        "refusal",
        r"\bI (?:must|have to|need to|will have to) (?:respectfully |politely )?decline\b",
    ),
    _p(
        "en.as_an_ai",
        "en",
        "refusal",
        rf"\b(?:as|I(?:'m| am)(?: just| only)?) {_AI}\b[^.!?\n]{{0,60}}?"
        r"(?:\b(?:can(?:'t|not| not)|don't|do not|won't|will not|unable|have no|lack)\b|'m not\b|\bam not\b)",
    ),
    _p(
        "en.no_access",
        "en",
        "refusal",
        r"\bI\s*(?:do(?:n't| not) have|have no)\s+(?:direct\s+|real-time\s+|live\s+)?access\b"
        rf"|\bI\s*{_NEG}\s+(?:to\s+)?(?:access|browse)\b",
    ),
    _p("en.no_ability", "en", "refusal", r"\bI\s*(?:do(?:n't| not) have|lack) the (?:ability|capability) to\b"),
    _p(
        "en.guidelines",
        "en",
        "refusal",
        r"\b(?:against|violates?|goes against) my (?:guidelines|programming|policies|principles)\b",
    ),
    _p("en.not_comfortable", "en", "refusal", r"\bI(?:'m| am) not comfortable\b"),
    # --- English non-answers
    _p(
        "en.dont_know",
        "en",
        "non_answer",
        r"\bI\s*(?:really\s+|honestly\s+|simply\s+)?(?:do(?:n't| not)|didn't|did not) know"
        rf"(?:\s+(?:the answer(?:\s+to\s+(?:that|this|your question))?|that|for sure|exactly|offhand))?{_END}",
        dont_know=True,
    ),
    _p(
        "en.not_sure",
        "en",
        "non_answer",
        r"\bI(?:'m| am) (?:not (?:sure|certain)|unsure)(?:\s+(?:about (?:that|this)|of the answer))?(?=\s*(?:[.!?…]|$))",
        dont_know=True,
    ),
    _p("en.no_idea", "en", "non_answer", r"\bI have no idea\b", dont_know=True),
    _p(
        "en.not_enough_info",
        "en",
        "non_answer",
        r"\bI\s*(?:do(?:n't| not) have|have no|lack)\s+"
        r"(?:(?:enough|sufficient|the|any|that|this|relevant|specific|necessary|required|more|such)\s+){0,2}"
        r"(?:information|info|details|data|context|knowledge)\b",
        dont_know=True,
    ),
    _p(
        "en.context_lacks",
        "en",
        "non_answer",
        r"\b(?:context|documents?|sources?|passages?|(?:provided|given) (?:text|information|material))\s+"
        r"(?:does|do|did)\s*(?:n't| not)\s+(?:contain|include|provide|mention|specify|say|have|cover)\s+"
        r"(?:(?:any|enough|the|this|that|sufficient|relevant|specific|an?)\s+){0,2}"
        r"(?:information|info|details|answer|data|mention)\b",
        dont_know=True,
    ),
    _p(
        "en.no_information",
        "en",
        "non_answer",
        r"^\s*(?:unfortunately,?\s+)?there (?:is|was) no (?:information|data|mention|answer)\b",
        dont_know=True,
    ),
    _p(
        "en.cannot_find",
        "en",
        "non_answer",
        r"\bI\s*(?:can(?:'t|not| not)|could(?:n't| not)|was(?:n't| not) able to|(?:am|'m) (?:not able|unable) to)"
        r"\s+(?:find|locate|determine|identify)\b",
        dont_know=True,
    ),
    # --- French
    _p(
        "fr.cannot_help",
        "fr",
        "refusal",
        r"\bje ne (?:peux|pourrai|suis) pas(?: en mesure d(?:e\s+|'))?\s*(?:vous\s+|t'|te\s+)?"
        r"(?:aider|répondre|fournir|assister|partager|donner)\b",
    ),
    _p("fr.no_access", "fr", "refusal", r"\bje n'ai pas accès\b"),
    _p(
        "fr.as_an_ai",
        "fr",
        "refusal",
        r"\ben tant qu(?:e |')(?:IA|intelligence artificielle|modèle de langage|assistant virtuel)\b[^.!?\n]{0,60}?"
        r"(?:\bne\b|\bn')",
    ),
    _p("fr.dont_know", "fr", "non_answer", rf"\bje ne (?:le )?sais pas{_END}|\bje n'en sais rien\b", dont_know=True),
    _p(
        "fr.not_enough_info",
        "fr",
        "non_answer",
        r"\bje n'ai pas (?:assez|suffisamment|les) (?:d')?informations?\b",
        dont_know=True,
    ),
    # --- Spanish
    _p(
        "es.cannot_help",
        "es",
        "refusal",
        r"\bno puedo (?:ayudar(?:te|le|les)?|responder|proporcionar|ofrecer|dar|compartir|asistir)\b"
        r"|\b(?:lo siento|disculpa|disculpe),?\s+(?:pero\s+)?no puedo\b",
    ),
    _p("es.no_access", "es", "refusal", r"\bno tengo acceso\b"),
    _p(
        "es.as_an_ai",
        "es",
        "refusal",
        r"\bcomo (?:una?\s+)?(?:IA|inteligencia artificial|modelo de lenguaje)\b[^.!?\n]{0,60}?\bno\b",
    ),
    _p("es.dont_know", "es", "non_answer", rf"\bno (?:lo )?s[ée]{_END}", dont_know=True),
    _p(
        "es.not_enough_info",
        "es",
        "non_answer",
        r"\bno tengo (?:suficiente|la|esa|esta) información\b|\bno tengo información suficiente\b",
        dont_know=True,
    ),
    # --- German
    _p(
        "de.cannot_help",
        "de",
        "refusal",
        r"\bich kann\b[^.!?\n]{0,40}?\bnicht\s+(?:\w+\s+)?(?:helfen|weiterhelfen|beantworten|antworten|geben)\b",
    ),
    _p("de.no_access", "de", "refusal", r"\bich habe keinen zugriff\b"),
    _p(
        "de.as_an_ai",
        "de",
        "refusal",
        r"\bals (?:eine?\s+)?(?:KI|künstliche intelligenz|sprachmodell)\b[^.!?\n]{0,60}?\b(?:nicht|kein\w*)\b",
    ),
    _p(
        "de.dont_know",
        "de",
        "non_answer",
        rf"\b(?:ich wei(?:ß|ss) (?:es |das )?nicht|das wei(?:ß|ss) ich nicht){_END}",
        dont_know=True,
    ),
)

# Whole answers that say nothing: template placeholders and "hold on" messages with no content after them.
_PLACEHOLDER = re.compile(
    r"^\s*(?:null|undefined|\{\{.*\}\}|"
    r"(?:ok(?:ay)?[,.!]?\s+)?(?:let me (?:check|look(?: into)?|find out|see)(?: (?:that|this|it|into it))?"
    r"(?: for you)?|one moment(?: please)?|please (?:wait|hold)))\s*[.!…]*\s*$",
    re.IGNORECASE,
)
_APOSTROPHES = str.maketrans({"’": "'", "‘": "'", "ʼ": "'"})
_WORDS = re.compile(r"[^\W_]+")
_RESTATE_MAX_CHARS = 1000  # questions longer than this are not checked for restatement


class RefusalParams(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    dont_know_passes: bool = Field(
        False, description="An honest 'I don't know' passes (it is still labelled non_answer)."
    )
    empty_is_non_answer: bool = Field(
        True,
        description="An answer with no words (only punctuation or symbols) is a non-answer; when off, it is not "
        "scored. A trace without answer text is never scored: not applicable, not a refusal.",
    )
    languages: list[Language] = Field(
        default_factory=lambda: list(ALL_LANGUAGES),
        min_length=1,
        description="Languages whose phrases are looked for.",
    )
    scan_chars: int = Field(300, ge=20, le=100_000, description="Only the opening characters are searched.")
    restatement_threshold: float = Field(
        0.9,
        ge=0.5,
        le=1.0,
        description="An answer at least this similar to the question (of 4+ words) only restates it.",
    )
    extra_patterns: list[str] = Field(
        default_factory=list,
        max_length=50,
        description="More refusal phrases as case-insensitive regular expressions.",
    )

    @field_validator("extra_patterns")
    @classmethod
    def _compilable(cls, patterns: list[str]) -> list[str]:
        for index, pattern in enumerate(patterns):
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"extra_patterns[{index}] is not a valid regular expression: {exc}") from None
            if re.search(pattern, ""):
                raise ValueError(f"extra_patterns[{index}] matches the empty string, so it would match every answer")
        return patterns


class RefusalDetection(Evaluator[RefusalParams]):
    name = "refusal"
    version = 2  # 2: a trace without answer text (an errored call, no captured content) is not applicable
    requires = frozenset({"answer"})
    title = "Refusal / non-answer"
    description = (
        'Flags answers that refuse ("I can\'t help with that"), say nothing ("I don\'t know", empty, a '
        "placeholder) or only restate the question."
    )
    Params = RefusalParams
    queue = "scoring"
    default_enabled = True

    def __init__(self, params: RefusalParams):
        super().__init__(params)
        languages = set(params.languages)
        phrases = [p for p in PHRASES if p.language in languages]
        phrases += [_p(f"custom.{i}", "custom", "refusal", pattern) for i, pattern in enumerate(params.extra_patterns)]
        self._phrases = tuple(phrases)

    def evaluate(self, item: EvalItem) -> EvalResult | None:
        answer = item.output.translate(_APOSTROPHES)
        if not _WORDS.search(answer):
            if not self.params.empty_is_non_answer:
                return None
            shown = answer.strip()
            return self._flag(
                "non_answer",
                "The answer contains no words.",
                {"reason": "empty", "matched": shown[:40]},
                dont_know=False,
            )

        best: tuple[int, int, _Phrase, re.Match[str]] | None = None
        window = answer[: self.params.scan_chars]
        for order, phrase in enumerate(self._phrases):
            match = phrase.regex.search(window)
            if match and (best is None or (match.start(), order) < best[:2]):
                best = (match.start(), order, phrase, match)
        if best is not None:
            _, _, phrase, match = best
            matched = match.group(0).strip()
            what = "refuses" if phrase.kind == "refusal" else "does not answer"
            return self._flag(
                phrase.kind,
                f"The answer {what}: “{_cap(matched)}”.",
                {
                    "reason": "phrase",
                    "matched": _cap(matched),
                    "pattern": phrase.id,
                    "language": phrase.language,
                    "position": match.start(),
                },
                dont_know=phrase.dont_know,
            )

        placeholder = _PLACEHOLDER.match(answer)
        if placeholder:
            shown = answer.strip()
            return self._flag(
                "non_answer",
                f"The answer is only a placeholder: “{_cap(shown)}”.",
                {"reason": "placeholder", "matched": _cap(shown)},
                dont_know=False,
            )

        similarity = self._restatement(item.input, answer)
        if similarity is not None:
            return self._flag(
                "non_answer",
                f"The answer only restates the question (similarity {similarity:.2f}).",
                {"reason": "restates_question", "matched": _cap(answer.strip()), "similarity": similarity},
                dont_know=False,
            )

        return EvalResult(
            value=0.0,
            passed=True,
            label="answer",
            explanation="The answer neither refuses nor evades the question.",
            evidence={"reason": None, "matched": None},
        )

    def _restatement(self, question: str, answer: str) -> float | None:
        q_words = [_fold(w) for w in _WORDS.findall(question[: _RESTATE_MAX_CHARS + 1])]
        # Short questions are echoed by legitimate answers ("Is it 30 days?" → "It is 30 days."); a long prompt
        # is not something an answer restates, and comparing it would be quadratic.
        if len(q_words) < 4 or len(question) > _RESTATE_MAX_CHARS:
            return None
        a_words = [_fold(w) for w in _WORDS.findall(answer[: 2 * _RESTATE_MAX_CHARS + 1])]
        if len(a_words) > 2 * len(q_words):
            return None
        matcher = SequenceMatcher(None, " ".join(q_words), " ".join(a_words), autojunk=False)
        threshold = self.params.restatement_threshold
        if matcher.real_quick_ratio() < threshold or matcher.quick_ratio() < threshold:
            return None
        ratio = round(matcher.ratio(), 4)
        return ratio if ratio >= threshold else None

    def _flag(self, label: Kind, explanation: str, evidence: dict[str, Any], *, dont_know: bool) -> EvalResult:
        passed = dont_know and self.params.dont_know_passes
        if passed:
            explanation += " An honest “I don't know” is accepted for this service."
        return EvalResult(value=1.0, passed=passed, label=label, explanation=explanation, evidence=evidence)


def _fold(word: str) -> str:
    decomposed = unicodedata.normalize("NFKD", word.casefold())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def _cap(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
