"""PostgreSQL databases of their own, for tests and benchmarks: made on a server for one run
and dropped afterwards, and statements run as the server's administrator."""

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from sqlalchemy.engine import make_url


async def as_admin(server_url: str, statement: str, *arguments: object) -> None:
    """Run one statement on the server of `server_url` (a SQLAlchemy URL), in its own session."""
    server = make_url(server_url)
    dsn = server.set(drivername="postgresql", database=server.database or "postgres")
    admin = await asyncpg.connect(dsn.render_as_string(hide_password=False))
    try:
        await admin.execute(statement, *arguments)
    finally:
        await admin.close()


@asynccontextmanager
async def scratch_database(server_url: str, prefix: str) -> AsyncIterator[str]:
    """The SQLAlchemy URL of a new, empty database on the server, dropped afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    await as_admin(server_url, f'CREATE DATABASE "{name}"')
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        await as_admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
