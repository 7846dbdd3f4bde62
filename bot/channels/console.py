"""The console channel: one talent chatting in a terminal, or from a script through a pipe.

Buttons appear as numbered choices; typing the number picks one (the talent handler reads a
bare number as a choice from the last list it showed).
"""

import uuid
from collections.abc import Iterable
from html.parser import HTMLParser
from typing import TextIO

from bot.channels import CONSOLE
from bot.conversation import Inbound, OutMessage
from bot.router import route
from bot.services import Services

CHANNEL = CONSOLE


class _PlainText(HTMLParser):
    """Telegram-style HTML as terminal text: tags dropped, links followed by their address."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._href: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._href = dict(attrs).get("href")

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._href:
            self.parts.append(f" ({self._href})")
            self._href = None

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def plain_text(markup: str) -> str:
    """What an HTML message reads as on a terminal."""
    parser = _PlainText()
    parser.feed(markup)
    parser.close()
    return "".join(parser.parts)


def show(replies: Iterable[OutMessage], out: TextIO) -> None:
    """Print replies, each button as a numbered choice."""
    for reply in replies:
        out.write("\n" + plain_text(reply.text) + "\n")
        for number, button in enumerate(reply.buttons, start=1):
            out.write(f"  {number}) {button.label}\n")
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
