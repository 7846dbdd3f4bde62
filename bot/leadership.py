"""Which of the bot's processes runs the scheduled jobs.

Several processes may serve one bot (webhook mode, one database): each answers the updates it
is given, but the jobs that act for the whole bot (the service-level checks, the staleness
report, the retention purge, telling staff about a knowledge reload) run in one process only,
the one holding a lock. On PostgreSQL that is a session-level advisory lock on a connection
kept open for it; on SQLite, an exclusive lock on a file beside the database. Either goes with
its holder (PostgreSQL ends a dead process's session, the kernel closes its files), and another
process takes it at its next try.
"""

import asyncio
import fcntl
import logging
import os
from pathlib import Path
from typing import IO, Protocol

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bot.store import Store

# Any fixed number will do: every process of the bot asks for the same lock in its database.
JOBS_LOCK_KEY = 7_316_202_901
# How often a process that does not run the jobs tries to take them over (and the one that
# does checks it still holds the lock).
RETRY_SECONDS = 5.0
_log = logging.getLogger(__name__)


class _Lock(Protocol):
    async def hold(self) -> bool: ...

    async def release(self) -> None: ...


class Leadership:
    """This process's claim on the scheduled jobs."""

    def __init__(self, store: Store) -> None:
        self._lock = _lock_for(store.engine)
        self._mutex = asyncio.Lock()
        self.leading = False

    async def contend(self) -> bool:
        """Take the lock if it is free, or check it is still held; whether this process leads."""
        async with self._mutex:
            try:
                leading = await self._lock.hold()
            except (DBAPIError, OSError) as error:
                _log.warning("Cannot hold the scheduled jobs' lock, will retry: %s", error)
                await self._lock.release()
                leading = False
            if leading and not self.leading:
                _log.info("This process (pid %d) now runs the scheduled jobs", os.getpid())
            elif self.leading and not leading:
                _log.warning("This process (pid %d) no longer runs the scheduled jobs", os.getpid())
            self.leading = leading
            return leading

    async def step_down(self) -> None:
        """Let go of the lock, so another process takes the jobs at once."""
        async with self._mutex:
            await self._lock.release()
            self.leading = False


def _lock_for(engine: AsyncEngine) -> _Lock:
    if engine.dialect.name == "postgresql":
        return _AdvisoryLock(engine)
    database = engine.url.database
    if not database or database == ":memory:":
        return _OnlyProcess()  # a database in memory is this process's alone
    return _FileLock(Path(f"{database}.jobs.lock"))


class _AdvisoryLock:
    """A session-level advisory lock: held while its connection lives."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._connection: AsyncConnection | None = None

    async def hold(self) -> bool:
        if self._connection is not None:
            # A broken connection raises here: the session, and with it the lock, is gone.
            await self._connection.execute(text("SELECT 1"))
            return True
        connection = await self._engine.connect()
        # Autocommit, so the connection never sits idle inside a transaction.
        await connection.execution_options(isolation_level="AUTOCOMMIT")
        try:
            taken = await connection.scalar(
                text("SELECT pg_try_advisory_lock(:key)"), {"key": JOBS_LOCK_KEY}
            )
        except BaseException:
            await connection.close()
            raise
        if not taken:
            await connection.close()
            return False
        self._connection = connection
        return True

    async def release(self) -> None:
        if self._connection is None:
            return
        connection, self._connection = self._connection, None
        # Closed rather than returned to the pool: ending the session releases the lock.
        await connection.invalidate()
        await connection.close()


class _FileLock:
    """An exclusive `flock` on a file: held while the file is open."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._file: IO[bytes] | None = None

    async def hold(self) -> bool:
        if self._file is None:
            self._file = _try_flock(self._path)
        return self._file is not None

    async def release(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def _try_flock(path: Path) -> IO[bytes] | None:
    """The file, opened and locked; None if another process holds the lock."""
    file = path.open("ab")
    try:
        fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        file.close()
        return None
    return file


class _OnlyProcess:
    """No other process can share the database: this one always leads."""

    async def hold(self) -> bool:
        return True

    async def release(self) -> None:
        """Nothing is held."""
