"""The talent's conversation, through the channel-neutral handler, on SQLite and PostgreSQL."""

import asyncio

from sqlalchemy import func, select

from bot.services import Services
from bot.store.models import Feedback, Message, Ticket
from tests.conversations import payloads, say


async def stored(services: Services, direction: str | None = None) -> list[Message]:
    async with services.store.transaction() as tx:
        query = select(Message).order_by(Message.id)
        if direction:
            query = query.where(Message.direction == direction)
        return list(await tx.session.scalars(query))


async def test_clear_question_is_answered_from_its_entry_with_source(services: Services) -> None:
    [reply] = await say(services, "Can a foreigner take the patent agent exam?")
    assert "Permanent Residence" in reply.text
    assert "Source:" in reply.text
    assert "Reviewed 2026" in reply.text
    question = (await stored(services, "in"))[-1]
    assert question.action == "answer"
    assert question.entry_id == "agent-exam.foreigners"
    assert question.kb_version == services.matcher.knowledge.version
    assert question.score is not None
    assert question.score >= services.settings.answer_threshold_en


async def test_chinese_question_is_answered_in_chinese(services: Services) -> None:
    [reply] = await say(services, "外国人可以考专利代理师吗？")
    assert reply.language == "zh"
    assert "永久居留" in reply.text
    assert "来源" in reply.text


async def test_redelivered_message_is_answered_once(services: Services) -> None:
    first = await say(services, "Can a foreigner take the patent agent exam?", key="update-7")
    again = await say(services, "Can a foreigner take the patent agent exam?", key="update-7")
    assert first
    assert again == []
    assert len(await stored(services, "in")) == 1
    assert len(await stored(services, "out")) == 1


async def test_short_vague_question_gets_choices_and_a_number_picks_one(
    services: Services,
) -> None:
    [choices] = await say(services, "专利")
    assert choices.language == "zh"
    assert 3 <= len(choices.buttons) <= 5
    first_option = choices.buttons[0].payload.split(":")[2]
    [answer] = await say(services, "1")
    entry = services.matcher.knowledge.get(first_option)
    assert entry is not None
    assert entry.zh.question in answer.text


async def test_number_outside_the_list_names_the_valid_range(services: Services) -> None:
    [choices] = await say(services, "patent")
    [reply] = await say(services, "9")
    assert f"1 to {len(choices.buttons)}" in reply.text


async def test_a_number_after_one_outside_the_list_still_picks_from_it(
    services: Services,
) -> None:
    [choices] = await say(services, "patent")
    [again] = await say(services, "9")
    assert again.buttons == choices.buttons
    [answer] = await say(services, "1")
    entry = services.matcher.knowledge.get(choices.buttons[0].payload.split(":")[2])
    assert entry is not None
    assert entry.en.question in answer.text


async def test_number_without_a_list_asks_for_words(services: Services) -> None:
    await say(services, "hello")
    [reply] = await say(services, "3")
    assert "no list to choose from" in reply.text


async def test_empty_and_blank_messages_get_a_polite_prompt(services: Services) -> None:
    for text in ("", "   \n\t "):
        [reply] = await say(services, text)
        assert "empty" in reply.text
    assert len(await stored(services, "in")) == 2


async def test_very_long_message_is_kept_whole_and_offered_an_expert(services: Services) -> None:
    text = "x" * 10_000
    [reply] = await say(services, text)
    assert "10000 characters" in reply.text
    [question] = await stored(services, "in")
    assert f"1:x:{question.id}" in payloads(reply)
    [question] = await stored(services, "in")
    assert question.text == text


async def test_emoji_only_message_asks_for_words(services: Services) -> None:
    [reply] = await say(services, "😀🎉👍")
    assert "written in words" in reply.text


async def test_control_characters_are_removed_before_storing(services: Services) -> None:
    [reply] = await say(services, "Can a foreigner\x00 take the patent\x07 agent exam?")
    assert "Permanent Residence" in reply.text
    [question] = await stored(services, "in")
    assert question.text == "Can a foreigner take the patent agent exam?"


async def test_mixed_chinese_and_english_question_is_answered_in_chinese(
    services: Services,
) -> None:
    [reply] = await say(services, "外国人能不能考patent agent exam？")
    assert reply.language == "zh"
    assert reply.buttons


