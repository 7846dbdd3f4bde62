"""The labelled question set is fit to measure with: big, bilingual, honest."""

import json
from pathlib import Path

import pytest
from rapidfuzz import fuzz, process

from bot.evaluation import evaluate, read_question_set, summarise
from bot.knowledge import LANGUAGES, KnowledgeBase
from bot.matching import Matcher
from bot.matching.normalize import Normalizer
from bot.text import detect_language

QUESTIONS = Path(__file__).parent / "data" / "questions.jsonl"


@pytest.fixture(scope="module")
def labelled() -> list[dict[str, object]]:
    return [json.loads(line) for line in QUESTIONS.read_text(encoding="utf-8").splitlines()]


def test_the_set_is_large_bilingual_and_has_out_of_scope_questions(
    labelled: list[dict[str, object]],
) -> None:
    chinese = sum(detect_language(str(item["q"])) == "zh" for item in labelled)
    out_of_scope = sum(item["expect"] is None for item in labelled)
    assert len(labelled) >= 300
    assert chinese / len(labelled) >= 0.40
    assert out_of_scope / len(labelled) >= 0.15


def test_every_expected_entry_exists_and_every_entry_is_asked_about(
    labelled: list[dict[str, object]], knowledge: KnowledgeBase
) -> None:
    expected = {item["expect"] for item in labelled} - {None}
    assert expected <= set(knowledge.entries)
    assert set(knowledge.entries) <= expected


def test_no_question_is_a_near_copy_of_a_knowledge_base_phrasing(
    labelled: list[dict[str, object]], knowledge: KnowledgeBase
) -> None:
    normalizer = Normalizer()
    phrasings = [
        normalizer.fold(phrasing)
        for entry in knowledge
        for language in LANGUAGES
        for phrasing in entry.text(language).phrasings
    ]
    copies = []
    for item in labelled:
        question = normalizer.fold(str(item["q"]))
        found = process.extractOne(question, phrasings, scorer=fuzz.ratio, score_cutoff=90)
        if found is not None:
            copies.append((item["q"], found[0]))
    assert copies == []


def test_the_matcher_meets_its_published_figures_on_the_labelled_set(
    matcher: Matcher, knowledge: KnowledgeBase
) -> None:
    questions = read_question_set(QUESTIONS, knowledge)
    summary = summarise(questions, evaluate(matcher, questions))
    for language in ("en", "zh", "all"):
        figures = summary[language]
        assert figures["answered_correctly"] >= 0.85, language
        assert figures["answered_or_offered"] >= 0.95, language
        assert figures["confidently_wrong"] <= 0.03, language
        assert figures["out_of_scope_answered"] <= 0.05, language
