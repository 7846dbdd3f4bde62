"""Handing in again what a stopped process left unfinished: the inbox's leases, and what a
recovered inbound is owed, on SQLite and PostgreSQL."""

import asyncio
from collections.abc import Collection
from dataclasses import replace
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select
from telegram import Bot, Update

from bot.channels.telegram.intake import Intake
from bot.conversation import Inbound
from bot.router import route
from bot.runtime import Runtime
from bot.services import Services
from bot.store import Store, StoreUnavailable
from bot.store.inbox import Inbox
from bot.store.models import AuditEvent, InboxUpdate, Ticket, User, utcnow
from bot.store.outage import Backoff
from tests.botapi import BotApiEmulator, free_port
from tests.conftest import running, telegram_settings
from tests.conversations import QUESTION

LEASE = timedelta(seconds=0.3)
# Updates are read back with a bot attached, as PTB does; this one never sends anything.
BOT = Bot("123456:TEST-TOKEN")


def process(store: Store) -> Intake:
    """The update intake of one bot process."""
    return Intake(Inbox(store, LEASE), asyncio.Queue())


def update(update_id: int) -> Update:
    message = {
        "message_id": update_id,
        "date": 0,
        "chat": {"id": 7, "type": "private"},
        "from": {"id": 7, "is_bot": False, "first_name": "Alex"},
        "text": f"message {update_id}",
    }
    return Update.de_json({"update_id": update_id, "message": message}, BOT)


def queued(intake: Intake) -> list[Update]:
    taken = []
    while not intake.queue.empty():
        item = intake.queue.get_nowait()
        assert isinstance(item, Update)
        taken.append(item)
    return taken


async def test_an_update_is_handled_by_the_process_it_reached_first_and_once(
    store: Store,
) -> None:
    first, second = process(store), process(store)
    await first.receive(update(1))
    await first.receive(update(1))
    await second.receive(update(1))
    assert [u.update_id for u in queued(first)] == [1]
    assert queued(second) == []
    await first.handled(update(1))
    for queue in (first, second):
        await queue.receive(update(1))
        assert queued(queue) == []


async def test_a_dead_process_s_updates_are_taken_over_once_and_a_live_one_s_are_kept(
    store: Store,
) -> None:
    alive, dead = process(store), process(store)
    await alive.receive(update(1))
    await dead.receive(update(2))
    takers = process(store), process(store)
    assert await takers[0].recover(BOT) == 0  # both leases are running
    await asyncio.sleep(LEASE.total_seconds() * 1.5)
    await alive.inbox.renew()
    assert [await taker.recover(BOT) for taker in takers] == [1, 0]
    [recovered] = queued(takers[0])
    assert recovered.update_id == 2
    assert recovered.message is not None
    assert recovered.message.text == "message 2"
    assert takers[0].recovered(recovered)
    await takers[0].handled(recovered)
    assert not takers[0].recovered(recovered)
    async with store.transaction() as tx:
        row = await tx.session.get(InboxUpdate, 2)
    assert row is not None
    assert row.handled_at is not None
    assert row.payload is None


async def test_updates_handled_at_once_are_all_marked_and_never_taken_over(
    store: Store,
) -> None:
    dead = process(store)
    for update_id in range(1, 21):
        await dead.receive(update(update_id))
    # Finished together: most wait for the mark being written and are marked in the next one.
    await asyncio.gather(*(dead.handled(update(update_id)) for update_id in range(1, 20)))
    await asyncio.sleep(LEASE.total_seconds() * 1.5)
    taker = process(store)
    assert await taker.recover(BOT) == 1
    assert [u.update_id for u in queued(taker)] == [20]


async def test_the_purge_forgets_handled_updates_and_keeps_the_others(store: Store) -> None:
    queue = process(store)
    for update_id in (1, 2):
        await queue.receive(update(update_id))
    await queue.handled(update(1))
    assert await queue.inbox.purge(utcnow() + timedelta(seconds=1)) == 1
    async with store.transaction() as tx:
        kept = list(await tx.session.scalars(select(InboxUpdate.update_id)))
    assert kept == [2]


