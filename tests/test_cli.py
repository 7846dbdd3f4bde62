"""`ipbot` as a user runs it: a real process, real files, real databases."""

import json
import os
import shutil
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from bot.config import Settings
from bot.paths import bundled, bundled_questions
from tests.conftest import PostgresDatabase


def ipbot(*args: str, cwd: Path, stdin: str = "", **env: str) -> subprocess.CompletedProcess[str]:
    environment = {
        name: value
        for name, value in os.environ.items()
        if name.lower() not in Settings.model_fields
    }
    environment.update(env)
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=cwd,
        env=environment,
        timeout=60,
        check=False,
    )


def test_piped_chat_answers_in_english_and_chinese_on_a_new_sqlite_file(tmp_path: Path) -> None:
    chat = ipbot(
        "chat",
        cwd=tmp_path,
        stdin="Can a foreigner take the patent agent exam?\n外国人可以考专利代理师吗？\n",
    )
    assert chat.returncode == 0, chat.stderr
    assert "Foreign Permanent Residence ID Card" in chat.stdout
    assert "外国人永久居留身份证" in chat.stdout
    assert "  1) 👍 Helpful" in chat.stdout
    assert (tmp_path / "data" / "ipbot.sqlite3").is_file()


def test_chat_picks_a_numbered_choice_and_survives_bad_input(tmp_path: Path) -> None:
    lines = ["patent", "99", "1", "", "😀", "\x00\x01", "x" * 10_000, "/nonsense"]
    chat = ipbot("chat", cwd=tmp_path, stdin="\n".join(lines) + "\n")
    assert chat.returncode == 0, chat.stderr
    assert "Please pick a number from 1 to" in chat.stdout
    assert "Your message was empty" in chat.stdout
    assert "written in words" in chat.stdout
    assert "That message is long (10000 characters)" in chat.stdout
    assert "I don't know that command" in chat.stdout
    assert "Traceback" not in chat.stderr


def test_chat_keeps_the_conversation_across_runs(tmp_path: Path) -> None:
    ipbot("chat", cwd=tmp_path, stdin="/language zh\n")
    chat = ipbot("chat", cwd=tmp_path, stdin="Can a foreigner take the patent agent exam?\n")
    assert "外国人永久居留身份证" in chat.stdout


def test_chat_on_an_unreachable_database_says_so_in_one_line(tmp_path: Path) -> None:
    chat = ipbot("chat", cwd=tmp_path, DATABASE_URL="postgresql+asyncpg://nobody@127.0.0.1:9/none")
    assert chat.returncode == 1
    assert chat.stderr.startswith("ipbot: cannot use the database (DATABASE_URL):")
    assert chat.stderr.count("\n") == 1


async def test_postgresql_is_migrated_on_purpose_then_chats(tmp_path: Path) -> None:
    async with PostgresDatabase() as url:
        before = ipbot("chat", cwd=tmp_path, DATABASE_URL=url)
        assert before.returncode == 1
        assert "run `ipbot db upgrade` first" in before.stderr
        upgrade = ipbot("db", "upgrade", cwd=tmp_path, DATABASE_URL=url)
        assert upgrade.returncode == 0, upgrade.stderr
        chat = ipbot(
            "chat",
            cwd=tmp_path,
            stdin="Can a foreigner take the patent agent exam?\n",
            DATABASE_URL=url,
        )
        assert chat.returncode == 0, chat.stderr
        assert "Foreign Permanent Residence ID Card" in chat.stdout


def test_ask_json_prints_one_decision(tmp_path: Path) -> None:
    ask = ipbot("ask", "Can a foreigner take the patent agent exam?", "--json", cwd=tmp_path)
    assert ask.returncode == 0, ask.stderr
    decision = json.loads(ask.stdout)
    assert set(decision) == {"q", "expect", "action", "id", "options", "score"}
    assert decision["action"] == "answer"
    assert decision["id"] == "agent-exam.foreigners"


