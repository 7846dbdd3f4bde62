"""Load soak: mixed traffic at a steady rate through a real `ipbot run`, for minutes on end.

Talents ask questions in English and Chinese, pick from the choices they are offered, rate
answers, use commands, and ask for an expert; experts claim those tickets from their Claim
buttons, talk with the talent through the bot and close the ticket, which the talent rates.
Every step waits for what the bot should send; what never comes counts as unanswered. The bot's
memory is sampled as it runs; its ERROR log records are counted.

    .venv/bin/python bench/soak.py --database postgresql --minutes 10 --rate 20

The last line: `minutes=… rate=… rss_start_mb=… rss_end_mb=… errors=… unanswered=…`.
"""

import sys
from pathlib import Path

# Run as a script, the folder on the path is bench/: the repository root is wanted, for
# `bench` and `tests` as packages.
if __name__ == "__main__":
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

import argparse
import asyncio
import itertools
import math
import random
import re
import tempfile
import time
from collections import Counter
from collections.abc import Callable

from bench.arguments import positive, whole
from bench.database import add_database_options, scratch_database
from bench.harness import (
    BotOptions,
    BotProcess,
    TimedEmulator,
    add_bot_options,
    questions,
    telegram_limits,
)
from bench.report import aligned, figures, table
from bot.store import Store
from bot.store.tickets import Tickets
from tests.botapi import Phone, Sent

FIRST_TALENT = 300_000
FIRST_EXPERT = 800_000
EXPERT_LIMIT = 3
MIX = {"question": 0.75, "command": 0.1, "expert": 0.15}
_TICKET = re.compile(r"#T-(\d+)")


class Pace:
    """Hands out send times `1 / rate` seconds apart, so the traffic is steady."""

    def __init__(self, rate: float) -> None:
        self.interval = 1 / rate
        self.next = time.monotonic()

    async def wait(self) -> None:
        """Until this sender's moment comes."""
        now = time.monotonic()
        slot = max(self.next, now)
        self.next = slot + self.interval
        await asyncio.sleep(slot - now)


def any_message(_: Sent) -> bool:
    """Whatever the bot sends next."""
    return True


def with_button(data: str) -> Callable[[Sent], bool]:
    """A message with a button that sends `data`."""
    return lambda sent: any(payload == data for _, payload in sent.buttons)


def containing(text: str) -> Callable[[Sent], bool]:
    """A message whose text has `text` in it."""
    return lambda sent: text in sent.text


