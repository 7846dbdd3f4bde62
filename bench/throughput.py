"""End-to-end throughput: talents' questions through a real `ipbot run` and the Bot API emulator.

Each update is a talent's question (English or Chinese) in one of many private chats; the bot
matches it, stores the message and its reply, and sends the reply. Reported: updates handled
per second, and the time from an update sent to its reply received.

    .venv/bin/python bench/throughput.py --database postgresql --rate 300 --updates 6000
    .venv/bin/python bench/throughput.py --database sqlite --mode polling --concurrency 64
    .venv/bin/python bench/throughput.py --database postgresql --bot floor --concurrency 64

With `--rate` updates are sent at that pace whatever the bot does (open loop); without it,
`--concurrency` talents each send their next question once the last is answered (closed loop),
which finds the most the bot can handle. `--limits telegram` makes the emulator enforce
Telegram's send limits and sets the bot's pace to the same. `--bot floor` runs the same PTB
application answering every question with a fixed reply (`bench/floor_bot.py`), nothing
stored or matched: the least any bot on this framework costs per update.
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
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from bench.arguments import positive, whole
from bench.database import add_database_options, scratch_database
from bench.harness import (
    BotOptions,
    BotProcess,
    TimedEmulator,
    add_bot_options,
    cpu_seconds_of,
    machine_cpu,
    questions,
    telegram_limits,
)
from bench.report import figures, percentile, table
from bot import heap
from tests.botapi import Phone

FIRST_CHAT = 100_000
WARMUP_CHAT = 900_000


@dataclass
class Load:
    """The talents and what each has sent, with when."""

    emulator: TimedEmulator
    chats: int
    first_chat: int = FIRST_CHAT
    sent: dict[int, list[float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        pools = questions()
        self.phones: list[Phone] = []
        self.texts: list[Iterator[str]] = []
        for number in range(self.chats):
            language = "zh" if number % 2 else "en"
            self.phones.append(
                self.emulator.phone(self.first_chat + number, f"Talent{number}", language)
            )
            pool = pools[language]
            self.texts.append(
                itertools.cycle(pool[number % len(pool) :] + pool[: number % len(pool)])
            )

    async def send(self, number: int) -> int:
        """Talent `number` asks their next question; returns how many they have sent."""
        phone = self.phones[number]
        chat_id = phone.chat["id"]
        times = self.sent.setdefault(chat_id, [])
        times.append(time.monotonic())
        await phone.send(next(self.texts[number]))
        return len(times)

    async def answered(self, number: int, count: int, within: float) -> bool:
        """Wait for the reply to talent `number`'s `count`th question; whether it came."""
        chat_id = self.phones[number].chat["id"]
        return await self.emulator.nth_message(chat_id, count, within) is not None

    @property
    def last_sent(self) -> float:
        """When the last question went."""
        return max((times[-1] for times in self.sent.values() if times), default=0.0)

    def collect(self) -> tuple[list[float], int, float]:
        """Every reply's latency, how many questions went unanswered, and the last reply."""
        latencies, unanswered, last = [], 0, 0.0
        for chat_id, times in self.sent.items():
            arrivals = self.emulator.arrivals.get(chat_id, [])
            for number, sent_at in enumerate(times):
                if number < len(arrivals):
                    latencies.append(arrivals[number] - sent_at)
                    last = max(last, arrivals[number])
                else:
                    unanswered += 1
        return latencies, unanswered, last


async def open_loop(load: Load, updates: int, rate: float) -> float:
    """Send `updates` questions at `rate` a second, round the chats; when the first went."""
    started = time.monotonic()
    sending: set[asyncio.Task[int]] = set()
    for number in range(updates):
        delay = started + number / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(load.send(number % load.chats))
        sending.add(task)
        task.add_done_callback(sending.discard)
    await asyncio.gather(*sending)
    return started


async def closed_loop(load: Load, updates: int, concurrency: int, within: float) -> float:
    """`concurrency` talents at a time, each asking again once answered; when it began."""
    tickets = iter(range(updates))

    async def talent(worker: int) -> None:
        # Each worker has chats of its own, so no chat has two questions waiting at once.
        own = itertools.cycle(range(worker, load.chats, concurrency))
        for _ in tickets:
            number = next(own)
            count = await load.send(number)
            await load.answered(number, count, within)

    started = time.monotonic()
    await asyncio.gather(*(talent(worker) for worker in range(concurrency)))
    return started


async def warm_up(emulator: TimedEmulator, updates: int) -> None:
    """A few questions first, so that connections are open and caches are warm."""
    if updates <= 0:
        return
    load = Load(emulator, chats=min(updates, 32), first_chat=WARMUP_CHAT)
    await closed_loop(load, updates, min(updates, 32), within=60)


