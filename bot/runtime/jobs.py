"""The scheduled jobs: those that act for the whole bot run in one process only (the leader,
see `bot.leadership`); the knowledge watch and the channels' own jobs run in every process.

APScheduler keeps jobs in memory only: every job finds in the store what is due, so a restart
loses nothing (see `bot.sla`).
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot import notifications, sla
from bot.leadership import RETRY_SECONDS
from bot.reload import fingerprint, follow, reload
from bot.services import Services
from bot.store import StoreUnavailable, privacy
from bot.store.inbox import Inbox
from bot.store.models import utcnow

if TYPE_CHECKING:
    from bot.runtime import Runtime

Job = Callable[[], Awaitable[object]]
WEEK = 7 * 24 * 3600
# A channel sends an update again for a day at most: the inbox need not remember it longer.
INBOX_MEMORY = timedelta(days=1)
_log = logging.getLogger(__name__)


class Jobs:
    """The runtime's schedule."""

    def __init__(self, runtime: "Runtime") -> None:
        self._runtime = runtime
        self._scheduler = AsyncIOScheduler(timezone=UTC)
        self._watch = KnowledgeWatch(runtime)
        self._running: set[asyncio.Task[object]] = set()
        services, settings = runtime.services, runtime.settings
        self.every(RETRY_SECONDS, runtime.leadership.contend, "leadership", first=0)
        # Soon after start, so what fell due while the bot was down is done at once.
        self.every(settings.sla_check_seconds, self._leading(self._service_levels), "sla", first=1)
        self.every(WEEK, self._leading(self._stale_entries), "staleness", first=300)
        self.every(6 * 3600, self._leading(self._purge), "retention", first=60)
        self.every(settings.knowledge_check_seconds, self._watch.check, "knowledge")
        self._services = services

    def every(self, seconds: float, job: Job, name: str, first: float | None = None) -> None:
        """Run `job` every `seconds`, the first time after `first` seconds (default `seconds`)."""
        start = datetime.now(UTC) + timedelta(seconds=seconds if first is None else first)
        self._scheduler.add_job(
            self._reporting(job, name),
            "interval",
            seconds=seconds,
            next_run_time=start,
            name=name,
            # A run that falls due while the last one still runs is skipped, not queued.
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
        )

    def start(self) -> None:
        self._scheduler.start()

    async def stop(self) -> None:
        """Schedule nothing more, and cut off the jobs still running."""
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)
        for task in self._running:
            task.cancel()
        await asyncio.gather(*self._running, return_exceptions=True)

    def reload_now(self) -> None:
        """Load the knowledge base again at once and tell staff (SIGHUP)."""
        asyncio.get_running_loop().create_task(reload_and_tell(self._runtime.services))

    def _reporting(self, job: Job, name: str) -> Job:
        """`job`, with a database outage noted in one line and anything else logged."""
        store = self._runtime.services.store

        async def run() -> None:
            task = asyncio.current_task()
            assert task is not None
            self._running.add(task)
            try:
                await job()
            except asyncio.CancelledError:
                # The process is stopping: what the job did not finish, its next run does.
                _log.info("Job %s cut off by the stop", name)
            except StoreUnavailable as error:
                store.availability.lost(error)
                _log.info("Job %s not done: the database is unavailable (%s)", name, error)
            except Exception as error:
                _log.error("Job %s failed: %s", name, error, exc_info=error)
            finally:
                self._running.discard(task)

        return run

    def _leading(self, job: Job) -> Job:
        """The job, run only in the process that holds the jobs' lock."""
        leadership = self._runtime.leadership

        async def run_if_leading() -> None:
            if await leadership.contend():
                await job()

        return run_if_leading

    async def _service_levels(self) -> None:
        done = await sla.check(self._services)
        if done:
            _log.info("Service levels: %s", done)

    async def _stale_entries(self) -> None:
        await notifications.report_stale(self._services, utcnow().date())

    async def _purge(self) -> None:
        services = self._services
        before = utcnow() - timedelta(days=services.settings.retention_days)
        purged = await privacy.purge(services.store, before)
        if purged:
            _log.info("Purged %d messages older than %s", purged, before.date())
        lease = timedelta(seconds=services.settings.telegram_update_lease_seconds)
        await Inbox(services.store, lease).purge(utcnow() - INBOX_MEMORY)


class KnowledgeWatch:
    """Reloads when the knowledge files change, in every process (each has its own matcher);
    the leader tells staff what happened, once per change. A set staff forced in one process
    is loaded by the others, whose own check would refuse it."""

    def __init__(self, runtime: "Runtime") -> None:
        self._runtime = runtime
        self._seen = fingerprint(runtime.settings.knowledge_dir)
        self._forced: str | None = None

    async def check(self) -> None:
        services = self._runtime.services
        forced = await services.tickets.last_forced_reload()
        if forced is not None and forced not in (self._forced, services.matcher.knowledge.version):
            self._forced = forced
            await asyncio.to_thread(follow, services, forced)
        now = fingerprint(services.settings.knowledge_dir)
        if now == self._seen:
            return
        self._seen = now
        await reload_and_tell(services, tell=await self._runtime.leadership.contend())


async def reload_and_tell(services: Services, force: bool = False, tell: bool = True) -> None:
    """Reload the knowledge base and tell staff the outcome (with every problem's place)."""
    # Building the new index takes a moment: off the event loop, so updates keep flowing.
    outcome = await asyncio.to_thread(reload, services, force)
    await services.tickets.audit(None, "reload", outcome.version, status=outcome.status)
    if tell:
        await notifications.tell_staff(services, "kb_" + outcome.status, outcome=outcome)


async def before_serving(services: Services) -> None:
    """What is done once the channels run: the first staff appointed from the settings, and
    relayed messages a stopped process stored but never showed sent now."""
    for channel, external_id in services.settings.staff:
        await services.tickets.appoint_staff(channel, external_id)
    await notifications.redeliver(services)
