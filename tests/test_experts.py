"""Volunteer experts end to end: the real PTB Application, the Bot API emulator, both stores."""

import asyncio
import json
import shutil
from datetime import date
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select

from bot import notifications
from bot.conversation import Inbound
from bot.knowledge import load_knowledge
from bot.paths import bundled
from bot.router import route
from bot.runtime import Runtime
from bot.services import Services
from bot.store.models import AuditEvent, Ticket, User
from handlers.expert import Desk
from handlers.staff import StaffDesk
from tests.botapi import BAD_GATEWAY, BotApiEmulator, Phone
from tests.conftest import running, telegram_settings
from tests.conversations import QUESTION, ask_for_an_expert, claim_label, claimed_ticket


async def test_the_whole_life_of_a_ticket(
    bot: Runtime, emulator: BotApiEmulator, services: Services
) -> None:
    for expert_id, name in (("2001", "Li"), ("2002", "Wang")):
        await services.tickets.enrol("telegram", expert_id, name, specialties=["agency-exam"])
    li, wang = emulator.phone(2001, "Li"), emulator.phone(2002, "Wang")
    talent = emulator.phone(3001, "Sam")
    talent.user["username"] = "sam_in_beijing"
    await ask_for_an_expert(talent)

    [li_card], [wang_card] = await li.read(), await wang.read()
    assert "New question #T-" in li_card.text
    assert QUESTION in li_card.text
    await asyncio.gather(
        li.tap(li_card, claim_label(li_card)), wang.tap(wang_card, claim_label(wang_card))
    )
    [li_reply], [wang_reply] = await li.read(), await wang.read()
    winner, loser = (li, wang) if "Ticket #T-" in li_reply.text else (wang, li)
    won, lost = (li_reply, wang_reply) if winner is li else (wang_reply, li_reply)
    assert "Ticket #T-" in won.text
    assert "already been taken by another expert" in lost.text
    assert "taken by another expert" in (wang_card if winner is li else li_card).text
    [taken] = await talent.read()
    assert "is now looking at your question" in taken.text

    await talent.send("My deadline is in 30 months. Mail me at sam@example.com")
    [relayed] = await winner.read()
    assert relayed.text.startswith("Talent #T-")
    assert "30 months" in relayed.text
    assert "[e-mail hidden]" in relayed.text
    await winner.send("Hello Sam, I can help with the exam rules.")
    [from_expert] = await talent.read()
    assert "I can help with the exam rules" in from_expert.text
    assert from_expert.text.startswith("Expert ")

    ticket = int(won.text.split("#T-")[1].split()[0])
    await winner.send(f"/release {ticket}")
    [released] = await winner.read()
    assert "back in the queue" in released.text
    [back] = await talent.read()
    assert "back in the queue" in back.text
    [again] = await loser.read()
    await loser.tap(again, claim_label(again))
    [card] = await loser.read()
    assert "Ticket #T-" in card.text
    assert "30 months" in card.text
    await talent.read()

    await loser.send(f"/close {ticket} Explained the pilot conditions")
    [closed] = await loser.read()
    assert "You closed" in closed.text
    [rate] = await talent.read()
    assert "Explained the pilot conditions" in rate.text
    await talent.tap(rate, "5")
    [thanks] = await talent.read()
    assert "Thank you for rating" in thanks.text
    await talent.send("Very clear, thank you")
    [saved] = await talent.read()
    assert "comment is saved" in saved.text
    async with services.store.transaction() as tx:
        stored = await tx.session.get(Ticket, ticket)
    assert stored is not None
    assert (stored.status, stored.rating, stored.rating_comment) == (
        "closed",
        5,
        "Very clear, thank you",
    )
    for expert in (li, wang):
        for message in expert.received:
            assert "3001" not in message.text
            assert "sam_in_beijing" not in message.text
            assert "Sam" not in message.text.replace("Hello Sam", "")


async def test_someone_who_is_not_an_expert_is_refused_and_the_attempt_logged(
    bot: Runtime, emulator: BotApiEmulator, services: Services
) -> None:
    talent = emulator.phone(3002)
    await talent.send("/claim 1")
    [refused] = await talent.read()
    assert "for volunteer experts" in refused.text
    async with services.store.transaction() as tx:
        events = list(await tx.session.scalars(select(AuditEvent)))
    assert [(e.action, e.subject) for e in events] == [("refused", "/claim")]