async def test_a_stopping_bot_queues_nothing_more_so_that_its_stop_can_finish(
    store: Store,
) -> None:
    """The application stops once everything queued is handled: an update held back, or one a
    dead process left, must not be queued after its signal to stop (it waited for ever)."""
    queue = Intake(
        Inbox(store, LEASE), asyncio.Queue(), hold_back=Backoff(first=0.05, longest=0.05)
    )
    await queue.receive(update(1))
    held = await queue.queue.get()
    assert isinstance(held, Update)
    assert queue.hold_back(held) is not None
    await process(store).receive(update(2))  # left by a process that dies
    queue.close()
    # The held-back update's handling ends; then a later one of a chat is held back too.
    queue.queue.task_done()
    assert queue.hold_back(update(3)) is None
    await asyncio.sleep(LEASE.total_seconds() * 1.5)
    assert await queue.recover(BOT) == 0
    await asyncio.wait_for(queue.queue.join(), 1)
    # Neither is marked handled: the next process takes them over.
    await queue.handled(held)
    taker = process(store)
    assert await taker.recover(BOT) == 2


class BlippingInbox(Inbox):
    """An inbox whose first mark is lost to a database outage."""

    def __init__(self, store: Store) -> None:
        super().__init__(store, LEASE)
        self.blips = 1

    async def handled(
        self, update_ids: Collection[int], channel: str = "", answered: Collection[str] = ()
    ) -> None:
        if self.blips:
            self.blips -= 1
            raise StoreUnavailable("connection lost")
        await super().handled(update_ids, channel, answered)


async def test_a_mark_lost_to_a_database_outage_is_written_with_the_next_one(
    store: Store,
) -> None:
    """Else the update would be handed to the next process at start-up and its replies sent
    again."""
    queue = Intake(BlippingInbox(store), asyncio.Queue())
    await queue.receive(update(1))
    await queue.handled(update(1))
    await queue.receive(update(2))
    await queue.handled(update(2))
    async with store.transaction() as tx:
        unhandled = await tx.session.scalar(
            select(func.count()).select_from(InboxUpdate).where(InboxUpdate.handled_at.is_(None))
        )
    assert unhandled == 0


class SlowInbox(Inbox):
    """An inbox whose statements wait for `done`: the application's signal to stop comes while
    one runs (the store's retries in a short outage, say)."""

    def __init__(self, store: Store) -> None:
        super().__init__(store, LEASE)
        self.done = asyncio.Event()

    async def receive(self, update_id: int, payload: dict[str, Any]) -> bool:
        await self.done.wait()
        return await super().receive(update_id, payload)

    async def take_abandoned(self) -> list[dict[str, Any]]:
        await self.done.wait()
        return await super().take_abandoned()


async def test_an_update_stored_as_the_bot_stops_is_left_for_the_next_process(
    store: Store,
) -> None:
    inbox = SlowInbox(store)
    queue = Intake(inbox, asyncio.Queue())
    storing = asyncio.create_task(queue.receive(update(11)))  # a webhook request in flight
    await asyncio.sleep(0.05)
    queue.close()
    inbox.done.set()
    await storing
    # Queued after the signal, it would never be handled, and the stop would wait for it.
    assert queued(queue) == []
    await asyncio.sleep(LEASE.total_seconds() * 1.5)
    assert await process(store).recover(BOT) == 1


async def test_an_update_that_arrives_once_the_bot_is_stopping_is_kept_for_the_next_process(
    store: Store,
) -> None:
    """Telegram hears it arrived (a webhook request still under way): it must be stored."""
    queue = process(store)
    queue.close()
    assert queued(queue) == []
    await queue.receive(update(12))
    assert queued(queue) == []
    await asyncio.sleep(LEASE.total_seconds() * 1.5)
    assert await process(store).recover(BOT) == 1


async def test_updates_taken_over_as_the_bot_stops_are_left_for_the_next_process(
    store: Store,
) -> None:
    await process(store).receive(update(2))  # left by a process that dies
    await asyncio.sleep(LEASE.total_seconds() * 1.5)
    inbox = SlowInbox(store)
    queue = Intake(inbox, asyncio.Queue())
    taking = asyncio.create_task(queue.recover(BOT))  # the inbox job, mid-statement
    await asyncio.sleep(0.05)
    queue.close()
    inbox.done.set()
    assert await taking == 0
    assert queued(queue) == []
    await asyncio.sleep(LEASE.total_seconds() * 1.5)
    assert await process(store).recover(BOT) == 1


