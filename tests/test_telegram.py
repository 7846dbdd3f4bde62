"""Telegram end to end: the real PTB Application over HTTP, against the Bot API emulator.

Tests act as users: they type and tap on a `Phone` and read what arrived in the chat. Nothing
in the bot is mocked or patched.
"""

import asyncio
import shutil
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text

from bot.channels.telegram import split_html
from bot.knowledge import load_knowledge
from bot.matching import Matcher
from bot.paths import bundled
from bot.runtime import Runtime, configured_channels
from bot.services import Services
from bot.store.models import InboxUpdate, Message
from tests.botapi import BAD_GATEWAY, ApiError, BotApiEmulator, Phone, free_port
from tests.conftest import running, telegram_settings
from tests.conversations import QUESTION


async def test_start_greets_in_the_users_language_and_offers_a_choice(
    bot: Runtime, emulator: BotApiEmulator
) -> None:
    phone = emulator.phone(1001, "Mei", language="zh-hans")
    await phone.send("/start")
    [greeting] = await phone.read()
    assert greeting.text.startswith("您好，Mei")
    assert greeting.buttons == [("English", "1:l:en"), ("中文", "1:l:zh")]
    await phone.tap(greeting, "English")
    [chosen] = await phone.read()
    assert "answer in English" in chosen.text
    assert {"", "zh"} <= emulator.commands.keys()
    assert [c["command"] for c in emulator.commands["zh"]] == [
        "start",
        "help",
        "language",
        "expert",
        "cancel",
        "privacy",
        "mydata",
        "forget",
    ]


async def test_a_clear_question_gets_the_right_answer_with_its_source(
    bot: Runtime, emulator: BotApiEmulator
) -> None:
    phone = emulator.phone(1002)
    await phone.send(QUESTION)
    [answer] = await phone.read()
    assert "Foreign Permanent Residence ID Card" in answer.text
    assert "Source:" in answer.text
    assert ("👍 Helpful", answer.buttons[0][1]) == answer.buttons[0]


async def test_a_vague_question_gets_choices_and_a_tap_answers(
    bot: Runtime, emulator: BotApiEmulator
) -> None:
    phone = emulator.phone(1003)
    await phone.send("patent")
    [choices] = await phone.read()
    assert "not sure which" in choices.text
    first_label = choices.buttons[0][0]
    await phone.tap(choices, first_label)
    [answer] = await phone.read()
    assert answer.text.startswith(first_label)
    assert "Source:" in answer.text


async def test_not_helpful_offers_an_expert(bot: Runtime, emulator: BotApiEmulator) -> None:
    phone = emulator.phone(1004)
    await phone.send(QUESTION)
    [answer] = await phone.read()
    await phone.tap(answer, "👎 Not helpful")
    [offer] = await phone.read()
    assert "Sorry that didn't help" in offer.text
    assert any(
        label == "Talk to an expert" and data.startswith("1:x:") for label, data in offer.buttons
    )
    await phone.tap(offer, "Talk to an expert")
    [queued] = await phone.read()
    assert "#T-" in queued.text


async def test_a_sticker_gets_a_polite_reply_and_a_photo_is_kept(
    bot: Runtime, emulator: BotApiEmulator, services: Services
) -> None:
    phone = emulator.phone(1005)
    await phone.send_content(sticker={"file_id": "st1", "file_unique_id": "u1", "width": 512,
                                      "height": 512, "is_animated": False, "is_video": False,
                                      "type": "regular"})  # fmt: skip
    [reply] = await phone.read()
    assert "I can read text questions only" in reply.text
    photo = [{"file_id": "small", "file_unique_id": "s", "width": 90, "height": 90},
             {"file_id": "large", "file_unique_id": "l", "width": 900, "height": 900}]  # fmt: skip
    await phone.send_content(photo=photo)
    [kept] = await phone.read()
    assert "I have kept your photo" in kept.text
    async with services.store.transaction() as tx:
        attachments = list(
            await tx.session.scalars(select(Message.attachment).where(Message.direction == "in"))
        )
    assert {"kind": "photo", "file_id": "large"} in attachments


async def test_user_text_is_escaped_in_html_replies(bot: Runtime, emulator: BotApiEmulator) -> None:
    phone = emulator.phone(1006)
    await phone.send("What about <b>hi</b> & quantum gravity?")
    [reply] = await phone.read()
    assert "“What about <b>hi</b> & quantum gravity?”" in reply.text
    assert emulator.errors == []


async def test_a_redelivered_update_is_answered_once(
    bot: Runtime, emulator: BotApiEmulator
) -> None:
    phone = emulator.phone(1007)
    update = await phone.send(QUESTION)
    await phone.read()
    await emulator.redeliver(update)
    assert await phone.quiet(1.0) == []


