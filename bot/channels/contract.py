"""The channel contract: what a channel module provides so that the runtime can start it and
the outbox can reach its users.

A channel turns what arrives on it into `Inbound`s (stored before it acknowledges them, keyed
by its own message key) and has the runtime answer them; it renders the neutral `OutMessage`
(text in the reply markup, choices, an attachment) in its own form. Nothing outside the
channel's module imports the channel's library.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Protocol

from aiohttp.web import RouteDef

from bot.conversation import OutMessage, Recipient

if TYPE_CHECKING:
    from bot.runtime import Runtime


@dataclass(frozen=True)
class Capabilities:
    """What a channel can show and do, which the outbox and renderers respect."""

    edits: bool
    """It can replace a message sent before (a Claim button taken back)."""
    buttons: bool
    """Choices appear as buttons; otherwise as numbered lines the user answers by number."""
    files: bool
    """Photos and documents can be passed on through it."""
    max_text: int
    """The longest text one message may have, in characters."""
    delivery_window: timedelta | None = None
    """How long after the user's last message the bot may still write to them, if limited."""


class Channel(Protocol):
    """One way users reach the bot: Telegram, WeChat, the web chat, a test's own channel."""

    name: str
    """The name its users are stored under (`Recipient.channel`)."""
    capabilities: Capabilities

    def routes(self) -> Sequence[RouteDef]:
        """The web routes it serves on the process's web server (none for most channels)."""
        ...

    async def start(self, runtime: "Runtime") -> str:
        """Begin receiving: register a webhook or start polling (the web server already
        listens); what it runs as, in a few words for the start-up line. Raises
        `ChannelError` with a one-line reason if it cannot."""
        ...

    async def stop(self) -> None:
        """Stop receiving and let go of its connections; what it stored stays stored."""
        ...

    async def send(self, to: Recipient, message: OutMessage) -> str | None:
        """Send a message; the channel's reference to it, if it has one. Raises `Unreachable`
        if the recipient cannot be reached."""
        ...

    async def edit(self, to: Recipient, ref: str, message: OutMessage) -> None:
        """Replace a message sent before (only called if `capabilities.edits`)."""
        ...


class ChannelError(Exception):
    """A channel cannot start: its settings are wrong, or its service refused them."""


class ChannelUnreachable(ChannelError):
    """A channel cannot start: its service stayed out of reach for as long as the bot waits."""
