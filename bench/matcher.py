"""How the matcher scales: decision latency, index build time and memory by knowledge-base size.

    python bench/matcher.py --entries 10000 [--lang en|zh] [--queries 1000] [--builds 5]

`--entries 38` (or fewer) is the bundled knowledge base, asked the labelled questions of
`tests/data/questions.jsonl`; larger sizes are synthetic (`synthetic.py`), asked their own
phrasings with one word left out. The plain approaches, rapidfuzz `extractOne` with `WRatio`
over every phrasing and difflib's closest match, answer the same questions in the same run,
as many as fit in `--baseline-seconds`. The process is pinned to one core.

The index is built `--builds` times and `build_s` is the quickest: on a shared machine a
build's time varies with its neighbours' load, and only ever upwards.

The last line is `entries=N p50_ms=… p99_ms=… build_s=… rss_mb=…`: the matcher's figures, with
`rss_mb` the whole process's resident memory once the first index is built.
"""

import sys
from pathlib import Path

# Run as a script, the folder on the path is bench/: the repository root is wanted, for
# `bench` as a package.
if __name__ == "__main__":
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

import argparse
import difflib
import gc
import json
import os
import random
import statistics
import time
from collections.abc import Callable

from rapidfuzz import fuzz, process, utils

from bench.arguments import positive, whole
from bench.synthetic import synthetic
from bot.knowledge import LANGUAGES, KnowledgeBase, Language, load_knowledge
from bot.matching import Matcher
from bot.paths import bundled
from bot.text import detect_language

LABELLED = Path(__file__).resolve().parent.parent / "tests" / "data" / "questions.jsonl"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=whole(1), default=1000)
    parser.add_argument("--lang", choices=LANGUAGES)
    parser.add_argument("--queries", type=whole(1), default=1000)
    parser.add_argument("--baseline-seconds", type=positive, default=10.0)
    parser.add_argument("--builds", type=whole(1), default=5)
    arguments = parser.parse_args()
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})

    real = load_knowledge(bundled("knowledge"))
    knowledge = synthetic(real, arguments.entries)
    questions = _questions(knowledge, real, arguments.queries, arguments.lang)
    gc.collect()
    rss_before = _rss_mb()
    started = time.perf_counter()
    matcher = Matcher(knowledge)
    builds = [time.perf_counter() - started]
    rss_mb = _rss_mb()
    for _ in range(arguments.builds - 1):
        started = time.perf_counter()
        Matcher(knowledge)
        builds.append(time.perf_counter() - started)
        gc.collect()
    build_s = min(builds)

    for question in questions[:20]:
        matcher.decide(question)
    ours = _latencies(matcher.decide, questions)
    choices = [
        phrasing
        for entry in knowledge
        for language in LANGUAGES
        for phrasing in entry.text(language).phrasings
    ]
    processed = [utils.default_process(choice) for choice in choices]
    budget = arguments.baseline_seconds / 2

    def wratio(question: str) -> object:
        return process.extractOne(
            utils.default_process(question), processed, scorer=fuzz.WRatio, processor=None
        )

    def closest(question: str) -> object:
        return difflib.get_close_matches(question, choices, n=1, cutoff=0.0)

    rows: list[tuple[str, list[float], float | None]] = [("matcher", ours, build_s)]
    rows.append(("rapidfuzz extractOne WRatio", _latencies(wratio, questions, budget), None))
    rows.append(("difflib get_close_matches", _latencies(closest, questions, budget), None))

    print(
        f"{len(knowledge)} entries ({len(choices)} phrasings), "
        f"{arguments.lang or 'en+zh'} questions, one core"
    )
    each = ", ".join(f"{seconds:.3f}" for seconds in builds)
    print(
        f"index: built in {build_s:.3f} s at best (each build: {each} s), "
        f"{rss_mb - rss_before:.0f} MB (process {rss_mb:.0f} MB)"
    )
    print()
    print("| approach | questions | p50 ms | p99 ms | p50 vs matcher |")
    print("|---|---:|---:|---:|---:|")
    ours_p50 = _percentile(ours, 50)
    for name, latencies, _ in rows:
        p50 = _percentile(latencies, 50)
        print(
            f"| {name} | {len(latencies)} | {p50:.3f} | {_percentile(latencies, 99):.3f} "
            f"| {p50 / ours_p50:.1f}× |"
        )
    print()
    print(
        f"entries={len(knowledge)} p50_ms={ours_p50:.3f} p99_ms={_percentile(ours, 99):.3f} "
        f"build_s={build_s:.3f} rss_mb={rss_mb:.0f}"
    )


def _questions(
    knowledge: KnowledgeBase, real: KnowledgeBase, count: int, language: Language | None
) -> list[str]:
    """The labelled questions for the real knowledge base; otherwise phrasings of random
    entries, each with one word (or, in Chinese, one character) left out."""
    if len(knowledge) <= len(real):
        lines = LABELLED.read_text(encoding="utf-8").splitlines()
        labelled = [json.loads(line)["q"] for line in lines if line.strip()]
        chosen = [q for q in labelled if language is None or detect_language(q) == language]
        return (chosen * (count // len(chosen) + 1))[:count]
    rng = random.Random(11)
    entries = list(knowledge)
    questions: list[str] = []
    while len(questions) < count:
        entry = rng.choice(entries)
        text = entry.text(language if language is not None else rng.choice(LANGUAGES))
        phrasing = rng.choice(text.phrasings)
        words = phrasing.split() if " " in phrasing else list(phrasing)
        del words[rng.randrange(len(words))]
        questions.append((" " if " " in phrasing else "").join(words))
    return questions


def _latencies(
    decide: Callable[[str], object], questions: list[str], budget: float | None = None
) -> list[float]:
    """Milliseconds per question; with a `budget` in seconds, as many questions as fit (≥ 1)."""
    latencies: list[float] = []
    spent = 0.0
    for question in questions:
        started = time.perf_counter()
        decide(question)
        elapsed = time.perf_counter() - started
        latencies.append(elapsed * 1000)
        spent += elapsed
        if budget is not None and spent >= budget:
            break
    return latencies


def _percentile(values: list[float], percent: int) -> float:
    if len(values) < 2:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[percent - 1]


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


if __name__ == "__main__":
    main()
