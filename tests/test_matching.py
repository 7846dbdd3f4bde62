"""The matcher's decisions: answer when one entry is clearly right, ask when unsure, else hand off."""

from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.knowledge import KnowledgeBase, Term, load_knowledge
from bot.matching import Matcher, Thresholds
from bot.matching.normalize import _TEXTS_AT_ONCE, Normalizer
from bot.paths import bundled

_BUNDLED_GLOSSARY = load_knowledge(bundled("knowledge")).glossary

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


def test_width_case_and_traditional_chinese_fold_to_one_form() -> None:
    normalizer = Normalizer()
    assert normalizer.fold("ＣＡＮ a Foreigner？") == "can a foreigner"
    assert normalizer.fold("外國人可以考專利代理師嗎") == "外国人可以考专利代理师吗"


def test_full_width_question_is_answered_like_the_plain_one(
    small_knowledge: KnowledgeBase,
) -> None:
    decision = Matcher(small_knowledge).decide("ＨＯＷ ＬＯＮＧ does a Chinese patent last？")
    assert decision.entry_id == "patent.terms"


def test_glossary_terms_meet_across_languages_and_words(knowledge: KnowledgeBase) -> None:
    normalizer = Normalizer(knowledge.glossary)
    forms = {
        normalizer.normalize(text) for text in ("代表处", "rep office", "Representative Office")
    }
    assert len(forms) == 1
    assert normalizer.normalize("國知局") == normalizer.normalize("CNIPA")


def test_glossary_phrases_are_whole_english_words_anywhere_in_chinese_and_longest_first() -> None:
    normalizer = Normalizer(
        [
            Term(term="patent", en=("patent",), zh=("专利",)),
            Term(term="patent-agent", en=("patent agent",), zh=("专利代理师",)),
            Term(term="pct", en=("PCT", "PCT application"), zh=("PCT申请",)),
        ]
    )
    assert normalizer.normalize("a patent agent, not patents") == "a §patent-agent not patents"
    assert normalizer.normalize("外国人考专利代理师和专利") == "外国人考 §patent-agent 和 §patent"
    assert normalizer.normalize("外国人PCT申请 or a PCT application") == "外国人 §pct or a §pct"
    assert normalizer.normalize("xpct") == "xpct"
    # Only the glossary makes terms: a mark typed by someone is punctuation.
    assert normalizer.features("§patent-agent") == normalizer.features("patent agent")
    assert Normalizer().features("§visa") == Counter({"visa": 1})


# Pieces that exercise every step of normalising: glossary phrases (English, Chinese, both,
# and spread over punctuation and spaces), width, case, Traditional characters, punctuation,
# marks that combine or fold into letters, the characters that end a text and a word when many
# are read together, line breaks and runs of spaces.
_PIECES = st.sampled_from(
    [
        "patent agent",
        "Patent- agent",
        "foreign filing",
        " license",
        "专利代理师",
        "PCT申请",
        "Ｐatent",
        "專利",
        "，",
        "。",
        "（",
        "《",
        "“",
        "?",
        "\n",
        "\r\n",
        "   ",
        "\xa0",
        "\x00",
        "\x01",
        "_",
        "é",
        "e\u0301",
        "\u0301",
        "㈠",
        "§",
    ]
)
_TEXTS = st.lists(st.lists(st.one_of(st.text(max_size=12), _PIECES), max_size=8).map("".join))


@settings(derandomize=True, max_examples=300, deadline=None, database=None)
@given(texts=_TEXTS)
def test_texts_read_together_have_the_features_each_has_alone(texts: list[str]) -> None:
    # The index reads its texts together, a question is read alone: they must agree.
    normalizer = Normalizer(_BUNDLED_GLOSSARY)
    reading = normalizer.read(texts)
    together = [
        Counter(
            feature
            for piece in reading.sequence[reading.starts[t] : reading.starts[t + 1]]
            for feature in reading.pieces[piece]
        )
        for t in range(len(texts))
    ]
    assert together == [normalizer.features(text) for text in texts]


