"""Text as the matcher compares it.

Full-width and half-width forms, upper and lower case, Traditional and Simplified Chinese and
punctuation all fold into one form; every glossary phrase becomes its term, in either language;
English words are stemmed, and Chinese, which has no spaces, is read as overlapping pairs of
characters (a lone character stands for itself).
"""

import itertools
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import opencc
import Stemmer
from rapidfuzz import process
from rapidfuzz.distance import DamerauLevenshtein

from bot.knowledge import Term
from bot.matching.index import Numbers, ranges

TERM_MARK = "§"
_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_LATIN_WORD = re.compile(r"[a-z0-9]+")
_CHUNK = re.compile(rf"{TERM_MARK}[a-z0-9-]+|[a-z0-9]+|[{_CJK}]+")
# The same, for many texts one per line (see `Normalizer.read`).
_CHUNK_OR_BREAK = re.compile(rf"{_CHUNK.pattern}|\n")
# The term mark goes too: only a glossary phrase, replaced after folding, may carry it.
_NOT_WORD = re.compile(r"\W|_")
# The same, for text that is split at whitespace next, which can stay as it is.
_NOT_WORD_OR_SPACE = re.compile(r"[^\w\s]|_")
# Full-width punctuation, which Chinese text is full of and which NFKC would turn into plain
# punctuation, no part of a word.
_FULL_WIDTH_PUNCTUATION = re.compile("[\uff01-\uff0f\uff1a-\uff20\uff3b-\uff40\uff5b-\uff65]")
# Chinese has no spaces: its clauses are cut apart at its commonest punctuation too, which
# folds to a space wherever it stands, so that they recur from text to text as words do.
_CLAUSE_BREAKS = "，。、；：？！（）《》“”"
# How many texts `_words_of` cuts into words at a time.
_TEXTS_AT_ONCE = 1000
# What follows each word's folded form when many are folded at once: never part of one.
_WORD_END = "\x01"
# Where one text ends and the next begins, when many are read at once: a control character,
# which the normaliser reads as a space anyway.
_TEXT_END = "\x00"
_MIN_CORRECTED_LENGTH = 5
_LONG_WORD = 8

# Words that carry no meaning for telling entries apart.
STOP_WORDS = frozenset(
    [
        "a",
        "about",
        "am",
        "an",
        "and",
        "any",
        "are",
        "as",
        "at",
        "be",
        "been",
        "but",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "doing",
        "for",
        "from",
        "get",
        "got",
        "had",
        "has",
        "have",
        "how",
        "i",
        "i'm",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "just",
        "me",
        "my",
        "myself",
        "of",
        "on",
        "or",
        "our",
        "ours",
        "please",
        "so",
        "some",
        "than",
        "that",
        "the",
        "their",
        "them",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "to",
        "too",
        "us",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "while",
        "who",
        "whom",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
        "yours",
        "hi",
        "hello",
        "thanks",
        "thank",
        "hey",
        "ok",
        "okay",
        "also",
        "there's",
        "what's",
        "im",
        "dont",
        "don't",
    ]
)

# The same for Chinese: question frames, pronouns and sentence-final particles. Only words
# that cannot be part of a longer word are listed (请 is not: 申请 means "apply").
CHINESE_STOP_WORDS = frozenset(
    [
        "什么意思",
        "干什么",
        "做什么",
        "是什么",
        "为什么",
        "怎么样",
        "怎么办",
        "能不能",
        "可不可以",
        "有没有",
        "是不是",
        "要不要",
        "会不会",
        "什么",
        "怎么",
        "怎样",
        "如何",
        "哪些",
        "哪个",
        "哪里",
        "意思",
        "可以",
        "我们",
        "你们",
        "他们",
        "这个",
        "那个",
        "这些",
        "那些",
        "请问",
        "一下",
        "一个",
        "需要",
        "的话",
        "是否",
        "具体",
        "现在",
        "一般",
        "自己",
        "的",
        "吗",
        "呢",
        "吧",
        "啊",
        "呀",
        "嘛",
        "啦",
        "哦",
    ]
)
_CHINESE_STOP = re.compile("|".join(sorted(CHINESE_STOP_WORDS, key=len, reverse=True)))


