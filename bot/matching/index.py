"""A TF-IDF index: cosine similarity of a query with many short documents, via inverted lists.

Features are numbered, and an index is built from (document, feature, count) triples
(`Features.said`) with NumPy, so building it costs a few array operations however large
the knowledge base, and scoring a query costs a few per query feature however many documents
carry it: a large knowledge base has words that every entry shares.
"""

import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np
import numpy.typing as npt

Scores = npt.NDArray[np.float64]
# Whole numbers in 32 bits where they fit, 64 where they must.
Numbers = npt.NDArray[np.signedinteger]


class Features:
    """A number for every feature, and the features of each of many texts as numbers: text t's
    are _features[_starts[t]:_starts[t + 1]], once per occurrence.

    Made from the texts as pieces (see `Normalizer.read`): text t is the pieces
    `sequence[starts[t]:starts[t + 1]]`, and piece p has the features `pieces[p]`.
    """

    def __init__(self, pieces: Iterable[Sequence[str]], sequence: Numbers, starts: Numbers) -> None:
        self.numbers: dict[str, int] = {}
        numbers = self.numbers
        flat: list[int] = []
        ends = [0]
        for features in pieces:
            flat.extend([numbers.setdefault(f, len(numbers)) for f in features])
            ends.append(len(flat))
        bounds = np.array(ends, dtype=np.int64)
        lengths = np.diff(bounds)[sequence]
        self._features = np.array(flat, dtype=np.int32)[ranges(bounds[sequence], lengths)]
        self._starts = np.concatenate(([0], np.cumsum(lengths)))[starts]

    def __len__(self) -> int:
        return len(self.numbers)

    def said(
        self, owners: npt.ArrayLike, texts: npt.ArrayLike, weights: npt.ArrayLike
    ) -> tuple[Numbers, Numbers, Scores]:
        """(owner, feature, count) triples, owners in order, for what each owner says: owner
        `owners[i]` says text `texts[i]`, each of its features counting `weights[i]`."""
        chosen = np.asarray(texts, dtype=np.int64)
        lengths = self._starts[chosen + 1] - self._starts[chosen]
        owners = np.asarray(owners, dtype=np.int64)
        size = len(self.numbers)
        # Owner and feature as one key, in the smallest type that holds it: a large knowledge
        # base says millions of features.
        fits = (int(owners.max(initial=0)) + 1) * size < 2**31
        keys = np.repeat(owners.astype(np.int32 if fits else np.int64), lengths)
        keys *= size
        keys += self._features[ranges(self._starts[chosen], lengths)]
        # Repeated pairs are one, with their counts added up. Owners mostly come in order,
        # and a stable sort runs along what is sorted already.
        order = np.argsort(keys, kind="stable")
        keys = keys[order]
        first = np.ones(len(keys), dtype=bool)
        np.not_equal(keys[1:], keys[:-1], out=first[1:])
        counts = np.repeat(np.asarray(weights, dtype=np.float64), lengths)[order]
        pairs = keys[first].astype(np.int64)
        # NumPy's stubs type a weighted bincount as intp; it is float64.
        return pairs // size, pairs % size, np.bincount(np.cumsum(first) - 1, counts)  # type: ignore[return-value]


def inverse_document_frequency(
    features: Numbers, document_count: int, feature_count: int
) -> Scores:
    """Smoothed IDF of every feature, from the features of distinct (document, feature) pairs."""
    frequency = np.bincount(features, minlength=feature_count)
    return np.log((1 + document_count) / (1 + frequency)) + 1.0


def ranges(starts: Numbers, lengths: Numbers) -> Numbers:
    """The numbers `starts[i]` to `starts[i] + lengths[i] - 1` for each i, one range after
    another."""
    offsets = np.cumsum(lengths) - lengths
    return np.repeat(starts - offsets, lengths) + np.arange(int(lengths.sum()))


class Index:
    """Documents as unit-length TF-IDF vectors, found through the features they share with a
    query.

    `idf` is given from outside so that several indexes (phrasings, whole entries) weigh a
    word the same way: by how many entries use it.
    """

    def __init__(
        self, documents: Numbers, features: Numbers, counts: Scores, idf: Scores, size: int
    ) -> None:
        self.size = size
        weight = _unit_weights(documents, features, counts, idf, size)
        # Feature f's postings are _documents[_starts[f]:_starts[f + 1]], with their weights.
        # NumPy sorts numbers of 16 bits by radix, several times quicker than any other.
        order = np.argsort(
            features.astype(np.uint16 if len(idf) <= 1 << 16 else np.int64), kind="stable"
        )
        self._documents = documents[order]
        self._weights = weight[order]
        postings = np.bincount(features, minlength=len(idf))
        self._starts = np.concatenate(([0], np.cumsum(postings))).tolist()

    def similarities(self, query: Mapping[int, float]) -> Scores:
        """Cosine similarity of a unit-length `query` (feature number to weight) with every
        document (0 where they share nothing)."""
        documents = []
        weights = []
        for feature, weight in query.items():
            start, end = self._starts[feature], self._starts[feature + 1]
            documents.append(self._documents[start:end])
            weights.append(self._weights[start:end] * weight)
        if not documents:
            return np.zeros(self.size)
        # NumPy's stubs type a weighted bincount as intp; it is float64.
        return np.bincount(  # type: ignore[return-value]
            np.concatenate(documents), weights=np.concatenate(weights), minlength=self.size
        )


class Vectors:
    """Documents as unit-length TF-IDF vectors kept document by document, for scoring a few
    chosen documents rather than every document that shares a feature with the query."""

    def __init__(
        self, documents: Numbers, features: Numbers, counts: Scores, idf: Scores, size: int
    ) -> None:
        # `documents` come in order (as `Triples.arrays` gives them): document d's features
        # are _features[_starts[d]:_starts[d + 1]], with their weights.
        self._features = features
        self._weights = _unit_weights(documents, features, counts, idf, size)
        self._starts = np.searchsorted(documents, np.arange(size + 1))

    def similarities(self, chosen: Numbers, query: Scores) -> Scores:
        """Cosine similarity with each `chosen` document of a unit-length `query` given as a
        weight for every feature number."""
        starts = self._starts[chosen]
        lengths = self._starts[chosen + 1] - starts
        positions = ranges(starts, lengths)
        products = self._weights[positions] * query[self._features[positions]]
        owners = np.repeat(np.arange(len(chosen)), lengths)
        # NumPy's stubs type a weighted bincount as intp; it is float64.
        return np.bincount(owners, weights=products, minlength=len(chosen))  # type: ignore[return-value]


def _unit_weights(
    documents: Numbers, features: Numbers, counts: Scores, idf: Scores, size: int
) -> Scores:
    """TF-IDF weights with sub-linear term frequency, each document's scaled to unit length."""
    weight = (1.0 + np.log(counts)) * idf[features]
    norm = np.sqrt(np.bincount(documents, weights=weight * weight, minlength=size))
    return weight / norm[documents]


def unit_vector(features: Counter[str], idf: Callable[[str], float]) -> dict[str, float]:
    """Unit-length TF-IDF weights of a query's features, with sub-linear term frequency."""
    weights = {
        feature: (1.0 + math.log(count)) * idf(feature)
        for feature, count in features.items()
        if count > 0
    }
    norm = math.sqrt(sum(weight * weight for weight in weights.values()))
    return {feature: weight / norm for feature, weight in weights.items()} if norm else {}
