"""The expert queue under load: tickets created, claimed and closed by many experts at once.

Talents open tickets as the talent handler does (`Transaction.request_expert`, one
transaction each); `--experts` experts look at the queue, claim a ticket from it (several
may go for the same one: one wins), and close what they hold, each through `Tickets` as the
expert handler does. Reported: each operation's rate and latency; at the end, every ticket
must have been claimed exactly once and closed exactly once.

    .venv/bin/python bench/tickets.py --database postgresql --tickets 3000 --experts 50
"""

import sys
from pathlib import Path

# Run as a script, the folder on the path is bench/: the repository root is wanted, for
# `bench` and `tests` as packages.
if __name__ == "__main__":
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

import argparse
import asyncio
import random
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable
from typing import TypeVar

from sqlalchemy import func, select

from bench.arguments import whole
from bench.database import add_database_options, scratch_database
from bench.harness import questions
from bench.report import figures, percentile, table
from bot.config import Settings
from bot.store import Store
from bot.store.models import AuditEvent, Ticket, User
from bot.store.tickets import Tickets

T = TypeVar("T")
CHANNEL = "telegram"


class Timings:
    """How long each operation took, and what went wrong."""

    def __init__(self) -> None:
        self.seconds: dict[str, list[float]] = defaultdict(list)
        self.failures: Counter[str] = Counter()

    async def time(self, operation: str, work: Awaitable[T]) -> T | None:
        """`work`, timed under `operation`; None (and a failure noted) if it raised."""
        started = time.monotonic()
        try:
            result = await work
        except Exception as error:
            self.failures[f"{operation}: {type(error).__name__}"] += 1
            return None
        self.seconds[operation].append(time.monotonic() - started)
        return result


class Desk:
    """Talents opening tickets and experts working the queue, on one store."""

    def __init__(self, store: Store, tickets: int, limit: int) -> None:
        self.store = store
        self.tickets = Tickets(store)
        self.limit = limit
        self.timings = Timings()
        self.outcomes: Counter[str] = Counter()
        self.opening = True
        self.questions = [*questions()["en"], *questions()["zh"]]
        self._numbers = iter(range(tickets))

    async def open_ticket(self, number: int) -> int | None:
        """Talent `number` asks for an expert: their ticket's id."""

        async def request() -> int:
            async with self.store.transaction() as tx:
                talent = await tx.user(CHANNEL, str(500_000 + number), "en")
                question = self.questions[number % len(self.questions)]
                ticket, _, created = await tx.request_expert(talent, question, "en", None)
                if created:
                    await tx.audit(talent, "ticket-opened", f"T-{ticket.id}", topic=None)
                return ticket.id

        return await self.timings.time("create", request())

    async def talents(self, count: int) -> None:
        """`count` talents opening tickets at once, until enough are open."""

        async def talent() -> None:
            for number in self._numbers:
                await self.open_ticket(number)

        await asyncio.gather(*(talent() for _ in range(count)))
        self.opening = False

    async def expert(self, expert: User, seed: int) -> None:
        """Claim from the queue while under the limit, else close the oldest ticket held."""
        chooser = random.Random(seed)
        held: list[int] = []
        while True:
            waiting = [] if len(held) >= self.limit else await self._waiting()
            if waiting:
                # Experts answer the announcements they see, not always the first one.
                ticket_id = chooser.choice(waiting[:10])
                outcome = await self.timings.time(
                    "claim", self.tickets.claim(ticket_id, expert, self.limit)
                )
                self.outcomes[outcome or "failed"] += 1
                if outcome == "claimed":
                    held.append(ticket_id)
            elif held:
                # One that fails to close stays open: the check at the end reports it.
                await self.timings.time(
                    "close", self.tickets.close(held.pop(0), expert, "answered")
                )
            elif self.opening:
                await asyncio.sleep(0.01)
            else:
                return

    async def _waiting(self) -> list[int]:
        waiting = await self.timings.time("queue", self.tickets.waiting(limit=20))
        return [ticket.id for ticket in waiting or []]


