"""Swapping in an edited knowledge base while the bot runs.

The whole set is validated first; a set with a problem is not loaded and the old one keeps
serving. A set that answers the labelled question set worse than the one serving, by more
than `RELOAD_MAX_ACCURACY_DROP`, is refused too unless forced. The swap itself is one
attribute assignment, so a question is matched against the old set or the new, never a mix.
"""

import logging
from dataclasses import dataclass, field
from pathlib import Path

from bot import heap
from bot.evaluation import (
    LabelledQuestion,
    QuestionSetError,
    evaluate,
    read_question_set,
    summarise,
)
from bot.knowledge import KnowledgeError, Problem, knowledge_files, load_knowledge
from bot.matching import Matcher
from bot.services import Services

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    """What a reload did: `loaded`, `unchanged`, `invalid` (with problems) or `worse`."""

    status: str
    version: str
    problems: list[Problem] = field(default_factory=list)
    accuracy_before: float | None = None
    accuracy_after: float | None = None


def fingerprint(directory: Path) -> tuple[tuple[str, int, int], ...]:
    """A cheap sign that the files changed: names, sizes and modification times."""
    return tuple(
        (path.name, path.stat().st_size, path.stat().st_mtime_ns)
        for path in knowledge_files(directory)
    )


def reload(services: Services, force: bool = False) -> Outcome:
    """Load the knowledge folder again and swap it in if it is valid and not worse."""
    outcome = _reload(services, force)
    if outcome.status == "loaded":
        # Here, where nothing of the reload still holds the set it replaced.
        heap.settle()
    return outcome


def follow(services: Services, version: str) -> bool:
    """Swap in the folder's set if it is `version`, which staff forced another process to load
    (`/reload force`), without the accuracy check that refused it; whether it did."""
    followed = _follow(services, version)
    if followed:
        heap.settle()
    return followed


def _reload(services: Services, force: bool) -> Outcome:
    settings = services.settings
    current = services.matcher
    try:
        knowledge = load_knowledge(settings.knowledge_dir)
    except KnowledgeError as error:
        return Outcome("invalid", current.knowledge.version, error.problems)
    if knowledge.version == current.knowledge.version:
        return Outcome("unchanged", knowledge.version)
    candidate = Matcher(knowledge, current.thresholds, current.calibration)
    questions = _labelled(services, current, candidate)
    before, after = _accuracy(questions, current), _accuracy(questions, candidate)
    if not force and refused(before, after, settings.reload_max_accuracy_drop):
        return Outcome("worse", current.knowledge.version, [], before, after)
    services.matcher = candidate
    _log.info("Knowledge base %s loaded (%d entries)", knowledge.version, len(knowledge))
    return Outcome("loaded", knowledge.version, [], before, after)


def _follow(services: Services, version: str) -> bool:
    current = services.matcher
    if current.knowledge.version == version:
        return False
    try:
        knowledge = load_knowledge(services.settings.knowledge_dir)
    except KnowledgeError:
        return False
    if knowledge.version != version:
        return False
    services.matcher = Matcher(knowledge, current.thresholds, current.calibration)
    _log.info("Knowledge base %s loaded, as forced in another process", version)
    return True


def refused(before: float | None, after: float | None, max_drop: float) -> bool:
    """Whether a set whose share of correct direct answers goes from `before` to `after` is
    refused unless forced: it drops by more than `max_drop` points (RELOAD_MAX_ACCURACY_DROP)."""
    return before is not None and after is not None and before - after > max_drop / 100


def _labelled(
    services: Services, serving: Matcher, edited: Matcher
) -> list[LabelledQuestion] | None:
    """The labelled questions, checked against the set now serving and its edit (an entry
    only one of them has simply counts as not answered by the other)."""
    path = services.settings.labelled_questions
    if path is None or not path.is_file():
        return None
    try:
        return read_question_set(path, serving.knowledge, edited.knowledge)
    except QuestionSetError as error:
        _log.warning("Labelled questions not usable for the reload check: %s", error)
        return None


def _accuracy(questions: list[LabelledQuestion] | None, matcher: Matcher) -> float | None:
    """The share of correct direct answers on the labelled questions."""
    if questions is None:
        return None
    return summarise(questions, evaluate(matcher, questions))["all"]["answered_correctly"]
