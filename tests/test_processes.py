"""Several bot processes on one database: one of them runs the scheduled jobs.

The lock that decides which is checked on both stores; then three real `ipbot run` processes
in webhook mode share one PostgreSQL behind the emulator's load balancer. Each update goes to
one process (some to all three at once, as when Telegram retries a delivery); whichever
handles it, it is answered once, a ticket is claimed once, and the scheduled jobs run in one
process only, until that process dies and another takes over.
"""

import asyncio
import os
import shutil
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from bot.leadership import Leadership
from bot.paths import bundled
from bot.store import Store
from bot.store.models import AuditEvent
from bot.store.tickets import Tickets
from tests.botapi import BotApiEmulator, Phone
from tests.conftest import POSTGRES_URL, PostgresDatabase, upgraded_store
from tests.conversations import QUESTION, ask_for_an_expert, claim_label

LEADING = "now runs the scheduled jobs"
NEW_ANSWER = "Yes: this sentence was just written by staff."


@dataclass
class BotProcess:
    """One `ipbot run` in webhook mode, serving its own port; its log is kept in a file."""

    process: asyncio.subprocess.Process
    url: str
    port: int
    log: Path

    @property
    def leads(self) -> bool:
        return LEADING in self.log.read_text(encoding="utf-8", errors="replace")


Start = Callable[..., Awaitable[list[BotProcess]]]


@pytest.fixture
async def shared() -> AsyncIterator[Store]:
    """The one PostgreSQL database the three processes share."""
    if not POSTGRES_URL:
        pytest.skip("processes share a PostgreSQL database: set TEST_POSTGRES_URL to run this")
    async with PostgresDatabase() as url, upgraded_store(url) as opened:
        yield opened


@pytest.fixture
def homes(tmp_path: Path) -> list[Path]:
    """A working folder for each process (each writes its own pid file there)."""
    folders = [tmp_path / f"bot{number}" for number in range(3)]
    for folder in folders:
        folder.mkdir()
    return folders


@pytest.fixture
async def start_three(
    emulator: BotApiEmulator, shared: Store, homes: list[Path]
) -> AsyncIterator[Start]:
    """Starts three processes on the test's database, spreads deliveries over them, and
    stops whichever are still running at the end."""
    started: list[BotProcess] = []

    async def start(**settings: str) -> list[BotProcess]:
        for home in homes:
            started.append(await _spawn(emulator, shared, home, settings))
        for bot in started:
            await _until_listening(bot)
        emulator.balanced = [bot.url for bot in started]
        return list(started)

    yield start
    for bot in started:
        if bot.process.returncode is None:
            bot.process.send_signal(signal.SIGTERM)
    for bot in started:
        try:
            await asyncio.wait_for(bot.process.wait(), 10)
        except TimeoutError:
            bot.process.kill()
            await bot.process.wait()


async def _spawn(
    emulator: BotApiEmulator, store: Store, folder: Path, settings: dict[str, str]
) -> BotProcess:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("TELEGRAM_", "DATABASE_", "SLA_", "KNOWLEDGE_", "LOG_"))
    }
    environment.update(
        TELEGRAM_BOT_TOKEN=emulator.token,
        TELEGRAM_API_BASE_URL=emulator.base_url,
        # The address the balancer is reached at; it forwards to each process's own port.
        TELEGRAM_WEBHOOK_URL="https://desk.example.org",
        TELEGRAM_WEBHOOK_LISTEN="127.0.0.1",
        TELEGRAM_WEBHOOK_PORT=str(port),
        DATABASE_URL=store.engine.url.render_as_string(hide_password=False),
        LOG_LEVEL="INFO",
        **settings,
    )
    log = folder / "log.txt"
    with log.open("wb") as output:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot.cli", "run", cwd=folder, env=environment,
            stdout=asyncio.subprocess.DEVNULL, stderr=output,
        )  # fmt: skip
    return BotProcess(process, f"http://127.0.0.1:{port}/telegram", port, log)


async def _until_listening(bot: BotProcess, within: float = 30) -> None:
    deadline = time.monotonic() + within
    while True:
        if bot.process.returncode is not None:
            pytest.fail(f"the bot stopped at start-up:\n{bot.log.read_text()}")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", bot.port)
        except OSError:
            if time.monotonic() > deadline:
                pytest.fail(f"the bot did not start listening:\n{bot.log.read_text()}")
            await asyncio.sleep(0.2)
            continue
        writer.close()
        await writer.wait_closed()
        return


async def until(condition: Callable[[], bool], within: float) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.1)


async def test_one_contender_leads_and_another_takes_over_once_it_steps_down(
    store: Store,
) -> None:
    first, second = Leadership(store), Leadership(store)
    assert await first.contend()
    assert not await second.contend()
    assert await first.contend()
    await first.step_down()
    assert await second.contend()
    assert not await first.contend()
    await second.step_down()


async def test_a_leader_whose_connection_is_cut_is_noticed_and_replaced(store: Store) -> None:
    if store.engine.dialect.name != "postgresql":
        pytest.skip("a connection to cut is PostgreSQL's; SQLite's lock is a file")
    first, second = Leadership(store), Leadership(store)
    assert await first.contend()
    async with store.transaction() as tx:
        cut = await tx.session.scalar(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_locks WHERE locktype = "
                "'advisory' AND database = (SELECT oid FROM pg_database "
                "WHERE datname = current_database())"
            )
        )
    assert cut == 1
    assert not await first.contend()
    assert await second.contend()
    await second.step_down()


