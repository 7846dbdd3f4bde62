"""Database outages: the bot rides out a dropped connection and says so when the database is down.

On PostgreSQL an administrator cuts the bot off: `pg_terminate_backend` ends its connections
mid-run, and `ALLOW_CONNECTIONS false` keeps it out until allowed again. SQLite has no server
to cut anyone off; what makes its database unavailable is another connection holding the
file's exclusive lock for longer than the bot waits for it, so the SQLite runs do that.

The end-to-end tests act as users on the real PTB Application against the Bot API emulator;
nothing in the bot is mocked or patched. Two tests on the store itself pin down which work is
done again after a dropped connection: only work with no write committed yet.
"""

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import aiosqlite
import pytest
from sqlalchemy import Select, func, select
from sqlalchemy.engine import make_url

from bot.matching import Matcher
from bot.paths import bundled
from bot.runtime import Runtime
from bot.services import Services
from bot.store import Store, StoreUnavailable
from bot.store.models import AuditEvent, Message, User
from bot.templates import Templates
from tests.botapi import BotApiEmulator
from tests.conftest import (
    POSTGRES_URL,
    PostgresDatabase,
    running,
    telegram_settings,
    upgraded_store,
)
from tests.conversations import QUESTION
from tests.postgres import as_admin
from tests.processes import start_bot

ANSWERED = "Foreign Permanent Residence ID Card"
# How long the bot's SQLite connections wait for a lock here (30 s when running for real).
LOCK_WAIT = 0.3


class Outage(Protocol):
    """A way to cut the bot off from its database."""

    async def interrupt(self) -> None:
        """Cut the bot off for a moment, in the middle of whatever it is doing."""

    async def begin(self) -> None:
        """Keep the bot out of its database until `end`."""

    async def end(self) -> None:
        """Let the bot back in."""


