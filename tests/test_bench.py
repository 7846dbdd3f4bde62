"""The benchmarks still run and still print what the README quotes from them.

Each runs at a small size here; the figures themselves are measured by hand (README,
"Performance and limits") and never asserted.
"""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import POSTGRES_URL

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


def test_throughput_benchmark_answers_every_question_it_sends() -> None:
    lines = run(
        "throughput.py", "--database", "sqlite", "--updates", "40", "--warmup", "5",
        "--concurrency", "8", "--chats", "20",
    )  # fmt: skip
    assert re.search(r"handled_per_s=[\d.]+ p50_ms=[\d.]+ p99_ms=[\d.]+", lines[-1])
    assert " unanswered=0 errors=0 " in lines[-1]


def test_throughput_benchmark_measures_the_framework_alone_with_the_floor_bot() -> None:
    lines = run(
        "throughput.py", "--bot", "floor", "--database", "sqlite", "--updates", "40",
        "--warmup", "5", "--concurrency", "8", "--chats", "20",
    )  # fmt: skip
    assert lines[-1].startswith("bot=floor ")
    assert " unanswered=0 errors=0 " in lines[-1]


def test_ticket_benchmark_checks_every_ticket_was_claimed_and_closed_once() -> None:
    lines = run("tickets.py", "--database", "sqlite", "--tickets", "30", "--experts", "10")
    assert "check: every ticket claimed once and closed once" in lines
    assert lines[-1].endswith("failures=0 correct=yes")


def test_soak_benchmark_reports_memory_at_start_and_end() -> None:
    lines = run("soak.py", "--database", "sqlite", "--minutes", "0.1", "--rate", "5")
    assert re.search(r" rss_start_mb=[\d.]+ rss_end_mb=[\d.]+ errors=0 ", lines[-1])
    assert lines[-1].endswith(" unanswered=0")


def test_http_benchmark_measures_both_backends_and_ends_with_their_figures() -> None:
    lines = run("http.py", "--requests", "50", "--concurrency", "8", "--rounds", "1")
    assert lines[-1].startswith("requests=50 concurrency=8 ")
    assert re.search(r" httpx_cpu_ms=[\d.]+ aiohttp_cpu_ms=[\d.]+ ratio=[\d.]+$", lines[-1])


def test_turn_benchmark_times_three_ways_of_one_transaction_that_store_the_same() -> None:
    if not POSTGRES_URL:
        pytest.skip("TEST_POSTGRES_URL is not set: no PostgreSQL server configured")
    lines = run("turn.py", "--postgres-url", POSTGRES_URL, "--turns", "20", "--rounds", "1")
    assert "check: every transaction stored its inbound and its reply" in lines
    assert re.fullmatch(
        r"turns=20 store_cpu_ms=[\d.]+ core_cpu_ms=[\d.]+ asyncpg_cpu_ms=[\d.]+ stored=yes",
        lines[-1],
    )


def test_startup_benchmark_times_help_and_the_chat_prompt_on_an_old_and_a_new_database() -> None:
    lines = run("startup.py", "--runs", "1")
    table = "\n".join(lines)
    assert "ipbot --help" in table
    assert "ipbot chat, first prompt, new database" in table
    assert re.fullmatch(r"runs=1 help_s=[\d.]+ chat_s=[\d.]+ chat_new_s=[\d.]+", lines[-1])


@pytest.mark.parametrize(
    ("script", "arguments", "said"),
    [
        (
            "throughput.py",
            ["--concurrency", "0"],
            "argument --concurrency: must be at least 1, not 0",
        ),
        ("throughput.py", ["--rate", "0"], "argument --rate: must be a number above 0, not 0"),
        (
            "throughput.py",
            ["--updates", "many"],
            "argument --updates: 'many' is not a whole number",
        ),
        ("tickets.py", ["--experts", "0"], "argument --experts: must be at least 1, not 0"),
        ("matcher.py", ["--entries", "-5"], "argument --entries: must be at least 1, not -5"),
        ("http.py", ["--rounds", "0"], "argument --rounds: must be at least 1, not 0"),
        ("turn.py", ["--turns", "0"], "argument --turns: must be at least 1, not 0"),
        ("soak.py", ["--minutes", "nan"], "argument --minutes: must be a number above 0, not nan"),
        ("startup.py", ["--runs", "0"], "argument --runs: must be at least 1, not 0"),
        ("startup.py", ["--baseline", "/nowhere/ipbot"], "no baseline `ipbot` executable at"),
        (
            "soak.py",
            ["--talents", "2", "--workers", "3"],
            "--talents must be at least the conversations at once (3, --workers)",
        ),
    ],
)
def test_a_benchmark_refuses_a_size_that_would_leave_nothing_to_measure(
    script: str, arguments: list[str], said: str
) -> None:
    finished = subprocess.run(
        [sys.executable, str(BENCH / script), *arguments],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert finished.returncode == 2
    assert said in finished.stderr.splitlines()[-1]
