"""A database of its own for one benchmark run: a SQLite file, or a PostgreSQL database that is
created for the run and dropped after it."""

import argparse
import os
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from bot.store import Store
from tests import postgres


def add_database_options(parser: argparse.ArgumentParser) -> None:
    """`--database` and `--postgres-url`, as every benchmark takes them."""
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument(
        "--postgres-url", help="server for a fresh database (default: TEST_POSTGRES_URL)"
    )


def postgres_server(url: str | None) -> str:
    """The PostgreSQL server to use: `url`, else TEST_POSTGRES_URL; exits if neither is set."""
    chosen = url or os.environ.get("TEST_POSTGRES_URL")
    if not chosen:
        raise SystemExit(
            "PostgreSQL: pass --postgres-url or set TEST_POSTGRES_URL "
            "(postgresql+asyncpg://user@host:port/database)"
        )
    return chosen


@asynccontextmanager
async def scratch_database(kind: str, postgres_url: str | None = None) -> AsyncIterator[str]:
    """The URL of an empty database, migrated to the newest schema; removed afterwards."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory(prefix="ipbot-bench-") as folder:
            url = f"sqlite+aiosqlite:///{Path(folder) / 'bench.sqlite3'}"
            await _migrate(url)
            yield url
        return
    async with postgres.scratch_database(postgres_server(postgres_url), "ipbot_bench") as url:
        await _migrate(url)
        yield url


async def _migrate(url: str) -> None:
    store = Store.open(url)
    try:
        await store.upgrade()
    finally:
        await store.close()
