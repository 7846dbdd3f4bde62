"""Measuring the matcher on a labelled question set (`ipbot eval`).

The set is JSON Lines of `{"q": "...", "expect": "entry.id" | null}`; `null` marks a question
outside the knowledge base, which must not be answered.
"""

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bot.knowledge import KnowledgeBase, Language
from bot.matching import Decision, Matcher
from bot.text import detect_language


@dataclass(frozen=True)
class LabelledQuestion:
    """A question and the entry that should answer it (None: out of scope)."""

    q: str
    expect: str | None

    @property
    def language(self) -> Language:
        return detect_language(self.q) or "en"


@dataclass(frozen=True)
class Result:
    """What the matcher decided for one labelled question."""

    q: str
    expect: str | None
    action: str
    id: str | None
    options: list[str]
    score: float

    @classmethod
    def of(cls, q: str, expect: str | None, decision: Decision) -> "Result":
        return cls(
            q=q,
            expect=expect,
            action=decision.action,
            id=decision.entry_id,
            options=list(decision.options),
            score=decision.score,
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class QuestionSetError(Exception):
    """The question file cannot be read; the message says where and why."""


def read_question_set(path: Path, knowledge: KnowledgeBase) -> list[LabelledQuestion]:
    """Read and check a labelled question file."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise QuestionSetError(f"{path}: cannot read: {error}") from None
    questions = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as error:
            raise QuestionSetError(f"{path}:{number}: not JSON: {error.msg}") from None
        if not isinstance(item, dict) or not isinstance(item.get("q"), str) or "expect" not in item:
            raise QuestionSetError(f'{path}:{number}: expected {{"q": "...", "expect": ...}}')
        expect = item["expect"]
        if expect is not None and (not isinstance(expect, str) or knowledge.get(expect) is None):
            raise QuestionSetError(f"{path}:{number}: unknown entry id {expect!r}")
        questions.append(LabelledQuestion(item["q"], expect))
    return questions


def evaluate(matcher: Matcher, questions: list[LabelledQuestion]) -> list[Result]:
    """The matcher's decision for every question."""
    return [Result.of(item.q, item.expect, matcher.decide(item.q)) for item in questions]


def summarise(questions: list[LabelledQuestion], results: list[Result]) -> dict[str, Any]:
    """Accuracy figures per language and overall."""
    groups: dict[str, list[tuple[LabelledQuestion, Result]]] = {"en": [], "zh": [], "all": []}
    for item, result in zip(questions, results, strict=True):
        groups[item.language].append((item, result))
        groups["all"].append((item, result))
    return {name: _figures(pairs) for name, pairs in groups.items()}


def _figures(pairs: list[tuple[LabelledQuestion, Result]]) -> dict[str, Any]:
    in_scope = [result for item, result in pairs if item.expect is not None]
    out_of_scope = [result for item, result in pairs if item.expect is None]
    answered_right = sum(r.action == "answer" and r.id == r.expect for r in in_scope)
    offered_right = sum(
        (r.action == "answer" and r.id == r.expect)
        or (r.action == "clarify" and r.expect in r.options)
        for r in in_scope
    )
    wrong = sum(r.action == "answer" and r.id != r.expect for r in in_scope)
    out_answered = sum(r.action == "answer" for r in out_of_scope)
    return {
        "questions": len(pairs),
        "in_scope": len(in_scope),
        "out_of_scope": len(out_of_scope),
        "answered_correctly": _share(answered_right, len(in_scope)),
        "answered_or_offered": _share(offered_right, len(in_scope)),
        "confidently_wrong": _share(wrong, len(in_scope)),
        "out_of_scope_answered": _share(out_answered, len(out_of_scope)),
    }


def _share(count: int, total: int) -> float:
    return round(count / total, 4) if total else 0.0


_ROWS = (
    ("answered_correctly", "correct direct answer (in scope)"),
    ("answered_or_offered", "correct answer or in clarify list"),
    ("confidently_wrong", "confident wrong answer (in scope)"),
    ("out_of_scope_answered", "out-of-scope question answered"),
)


def format_table(summary: dict[str, Any]) -> str:
    """The summary as a table for a terminal or a Markdown file."""
    columns = ("en", "zh", "all")
    lines = [
        "| figure | " + " | ".join(columns) + " |",
        "| --- | " + " | ".join("---:" for _ in columns) + " |",
        "| questions (in scope / out) | "
        + " | ".join(
            f"{summary[c]['questions']} ({summary[c]['in_scope']} / {summary[c]['out_of_scope']})"
            for c in columns
        )
        + " |",
    ]
    for key, label in _ROWS:
        cells = " | ".join(f"{summary[c][key] * 100:.1f}%" for c in columns)
        lines.append(f"| {label} | {cells} |")
    return "\n".join(lines)