async def test_a_talent_waiting_for_an_expert_adds_to_their_ticket(
    bot: Runtime, emulator: BotApiEmulator, services: Services
) -> None:
    await services.tickets.enrol("telegram", "2003", "Zhao", specialties=["patents"])
    talent = emulator.phone(3003)
    await ask_for_an_expert(talent)
    await talent.send("Also: the application number is CN202110123456.7")
    [added] = await talent.read()
    assert "Added to your question" in added.text
    expert = emulator.phone(2003, "Zhao")
    [announcement] = await expert.read()
    await expert.tap(announcement, claim_label(announcement))
    [card] = await expert.read()
    assert "[application number hidden]" in card.text
    assert "CN202110123456" not in card.text


async def test_a_talent_who_blocked_the_bot_closes_the_ticket_and_the_expert_is_told(
    bot: Runtime, emulator: BotApiEmulator, services: Services
) -> None:
    expert, _talent = await claimed_ticket(emulator, services, 2201, 3201)
    emulator.blocked.add(3201)
    await expert.send("Here is my answer.")
    [told] = await expert.read()
    assert "can no longer be reached" in told.text
    async with services.store.transaction() as tx:
        [ticket] = list(await tx.session.scalars(select(Ticket)))
    assert (ticket.status, ticket.close_reason) == ("closed", "unreachable")


async def test_an_expert_who_blocked_the_bot_gives_the_ticket_back(
    bot: Runtime, emulator: BotApiEmulator, services: Services
) -> None:
    _expert, talent = await claimed_ticket(emulator, services, 2202, 3202)
    emulator.blocked.add(2202)
    await talent.send("Are you still there?")
    [back] = await talent.read()
    assert "back in the queue" in back.text
    async with services.store.transaction() as tx:
        [ticket] = list(await tx.session.scalars(select(Ticket)))
    assert (ticket.status, ticket.expert_id) == ("open", None)


async def test_relayed_chat_that_telegram_could_not_take_arrives_once_it_can(
    bot: Runtime, emulator: BotApiEmulator, services: Services
) -> None:
    expert, talent = await claimed_ticket(emulator, services, 2203, 3203)
    emulator.fail("sendMessage", BAD_GATEWAY)
    await talent.send("Does the exam have an English paper?")
    [relayed] = await expert.read(within=15)
    assert "Does the exam have an English paper?" in relayed.text
    emulator.fail("sendMessage", BAD_GATEWAY)
    await expert.send("No, it is in Chinese only.")
    [answer] = await talent.read(within=15)
    assert "No, it is in Chinese only." in answer.text
    assert await expert.quiet() == []
    assert await talent.quiet() == []


async def test_a_new_ticket_telegram_could_not_announce_is_shown_once_it_can(
    bot: Runtime, emulator: BotApiEmulator, services: Services
) -> None:
    for expert_id in (2204, 2205):
        await services.tickets.enrol(
            "telegram", str(expert_id), "Qian", specialties=["agency-exam"]
        )
    first, second = emulator.phone(2204), emulator.phone(2205)
    talent = emulator.phone(3204)
    await talent.send(QUESTION)
    await talent.read()
    # The first expert's card goes out; the second's does not.
    emulator.fail("sendMessage", BAD_GATEWAY, after=1)
    await talent.send("/expert")
    [queued] = await talent.read(within=15)
    assert "#T-" in queued.text
    [card] = await second.read(within=15)
    assert "New question #T-" in card.text
    [card] = await first.read()
    assert "New question #T-" in card.text
    assert await first.quiet() == []
    assert await second.quiet() == []
    assert await talent.quiet() == []


