"""The least a bot built on PTB does per update: the floor under `ipbot run`'s figures.

The same `Application` as `ipbot run` (its aiohttp requests, rate limiter, a chat's updates
in order, webhook or long polling, settings from the environment) with one handler, which
sends every text message the same answer-sized reply with buttons: nothing is stored and
nothing is matched. `bench/throughput.py --bot floor` runs it in `ipbot run`'s place, so
what is left of the bot's CPU per update is what the bot's own work costs.
"""

import sys
from pathlib import Path

# Run as a script, the folder on the path is bench/: the repository root is wanted.
if __name__ == "__main__":
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, LinkPreviewOptions, Update
from telegram.constants import ParseMode
from telegram.ext import Application, ContextTypes, MessageHandler, filters

from bot import heap
from bot.channels.telegram import WEBHOOK_PATH, application_builder
from bot.channels.telegram.pacing import ChatOrderedProcessor
from bot.config import Settings

ANSWER = "A foreign national may sit the patent agent examination. " * 12
BUTTONS = InlineKeyboardMarkup(
    [[InlineKeyboardButton("Helpful", callback_data="1:y:123456")]]
    + [[InlineKeyboardButton("Related question", callback_data="1:e:patent-agent")]] * 3
)


async def _answer(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message = update.effective_message
    assert message is not None
    await context.bot.send_message(
        message.chat_id,
        ANSWER,
        parse_mode=ParseMode.HTML,
        link_preview_options=LinkPreviewOptions(is_disabled=True),
        reply_markup=BUTTONS,
    )


async def _settle(_application: Application) -> None:
    heap.settle()


def build(settings: Settings) -> Application:
    """The application `ipbot run` builds, with the one handler above (and its heap settled
    once started, as `ipbot run`'s is)."""
    application = (
        application_builder(settings)
        .concurrent_updates(ChatOrderedProcessor())
        .post_init(_settle)
        .build()
    )
    application.add_handler(MessageHandler(filters.ChatType.PRIVATE & filters.TEXT, _answer))
    return application


def main() -> None:
    """Serve until stopped (SIGTERM or SIGINT)."""
    settings = Settings()
    application = build(settings)
    if settings.telegram_webhook_url is None:
        application.run_polling(allowed_updates=Update.ALL_TYPES)
        return
    application.run_webhook(
        listen=settings.web_listen,
        port=settings.web_port,
        url_path=WEBHOOK_PATH,
        webhook_url=settings.telegram_webhook_url.rstrip("/") + "/" + WEBHOOK_PATH,
        allowed_updates=Update.ALL_TYPES,
    )


if __name__ == "__main__":
    main()
