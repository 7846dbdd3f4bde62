"""Waiting at start-up for what the bot needs: a database server or a network that starts with
the machine may come up after the bot."""

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from bot.store.outage import Backoff, summary

# Pauses between tries: from one second, doubling, to ten.
PAUSES = Backoff(first=1.0, longest=10.0)
_log = logging.getLogger(__name__)


async def reach(
    what: str,
    connect: Callable[[], Awaitable[object]],
    out_of_reach: Callable[[Exception], bool],
    patience: float,
    stop: asyncio.Event | None = None,
) -> bool:
    """`connect()`, tried again while it fails because `what` is `out_of_reach`, for up to
    `patience` seconds; then its last error is raised. False if `stop` is set meanwhile."""
    give_up = time.monotonic() + patience
    failed = 0
    while True:
        try:
            await connect()
            return True
        except Exception as error:
            if not out_of_reach(error):
                raise
            failed += 1
            pause = PAUSES.pause(failed)
            if time.monotonic() + pause > give_up:
                raise
            _log.warning(
                "%s is not reachable yet (%s); trying again in %.0f s", what, summary(error), pause
            )
        if stop is None:
            await asyncio.sleep(pause)
            continue
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), pause)
        if stop.is_set():
            return False
