"""The store's share of a question: the transaction the bot runs for one talent's question, as
built and through thinner layers, on PostgreSQL.

A question costs three statements in one transaction: the talent (locked), the inbound (which
returns their open ticket), and the reply with the decision. This runs that transaction
`--turns` times in each of three ways, in turn, `--rounds` times, and reports this process's
lowest CPU time per transaction for each:

- store: the store's own calls, as the talent handler makes them (on a SQLAlchemy
  connection, their statements sent straight through asyncpg: `bot/store/driver.py`; a
  question needs no ORM session);
- core: the store's statements on a SQLAlchemy connection, without the session (the decision
  and the reply as two, as on SQLite: given the reply's columns, SQLAlchemy would set them in
  the decision's UPDATE too);
- asyncpg: the same statements, compiled by SQLAlchemy, sent through asyncpg directly.

    .venv/bin/python bench/turn.py --turns 2000

The last line: `turns=… store_cpu_ms=… core_cpu_ms=… asyncpg_cpu_ms=… stored=yes`.
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
import time
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.arguments import whole
from bench.database import scratch_database
from bench.report import figures, table
from bot.conversation import Inbound, OutMessage
from bot.store import (
    _ACCEPTED,
    _DECIDED,
    _DECISION,
    _KNOWN_USER,
    _NEW_MESSAGE,
    _REPLIES_AND_DECISION,
    Store,
    new_message,
    outgoing,
)
from bot.store.models import Message

# Every way runs the store's own statements (`_KNOWN_USER` …), so that they run the same SQL.
CHANNEL = "telegram"
TALENT = "4242"
QUESTION = "How much does a patent application cost?"
ANSWER = OutMessage(
    text="The official fees for an invention patent application … " * 8, language="en"
)
ENTRY_ID = "patent-fees"
DECISION = {"action": "answer", "entry_id": ENTRY_ID, "score": 0.82, "kb_version": "1"}
WAYS = ("store", "core", "asyncpg")

Turn = Callable[[str], Awaitable[None]]


def by_store(store: Store) -> Turn:
    """A question's transaction through the store, as `handlers.talent.handle` makes it."""

    async def turn(key: str) -> None:
        async with store.transaction() as tx:
            user = await tx.user(CHANNEL, TALENT, "en")
            inbound = Inbound(CHANNEL, TALENT, key, text=QUESTION)
            message = await tx.accept(inbound, user, QUESTION, "en")
            await tx.ticket_of(user)
            for field, value in DECISION.items():
                setattr(message, field, value)
            message.options = [ENTRY_ID]
            await tx.record_replies(message, [ANSWER], action="answer", entry_id=ENTRY_ID)

    return turn


def inbound_row(user_id: int, key: str) -> dict[str, Any]:
    """The inbound's columns, as `Transaction.accept` writes them."""
    return new_message(
        user_id=user_id,
        channel=CHANNEL,
        channel_key=key,
        direction="in",
        text=QUESTION,
        button=None,
        attachment=None,
        language="en",
    )


def reply_row(user_id: int, inbound_id: int) -> dict[str, Any]:
    """The reply's columns, as `Transaction.record_replies` writes them."""
    return outgoing(
        user_id,
        CHANNEL,
        ANSWER,
        reply_to=inbound_id,
        action="answer",
        entry_id=ENTRY_ID,
    )


def decided(inbound_id: int) -> dict[str, Any]:
    """The decision's parameters, as `Transaction.record_replies` writes them."""
    values = {"button": None, "language": "en", "options": [ENTRY_ID], **DECISION}
    return {"inbound_id": inbound_id} | {f"decided_{field}": values[field] for field in _DECISION}


def by_core(engine: AsyncEngine) -> Turn:
    """The same statements on a SQLAlchemy connection, with no ORM session."""

    async def turn(key: str) -> None:
        async with engine.begin() as connection:
            user = await connection.execute(
                _KNOWN_USER.statement, {"channel": CHANNEL, "external_id": TALENT}
            )
            user_id = user.one().id
            kept = await connection.execute(_ACCEPTED.statement, inbound_row(user_id, key))
            inbound_id = kept.one().id
            await connection.execute(_DECIDED.statement, decided(inbound_id))
            await connection.execute(_NEW_MESSAGE.statement, [reply_row(user_id, inbound_id)])

    return turn