async def test_staff_register_an_expert_and_mark_a_key_talent_from_the_chat(
    bot: Runtime, emulator: BotApiEmulator, services: Services
) -> None:
    await services.tickets.appoint_staff("telegram", "2401")
    staff = emulator.phone(2401, "Boss")
    await staff.send("/addexpert 2402 Zhou patents,cooking en")
    [refused] = await staff.read()
    assert "Unknown: cooking" in refused.text
    await staff.send("/addexpert 2402 Zhou agency-exam en")
    [added] = await staff.read()
    assert "Zhou is now a volunteer expert for agency-exam" in added.text
    talent = emulator.phone(3401)
    await ask_for_an_expert(talent)
    zhou = emulator.phone(2402)
    [announcement] = await zhou.read()
    ticket = claim_label(announcement).split("#T-")[1]
    await staff.read()
    await staff.send(f"/keytalent {ticket}")
    [marked] = await staff.read()
    assert "key talent" in marked.text
    async with services.store.transaction() as tx:
        stored = await tx.session.get(Ticket, int(ticket))
    assert stored is not None
    assert stored.priority == 1


async def test_an_expert_cannot_use_staff_commands(
    bot: Runtime, emulator: BotApiEmulator, services: Services
) -> None:
    await services.tickets.enrol("telegram", "2403", "Wu")
    wu = emulator.phone(2403)
    await wu.send("/addexpert 2404 Sneaky patents en")
    [reply] = await wu.read()
    assert reply.text == "That command is for staff."
    async with services.store.transaction() as tx:
        roles = await tx.session.scalars(select(User.role).where(User.external_id == "2404"))
        assert list(roles) == []
        refused = await tx.session.scalars(
            select(AuditEvent.subject).where(AuditEvent.action == "refused")
        )
        assert list(refused) == ["/addexpert"]


@pytest.mark.parametrize("command", sorted(set(StaffDesk.COMMANDS) - set(Desk.COMMANDS)))
async def test_an_expert_is_refused_every_staff_command(services: Services, command: str) -> None:
    await services.tickets.enrol("test", "wu", "Wu")
    [reply] = await route(Inbound("test", "wu", "k1", text=f"/{command} 1 2"), services)
    assert reply.text == "That command is for staff."


async def test_staff_enrol_an_expert_by_an_id_of_their_own_channel(services: Services) -> None:
    await services.tickets.appoint_staff("telegram", "2406")
    await services.tickets.appoint_staff("web", "boss")
    by_telegram = Inbound("telegram", "2406", "k1", text="/addexpert mei-7 Mei")
    [refused] = await route(by_telegram, services)
    assert refused.text.startswith("Use /addexpert")
    [added] = await route(Inbound("web", "boss", "k2", text="/addexpert mei-7 Mei"), services)
    assert added.text == "Mei is now a volunteer expert."
    async with services.store.transaction() as tx:
        enrolled = await tx.session.scalars(select(User.channel).where(User.external_id == "mei-7"))
        assert list(enrolled) == ["web"]


async def test_with_no_expert_available_the_experts_group_sees_the_ticket(
    emulator: BotApiEmulator, services: Services
) -> None:
    settings = telegram_settings(emulator, experts_group_chat_id=-100123)
    services.settings = settings
    async with running(settings, services):
        await ask_for_an_expert(emulator.phone(3402))
        await emulator.wait_for(lambda: bool(emulator.messages.get(-100123)))
    [announcement] = emulator.messages[-100123]
    assert "New question #T-" in announcement.text
    assert announcement.buttons[0][1].startswith("1:c:")


async def test_in_the_experts_group_each_tap_counts_and_the_case_card_comes_privately(
    emulator: BotApiEmulator, services: Services
) -> None:
    group_id = -100124
    settings = telegram_settings(emulator, experts_group_chat_id=group_id)
    services.settings = settings
    async with running(settings, services):
        await ask_for_an_expert(emulator.phone(3403))
        await emulator.wait_for(lambda: bool(emulator.messages.get(group_id)))
        [announcement] = emulator.messages[group_id]
        member, expert = emulator.phone(4403, "Member"), emulator.phone(2403, "Sun")
        await member.tap_in_group(announcement, claim_label(announcement))
        [refused] = await member.read()
        assert "for volunteer experts" in refused.text
        await services.tickets.enrol("telegram", "2403", "Sun", specialties=["agency-exam"])
        await expert.tap_in_group(announcement, claim_label(announcement))
        [card] = await expert.read()
    assert "#T-" in card.text
    assert QUESTION in card.text
    assert emulator.messages[group_id] == [announcement]


