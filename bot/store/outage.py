"""Riding out a database outage: what counts as one, and running work again after it.

A connection can be lost in use (the server restarted, an administrator ended the session) or
not be made at all (the server is down, the database refuses connections); a SQLite file can
stay locked by another connection longer than the bot waits for it. The store turns these
errors into `StoreUnavailable`; any other error is the work's own and is not retried.

The pool tests a PostgreSQL connection before lending it (see `Store.open`), so one lost
while idle is replaced unnoticed. One lost inside a transaction rolls that transaction back, and
`run` does the whole unit of work again, after a pause that doubles each time (with jitter, so
a burst of units does not come back in step) — but only while no transaction of the unit has
committed a write: work that is partly committed is never repeated. A commit whose answer was
lost with the connection counts as not committed, so a unit's first write must be one that is
refused the second time (an inbound's channel key is).

When the tries run out the database is taken to be down: that is logged once, and until a
transaction goes through again work gets a single try, so users are told at once.
"""

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import event
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import ORMExecuteState, Session, sessionmaker

T = TypeVar("T")
# SQLite's result codes for "another connection holds the lock".
_SQLITE_BUSY, _SQLITE_LOCKED = 5, 6
_log = logging.getLogger(__name__)


class StoreUnavailable(Exception):
    """The database cannot be reached (or, for SQLite, stays locked): try again later."""


@dataclass(frozen=True)
class Backoff:
    """How many times a unit of work is tried, and the pauses between tries: doubling from
    `first` up to `longest` seconds, each one jittered between half and one and a half times."""

    attempts: int = 5
    first: float = 0.25
    longest: float = 4.0

    def pause(self, failed: int) -> float:
        """The pause after the `failed`-th failed try."""
        return min(self.longest, self.first * 2 ** (failed - 1)) * random.uniform(0.5, 1.5)


@dataclass
class _Attempt:
    wrote: bool = False
    """Whether a transaction of this attempt has committed a write."""


_attempt: ContextVar[_Attempt | None] = ContextVar("store_attempt", default=None)


class Availability:
    """Whether the database was last found out of reach. An outage is logged once, when work
    first gives up on it, and its end once; meanwhile work tries the database once, without
    pausing, so users hear at once that it is down."""

    def __init__(self) -> None:
        self.down_since: float | None = None

    def lost(self, error: StoreUnavailable) -> None:
        """The database is out of reach (logged if that is news)."""
        if self.down_since is None:
            self.down_since = time.monotonic()
            _log.warning(
                "The database is unavailable (%s): users are asked to try again later until it "
                "is back",
                error,
            )

    def reached(self) -> None:
        """A transaction went through (the end of an outage is logged)."""
        if self.down_since is not None:
            _log.warning(
                "The database is reachable again, after %.0f s", time.monotonic() - self.down_since
            )
            self.down_since = None


async def run(work: Callable[[], Awaitable[T]], backoff: Backoff, availability: Availability) -> T:
    """`work()`, tried again after `StoreUnavailable` while none of its writes is committed;
    the last `StoreUnavailable` is raised when the tries run out."""
    attempts = 1 if availability.down_since is not None else backoff.attempts
    failed = 0
    while True:
        attempt = _Attempt()
        token = _attempt.set(attempt)
        try:
            return await work()
        except StoreUnavailable as error:
            failed += 1
            if attempt.wrote:
                raise
            if failed >= attempts:
                availability.lost(error)
                raise
            pause = backoff.pause(failed)
            _log.info(
                "Lost the database (%s); trying again in %.1f s (try %d of %d)",
                error,
                pause,
                failed + 1,
                attempts,
            )
        finally:
            _attempt.reset(token)
        await asyncio.sleep(pause)


def committed(wrote: bool) -> None:
    """Note that a transaction of the running unit of work committed: if it wrote, the unit
    must not be repeated."""
    attempt = _attempt.get()
    if attempt is not None and wrote:
        attempt.wrote = True


def lost(error: BaseException) -> bool:
    """Whether `error` means the database is out of reach, rather than that the work is wrong."""
    if isinstance(error, DBAPIError):
        code = (getattr(error.orig, "sqlite_errorcode", None) or 0) & 0xFF
        return error.connection_invalidated or code in (_SQLITE_BUSY, _SQLITE_LOCKED)
    # Some drivers raise these as they are when the server cannot be reached at all.
    return isinstance(error, OSError)


def summary(error: BaseException) -> str:
    """The driver's own one-line account of `error`, without SQLAlchemy's SQL and links."""
    cause = error.orig if isinstance(error, DBAPIError) and error.orig else error
    lines = str(cause).strip().splitlines()
    return lines[0] if lines else type(cause).__name__


def sessions_noting_writes() -> sessionmaker[Session]:
    """A session factory whose sessions set `info["wrote"]` once they change anything."""
    factory: sessionmaker[Session] = sessionmaker()

    @event.listens_for(factory, "do_orm_execute")
    def _on_execute(state: ORMExecuteState) -> None:
        if not state.is_select:
            state.session.info["wrote"] = True

    @event.listens_for(factory, "after_flush")
    def _on_flush(session: Session, _context: Any) -> None:
        session.info["wrote"] = True

    return factory


def count_failed_connects_as_lost(engine: AsyncEngine) -> None:
    """Mark an error raised while connecting as a lost connection, as one raised in use is."""

    @event.listens_for(engine.sync_engine, "handle_error")
    def _on_error(context: ExceptionContext) -> None:
        # No connection yet: connecting failed (the server is down, or the database refuses
        # connections). Drivers call only some of these a disconnect; to the bot each is an
        # outage.
        if context.connection is None:
            context.is_disconnect = True
