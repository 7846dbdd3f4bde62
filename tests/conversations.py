"""Conversations the tests share: a question the knowledge base answers, talking to the
handlers directly, and a talent and an expert on the emulator's phones reaching a ticket."""

import itertools

from bot.conversation import Inbound, OutMessage
from bot.router import route
from bot.services import Services
from tests.botapi import BotApiEmulator, Phone, Sent

QUESTION = "Can a foreigner take the patent agent exam?"

_keys = itertools.count(1)


async def say(
    services: Services,
    text: str = "",
    *,
    user: str = "talent-1",
    button: str | None = None,
    key: str | None = None,
    hint: str | None = None,
) -> list[OutMessage]:
    inbound = Inbound(
        channel="test",
        user_key=user,
        message_key=key or f"k{next(_keys)}",
        text=text,
        button=button,
        language_hint=hint,
    )
    return await route(inbound, services)


def payloads(reply: OutMessage) -> list[str]:
    return [button.payload for button in reply.buttons]


def claim_label(card: Sent) -> str:
    return next(label for label, data in card.buttons if data.startswith("1:c:"))


async def ask_for_an_expert(talent: Phone) -> None:
    await talent.send(QUESTION)
    await talent.read()
    await talent.send("/expert")
    [queued] = await talent.read()
    assert "#T-" in queued.text


async def claimed_ticket(
    emulator: BotApiEmulator, services: Services, expert_id: int, talent_id: int
) -> tuple[Phone, Phone]:
    await services.tickets.enrol("telegram", str(expert_id), "Qian", specialties=["agency-exam"])
    expert, talent = emulator.phone(expert_id), emulator.phone(talent_id)
    await ask_for_an_expert(talent)
    [card] = await expert.read()
    await expert.tap(card, claim_label(card))
    await expert.read()
    await talent.read()
    return expert, talent