async def test_a_talent_may_let_the_expert_see_their_name_and_contacts(
    bot: Runtime, emulator: BotApiEmulator, services: Services
) -> None:
    await services.tickets.enrol("telegram", "2501", "He", specialties=["agency-exam"])
    talent = emulator.phone(3501, "Amira")
    await talent.send(QUESTION)
    await talent.read()
    await talent.send("/expert")
    [queued] = await talent.read()
    await talent.tap(queued, "Show the expert my first name")
    [name_ok] = await talent.read()
    assert "first name" in name_ok.text
    await talent.tap(queued, "Show the expert my contact details")
    await talent.read()
    await talent.send("Call me on +86 138 0000 1111")
    await talent.read()
    expert = emulator.phone(2501)
    [announcement] = await expert.read()
    await expert.tap(announcement, claim_label(announcement))
    [card] = await expert.read()
    assert "Talent Amira (#T-" in card.text
    assert "+86 138 0000 1111" in card.text


async def test_staff_reassign_a_ticket_and_both_experts_are_told(
    bot: Runtime, emulator: BotApiEmulator, services: Services
) -> None:
    first, talent = await claimed_ticket(emulator, services, 2601, 3601)
    await services.tickets.enrol("telegram", "2602", "Feng")
    await services.tickets.appoint_staff("telegram", "2603")
    staff, second = emulator.phone(2603), emulator.phone(2602)
    await staff.send("/reassign 1 2602")
    [done] = await staff.read()
    assert "now belongs to Feng" in done.text
    [away] = await first.read()
    assert "gave #T-1 to another expert" in away.text
    [card] = await second.read()
    assert "Ticket #T-1" in card.text
    [told] = await talent.read()
    assert "Expert Feng" in told.text
    assert "is now looking at your question" in told.text


async def test_staff_closing_a_ticket_an_expert_holds_tell_that_expert(
    bot: Runtime, emulator: BotApiEmulator, services: Services
) -> None:
    holder, talent = await claimed_ticket(emulator, services, 2604, 3604)
    await services.tickets.appoint_staff("telegram", "2605")
    staff = emulator.phone(2605)
    await staff.send("/close 1 Handled by phone")
    await staff.read()
    [told] = await holder.read()
    assert told.text == "Staff closed #T-1, which you held: Handled by phone"
    [rate] = await talent.read()
    assert rate.text.startswith("Your question #T-1 has been closed: Handled by phone")


async def test_a_question_with_a_deadline_goes_ahead_in_the_queue(services: Services) -> None:
    async with services.store.transaction() as tx:
        calm = await tx.user("test", "calm", "en")
        rushed = await tx.user("test", "rushed", "en")
        await tx.request_expert(calm, "How do licences work?", "en", None)
        _, place, _ = await tx.request_expert(
            rushed, "My opposition deadline is in 2 weeks!", "en", None
        )
    waiting = await services.tickets.waiting()
    assert waiting[0].question == "My opposition deadline is in 2 weeks!"
    # The talent is told the place the queue gives them.
    assert place == 1


async def test_a_message_to_a_deleted_chat_closes_the_ticket_as_unreachable(
    bot: Runtime, emulator: BotApiEmulator, services: Services
) -> None:
    expert, _talent = await claimed_ticket(emulator, services, 2701, 3701)
    emulator.deleted.add(3701)
    await expert.send("Are you there?")
    [told] = await expert.read()
    assert "can no longer be reached" in told.text


async def test_numbers_dates_emoji_and_long_messages_reach_the_expert_and_grant_nothing(
    bot: Runtime, emulator: BotApiEmulator, services: Services
) -> None:
    expert, talent = await claimed_ticket(emulator, services, 2703, 3703)
    await expert.send("How many patents do you hold in China?")
    await talent.read()
    for answer in ("2", "1", "👍", "2026-03-01", "The office action says: " + "novelty " * 200):
        await talent.send(answer)
        [relayed] = await expert.read()
        assert relayed.text.endswith(answer.rstrip())
    assert await talent.quiet(0.5) == []
    async with services.store.transaction() as tx:
        ticket = await tx.session.scalar(select(Ticket))
        talent_user = await tx.session.scalar(select(User).where(User.external_id == "3703"))
    assert ticket is not None
    assert talent_user is not None
    assert not ticket.contacts_shared
    assert not talent_user.share_name