async def test_an_english_question_naming_a_chinese_place_is_answered_in_english(
    services: Services,
) -> None:
    [reply] = await say(services, "What are Beijing's 两区 (Two Zones)?")
    assert reply.language == "en"
    assert "Two Zones" in reply.text
    [reply] = await say(services, "What is 职务发明?", user="talent-2")
    assert reply.language == "en"
    [reply] = await say(services, "rep office 能不能代理中国专利申请", user="talent-3")
    assert reply.language == "zh"


async def test_unhelpful_answer_offers_an_expert_and_is_remembered(services: Services) -> None:
    [answer] = await say(services, "Can a foreigner take the patent agent exam?")
    not_helpful = next(p for p in payloads(answer) if p.startswith("1:n:"))
    [reply] = await say(services, button=not_helpful)
    [question, _] = await stored(services, "in")
    assert f"1:x:{question.id}" in payloads(reply)
    async with services.store.transaction() as tx:
        feedback = list(await tx.session.scalars(select(Feedback)))
    assert [(f.entry_id, f.helpful) for f in feedback] == [("agent-exam.foreigners", False)]


async def test_feedback_button_for_someone_elses_answer_has_expired(services: Services) -> None:
    [answer] = await say(services, "Can a foreigner take the patent agent exam?", user="alice")
    helpful = next(p for p in payloads(answer) if p.startswith("1:y:"))
    [reply] = await say(services, button=helpful, user="mallory")
    assert "expired" in reply.text
    async with services.store.transaction() as tx:
        assert await tx.session.scalar(select(func.count()).select_from(Feedback)) == 0


async def test_forged_and_unknown_buttons_have_expired(services: Services) -> None:
    for payload in ("0:e:agent-exam.foreigners", "1:zz", "1:y:abc", "garbage", "1:l:fr"):
        [reply] = await say(services, button=payload)
        assert "expired" in reply.text, payload


async def test_button_for_an_entry_that_no_longer_exists_says_so(services: Services) -> None:
    [reply] = await say(services, button="1:e:patent.deleted-topic")
    assert "no longer available" in reply.text


async def test_a_language_is_chosen_by_its_name_or_code_as_talents_write_them(
    services: Services,
) -> None:
    for argument, expected in (("中文", "zh"), ("Chinese", "zh"), ("zh-CN", "zh"),
                               ("English", "en"), ("英文", "en"), ("en-US", "en")):  # fmt: skip
        [reply] = await say(services, f"/language {argument}")
        assert reply.language == expected, argument
        assert not reply.buttons, argument
    [usage] = await say(services, "/language klingon")
    assert usage.buttons


async def test_chosen_language_wins_over_the_language_of_the_message(
    services: Services,
) -> None:
    [reply] = await say(services, "/language zh")
    assert reply.language == "zh"
    [answer] = await say(services, "Can a foreigner take the patent agent exam?")
    assert answer.language == "zh"
    assert "永久居留" in answer.text


async def test_start_greets_in_the_channel_language_and_offers_both(services: Services) -> None:
    [reply] = await say(services, "/start", hint="zh-hans")
    assert reply.language == "zh"
    assert payloads(reply) == ["1:l:en", "1:l:zh"]


async def test_greetings_and_thanks_are_answered_without_matching(services: Services) -> None:
    said = (
        ("Hello!", "What would you like"),
        ("Hello, good morning", "What would you like"),
        ("你好，我有个问题", "想了解"),
        ("谢谢", "不客气"),
        ("thanks 😊", "You're welcome"),
        ("Thanks, that helps", "You're welcome"),
        ("好的，谢谢", "不客气"),
        ("谢谢您的帮助", "不客气"),
        ("明白了", "不客气"),
        ("ok", "Type your question"),
    )
    for text, expected in said:
        [reply] = await say(services, text)
        assert expected in reply.text, text
    assert all(m.action is None for m in await stored(services, "in"))