class Soak:
    """The talents and experts, sending at a steady pace and checking what comes back."""

    def __init__(self, emulator: TimedEmulator, rate: float, talents: int, timeout: float) -> None:
        self.emulator = emulator
        self.pace = Pace(rate)
        self.timeout = timeout
        self.sent = 0
        self.scenarios: Counter[str] = Counter()
        self.unanswered: Counter[str] = Counter()
        self.random = random.Random(7)
        self.questions = questions()
        self.talents = [
            emulator.phone(FIRST_TALENT + n, f"Talent{n}", "zh" if n % 2 else "en")
            for n in range(talents)
        ]
        self._next_talent = itertools.cycle(range(talents))
        self._busy: set[int] = set()
        self._free_experts: asyncio.Queue[Phone] = asyncio.Queue()
        self._tokens = itertools.count(1)

    def add_expert(self, phone: Phone) -> None:
        """An expert, who takes up to `EXPERT_LIMIT` tickets at once."""
        for _ in range(EXPERT_LIMIT):
            self._free_experts.put_nowait(phone)

    async def send(self, phone: Phone, text: str) -> int:
        """Type `text` at the next steady moment; how many messages the chat had before."""
        await self.pace.wait()
        before = len(phone.received)
        await phone.send(text)
        self.sent += 1
        return before

    async def tap(self, phone: Phone, message: Sent, data: str) -> int:
        """Tap a button at the next steady moment; how many messages the chat had before."""
        await self.pace.wait()
        before = len(phone.received)
        await phone.tap_data(message, data)
        self.sent += 1
        return before

    async def expect(
        self, phone: Phone, start: int, step: str, wanted: Callable[[Sent], bool] = any_message
    ) -> Sent | None:
        """The message the bot should send to this chat (from its `start`th); noted if none."""
        found = await self.emulator.message_in(phone.chat["id"], wanted, start, self.timeout)
        if found is None:
            self.unanswered[step] += 1
        return found

    async def run_until(self, deadline: float) -> None:
        """Start conversations until `deadline`, each as soon as the last one ended."""
        kinds, weights = zip(*MIX.items(), strict=True)
        while time.monotonic() < deadline:
            kind = self.random.choices(kinds, weights)[0]
            talent = self._free_talent()
            self._busy.add(talent)
            try:
                await getattr(self, kind)(self.talents[talent])
                self.scenarios[kind] += 1
            finally:
                self._busy.discard(talent)

    def _free_talent(self) -> int:
        return next(n for n in self._next_talent if n not in self._busy)

    def _question(self, talent: Phone) -> str:
        pool = self.questions[talent.user["language_code"]]
        return self.random.choice(pool)

    async def question(self, talent: Phone) -> None:
        """Ask; pick one of the choices if offered some, or sometimes say whether it helped."""
        start = await self.send(talent, self._question(talent))
        reply = await self.expect(talent, start, "question")
        if reply is None:
            return
        choices = [data for _, data in reply.buttons if data.startswith("1:e:")]
        ratings = [data for _, data in reply.buttons if data.startswith(("1:y:", "1:n:"))]
        if choices and self.random.random() < 0.5:
            start = await self.tap(talent, reply, choices[0])
            await self.expect(talent, start, "choice")
        elif ratings and self.random.random() < 0.3:
            start = await self.tap(talent, reply, self.random.choice(ratings))
            await self.expect(talent, start, "feedback")

    async def command(self, talent: Phone) -> None:
        """/help, or /start and a language button."""
        if self.random.random() < 0.5:
            start = await self.send(talent, "/help")
            await self.expect(talent, start, "/help")
            return
        start = await self.send(talent, "/start")
        greeting = await self.expect(talent, start, "/start")
        if greeting is None:
            return
        languages = [data for _, data in greeting.buttons if data.startswith("1:l:")]
        if languages:
            data = f"1:l:{talent.user['language_code']}"
            start = await self.tap(talent, greeting, data if data in languages else languages[0])
            await self.expect(talent, start, "language")

    async def expert(self, talent: Phone) -> None:
        """Ask, then ask for an expert, who claims the ticket, replies, hears back and closes
        it; the talent rates it."""
        expert = await self._free_experts.get()
        try:
            await self._ticket(talent, expert)
        finally:
            self._free_experts.put_nowait(expert)

    async def _ticket(self, talent: Phone, expert: Phone) -> None:
        start = await self.send(talent, self._question(talent))
        reply = await self.expect(talent, start, "question")
        if reply is None:
            return
        desk = len(expert.received)
        if any(data == "1:x" for _, data in reply.buttons):
            start = await self.tap(talent, reply, "1:x")
        else:
            start = await self.send(talent, "/expert")
        requested = await self.expect(talent, start, "expert request", containing("#T-"))
        found = _TICKET.search(requested.text) if requested else None
        if found is None:
            return
        ticket = found.group(1)
        card = await self.expect(expert, desk, "announcement", with_button(f"1:c:{ticket}"))
        if card is None:
            return
        start = len(talent.received)
        await self.tap(expert, card, f"1:c:{ticket}")
        if await self.expect(expert, desk, "claim", with_button(f"1:r:{ticket}")) is None:
            return
        await self.expect(talent, start, "expert took")
        token = f"note{next(self._tokens)}"
        await self.send(expert, f"#T-{ticket} About your question ({token}): it depends.")
        await self.expect(talent, start, "relay to talent", containing(token))
        token = f"note{next(self._tokens)}"
        await self.send(talent, f"Thank you, that helps ({token}).")
        await self.expect(expert, desk, "relay to expert", containing(token))
        start = len(talent.received)
        await self.send(expert, f"/close {ticket} answered")
        await self.expect(expert, desk, "close", with_button(f"1:d:{ticket}"))
        rating = await self.expect(talent, start, "closed", with_button(f"1:s:{ticket}:5"))
        if rating is not None:
            start = await self.tap(talent, rating, f"1:s:{ticket}:{self.random.randint(1, 5)}")
            await self.expect(talent, start, "rating")


class Samples:
    """The bot's memory and CPU, and the traffic so far, every so often."""

    HEADER = ("minute", "sent", "per s", "bot msgs", "RSS MiB", "bot CPU %", "errors", "unanswered")
    WIDTHS = tuple(max(len(name), 8) for name in HEADER)

    def __init__(self, soak: Soak, bot: BotProcess) -> None:
        self.soak = soak
        self.bot = bot
        self.started = time.monotonic()
        self._last = (self.started, 0, bot.cpu_seconds())

    def take(self) -> tuple[object, ...]:
        """One sample, as a row of the table."""
        now, cpu = time.monotonic(), self.bot.cpu_seconds()
        then, sent_then, cpu_then = self._last
        self._last = (now, self.soak.sent, cpu)
        return (
            round((now - self.started) / 60, 2),
            self.soak.sent,
            (self.soak.sent - sent_then) / max(now - then, 1e-9),
            self.soak.emulator.sent_count,
            self.bot.rss_mb(),
            (cpu - cpu_then) / max(now - then, 1e-9) * 100,
            len(self.bot.errors),
            sum(self.soak.unanswered.values()),
        )

    async def every(self, seconds: float) -> None:
        """Print a sample every `seconds`, until cancelled."""
        while True:
            await asyncio.sleep(seconds)
            self.print(self.take())

    def print(self, row: tuple[object, ...]) -> None:
        """One sample as a line of the table."""
        print(aligned(row, self.WIDTHS), flush=True)


