"""The matcher: which entry, if any, answers a question.

It returns a `Decision`, not just a score: `answer` when one entry is very likely right,
`clarify` with two to four likely entries when the right one is probably among them, `handoff`
when the question is out of scope or nothing is good enough. A confident wrong answer on a
legal matter is worse than asking or handing off.

Each entry is scored two ways and the two are blended: how close the question is to the
entry's nearest phrasing (question or alternate, in either language), and how close it is to
everything the entry says (phrasings, tags and answer), both as TF-IDF cosine over normalised
features (`normalize.py`). Subjects the bot does not cover (`out-of-scope.yaml`) are scored the
same way; a question nearer one of them is handed off. Calibration (`calibration.py`) turns the
figures into the probabilities the thresholds apply to.
"""

import itertools
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from bot.knowledge import LANGUAGES, KnowledgeBase
from bot.matching.calibration import DEFAULT, Calibration, Signals
from bot.matching.index import (
    Features,
    Index,
    Scores,
    Vectors,
    inverse_document_frequency,
    ranges,
    unit_vector,
)
from bot.matching.normalize import TERM_MARK, Normalizer
from bot.text import detect_language

Action = Literal["answer", "clarify", "handoff"]
Dimension = Literal["right", "region"]
MAX_OPTIONS = 4

_PHRASING_SHARE = 0.3
_ANSWER_WEIGHT = 0.5
# An entry about the other place than the only one the question names counts this much.
_OTHER_REGION = 0.5
# Candidates kept for a decision: more than are ever offered, for the runner-up figures.
_CANDIDATES = 2 * MAX_OPTIONS
# Documents whose nearest phrasing is worked out for a question (see `_nearest_phrasings`).
_SHORTLIST = 64
_REGION_CODES: dict[str | None, int] = {None: 0, "china": 1, "abroad": 2}
_REGION_NAMES: dict[int, str | None] = {code: name for name, code in _REGION_CODES.items()}
# Options within this much similarity of the best are offered together.
_NEAR = 0.1
# A runner-up this close (as a share of the best similarity) that differs only by what the
# question left out is a rival: the talent is asked rather than the best one guessed.
_RIVAL = 0.7

# Glossary terms that say which right a question is about, and where.
RIGHT_TERMS: dict[str, frozenset[str]] = {
    "patents": frozenset(
        f"{TERM_MARK}{term}"
        for term in (
            "patent",
            "invention-patent",
            "utility-model",
            "design-patent",
            "service-invention",
            "pct",
            "national-phase",
        )
    ),
    "trademarks": frozenset(f"{TERM_MARK}{term}" for term in ("trademark", "madrid", "squatting")),
    "copyright": frozenset(f"{TERM_MARK}{term}" for term in ("copyright", "software-copyright")),
    "trade-secrets": frozenset({f"{TERM_MARK}trade-secret"}),
}
REGION_TERMS = frozenset({f"{TERM_MARK}china", f"{TERM_MARK}abroad"})
# Terms that make a question an IP question: such a question is only out of scope when it
# names the place of an uncovered subject that has one (procedures at foreign offices).
IP_TERMS = frozenset().union(*RIGHT_TERMS.values()) | frozenset(
    f"{TERM_MARK}{term}"
    for term in (
        "intellectual-property",
        "license",
        "infringement",
        "counterfeit",
        "pledge",
        "securitization",
        "patent-agent",
        "patent-agency",
        "representative-office",
        "cnipa",
        "bjipo",
        "confidentiality-examination",
    )
)


@dataclass(frozen=True)
class Candidate:
    """An entry and how similar the question is to it (0-100)."""

    entry_id: str
    score: float


