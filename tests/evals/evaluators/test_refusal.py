"""Refusal / non-answer detection: a table of answers and the label each must get."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from evals.evaluators.base import EvalItem
from evals.evaluators.refusal import PHRASES, RefusalDetection
from evals.services import run_evaluator

QUESTION = "How many days do I have to request a refund?"


def score(output: str, question: str = QUESTION, **params: Any):
    return run_evaluator(RefusalDetection.from_config(params), EvalItem(input=question, output=output))


def test_contract() -> None:
    assert RefusalDetection.name == "refusal"
    assert RefusalDetection.version == 2
    assert RefusalDetection.requires == {"answer"}
    assert RefusalDetection.queue == "scoring"
    assert RefusalDetection.default_enabled is True


@pytest.mark.parametrize(
    ("output", "label", "matched"),
    [
        # --- refusals
        ("I can't help with that.", "refusal", "I can't help"),
        ("I’m sorry, but I can’t assist with that request.", "refusal", "I can't assist"),  # curly apostrophes
        ("I cannot provide legal advice.", "refusal", "I cannot provide"),
        ("I am unable to help you with this.", "refusal", "I am unable to help"),
        ("Sorry, can't do that.", "refusal", "Sorry, can't do that"),
        ("That's not something I can help with.", "refusal", "not something I can help"),
        ("I must respectfully decline.", "refusal", "I must respectfully decline"),
        ("As an AI language model, I cannot browse the internet.", "refusal", "As an AI language model, I cannot"),
        ("I'm just an AI and I don't have opinions.", "refusal", "I'm just an AI and I don't"),
        ("I don't have access to your account details.", "refusal", "I don't have access"),
        ("I do not have real-time access to order data.", "refusal", "I do not have real-time access"),
        ("This request goes against my guidelines.", "refusal", "goes against my guidelines"),
        ("I'm not comfortable answering that.", "refusal", "I'm not comfortable"),
        # a refusal that goes on to help still counts (documented)
        ("I can't share the file, but the fee is 5 EUR.", "refusal", "I can't share"),
        # --- non-answers
        ("I don't know.", "non_answer", "I don't know"),
        ("Honestly, I don't know the answer to that.", "non_answer", "I don't know the answer to that"),
        ("I'm not sure.", "non_answer", "I'm not sure"),
        ("I have no idea, sorry!", "non_answer", "I have no idea"),
        ("I don't have enough information to answer.", "non_answer", "I don't have enough information"),
        ("The provided context does not contain any information about refunds.", "non_answer", "context does not"),
        ("The documents don't mention the answer.", "non_answer", "documents don't mention the answer"),
        ("There is no information about refunds.", "non_answer", "There is no information"),
        ("I couldn't find any details on that.", "non_answer", "I couldn't find"),
        ("…", "non_answer", "…"),  # no words (an empty answer is not applicable: see below)
        ("...", "non_answer", "..."),
        ("null", "non_answer", "null"),
        ("{{ answer }}", "non_answer", "{{ answer }}"),
        ("Let me check that for you.", "non_answer", "Let me check that for you."),
        ("One moment please...", "non_answer", "One moment please..."),
        # --- answers (false-positive traps)
        ("I can't wait to help! You have 30 days.", "answer", None),
        ("I can't help but notice you ordered twice; refunds take 30 days.", "answer", None),
        ("No, refunds are not available after 30 days.", "answer", None),
        ("You have 30 days to request a refund.", "answer", None),
        ("I don't know if you've seen it, but the window is 30 days.", "answer", None),
        ("You don't have access to refunds on the free plan.", "answer", None),  # "you", not "I"
        ("As an AI assistant for Acme, I'm happy to help: the window is 30 days.", "answer", None),
        ("Sorry for the wait! The window is 30 days.", "answer", None),
        ("Refunds after 30 days are against our policy.", "answer", None),  # a policy fact, not a refusal
        ("The context does not mention a fee, so returns are free.", "answer", None),
        ("None of the plans include a refund after 30 days.", "answer", None),
        ("None.", "answer", None),  # a legitimate short answer
        ("Let me check: the policy says 30 days.", "answer", None),  # a promise followed by content
        ("It is 30 days.", "answer", None),
        # a refusal phrase far into a long answer is not a refusal
        ("The window is 30 days. " + "Details follow. " * 30 + "I can't help with shipping.", "answer", None),
    ],
)
def test_english(output: str, label: str, matched: str | None) -> None:
    result = score(output)
    assert result is not None
    assert result.label == label, (result.explanation, result.evidence)
    if label == "answer":
        assert result.value == 0.0
        assert result.passed is True
        assert result.evidence["matched"] is None
    else:
        assert result.value == 1.0
        assert result.passed is False
        assert matched is not None
        assert matched.casefold() in result.evidence["matched"].casefold().replace("’", "'")


@pytest.mark.parametrize(
    ("output", "label", "language"),
    [
        ("Je suis désolé, mais je ne peux pas vous aider.", "refusal", "fr"),
        ("Je ne suis pas en mesure de répondre à cette question.", "refusal", "fr"),
        ("Je n'ai pas accès à votre compte.", "refusal", "fr"),
        ("Je ne sais pas.", "non_answer", "fr"),
        ("Je ne sais pas si vous avez vu notre offre : 30 jours.", "answer", None),
        ("Vous avez 30 jours pour demander un remboursement.", "answer", None),
        ("Lo siento, pero no puedo ayudarte con eso.", "refusal", "es"),
        ("No tengo acceso a esa información.", "refusal", "es"),
        ("No lo sé.", "non_answer", "es"),
        ("No sé.", "non_answer", "es"),
        ("No se, lo siento.", "non_answer", "es"),  # the common accent-less spelling
        ("No se aceptan devoluciones después de 30 días.", "answer", None),  # "se" + verb: not "no sé"
        ("No, el plazo es de 30 días.", "answer", None),
        ("Ich kann Ihnen dabei leider nicht helfen.", "refusal", "de"),
        ("Ich kann diese Frage nicht beantworten.", "refusal", "de"),
        ("Als KI habe ich keinen Zugriff auf Ihr Konto.", "refusal", "de"),
        ("Das weiß ich nicht.", "non_answer", "de"),
        ("Ich weiss es nicht.", "non_answer", "de"),
        ("Ich kann es kaum erwarten, Ihnen zu helfen: 30 Tage.", "answer", None),
        ("Nein, nach 30 Tagen gibt es keine Erstattung.", "answer", None),
    ],
)
def test_multilingual(output: str, label: str, language: str | None) -> None:
    result = score(output)
    assert result is not None
    assert result.label == label, (result.explanation, result.evidence)
    if language is not None:
        assert result.evidence["language"] == language


def test_languages_param_limits_the_phrases() -> None:
    result = score("Je ne sais pas.", languages=["en"])
    assert result is not None and result.label == "answer"


@pytest.mark.parametrize(
    ("question", "output", "label"),
    [
        (QUESTION, "How many days do I have to request a refund?", "non_answer"),
        (QUESTION, "how many days do i have to request a refund", "non_answer"),  # case and punctuation
        (QUESTION, "So, how many days do I have to request a refund?", "non_answer"),
        (QUESTION, "You have 30 days to request a refund.", "answer"),
        ("Is the refund window 30 days?", "The refund window is 30 days.", "answer"),  # a yes-answer
        ("Is it 30 days?", "It is 30 days.", "answer"),  # short questions are never "restated"
        ("Hello there", "Hello there!", "answer"),
    ],
)
def test_restating_the_question(question: str, output: str, label: str) -> None:
    result = score(output, question=question)
    assert result is not None
    assert result.label == label, (result.explanation, result.evidence)
    if label == "non_answer":
        assert result.evidence["reason"] == "restates_question"
        assert result.evidence["similarity"] >= 0.9


def test_restatement_threshold() -> None:
    output = "So, how many days do I have to request a refund?"
    assert score(output, restatement_threshold=1.0).label == "answer"


@pytest.mark.parametrize(
    ("output", "dont_know_passes", "passed"),
    [
        ("I don't know.", False, False),
        ("I don't know.", True, True),  # a correct "I don't know" is accepted when configured
        ("The context does not contain the answer.", True, True),
        ("I can't help with that.", True, False),  # a refusal is never an honest "I don't know"
        ("…?!", True, False),  # nor is an answer without words
        ("How many days do I have to request a refund?", True, False),
    ],
)
def test_dont_know_passes(output: str, dont_know_passes: bool, passed: bool) -> None:
    result = score(output, dont_know_passes=dont_know_passes)
    assert result is not None
    assert result.passed is passed
    assert result.value == 1.0  # still detected either way
    assert result.label != "answer"


def test_answer_without_words_can_be_left_unscored() -> None:
    assert score("…", empty_is_non_answer=False) is None
    assert score("I don't know.", empty_is_non_answer=False) is not None


@pytest.mark.parametrize("error", ["", "HTTP 429: rate limited"])
def test_a_missing_answer_is_not_applicable_not_a_refusal(error: str) -> None:
    """No answer text (content capture off, or an errored call) is not applicable: a failed call is an error,
    counted once as an error, never also as a refusal."""
    item = EvalItem(input=QUESTION, output="  ", error=error)
    assert run_evaluator(RefusalDetection.from_config({}), item) is None
    reason = RefusalDetection.not_applicable(item)
    assert reason is not None
    assert ("429" in reason) == bool(error)


def test_evidence_shape() -> None:
    result = score("Well... I'm sorry, but I cannot help with that.")
    assert result is not None
    assert result.evidence == {
        "reason": "phrase",
        "matched": "I cannot help",
        "pattern": "en.cannot_help",
        "language": "en",
        "position": 23,
    }
    assert "I cannot help" in result.explanation


def test_earliest_phrase_wins() -> None:
    result = score("I don't know, and I can't help with that.")
    assert result is not None
    assert result.label == "non_answer"
    assert result.evidence["pattern"] == "en.dont_know"


def test_scan_window() -> None:
    long_answer = "x " * 200 + "I can't help with that."
    assert score(long_answer).label == "answer"
    assert score(long_answer, scan_chars=1000).label == "refusal"


def test_extra_patterns() -> None:
    result = score("Please contact a human agent.", extra_patterns=[r"contact a human"])
    assert result is not None
    assert result.label == "refusal"
    assert result.evidence["pattern"] == "custom.0"


def test_phrase_ids_are_unique() -> None:
    ids = [p.id for p in PHRASES]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        ({"languages": ["it"]}, "languages", "Input should be 'en', 'fr', 'es' or 'de'"),
        ({"languages": []}, "languages", "at least 1 item"),
        ({"restatement_threshold": 0.2}, "restatement_threshold", "greater than or equal to 0.5"),
        ({"scan_chars": 0}, "scan_chars", "greater than or equal to 20"),
        ({"extra_patterns": ["(oops"]}, "extra_patterns", "extra_patterns[0] is not a valid regular expression"),
        ({"extra_patterns": ["x*"]}, "extra_patterns", "matches the empty string"),
        ({"dont_know_pass": True}, "dont_know_pass", "Extra inputs are not permitted"),
    ],
)
def test_invalid_params(params: dict[str, Any], field: str, message: str) -> None:
    with pytest.raises(ValidationError) as info:
        RefusalDetection.from_config(params)
    assert field in str(info.value)
    assert message in str(info.value)


def test_long_prompts_are_not_checked_for_restatement() -> None:
    prompt = "Summarise the following refund policy for a customer in plain words. " * 20  # > 1000 characters
    assert score(prompt, question=prompt).label == "answer"
    short = "Summarise the following refund policy for a customer in plain words."
    assert score(short, question=short).label == "non_answer"
