"""A database of its own for one benchmark run: a SQLite file, or a PostgreSQL database that is
created for the run and dropped after it."""

import os
import tempfile
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

from bot.store import Store


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
    server = make_url(postgres_server(postgres_url))
    name = f"ipbot_bench_{uuid.uuid4().hex[:12]}"
    admin_dsn = server.set(
        drivername="postgresql", database=server.database or "postgres"
    ).render_as_string(hide_password=False)
    admin = await asyncpg.connect(admin_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        url = server.set(database=name).render_as_string(hide_password=False)
        await _migrate(url)
        yield url
    finally:
        admin = await asyncpg.connect(admin_dsn)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


async def _migrate(url: str) -> None:
    store = Store.open(url)
    try:
        await store.upgrade()
    finally:
        await store.close()
