"""The Telegram channel (python-telegram-bot): `channel` receives and answers, `sending`
renders and sends, `intake` keeps updates until handled, `pacing` keeps Telegram's limits,
`http` carries the Bot API's requests over aiohttp."""

from bot.channels.telegram.channel import (
    WEBHOOK_PATH,
    TelegramChannel,
    application_builder,
    webhook_secret,
)
from bot.channels.telegram.sending import split_html

__all__ = [
    "WEBHOOK_PATH",
    "TelegramChannel",
    "application_builder",
    "split_html",
    "webhook_secret",
]
