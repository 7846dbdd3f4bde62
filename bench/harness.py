"""The bot under load: a real `ipbot run` process against the Bot API emulator.

The bot runs in a process of its own, so it has a core to itself while this process plays
Telegram and the users. The emulator here notes when each message reached a chat, so the time
from an update sent to its reply received can be measured.
"""

import argparse
import asyncio
import contextlib
import json
import logging
import os
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.channels.telegram import WEBHOOK_PATH
from bot.config import Settings
from bot.paths import bundled_questions
from bot.text import detect_language
from tests.botapi import BotApiEmulator, Limits, Sent, free_port

UNLIMITED = 1_000_000.0
FLOOR_BOT = Path(__file__).resolve().parent / "floor_bot.py"
# `ipbot run` under cProfile, timed by CPU: with the cores shared, wall time would also count
# the moments the bot was waiting for one.
_PROFILED = """
import cProfile, runpy, sys, time
sys.argv = ["ipbot", "run"]
profile = cProfile.Profile(time.process_time)
try:
    profile.runcall(runpy.run_module, "bot.cli", run_name="__main__")
except SystemExit:
    pass
profile.dump_stats({out!r})
"""


def add_bot_options(parser: argparse.ArgumentParser) -> None:
    """`--mode` and `--limits`, for the benchmarks that run the bot."""
    parser.add_argument("--mode", choices=("webhook", "polling"), default="webhook")
    parser.add_argument(
        "--limits",
        choices=("off", "telegram"),
        default="off",
        help="off: no send limits anywhere; telegram: the emulator enforces Telegram's "
        "(30 messages/s, 1/s per chat) and the bot paces itself to them",
    )


def telegram_limits(enforced: bool) -> Limits:
    """Telegram's real send limits, or limits so high they never apply."""
    if enforced:
        return Limits()
    return Limits(
        overall_per_second=UNLIMITED, chat_per_second=UNLIMITED, group_per_minute=UNLIMITED
    )


def questions() -> dict[str, list[str]]:
    """Talents' questions in English and in Chinese, from the labelled question set."""
    path = bundled_questions()
    if path is None:
        raise SystemExit("the labelled question set (tests/data/questions.jsonl) is missing")
    by_language: dict[str, list[str]] = {"en": [], "zh": []}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            text = json.loads(line)["q"]
            by_language[detect_language(text) or "en"].append(text)
    return by_language


class TimedEmulator(BotApiEmulator):
    """The emulator, noting when each message reached each chat."""

    webhook_connections = 200

    def __init__(self, limits: Limits) -> None:
        super().__init__(limits=limits)
        self.arrivals: dict[int, list[float]] = defaultdict(list)
        self.sent_count = 0
        self._waiters: dict[tuple[int, int], asyncio.Future[float]] = {}
        self._watchers: dict[int, list[asyncio.Future[None]]] = defaultdict(list)
        self._sent_more = asyncio.Event()
        # 429s (and a poll ended by a newer one) are part of the load; one line each would
        # bury the figures.
        logging.getLogger("tornado.access").setLevel(logging.ERROR)

    async def _api_sendMessage(self, params: dict[str, Any]) -> dict[str, Any]:
        result = await super()._api_sendMessage(params)
        chat_id = int(params["chat_id"])
        arrivals = self.arrivals[chat_id]
        arrivals.append(time.monotonic())
        self.sent_count += 1
        self._sent_more.set()
        waiter = self._waiters.pop((chat_id, len(arrivals)), None)
        if waiter is not None and not waiter.done():
            waiter.set_result(arrivals[-1])
        self._changed(chat_id)
        return result

    async def _api_editMessageText(self, params: dict[str, Any]) -> dict[str, Any]:
        result = await super()._api_editMessageText(params)
        self._changed(int(params["chat_id"]))
        return result

    def _changed(self, chat_id: int) -> None:
        for watcher in self._watchers.pop(chat_id, []):
            if not watcher.done():
                watcher.set_result(None)

    async def message_in(
        self, chat_id: int, wanted: Callable[[Sent], bool], start: int, within: float
    ) -> Sent | None:
        """The first message in the chat, from the `start`th on, that is `wanted`; None if
        none is within `within` seconds."""
        deadline = time.monotonic() + within
        while True:
            for sent in self.messages.get(chat_id, [])[start:]:
                if wanted(sent):
                    return sent
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            watcher = asyncio.get_running_loop().create_future()
            self._watchers[chat_id].append(watcher)
            try:
                await asyncio.wait_for(watcher, remaining)
            except TimeoutError:
                return None

    async def nth_message(self, chat_id: int, number: int, within: float) -> float | None:
        """When the `number`th message (counting from 1) reached the chat; None if it did not
        within `within` seconds."""
        arrivals = self.arrivals[chat_id]
        if len(arrivals) >= number:
            return arrivals[number - 1]
        waiter = self._waiters.setdefault(
            (chat_id, number), asyncio.get_running_loop().create_future()
        )
        try:
            return await asyncio.wait_for(asyncio.shield(waiter), within)
        except TimeoutError:
            return None

    async def settle(self, expected: int, within: float) -> bool:
        """Wait until `expected` messages in all have been sent; whether they were."""
        deadline = time.monotonic() + within
        while self.sent_count < expected:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self._sent_more.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._sent_more.wait(), remaining)
        return True