async def test_yes_to_the_offer_of_an_expert_passes_the_question_on(services: Services) -> None:
    [choices] = await say(services, "What happens to my patents if my company goes bankrupt?")
    none_of_these = next(p for p in payloads(choices) if p.startswith("1:o:"))
    [offer] = await say(services, button=none_of_these)
    assert "Shall I pass it on?" in offer.text
    [queued] = await say(services, "yes please")
    assert "#T-" in queued.text
    [offer] = await say(services, "要", user="talent-2")
    assert "要转给专家吗" not in offer.text
    [notice] = await say(services, "How do I open a bank account?", user="talent-3")
    assert "outside what I cover" in notice.text
    [ok] = await say(services, "ok", user="talent-3")
    assert "Type your question" in ok.text
    async with services.store.transaction() as tx:
        [ticket] = list(await tx.session.scalars(select(Ticket)))
    assert ticket.question == "What happens to my patents if my company goes bankrupt?"


async def test_asking_for_an_expert_twice_keeps_one_ticket_with_the_question(
    services: Services,
) -> None:
    await say(services, "How do I value my patent portfolio for an IPO?")
    [first] = await say(services, "/expert")
    [second] = await say(services, "转人工")
    assert "#T-" in first.text
    assert "#T-" in second.text
    async with services.store.transaction() as tx:
        tickets = list(await tx.session.scalars(select(Ticket)))
    assert len(tickets) == 1
    assert tickets[0].question == "How do I value my patent portfolio for an IPO?"
    assert tickets[0].status == "open"


async def test_an_old_expert_button_hands_over_the_question_it_was_shown_under(
    services: Services,
) -> None:
    [first] = await say(services, "Do I need a Chinese patent agency to file as a foreigner?")
    await say(services, "Can a foreigner take the patent agent exam?")
    not_helpful = next(p for p in payloads(first) if p.startswith("1:n:"))
    [sorry] = await say(services, button=not_helpful)
    expert_payload = next(p for p in payloads(sorry) if p.startswith("1:x"))
    await say(services, button=expert_payload)
    async with services.store.transaction() as tx:
        [ticket] = list(await tx.session.scalars(select(Ticket)))
    assert ticket.question == "Do I need a Chinese patent agency to file as a foreigner?"
    assert ticket.topic == "patents"


async def test_every_message_and_reply_is_stored(services: Services) -> None:
    await say(services, "/start")
    await say(services, "Can a foreigner take the patent agent exam?")
    await say(services, "😀")
    messages = await stored(services)
    assert [m.direction for m in messages] == ["in", "out"] * 3


async def test_a_question_outside_ip_is_told_so_and_offered_an_expert(
    services: Services,
) -> None:
    [reply] = await say(services, "How do I renew my residence permit?")
    assert "outside what I cover" in reply.text
    assert "12345" in reply.text
    [question] = await stored(services, "in")
    assert payloads(reply) == [f"1:x:{question.id}"]
    assert question.action == "handoff"


async def test_the_unsaid_right_is_asked_with_buttons_naming_rights(services: Services) -> None:
    [reply] = await say(services, "How long does protection last?")
    assert "a patent, a trademark or something else" in reply.text
    rights = {"A patent", "A trademark", "Copyright", "A trade secret"}
    labels = [button.label for button in reply.buttons]
    assert len(labels) == 3
    assert set(labels[:2]) <= rights
    assert labels[2] == "None of these"
    [answer] = await say(services, "2")
    assert "Source:" in answer.text


async def test_the_unsaid_place_is_asked_in_chinese_too(services: Services) -> None:
    [reply] = await say(services, "有人侵犯了我的权利，怎么办？")
    assert reply.language == "zh"
    labels = {button.label for button in reply.buttons}
    assert {"在中国", "在其他国家"} <= labels


async def test_two_requests_for_an_expert_at_once_open_one_ticket_and_both_are_answered(
    services: Services,
) -> None:
    """As when a talent's two messages reach two processes of the bot at the same moment."""
    talents = [f"in-a-hurry-{number}" for number in range(10)]
    for user in talents:
        await say(services, "Can a foreigner take the patent agent exam?", user=user)
    replies = await asyncio.gather(
        *(say(services, "/expert", user=user) for user in talents for _ in range(2))
    )
    assert all("#T-" in reply.text for [reply] in replies)
    async with services.store.transaction() as tx:
        assert await tx.session.scalar(select(func.count()).select_from(Ticket)) == len(talents)
