"""The channel-neutral conversation model: what comes in, what goes out.

Every channel (console, Telegram, later WeChat) turns what a user does into an `Inbound` and
shows an `OutMessage` in its own way; handlers see nothing else.
"""

from dataclasses import dataclass, field

from bot.knowledge import Language


@dataclass(frozen=True)
class Button:
    """A choice offered with a message; `payload` is what comes back when it is picked."""

    label: str
    payload: str


@dataclass(frozen=True)
class OutMessage:
    """Something the bot says: HTML text (Telegram's subset) and the choices that go with it."""

    text: str
    language: Language
    buttons: tuple[Button, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class Attachment:
    """Something a user sent that is not text; `file_id` is the channel's handle to fetch it."""

    kind: str
    file_id: str | None = None


@dataclass(frozen=True)
class Inbound:
    """Something a user did: typed text or picked a button.

    `message_key` is the channel's own key for this event (Telegram's update id, for example);
    the store refuses a key it has seen, so a redelivered message is never answered twice.
    """

    channel: str
    user_key: str
    message_key: str
    text: str = ""
    button: str | None = None
    language_hint: str | None = None
    display_name: str | None = None
    attachment: Attachment | None = None