async def test_a_typed_rating_counts_and_a_question_after_it_is_answered_not_kept(
    bot: Runtime, emulator: BotApiEmulator, services: Services
) -> None:
    expert, talent = await claimed_ticket(emulator, services, 2704, 3704)
    await expert.send("/close 1 Explained the exam rules")
    await expert.read()
    await talent.read()
    await talent.send("4")
    [thanks] = await talent.read()
    assert "Thank you for rating" in thanks.text
    await talent.send(QUESTION)
    [answer] = await talent.read()
    assert "Foreign Permanent Residence ID Card" in answer.text
    async with services.store.transaction() as tx:
        ticket = await tx.session.scalar(select(Ticket))
    assert ticket is not None
    assert (ticket.rating, ticket.rating_comment) == (4, None)


async def test_a_talent_who_is_forgotten_takes_their_ticket_off_every_expert_desk(
    bot: Runtime, emulator: BotApiEmulator, services: Services
) -> None:
    expert, talent = await claimed_ticket(emulator, services, 2705, 3705)
    await talent.send("/forget")
    [confirm] = await talent.read()
    await talent.tap(confirm, next(label for label, _ in confirm.buttons))
    await talent.read()
    [told] = await expert.read()
    assert "asked the bot to erase their data; the ticket is closed" in told.text
    waiting = emulator.phone(3706)
    await ask_for_an_expert(waiting)
    await expert.read()
    await waiting.send("/forget")
    [confirm] = await waiting.read()
    await waiting.tap(confirm, next(label for label, _ in confirm.buttons))
    await waiting.read()
    await emulator.wait_for(lambda: not expert.received[announcement_index(expert)].buttons)
    assert "is closed" in expert.received[announcement_index(expert)].text
    await expert.send("/queue")
    [queue] = await expert.read()
    assert "#T-" not in queue.text
    async with services.store.transaction() as tx:
        statuses = set(await tx.session.scalars(select(Ticket.status)))
    assert statuses == {"closed"}


def announcement_index(expert: Phone) -> int:
    return max(n for n, sent in enumerate(expert.received) if "#T-2" in sent.text)


def photo(file_id: str) -> list[dict[str, object]]:
    return [{"file_id": file_id, "file_unique_id": file_id, "width": 900, "height": 900}]


def document(file_id: str) -> dict[str, object]:
    return {"file_id": file_id, "file_unique_id": file_id, "file_name": "contract.pdf"}


STICKER = {"file_id": "st", "file_unique_id": "st", "width": 512, "height": 512,
           "is_animated": False, "is_video": False, "type": "regular"}  # fmt: skip


async def test_photos_and_documents_pass_both_ways_and_earlier_ones_come_with_the_ticket(
    bot: Runtime, emulator: BotApiEmulator, services: Services
) -> None:
    await services.tickets.enrol("telegram", "2706", "Qian", specialties=["agency-exam"])
    expert, talent = emulator.phone(2706), emulator.phone(3707)
    await talent.send_content(photo=photo("office-action"))
    [kept] = await talent.read()
    assert "they will see it" in kept.text
    await ask_for_an_expert(talent)
    [announcement] = await expert.read()
    await expert.tap(announcement, claim_label(announcement))
    card, earlier = await expert.read(2)
    assert "📎 photo" in card.text
    assert (earlier.text, earlier.file) == ("Talent #T-1: 📎 photo", "office-action")
    await talent.read()

    await talent.send_content(document=document("contract"), caption="my contract")
    [relayed] = await expert.read()
    assert (relayed.text, relayed.file) == ("Talent #T-1: 📎 document my contract", "contract")
    await talent.send_content(sticker=STICKER)
    [refused] = await talent.read()
    assert "Only text, photos and documents reach the expert" in refused.text

    await expert.send_content(photo=photo("form"), caption="Fill in this form")
    [from_expert] = await talent.read()
    assert from_expert.file == "form"
    assert from_expert.text.endswith(": 📎 photo Fill in this form")
    # With the expert's name before it, a caption as long as Telegram allows is too long for
    # one: the words go first, then the photo.
    await expert.send_content(photo=photo("form"), caption="x" * 1024)
    words, alone = await talent.read(2)
    assert words.text.endswith("x" * 1024)
    assert (alone.text, alone.file) == ("", "form")
    await expert.send_content(sticker=STICKER)
    [told] = await expert.read()
    assert "The talent sees text, photos and documents only" in told.text
    await expert.send("/")
    [help_text] = await expert.read()
    assert "Volunteer expert commands" in help_text.text