class Normalizer:
    """Turns text into the features the matcher compares, using the knowledge base's glossary."""

    def __init__(self, glossary: Sequence[Term] = ()) -> None:
        self._to_simplified = opencc.OpenCC("t2s")
        self._stemmer = Stemmer.Stemmer("english")
        self._terms: dict[str, str] = {}
        for term in glossary:
            for phrase in term.phrases:
                self._terms[self.fold(phrase)] = f" {TERM_MARK}{term.term} "
        self._term_patterns = _trie_patterns(self._terms)
        # What comes before and after a space in a phrase: a phrase may reach from a segment
        # that ends with the one into a segment that begins with the other.
        befores = {part for phrase in self._terms for part in phrase.split(" ")[:-1]}
        afters = {part for phrase in self._terms for part in phrase.split(" ")[1:]}
        self._reaching = (tuple(sorted(befores)), tuple(sorted(afters))) if befores else None
        self._vocabulary: list[str] = []
        # A knowledge base repeats its words endlessly: each is stemmed once.
        self._stems: dict[str, str] = {}

    def learn_vocabulary(self, texts: Iterable[str]) -> None:
        """Remember the English words of `texts`, so a misspelt query word can be corrected."""
        # All the texts at once, and only as much of `fold` as English letters need: its other
        # steps touch no letter, and a run of letters ends where they would put a space.
        joined = _compatible("\n".join(texts))
        words = set(_LATIN_WORD.findall(joined.casefold()))
        words.update(word for phrase in self._terms for word in _LATIN_WORD.findall(phrase))
        self._vocabulary = sorted(word for word in words if not word.isdigit())
        self._known = frozenset(self._vocabulary)

    def fold(self, text: str) -> str:
        """One form for width, case, script and punctuation."""
        return " ".join(_NOT_WORD.sub(" ", self._fold_letters(text)).split())

    def _fold_letters(self, text: str) -> str:
        """One form for width, case and script; punctuation as it is."""
        return self._to_simplified.convert(_compatible(text).casefold())

    def normalize(self, text: str, correct: bool = False) -> str:
        """Folded text with glossary phrases replaced by their terms (and typos mended)."""
        folded = self.fold(text)
        if correct and self._vocabulary:
            folded = _LATIN_WORD.sub(lambda match: self._correct(match.group()), folded)
        for pattern in self._term_patterns:
            folded = pattern.sub(lambda match: self._terms[match.group()], folded)
        return " ".join(folded.split())

    def features(self, text: str, correct: bool = False) -> Counter[str]:
        """The words, terms and Chinese character pairs of `text`, with their counts."""
        features: Counter[str] = Counter()
        for chunk in _CHUNK.findall(self.normalize(text, correct)):
            features.update(self._chunk_features(chunk))
        return features

    def read(self, texts: Sequence[str]) -> "Reading":
        """The features `features` finds in each of `texts`, each distinct piece read once.

        A large knowledge base has a hundred thousand texts, and they repeat their words and
        clauses endlessly. No fold reaches across whitespace (nor across Chinese punctuation,
        which folds to a space), so the texts are cut there into words and each distinct word
        is folded once. Folded, a word is one or more segments (none if it is all punctuation),
        and only a glossary phrase with a space in it can reach from one segment into the next:
        segments are joined into pieces where one could, and each distinct piece is read once.
        """
        words, said = _words_of(texts)
        breaks = said == (words.index(_TEXT_END) if len(texts) > 1 else -1)
        # Words are numbered as they first come: the highest number so far says how many.
        highest = np.concatenate(([-1], np.maximum.accumulate(said)))
        seen = highest[np.append(np.flatnonzero(breaks), len(said))] + 1
        distinct, segments, text_starts = self._segments(words, said, breaks)
        del said, breaks, highest
        pieces, sequence, piece_starts = self._pieces(distinct, segments, text_starts)
        return Reading(
            self._features_of_folded(pieces),
            sequence,
            np.searchsorted(piece_starts, text_starts),
            words,
            seen,
        )

    def _segments(
        self, words: list[str], said: Numbers, breaks: npt.NDArray[np.bool_]
    ) -> tuple[list[str], Numbers, Numbers]:
        """The distinct segments `words` fold to, the texts (`said`, with text ends at
        `breaks`) as numbers into them, and where each text begins among those numbers."""
        # All the words folded at once, each followed by a mark, and numbered with the mark
        # among them. A text end folds to no segment.
        folded = self._fold_each(words).split()
        numbers = dict(zip(dict.fromkeys(folded), itertools.count()))
        flat = np.fromiter(map(numbers.__getitem__, folded), np.int32, len(folded))
        marks = np.flatnonzero(flat == numbers[_WORD_END])
        sizes = np.diff(marks, prepend=-1) - 1
        counts = sizes[said]
        segments = flat[ranges((marks - sizes)[said], counts)]
        before = np.cumsum(counts) - counts
        return list(numbers), segments, np.concatenate(([0], before[breaks], [len(segments)]))

    def _pieces(
        self, distinct: list[str], segments: Numbers, text_starts: Numbers
    ) -> tuple[list[str], Numbers, Numbers]:
        """The folded text of each distinct piece, the pieces as numbers in order, and where
        each begins among `segments` (numbers into `distinct`)."""
        joins = np.zeros(len(segments), dtype=bool)
        if self._reaching is not None and len(segments) > 1:
            befores, afters = self._reaching
            ends = np.array([s.endswith(befores) for s in distinct], dtype=bool)
            begins = np.array([s.startswith(afters) for s in distinct], dtype=bool)
            joins[:-1] = ends[segments[:-1]] & begins[segments[1:]]
            last = text_starts[1:-1] - 1
            joins[last[last >= 0]] = False
        first = np.ones(len(segments), dtype=bool)
        first[1:] = ~joins[:-1]
        starts = np.flatnonzero(first)
        # A segment alone is the piece of the same number; longer pieces are numbered after.
        sequence = segments[starts]
        lengths = np.diff(np.append(starts, len(segments)))
        longer = np.flatnonzero(lengths > 1)
        pieces = list(distinct)
        if len(longer):
            counts = lengths[longer]
            listed = segments[ranges(starts[longer], counts)].tolist()
            ends = np.cumsum(counts).tolist()
            numbers: dict[tuple[int, ...], int] = {}
            found = []
            for end, count in zip(ends, counts.tolist(), strict=True):
                key = tuple(listed[end - count : end])
                number = numbers.get(key)
                if number is None:
                    number = numbers[key] = len(distinct) + len(numbers)
                found.append(number)
            sequence[longer] = found
            pieces += [" ".join(distinct[s] for s in key) for key in numbers]
            # A segment only ever part of longer pieces is no piece: it says nothing alone.
            alone = np.zeros(len(distinct), dtype=bool)
            alone[sequence[sequence < len(distinct)]] = True
            for segment in np.flatnonzero(~alone).tolist():
                pieces[segment] = ""
        return pieces, sequence, starts

    def _fold_each(self, words: list[str]) -> str:
        """`fold` for each of `words` (which hold no whitespace), all folded at once, each
        followed by `_WORD_END`."""
        folded = _NOT_WORD_OR_SPACE.sub(" ", self._fold_letters("\n".join(words)))
        return folded.replace("\n", f" {_WORD_END} ") + f" {_WORD_END}"

    def _features_of_folded(self, texts: list[str]) -> list[list[str]]:
        """For each of `texts`, folded already, the features `features` finds in it."""
        if not texts:
            return []
        folded = "\n".join(texts)
        for pattern in self._term_patterns:
            folded = pattern.sub(lambda match: self._terms[match.group()], folded)
        # Words and Chinese runs recur from text to text: each is read once.
        read: dict[str, list[str]] = {}
        each: list[list[str]] = []
        features: list[str] = []
        for chunk in _CHUNK_OR_BREAK.findall(folded):
            if chunk == "\n":
                each.append(features)
                features = []
                continue
            found = read.get(chunk)
            if found is None:
                found = read[chunk] = self._chunk_features(chunk)
            features += found
        each.append(features)
        return each

    def _chunk_features(self, chunk: str) -> list[str]:
        """A term, a stemmed English word (none for a stop word), or a Chinese run's pairs."""
        if chunk.startswith(TERM_MARK):
            return [chunk]
        if chunk[0].isascii():
            if chunk in STOP_WORDS:
                return []
            stem = self._stems.get(chunk)
            if stem is None:
                stem = self._stems[chunk] = self._stemmer.stemWord(chunk)
            return [stem]
        features = []
        for run in _CHINESE_STOP.split(chunk):
            if len(run) == 1:
                features.append(run)
            features.extend(run[i : i + 2] for i in range(len(run) - 1))
        return features

    def _correct(self, word: str) -> str:
        if len(word) < _MIN_CORRECTED_LENGTH or word in self._known or word.isdigit():
            return word
        # One slip (a wrong, missing, extra or swapped letter); two in a long word.
        allowed = 2 if len(word) >= _LONG_WORD else 1
        found = process.extractOne(
            word, self._vocabulary, scorer=DamerauLevenshtein.distance, score_cutoff=allowed
        )
        return found[0] if found else word