def test_eval_json_reports_every_question_and_a_summary(tmp_path: Path) -> None:
    questions = tmp_path / "q.jsonl"
    questions.write_text(
        '{"q": "Can a foreigner take the patent agent exam?", "expect": "agent-exam.foreigners"}\n'
        '{"q": "外国人可以考专利代理师吗", "expect": "agent-exam.foreigners"}\n'
        '{"q": "What is the weather tomorrow?", "expect": null}\n',
        encoding="utf-8",
    )
    run = ipbot("eval", str(questions), "--json", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert report["results"][0]["q"] == "Can a foreigner take the patent agent exam?"
    assert set(report["results"][0]) == {"q", "expect", "action", "id", "options", "score"}
    assert report["summary"]["en"]["in_scope"] == 1
    assert report["summary"]["zh"]["answered_correctly"] == 1.0
    assert report["summary"]["all"]["questions"] == 3


def test_eval_table_is_readable(tmp_path: Path) -> None:
    questions = tmp_path / "q.jsonl"
    questions.write_text('{"q": "patent fees?", "expect": "patent.fees"}\n', encoding="utf-8")
    run = ipbot("eval", str(questions), cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "| correct direct answer (in scope) |" in run.stdout


def test_eval_names_the_line_of_a_bad_question(tmp_path: Path) -> None:
    questions = tmp_path / "q.jsonl"
    questions.write_text('{"q": "ok", "expect": null}\n{"q": "x", "expect": "no.such"}\n')
    run = ipbot("eval", str(questions), cwd=tmp_path)
    assert run.returncode == 2
    assert f"{questions}:2: unknown entry id 'no.such'" in run.stderr


def test_kb_export_json_lists_every_entry_with_both_languages(tmp_path: Path) -> None:
    run = ipbot("kb", "export", "--json", cwd=tmp_path)
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


def test_kb_check_passes_on_the_bundled_set(tmp_path: Path) -> None:
    run = ipbot("kb", "check", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "no problems" in run.stdout


def test_kb_check_on_a_broken_copy_names_file_and_line(tmp_path: Path) -> None:
    copy = tmp_path / "kb"
    shutil.copytree(bundled("knowledge"), copy)
    broken = copy / "agent-exam.yaml"
    lines = broken.read_text(encoding="utf-8").splitlines()
    lines[3] = lines[3].replace("tags: [", "tags: [[")
    broken.write_text("\n".join(lines), encoding="utf-8")
    run = ipbot("kb", "check", str(copy), cwd=tmp_path)
    assert run.returncode == 1
    assert f"{broken}:" in run.stderr
    assert "malformed YAML" in run.stderr


@pytest.mark.parametrize("command", [["kb", "check"], ["kb"], ["frobnicate"]])
def test_usage_errors_exit_2(tmp_path: Path, command: list[str]) -> None:
    run = ipbot(*command, "--no-such-flag", cwd=tmp_path)
    assert run.returncode == 2
    assert "usage: ipbot" in run.stderr


def test_run_without_a_bot_token_says_what_to_set(tmp_path: Path) -> None:
    run = ipbot("run", cwd=tmp_path)
    assert run.returncode == 2
    assert run.stderr.startswith("ipbot: TELEGRAM_BOT_TOKEN is not set")
    assert run.stderr.count("\n") == 1


def test_experts_are_added_and_listed_from_the_command_line(tmp_path: Path) -> None:
    added = ipbot(
        "experts", "add", "--id", "2001", "--name", "Li", "--specialty", "patents",
        "--lang", "zh", cwd=tmp_path,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert "Li (telegram 2001) is now expert" in added.stdout
    listed = ipbot("experts", "list", cwd=tmp_path)
    assert "telegram:2001" in listed.stdout
    assert "patents [zh] available" in listed.stdout


def test_adding_an_expert_with_an_unknown_language_or_topic_is_refused(tmp_path: Path) -> None:
    wrong_language = ipbot(
        "experts", "add", "--id", "1", "--name", "X", "--lang", "fr", cwd=tmp_path
    )
    assert wrong_language.returncode == 2
    assert "--lang: use en, zh or en,zh" in wrong_language.stderr
    wrong_topic = ipbot(
        "experts", "add", "--id", "1", "--name", "X", "--specialty", "cooking", cwd=tmp_path
    )
    assert wrong_topic.returncode == 2
    assert "invalid choice: 'cooking'" in wrong_topic.stderr


def test_adding_an_expert_on_a_channel_the_bot_does_not_have_is_refused(tmp_path: Path) -> None:
    wrong = ipbot(
        "experts", "add", "--channel", "Telegram", "--id", "abc", "--name", "Li", cwd=tmp_path
    )
    assert wrong.returncode == 2
    error = wrong.stderr.splitlines()[-1]
    assert error.startswith("ipbot experts add: error: argument --channel: invalid choice:")
    assert "'Telegram'" in error
    assert "console" in error
    assert "telegram" in error
    listed = ipbot("experts", "list", cwd=tmp_path)
    assert "no experts or staff yet" in listed.stderr


def test_adding_an_expert_by_a_username_or_without_a_name_is_refused(tmp_path: Path) -> None:
    username = ipbot("experts", "add", "--id", "@li_ming", "--name", "Li", cwd=tmp_path)
    assert username.returncode == 2
    assert "--id: a Telegram user id is a number, such as 123456789, not '@li_ming'" in (
        username.stderr
    )
    blank = ipbot("experts", "add", "--id", "2001", "--name", "  ", cwd=tmp_path)
    assert blank.returncode == 2
    assert "--name: give the name talents see, 1 to 64 characters" in blank.stderr
    too_long = ipbot("experts", "add", "--id", "2001", "--name", "L" * 65, cwd=tmp_path)
    assert too_long.returncode == 2
    listed = ipbot("experts", "list", cwd=tmp_path)
    assert listed.stdout == ""
    assert "no experts or staff yet" in listed.stderr


def test_kb_reload_without_a_running_bot_says_so(tmp_path: Path) -> None:
    run = ipbot("kb", "reload", cwd=tmp_path)
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
    tmp_path: Path,
) -> None:
    ipbot("chat", cwd=tmp_path, stdin="How long is a Chinese invention patent valid?\n专利\n")
    edited = tmp_path / "edited"
    shutil.copytree(bundled("knowledge"), edited)
    _drop_alternates(edited, "patent.types-terms", 12)
    run = ipbot("kb", "check", str(edited), cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "decisions change; correct direct answers" in run.stdout
    assert "used to answer patent.types-terms, now" in run.stdout
    assert "recent talent questions (the last 2):" in run.stdout
    assert "en: 1 replayed" in run.stdout
    assert "zh: 1 replayed" in run.stdout


def test_kb_check_of_an_edit_without_a_conversation_log_says_so(tmp_path: Path) -> None:
    run = ipbot("kb", "check", str(bundled("knowledge")) + "/", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    edited = tmp_path / "edited"
    shutil.copytree(bundled("knowledge"), edited)
    run = ipbot("kb", "check", str(edited), cwd=tmp_path)
    assert "0 decisions change" in run.stdout
    assert "recent questions: no conversation log to replay" in run.stdout


def test_report_unanswered_groups_similar_questions_with_the_nearest_entry(
    tmp_path: Path,
) -> None:
    asked = [
        "How do I register a drone with aviation authorities?",
        "how do i register my drone with the aviation authority",
        "How to register a drone with the aviation authorities in Beijing?",
        "Where can I buy a bicycle near Wudaokou?",
        "Can a foreigner take the patent agent exam?",
    ]
    ipbot("chat", cwd=tmp_path, stdin="\n".join(asked) + "\n")
    report = ipbot("report", "unanswered", cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    rows = [
        line for line in report.stdout.splitlines() if line.startswith("| ") and "asked" not in line
    ]
    assert rows[0].startswith("| 3 | How do I register a drone")
    assert "patent agent exam" not in report.stdout
    as_csv = ipbot("report", "unanswered", "--format", "csv", "--since", "2020-01-01", cwd=tmp_path)
    assert as_csv.stdout.splitlines()[0] == "asked,question,nearest_entry,also_asked_as"
    bad_day = ipbot("report", "unanswered", "--since", "yesterday", cwd=tmp_path)
    assert bad_day.returncode == 2
    assert "not a date (YYYY-MM-DD)" in bad_day.stderr


def test_report_stats_prints_tables_and_csv(tmp_path: Path) -> None:
    ipbot("chat", cwd=tmp_path, stdin="Can a foreigner take the patent agent exam?\npatent\n")
    table = ipbot("report", "stats", cwd=tmp_path)
    assert table.returncode == 0, table.stderr
    assert "decisions:" in table.stdout
    assert "clarify         1" in table.stdout
    as_csv = ipbot("report", "stats", "--format", "csv", cwd=tmp_path)
    assert "decision,answer,1" in as_csv.stdout


def test_report_since_a_time_in_beijing_counts_from_that_moment(tmp_path: Path) -> None:
    ipbot("chat", cwd=tmp_path, stdin="Can a foreigner take the patent agent exam?\n")
    beijing = timezone(timedelta(hours=8))
    asked = datetime.now(beijing)
    before = (asked - timedelta(minutes=30)).isoformat(timespec="minutes")
    after = (asked + timedelta(minutes=30)).isoformat(timespec="minutes")
    since_before = ipbot("report", "stats", "--format", "csv", "--since", before, cwd=tmp_path)
    assert since_before.returncode == 0, since_before.stderr
    assert "decision,answer,1" in since_before.stdout
    since_after = ipbot("report", "stats", "--format", "csv", "--since", after, cwd=tmp_path)
    assert "decision,answer,1" not in since_after.stdout


def test_report_alternates_offers_a_wording_picked_from_a_list(tmp_path: Path) -> None:
    ipbot("chat", cwd=tmp_path, stdin="trademark\n1\n")
    report = ipbot("report", "alternates", cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    [row] = [line for line in report.stdout.splitlines()[2:] if line.startswith("| ")]
    assert row.endswith("| trademark | picked from a list |")


def test_kb_check_of_a_new_entry_takes_its_labelled_question_along(tmp_path: Path) -> None:
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
    run = ipbot("kb", "check", str(edited), cwd=tmp_path, LABELLED_QUESTIONS=str(labelled))
    assert run.returncode == 0, run.stderr
    assert "decisions change; correct direct answers" in run.stdout


def test_kb_check_of_a_copy_says_when_the_serving_set_and_labelled_file_are_unusable(
    tmp_path: Path,
) -> None:
    serving = tmp_path / "serving"
    shutil.copytree(bundled("knowledge"), serving)
    (serving / "broken.yaml").write_text("entries: [\n", encoding="utf-8")
    fixed = tmp_path / "fixed"
    shutil.copytree(bundled("knowledge"), fixed)
    run = ipbot("kb", "check", str(fixed), cwd=tmp_path, KNOWLEDGE_DIR=str(serving))
    assert run.returncode == 0, run.stderr
    assert f"the serving set ({serving}) does not load (1 problem)" in run.stdout
    missing = tmp_path / "typo.jsonl"
    run = ipbot("kb", "check", str(fixed), cwd=tmp_path, LABELLED_QUESTIONS=str(missing))
    assert run.returncode == 1
    assert run.stderr.splitlines() == [
        f"ipbot: the labelled questions (LABELLED_QUESTIONS): {missing}: cannot read: "
        f"[Errno 2] No such file or directory: '{missing}'"
    ]


def test_a_report_piped_into_a_reader_that_stops_ends_without_a_traceback(
    tmp_path: Path,
) -> None:
    piped = subprocess.run(
        f"{sys.executable} -m bot.cli kb export --json | head -c 10",
        shell=True, capture_output=True, text=True, cwd=tmp_path, timeout=60, check=False,
    )  # fmt: skip
    assert len(piped.stdout) == 10
    assert piped.stderr == ""


def test_kb_check_warns_of_a_renamed_id_and_of_a_set_the_bot_would_refuse(tmp_path: Path) -> None:
    edited = tmp_path / "edited"
    shutil.copytree(bundled("knowledge"), edited)
    for path in edited.glob("*.yaml"):
        text = path.read_text(encoding="utf-8")
        path.write_text(text.replace("agency.rep-office.letter", "agency.rep-office.permit"))
    run = ipbot("kb", "check", str(edited), cwd=tmp_path, RELOAD_MAX_ACCURACY_DROP="0")
    assert run.returncode == 0, run.stderr
    assert (
        "WARNING: ids the serving set has and this one does not: agency.rep-office.letter"
        in run.stdout
    )
    assert "WARNING: the running bot will refuse this set" in run.stdout