class PostgresOutage:
    """An administrator ending the bot's sessions, and refusing new ones for a while."""

    def __init__(self, url: str) -> None:
        self.name = make_url(url).database
        assert POSTGRES_URL is not None
        self._server = POSTGRES_URL

    async def _as_admin(self, statement: str, *arguments: object) -> None:
        await as_admin(self._server, statement, *arguments)

    async def interrupt(self) -> None:
        await self._as_admin(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = $1 AND pid <> pg_backend_pid()",
            self.name,
        )

    async def begin(self) -> None:
        await self._as_admin(f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS false')
        await self.interrupt()

    async def end(self) -> None:
        await self._as_admin(f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS true')


class SqliteOutage:
    """Another connection holding the database file's exclusive lock."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._holder: aiosqlite.Connection | None = None
        self._release: asyncio.Task[None] | None = None

    async def interrupt(self) -> None:
        """Hold the lock for a little longer than the bot waits, then let go."""
        await self.settle()
        await self.begin()
        self._release = asyncio.create_task(self._end_after(2 * LOCK_WAIT))

    async def _end_after(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        await self.end()

    async def begin(self) -> None:
        self._holder = await aiosqlite.connect(self.path, isolation_level=None)
        await self._holder.execute("BEGIN EXCLUSIVE")

    async def end(self) -> None:
        if self._holder is not None:
            holder, self._holder = self._holder, None
            await holder.execute("ROLLBACK")
            await holder.close()

    async def settle(self) -> None:
        """Wait until an interruption is over."""
        if self._release is not None:
            await self._release


@dataclass
class Database:
    """The bot's store, and the means to cut the bot off from it."""

    store: Store
    outage: Outage


@pytest.fixture(params=["sqlite", "postgresql"])
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    if request.param == "sqlite":
        path = tmp_path / "test.sqlite3"
        store = Store.open(f"sqlite+aiosqlite:///{path}", lock_wait=LOCK_WAIT)
        await store.upgrade()
        sqlite = SqliteOutage(path)
        yield Database(store, sqlite)
        await sqlite.settle()
        await sqlite.end()
        await store.close()
        return
    async with PostgresDatabase() as url, upgraded_store(url) as store:
        postgres = PostgresOutage(url)
        yield Database(store, postgres)
        await postgres.end()


@pytest.fixture
async def bot(
    emulator: BotApiEmulator, database: Database, matcher: Matcher
) -> AsyncIterator[Runtime]:
    """The real PTB Application, polling the emulator; its service-level check runs twice a
    second and escalates a ticket left unclaimed for six seconds."""
    settings = telegram_settings(emulator, sla_check_seconds=0.5, sla_escalate_minutes=0.1)
    services = Services(
        settings=settings,
        store=database.store,
        matcher=matcher,
        templates=Templates(bundled("templates")),
    )
    async with running(settings, services) as runtime:
        yield runtime


def _retries(caplog: pytest.LogCaptureFixture) -> int:
    return sum("trying again" in record.getMessage() for record in caplog.records)


async def _count(store: Store, query: Select[Any]) -> int:
    """The count `query` gives, once the database can be reached."""

    async def count() -> int:
        async with store.transaction() as tx:
            return await tx.session.scalar(query) or 0

    return await store.retrying(count)


def _messages(direction: str) -> Select[Any]:
    return select(func.count()).select_from(Message).where(Message.direction == direction)


AUDITED = select(func.count()).select_from(AuditEvent)


async def test_work_cut_off_before_it_wrote_anything_is_done_again(database: Database) -> None:
    store, tries = database.store, 0

    async def work() -> None:
        nonlocal tries
        tries += 1
        async with store.transaction() as tx:
            await tx.session.scalar(select(func.count()).select_from(User))
        async with store.transaction() as tx:
            await tx.session.execute(select(User.id))
            if tries == 1:
                await database.outage.interrupt()
            await tx.audit(None, "test", "once")

    await store.retrying(work)
    assert tries >= 2
    assert await _count(store, AUDITED) == 1


async def test_work_that_committed_a_write_is_not_done_again(database: Database) -> None:
    store, tries = database.store, 0

    async def work() -> None:
        nonlocal tries
        tries += 1
        async with store.transaction() as tx:
            await tx.audit(None, "test", "once")
        async with store.transaction() as tx:
            await tx.session.execute(select(User.id))
            await database.outage.interrupt()
            await tx.session.execute(select(User.id))

    with pytest.raises(StoreUnavailable):
        await store.retrying(work)
    assert tries == 1
    assert await _count(store, AUDITED) == 1


async def test_every_question_is_answered_once_while_connections_keep_dropping(
    bot: Runtime,
    emulator: BotApiEmulator,
    database: Database,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="bot.store")
    phones = [emulator.phone(7000 + n) for n in range(30)]
    rounds = 0
    # Drops land at random moments: keep asking until some cut a talent's turn short.
    while rounds == 0 or (_retries(caplog) == 0 and rounds < 4):
        rounds += 1
        await asyncio.gather(*(phone.send(QUESTION) for phone in phones))
        for _ in range(3):
            await database.outage.interrupt()
            await asyncio.sleep(4 * LOCK_WAIT)
        await emulator.wait_for(
            lambda: all(len(phone.received) >= rounds for phone in phones),  # noqa: B023
            within=20,
        )
    await asyncio.sleep(0.5)
    for phone in phones:
        assert len(phone.received) == rounds
        assert all(ANSWERED in message.text for message in phone.received)
    assert await _count(database.store, _messages("in")) == len(phones) * rounds
    assert await _count(database.store, _messages("out")) == len(phones) * rounds
    # The drops did cut turns short, and those turns were done again.
    assert _retries(caplog) > 0


async def test_talents_are_asked_to_try_later_while_the_database_is_down_and_answered_after(
    bot: Runtime,
    emulator: BotApiEmulator,
    database: Database,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    services = bot.services
    staff = emulator.phone(9100)
    await services.tickets.appoint_staff("telegram", "9100")
    asker = emulator.phone(9101)
    await asker.send("/expert")
    [queued] = await asker.read()
    assert "#T-" in queued.text
    escalation_due = asyncio.get_running_loop().time() + 6
    await database.outage.begin()
    staff_before = len(staff.received)
    english = emulator.phone(9102)
    chinese = emulator.phone(9103, "Mei", language="zh-hans")
    await english.send(QUESTION)
    await chinese.send("外国人可以考专利代理师吗？")
    [later] = await english.read(within=20)
    [later_zh] = await chinese.read(within=20)
    assert "temporarily unavailable" in later.text
    assert "please send it again in a few minutes" in later.text.lower()
    assert "暂时无法使用" in later_zh.text
    # The ticket falls due for escalation during the outage; nothing can be done about it yet.
    await asyncio.sleep(escalation_due + 0.5 - asyncio.get_running_loop().time())
    assert len(staff.received) == staff_before

    await database.outage.end()
    await english.send(QUESTION)
    [answer] = await english.read(within=10)
    assert ANSWERED in answer.text
    await chinese.send("外国人可以考专利代理师吗？")
    [answer_zh] = await chinese.read(within=10)
    assert "永久居留" in answer_zh.text
    await emulator.wait_for(
        lambda: any("without an expert" in m.text for m in staff.received), within=10
    )

    # The outage is logged once, and its end; each message it stopped gets a line of its own.
    warned = [
        r.getMessage()
        for r in caplog.records
        if r.name == "bot.store.outage" and r.levelno >= logging.WARNING
    ]
    assert len(warned) == 2
    assert warned[0].startswith("The database is unavailable")
    assert warned[1].startswith("The database is reachable again")
    assert len([r for r in caplog.records if "not handled" in r.getMessage()]) == 2
    assert [
        r.getMessage() for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR
    ] == []
    # What came in during the outage was not kept: the talent sent it again.
    kept = _messages("in").join(User, User.id == Message.user_id).where(User.external_id == "9102")
    assert await _count(database.store, kept) == 1


async def test_a_bot_started_while_postgresql_is_down_waits_for_it_then_answers(
    emulator: BotApiEmulator, tmp_path: Path
) -> None:
    async with PostgresDatabase() as url, upgraded_store(url):
        outage = PostgresOutage(url)
        await outage.begin()
        bot = await start_bot(emulator, url, tmp_path, stderr=asyncio.subprocess.PIPE)
        assert bot.stderr is not None
        try:
            first = await asyncio.wait_for(bot.stderr.readline(), 30)
            assert "the database is not reachable yet" in first.decode()
            await outage.end()
            phone = emulator.phone(1301)
            await phone.send(QUESTION)
            [answer] = await phone.read(within=30)
            assert ANSWERED in answer.text
        finally:
            await outage.end()
            bot.terminate()
            await bot.wait()


async def test_a_bot_gives_up_on_a_database_still_down_after_its_wait(
    emulator: BotApiEmulator, tmp_path: Path
) -> None:
    async with PostgresDatabase() as url, upgraded_store(url):
        outage = PostgresOutage(url)
        await outage.begin()
        try:
            bot = await start_bot(
                emulator,
                url,
                tmp_path,
                stderr=asyncio.subprocess.PIPE,
                START_WAIT_SECONDS="2",
            )
            _, errors = await asyncio.wait_for(bot.communicate(), 30)
        finally:
            await outage.end()
    assert bot.returncode == 1
    assert "cannot use the database (DATABASE_URL)" in errors.decode().splitlines()[-1]