async def test_a_talent_may_withdraw_a_request_waiting_or_claimed(
    bot: Runtime, emulator: BotApiEmulator, services: Services
) -> None:
    expert, talent = await claimed_ticket(emulator, services, 2707, 3708)
    await talent.send("/expert")
    [already] = await talent.read()
    assert "An expert already has your question #T-1" in already.text
    await talent.send("/cancel")
    [withdrawn] = await talent.read()
    assert "Your request #T-1 is withdrawn" in withdrawn.text
    [told] = await expert.read()
    assert told.text == "The talent withdrew #T-1; the ticket is closed."
    await talent.send(QUESTION)
    [answer] = await talent.read()
    assert "Foreign Permanent Residence ID Card" in answer.text
    await talent.send("/cancel")
    [nothing] = await talent.read()
    assert "You have no request for an expert open" in nothing.text

    waiting = emulator.phone(3709)
    await ask_for_an_expert(waiting)
    [announcement] = await expert.read()
    queued = waiting.received[-1]
    await waiting.tap(queued, "Withdraw my request")
    [withdrawn] = await waiting.read()
    assert "Your request #T-2 is withdrawn" in withdrawn.text
    await emulator.wait_for(lambda: not announcement.buttons)
    assert announcement.text == "#T-2 is closed."
    async with services.store.transaction() as tx:
        reasons = set(await tx.session.scalars(select(Ticket.close_reason)))
    assert reasons == {"withdrawn"}


async def test_an_expert_is_understood_however_a_phone_writes_ticket_numbers(
    bot: Runtime, emulator: BotApiEmulator, services: Services
) -> None:
    await services.tickets.enrol("telegram", "2708", "Lu", specialties=["agency-exam"])
    expert, first, second = emulator.phone(2708), emulator.phone(3710), emulator.phone(3711)
    await first.send("/expert")
    await first.read()
    [announcement] = await expert.read()
    assert "(no question written yet)" in announcement.text
    await ask_for_an_expert(second)
    await expert.read()
    await expert.send("/claim T1")
    assert "Ticket #T-1" in (await expert.read())[0].text
    await first.read()
    await expert.send("/claim ＃T-2")
    assert "Ticket #T-2" in (await expert.read())[0].text
    await second.read()
    await expert.send("#T-2: Hello, I can help.")
    [relayed] = await second.read()
    assert relayed.text.endswith(": Hello, I can help.")
    await expert.send("#T-9 hi")
    [not_yours] = await expert.read()
    assert not_yours.text == "You do not hold #T-9. Yours: #T-1, #T-2."
    await expert.send("/close 1\nExplained the exam rules")
    [closed] = await expert.read()
    assert "You closed" in closed.text
    await expert.send("T-1 was a similar case: the answer is yes.")
    [only_one] = await second.read()
    assert only_one.text.endswith(": T-1 was a similar case: the answer is yes.")


async def test_the_queue_says_how_many_more_wait_than_it_lists(
    bot: Runtime, emulator: BotApiEmulator, services: Services
) -> None:
    async with services.store.transaction() as tx:
        for number in range(23):
            talent = await tx.user("test", f"waiting-{number}", "en")
            await tx.request_expert(talent, f"Question {number}", "en", None)
    await services.tickets.enrol("telegram", "2709", "Ma")
    expert = emulator.phone(2709)
    await expert.send("/queue")
    [queue] = await expert.read()
    assert queue.text.count("#T-") == 20
    assert queue.text.endswith("… and 3 more.")


async def test_an_edited_message_reaches_the_other_side_marked_as_a_change(
    bot: Runtime, emulator: BotApiEmulator, services: Services
) -> None:
    expert, talent = await claimed_ticket(emulator, services, 2710, 3712)
    typo = await talent.send("The fee was 500 yaun")
    await expert.read()
    await talent.edit(typo, "The fee was 500 yuan")
    [changed] = await expert.read()
    assert changed.text.endswith(": ✏️ The fee was 500 yuan")
    first = await expert.send("Pay it within 2 moths")
    await talent.read()
    await expert.edit(first, "Pay it within 2 months")
    [fixed] = await talent.read()
    assert fixed.text.endswith(": ✏️ Pay it within 2 months")
    # An edited command is not done again.
    command = await talent.send("/help")
    await talent.read()
    await talent.edit(command, "/help ")
    await talent.send("/mydata")
    [after] = await talent.read()
    assert "Your id" in after.text