async def enrol_experts(url: str, count: int) -> None:
    """Make `count` volunteer experts, as `ipbot experts add` does."""
    store = Store.open(url)
    try:
        tickets = Tickets(store)
        for number in range(count):
            await tickets.enrol("telegram", str(FIRST_EXPERT + number), f"Expert{number}")
    finally:
        await store.close()


async def run(args: argparse.Namespace) -> str:
    """Soak the bot as `args` say; the closing `key=value` line."""
    enforced = args.limits == "telegram"
    emulator = TimedEmulator(telegram_limits(enforced))
    await emulator.start()
    soak = Soak(emulator, args.rate, args.talents, args.timeout)
    for number in range(args.experts):
        soak.add_expert(emulator.phone(FIRST_EXPERT + number, f"Expert{number}"))
    sample_every = args.sample_seconds or (60 if args.minutes >= 5 else 10)
    async with scratch_database(args.database, args.postgres_url) as url:
        await enrol_experts(url, args.experts)
        with tempfile.TemporaryDirectory(prefix="ipbot-bench-") as folder:
            bot = BotProcess(
                emulator, BotOptions(url, args.mode == "webhook", enforced), Path(folder)
            )
            await bot.start()
            try:
                samples = Samples(soak, bot)
                rss_start = bot.rss_mb()
                print(aligned(Samples.HEADER, Samples.WIDTHS))
                print(aligned(["-" * width for width in Samples.WIDTHS], Samples.WIDTHS))
                samples.print(samples.take())
                sampler = asyncio.create_task(samples.every(sample_every))
                deadline = time.monotonic() + args.minutes * 60
                await asyncio.gather(*(soak.run_until(deadline) for _ in range(args.workers)))
                sampler.cancel()
                await asyncio.sleep(1)  # what the bot still had in hand
                samples.print(samples.take())
                rss_end = bot.rss_mb()
                elapsed = time.monotonic() - samples.started
            finally:
                status = await bot.stop()
    await emulator.stop()

    refused = [e for e in emulator.errors if not e[1].startswith("Too Many Requests")]
    print()
    print(
        table(
            ("figure", "value"),
            [
                ("database / mode / limits", f"{args.database} / {args.mode} / {args.limits}"),
                ("updates sent", soak.sent),
                ("updates per second", soak.sent / elapsed),
                ("messages the bot sent", emulator.sent_count),
                (
                    "conversations",
                    ", ".join(f"{kind} {count}" for kind, count in sorted(soak.scenarios.items())),
                ),
                ("bot RSS at start / end, MiB", f"{rss_start:.1f} / {rss_end:.1f}"),
                ("bot ERROR log records", len(bot.errors)),
                ("requests the emulator refused (not 429)", len(refused)),
                ("429 answers from the emulator", emulator.limit_hits),
                ("unanswered", sum(soak.unanswered.values())),
                ("bot exit status", status),
            ],
        )
    )
    for step, count in sorted(soak.unanswered.items()):
        print(f"  unanswered at {step}: {count}")
    for line in bot.errors[:5]:
        print("  " + line)
    for method, description in refused[:5]:
        print(f"  refused {method}: {description}")
    return figures(
        minutes=args.minutes,
        rate=soak.sent / elapsed,
        database=args.database,
        rss_start_mb=rss_start,
        rss_end_mb=rss_end,
        errors=len(bot.errors),
        refused=len(refused),
        unanswered=sum(soak.unanswered.values()),
    )


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=positive, default=10, help="how long to send")
    parser.add_argument("--rate", type=positive, default=20, help="updates per second")
    add_database_options(parser)
    add_bot_options(parser)
    parser.add_argument("--talents", type=whole(1), default=3000, help="distinct talents")
    parser.add_argument("--experts", type=whole(1), default=10, help="volunteer experts")
    parser.add_argument(
        "--workers",
        type=whole(1),
        help="conversations at once (default: one per update a second, at least 4)",
    )
    parser.add_argument(
        "--timeout", type=positive, default=30, help="seconds to wait for each message"
    )
    parser.add_argument(
        "--sample-seconds", type=positive, help="between samples (default: 60, or 10 under 5 min)"
    )
    args = parser.parse_args(argv)
    args.workers = args.workers or max(4, math.ceil(args.rate))
    if args.workers > args.talents:
        parser.error(
            f"--talents must be at least the conversations at once ({args.workers}, "
            "--workers): a talent has one conversation at a time"
        )
    return args


def main() -> None:
    """Run the benchmark and print its figures."""
    print(asyncio.run(run(parse())))


if __name__ == "__main__":
    main()
