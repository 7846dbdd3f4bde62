"""Service levels of the expert queue: due actions run once, from the store, whatever the clock."""

from datetime import timedelta

from sqlalchemy import func, select

from bot import sla
from bot.runtime import Runtime
from bot.services import Services
from bot.store.models import Notice, utcnow
from tests.botapi import BAD_GATEWAY, BotApiEmulator
from tests.conversations import ask_for_an_expert, claim_label, claimed_ticket


async def test_an_unclaimed_ticket_is_announced_again_then_escalated_each_once(
    bot: Runtime, emulator: BotApiEmulator, services: Services
) -> None:
    await services.tickets.enrol("telegram", "2101", "Li", specialties=["agency-exam"])
    await services.tickets.enrol("telegram", "2102", "Boss", role="staff")
    li, boss = emulator.phone(2101), emulator.phone(2102)
    await ask_for_an_expert(emulator.phone(3101))
    await li.read()
    await boss.read()
    later = utcnow() + timedelta(minutes=31)
    assert [a for a, _ in await sla.check(services, later)] == ["announced-again"]
    assert await sla.check(services, later) == []
    [again] = await li.read()
    assert "New question #T-" in again.text
    await boss.read()
    much_later = utcnow() + timedelta(minutes=125)
    assert sorted(a for a, _ in await sla.check(services, much_later)) == [
        "announced-again",
        "escalated",
    ]
    assert [a for a, _ in await sla.check(services, much_later)] == []
    messages = [m.text for m in await boss.read(2)]
    assert any("has waited 120 minutes" in text for text in messages)


async def test_a_claim_without_a_reply_reminds_then_returns_to_the_queue(
    bot: Runtime, emulator: BotApiEmulator, services: Services
) -> None:
    await services.tickets.enrol("telegram", "2103", "Wang", specialties=["agency-exam"])
    wang, talent = emulator.phone(2103), emulator.phone(3102)
    await ask_for_an_expert(talent)
    [card] = await wang.read()
    await wang.tap(card, claim_label(card))
    await wang.read()
    await talent.read()
    assert [a for a, _ in await sla.check(services, utcnow() + timedelta(minutes=61))] == [
        "reminded"
    ]
    [reminder] = await wang.read()
    assert "waiting for your first reply" in reminder.text
    assert [a for a, _ in await sla.check(services, utcnow() + timedelta(minutes=121))] == [
        "returned"
    ]
    [returned] = await wang.read()
    assert "went back to the queue" in returned.text
    [told] = await talent.read()
    assert "back in the queue" in told.text


async def test_an_expert_who_claims_a_released_ticket_is_reminded_by_their_own_clock(
    bot: Runtime, emulator: BotApiEmulator, services: Services
) -> None:
    first, talent = await claimed_ticket(emulator, services, 2104, 3103)
    await first.send("Let me check")
    await talent.read()
    await first.send("/release 1")
    await first.read()
    await talent.read()
    await services.tickets.enrol("telegram", "2105", "Zhou", specialties=["agency-exam"])
    second = emulator.phone(2105)
    await second.send("/claim 1")
    await second.read()
    await talent.read()
    actions = [a for a, _ in await sla.check(services, utcnow() + timedelta(minutes=61))]
    assert actions == ["reminded"]
    [reminder] = await second.read()
    assert "waiting for your first reply" in reminder.text


async def test_a_silent_talent_is_nudged_and_the_ticket_closes_itself(
    bot: Runtime, emulator: BotApiEmulator, services: Services
) -> None:
    await services.tickets.enrol("telegram", "2104", "Zhao", specialties=["agency-exam"])
    zhao, talent = emulator.phone(2104), emulator.phone(3103)
    await ask_for_an_expert(talent)
    [card] = await zhao.read()
    await zhao.tap(card, claim_label(card))
    await zhao.read()
    await talent.read()
    await zhao.send("Here is what you need to know.")
    await talent.read()
    nudged = await sla.check(services, utcnow() + timedelta(hours=25))
    assert [a for a, _ in nudged] == ["nudged"]
    [nudge] = await talent.read()
    assert "Is your question #T-" in nudge.text
    closed = await sla.check(services, utcnow() + timedelta(hours=25 + 49))
    assert [a for a, _ in closed] == ["closed-silent"]
    [gone] = await talent.read()
    assert "has been closed" in gone.text
    [told] = await zhao.read()
    assert "closed itself" in told.text


async def test_a_reminder_telegram_could_not_take_is_sent_at_the_next_check_once(
    bot: Runtime, emulator: BotApiEmulator, services: Services
) -> None:
    wang, _talent = await claimed_ticket(emulator, services, 2105, 3104)
    emulator.fail("sendMessage", BAD_GATEWAY)
    due = utcnow() + timedelta(minutes=61)
    assert [a for a, _ in await sla.check(services, due)] == ["reminded"]
    assert await wang.quiet() == []
    assert await sla.check(services, due + timedelta(minutes=1)) == []
    [reminder] = await wang.read()
    assert "waiting for your first reply" in reminder.text
    await sla.check(services, due + timedelta(minutes=2))
    assert await wang.quiet() == []


async def test_a_notice_that_could_not_be_sent_for_a_day_is_dropped_as_out_of_date(
    bot: Runtime, emulator: BotApiEmulator, services: Services
) -> None:
    wang, talent = await claimed_ticket(emulator, services, 2106, 3105)
    emulator.fail("sendMessage", BAD_GATEWAY)
    await sla.check(services, utcnow() + timedelta(minutes=61))
    # A day later the claim has long run out: the expert hears that, not the old reminder.
    assert [a for a, _ in await sla.check(services, utcnow() + timedelta(hours=26))] == ["returned"]
    [returned] = await wang.read()
    assert "went back to the queue" in returned.text
    assert await wang.quiet() == []
    [told] = await talent.read()
    assert "back in the queue" in told.text


async def test_nothing_waits_to_be_sent_to_a_talent_who_was_forgotten(
    bot: Runtime, emulator: BotApiEmulator, services: Services
) -> None:
    zhao, talent = await claimed_ticket(emulator, services, 2107, 3106)
    await zhao.send("Here is what you need to know.")
    await talent.read()
    await talent.send("/forget")
    [confirm] = await talent.read()
    await talent.tap_data(confirm, "1:f:yes")
    await talent.read()
    # Forgetting closed the ticket: the talent is not nudged, and nothing waits for them.
    assert await sla.check(services, utcnow() + timedelta(hours=25)) == []
    async with services.store.transaction() as tx:
        assert await tx.session.scalar(select(func.count()).select_from(Notice)) == 0