async def test_tapping_the_same_button_twice_is_answered_once(
    bot: Runtime, emulator: BotApiEmulator
) -> None:
    phone = emulator.phone(1008)
    await phone.send(QUESTION)
    [answer] = await phone.read()
    await phone.tap(answer, "👍 Helpful")
    await phone.read()
    await phone.tap(answer, "👍 Helpful")
    assert await phone.quiet(1.0) == []


async def test_forged_and_stale_buttons_are_refused_politely(
    bot: Runtime, emulator: BotApiEmulator
) -> None:
    phone = emulator.phone(1009)
    await phone.send(QUESTION)
    [answer] = await phone.read()
    await phone.tap_data(answer, "1:e:an.entry.that.never.was")
    [gone] = await phone.read()
    assert "no longer available" in gone.text
    await phone.tap_data(answer, "0:y:1")
    [expired] = await phone.read()
    assert "This button has expired" in expired.text


async def test_an_answer_over_telegrams_limit_is_split_on_paragraphs(
    emulator: BotApiEmulator, services: Services, tmp_path: Path
) -> None:
    folder = tmp_path / "knowledge"
    shutil.copytree(bundled("knowledge"), folder)
    paragraph = "This paragraph explains one more detail of the long answer. " * 10
    answer = "\n\n".join(f"{n}. {paragraph.strip()}" for n in range(10))
    assert 5_500 < len(answer) < 6_500
    block = "\n".join(f"        {line}" if line else "" for line in answer.splitlines())
    (folder / "long.yaml").write_text(
        "entries:\n  - id: test.long\n    topic: service\n"
        "    en:\n      question: What is the zebra giraffe elephant answer?\n"
        f"      answer: |\n{block}\n"
        "    zh:\n      question: 斑马长颈鹿大象的答案是什么\n      answer: 回答。\n"
        "    sources:\n      - title: Test\n    reviewed: 2026-01-01\n",
        encoding="utf-8",
    )
    services.matcher = Matcher(load_knowledge(folder))
    async with running(telegram_settings(emulator), services):
        phone = emulator.phone(1010)
        await phone.send("What is the zebra giraffe elephant answer?")
        first, second = await phone.read(2)
    assert len(first.text) <= 4096
    assert len(second.text) <= 4096
    assert first.buttons == []
    assert second.buttons
    assert "0. This paragraph" in first.text
    assert "9. This paragraph" in second.text


def test_splitting_keeps_paragraphs_whole() -> None:
    paragraphs = ["a" * 3000, "b" * 3000, "c" * 100]
    parts = split_html("\n\n".join(paragraphs))
    assert parts == ["a" * 3000, "b" * 3000 + "\n\n" + "c" * 100]


async def test_a_429_is_waited_out_and_retried_never_shown(
    bot: Runtime, emulator: BotApiEmulator
) -> None:
    emulator.fail("sendMessage", ApiError(429, "Too Many Requests: retry after 1", retry_after=1))
    phone = emulator.phone(1011)
    await phone.send(QUESTION)
    [answer] = await phone.read(within=15)
    assert "Foreign Permanent Residence ID Card" in answer.text
    assert ("sendMessage", "Too Many Requests: retry after 1") in emulator.errors


async def test_an_answer_telegram_still_asks_to_wait_for_is_sent_after_the_wait(
    emulator: BotApiEmulator, services: Services
) -> None:
    """When the rate limiter's retries run out on "retry after", the answer is not lost (nor
    replaced by an apology): it goes out once Telegram takes it."""
    async with running(telegram_settings(emulator, telegram_max_retries=0), services):
        emulator.fail(
            "sendMessage", ApiError(429, "Too Many Requests: retry after 1", retry_after=1)
        )
        phone = emulator.phone(1018)
        await phone.send(QUESTION)
        [answer] = await phone.read(within=15)
        assert "Foreign Permanent Residence ID Card" in answer.text
        assert await phone.quiet() == []


async def test_an_answer_telegram_could_not_take_is_sent_once_it_can(
    bot: Runtime, emulator: BotApiEmulator
) -> None:
    emulator.fail("sendMessage", BAD_GATEWAY, BAD_GATEWAY)
    phone = emulator.phone(1013)
    await phone.send(QUESTION)
    [answer] = await phone.read(within=15)
    assert "Foreign Permanent Residence ID Card" in answer.text
    assert await phone.quiet() == []
    assert emulator.errors == [("sendMessage", "Bad Gateway")] * 2


