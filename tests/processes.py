"""`ipbot run` as a real process against the Bot API emulator, for the tests about processes."""

import asyncio
import os
import sys
from pathlib import Path

from tests.botapi import BotApiEmulator


async def start_bot(
    emulator: BotApiEmulator,
    database_url: str,
    cwd: Path,
    stderr: int = asyncio.subprocess.DEVNULL,
    **settings: str,
) -> asyncio.subprocess.Process:
    """`ipbot run` against the emulator, with `settings` (by their variable names) on top; its
    standard error goes to `stderr` (a pipe to read it)."""
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("TELEGRAM_", "DATABASE_", "SLA_", "KNOWLEDGE_"))
    }
    if not {"WEB_PORT", "TELEGRAM_WEBHOOK_PORT"} & settings.keys():
        # Each process's web server on a port of its own, so that tests run side by side.
        environment["WEB_PORT"] = "0"
    environment.update(
        TELEGRAM_BOT_TOKEN=emulator.token,
        TELEGRAM_API_BASE_URL=emulator.base_url,
        DATABASE_URL=database_url,
        **settings,
    )
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.cli", "run", cwd=cwd, env=environment,
        stdout=asyncio.subprocess.DEVNULL, stderr=stderr,
    )  # fmt: skip
