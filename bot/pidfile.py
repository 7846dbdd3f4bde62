"""The running bot's pid file, locked while the bot runs: a file left by a bot that died is
never taken for a running one (its number may belong to another program by then)."""

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class PidFileError(Exception):
    """The pid file cannot be written: its folder is missing or not writable."""


@contextmanager
def held(path: Path) -> Iterator[bool]:
    """This process's pid in `path`, locked until the block ends; gives False (and leaves the
    file alone) if another process of the bot holds it already."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = path.open("a+")
    except OSError as error:
        raise PidFileError(f"cannot write PID_FILE ({path}): {error.strerror or error}") from None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        handle.truncate(0)
        handle.write(str(os.getpid()))
        handle.flush()
        try:
            yield True
        finally:
            path.unlink(missing_ok=True)


def running(path: Path) -> int | None:
    """The pid of the bot holding `path`; None if no running bot holds it."""
    try:
        handle = path.open()
    except OSError:
        return None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = handle.read().strip()
            return int(text) if text.isdecimal() else None
        return None