async def test_a_recovered_message_gets_the_replies_that_never_went_out_and_only_once(
    services: Services,
) -> None:
    inbound = Inbound(channel="telegram", user_key="41", message_key="update:41", text=QUESTION)
    replies = await route(inbound, services)
    assert replies
    assert await route(inbound, services) == []
    # The process died before sending them: they are owed.
    assert await route(replace(inbound, recovered=True), services) == replies
    await answered(services.store, inbound.message_key)
    assert await route(replace(inbound, recovered=True), services) == []


async def test_a_recovered_claim_ends_in_one_claim_and_the_case_card(
    services: Services,
) -> None:
    await services.tickets.enrol("telegram", "42", "Sun")
    async with services.store.transaction() as tx:
        asker = await tx.user("telegram", "43", "en")
        ticket, _, _ = await tx.request_expert(asker, QUESTION, "en", None)
    tap = Inbound(
        channel="telegram",
        user_key="42",
        message_key=f"tap:42:9:1:c:{ticket.id}",
        button=f"1:c:{ticket.id}",
    )
    [case] = await route(tap, services)
    assert case.text.startswith(f"<b>Ticket #T-{ticket.id}</b>")
    assert await route(tap, services) == []
    # The process died before the case card went out: the claim goes on to it.
    assert await route(replace(tap, recovered=True), services) == [case]
    await answered(services.store, tap.message_key)
    async with services.store.transaction() as tx:
        claims = await tx.session.scalar(
            select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "claim")
        )
    assert claims == 1
    assert await route(replace(tap, recovered=True), services) == []


async def test_a_recovered_message_is_relayed_if_it_never_was(
    bot: Runtime, emulator: BotApiEmulator, services: Services
) -> None:
    talent_user, expert_user, ticket = await claimed_ticket(services)
    inbound = Inbound(channel="telegram", user_key="44", message_key="update:44", text="Hello")
    # The process stored the message and died before relaying it.
    async with services.store.transaction() as tx:
        await tx.accept(inbound, talent_user, "Hello", "en")
    await services.tickets.store_relay(ticket, talent_user, expert_user, "Hello", "update:44")
    expert_phone = emulator.phone(45)
    assert await route(replace(inbound, recovered=True), services) == []
    [shown] = await expert_phone.read()
    assert shown.text == f"Talent #T-{ticket.id}: Hello"
    assert await route(replace(inbound, recovered=True), services) == []
    assert await expert_phone.quiet() == []


async def test_a_recovered_expert_message_is_relayed_if_it_never_was(
    bot: Runtime, emulator: BotApiEmulator, services: Services
) -> None:
    talent_user, expert_user, ticket = await claimed_ticket(services)
    inbound = Inbound(channel="telegram", user_key="45", message_key="update:45", text="Hi")
    async with services.store.transaction() as tx:
        await tx.accept(inbound, expert_user, "Hi", "en")
    await services.tickets.store_relay(ticket, expert_user, talent_user, "Hi", "update:45")
    talent_phone = emulator.phone(44)
    assert await route(replace(inbound, recovered=True), services) == []
    [shown] = await talent_phone.read()
    assert shown.text == "Expert Sun: Hi"
    await answered(services.store, inbound.message_key)
    assert await route(replace(inbound, recovered=True), services) == []
    assert await talent_phone.quiet() == []


async def answered(store: Store, inbound_key: str) -> None:
    """Note, as the update's mark does, that the replies to an inbound went out."""
    await Inbox(store, LEASE).handled([], "telegram", [inbound_key])


async def claimed_ticket(services: Services) -> tuple[User, User, Ticket]:
    """Talent 44's ticket, claimed by expert 45."""
    expert_user = await services.tickets.enrol("telegram", "45", "Sun")
    async with services.store.transaction() as tx:
        talent_user = await tx.user("telegram", "44", "en")
        ticket, _, _ = await tx.request_expert(talent_user, QUESTION, "en", None)
    assert await services.tickets.claim(ticket.id, expert_user, limit=3) == "claimed"
    return talent_user, expert_user, ticket


async def test_a_webhook_request_is_answered_once_its_update_is_stored(
    emulator: BotApiEmulator, services: Services
) -> None:
    port = free_port()
    settings = telegram_settings(
        emulator, telegram_webhook_url=f"http://127.0.0.1:{port}", web_port=port
    )
    async with running(settings, services):
        delivered = emulator.phone(46).update(text=QUESTION)
        assert await emulator.deliver(delivered) == 200
        async with services.store.transaction() as tx:
            assert await tx.session.get(InboxUpdate, delivered["update_id"]) is not None
