"""A TF-IDF index: cosine similarity of a query with many short documents, via inverted lists."""

import math
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence


class Index:
    """Documents as weighted feature vectors, found through the features they share with a query.

    `idf` is given from outside so that several indexes (phrasings, whole entries) weigh a
    word the same way: by how many entries use it.
    """

    def __init__(self, documents: Sequence[Counter[str]], idf: Mapping[str, float]) -> None:
        self._idf = idf
        # A word no entry uses is as telling as the rarest one: it lowers every similarity.
        self._unseen = max(idf.values(), default=1.0)
        self._postings: dict[str, list[tuple[int, float]]] = defaultdict(list)
        for number, features in enumerate(documents):
            vector = self.vector(features)
            for feature, weight in vector.items():
                self._postings[feature].append((number, weight))
        self.size = len(documents)

    def vector(self, features: Counter[str]) -> dict[str, float]:
        """Unit-length TF-IDF weights, with sub-linear term frequency."""
        weights = {
            feature: (1.0 + math.log(count)) * self._idf.get(feature, self._unseen)
            for feature, count in features.items()
            if count > 0
        }
        norm = math.sqrt(sum(weight * weight for weight in weights.values()))
        return {feature: weight / norm for feature, weight in weights.items()} if norm else {}

    def similarities(self, features: Counter[str]) -> dict[int, float]:
        """Cosine similarity with every document that shares a feature with the query."""
        scores: dict[int, float] = defaultdict(float)
        for feature, weight in self.vector(features).items():
            for number, document_weight in self._postings.get(feature, ()):
                scores[number] += weight * document_weight
        return scores


def inverse_document_frequency(documents: Sequence[Counter[str]]) -> dict[str, float]:
    """Smoothed IDF of every feature over `documents`."""
    counts: Counter[str] = Counter()
    for features in documents:
        counts.update(features.keys())
    total = len(documents)
    return {feature: math.log((1 + total) / (1 + count)) + 1.0 for feature, count in counts.items()}
