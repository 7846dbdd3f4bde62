"""The channel-neutral conversation model: what comes in, what goes out.

Every channel (console, Telegram, later WeChat) turns what a user does into an `Inbound` and
shows an `OutMessage` in its own way; handlers see nothing else.
"""

from dataclasses import dataclass, field
from typing import Protocol

from bot.languages import Language


@dataclass(frozen=True)
class Button:
    """A choice offered with a message; `payload` is what comes back when it is picked."""

    label: str
    payload: str


# Marks a relayed message as a new version of one sent before.
EDITED = "✏️"
# What talents and experts can pass each other through the bot besides text.
RELAYED_KINDS = ("photo", "document")


@dataclass(frozen=True)
class Attachment:
    """Something a user sent that is not text; `file_id` is the channel's handle to fetch it."""

    kind: str
    file_id: str | None = None


@dataclass(frozen=True)
class OutMessage:
    """Something the bot says: HTML text (Telegram's subset) and the choices that go with it;
    with `attachment`, a photo or document a user sent, passed on after the text."""

    text: str
    language: Language
    buttons: tuple[Button, ...] = field(default_factory=tuple)
    attachment: Attachment | None = None


@dataclass(frozen=True)
class Inbound:
    """Something a user did: typed text or picked a button.

    `message_key` is the channel's own key for this event (Telegram's update id, for example);
    the store refuses a key it has seen, so a redelivered message is never answered twice.
    `recovered` says the channel hands it in again because the process handling it stopped
    before it was done: if it was stored but its replies never went out (the channel tells the
    store when they have), it is given them now, once.
    """

    channel: str
    user_key: str
    message_key: str
    text: str = ""
    button: str | None = None
    language_hint: str | None = None
    display_name: str | None = None
    attachment: Attachment | None = None
    recovered: bool = False
    # The user changed a message they had sent: the new text comes as an inbound of its own.
    edited: bool = False


@dataclass(frozen=True)
class Recipient:
    """Someone to send to: their channel and their id on it."""

    channel: str
    external_id: str


class Unreachable(Exception):
    """The recipient cannot be reached: they blocked the bot, or their chat is gone."""


class Outbox(Protocol):
    """Sends to any user on their own channel; every channel implements it."""

    async def send(self, to: Recipient, message: OutMessage) -> str | None:
        """Send a message; returns the channel's reference to it, if it has one."""

    async def edit(self, to: Recipient, ref: str, message: OutMessage) -> None:
        """Replace a message sent before (to take back a Claim button, for example)."""
