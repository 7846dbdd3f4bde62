"""The knowledge-base loader: the bundled set is clean, and every problem names file and line."""

import shutil
from pathlib import Path

import pytest

from bot.drafts import write_draft
from bot.knowledge import KnowledgeBase, KnowledgeError, load_knowledge
from bot.paths import bundled

CATALOGUE_IDS = (
    "platform.about",
    "platform.training",
    "platform.database",
    "platform.matching",
    "platform.custom-solutions",
    "platform.volunteer-experts",
    "platform.key-talent-tutoring",
    "platform.overseas-protection",
    "platform.sci-tech-programs",
    "two-zones.about",
    "agency.rep-office",
    "agency.rep-office.letter",
    "agency.rep-office.scope",
    "agent-exam.foreigners",
    "agent-exam.rules",
    "pledge.financing-centre",
    "pledge.registration-desk",
    "pledge.ftz-trademark",
    "ip-securitization",
    "digital-trade.ip",
    "patent.foreign-applicant",
    "patent.types-terms",
    "patent.pct-national-phase",
    "patent.foreign-filing-license",
    "patent.fees",
    "patent.service-invention",
    "trademark.register",
    "trademark.madrid",
    "trademark.squatting",
    "copyright.registration",
    "trade-secret.protection",
    "enforcement.options",
    "enforcement.counterfeit",
    "licensing.contracts",
    "service.human",
    "service.privacy",
    "service.languages",
    "service.disclaimer",
)

GOOD_ENTRY = """\
entries:
  - id: {id}
    topic: patents
    en:
      question: {question}
      alternates: [{alternate}]
      answer: An answer.
    zh:
      question: 问题{id}
      answer: 回答。
    sources:
      - title: A law
    reviewed: 2026-01-01
    related: [{related}]
"""


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def entry(
    id: str = "a.one",
    question: str | None = None,
    alternate: str | None = None,
    related: str = "",
) -> str:
    return GOOD_ENTRY.format(
        id=id,
        question=question or f"Question {id}?",
        alternate=alternate or f"Alternate {id}",
        related=related,
    )


def problems(directory: Path) -> list[str]:
    with pytest.raises(KnowledgeError) as raised:
        load_knowledge(directory)
    return [str(problem) for problem in raised.value.problems]


def test_bundled_knowledge_base_loads_with_every_catalogue_topic(
    knowledge: KnowledgeBase,
) -> None:
    missing = [entry_id for entry_id in CATALOGUE_IDS if knowledge.get(entry_id) is None]
    assert missing == []
    for item in knowledge:
        assert item.en.answer, item.id
        assert item.zh.answer, item.id
        assert item.sources, item.id


