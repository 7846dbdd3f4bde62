"""What an edit of the knowledge base does to real questions, before it goes live.

`ipbot kb check DIR` compares the edited files in DIR with the deployed ones on the labelled
question set (every changed decision, in words) and on the most recent talents' questions from
the conversation log (per language: answers that flip, more or fewer hand-offs).
"""

from dataclasses import dataclass, field

from bot.matching import Decision, Matcher
from bot.text import detect_language


@dataclass(frozen=True)
class Change:
    """One question whose decision differs between the deployed and the edited files."""

    question: str
    before: Decision
    after: Decision

    def __str__(self) -> str:
        return f"{self.question!r} used to {describe(self.before)}, now {describe(self.after)}"


def describe(decision: Decision) -> str:
    """A decision in words: "answer patent.fees", "ask to clarify (a, b)", "hand off"."""
    if decision.action == "answer":
        return f"answer {decision.entry_id}"
    if decision.action == "clarify":
        return f"ask to clarify ({', '.join(decision.options)})"
    return "hand off"


def _key(decision: Decision) -> tuple[str, str | None, tuple[str, ...]]:
    return decision.action, decision.entry_id, tuple(sorted(decision.options))


def changes(deployed: Matcher, edited: Matcher, questions: list[str]) -> list[Change]:
    """Every question whose decision the edit changes."""
    found = []
    for question in questions:
        before, after = deployed.decide(question), edited.decide(question)
        if _key(before) != _key(after):
            found.append(Change(question, before, after))
    return found


@dataclass
class Replay:
    """Per language: how many recent questions were replayed, and what the edit changes."""

    questions: int = 0
    answers_flipped: int = 0
    handoffs_before: int = 0
    handoffs_after: int = 0
    examples: list[Change] = field(default_factory=list)


def replay(deployed: Matcher, edited: Matcher, questions: list[str]) -> dict[str, Replay]:
    """Replay real questions against both sets."""
    result = {"en": Replay(), "zh": Replay()}
    for question in questions:
        language = detect_language(question) or "en"
        figures = result[language]
        before, after = deployed.decide(question), edited.decide(question)
        figures.questions += 1
        figures.handoffs_before += before.action == "handoff"
        figures.handoffs_after += after.action == "handoff"
        if before.entry_id != after.entry_id and "answer" in (before.action, after.action):
            figures.answers_flipped += 1
            if len(figures.examples) < 5:
                figures.examples.append(Change(question, before, after))
    return result