@dataclass(frozen=True)
class Reading:
    """Many texts as the distinct pieces they are made of: text t is the pieces
    `sequence[starts[t]:starts[t + 1]]`, and piece p has the features `pieces[p]`, once per
    occurrence."""

    pieces: list[list[str]]
    sequence: Numbers
    starts: Numbers
    words: list[str]
    """Every distinct word (whitespace or Chinese punctuation apart), in the order the texts
    first use it."""
    seen: Numbers
    """How many of `words` the texts up to each one use."""

    def words_of_first(self, count: int) -> list[str]:
        """The distinct words of the first `count` texts."""
        return self.words[: int(self.seen[count - 1])] if count else []


def _words_of(texts: Sequence[str]) -> tuple[list[str], Numbers]:
    """The distinct words (whitespace or Chinese punctuation apart) of `texts`, in the order
    they first come, and the texts as numbers into them, with `_TEXT_END` between one text and
    the next."""
    # A word is first numbered by where it first comes among all the words, which takes one
    # look-up a word, and those numbers are counted from 0 once all are known.
    places: dict[str, int] = {}
    said = []
    count = 0
    # A thousand texts at a time: all the words of a large knowledge base at once would take
    # gigabytes, and a thousand texts' words fit in the memory Python keeps for its next
    # objects, which is then reused rather than handed back and faulted in again.
    for start in range(0, max(len(texts), 1), _TEXTS_AT_ONCE):
        some = texts[start : start + _TEXTS_AT_ONCE]
        joined = f" {_TEXT_END} ".join(some)
        if joined.count(_TEXT_END) != len(some) - 1:
            joined = f" {_TEXT_END} ".join(text.replace(_TEXT_END, " ") for text in some)
        for mark in _CLAUSE_BREAKS:
            joined = joined.replace(mark, " ")
        words = joined.split()
        if start:
            words.insert(0, _TEXT_END)
        found = map(places.setdefault, words, itertools.count(count))
        said.append(np.fromiter(found, np.int64, len(words)))
        count += len(words)
    firsts = np.fromiter(places.values(), np.int64, len(places))
    numbers = np.empty(count, dtype=np.int64)
    numbers[firsts] = np.arange(len(firsts))
    return list(places), numbers[np.concatenate(said)]


