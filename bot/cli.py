"""`ipbot`: chat on the console, ask one question, evaluate, check the knowledge base, migrate."""

# Each command imports what it needs when it runs: `--help` and a usage error answer from the
# parser alone, and the console chat does not load Telegram or the web server.
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from bot.channels import CHANNELS, TELEGRAM, TELEGRAM_USER_ID
from bot.topics import TOPICS

if TYPE_CHECKING:
    from bot.config import Settings
    from bot.knowledge import KnowledgeBase, KnowledgeError
    from bot.matching import Matcher
    from bot.store import Store

_T = TypeVar("_T")
EXIT_PROBLEM = 1
EXIT_USAGE = 2
_SINCE = "YYYY-MM-DD in UTC, or a time such as 2026-11-25T19:00+08:00"


class CommandError(Exception):
    """A failure the user can act on; printed as one line, without a traceback."""

    def __init__(self, message: str, code: int = EXIT_PROBLEM) -> None:
        super().__init__(message)
        self.code = code


def main(argv: Sequence[str] | None = None) -> int:
    """Run one `ipbot` command and return its exit status."""
    args = _parser().parse_args(argv)
    from bot.config import SettingsError, load_settings
    from bot.knowledge import KnowledgeError

    try:
        settings = load_settings()
        logging.basicConfig(level=settings.log_level, format="%(levelname)s %(name)s: %(message)s")
        return args.run(args, settings)
    except SettingsError as error:
        print(f"ipbot: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KnowledgeError as error:
        print(f"ipbot: the knowledge base does not load ({_problems(error)}):", file=sys.stderr)
        print(error, file=sys.stderr)
        return EXIT_PROBLEM
    except CommandError as error:
        print(f"ipbot: {error}", file=sys.stderr)
        return error.code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader (`| head`) stopped reading: what is left to print goes nowhere, quietly.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_PROBLEM


def _problems(error: KnowledgeError) -> str:
    count = len(error.problems)
    return f"{count} problem{'s' * (count != 1)}"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ipbot", description=__doc__)
    commands = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")
    chat = commands.add_parser("chat", help="chat as a talent on the console")
    chat.add_argument("--user", default="local", help="who is chatting (default: local)")
    chat.set_defaults(run=_chat)
    commands.add_parser(
        "run", help="run the bot on Telegram (long polling, or webhook if TELEGRAM_WEBHOOK_URL)"
    ).set_defaults(run=_run)
    ask = commands.add_parser("ask", help="show the matcher's decision for one question")
    ask.add_argument("question")
    ask.add_argument("--json", action="store_true", help="print one JSON object")
    ask.set_defaults(run=_ask)
    _eval_arguments(
        commands.add_parser("eval", help="measure the matcher on a labelled question set")
    )
    _kb_commands(commands.add_parser("kb", help="the knowledge base"))
    _experts_commands(commands.add_parser("experts", help="volunteer experts and staff"))
    _report_commands(commands.add_parser("report", help="reports for staff"))
    db = commands.add_parser("db", help="the database").add_subparsers(
        title="db commands", required=True, metavar="DB_COMMAND"
    )
    db.add_parser("upgrade", help="bring the schema to the newest migration").set_defaults(
        run=_db_upgrade
    )
    return parser


def _eval_arguments(evaluation: argparse.ArgumentParser) -> None:
    evaluation.add_argument("file", type=Path)
    evaluation.add_argument("--json", action="store_true", help="print results and summary")
    evaluation.add_argument(
        "--part",
        choices=("all", "dev", "held-out"),
        default="all",
        help="evaluate one half of the set only (see README: how the set is split)",
    )
    evaluation.add_argument(
        "--fit",
        action="store_true",
        help="fit the matcher's calibration on the dev half and show both halves with it",
    )
    evaluation.set_defaults(run=_eval)


def _kb_commands(parser: argparse.ArgumentParser) -> None:
    kb = parser.add_subparsers(title="kb commands", required=True, metavar="KB_COMMAND")
    check = kb.add_parser("check", help="validate the knowledge base and list every problem")
    check.add_argument("directory", nargs="?", type=Path, help="default: KNOWLEDGE_DIR")
    check.set_defaults(run=_kb_check)
    kb.add_parser(
        "reload", help="ask the running bot (ipbot run) to load the knowledge base again now"
    ).set_defaults(run=_kb_reload)
    export = kb.add_parser("export", help="print every entry")
    export.add_argument("--json", action="store_true", help="print one JSON object")
    export.set_defaults(run=_kb_export)


def _experts_commands(parser: argparse.ArgumentParser) -> None:
    experts = parser.add_subparsers(
        title="experts commands", required=True, metavar="EXPERTS_COMMAND"
    )
    add = experts.add_parser("add", help="make someone a volunteer expert (or staff)")
    add.add_argument("--channel", default=TELEGRAM, choices=CHANNELS, help=f"default: {TELEGRAM}")
    add.add_argument("--id", required=True, help="their id on the channel (Telegram user id)")
    add.add_argument("--name", required=True, help="the name talents see: Expert NAME")
    add.add_argument(
        "--specialty",
        action="append",
        default=[],
        choices=TOPICS,
        help="a topic they take (repeat for several; none: every topic)",
    )
    add.add_argument("--lang", default="en,zh", help="languages they answer in (default en,zh)")
    add.add_argument("--staff", action="store_true", help="staff: may also close any ticket")
    add.set_defaults(run=_experts_add)
    experts.add_parser("list", help="every expert and staff member").set_defaults(run=_experts_list)


def _report_commands(parser: argparse.ArgumentParser) -> None:
    report = parser.add_subparsers(title="report commands", required=True, metavar="REPORT")
    gaps = report.add_parser("unanswered", help="what the bot could not answer, grouped")
    gaps.add_argument("--since", type=_day, help=f"only questions from this day on ({_SINCE})")
    gaps.add_argument("--format", choices=("md", "csv"), default="md")
    gaps.set_defaults(run=_report_unanswered)
    report.add_parser(
        "alternates", help="talents' wordings worth adding as alternates of an entry"
    ).set_defaults(run=_report_alternates)
    figures = report.add_parser("stats", help="questions, decisions, tickets, ratings")
    figures.add_argument("--since", type=_day, help=f"only from this day on ({_SINCE})")
    figures.add_argument("--format", choices=("table", "csv"), default="table")
    figures.set_defaults(run=_report_stats)


def _day(text: str) -> datetime:
    """`--since`: a day or a time, in UTC unless it names its offset ("+08:00")."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _with_database(work: Coroutine[Any, Any, _T]) -> _T:
    """Run `work`; a database that cannot be used is said in one line."""
    import asyncio

    from sqlalchemy.exc import DBAPIError

    try:
        return asyncio.run(work)
    except BrokenPipeError:
        raise  # The reader stopped reading (`main` says nothing): not the database's doing.
    except (DBAPIError, OSError) as error:
        reason = str(getattr(error, "orig", None) or error).splitlines()[0]
        raise CommandError(f"cannot use the database (DATABASE_URL): {reason}") from None


@asynccontextmanager
async def _closing(store: Store) -> AsyncIterator[Store]:
    try:
        yield store
    finally:
        await store.close()


@asynccontextmanager
async def _opened_store(settings: Settings, *, prepare: bool = True) -> AsyncIterator[Store]:
    """The store at DATABASE_URL, closed afterwards; its schema made ready first if `prepare`."""
    from bot.store import Store

    async with _closing(Store.open(settings.database_url)) as store:
        if prepare:
            await _prepare_store(store)
        yield store


def _with_store(
    settings: Settings, work: Callable[[Store], Awaitable[_T]], *, prepare: bool = True
) -> _T:
    """`work` done on the opened store (`_opened_store`), its result returned."""

    async def run() -> _T:
        async with _opened_store(settings, prepare=prepare) as store:
            return await work(store)

    return _with_database(run())


async def _prepare_store(store: Store) -> None:
    """SQLite is brought up to date on start; PostgreSQL is migrated on purpose, by staff."""
    if store.engine.dialect.name == "sqlite":
        await store.upgrade()
    elif not await store.is_current():
        raise CommandError("the database schema is not current: run `ipbot db upgrade` first")


def _chat(args: argparse.Namespace, settings: Settings) -> int:
    from bot.channels import console
    from bot.services import build_services

    async def run() -> None:
        services = build_services(settings)
        async with _closing(services.store):
            await _prepare_store(services.store)
            await console.chat(services, args.user, sys.stdin, sys.stdout)

    _with_database(run())
    return 0


def _run(args: argparse.Namespace, settings: Settings) -> int:
    return _with_database(_serve(settings))


async def _serve(settings: Settings) -> int:
    """The bot on its configured channels until it is stopped, its failures said as
    `CommandError`s."""
    if settings.telegram_bot_token is None:
        raise CommandError(
            "TELEGRAM_BOT_TOKEN is not set: create a bot with @BotFather and set its token "
            "(README: Running on Telegram)",
            EXIT_USAGE,
        )
    from sqlalchemy.exc import DBAPIError

    from bot import pidfile, runtime, startup
    from bot.services import build_services
    from bot.store import outage

    services = build_services(settings)
    async with _closing(services.store):
        try:
            await startup.reach(
                "the database",
                lambda: _prepare_store(services.store),
                lambda error: isinstance(error, (DBAPIError, OSError)) and outage.lost(error),
                settings.start_wait_seconds,
            )
            channels = runtime.configured_channels(settings, services)
            process = runtime.Runtime(settings, services, channels)
            return await process.serve(lambda line: print(f"ipbot: {line}", file=sys.stderr))
        except runtime.ChannelUnreachable as error:
            raise CommandError(str(error)) from None
        except (runtime.ChannelError, pidfile.PidFileError) as error:
            raise CommandError(str(error), EXIT_USAGE) from None


def _matcher(settings: Settings) -> Matcher:
    from bot.knowledge import load_knowledge
    from bot.matching import Matcher
    from bot.services import thresholds_from

    return Matcher(load_knowledge(settings.knowledge_dir), thresholds_from(settings))


def _ask(args: argparse.Namespace, settings: Settings) -> int:
    from bot.evaluation import Result

    decision = _matcher(settings).decide(args.question)
    result = Result.of(args.question, None, decision)
    if args.json:
        print(json.dumps(result.as_dict(), ensure_ascii=False))
    else:
        print(f"{decision.action} (score {decision.score})")
        for candidate in decision.candidates:
            print(f"  {candidate.score:5.1f}  {candidate.entry_id}")
    return 0


def _eval(args: argparse.Namespace, settings: Settings) -> int:
    from bot.evaluation import (
        QuestionSetError,
        baseline,
        evaluate,
        fit_calibration,
        format_table,
        half,
        read_question_set,
        summarise,
    )
    from bot.matching import Matcher

    matcher = _matcher(settings)
    try:
        questions = read_question_set(args.file, matcher.knowledge)
    except QuestionSetError as error:
        raise CommandError(str(error), EXIT_USAGE) from None
    if args.fit:
        calibration = fit_calibration(matcher, [q for q in questions if half(q) == "dev"])
        print(f"calibration = {calibration!r}\n")
        matcher = Matcher(matcher.knowledge, matcher.thresholds, calibration)
        for part in ("dev", "held-out"):
            chosen = [q for q in questions if half(q) == part]
            print(f"{part} half:\n{format_table(summarise(chosen, evaluate(matcher, chosen)))}\n")
        return 0
    if args.part != "all":
        questions = [q for q in questions if half(q) == args.part]
    results = evaluate(matcher, questions)
    summary = summarise(questions, results)
    plain = summarise(questions, baseline(matcher.knowledge, questions))
    if args.json:
        report = {
            "results": [r.as_dict() for r in results],
            "summary": summary | {"baseline": plain},
        }
        print(json.dumps(report, ensure_ascii=False))
    else:
        print(format_table(summary, plain))
    return 0


def _kb_check(args: argparse.Namespace, settings: Settings) -> int:
    from bot.knowledge import KnowledgeError, load_knowledge
    from bot.matching import Matcher

    directory = args.directory or settings.knowledge_dir
    knowledge = load_knowledge(directory)
    print(f"{directory}: {len(knowledge)} entries, version {knowledge.version}: no problems")
    if directory.resolve() == settings.knowledge_dir.resolve():
        return 0
    try:
        deployed = _matcher(settings)
    except KnowledgeError as error:
        print(
            f"\nthe serving set ({settings.knowledge_dir}) does not load ({_problems(error)}), "
            f"so there is nothing to compare with:\n{error}"
        )
        return 0
    edited = Matcher(knowledge, deployed.thresholds, deployed.calibration)
    gone = sorted({entry.id for entry in deployed.knowledge} - {entry.id for entry in knowledge})
    if gone:
        # Buttons talents still have, the labelled set and the reports name entries by id.
        print(
            f"\nWARNING: ids the serving set has and this one does not: {', '.join(gone)} "
            "(a published id is never renamed: knowledge/README.md)"
        )
    if settings.labelled_questions is not None:
        _compare_on_labelled_questions(settings, settings.labelled_questions, deployed, edited)
    _replay_recent_questions(settings, deployed, edited)
    return 0


def _compare_on_labelled_questions(
    settings: Settings, labelled: Path, deployed: Matcher, edited: Matcher
) -> None:
    """What an edit changes in the decisions on the labelled questions, and whether the
    running bot would take it."""
    from bot import reload
    from bot.evaluation import QuestionSetError, evaluate, read_question_set, summarise
    from bot.regression import changes

    try:
        questions = read_question_set(labelled, deployed.knowledge, edited.knowledge)
    except QuestionSetError as error:
        raise CommandError(f"the labelled questions (LABELLED_QUESTIONS): {error}") from None
    found = changes(deployed, edited, [item.q for item in questions])
    was = summarise(questions, evaluate(deployed, questions))["all"]["answered_correctly"]
    now = summarise(questions, evaluate(edited, questions))["all"]["answered_correctly"]
    print(
        f"\nlabelled questions ({labelled}): {len(found)} decisions change; "
        f"correct direct answers {was:.1%} -> {now:.1%}"
    )
    for change in found:
        print(f"  {change}")
    if reload.refused(was, now, settings.reload_max_accuracy_drop):
        print(
            f"WARNING: the running bot will refuse this set: its correct direct answers drop "
            f"{(was - now) * 100:.1f} points, more than RELOAD_MAX_ACCURACY_DROP "
            f"({settings.reload_max_accuracy_drop:g} points); staff can load it with "
            "/reload force"
        )


def _replay_recent_questions(settings: Settings, deployed: Matcher, edited: Matcher) -> None:
    """What an edit changes in the answers to the latest talent questions of the log."""
    from bot.regression import replay

    recent = _recent_questions(settings)
    if recent is None:
        print("\nrecent questions: no conversation log to replay")
        return
    print(f"\nrecent talent questions (the last {len(recent)}):")
    for language, figures in replay(deployed, edited, recent).items():
        print(
            f"  {language}: {figures.questions} replayed, {figures.answers_flipped} answers "
            f"change, hand-offs {figures.handoffs_before} -> {figures.handoffs_after}"
        )
        for change in figures.examples:
            print(f"    {change}")


def _recent_questions(settings: Settings) -> list[str] | None:
    """The conversation log's latest talent questions, or None if there is no log to read."""
    from sqlalchemy.engine import make_url

    from bot.store.tickets import Tickets

    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite" and not Path(url.database or "").is_file():
        return None

    async def read(store: Store) -> list[str]:
        return await Tickets(store).recent_talent_questions(settings.replay_questions)

    try:
        return _with_store(settings, read, prepare=False)
    except CommandError:
        return None


def _kb_reload(args: argparse.Namespace, settings: Settings) -> int:
    import signal

    from bot import pidfile

    missing = f"no running bot found (PID_FILE {settings.pid_file}): start it with `ipbot run`"
    pid = pidfile.running(settings.pid_file)
    if pid is None:
        raise CommandError(missing)
    try:
        os.kill(pid, signal.SIGHUP)
    except OSError:
        raise CommandError(missing) from None
    print(f"asked the bot (process {pid}) to reload {settings.knowledge_dir}; staff are told")
    return 0


def _kb_export(args: argparse.Namespace, settings: Settings) -> int:
    from bot.knowledge import load_knowledge

    knowledge = load_knowledge(settings.knowledge_dir)
    if args.json:
        print(json.dumps(_export(knowledge), ensure_ascii=False))
    else:
        for entry in knowledge:
            print(f"{entry.id:32} {entry.topic:18} reviewed {entry.reviewed}")
    return 0


def _export(knowledge: KnowledgeBase) -> dict[str, object]:
    return {
        "version": knowledge.version,
        "entries": [
            {
                "id": entry.id,
                "questions": {"en": list(entry.en.phrasings), "zh": list(entry.zh.phrasings)},
                "answers": {"en": entry.en.answer.strip(), "zh": entry.zh.answer.strip()},
                "source": entry.sources[0].url or entry.sources[0].title,
                "reviewed": entry.reviewed.isoformat(),
            }
            for entry in knowledge
        ],
    }


def _experts_add(args: argparse.Namespace, settings: Settings) -> int:
    from bot.store.tickets import Tickets
    from handlers.expert import NAME_CHARS

    languages = [part.strip() for part in args.lang.split(",") if part.strip()]
    if not languages or set(languages) - {"en", "zh"}:
        raise CommandError(f"--lang: use en, zh or en,zh, not {args.lang!r}", EXIT_USAGE)
    if args.channel == TELEGRAM and not TELEGRAM_USER_ID.fullmatch(args.id):
        raise CommandError(
            f"--id: a Telegram user id is a number, such as 123456789, not {args.id!r}", EXIT_USAGE
        )
    name = args.name.strip()
    if not 1 <= len(name) <= NAME_CHARS:
        raise CommandError(
            f"--name: give the name talents see, 1 to {NAME_CHARS} characters", EXIT_USAGE
        )
    role = "staff" if args.staff else "expert"

    async def enrol(store: Store) -> None:
        await Tickets(store).enrol(
            args.channel, args.id, name, role=role, specialties=args.specialty, languages=languages
        )

    _with_store(settings, enrol)
    print(f"{name} ({args.channel} {args.id}) is now {role}")
    return 0


def _experts_list(args: argparse.Namespace, settings: Settings) -> int:
    from bot.store.tickets import Tickets

    experts = _with_store(settings, lambda store: Tickets(store).experts())
    if not experts:
        print("no experts or staff yet: add them with `ipbot experts add`", file=sys.stderr)
    for user in experts:
        specialties = ", ".join(user.specialties) or "every topic"
        state = "available" if user.available else "away"
        print(
            f"{user.role:6} {user.channel}:{user.external_id:12} {user.display_name or '':16} "
            f"{specialties} [{','.join(user.expert_languages)}] {state}"
        )
    return 0


def _report_unanswered(args: argparse.Namespace, settings: Settings) -> int:
    from bot.reports import as_csv, as_markdown, unanswered

    matcher = _matcher(settings)
    gaps = _with_store(settings, lambda store: unanswered(store, matcher, args.since))
    print(as_csv(gaps) if args.format == "csv" else as_markdown(gaps))
    return 0


def _report_alternates(args: argparse.Namespace, settings: Settings) -> int:
    from bot.reports import alternates_as_markdown, suggested_alternates

    matcher = _matcher(settings)
    print(alternates_as_markdown(_with_store(settings, lambda s: suggested_alternates(s, matcher))))
    return 0


def _report_stats(args: argparse.Namespace, settings: Settings) -> int:
    from bot.reports import stats, stats_as_csv, stats_as_text

    figures = _with_store(settings, lambda store: stats(store, args.since))
    print(stats_as_csv(figures) if args.format == "csv" else stats_as_text(figures))
    return 0


def _db_upgrade(args: argparse.Namespace, settings: Settings) -> int:
    _with_store(settings, lambda store: store.upgrade(), prepare=False)
    print("the database schema is current")
    return 0


if __name__ == "__main__":
    sys.exit(main())