async def test_an_expert_chooses_the_language_the_bot_writes_to_them_in(
    bot: Runtime, emulator: BotApiEmulator, services: Services
) -> None:
    await services.tickets.enrol("telegram", "2711", "Gao", specialties=["agency-exam"])
    expert = emulator.phone(2711)
    await expert.send("/language zh")
    [chosen] = await expert.read()
    assert "中文" in chosen.text
    await ask_for_an_expert(emulator.phone(3713))
    [announcement] = await expert.read()
    assert "新问题 #T-1" in announcement.text


async def test_a_file_shared_in_one_ticket_stays_out_of_the_next_and_captions_stay_masked(
    bot: Runtime, emulator: BotApiEmulator, services: Services
) -> None:
    expert, talent = await claimed_ticket(emulator, services, 2712, 3714)
    await talent.send_content(photo=photo("contract-1"), caption="my contract for ticket 1")
    await expert.read()
    await expert.send("/close 1 Done")
    await expert.read()
    await talent.read()
    await talent.send_content(photo=photo("passport"), caption="Call me on +86 138 0000 1111")
    await talent.read()
    await ask_for_an_expert(talent)
    [announcement] = await expert.read()
    await expert.tap(announcement, claim_label(announcement))
    card, passport = await expert.read(2)
    assert "contract" not in card.text
    assert passport.file == "passport"
    assert "+86 138" not in passport.text
    assert "[phone hidden]" in passport.text
    assert await expert.quiet(0.5) == []


async def test_an_old_withdraw_button_does_not_close_a_newer_request(
    bot: Runtime, emulator: BotApiEmulator, services: Services
) -> None:
    talent = emulator.phone(3715)
    await ask_for_an_expert(talent)
    old = talent.received[-1]
    await talent.send("/cancel")
    await talent.read()
    await talent.send("/expert")
    await talent.read()
    await talent.tap(old, "Withdraw my request")
    [reply] = await talent.read()
    assert reply.text == "Your request #T-1 is already closed."
    async with services.store.transaction() as tx:
        statuses = dict((await tx.session.execute(select(Ticket.id, Ticket.status))).all())
    assert statuses == {1: "closed", 2: "open"}


async def test_a_withdrawal_after_a_claim_that_got_in_first_tells_that_expert(
    services: Services,
) -> None:
    expert_user = await services.tickets.enrol("test", "2713", "Xu")
    async with services.store.transaction() as tx:
        talent_user = await tx.user("test", "3716", "en")
        ticket, _, _ = await tx.request_expert(talent_user, "A question", "en", None)
    async with services.store.transaction() as tx:
        talent_user = await tx.user("test", "3716", "en")
        seen = await tx.ticket_of(talent_user)
        assert seen is not None
        assert seen.expert_id is None
        if services.store.engine.dialect.name == "postgresql":
            # Another process claims it meanwhile (SQLite lets one transaction write at once).
            assert await services.tickets.claim(ticket.id, expert_user, 3) == "claimed"
        assert await tx.withdraw(ticket.id, talent_user)
        holder = await tx.holder(ticket.id)
    if services.store.engine.dialect.name == "postgresql":
        assert holder == expert_user.id
    async with services.store.transaction() as tx:
        assert not await tx.withdraw(ticket.id, talent_user)


async def test_writing_after_the_ticket_closed_reaches_nobody_and_says_so(
    bot: Runtime, emulator: BotApiEmulator, services: Services
) -> None:
    expert, talent = await claimed_ticket(emulator, services, 2702, 3702)
    await expert.send("/close 1 Answered")
    await expert.read()
    await talent.read()
    await expert.send("One more thing")
    [reply] = await expert.read()
    assert "no ticket to reply to" in reply.text
    assert await talent.quiet(0.5) == []


