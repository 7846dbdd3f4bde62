"""Turning similarity figures into calibrated probabilities.

Two small logistic models, fitted on the labelled question set's development half with
`ipbot eval tests/data/questions.jsonl --fit` (the other half is held out to check them):

- `right`: the probability that the best entry is the right answer, from its similarity, its
  lead over the runner-up, how much of the question it accounts for, and the question's length;
- `listed`: the probability that the right answer is among the best few entries at all (that
  the question is in scope), from the same figures but the lead.
"""

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Signals:
    """What the matcher measured for a question's best entry, each on a 0-1 scale but `length`.

    `chinese` is 1 for a question in Chinese: its character pairs make similarities run
    higher than English words do, so the same similarity means less.
    """

    similarity: float
    lead: float
    coverage: float
    length: float
    chinese: float

    @property
    def for_right(self) -> tuple[float, ...]:
        return (self.similarity, self.lead, self.coverage, self.length, self.chinese)

    @property
    def for_listed(self) -> tuple[float, ...]:
        return (self.similarity, self.coverage, self.length, self.chinese)


@dataclass(frozen=True)
class Calibration:
    """Weights of the two logistic models, bias first."""

    right: tuple[float, ...]
    listed: tuple[float, ...]

    def probability_right(self, signals: Signals) -> float:
        return _logistic(self.right, signals.for_right)

    def probability_listed(self, signals: Signals) -> float:
        return _logistic(self.listed, signals.for_listed)


def _logistic(weights: tuple[float, ...], values: tuple[float, ...]) -> float:
    bias, *slopes = weights
    z = bias + sum(w * x for w, x in zip(slopes, values, strict=True))
    return 1.0 / (1.0 + math.exp(-z))


DEFAULT = Calibration(
    right=(-8.0, 6.56, 4.2, 3.92, 2.32, 0.68),
    listed=(-7.6, 7.12, 4.56, 2.31, 0.42),
)
