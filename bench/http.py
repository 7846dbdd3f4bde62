"""The bot's cost of one Bot API request: PTB's own httpx backend against the bot's aiohttp one.

A PTB `Bot` sends `sendMessage` requests (an answer's length, with its buttons) to the Bot API
emulator, many at once; the emulator runs in a process of its own, so the CPU time counted is
the sending side's alone. Each backend is measured `--rounds` times, in turn, and its lowest
CPU time per request is reported.

    .venv/bin/python bench/http.py --requests 3000 --concurrency 64

The last line: `requests=… concurrency=… httpx_cpu_ms=… aiohttp_cpu_ms=… ratio=…`.
"""

import sys
from pathlib import Path

# Run as a script, the folder on the path is bench/: the repository root is wanted, for
# `bench` and `tests` as packages.
if __name__ == "__main__":
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

import argparse
import asyncio
import multiprocessing
import time
from collections.abc import Callable
from multiprocessing.connection import Connection

from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup
from telegram.request import BaseRequest, HTTPXRequest

from bench.arguments import whole
from bench.harness import telegram_limits
from bench.report import figures, table
from bot.channels.telegram.http import AiohttpRequest
from tests.botapi import BotApiEmulator

CHAT = 1001
TEXT = "A foreign national may sit the patent agent examination. " * 12
KEYBOARD = InlineKeyboardMarkup(
    [[InlineKeyboardButton("Helpful", callback_data="1:y:123456")]]
    + [[InlineKeyboardButton("Related question", callback_data="1:e:patent-agent")]] * 3
)
BACKENDS: dict[str, Callable[[], BaseRequest]] = {"httpx": HTTPXRequest, "aiohttp": AiohttpRequest}


def _serve(reply: Connection) -> None:
    """The emulator, in this (child) process until it is killed."""

    async def serve() -> None:
        emulator = BotApiEmulator(limits=telegram_limits(enforced=False))
        await emulator.start()
        reply.send((emulator.token, emulator.base_url))
        await asyncio.Event().wait()

    asyncio.run(serve())


async def cpu_per_request(
    backend: str, token: str, base_url: str, requests: int, concurrency: int
) -> tuple[float, float]:
    """Milliseconds of this process's CPU per request, and requests a second."""
    bot = Bot(token, base_url=base_url, request=BACKENDS[backend]())
    await bot.initialize()
    waiting = asyncio.Semaphore(concurrency)

    async def send() -> None:
        async with waiting:
            await bot.send_message(CHAT, TEXT, reply_markup=KEYBOARD)

    # Connections are opened, and code paths warmed, before the count starts.
    await asyncio.gather(*(send() for _ in range(concurrency * 4)))
    started_cpu, started = time.process_time(), time.monotonic()
    await asyncio.gather(*(send() for _ in range(requests)))
    cpu, wall = time.process_time() - started_cpu, time.monotonic() - started
    await bot.shutdown()
    return cpu / requests * 1000, requests / wall


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=whole(1), default=3000, help="requests per round")
    parser.add_argument(
        "--concurrency", type=whole(1), default=64, help="requests under way at once"
    )
    parser.add_argument("--rounds", type=whole(1), default=3, help="rounds per backend")
    options = parser.parse_args()

    ours, theirs = multiprocessing.Pipe()
    emulator = multiprocessing.Process(target=_serve, args=(theirs,), daemon=True)
    emulator.start()
    token, base_url = ours.recv()
    best: dict[str, tuple[float, float]] = {}
    try:
        for _ in range(options.rounds):
            for backend in BACKENDS:
                cpu, rate = await cpu_per_request(
                    backend, token, base_url, options.requests, options.concurrency
                )
                if backend not in best or cpu < best[backend][0]:
                    best[backend] = (cpu, rate)
    finally:
        emulator.kill()
    print(
        table(
            ["backend", "CPU ms per request", "requests per second"],
            [[backend, cpu, rate] for backend, (cpu, rate) in best.items()],
        )
    )
    print(
        figures(
            requests=options.requests,
            concurrency=options.concurrency,
            httpx_cpu_ms=best["httpx"][0],
            aiohttp_cpu_ms=best["aiohttp"][0],
            ratio=best["httpx"][0] / best["aiohttp"][0],
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