async def test_the_case_card_shows_what_the_talent_asked_before_handing_off(
    bot: Runtime, emulator: BotApiEmulator, services: Services
) -> None:
    await services.tickets.enrol("telegram", "2703", "Lu", specialties=["agency-exam"])
    talent = emulator.phone(3703)
    await talent.send("How do I register a trademark in China?")
    await talent.read()
    await ask_for_an_expert(talent)
    expert = emulator.phone(2703)
    [announcement] = await expert.read()
    await expert.tap(announcement, claim_label(announcement))
    [card] = await expert.read()
    assert "How do I register a trademark in China?" in card.text


async def test_claims_releases_and_closes_are_in_the_audit_log(
    bot: Runtime, emulator: BotApiEmulator, services: Services
) -> None:
    expert, _talent = await claimed_ticket(emulator, services, 2801, 3801)
    await expert.send("/release 1")
    await expert.read()
    await expert.send("/claim 1")
    await expert.read()
    await expert.send("/close 1 Done")
    await expert.read()
    async with services.store.transaction() as tx:
        events = [(e.action, e.subject) for e in await tx.session.scalars(select(AuditEvent))]
    assert ("claim", "T-1") in events
    assert ("release", "T-1") in events
    assert ("close", "T-1") in events
    assert ("role-change", "telegram:2801") in events


async def test_staff_are_told_which_entries_are_stale_and_what_they_cite(
    bot: Runtime, emulator: BotApiEmulator, services: Services
) -> None:
    await services.tickets.appoint_staff("telegram", "2901")
    staff = emulator.phone(2901)
    assert await notifications.report_stale(services, date(2026, 12, 1)) == 0
    count = await notifications.report_stale(services, date(2030, 1, 1))
    assert count == len(services.matcher.knowledge)
    messages = await staff.read()
    text = "\n".join(m.text for m in messages)
    assert "agent-exam.foreigners, reviewed 2026-11-24" in text
    assert "国知办函运字〔2021〕517号" in text


async def test_staff_see_the_top_unanswered_questions_in_the_chat(
    bot: Runtime, emulator: BotApiEmulator, services: Services
) -> None:
    await services.tickets.appoint_staff("telegram", "2902")
    staff, talent = emulator.phone(2902), emulator.phone(3902)
    await staff.send("/unanswered")
    [empty] = await staff.read()
    assert "Nothing unanswered so far" in empty.text
    for question in ("Can I patent a recipe for dumplings?", "can i patent my dumpling recipe"):
        await talent.send(question)
        await talent.read()
    await staff.send("/unanswered")
    [top] = await staff.read()
    assert "2× Can I patent a recipe for dumplings?" in top.text


async def test_an_expert_drafts_an_entry_from_a_closed_ticket_and_staff_are_told(
    emulator: BotApiEmulator, services: Services, tmp_path: Path
) -> None:
    folder = tmp_path / "knowledge"
    shutil.copytree(bundled("knowledge"), folder)
    settings = telegram_settings(emulator, knowledge_dir=folder)
    services.settings = settings
    async with running(settings, services):
        await services.tickets.appoint_staff("telegram", "2951")
        expert, talent = await claimed_ticket(emulator, services, 2952, 3952)
        await expert.send("Yes, under the pilot: ask the Beijing IP Office.")
        await talent.read()
        await expert.send("/close 1 Explained the pilot")
        [closed] = await expert.read()
        await expert.tap(closed, "Draft a knowledge-base entry from this")
        [thanks] = await expert.read()
        assert "is with staff" in thanks.text
        staff = emulator.phone(2951)
        await emulator.wait_for(
            lambda: any("drafts/ticket-1.yaml" in m.text for m in staff.received)
        )
    draft = yaml.safe_load((folder / "drafts" / "ticket-1.yaml").read_text(encoding="utf-8"))
    [entry] = draft["entries"]
    assert entry["en"]["question"] == QUESTION
    assert entry["en"]["answer"] == "Yes, under the pilot: ask the Beijing IP Office."
    [line] = (folder / "drafts" / "questions.jsonl").read_text(encoding="utf-8").splitlines()
    assert json.loads(line) == {"q": QUESTION, "expect": "draft.ticket-1"}
    assert len(load_knowledge(folder)) == len(load_knowledge(bundled("knowledge")))