@dataclass
class BotOptions:
    """How the bot process is started."""

    database_url: str
    webhook: bool
    limits_enforced: bool
    profile: Path | None = None
    staff_ids: str = ""
    # `bench/floor_bot.py` in `ipbot run`'s place: PTB alone, nothing stored or matched.
    floor: bool = False


class BotProcess:
    """`ipbot run` in a process of its own, pointed at the emulator."""

    def __init__(self, emulator: TimedEmulator, options: BotOptions, workdir: Path) -> None:
        self.emulator = emulator
        self.options = options
        self.workdir = workdir
        self.errors: list[str] = []
        self.warnings = 0
        self.output: list[str] = []
        self.port = free_port()
        self._process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None

    @property
    def started(self) -> bool:
        """Whether the process was started (it may have stopped since)."""
        return self._process is not None

    @property
    def webhook(self) -> str:
        """Where this process takes webhook deliveries."""
        return f"http://127.0.0.1:{self.port}/{WEBHOOK_PATH}"

    @property
    def pid(self) -> int:
        """The process id."""
        assert self._process is not None
        return self._process.pid

    def environment(self) -> dict[str, str]:
        """The bot's settings: only what is set here, none from this shell."""
        environment = {
            name: value
            for name, value in os.environ.items()
            if name.lower() not in Settings.model_fields
        }
        options = self.options
        # Unlimited: so high that the rate limiter never waits.
        overall = "30" if options.limits_enforced else str(UNLIMITED)
        chat = "1" if options.limits_enforced else str(UNLIMITED)
        environment.update(
            TELEGRAM_BOT_TOKEN=self.emulator.token,
            TELEGRAM_API_BASE_URL=self.emulator.base_url,
            TELEGRAM_MESSAGES_PER_SECOND=overall,
            TELEGRAM_CHAT_MESSAGES_PER_SECOND=chat,
            DATABASE_URL=options.database_url,
            PID_FILE=str(self.workdir / "ipbot.pid"),
            STAFF_IDS=options.staff_ids,
            LOG_LEVEL="WARNING",
        )
        if options.webhook:
            environment.update(
                TELEGRAM_WEBHOOK_URL=f"http://127.0.0.1:{self.port}",
                TELEGRAM_WEBHOOK_LISTEN="127.0.0.1",
                TELEGRAM_WEBHOOK_PORT=str(self.port),
            )
        else:
            # Each process's web server on a port of its own.
            environment.update(WEB_PORT="0")
        return environment

    async def start(self, within: float = 60) -> None:
        """Start the bot and wait until it takes updates."""
        profile = self.options.profile
        if self.options.floor:
            command = [str(FLOOR_BOT)]
        elif profile:
            command = ["-c", _PROFILED.format(out=str(profile.resolve()))]
        else:
            command = ["-m", "bot.cli", "run"]
        self._process = await asyncio.create_subprocess_exec(
            sys.executable, *command,
            cwd=self.workdir, env=self.environment(),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        self._reader = asyncio.create_task(self._read_log())
        deadline = time.monotonic() + within
        while not await self._ready():
            if self._process.returncode is not None:
                raise SystemExit("the bot stopped at start:\n" + "\n".join(self.output[-20:]))
            if time.monotonic() > deadline:
                raise SystemExit("the bot did not start within a minute")
            await asyncio.sleep(0.1)

    async def _ready(self) -> bool:
        emulator = self.emulator
        if not self.options.webhook:
            return any(method == "getUpdates" for method, _ in emulator.calls)
        if not emulator.webhook_url:
            return False
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", self.port)
        except OSError:
            return False
        writer.close()
        await writer.wait_closed()
        return True

    async def _read_log(self) -> None:
        assert self._process is not None
        assert self._process.stderr is not None
        async for raw in self._process.stderr:
            line = raw.decode("utf-8", "replace").rstrip()
            self.output.append(line)
            del self.output[:-200]
            if line.startswith(("ERROR ", "CRITICAL ")):
                self.errors.append(line)
            elif line.startswith("WARNING "):
                self.warnings += 1

    async def stop(self) -> int:
        """Stop the bot as `kill` would (SIGTERM); its exit status."""
        assert self._process is not None
        if self._process.returncode is None:
            self._process.terminate()
        status = await self._process.wait()
        if self._reader is not None:
            await self._reader
        return status

    def rss_mb(self) -> float:
        """The bot's resident memory, in MiB."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def cpu_seconds(self) -> float:
        """CPU time the bot has used, user and system."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_seconds_of(command: str) -> float:
    """CPU time, user and system, of every process on this machine running `command` (such as
    `postgres`, the database server's processes), and of their children that have ended: a
    server process that ends passes its time to the one that started it."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            name, fields = stat.read_text().split(" (", 1)[1].rsplit(")", 1)
        except (OSError, IndexError, ValueError):
            continue  # the process ended meanwhile
        if name == command:
            total += sum(int(number) for number in fields.split()[11:15])
    return total / os.sysconf("SC_CLK_TCK")


def machine_cpu() -> tuple[float, float]:
    """Seconds of CPU time the machine has spent busy, and in all, over all its cores."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle and waiting for I/O
    return (sum(fields) - idle) / os.sysconf("SC_CLK_TCK"), sum(fields) / os.sysconf("SC_CLK_TCK")
