"""Shared fixtures: the bundled knowledge base, and a fresh store on SQLite and PostgreSQL.

PostgreSQL tests run when TEST_POSTGRES_URL names a server (`.ci/run` sets it); each test gets
a database of its own, dropped afterwards. If the variable is set and the server cannot be
reached, the tests fail rather than skip.
"""

import asyncio
import gc
import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

import asyncpg
import pytest

from bot.channels.contract import Channel
from bot.config import Settings
from bot.knowledge import KnowledgeBase, load_knowledge
from bot.matching import Matcher
from bot.paths import bundled
from bot.runtime import Runtime, configured_channels
from bot.services import Services, thresholds_from
from bot.store import Store
from bot.templates import Templates
from tests.botapi import BotApiEmulator
from tests.postgres import scratch_database

POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL")


@pytest.fixture(scope="session")
def knowledge() -> KnowledgeBase:
    return load_knowledge(bundled("knowledge"))


@pytest.fixture(scope="session")
def matcher(knowledge: KnowledgeBase) -> Matcher:
    return Matcher(knowledge, thresholds_from(Settings()))


@pytest.fixture(params=["sqlite", "postgresql"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    if request.param == "sqlite":
        async with upgraded_store(f"sqlite+aiosqlite:///{tmp_path / 'test.sqlite3'}") as opened:
            yield opened
        return
    async with PostgresDatabase() as url, upgraded_store(url) as opened:
        yield opened


@asynccontextmanager
async def upgraded_store(url: str) -> AsyncIterator[Store]:
    """The store at `url`, its schema at the newest migration, closed afterwards."""
    opened = Store.open(url)
    await opened.upgrade()
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
def services(store: Store, matcher: Matcher) -> Services:
    return Services(
        settings=Settings(),
        store=store,
        matcher=matcher,
        templates=Templates(bundled("templates")),
    )


@pytest.fixture
def unfrozen_afterwards() -> Iterator[None]:
    """Whatever a test settles (`bot.heap.settle`) is unfrozen when it ends, and the
    collector's thresholds are put back."""
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def collected_in_full(thing: object) -> bool:
    """Whether a full garbage collection walks `thing`."""
    return any(tracked is thing for tracked in gc.get_objects())


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No bot settings from the outside world; the working folder is empty."""
    for name in list(os.environ):
        if name in Settings.model_fields or name.lower() in Settings.model_fields:
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


class PostgresDatabase:
    """A database of its own on the test server, dropped when the test ends."""

    def __init__(self) -> None:
        if not POSTGRES_URL:
            pytest.skip("TEST_POSTGRES_URL is not set: no PostgreSQL server configured")
        self._database = scratch_database(POSTGRES_URL, "ipbot_test")

    async def __aenter__(self) -> str:
        try:
            return await self._database.__aenter__()
        except (OSError, asyncpg.PostgresError) as error:
            pytest.fail(f"TEST_POSTGRES_URL is set but the server cannot be used: {error}")

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self._database.__aexit__(exc_type, exc, traceback)


@pytest.fixture
async def emulator() -> AsyncIterator[BotApiEmulator]:
    """The Bot API on loopback, for the end-to-end tests."""
    emulator = BotApiEmulator()
    await emulator.start()
    yield emulator
    await emulator.stop()


def telegram_settings(emulator: BotApiEmulator, **overrides: Any) -> Settings:
    """Settings that point the bot at the emulator, its web server on any free port."""
    # Any, as Settings' own keyword arguments are: Settings checks each value itself.
    return Settings(
        **{
            "telegram_bot_token": emulator.token,
            "telegram_api_base_url": emulator.base_url,
            "web_port": 0,
            **overrides,
        }
    )


@asynccontextmanager
async def running(
    settings: Settings, services: Services, *channels: Channel
) -> AsyncIterator[Runtime]:
    """The bot's runtime serving in this process, as `ipbot run` serves: the channels the
    settings configure, and `channels`. Stopped when the block ends."""
    pid_file = Path(tempfile.mkdtemp()) / "ipbot.pid"
    settings = settings.model_copy(update={"pid_file": pid_file})
    runtime = Runtime(settings, services, [*configured_channels(settings, services), *channels])
    serving_since = asyncio.Event()
    serving = asyncio.create_task(
        runtime.serve(lambda line: serving_since.set() if line.startswith("web server") else None)
    )
    started = asyncio.create_task(serving_since.wait())
    await asyncio.wait({serving, started}, return_when=asyncio.FIRST_COMPLETED)
    if serving.done():
        started.cancel()
        serving.result()
    try:
        yield runtime
    finally:
        runtime.stop()
        await serving


@pytest.fixture
async def bot(emulator: BotApiEmulator, services: Services) -> AsyncIterator[Runtime]:
    """The bot's runtime with its Telegram channel, polling the emulator."""
    async with running(telegram_settings(emulator), services) as runtime:
        yield runtime