async def test_three_processes_answer_once_claim_once_and_run_each_job_once(
    start_three: Start, emulator: BotApiEmulator, shared: Store, tmp_path: Path
) -> None:
    knowledge = tmp_path / "knowledge"
    shutil.copytree(bundled("knowledge"), knowledge)
    tickets = Tickets(shared)
    for expert_id, name in (("2901", "Li"), ("2902", "Wang")):
        await tickets.enrol("telegram", expert_id, name, specialties=["agency-exam"])
    boss = await tickets.enrol("telegram", "2909", "Boss", role="staff")
    await tickets.set_available(boss, False)  # so only the experts are offered tickets
    experts = emulator.phone(2901, "Li"), emulator.phone(2902, "Wang")
    staff = emulator.phone(2909, "Boss")
    bots = await start_three(
        KNOWLEDGE_DIR=str(knowledge),
        KNOWLEDGE_CHECK_SECONDS="0.5",
        SLA_CHECK_SECONDS="0.5",
        SLA_FIRST_REPLY_MINUTES="0.05",
    )
    leader = await the_one_leader(bots)

    await each_question_is_answered_once(emulator)
    winner, loser = await one_of_two_claims_wins(emulator, *experts)
    await is_reminded_once(winner)
    await staff_hear_of_an_edit_once_and_every_process_serves_it(emulator, staff, knowledge, shared)

    leader.process.send_signal(signal.SIGKILL)
    await leader.process.wait()
    emulator.balanced.remove(leader.url)
    await the_one_leader([bot for bot in bots if bot is not leader])
    await ask_for_an_expert(emulator.phone(3991))
    await winner.read()
    [card] = await loser.read()
    await loser.tap(card, claim_label(card))
    [case] = await loser.read()
    assert "Ticket #T-" in case.text
    await is_reminded_once(loser)


async def the_one_leader(bots: list[BotProcess]) -> BotProcess:
    """The process that runs the scheduled jobs, once one has taken them; there is one."""
    await until(lambda: any(bot.leads for bot in bots), within=15)
    await asyncio.sleep(1)  # time for a second one to claim the jobs, if it wrongly could
    [leader] = [bot for bot in bots if bot.leads]
    return leader


async def each_question_is_answered_once(emulator: BotApiEmulator) -> None:
    talents = [emulator.phone(3900 + number) for number in range(6)]
    for talent in talents:
        # Every process is given this update at once.
        statuses = await emulator.deliver_to_each(talent.update(text=QUESTION))
        assert statuses == [200, 200, 200]
    # Each talent reads the answer before saying thanks, as a person does: a chat's order is
    # kept within a process, and the thanks may go to another one.
    await emulator.wait_for(lambda: all(t.received for t in talents), within=20)
    for talent in talents:
        await talent.send("thanks")  # to one process, in turn
    await emulator.wait_for(lambda: all(len(t.received) >= 2 for t in talents), within=20)
    await asyncio.sleep(1)
    for talent in talents:
        answer, welcome = talent.received
        assert "Foreign Permanent Residence ID Card" in answer.text
        assert "welcome" in welcome.text


async def one_of_two_claims_wins(
    emulator: BotApiEmulator, li: Phone, wang: Phone
) -> tuple[Phone, Phone]:
    """Two experts tap Claim on one ticket, handled by two processes: one wins."""
    talent = emulator.phone(3990)
    await ask_for_an_expert(talent)
    [li_card], [wang_card] = await li.read(), await wang.read()
    # Two deliveries in a row go to two different processes.
    await asyncio.gather(
        li.tap(li_card, claim_label(li_card)), wang.tap(wang_card, claim_label(wang_card))
    )
    [li_reply], [wang_reply] = await li.read(), await wang.read()
    winner, loser = (li, wang) if "Ticket #T-" in li_reply.text else (wang, li)
    assert "Ticket #T-" in (li_reply if winner is li else wang_reply).text
    assert "already been taken" in (wang_reply if winner is li else li_reply).text
    [taken] = await talent.read()
    assert "is now looking at your question" in taken.text
    assert await talent.quiet(0.5) == []
    return winner, loser


async def is_reminded_once(expert: Phone) -> None:
    """An expert who claimed and did not reply is reminded, once."""
    [reminder] = await expert.read(within=15)
    assert "waiting for your first reply" in reminder.text
    assert await expert.quiet(1.5) == []


async def staff_hear_of_an_edit_once_and_every_process_serves_it(
    emulator: BotApiEmulator, staff: Phone, knowledge: Path, store: Store
) -> None:
    entry = knowledge / "agent-exam.yaml"
    edited = entry.read_text(encoding="utf-8").replace(
        "Yes, but only under a pilot.", NEW_ANSWER, 1
    )
    entry.write_text(edited, encoding="utf-8")
    await until_reloaded_by(store, processes=3, within=30)
    askers = [emulator.phone(3950 + number) for number in range(3)]
    for asker in askers:
        await asker.send(QUESTION)  # one to each process
    for asker in askers:
        [answer] = await asker.read()
        assert NEW_ANSWER in answer.text
    [notice] = await staff.read()
    assert "was reloaded" in notice.text
    assert await staff.quiet(1) == []


async def until_reloaded_by(store: Store, processes: int, within: float) -> None:
    deadline = time.monotonic() + within
    while True:
        async with store.transaction() as tx:
            reloads = await tx.session.scalar(
                select(func.count()).where(
                    AuditEvent.action == "reload",
                    AuditEvent.detail["status"].as_string() == "loaded",
                )
            )
        assert reloads is not None  # a count is always one row
        if reloads >= processes:
            return
        assert time.monotonic() < deadline, f"{reloads} of {processes} processes reloaded"
        await asyncio.sleep(0.2)
