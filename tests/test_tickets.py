"""The expert queue in the store, on SQLite and PostgreSQL: one winner per claim, limits kept."""

import asyncio
import random
from datetime import timedelta

from sqlalchemy import select

from bot.redact import mask_contacts
from bot.store import Store
from bot.store.models import Ticket, User, utcnow
from bot.store.tickets import Tickets


async def make_user(store: Store, key: str, role: str = "talent") -> User:
    async with store.transaction() as tx:
        user = await tx.user("test", key, "en")
        user.role = role
    return user


async def open_ticket(store: Store, talent: User, question: str = "A question") -> Ticket:
    async with store.transaction() as tx:
        ticket, _, _ = await tx.request_expert(talent, question, "en", "patents")
    return ticket


async def test_second_expert_cannot_claim_a_claimed_ticket(store: Store) -> None:
    tickets = Tickets(store)
    ticket = await open_ticket(store, await make_user(store, "t1"))
    li, wang = await make_user(store, "li", "expert"), await make_user(store, "wang", "expert")
    assert await tickets.claim(ticket.id, li, limit=3) == "claimed"
    assert await tickets.claim(ticket.id, wang, limit=3) == "taken"
    assert await tickets.claim(ticket.id, li, limit=3) == "yours"


async def test_closed_missing_and_over_limit_claims_are_told_apart(store: Store) -> None:
    tickets = Tickets(store)
    li = await make_user(store, "li", "expert")
    first = await open_ticket(store, await make_user(store, "t1"))
    second = await open_ticket(store, await make_user(store, "t2"))
    assert await tickets.claim(first.id, li, limit=1) == "claimed"
    assert await tickets.claim(second.id, li, limit=1) == "limit"
    assert await tickets.close(first.id, li, "Answered") is not None
    assert await tickets.claim(first.id, li, limit=1) == "closed"
    assert await tickets.claim(99_999, li, limit=1) == "missing"


async def test_only_the_holder_releases_and_staff_can_close_any(store: Store) -> None:
    tickets = Tickets(store)
    li, wang = await make_user(store, "li", "expert"), await make_user(store, "wang", "expert")
    staff = await make_user(store, "boss", "staff")
    ticket = await open_ticket(store, await make_user(store, "t1"))
    await tickets.claim(ticket.id, li, limit=3)
    assert not await tickets.release(ticket.id, wang)
    assert await tickets.close(ticket.id, wang, "Not mine") is None
    assert await tickets.release(ticket.id, li)
    released = await tickets.get(ticket.id)
    assert released is not None
    assert released.status == "open"
    closed = await tickets.close(ticket.id, staff, "Closed by staff")
    assert closed is not None
    assert closed.status == "closed"


async def test_a_talent_rates_only_their_own_closed_ticket(store: Store) -> None:
    tickets = Tickets(store)
    talent, other = await make_user(store, "t1"), await make_user(store, "t2")
    li = await make_user(store, "li", "expert")
    ticket = await open_ticket(store, talent)

    async def rate(who: User, stars: int) -> bool:
        async with store.transaction() as tx:
            return await tx.rate(ticket.id, who, stars)

    assert not await rate(talent, 5)
    await tickets.claim(ticket.id, li, limit=3)
    await tickets.close(ticket.id, li, "Done")
    assert not await rate(other, 1)
    assert await rate(talent, 4)
    rated = await tickets.get(ticket.id)
    assert rated is not None
    assert rated.rating == 4


async def test_a_relayed_message_is_stored_once_and_delivered_once(store: Store) -> None:
    tickets = Tickets(store)
    talent, li = await make_user(store, "t1"), await make_user(store, "li", "expert")
    ticket = await open_ticket(store, talent)
    await tickets.claim(ticket.id, li, limit=3)
    relay = await tickets.store_relay(ticket, talent, li, "Hello expert", "update:1")
    assert relay is not None
    assert await tickets.store_relay(ticket, talent, li, "Hello expert", "update:1") is None
    assert [r.text for r in await tickets.undelivered()] == ["Hello expert"]
    await tickets.delivered(relay.id)
    assert await tickets.undelivered() == []


async def test_a_relay_stored_just_now_is_left_to_the_process_about_to_send_it(
    store: Store,
) -> None:
    tickets = Tickets(store)
    talent, li = await make_user(store, "t1"), await make_user(store, "li", "expert")
    ticket = await open_ticket(store, talent)
    await tickets.claim(ticket.id, li, limit=3)
    await tickets.store_relay(ticket, talent, li, "Hello expert", "update:1")
    assert await tickets.undelivered(stored_before=utcnow() - timedelta(seconds=30)) == []
    later = utcnow() + timedelta(seconds=1)
    assert [r.text for r in await tickets.undelivered(stored_before=later)] == ["Hello expert"]


async def test_two_hundred_tickets_and_twenty_experts_claim_each_ticket_once(
    store: Store,
) -> None:
    tickets = Tickets(store)
    talents = [await make_user(store, f"talent-{n}") for n in range(200)]
    experts = [await make_user(store, f"expert-{n}", "expert") for n in range(20)]
    opened = [await open_ticket(store, talent) for talent in talents]
    wins: dict[int, list[int]] = {}

    async def grab(expert: User, seed: int) -> None:
        order = [ticket.id for ticket in opened]
        random.Random(seed).shuffle(order)
        for ticket_id in order:
            if await tickets.claim(ticket_id, expert, limit=10) == "claimed":
                wins.setdefault(ticket_id, []).append(expert.id)

    await asyncio.gather(*(grab(expert, n) for n, expert in enumerate(experts)))
    assert sorted(wins) == sorted(ticket.id for ticket in opened)
    assert all(len(winners) == 1 for winners in wins.values())
    async with store.transaction() as tx:
        rows = list(await tx.session.scalars(select(Ticket)))
    assert all(row.status == "claimed" for row in rows)
    per_expert: dict[int | None, int] = {}
    for row in rows:
        per_expert[row.expert_id] = per_expert.get(row.expert_id, 0) + 1
    assert max(per_expert.values()) <= 10
    assert all(wins[row.id] == [row.expert_id] for row in rows)


def test_a_date_is_not_hidden_as_a_phone_number_but_a_phone_number_is() -> None:
    masked = mask_contacts("Opposition due 2026-03-01, call +86 138 0000 1111")
    assert masked == "Opposition due 2026-03-01, call [phone hidden]"