def _compatible(text: str) -> str:
    """`text` in Unicode's compatibility form (NFKC): full-width letters as plain ones, and
    so on, except that full-width punctuation becomes a space, as all punctuation does in the
    end. Most text is in that form then, and checking is quicker than converting."""
    text = _FULL_WIDTH_PUNCTUATION.sub(" ", text)
    if unicodedata.is_normalized("NFKC", text):
        return text
    # Many texts one per line: only the lines that need it are converted.
    return "\n".join(
        line if unicodedata.is_normalized("NFKC", line) else unicodedata.normalize("NFKC", line)
        for line in text.split("\n")
    )


def _trie_patterns(phrases: Iterable[str]) -> list[re.Pattern[str]]:
    """Regexes that together find all `phrases`, longest first where several match at one
    place: English words whole, Chinese anywhere. Phrases that begin with an English letter or
    digit are found first, then the others.

    Each is shaped as a trie (phrases sharing a beginning share one branch), so the regex
    engine tries only the phrases that begin with the character in front of it. The two kinds
    are kept apart because a pattern that must begin a word lets the engine pass over the
    middle of every word, and one made only of other phrases lets it skip to their first
    characters; joined in one, it stops at every letter and is four times slower.
    """
    words: dict[str, dict] = {}
    others: dict[str, dict] = {}
    for phrase in phrases:
        node = words if _is_word_character(phrase[0]) else others
        for char in phrase:
            node = node.setdefault(char, {})
        node[""] = {}
    patterns = []
    if words:
        branches = "|".join(_branch(char, node) for char, node in sorted(words.items()))
        patterns.append(re.compile(rf"(?<![a-z0-9])(?:{branches})"))
    if others:
        patterns.append(re.compile("|".join(_branch(c, n) for c, n in sorted(others.items()))))
    return patterns


def _is_word_character(char: str) -> bool:
    """An English letter or digit: a phrase that begins or ends with one must begin or end a
    word."""
    return char.isascii() and char.isalnum()


def _branch(char: str, node: dict[str, dict]) -> str:
    """The pattern for `char` followed by every way of completing a phrase from `node`."""
    word = _is_word_character(char)
    head = re.escape(char)
    children = sorted((c, n) for c, n in node.items() if c)
    # A phrase ending in an English letter or digit must end a word.
    end = r"(?![a-z0-9])" if word else ""
    if not children:
        return head + end
    rest = "|".join(_branch(c, n) for c, n in children)
    if "" not in node:
        return head + (f"(?:{rest})" if len(children) > 1 else rest)
    # Greedy: the longer phrase first, this one only if none of them matches.
    return f"{head}(?:(?:{rest})|{end})" if end else f"{head}(?:{rest})?"
