"""The process: the configured channels on one web server, the scheduled jobs, and a clean stop.

`run` reads as the process starts: settings are loaded by the caller; the store is reached and
prepared, the knowledge base loaded (`prepare`); then the runtime mounts every channel's routes
on the web server, starts it, starts the channels, schedules the jobs and waits for a signal.
"""

import asyncio
import logging
import signal
from collections.abc import Callable, Sequence

from bot import heap, pidfile
from bot.channels.contract import Channel, ChannelError, ChannelUnreachable
from bot.config import Settings
from bot.conversation import Inbound, OutMessage
from bot.leadership import Leadership
from bot.outbox import Outbox
from bot.router import route
from bot.runtime import jobs, web
from bot.services import Services

__all__ = ["ChannelError", "ChannelUnreachable", "Runtime", "configured_channels"]
_log = logging.getLogger(__name__)


def configured_channels(settings: Settings, services: Services) -> list[Channel]:
    """The channels the settings configure, each imported only if it is."""
    channels: list[Channel] = []
    if settings.telegram_bot_token is not None:
        from bot.channels import telegram

        channels.append(telegram.TelegramChannel(settings, services))
    return channels


class Runtime:
    """One process of the bot: its services, its channels and its jobs."""

    def __init__(self, settings: Settings, services: Services, channels: Sequence[Channel]) -> None:
        self.settings = settings
        self.services = services
        self.channels = list(channels)
        self.outbox = Outbox(self.channels)
        services.outbox = self.outbox
        self.leadership = Leadership(services.store)
        self.stopping = asyncio.Event()
        self.status = 0
        self._jobs = jobs.Jobs(self)

    async def answer(self, inbound: Inbound) -> list[OutMessage]:
        """The replies to what a user did, stored before they are returned; a turn cut off by
        a lost database connection is rolled back and done again."""
        return await self.services.store.retrying(lambda: route(inbound, self.services))

    def every(self, seconds: float, job: jobs.Job, name: str, first: float | None = None) -> None:
        """Run `job` in this process every `seconds` (first after `first` seconds, by default
        `seconds`), for as long as the runtime runs."""
        self._jobs.every(seconds, job, name, first)

    def stop(self, status: int = 0) -> None:
        """Ask the process to stop, with `status` as its exit status (the worst one asked)."""
        self.status = max(self.status, status)
        self.stopping.set()

    async def serve(self, on_running: Callable[[str], object] = lambda _line: None) -> int:
        """Serve until SIGINT or SIGTERM (or `stop`); `on_running` is told, a line each, what
        runs once it does. Returns the exit status."""
        self._handle_signals()
        with pidfile.held(self.settings.pid_file) as holding:
            if not holding:
                _log.info(
                    "Another process holds %s: `ipbot kb reload` signals that one",
                    self.settings.pid_file,
                )
            server = await web.serve(self)
            started: list[Channel] = []
            try:
                for channel in self.channels:
                    started.append(channel)
                    said = await channel.start(self)
                    if self.stopping.is_set():
                        return self.status
                    on_running(f"running {said}; Ctrl+C stops")
                await jobs.before_serving(self.services)
                self._jobs.start()
                heap.settle()
                on_running(f"web server at http://{web.bound_address(server)} (/healthz, /readyz)")
                await self.stopping.wait()
            finally:
                await self._jobs.stop()
                for channel in reversed(started):
                    await channel.stop()
                await self.leadership.step_down()
                await server.cleanup()
                self._handle_signals(handling=False)
        return self.status

    def _handle_signals(self, handling: bool = True) -> None:
        loop = asyncio.get_running_loop()
        handlers = {
            signal.SIGINT: self.stop,
            signal.SIGTERM: self.stop,
            # `ipbot kb reload` (or kill -HUP) asks for the knowledge base to be loaded now.
            signal.SIGHUP: self._jobs.reload_now,
        }
        for signal_number, handler in handlers.items():
            if handling:
                loop.add_signal_handler(signal_number, handler)
            else:
                loop.remove_signal_handler(signal_number)
