"""The benchmarks still run and still print what the README quotes from them.

Each runs at a small size here; the figures themselves are measured by hand (README,
"Performance and limits") and never asserted.
"""

import re
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench"


def run(script: str, *arguments: str) -> list[str]:
    finished = subprocess.run(
        [sys.executable, str(BENCH / script), *arguments],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return finished.stdout.strip().splitlines()


def test_matcher_benchmark_compares_the_plain_approaches_and_ends_with_its_figures() -> None:
    lines = run("matcher.py", "--entries", "200", "--queries", "50", "--baseline-seconds", "0.2")
    table = "\n".join(lines)
    assert "| matcher |" in table
    assert "| rapidfuzz extractOne WRatio |" in table
    assert "| difflib get_close_matches |" in table
    assert re.fullmatch(
        r"entries=200 p50_ms=[\d.]+ p99_ms=[\d.]+ build_s=[\d.]+ rss_mb=\d+", lines[-1]
    )


def test_matcher_benchmark_asks_the_real_knowledge_base_its_labelled_questions() -> None:
    lines = run(
        "matcher.py",
        "--entries",
        "38",
        "--queries",
        "20",
        "--lang",
        "zh",
        "--baseline-seconds",
        "0.2",
    )
    assert lines[0].startswith("38 entries")
    assert "zh questions" in lines[0]
    assert lines[-1].startswith("entries=38 ")
