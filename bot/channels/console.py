"""The console channel: one talent chatting in a terminal, or from a script through a pipe.

Buttons appear as numbered choices; typing the number picks one (the talent handler reads a
bare number as a choice from the last list it showed).
"""

import uuid
from collections.abc import Iterable
from typing import TextIO

from bot.channels import CONSOLE
from bot.channels.plain import rendered
from bot.conversation import Inbound, OutMessage
from bot.router import route
from bot.services import Services

CHANNEL = CONSOLE


def show(replies: Iterable[OutMessage], out: TextIO) -> None:
    """Print replies, each button as a numbered choice."""
    for reply in replies:
        out.write("\n" + rendered(reply) + "\n")
    out.flush()


async def chat(services: Services, user: str, lines: TextIO, out: TextIO) -> None:
    """Talk with one talent until the input ends."""
    session = uuid.uuid4().hex[:12]
    interactive = lines.isatty()
    show(await route(_inbound(user, session, 0, "/start"), services), out)
    number = 0
    while True:
        if interactive:
            out.write("\nyou> ")
            out.flush()
        line = lines.readline()
        if not line:
            break
        number += 1
        show(await route(_inbound(user, session, number, line), services), out)
    if interactive:
        out.write("\n")


def _inbound(user: str, session: str, number: int, text: str) -> Inbound:
    return Inbound(
        channel=CHANNEL,
        user_key=user,
        message_key=f"{session}:{number}",
        text=text.rstrip("\n"),
        language_hint=None,
    )
