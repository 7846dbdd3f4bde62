"""The matcher's decisions: answer when one entry is clearly right, ask when unsure, else hand off."""

from pathlib import Path

import pytest

from bot.knowledge import KnowledgeBase, load_knowledge
from bot.matching import Matcher, Thresholds, normalize

ENTRY = """\
  - id: {id}
    topic: patents
    en:
      question: {en}
      alternates: [{alternates}]
      answer: An answer.
    zh:
      question: {zh}
      answer: 回答。
    sources:
      - title: A law
    reviewed: 2026-01-01
"""


@pytest.fixture(scope="module")
def small_knowledge(tmp_path_factory: pytest.TempPathFactory) -> KnowledgeBase:
    folder: Path = tmp_path_factory.mktemp("kb")
    entries = [
        (
            "exam.foreigners",
            "Can a foreigner take the patent agent exam?",
            "外国人可以考专利代理师吗",
            "",
        ),
        (
            "patent.terms",
            "How long does a Chinese patent last?",
            "中国专利保护期限多长",
            "patent term",
        ),
        (
            "patent.fees",
            "How much does a Chinese patent cost?",
            "中国专利申请费用是多少",
            "patent fees",
        ),
        ("trademark.register", "How do I register a trademark in China?", "怎么在中国注册商标", ""),
    ]
    body = "".join(
        ENTRY.format(id=i, en=en, zh=zh, alternates=alternates) for i, en, zh, alternates in entries
    )
    (folder / "kb.yaml").write_text("entries:\n" + body, encoding="utf-8")
    return load_knowledge(folder)


def test_the_entry_question_itself_is_answered(small_knowledge: KnowledgeBase) -> None:
    decision = Matcher(small_knowledge).decide("How long does a Chinese patent last?")
    assert decision.action == "answer"
    assert decision.entry_id == "patent.terms"


def test_a_question_with_typos_is_still_answered(small_knowledge: KnowledgeBase) -> None:
    decision = Matcher(small_knowledge).decide("how do i registr a trademark in chna")
    assert (decision.action, decision.entry_id) == ("answer", "trademark.register")


def test_a_chinese_question_matches_the_chinese_phrasing(small_knowledge: KnowledgeBase) -> None:
    decision = Matcher(small_knowledge).decide("外国人能考专利代理师吗？")
    assert (decision.action, decision.entry_id) == ("answer", "exam.foreigners")


def test_full_width_and_case_do_not_matter(small_knowledge: KnowledgeBase) -> None:
    assert normalize("ＣＡＮ a Foreigner？") == normalize("can a foreigner?")
    decision = Matcher(small_knowledge).decide("ＨＯＷ ＬＯＮＧ does a Chinese patent last？")
    assert decision.entry_id == "patent.terms"


def test_chinese_characters_become_tokens() -> None:
    assert normalize("外国人PCT申请") == "外 国 人 pct 申 请"


def test_a_one_word_question_is_never_answered_outright(small_knowledge: KnowledgeBase) -> None:
    decision = Matcher(small_knowledge).decide("patent")
    assert decision.action == "clarify"
    assert {"patent.terms", "patent.fees"} <= set(decision.options)
    assert 2 <= len(decision.options) <= 4


def test_an_unrelated_question_is_handed_off(small_knowledge: KnowledgeBase) -> None:
    decision = Matcher(small_knowledge).decide("Where can I buy a bicycle near Wudaokou?")
    assert decision.action == "handoff"
    assert decision.entry_id is None
    assert decision.options == ()


def test_close_candidates_are_offered_instead_of_a_guess(small_knowledge: KnowledgeBase) -> None:
    strict = Matcher(small_knowledge, Thresholds(answer=99, clarify=50, margin=6))
    decision = strict.decide("How long does a Chinese patent cost?")
    assert decision.action == "clarify"
    assert set(decision.options[:2]) == {"patent.terms", "patent.fees"}


def test_empty_or_punctuation_only_question_is_handed_off(small_knowledge: KnowledgeBase) -> None:
    assert Matcher(small_knowledge).decide("?!…").action == "handoff"


def test_bundled_knowledge_answers_the_programme_questions(matcher: Matcher) -> None:
    for question, entry_id in (
        ("Can a foreigner take the patent agent exam?", "agent-exam.foreigners"),
        ("外国人可以考专利代理师吗？", "agent-exam.foreigners"),
    ):
        decision = matcher.decide(question)
        assert (decision.action, decision.entry_id) == ("answer", entry_id), question
