"""Channels: how users reach the bot (console, Telegram) and how its replies reach them."""

import re

from bot.conversation import Recipient

# The name each channel keeps its users under (its module's `CHANNEL`); a user on any other
# cannot be reached. Named here so that `ipbot` can check one without loading the channels.
CONSOLE = "console"
TELEGRAM = "telegram"
CHANNELS = (CONSOLE, TELEGRAM)

# A user id as Telegram gives it: a number of 64 bits at most.
TELEGRAM_USER_ID = re.compile(r"[0-9]{1,19}")
# What a user id looks like on each channel that gives its users ids of a set form.
USER_ID_FORMATS: dict[str, re.Pattern[str]] = {TELEGRAM: TELEGRAM_USER_ID}


def valid_user_id(channel: str, text: str) -> bool:
    """Whether `text` can be a user's id on `channel` (any text can, on a channel whose ids
    have no set form)."""
    form = USER_ID_FORMATS.get(channel)
    return form is None or form.fullmatch(text) is not None


def experts_group(chat_id: int | None) -> Recipient | None:
    """The experts' group chat (`EXPERTS_GROUP_CHAT_ID`, a Telegram group), if there is one."""
    return Recipient(TELEGRAM, str(chat_id)) if chat_id is not None else None
