"""Telegram updates that survive a crash: each is stored in the inbox before it is queued for
the application.

The channel confirms a polled update to Telegram with its next getUpdates, and answers a
webhook request, only once the update is stored here (unless the database stays out of reach:
see `_store`), so an update still queued, or being handled, when the process dies is not lost.
The update processor marks each one handled when its handling ends; one that a dead process
left unfinished is taken over from the inbox and queued again, marked recovered.

Updates finished while a mark is being written are marked together, in the next statement: a
mark is only for a later take-over, which answers nothing twice (the store refuses a message
seen before), so under load one statement can do for many.

An update whose replies could not reach Telegram is held back: left unmarked and queued again,
marked recovered, after a pause that grows while Telegram stays out of reach. Handled again,
it sends the replies stored for it, as after a crash; and if this process dies meanwhile,
another takes it over from the inbox. Later updates of its chat wait behind it, so that the
chat's answers keep the order of its messages.
"""

import asyncio
import logging

from telegram import Bot, Update

from bot.channels import TELEGRAM
from bot.store import StoreUnavailable
from bot.store.inbox import Inbox
from bot.store.outage import Backoff

# Pauses before an update held back is handled again: from one second, doubling, to a minute.
HOLD_BACK = Backoff(first=1.0, longest=60.0)

_log = logging.getLogger(__name__)


class Intake:
    """Stores each update, then puts it in `queue` (the application's update queue)."""

    def __init__(
        self, inbox: Inbox, queue: asyncio.Queue[object], hold_back: Backoff = HOLD_BACK
    ) -> None:
        self.inbox = inbox
        self.queue = queue
        self._pauses = hold_back
        # Queued and not yet handled (Telegram may send one again meanwhile), and of those the
        # ones taken over from a stopped process.
        self._pending: set[int] = set()
        self._recovered: set[int] = set()
        # Handled, and waiting for the mark being written to be done.
        self._to_mark: set[int] = set()
        # Handled, but their mark was lost to a database outage: written with the next one.
        self._unmarked: set[int] = set()
        # The stored inbound of each handled update whose replies went out, to note with its
        # mark.
        self._answered: dict[int, str] = {}
        self._marking = False
        # Held back, by chat, each chat's waiting for its timer to queue them again; and how
        # often each update was tried and held back, until it is marked handled.
        self._held: dict[tuple[str, int], list[Update]] = {}
        self._timers: dict[tuple[str, int], asyncio.TimerHandle] = {}
        self._holds: dict[int, int] = {}
        # Set once the channel is stopping: nothing more is queued.
        self._closed = False

    async def receive(self, update: Update) -> None:
        """Store an update, then queue it; not one handled or queued before, or another
        process's."""
        if update.update_id in self._pending or not await self._store(update):
            return
        if self._closed:
            # Stored, even once the channel is stopping (a webhook request still under way):
            # it stays in the inbox for the next process.
            return
        self._pending.add(update.update_id)
        await self.queue.put(update)

    def close(self) -> None:
        """Queue nothing more: the application is about to stop, and waits for what is queued
        to be handled. What is held back or unhandled stays in the inbox, for the next process
        to take over."""
        self._closed = True
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()

    async def _store(self, update: Update) -> bool:
        # Until the update is stored Telegram should not hear of it, so a short outage is waited
        # out (the store's retries). A longer one is not, or every chat would wait in silence:
        # the update goes on unstored, its handling meets the outage, and the user is asked to
        # send it again.
        try:
            return await self.inbox.store.retrying(
                lambda: self.inbox.receive(update.update_id, update.to_dict())
            )
        except StoreUnavailable as error:
            _log.info("Update %s goes on unstored: %s", update.update_id, error)
            return True

    async def recover(self, bot: Bot) -> int:
        """Queue again the updates that a process which stopped left unhandled; how many."""
        if self._closed:
            return 0
        payloads = await self.inbox.take_abandoned()
        if self._closed:
            # The signal to stop came while they were being taken over: they stay in the
            # inbox, leased to this process, for the next one to take over.
            return 0
        for payload in payloads:
            update = Update.de_json(payload, bot)
            self._pending.add(update.update_id)
            self._recovered.add(update.update_id)
            await self.queue.put(update)
        if payloads:
            _log.warning("Handling %d updates that a stopped process left unhandled", len(payloads))
        return len(payloads)

    def recovered(self, update: Update) -> bool:
        """Whether `update` is handled again, after the process handling it stopped."""
        return update.update_id in self._recovered

    def hold_back(self, update: Update, tried: bool = True, at_least: float = 0) -> float | None:
        """Handle `update` again later, with the other updates of its chat held back, in the
        order they came: its replies could not be sent (`tried`; it is then marked recovered),
        or an earlier update of its chat waits to be. The pause grows with the tries, and is
        `at_least` seconds (what Telegram asked the bot to wait). Returns the pause before they
        are queued again, in seconds; None if the application is stopping (the next process to
        start takes them over from the inbox)."""
        if tried:
            self._holds[update.update_id] = self._holds.get(update.update_id, 0) + 1
        chat = _chat_of(update)
        self._held.setdefault(chat, []).append(update)
        loop = asyncio.get_running_loop()
        if chat not in self._timers and not self._closed:
            tries = max(self._holds.get(u.update_id, 1) for u in self._held[chat])
            pause = max(self._pauses.pause(tries), at_least)
            self._timers[chat] = loop.call_later(pause, self._queue_again, chat)
        timer = self._timers.get(chat)
        return timer.when() - loop.time() if timer is not None else None

    def waits_behind(self, update: Update) -> bool:
        """Whether an earlier update of this update's chat is held back."""
        return _chat_of(update) in self._held

    def _queue_again(self, chat: tuple[str, int]) -> None:
        del self._timers[chat]
        for update in sorted(self._held.pop(chat), key=lambda held: held.update_id):
            if update.update_id in self._holds:
                self._recovered.add(update.update_id)
            self.queue.put_nowait(update)

    def answered(self, update: Update, inbound_key: str) -> None:
        """Note that the replies to `update` (stored under `inbound_key`) went out; the store
        hears it just before the update is marked handled."""
        self._answered[update.update_id] = inbound_key

    async def handled(self, update: object) -> None:
        """Mark an update's handling finished (the update processor calls this); not one held
        back, which is still to be handled."""
        if not isinstance(update, Update) or update in self._held.get(_chat_of(update), ()):
            return
        self._to_mark.add(update.update_id)
        if self._marking:
            return
        self._marking = True
        try:
            while self._to_mark:
                marked, self._to_mark = self._to_mark | self._unmarked, set()
                self._unmarked = set()
                await self._mark(marked)
        finally:
            self._marking = False

    async def _mark(self, update_ids: set[int]) -> None:
        answered = {u: self._answered.pop(u) for u in update_ids if u in self._answered}
        try:
            await self.inbox.handled(update_ids, TELEGRAM, answered.values())
        except StoreUnavailable as error:
            # Tried again with the next mark. Left unmarked meanwhile, they are handled again
            # only after a crash (and those not noted as answered are sent their replies again
            # then).
            _log.warning("Cannot mark updates %s handled yet: %s", sorted(update_ids), error)
            self._unmarked |= update_ids
            self._answered.update(answered)
        self._pending -= update_ids
        self._recovered -= update_ids
        for update_id in update_ids:
            self._holds.pop(update_id, None)


def _chat_of(update: Update) -> tuple[str, int]:
    """What orders an update among others: its chat, or the update alone if it has none."""
    chat = update.effective_chat
    return ("chat", chat.id) if chat is not None else ("update", update.update_id)