async def check(store: Store, wanted: int) -> list[str]:
    """What is wrong with the queue after the run: every ticket claimed once, closed once."""
    problems = []
    async with store.transaction() as tx:
        session = tx.session
        count = await session.scalar(select(func.count()).select_from(Ticket))
        if count != wanted:
            problems.append(f"{count} tickets, not {wanted}")
        not_closed = await session.scalar(
            select(func.count()).select_from(Ticket).where(Ticket.status != "closed")
        )
        if not_closed:
            problems.append(f"{not_closed} tickets not closed")
        no_expert = await session.scalar(
            select(func.count()).select_from(Ticket).where(Ticket.expert_id.is_(None))
        )
        if no_expert:
            problems.append(f"{no_expert} closed tickets without an expert")
        for action in ("claim", "close"):
            rows = await session.execute(
                select(AuditEvent.subject, func.count())
                .where(AuditEvent.action == action)
                .group_by(AuditEvent.subject)
            )
            counts = dict(rows.all())
            if len(counts) != wanted or set(counts.values()) != {1}:
                twice = sum(1 for n in counts.values() if n > 1)
                problems.append(f"{action}: {len(counts)} tickets recorded, {twice} more than once")
    return problems


async def run(args: argparse.Namespace) -> str:
    """Work the queue as `args` say; the closing `key=value` line."""
    async with scratch_database(args.database, args.postgres_url) as url:
        store = Store.open(url, pool_size=args.pool_size)
        try:
            desk = Desk(store, args.tickets, args.limit)
            experts = [
                await desk.tickets.enrol(CHANNEL, str(700_000 + number), f"Expert{number}")
                for number in range(args.experts)
            ]
            started, cpu = time.monotonic(), time.process_time()
            await asyncio.gather(
                desk.talents(args.talents),
                *(desk.expert(expert, seed) for seed, expert in enumerate(experts)),
            )
            elapsed = time.monotonic() - started
            cpu = time.process_time() - cpu
            problems = await check(store, args.tickets)
        finally:
            await store.close()

    timings = desk.timings
    rows = []
    for operation in ("create", "queue", "claim", "close"):
        seconds = timings.seconds[operation]
        rows.append(
            (
                operation,
                len(seconds),
                len(seconds) / elapsed,
                percentile(seconds, 0.5) * 1000,
                percentile(seconds, 0.99) * 1000,
                max(seconds, default=0.0) * 1000,
            )
        )
    print(
        f"{args.database}: {args.tickets} tickets, {args.talents} talents opening them, "
        f"{args.experts} experts (at most {args.limit} tickets each), "
        f"{args.pool_size} connections kept open (PostgreSQL), {elapsed:.1f} s, "
        f"this process busy {cpu / elapsed:.0%} of one core"
    )
    print(table(("operation", "count", "per second", "p50 ms", "p99 ms", "max ms"), rows))
    print("claim outcomes: " + ", ".join(f"{k} {v}" for k, v in sorted(desk.outcomes.items())))
    for failure, count in sorted(timings.failures.items()):
        print(f"failed: {failure} x{count}")
    print("check: " + ("every ticket claimed once and closed once" if not problems else ""))
    for problem in problems:
        print(f"  {problem}")
    claims = timings.seconds["claim"]
    return figures(
        database=args.database,
        tickets=args.tickets,
        experts=args.experts,
        pool_size=args.pool_size if args.database == "postgresql" else "-",
        created_per_s=len(timings.seconds["create"]) / elapsed,
        claimed_per_s=desk.outcomes["claimed"] / elapsed,
        closed_per_s=len(timings.seconds["close"]) / elapsed,
        create_p99_ms=percentile(timings.seconds["create"], 0.99) * 1000,
        claim_p50_ms=percentile(claims, 0.5) * 1000,
        claim_p99_ms=percentile(claims, 0.99) * 1000,
        close_p99_ms=percentile(timings.seconds["close"], 0.99) * 1000,
        claims_lost=desk.outcomes["taken"],
        failures=sum(timings.failures.values()),
        correct="yes" if not problems else "no",
    )


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_database_options(parser)
    parser.add_argument("--tickets", type=whole(1), default=2000, help="tickets to open and close")
    parser.add_argument("--experts", type=whole(1), default=50, help="experts working at once")
    parser.add_argument("--talents", type=whole(1), default=10, help="talents opening at once")
    parser.add_argument("--limit", type=whole(1), default=3, help="tickets an expert may hold")
    parser.add_argument(
        "--pool-size",
        type=whole(1),
        default=Settings.model_fields["database_pool_size"].default,
        help="PostgreSQL connections kept open (default: DATABASE_POOL_SIZE's default)",
    )
    return parser.parse_args(argv)


def main() -> None:
    """Run the benchmark and print its figures."""
    print(asyncio.run(run(parse())))


if __name__ == "__main__":
    main()