@dataclass(frozen=True)
class Decision:
    """What to do with a question, and the candidates behind the choice (best first)."""

    action: Action
    candidates: tuple[Candidate, ...] = field(default_factory=tuple)
    confidence: float = 0.0
    """The calibrated probability (0-100) that the best candidate is the right answer."""
    ask: Dimension | None = None
    """For `clarify`: the one thing to ask when the options differ only by it."""
    out_of_scope: str | None = None
    """For `handoff`: the uncovered subject the question is about, if it is one."""

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
        """The decision's confidence, 0-100."""
        return self.confidence


@dataclass(frozen=True)
class Thresholds:
    """Where the decisions change, on calibrated probabilities (0-100).

    Answering takes a threshold per language: the labelled set shows Chinese questions need a
    higher one for the same rate of wrong answers.
    """

    answer_en: float = 60.0
    answer_zh: float = 68.0
    clarify: float = 20.0

    def answer(self, chinese: bool) -> float:
        return self.answer_zh if chinese else self.answer_en


@dataclass(frozen=True)
class Assessment:
    """Everything measured about one question, before any threshold is applied."""

    candidates: tuple[Candidate, ...]
    signals: Signals
    features: Counter[str]
    out_of_scope: str | None


class Matcher:
    """Matches questions against every entry of a knowledge base, in both languages."""

    def __init__(
        self,
        knowledge: KnowledgeBase,
        thresholds: Thresholds | None = None,
        calibration: Calibration = DEFAULT,
    ) -> None:
        self.knowledge = knowledge
        self.thresholds = thresholds or Thresholds()
        self.calibration = calibration
        self.normalizer = Normalizer(knowledge.glossary)
        entries = list(knowledge)
        # Documents are the entries, then the uncovered subjects (whose ids are kept apart).
        self._ids = [entry.id for entry in entries] + [s.id for s in knowledge.out_of_scope]
        self._covered = len(entries)
        regions = [entry.region for entry in entries] + [s.region for s in knowledge.out_of_scope]
        self._regions = np.array([_REGION_CODES[region] for region in regions], dtype=np.int8)
        # Ties are broken by id, as a reader of a sorted list would expect.
        by_id = sorted(range(len(self._ids)), key=self._ids.__getitem__)
        self._id_order = np.empty(len(by_id), dtype=np.int64)
        self._id_order[by_id] = np.arange(len(by_id))
        # Who says what: a document says its phrasings, its answers and further details
        # (counting less) and its tags; phrasing p says text p.
        owned = [
            [phrasing for language in LANGUAGES for phrasing in entry.text(language).phrasings]
            for entry in entries
        ] + [list(subject.phrasings) for subject in knowledge.out_of_scope]
        details = [
            [
                detail
                for text in map(entry.text, LANGUAGES)
                for detail in (text.answer, text.more)
                if detail
            ]
            for entry in entries
        ]
        tagged = [entry.tags for entry in entries]
        said = [*itertools.chain.from_iterable(owned), *itertools.chain.from_iterable(details)]
        tags = list(itertools.chain.from_iterable(tagged))
        # Tags recur from entry to entry, phrasings and answers hardly ever: each distinct tag
        # is one text, read once however many entries carry it.
        numbers = dict(zip(dict.fromkeys(tags), itertools.count(len(said))))
        spoken = np.concatenate(
            (np.arange(len(said)), np.fromiter(map(numbers.__getitem__, tags), np.int64, len(tags)))
        )
        counts = [len(said_by) for said_by in owned]
        # Document d's phrasings are numbers _owner_starts[d] to _owner_starts[d + 1] - 1.
        self._owner_starts = np.cumsum([0, *counts])
        # The texts begin with the phrasings: phrasing p is text p.
        phrasings = np.arange(self._owner_starts[-1])
        speakers = np.concatenate(
            [
                np.repeat(np.arange(len(sizes)), sizes)
                for sizes in (counts, [len(d) for d in details], [len(t) for t in tagged])
            ]
        )
        weights = np.repeat(
            [1.0, _ANSWER_WEIGHT, 1.0], [len(phrasings), len(said) - len(phrasings), len(tags)]
        )
        reading = self.normalizer.read(said + list(numbers))
        self.normalizer.learn_vocabulary(reading.words_of_first(len(phrasings)))
        features = Features(reading.pieces, reading.sequence, reading.starts)
        self._features = features.numbers
        bag_documents, bag_features, bag_counts = features.said(speakers, spoken, weights)
        self._idf = inverse_document_frequency(bag_features, len(owned), len(features))
        # A word no entry uses is as telling as the rarest one: it lowers every similarity.
        self._unseen = float(self._idf.max(initial=1.0))
        self._documents = Index(bag_documents, bag_features, bag_counts, self._idf, len(owned))
        self._phrasings = Vectors(
            *features.said(phrasings, phrasings, np.ones(len(phrasings))),
            self._idf,
            len(phrasings),
        )
        # What each document says: _bag_features[_bag_starts[d]:_bag_starts[d + 1]].
        self._bag_features = bag_features
        self._bag_starts = np.searchsorted(bag_documents, np.arange(len(owned) + 1)).tolist()

    def decide(self, question: str) -> Decision:
        """The decision for one question."""
        assessment = self.assess(question)
        candidates = assessment.candidates
        # One word is too little to call a question out of scope, or to answer it: list entries.
        too_short = _too_short(assessment.features)
        if not candidates or (assessment.out_of_scope is not None and not too_short):
            return Decision("handoff", out_of_scope=assessment.out_of_scope)
        right = round(100 * self.calibration.probability_right(assessment.signals), 1)
        listed = 100 * self.calibration.probability_listed(assessment.signals)
        best = candidates[0].score
        near = tuple(c for c in candidates if best - c.score <= 100 * _NEAR)
        # Never guess between entries that differ only by what the question left out.
        rival = self._rival(assessment.features, candidates[:MAX_OPTIONS])
        if rival is not None:
            ask, other = rival
            return Decision("clarify", (candidates[0], other), right, ask)
        answer_at = self.thresholds.answer(assessment.signals.chinese > 0)
        if right >= answer_at and not too_short:
            return Decision("answer", candidates[:MAX_OPTIONS], right)
        if listed < self.thresholds.clarify and not too_short:
            return Decision("handoff", candidates[:MAX_OPTIONS], right)
        options = (near if len(near) >= 2 else candidates[:2])[:MAX_OPTIONS]
        return Decision("clarify", options, right)

    def assess(self, question: str) -> Assessment:
        """Every entry that shares something with the question, most similar first, and the
        figures the decision is made from."""
        features = self.normalizer.features(question, correct=True)
        vector = unit_vector(features, self._idf_of)
        query = {self._features[f]: w for f, w in vector.items() if f in self._features}
        overall = self._documents.similarities(query)
        nearest = self._nearest_phrasings(query, overall)
        named = {feature.removeprefix(TERM_MARK) for feature in features.keys() & REGION_TERMS}
        blended = (
            _PHRASING_SHARE * nearest + (1 - _PHRASING_SHARE) * overall
        ) * self._region_factors(named)
        covered = self._best(blended[: self._covered])
        out_of_scope = None
        subjects = blended[self._covered :]
        if subjects.size and subjects.max() > 0:
            subject = self._covered + int(subjects.argmax())
            best_covered = covered[0] if covered else None
            if best_covered is None or (blended[subject], -self._id_order[subject]) > (
                blended[best_covered],
                -self._id_order[best_covered],
            ):
                region = _REGION_NAMES[self._regions[subject]]
                if (region in named) if region else not features.keys() & IP_TERMS:
                    out_of_scope = self._ids[subject]
        best = float(blended[covered[0]]) if covered else 0.0
        runner_up = float(blended[covered[1]]) if len(covered) > 1 else 0.0
        accounted = 0.0
        if covered:
            start, end = self._bag_starts[covered[0]], self._bag_starts[covered[0] + 1]
            said = set(self._bag_features[start:end].tolist())
            accounted = sum(weight * weight for f, weight in query.items() if f in said)
        signals = Signals(
            similarity=best,
            lead=best - runner_up,
            coverage=accounted,
            length=math.log(1 + len(features)),
            chinese=1.0 if detect_language(question) == "zh" else 0.0,
        )
        candidates = tuple(
            Candidate(self._ids[number], round(100 * float(blended[number]), 1))
            for number in covered
        )
        return Assessment(candidates, signals, features, out_of_scope)

    def _nearest_phrasings(self, query: dict[int, float], overall: Scores) -> Scores:
        """For each document, the similarity of its phrasing nearest to the query.

        Worked out for the `_SHORTLIST` documents most similar overall (every document of a
        knowledge base that size or smaller), 0 for the rest: a phrasing near the question
        brings its entry near it overall too, and a large knowledge base has far too many
        phrasings to compare with every question.
        """
        size = len(self._ids)
        if size <= _SHORTLIST:
            chosen = np.arange(size)
        else:
            chosen = np.argpartition(-overall, _SHORTLIST - 1)[:_SHORTLIST]
        starts = self._owner_starts[chosen]
        counts = self._owner_starts[chosen + 1] - starts
        phrasings = ranges(starts, counts)
        dense = np.zeros(len(self._features))
        dense[list(query)] = list(query.values())
        similarities = self._phrasings.similarities(phrasings, dense)
        nearest = np.zeros(size)
        nearest[chosen] = np.maximum.reduceat(similarities, np.cumsum(counts) - counts)
        return nearest

    def _idf_of(self, feature: str) -> float:
        number = self._features.get(feature)
        return self._unseen if number is None else float(self._idf[number])

    def _region_factors(self, named: set[str]) -> Scores:
        """How much each document counts, given the places the question names."""
        factors = np.ones(len(self._ids))
        if len(named) == 1:
            (place,) = named
            other = (self._regions != 0) & (self._regions != _REGION_CODES[place])
            factors[other] = _OTHER_REGION
        return factors

    def _best(self, scores: Scores) -> list[int]:
        """The documents with the highest scores above 0, best first, at most `_CANDIDATES`."""
        count = min(_CANDIDATES, scores.size)
        if count == 0:
            return []
        top = (
            np.argpartition(-scores, count - 1)[:count] if scores.size > count else np.arange(count)
        )
        top = top[scores[top] > 0]
        return sorted(top.tolist(), key=lambda number: (-scores[number], self._id_order[number]))

    def _rival(
        self, features: Counter[str], candidates: tuple[Candidate, ...]
    ) -> tuple[Dimension, Candidate] | None:
        """A close runner-up that differs from the best entry only by what the question did not
        say (which right, or where), and that thing."""
        said = set(features)
        best = self.knowledge.entries[candidates[0].entry_id]
        for candidate in candidates[1:]:
            if candidate.score < _RIVAL * candidates[0].score:
                break
            other = self.knowledge.entries[candidate.entry_id]
            rights = {best.topic, other.topic}
            if (
                len(rights) == 2
                and rights <= RIGHT_TERMS.keys()
                and not said & (RIGHT_TERMS[best.topic] | RIGHT_TERMS[other.topic])
            ):
                return "right", candidate
            if best.region != other.region and not said & REGION_TERMS:
                return "region", candidate
        return None


# Chinese characters that ask (how long, how much, how, whether) without saying about what:
# a pair of them ("多久", "要多") names no subject.
_ASKING = frozenset("要多久少几怎么样吗呢什何时候哪")
# English words that only ask, as "how much", "how long" (what is asked about is elsewhere).
_ASKING_WORDS = frozenset({"much", "many", "long", "often", "soon"})


def _too_short(features: Counter[str]) -> bool:
    """A question of one word or term says too little for a confident answer."""
    telling = sum(
        1
        for feature in features
        if (len(feature) > 1 or not feature.isascii())
        and not set(feature) <= _ASKING
        and feature not in _ASKING_WORDS
    )
    return telling <= 1
