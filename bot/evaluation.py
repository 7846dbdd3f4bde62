"""Measuring the matcher on a labelled question set (`ipbot eval`).

The set is JSON Lines of `{"q": "...", "expect": "entry.id" | null}`; `null` marks a question
outside the knowledge base, which must not be answered.
"""

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rapidfuzz import fuzz, process, utils

from bot.knowledge import LANGUAGES, KnowledgeBase, Language
from bot.matching import MAX_OPTIONS, Candidate, Decision, Matcher
from bot.matching.calibration import Calibration
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


def read_question_set(path: Path, *knowledge: KnowledgeBase) -> list[LabelledQuestion]:
    """Read and check a labelled question file: each expected id must be an entry of one of
    the knowledge bases given (the serving set and an edit of it, which may add entries)."""
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
        known = isinstance(expect, str) and any(kb.get(expect) for kb in knowledge)
        if expect is not None and not known:
            raise QuestionSetError(f"{path}:{number}: unknown entry id {expect!r}")
        questions.append(LabelledQuestion(item["q"], expect))
    return questions


def half(item: LabelledQuestion) -> str:
    """Which half of the set a question is in: `dev` (used to fit and choose) or `held-out`.

    The split is a hash of the question's text, so it is stable and blind to its content.
    """
    digest = hashlib.sha256(item.q.encode("utf-8")).digest()
    return "dev" if int.from_bytes(digest[:4], "big") % 2 == 0 else "held-out"


def fit_calibration(matcher: Matcher, questions: list[LabelledQuestion]) -> Calibration:
    """Fit the matcher's two logistic models on `questions` (in practice, the dev half)."""
    right: list[tuple[tuple[float, ...], float]] = []
    listed: list[tuple[tuple[float, ...], float]] = []
    for item in questions:
        assessment = matcher.assess(item.q)
        ids = [candidate.entry_id for candidate in assessment.candidates]
        signals = assessment.signals
        right.append((signals.for_right, float(bool(ids) and ids[0] == item.expect)))
        listed.append((signals.for_listed, float(item.expect in ids[:MAX_OPTIONS])))
    return Calibration(right=_logistic_fit(right), listed=_logistic_fit(listed))


def _logistic_fit(
    samples: Sequence[tuple[tuple[float, ...], float]],
    steps: int = 20_000,
    rate: float = 1.0,
    ridge: float = 1e-3,
) -> tuple[float, ...]:
    """Logistic regression by gradient descent; weights rounded, bias first."""
    width = len(samples[0][0]) + 1
    weights = [0.0] * width
    for _ in range(steps):
        gradient = [0.0] * width
        for values, target in samples:
            x = (1.0, *values)
            z = sum(w * v for w, v in zip(weights, x, strict=True))
            error = 1.0 / (1.0 + math.exp(-z)) - target
            for i in range(width):
                gradient[i] += error * x[i]
        weights = [
            w - rate * (g / len(samples) + (ridge * w if i else 0.0))
            for i, (w, g) in enumerate(zip(weights, gradient, strict=True))
        ]
    return tuple(round(w, 2) for w in weights)


def evaluate(matcher: Matcher, questions: list[LabelledQuestion]) -> list[Result]:
    """The matcher's decision for every question."""
    return [Result.of(item.q, item.expect, matcher.decide(item.q)) for item in questions]


def baseline(knowledge: KnowledgeBase, questions: list[LabelledQuestion]) -> list[Result]:
    """The plain approach, for comparison: rapidfuzz `WRatio` `extractOne` over every phrasing,
    always answering with the entry of the closest one."""
    phrasings = [
        (phrasing, entry.id)
        for entry in knowledge
        for language in LANGUAGES
        for phrasing in entry.text(language).phrasings
    ]
    choices = [phrasing for phrasing, _ in phrasings]
    results = []
    for item in questions:
        found = process.extractOne(
            item.q, choices, scorer=fuzz.WRatio, processor=utils.default_process
        )
        candidates = (Candidate(phrasings[found[2]][1], round(found[1], 1)),) if found else ()
        decision = Decision("answer", candidates) if candidates else Decision("handoff")
        results.append(Result.of(item.q, item.expect, decision))
    return results


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


def format_table(summary: dict[str, Any], plain: dict[str, Any] | None = None) -> str:
    """The summary as a Markdown table, with the plain baseline's figures beside it if given."""
    columns = [(f"matcher {name}", summary[name]) for name in ("en", "zh", "all")]
    if plain is not None:
        columns += [(f"baseline {name}", plain[name]) for name in ("en", "zh", "all")]
    lines = [
        "| figure | " + " | ".join(title for title, _ in columns) + " |",
        "|---|" + "---:|" * len(columns),
        "| questions (in scope / out) | "
        + " | ".join(
            f"{f['questions']} ({f['in_scope']} / {f['out_of_scope']})" for _, f in columns
        )
        + " |",
    ]
    for key, label in _ROWS:
        cells = " | ".join(f"{figures[key] * 100:.1f}%" for _, figures in columns)
        lines.append(f"| {label} | {cells} |")
    return "\n".join(lines)