async def run(args: argparse.Namespace) -> str:
    """Measure as `args` say; the closing `key=value` line."""
    enforced = args.limits == "telegram"
    emulator = TimedEmulator(telegram_limits(enforced))
    await emulator.start()
    async with scratch_database(args.database, args.postgres_url) as url:
        with tempfile.TemporaryDirectory(prefix="ipbot-bench-") as folder:
            bots = []
            for number in range(args.processes):
                home = Path(folder) / f"bot{number}"
                home.mkdir()
                profile = args.profile if number == 0 else None
                options = BotOptions(
                    url, args.mode == "webhook", enforced, profile, floor=args.bot == "floor"
                )
                bots.append(BotProcess(emulator, options, home))
            try:
                for bot in bots:
                    await bot.start()
                if len(bots) > 1:
                    # A load balancer in front of the processes, as Telegram would reach them.
                    emulator.balanced = [bot.webhook for bot in bots]
                await warm_up(emulator, args.warmup)
                # The emulator's and load generator's own collector pauses are not the bot's.
                heap.settle()
                load = Load(emulator, chats=args.chats)
                before = emulator.sent_count
                cpu_before, clock_before = _cpu(bots), time.process_time()
                server_before, (busy_before, all_before) = _server_cpu(args), machine_cpu()
                if args.rate:
                    started = await open_loop(load, args.updates, args.rate)
                else:
                    started = await closed_loop(
                        load, args.updates, args.concurrency, within=args.timeout
                    )
                await emulator.settle(before + args.updates, within=args.timeout)
                bot_cpu = _cpu(bots) - cpu_before
                driver_cpu = time.process_time() - clock_before
                server_cpu = _server_cpu(args) - server_before
                busy_after, all_after = machine_cpu()
                busy, overall = busy_after - busy_before, all_after - all_before
                rss = sum(bot.rss_mb() for bot in bots)
            finally:
                statuses = [await bot.stop() for bot in bots if bot.started]
    await emulator.stop()
    errors = [line for bot in bots for line in bot.errors]

    latencies, unanswered, last = load.collect()
    elapsed = max(last - started, 1e-9)
    handled = len(latencies)
    p50, p90, p99 = (percentile(latencies, f) * 1000 for f in (0.5, 0.9, 0.99))
    worst = max(latencies, default=0.0) * 1000
    offered = f"{args.rate:g}/s (open loop)" if args.rate else f"closed loop x{args.concurrency}"
    rows = [
        (
            "bot / database / mode / limits / processes",
            f"{args.bot} / {args.database} / {args.mode} / {args.limits} / {args.processes}",
        ),
        ("load", f"{args.updates} questions, {args.chats} chats, {offered}"),
        ("sent per second", args.updates / max(load.last_sent - started, 1e-9)),
        ("replies received", handled),
        ("unanswered", unanswered),
        ("elapsed (first sent to last reply), s", elapsed),
        ("handled per second", handled / elapsed),
        ("latency p50, ms", p50),
        ("latency p90, ms", p90),
        ("latency p99, ms", p99),
        ("latency max, ms", worst),
        ("bot CPU, ms per update", bot_cpu / max(handled, 1) * 1000),
        ("bot CPU, % of one core (all processes)", bot_cpu / elapsed * 100),
        ("load generator CPU, % of one core", driver_cpu / elapsed * 100),
        (
            "database server CPU, ms per update",
            server_cpu / max(handled, 1) * 1000 if args.database == "postgresql" else "in the bot",
        ),
        ("machine CPU busy, % of all cores", busy / max(overall, 1e-9) * 100),
        ("bot RSS at end, MiB", rss),
        ("429 answers from the emulator", emulator.limit_hits),
        ("bot ERROR log records", len(errors)),
        ("bot exit status", " ".join(map(str, statuses))),
    ]
    print(table(("figure", "value"), rows))
    for line in errors[:5]:
        print("  " + line)
    return figures(
        bot=args.bot,
        database=args.database,
        mode=args.mode,
        limits=args.limits,
        processes=args.processes,
        updates=args.updates,
        rate=args.rate or "closed",
        concurrency=args.concurrency if not args.rate else "-",
        handled_per_s=handled / elapsed,
        p50_ms=p50,
        p99_ms=p99,
        unanswered=unanswered,
        errors=len(errors),
        bot_cpu_ms=bot_cpu / max(handled, 1) * 1000,
    )


def _cpu(bots: list[BotProcess]) -> float:
    return sum(bot.cpu_seconds() for bot in bots)


def _server_cpu(args: argparse.Namespace) -> float:
    # SQLite works inside the bot process: its time is the bot's.
    return cpu_seconds_of("postgres") if args.database == "postgresql" else 0.0


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_database_options(parser)
    add_bot_options(parser)
    parser.add_argument("--updates", type=whole(1), default=3000, help="questions to send")
    parser.add_argument("--rate", type=positive, help="send this many a second (open loop)")
    parser.add_argument(
        "--concurrency", type=whole(1), default=32, help="talents waiting at once (closed loop)"
    )
    parser.add_argument("--chats", type=whole(1), default=1000, help="distinct talents")
    parser.add_argument("--warmup", type=whole(0), default=200, help="questions before measuring")
    parser.add_argument(
        "--timeout", type=positive, default=60, help="seconds to wait for the last replies"
    )
    parser.add_argument(
        "--processes",
        type=whole(1),
        default=1,
        help="bot processes behind a load balancer (webhook mode, PostgreSQL)",
    )
    parser.add_argument(
        "--bot",
        choices=("ipbot", "floor"),
        default="ipbot",
        help="ipbot: `ipbot run`; floor: the same PTB application answering every question "
        "with a fixed reply, nothing stored or matched (bench/floor_bot.py)",
    )
    parser.add_argument(
        "--profile", type=Path, help="run the (first) bot under cProfile, stats to this file"
    )
    args = parser.parse_args(argv)
    if args.concurrency > args.chats:
        parser.error("--concurrency must not exceed --chats (a chat waits for one reply at once)")
    if args.profile and args.bot == "floor":
        parser.error("--profile profiles `ipbot run`: leave out --bot floor")
    if args.processes > 1 and args.mode != "webhook":
        parser.error("only one process may poll: use --mode webhook with --processes")
    return args


def main() -> None:
    """Run the benchmark and print its figures."""
    print(asyncio.run(run(parse())))


if __name__ == "__main__":
    main()
