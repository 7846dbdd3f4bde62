"""The matcher: which entry, if any, answers a question.

It returns a `Decision`, not just a score: `answer` when one entry is clearly best, `clarify`
with two to four likely entries when several are close, `handoff` when nothing is good enough.
A confident wrong answer on a legal matter is worse than asking or handing off.
"""

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Literal

from rapidfuzz import fuzz, process

from bot.knowledge import LANGUAGES, KnowledgeBase

Action = Literal["answer", "clarify", "handoff"]
MAX_OPTIONS = 4

_CJK_CHAR = re.compile(r"([\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff])")
_NOT_WORD = re.compile(r"[^\w\s]|_")


def normalize(text: str) -> str:
    """Text in the form phrasings are compared in.

    NFKC folds full-width forms, case folding ignores case, punctuation becomes space, and
    each Chinese character stands as a token of its own, since Chinese has no spaces and
    rapidfuzz's token scorers need tokens.
    """
    text = unicodedata.normalize("NFKC", text).casefold()
    text = _NOT_WORD.sub(" ", text)
    text = _CJK_CHAR.sub(r" \1 ", text)
    return " ".join(text.split())


@dataclass(frozen=True)
class Candidate:
    """An entry and how well the question matched its closest phrasing (0-100)."""

    entry_id: str
    score: float


@dataclass(frozen=True)
class Decision:
    """What to do with a question, and the candidates behind the choice (best first)."""

    action: Action
    candidates: tuple[Candidate, ...] = field(default_factory=tuple)

    @property
    def entry_id(self) -> str | None:
        """The answering entry, for `answer` decisions."""
        return self.candidates[0].entry_id if self.action == "answer" else None

    @property
    def options(self) -> tuple[str, ...]:
        """The entries offered, for `clarify` decisions."""
        if self.action != "clarify":
            return ()
        return tuple(candidate.entry_id for candidate in self.candidates)

    @property
    def score(self) -> float:
        """The best candidate's score, 0 when there is none."""
        return self.candidates[0].score if self.candidates else 0.0


@dataclass(frozen=True)
class Thresholds:
    """Where the decisions change; see `.env.example` for how they were chosen."""

    answer: float = 80.0
    clarify: float = 55.0
    margin: float = 6.0


class Matcher:
    """Matches questions against every phrasing of every entry, in both languages."""

    def __init__(self, knowledge: KnowledgeBase, thresholds: Thresholds | None = None) -> None:
        self.knowledge = knowledge
        self.thresholds = thresholds or Thresholds()
        self._phrasings: list[str] = []
        self._owners: list[str] = []
        for entry in knowledge:
            for language in LANGUAGES:
                for phrasing in entry.text(language).phrasings:
                    self._phrasings.append(normalize(phrasing))
                    self._owners.append(entry.id)

    def decide(self, question: str) -> Decision:
        """The decision for one question."""
        query = normalize(question)
        if not query:
            return Decision("handoff")
        candidates = self._rank(query)
        limits = self.thresholds
        close = tuple(c for c in candidates if c.score >= limits.clarify)
        if not close:
            return Decision("handoff", candidates[:MAX_OPTIONS])
        best = close[0]
        runner_up = close[1].score if len(close) > 1 else 0.0
        if (
            best.score >= limits.answer
            and best.score - runner_up >= limits.margin
            and not _too_short(query)
        ):
            return Decision("answer", (best, *close[1:MAX_OPTIONS]))
        if len(close) == 1:
            close = candidates[:2]
        near = tuple(c for c in close if best.score - c.score <= 2 * limits.margin)
        options = near if len(near) >= 2 else close[:2]
        return Decision("clarify", options[:MAX_OPTIONS])

    def _rank(self, query: str) -> tuple[Candidate, ...]:
        """Every entry's best phrasing score, best first."""
        best: dict[str, float] = {}
        matches = process.extract(
            query, self._phrasings, scorer=fuzz.WRatio, limit=None, score_cutoff=1
        )
        for _, score, index in matches:
            owner = self._owners[index]
            if score > best.get(owner, 0.0):
                best[owner] = score
        ranked = sorted(best.items(), key=lambda item: (-item[1], item[0]))
        return tuple(Candidate(entry_id, round(score, 1)) for entry_id, score in ranked)


def _too_short(query: str) -> bool:
    """One word or two Chinese characters say too little for a confident answer."""
    return len(query.split()) <= 2 and len(query.replace(" ", "")) <= 8