def by_asyncpg(engine: AsyncEngine) -> Turn:
    """The same statements through asyncpg, compiled as the store compiles its writes for
    it, on a connection from the same pool."""
    known_user = _KNOWN_USER._compiled_for(engine.dialect)
    accepted = _ACCEPTED._compiled_for(engine.dialect)
    replies = _REPLIES_AND_DECISION._compiled_for(engine.dialect)

    async def turn(key: str) -> None:
        async with engine.connect() as pooled:
            connection = (await pooled.get_raw_connection()).driver_connection
            assert connection is not None  # a connection checked out of the pool is open
            async with connection.transaction():
                user = await connection.fetchrow(
                    known_user.sql,
                    *known_user.arguments({"channel": CHANNEL, "external_id": TALENT}),
                )
                user_id = user["id"]
                inbound_id = await connection.fetchval(
                    accepted.sql, *accepted.arguments(inbound_row(user_id, key))
                )
                await connection.execute(
                    replies.sql,
                    *replies.arguments(reply_row(user_id, inbound_id) | decided(inbound_id)),
                )

    return turn


async def cpu_per_turn(turn: Turn, keys: itertools.count, turns: int) -> float:
    """This process's CPU time per transaction, in ms."""
    started = time.process_time()
    for _ in range(turns):
        await turn(f"bench-{next(keys)}")
    return (time.process_time() - started) / turns * 1000


async def run(args: argparse.Namespace) -> str:
    """Time the three ways as `args` say; the closing `key=value` line."""
    async with scratch_database("postgresql", args.postgres_url) as url:
        store = Store.open(url)
        try:
            async with store.transaction() as tx:
                await tx.user(CHANNEL, TALENT, "en")
            turns = {
                "store": by_store(store),
                "core": by_core(store.engine),
                "asyncpg": by_asyncpg(store.engine),
            }
            keys = itertools.count()
            for turn in turns.values():
                await cpu_per_turn(turn, keys, min(args.turns, 100))
            lowest = dict.fromkeys(WAYS, float("inf"))
            for _ in range(args.rounds):
                for way in WAYS:
                    lowest[way] = min(lowest[way], await cpu_per_turn(turns[way], keys, args.turns))
            done = next(keys)
            async with store.transaction() as tx:
                stored = await tx.session.scalar(select(func.count()).select_from(Message))
        finally:
            await store.close()

    complete = stored == 2 * done
    print(
        f"PostgreSQL: a question's transaction (3 statements), {args.turns} at a time in each "
        f"way, {args.rounds} rounds in turn; this process's lowest CPU time per transaction"
    )
    print(
        table(
            ("way", "CPU ms", "against the store"),
            [(way, lowest[way], f"{lowest[way] / lowest['store']:.0%}") for way in WAYS],
        )
    )
    print(
        "check: "
        + (
            "every transaction stored its inbound and its reply"
            if complete
            else f"{stored} messages stored for {done} transactions, not {2 * done}"
        )
    )
    return figures(
        turns=args.turns,
        store_cpu_ms=lowest["store"],
        core_cpu_ms=lowest["core"],
        asyncpg_cpu_ms=lowest["asyncpg"],
        stored="yes" if complete else "no",
    )


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--postgres-url", help="server for a fresh database (default: TEST_POSTGRES_URL)"
    )
    parser.add_argument("--turns", type=whole(1), default=2000, help="transactions a round")
    parser.add_argument("--rounds", type=whole(1), default=3, help="rounds of the three ways")
    return parser.parse_args(argv)


def main() -> None:
    """Run the benchmark and print its figures."""
    print(asyncio.run(run(parse())))


if __name__ == "__main__":
    main()
