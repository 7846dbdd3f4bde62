"""`ipbot` as a user runs it: real files, real databases; commands run in this process, and
in a process of their own where the test is about the process."""

import asyncio
import io
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

from bot.cli import main
from bot.config import Settings
from bot.paths import bundled, bundled_questions, package_path
from bot.store import migrate
from tests.conftest import PostgresDatabase


@dataclass
class Finished:
    """What a command left: its exit status and what it printed."""

    returncode: int
    stdout: str
    stderr: str


Ipbot = Callable[..., Finished]


@pytest.fixture
def ipbot(
    clean_environment: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Ipbot:
    """`ipbot ARGS` run in this process, in an empty folder, with `stdin` as its input and
    `env` as the only settings from outside."""

    def run(*args: str, stdin: str = "", **env: str) -> Finished:
        with monkeypatch.context() as patch:
            for name, value in env.items():
                patch.setenv(name, value)
            patch.setattr(sys, "stdin", io.StringIO(stdin))
            try:
                code = main(args)
            except SystemExit as stopped:
                code = stopped.code if isinstance(stopped.code, int) else 1
        printed = capsys.readouterr()
        return Finished(code, printed.out, printed.err)

    return run


def installed(*args: str, cwd: Path, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """The installed `ipbot` executable, as a process of its own, with no bot settings."""
    return subprocess.run(
        [str(Path(sys.executable).parent / "ipbot"), *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=cwd,
        env=_environment(),
        timeout=60,
        check=False,
    )


@dataclass
class Loaded:
    """What a command printed, and the packages its process had loaded when it ended."""

    stdout: str
    modules: set[str]


_REPORT_MODULES = """
import sys
from bot.cli import main
try:
    main(sys.argv[1:])
finally:
    print(*sorted({name.partition(".")[0] for name in sys.modules}), file=sys.stderr)
"""


def loaded_by(*args: str, cwd: Path) -> Loaded:
    """`ipbot ARGS` in a process of its own, with empty input."""
    finished = subprocess.run(
        [sys.executable, "-c", _REPORT_MODULES, *args], input="",
        capture_output=True, text=True, cwd=cwd, env=_environment(), timeout=60, check=False,
    )  # fmt: skip
    return Loaded(finished.stdout, set(finished.stderr.split()))


def _environment() -> dict[str, str]:
    return {
        name: value
        for name, value in os.environ.items()
        if name.lower() not in Settings.model_fields
    }


def test_the_installed_ipbot_chats_through_a_pipe_in_english_and_chinese_on_a_new_sqlite_file(
    tmp_path: Path,
) -> None:
    chat = installed(
        "chat",
        cwd=tmp_path,
        stdin="Can a foreigner take the patent agent exam?\n外国人可以考专利代理师吗？\n",
    )
    assert chat.returncode == 0, chat.stderr
    assert "Foreign Permanent Residence ID Card" in chat.stdout
    assert "外国人永久居留身份证" in chat.stdout
    assert "  1) 👍 Helpful" in chat.stdout
    assert (tmp_path / "data" / "ipbot.sqlite3").is_file()


def test_the_installed_ipbot_exits_2_on_a_usage_error_and_1_on_a_problem(tmp_path: Path) -> None:
    usage = installed("frobnicate", cwd=tmp_path)
    assert usage.returncode == 2
    assert "usage: ipbot" in usage.stderr
    problem = installed("kb", "reload", cwd=tmp_path)
    assert problem.returncode == 1
    assert problem.stderr.startswith("ipbot: no running bot found")


def test_help_and_a_chat_on_a_current_database_load_only_what_they_use(tmp_path: Path) -> None:
    helped = loaded_by("--help", cwd=tmp_path)
    assert "usage: ipbot" in helped.stdout
    assert not helped.modules & {"pydantic", "sqlalchemy", "yaml", "numpy", "telegram", "alembic"}
    first = loaded_by("chat", cwd=tmp_path)
    assert "alembic" in first.modules  # the new SQLite file is given its schema
    again = loaded_by("chat", cwd=tmp_path)
    assert "Hello! I answer intellectual-property questions" in again.stdout
    assert not again.modules & {"telegram", "alembic", "aiohttp"}


def test_chat_picks_a_numbered_choice_and_survives_bad_input(ipbot: Ipbot) -> None:
    lines = ["patent", "99", "1", "", "😀", "\x00\x01", "x" * 10_000, "/nonsense"]
    chat = ipbot("chat", stdin="\n".join(lines) + "\n")
    assert chat.returncode == 0, chat.stderr
    assert "Please pick a number from 1 to" in chat.stdout
    assert "Your message was empty" in chat.stdout
    assert "written in words" in chat.stdout
    assert "That message is long (10000 characters)" in chat.stdout
    assert "I don't know that command" in chat.stdout
    assert "Traceback" not in chat.stderr


def test_chat_keeps_the_conversation_across_runs(ipbot: Ipbot) -> None:
    ipbot("chat", stdin="/language zh\n")
    chat = ipbot("chat", stdin="Can a foreigner take the patent agent exam?\n")
    assert "外国人永久居留身份证" in chat.stdout


def test_chat_on_an_unreachable_database_says_so_in_one_line(ipbot: Ipbot) -> None:
    chat = ipbot("chat", DATABASE_URL="postgresql+asyncpg://nobody@127.0.0.1:9/none")
    assert chat.returncode == 1
    assert chat.stderr.startswith("ipbot: cannot use the database (DATABASE_URL):")
    assert chat.stderr.count("\n") == 1


async def test_postgresql_is_migrated_on_purpose_then_chats(ipbot: Ipbot) -> None:
    async with PostgresDatabase() as url:
        # The commands run their own event loop: they run beside this test's.
        before = await asyncio.to_thread(ipbot, "chat", DATABASE_URL=url)
        assert before.returncode == 1
        assert "run `ipbot db upgrade` first" in before.stderr
        upgrade = await asyncio.to_thread(ipbot, "db", "upgrade", DATABASE_URL=url)
        assert upgrade.returncode == 0, upgrade.stderr
        chat = await asyncio.to_thread(
            ipbot,
            "chat",
            stdin="Can a foreigner take the patent agent exam?\n",
            DATABASE_URL=url,
        )
        assert chat.returncode == 0, chat.stderr
        assert "Foreign Permanent Residence ID Card" in chat.stdout


def test_chat_brings_a_sqlite_file_of_an_older_schema_up_to_date(
    ipbot: Ipbot, tmp_path: Path
) -> None:
    assert ipbot("db", "upgrade").returncode == 0
    # Alembic on its own reads DATABASE_URL from the settings: the file in this folder.
    command.downgrade(_migrations(), "-1")
    chat = ipbot("chat", stdin="Can a foreigner take the patent agent exam?\n")
    assert chat.returncode == 0, chat.stderr
    assert "Foreign Permanent Residence ID Card" in chat.stdout
    with sqlite3.connect(tmp_path / "data" / "ipbot.sqlite3") as database:
        [(stored,)] = database.execute("SELECT version_num FROM alembic_version").fetchall()
    assert stored == ScriptDirectory.from_config(_migrations()).get_current_head()


def test_the_newest_migration_file_is_named_by_alembics_newest_revision() -> None:
    # What lets `ipbot` see that a schema is current without loading Alembic.
    head = ScriptDirectory.from_config(_migrations()).get_current_head()
    assert migrate.newest_file_revision() == head


def _migrations() -> Config:
    config = Config()
    config.set_main_option("script_location", str(package_path("store", "migrations")))
    return config


def test_ask_json_prints_one_decision(ipbot: Ipbot) -> None:
    ask = ipbot("ask", "Can a foreigner take the patent agent exam?", "--json")
    assert ask.returncode == 0, ask.stderr
    decision = json.loads(ask.stdout)
    assert set(decision) == {"q", "expect", "action", "id", "options", "score"}
    assert decision["action"] == "answer"
    assert decision["id"] == "agent-exam.foreigners"


def test_eval_json_reports_every_question_and_a_summary(ipbot: Ipbot, tmp_path: Path) -> None:
    questions = tmp_path / "q.jsonl"
    questions.write_text(
        '{"q": "Can a foreigner take the patent agent exam?", "expect": "agent-exam.foreigners"}\n'
        '{"q": "外国人可以考专利代理师吗", "expect": "agent-exam.foreigners"}\n'
        '{"q": "What is the weather tomorrow?", "expect": null}\n',
        encoding="utf-8",
    )
    run = ipbot("eval", str(questions), "--json")
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert report["results"][0]["q"] == "Can a foreigner take the patent agent exam?"
    assert set(report["results"][0]) == {"q", "expect", "action", "id", "options", "score"}
    assert report["summary"]["en"]["in_scope"] == 1
    assert report["summary"]["zh"]["answered_correctly"] == 1.0
    assert report["summary"]["all"]["questions"] == 3


def test_eval_table_is_readable(ipbot: Ipbot, tmp_path: Path) -> None:
    questions = tmp_path / "q.jsonl"
    questions.write_text('{"q": "patent fees?", "expect": "patent.fees"}\n', encoding="utf-8")
    run = ipbot("eval", str(questions))
    assert run.returncode == 0, run.stderr
    assert "| correct direct answer (in scope) |" in run.stdout


def test_eval_names_the_line_of_a_bad_question(ipbot: Ipbot, tmp_path: Path) -> None:
    questions = tmp_path / "q.jsonl"
    questions.write_text('{"q": "ok", "expect": null}\n{"q": "x", "expect": "no.such"}\n')
    run = ipbot("eval", str(questions))
    assert run.returncode == 2
    assert f"{questions}:2: unknown entry id 'no.such'" in run.stderr


def test_kb_export_json_lists_every_entry_with_both_languages(ipbot: Ipbot) -> None:
    run = ipbot("kb", "export", "--json")
    assert run.returncode == 0, run.stderr
    exported = json.loads(run.stdout)
    assert len(exported["version"]) == 12
    first = next(e for e in exported["entries"] if e["id"] == "agent-exam.foreigners")
    assert set(first) == {"id", "questions", "answers", "source", "reviewed"}
    assert (
        first["questions"]["en"][0]
        == "Can a foreigner take China's patent agent qualification exam?"
    )
    assert len(first["questions"]["zh"]) >= 7
    assert first["answers"]["zh"]
    assert first["reviewed"] == "2026-11-24"


def test_kb_check_passes_on_the_bundled_set(ipbot: Ipbot) -> None:
    run = ipbot("kb", "check")
    assert run.returncode == 0, run.stderr
    assert "no problems" in run.stdout


def test_kb_check_on_a_broken_copy_names_file_and_line(ipbot: Ipbot, tmp_path: Path) -> None:
    copy = tmp_path / "kb"
    shutil.copytree(bundled("knowledge"), copy)
    broken = copy / "agent-exam.yaml"
    lines = broken.read_text(encoding="utf-8").splitlines()
    lines[3] = lines[3].replace("tags: [", "tags: [[")
    broken.write_text("\n".join(lines), encoding="utf-8")
    run = ipbot("kb", "check", str(copy))
    assert run.returncode == 1
    assert f"{broken}:" in run.stderr
    assert "malformed YAML" in run.stderr


@pytest.mark.parametrize("command", [["kb", "check"], ["kb"], ["frobnicate"]])
def test_usage_errors_exit_2(ipbot: Ipbot, command: list[str]) -> None:
    run = ipbot(*command, "--no-such-flag")
    assert run.returncode == 2
    assert "usage: ipbot" in run.stderr


def test_run_without_a_bot_token_says_what_to_set(ipbot: Ipbot) -> None:
    run = ipbot("run")
    assert run.returncode == 2
    assert run.stderr.startswith("ipbot: TELEGRAM_BOT_TOKEN is not set")
    assert run.stderr.count("\n") == 1


def test_experts_are_added_and_listed_from_the_command_line(ipbot: Ipbot) -> None:
    added = ipbot(
        "experts", "add", "--id", "2001", "--name", "Li", "--specialty", "patents",
        "--lang", "zh",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert "Li (telegram 2001) is now expert" in added.stdout
    listed = ipbot("experts", "list")
    assert "telegram:2001" in listed.stdout
    assert "patents [zh] available" in listed.stdout


def test_adding_an_expert_with_an_unknown_language_or_topic_is_refused(ipbot: Ipbot) -> None:
    wrong_language = ipbot("experts", "add", "--id", "1", "--name", "X", "--lang", "fr")
    assert wrong_language.returncode == 2
    assert "--lang: use en, zh or en,zh" in wrong_language.stderr
    wrong_topic = ipbot("experts", "add", "--id", "1", "--name", "X", "--specialty", "cooking")
    assert wrong_topic.returncode == 2
    assert "invalid choice: 'cooking'" in wrong_topic.stderr


def test_adding_an_expert_on_a_channel_the_bot_does_not_have_is_refused(ipbot: Ipbot) -> None:
    wrong = ipbot("experts", "add", "--channel", "Telegram", "--id", "abc", "--name", "Li")
    assert wrong.returncode == 2
    error = wrong.stderr.splitlines()[-1]
    assert error.startswith("ipbot experts add: error: argument --channel: invalid choice:")
    assert "'Telegram'" in error
    assert "console" in error
    assert "telegram" in error
    listed = ipbot("experts", "list")
    assert "no experts or staff yet" in listed.stderr


def test_adding_an_expert_by_a_username_or_without_a_name_is_refused(ipbot: Ipbot) -> None:
    username = ipbot("experts", "add", "--id", "@li_ming", "--name", "Li")
    assert username.returncode == 2
    assert "--id: a Telegram user id is a number, such as 123456789, not '@li_ming'" in (
        username.stderr
    )
    blank = ipbot("experts", "add", "--id", "2001", "--name", "  ")
    assert blank.returncode == 2
    assert "--name: give the name talents see, 1 to 64 characters" in blank.stderr
    too_long = ipbot("experts", "add", "--id", "2001", "--name", "L" * 65)
    assert too_long.returncode == 2
    listed = ipbot("experts", "list")
    assert listed.stdout == ""
    assert "no experts or staff yet" in listed.stderr


def test_kb_reload_without_a_running_bot_says_so(ipbot: Ipbot) -> None:
    run = ipbot("kb", "reload")
    assert run.returncode == 1
    assert "no running bot found" in run.stderr


def _drop_alternates(folder: Path, entry_id: str, count: int) -> None:
    path = next(p for p in folder.glob("*.yaml") if f"id: {entry_id}\n" in p.read_text("utf-8"))
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    start = next(n for n, line in enumerate(lines) if line.strip() == f"- id: {entry_id}")
    first = next(n for n in range(start, len(lines)) if lines[n].strip() == "alternates:") + 1
    del lines[first : first + count]
    path.write_text("".join(lines), encoding="utf-8")


def test_kb_check_of_an_edit_lists_the_decisions_it_changes_and_replays_the_log(
    ipbot: Ipbot, tmp_path: Path
) -> None:
    ipbot("chat", stdin="How long is a Chinese invention patent valid?\n专利\n")
    edited = tmp_path / "edited"
    shutil.copytree(bundled("knowledge"), edited)
    _drop_alternates(edited, "patent.types-terms", 12)
    run = ipbot("kb", "check", str(edited))
    assert run.returncode == 0, run.stderr
    assert "decisions change; correct direct answers" in run.stdout
    assert "used to answer patent.types-terms, now" in run.stdout
    assert "recent talent questions (the last 2):" in run.stdout
    assert "en: 1 replayed" in run.stdout
    assert "zh: 1 replayed" in run.stdout


def test_kb_check_of_an_edit_without_a_conversation_log_says_so(
    ipbot: Ipbot, tmp_path: Path
) -> None:
    run = ipbot("kb", "check", str(bundled("knowledge")) + "/")
    assert run.returncode == 0, run.stderr
    edited = tmp_path / "edited"
    shutil.copytree(bundled("knowledge"), edited)
    run = ipbot("kb", "check", str(edited))
    assert "0 decisions change" in run.stdout
    assert "recent questions: no conversation log to replay" in run.stdout


def test_report_unanswered_groups_similar_questions_with_the_nearest_entry(ipbot: Ipbot) -> None:
    asked = [
        "How do I register a drone with aviation authorities?",
        "how do i register my drone with the aviation authority",
        "How to register a drone with the aviation authorities in Beijing?",
        "Where can I buy a bicycle near Wudaokou?",
        "Can a foreigner take the patent agent exam?",
    ]
    ipbot("chat", stdin="\n".join(asked) + "\n")
    report = ipbot("report", "unanswered")
    assert report.returncode == 0, report.stderr
    rows = [
        line for line in report.stdout.splitlines() if line.startswith("| ") and "asked" not in line
    ]
    assert rows[0].startswith("| 3 | How do I register a drone")
    assert "patent agent exam" not in report.stdout
    as_csv = ipbot("report", "unanswered", "--format", "csv", "--since", "2020-01-01")
    assert as_csv.stdout.splitlines()[0] == "asked,question,nearest_entry,also_asked_as"
    bad_day = ipbot("report", "unanswered", "--since", "yesterday")
    assert bad_day.returncode == 2
    assert "not a date (YYYY-MM-DD)" in bad_day.stderr


def test_report_stats_prints_tables_and_csv(ipbot: Ipbot) -> None:
    ipbot("chat", stdin="Can a foreigner take the patent agent exam?\npatent\n")
    table = ipbot("report", "stats")
    assert table.returncode == 0, table.stderr
    assert "decisions:" in table.stdout
    assert "clarify         1" in table.stdout
    as_csv = ipbot("report", "stats", "--format", "csv")
    assert "decision,answer,1" in as_csv.stdout


def test_report_since_a_time_in_beijing_counts_from_that_moment(ipbot: Ipbot) -> None:
    ipbot("chat", stdin="Can a foreigner take the patent agent exam?\n")
    beijing = timezone(timedelta(hours=8))
    asked = datetime.now(beijing)
    before = (asked - timedelta(minutes=30)).isoformat(timespec="minutes")
    after = (asked + timedelta(minutes=30)).isoformat(timespec="minutes")
    since_before = ipbot("report", "stats", "--format", "csv", "--since", before)
    assert since_before.returncode == 0, since_before.stderr
    assert "decision,answer,1" in since_before.stdout
    since_after = ipbot("report", "stats", "--format", "csv", "--since", after)
    assert "decision,answer,1" not in since_after.stdout


def test_report_alternates_offers_a_wording_picked_from_a_list(ipbot: Ipbot) -> None:
    ipbot("chat", stdin="trademark\n1\n")
    report = ipbot("report", "alternates")
    assert report.returncode == 0, report.stderr
    [row] = [line for line in report.stdout.splitlines()[2:] if line.startswith("| ")]
    assert row.endswith("| trademark | picked from a list |")


def test_kb_check_of_a_new_entry_takes_its_labelled_question_along(
    ipbot: Ipbot, tmp_path: Path
) -> None:
    edited = tmp_path / "edited"
    shutil.copytree(bundled("knowledge"), edited)
    question = "Is my novel protected in China without registering it?"
    (edited / "new.yaml").write_text(
        "entries:\n  - id: copyright.new-entry\n"
        "    topic: copyright\n"
        f"    en:\n      question: {question}\n      answer: Yes, automatically.\n"
        "    zh:\n      question: 小说不登记受保护吗？\n      answer: 受保护，自动产生。\n"
        "    sources:\n      - title: Copyright Law of the PRC\n"
        "    reviewed: 2026-11-01\n",
        encoding="utf-8",
    )
    labelled = tmp_path / "questions.jsonl"
    labelled.write_text(
        (bundled_questions() or Path()).read_text(encoding="utf-8")
        + json.dumps({"q": question, "expect": "copyright.new-entry"})
        + "\n",
        encoding="utf-8",
    )
    run = ipbot("kb", "check", str(edited), LABELLED_QUESTIONS=str(labelled))
    assert run.returncode == 0, run.stderr
    assert "decisions change; correct direct answers" in run.stdout


def test_kb_check_of_a_copy_says_when_the_serving_set_and_labelled_file_are_unusable(
    ipbot: Ipbot, tmp_path: Path
) -> None:
    serving = tmp_path / "serving"
    shutil.copytree(bundled("knowledge"), serving)
    (serving / "broken.yaml").write_text("entries: [\n", encoding="utf-8")
    fixed = tmp_path / "fixed"
    shutil.copytree(bundled("knowledge"), fixed)
    run = ipbot("kb", "check", str(fixed), KNOWLEDGE_DIR=str(serving))
    assert run.returncode == 0, run.stderr
    assert f"the serving set ({serving}) does not load (1 problem)" in run.stdout
    missing = tmp_path / "typo.jsonl"
    run = ipbot("kb", "check", str(fixed), LABELLED_QUESTIONS=str(missing))
    assert run.returncode == 1
    assert run.stderr.splitlines() == [
        f"ipbot: the labelled questions (LABELLED_QUESTIONS): {missing}: cannot read: "
        f"[Errno 2] No such file or directory: '{missing}'"
    ]


@pytest.mark.parametrize("command", ["kb export --json", "chat"])
def test_output_piped_into_a_reader_that_stops_ends_without_a_word(
    tmp_path: Path, command: str
) -> None:
    piped = subprocess.run(
        f"{Path(sys.executable).parent / 'ipbot'} {command} < /dev/null | head -c 10",
        shell=True, capture_output=True, text=True, cwd=tmp_path, env=_environment(),
        timeout=60, check=False,
    )  # fmt: skip
    assert len(piped.stdout) == 10
    assert piped.stderr == ""


def test_kb_check_warns_of_a_renamed_id_and_of_a_set_the_bot_would_refuse(
    ipbot: Ipbot, tmp_path: Path
) -> None:
    edited = tmp_path / "edited"
    shutil.copytree(bundled("knowledge"), edited)
    for path in edited.glob("*.yaml"):
        text = path.read_text(encoding="utf-8")
        path.write_text(text.replace("agency.rep-office.letter", "agency.rep-office.permit"))
    run = ipbot("kb", "check", str(edited), RELOAD_MAX_ACCURACY_DROP="0")
    assert run.returncode == 0, run.stderr
    assert (
        "WARNING: ids the serving set has and this one does not: agency.rep-office.letter"
        in run.stdout
    )
    assert "WARNING: the running bot will refuse this set" in run.stdout