async def test_an_update_whose_answer_is_held_back_stays_unhandled_in_the_inbox(
    bot: Runtime, emulator: BotApiEmulator, services: Services
) -> None:
    """So that if this process dies meanwhile, another one takes the update over."""
    emulator.fail("sendMessage", BAD_GATEWAY, BAD_GATEWAY)
    phone = emulator.phone(1014)
    update = await phone.send(QUESTION)

    async def handled_at() -> object:
        async with services.store.transaction() as tx:
            return await tx.session.scalar(
                select(InboxUpdate.handled_at).where(InboxUpdate.update_id == update["update_id"])
            )

    # The second refusal comes from handling it again: the first handling is long over.
    await emulator.wait_for(lambda: len(emulator.errors) == 2, within=10)
    assert await handled_at() is None
    await phone.read(within=15)
    deadline = asyncio.get_running_loop().time() + 5
    while await handled_at() is None:
        assert asyncio.get_running_loop().time() < deadline, "never marked handled"
        await asyncio.sleep(0.05)


async def test_answers_held_back_for_telegram_keep_the_order_of_the_questions(
    bot: Runtime, emulator: BotApiEmulator
) -> None:
    emulator.fail("sendMessage", BAD_GATEWAY)
    phone = emulator.phone(1016)
    await phone.send(QUESTION)
    await phone.send("How do I pledge a patent to get a loan?")
    first, second = await phone.read(2, within=15)
    assert "Foreign Permanent Residence ID Card" in first.text
    assert "pledge" in second.text.lower()
    assert await phone.quiet() == []


async def test_a_tap_is_acted_on_when_telegram_cannot_take_its_acknowledgement(
    bot: Runtime, emulator: BotApiEmulator
) -> None:
    phone = emulator.phone(1015)
    await phone.send("patent")
    [choices] = await phone.read()
    emulator.fail("answerCallbackQuery", BAD_GATEWAY)
    await phone.tap(choices, choices.buttons[0][0])
    [answer] = await phone.read()
    assert "Source:" in answer.text


async def test_a_failing_update_is_logged_and_the_user_gets_an_apology(
    bot: Runtime, emulator: BotApiEmulator, services: Services
) -> None:
    async with services.store.engine.begin() as connection:
        await connection.execute(text("DROP TABLE feedback"))
        await connection.execute(text("DROP TABLE messages"))
    phone = emulator.phone(1012)
    await phone.send(QUESTION)
    [apology] = await phone.read()
    assert "something went wrong on my side" in apology.text
    await phone.send("/help")
    [again] = await phone.read()
    assert "something went wrong" in again.text


async def test_two_hundred_talents_asking_at_once_each_get_one_right_answer(
    bot: Runtime, emulator: BotApiEmulator
) -> None:
    phones = [emulator.phone(5000 + n) for n in range(200)]
    await asyncio.gather(*(phone.send(QUESTION) for phone in phones))
    await emulator.wait_for(lambda: all(phone.received for phone in phones), within=60)
    await asyncio.sleep(0.5)
    for phone in phones:
        [answer] = phone.received
        assert "Foreign Permanent Residence ID Card" in answer.text
    assert emulator.limit_hits == 0
    assert [e for e in emulator.errors if "Too Many" not in e[1]] == []


async def test_webhook_mode_refuses_a_wrong_secret_and_answers_a_right_one(
    emulator: BotApiEmulator, services: Services
) -> None:
    port = free_port()
    settings = telegram_settings(
        emulator, telegram_webhook_url=f"http://127.0.0.1:{port}", web_port=port
    )
    async with running(settings, services):
        assert emulator.webhook_url == f"http://127.0.0.1:{port}/telegram"
        phone: Phone = emulator.phone(1013)
        forged = phone.update(text=QUESTION)
        assert await emulator.post_to_webhook(forged, "not-the-secret") == 403
        assert await emulator.post_to_webhook(forged, None) == 403
        assert await phone.quiet(1.0) == []
        assert await emulator.deliver(phone.update(text=QUESTION)) == 200
        [answer] = await phone.read()
        assert "Foreign Permanent Residence ID Card" in answer.text


async def test_a_second_poller_gets_a_clear_message_and_exit_status_1(
    emulator: BotApiEmulator,
    services: Services,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    emulator.other_poller = True
    settings = telegram_settings(emulator, pid_file=tmp_path / "ipbot.pid")
    runtime = Runtime(settings, services, configured_channels(settings, services))
    status = await asyncio.wait_for(runtime.serve(), timeout=20)
    assert status == 1
    assert "Another process is already receiving this bot's updates" in caplog.text


async def test_the_webhook_refuses_what_is_not_an_update_and_the_bot_goes_on(
    emulator: BotApiEmulator, services: Services
) -> None:
    port = free_port()
    settings = telegram_settings(
        emulator, telegram_webhook_url=f"http://127.0.0.1:{port}", web_port=port
    )
    async with running(settings, services):
        bodies: list[Any] = [[], "text", {}, {"update_id": "one"}, {"update_id": 1, "message": "x"}]
        for body in bodies:
            assert await emulator.post_to_webhook(body, emulator.webhook_secret) == 400
        phone = emulator.phone(1019)
        assert await emulator.deliver(phone.update(text=QUESTION)) == 200
        [answer] = await phone.read()
        assert "Foreign Permanent Residence ID Card" in answer.text