def test_thousands_of_texts_read_together_each_keep_their_own_features() -> None:
    # More texts than are cut into words at a time, phrases reaching across each boundary.
    normalizer = Normalizer(_BUNDLED_GLOSSARY)
    at_once = _TEXTS_AT_ONCE
    texts = [f"the {n} patent" if n % 2 else f"agent 專利{n}" for n in range(2 * at_once + 1)]
    reading = normalizer.read(texts)
    for t in (0, 1, at_once - 1, at_once, at_once + 1, 2 * at_once - 1, 2 * at_once):
        pieces = reading.sequence[reading.starts[t] : reading.starts[t + 1]]
        features = Counter(f for piece in pieces for f in reading.pieces[piece])
        assert features == normalizer.features(texts[t])
        assert str(t) in features


def test_chinese_is_read_as_character_pairs_beside_english_words() -> None:
    features = Normalizer().features("外国人PCT申请")
    assert set(features) == {"外国", "国人", "pct", "申请"}


def test_a_misspelt_english_word_is_mended_from_the_vocabulary() -> None:
    normalizer = Normalizer()
    normalizer.learn_vocabulary(["How do I register a trademark?"])
    assert normalizer.normalize("how do i registr a trademrak", correct=True) == (
        "how do i register a trademark"
    )
    assert normalizer.normalize("visa", correct=True) == "visa"


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
    strict = Matcher(small_knowledge, Thresholds(answer_en=99.9, answer_zh=99.9, clarify=1))
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


def test_mixed_chinese_and_english_question_is_answered(matcher: Matcher) -> None:
    decision = matcher.decide("我想file一个PCT national phase，deadline是什么时候？")
    assert (decision.action, decision.entry_id) == ("answer", "patent.pct-national-phase")


def test_one_word_in_either_language_gets_a_short_list(matcher: Matcher) -> None:
    for word in ("patent", "专利", "trademark"):
        decision = matcher.decide(word)
        assert decision.action == "clarify", word
        assert 2 <= len(decision.options) <= 4


def test_a_chinese_how_long_or_how_much_without_a_subject_is_not_answered(
    matcher: Matcher,
) -> None:
    for question in ("要多久", "需要多久？", "多少钱"):
        assert matcher.decide(question).action != "answer", question
    assert matcher.decide("PCT进入中国要多久").action == "answer"


def test_an_english_how_much_or_how_long_without_a_subject_is_not_answered(
    matcher: Matcher,
) -> None:
    for question in ("How much does it cost?", "how much is it", "How long?"):
        assert matcher.decide(question).action != "answer", question
    assert matcher.decide("How much does a patent cost?").action == "answer"


def test_an_uncovered_subject_is_handed_off_by_name(matcher: Matcher) -> None:
    for question in ("How do I renew my residence permit?", "外国人个人所得税怎么算"):
        decision = matcher.decide(question)
        assert decision.action == "handoff", question
        assert decision.out_of_scope is not None


def test_the_unsaid_right_is_asked_instead_of_guessed(matcher: Matcher) -> None:
    decision = matcher.decide("How long does protection last?")
    assert decision.action == "clarify"
    assert decision.ask == "right"
    topics = [matcher.knowledge.entries[i].topic for i in decision.options]
    assert len(set(topics)) == 2


def test_the_unsaid_place_is_asked_instead_of_guessed(matcher: Matcher) -> None:
    decision = matcher.decide("someone infringed my rights, what now?")
    assert decision.action == "clarify"
    assert decision.ask == "region"
    assert {matcher.knowledge.entries[i].region for i in decision.options} == {"china", "abroad"}


def test_naming_the_place_settles_it(matcher: Matcher) -> None:
    decision = matcher.decide("Someone infringes my patent in Germany, can you help?")
    assert decision.options[:1] == ("platform.overseas-protection",) or (
        decision.entry_id == "platform.overseas-protection"
    )


def test_confidence_is_a_probability(matcher: Matcher) -> None:
    for question in ("Can a foreigner take the patent agent exam?", "patent", "hello there"):
        assert 0 <= matcher.decide(question).confidence <= 100