def test_version_is_a_hash_of_the_content(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", entry())
    first = load_knowledge(tmp_path).version
    assert load_knowledge(tmp_path).version == first
    write(tmp_path, "a.yaml", entry().replace("An answer.", "A better answer."))
    assert load_knowledge(tmp_path).version != first


def test_answers_are_unwrapped_into_paragraphs(tmp_path: Path) -> None:
    text = entry().replace(
        "      answer: An answer.\n",
        "      answer: |\n        First line\n        same paragraph.\n\n        Second.\n",
    )
    write(tmp_path, "a.yaml", text)
    loaded = load_knowledge(tmp_path).get("a.one")
    assert loaded is not None
    assert loaded.en.answer == "First line same paragraph.\n\nSecond."


def test_list_items_in_an_answer_keep_their_own_lines(tmp_path: Path) -> None:
    text = entry().replace(
        "      answer: An answer.\n",
        "      answer: |\n        Three kinds:\n\n"
        "        - Invention: 20 years,\n          after examination.\n"
        "        - Design: 15 years.\n        1. Then a numbered one.\n",
    )
    write(tmp_path, "a.yaml", text)
    loaded = load_knowledge(tmp_path).get("a.one")
    assert loaded is not None
    assert loaded.en.answer == (
        "Three kinds:\n\n- Invention: 20 years, after examination.\n- Design: 15 years.\n"
        "1. Then a numbered one."
    )


def test_malformed_yaml_names_file_and_line(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", entry())
    broken = write(tmp_path, "b.yaml", "entries:\n  - id: b.one\n    topic: [unclosed\n")
    [problem] = problems(tmp_path)
    assert problem.startswith(f"{broken}:")
    assert "malformed YAML" in problem


def test_an_impossible_date_names_file_and_line(tmp_path: Path) -> None:
    text = entry().replace("reviewed: 2026-01-01", "reviewed: 2026-13-45")
    path = write(tmp_path, "a.yaml", text)
    [problem] = problems(tmp_path)
    line = text.splitlines().index("    reviewed: 2026-13-45") + 1
    assert problem == (
        f"{path}:{line}: malformed YAML: not a real date: 2026-13-45 (month must be in 1..12)"
    )


def test_missing_language_names_the_entry_and_its_line(tmp_path: Path) -> None:
    text = entry()
    text = text[: text.index("    zh:")] + text[text.index("    sources:") :]
    path = write(tmp_path, "a.yaml", text)
    assert problems(tmp_path) == [f"{path}:2: entry 'a.one': zh: missing"]


def test_empty_answer_is_a_problem_at_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, "a.yaml", entry().replace("answer: An answer.", "answer: '  '"))
    assert problems(tmp_path) == [f"{path}:7: entry 'a.one': en.answer: must not be empty"]


def test_duplicate_id_across_files_names_both_places(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", entry())
    second = write(tmp_path, "b.yaml", entry(question="Other?", alternate="Other alternate"))
    [problem] = [p for p in problems(tmp_path) if "duplicate id" in p]
    assert problem.startswith(f"{second}:2:")
    assert "a.yaml:2" in problem


def test_duplicate_alternate_across_entries_is_reported(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", entry(alternate="How do I file"))
    second = write(tmp_path, "b.yaml", entry(id="b.two", alternate="how do  I FILE"))
    assert problems(tmp_path) == [
        f"{second}:6: entry 'b.two': phrasing 'how do  I FILE' is already in entry 'a.one'"
    ]


def test_unknown_related_id_is_reported(tmp_path: Path) -> None:
    path = write(tmp_path, "a.yaml", entry(related="a.missing"))
    assert problems(tmp_path) == [f"{path}:14: entry 'a.one': unknown related id 'a.missing'"]


def test_a_typo_in_one_file_does_not_make_others_point_at_unknown_ids(tmp_path: Path) -> None:
    broken = write(tmp_path, "a.yaml", entry().replace("    topic: patents", "\ttopic: patents"))
    write(tmp_path, "b.yaml", entry(id="b.two", related="a.one"))
    [problem] = problems(tmp_path)
    assert problem.startswith(f"{broken}:3: malformed YAML")


def test_every_problem_in_the_set_is_listed_at_once(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", entry(related="nowhere").replace("topic: patents", "topic: cooking"))
    write(tmp_path, "b.yaml", "entries: [oops")
    write(tmp_path, "c.yaml", entry(id="c.three").replace("reviewed: 2026-01-01", "reviewed: soon"))
    found = problems(tmp_path)
    assert len(found) == 3
    assert any("a.yaml:3: entry 'a.one': topic: unknown topic" in p for p in found)
    assert any("b.yaml" in p and "malformed YAML" in p for p in found)
    assert any("c.yaml:13: entry 'c.three': reviewed: must be a date" in p for p in found)


def test_unknown_field_and_not_utf8_are_reported(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", entry().replace("    tags:", "    tag:").replace("topic:", "topik:"))
    (tmp_path / "b.yaml").write_bytes("entries: []\n# \u00e9".encode("latin-1"))
    found = problems(tmp_path)
    assert any("a.yaml:3: entry 'a.one': topik: unknown field" in p for p in found)
    assert any("b.yaml:2: not UTF-8 text" in p for p in found)


def test_a_folder_with_no_knowledge_files_is_refused(tmp_path: Path) -> None:
    assert problems(tmp_path) == [f"{tmp_path}:0: no *.yaml knowledge files in this folder"]


def test_a_yml_file_is_reported_not_ignored(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", entry(related="b.two"))
    short = write(tmp_path, "b.yml", entry(id="b.two"))
    upper = write(tmp_path, "c.YAML", entry(id="c.three"))
    assert problems(tmp_path) == [
        f"{short}:0: only *.yaml files are read: rename it to b.yaml",
        f"{upper}:0: only *.yaml files are read: rename it to c.yaml",
    ]


def test_files_in_sub_folders_are_not_loaded(tmp_path: Path) -> None:
    shutil.copytree(bundled("knowledge"), tmp_path / "kb")
    (tmp_path / "kb" / "drafts").mkdir()
    write(tmp_path / "kb" / "drafts", "draft.yaml", "not: [valid")
    assert len(load_knowledge(tmp_path / "kb")) == len(load_knowledge(bundled("knowledge")))


def test_a_yaml_bomb_is_refused_before_it_expands(tmp_path: Path) -> None:
    bomb = ["entries:", '  - a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    bomb += [f"    {chr(98 + n)}: &{chr(98 + n)} [*{chr(97 + n)},*{chr(97 + n)},*{chr(97 + n)},*{chr(97 + n)}]" for n in range(8)]  # fmt: skip
    path = write(tmp_path, "bomb.yaml", "\n".join(bomb) + "\n")
    assert problems(tmp_path) == [f"{path}:2: YAML anchors and aliases (& and *) are not allowed"]


def test_an_oversized_file_is_refused_without_reading_it(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    with path.open("wb") as handle:
        handle.truncate(50 * 1024 * 1024)
    [problem] = problems(tmp_path)
    assert problem.startswith(f"{path}:0: file is 52428800 bytes; the limit is")


def test_a_binary_file_and_a_tab_are_reported_with_their_line(tmp_path: Path) -> None:
    (tmp_path / "binary.yaml").write_bytes(b"entries:\n  - id: x\x00\x01\x02\n")
    write(tmp_path, "tabs.yaml", entry().replace("    topic: patents", "\ttopic: patents"))
    found = problems(tmp_path)
    assert any("binary.yaml:2: malformed YAML" in p for p in found)
    assert any("tabs.yaml:3: malformed YAML" in p for p in found)


def test_a_draft_moved_in_unedited_is_refused_with_what_to_fill_in(tmp_path: Path) -> None:
    draft = write_draft(tmp_path, 7, "Can my employer claim my patent?", "Usually not.", None, "en")
    moved = draft.rename(tmp_path / "ticket-7.yaml")
    assert problems(tmp_path) == [
        f"{moved}:2: entry 'draft.ticket-7': id: still the draft's id: give the entry the id "
        "it will keep",
        f"{moved}:9: entry 'draft.ticket-7': zh.question: still the draft's TODO: write it",
        f"{moved}:11: entry 'draft.ticket-7': zh.answer: still the draft's TODO: write it",
        f"{moved}:12: entry 'draft.ticket-7': sources: still the draft's note: name the "
        "official source",
    ]
