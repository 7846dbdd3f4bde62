"""The Telegram channel: python-telegram-bot around the channel-neutral handlers.

A talent's message or button tap becomes an `Inbound`; the runtime answers it; the replies go
out as Telegram HTML with inline keyboards (`sending`). Updates come by long polling, or by
webhook on the process's web server (`TELEGRAM_WEBHOOK_URL`), and each is stored before
Telegram hears that it arrived (`intake`): polled ones are confirmed with the next poll, a
webhook request is answered once its update is stored.
"""

import asyncio
import hashlib
import hmac
import logging
from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta

from aiohttp import web
from telegram import BotCommand, Update, User
from telegram.constants import ChatType, MessageLimit
from telegram.error import (
    BadRequest,
    Conflict,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
)
from telegram.ext import (
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from bot import startup
from bot.channels import TELEGRAM
from bot.channels.contract import Capabilities, ChannelError, ChannelUnreachable
from bot.channels.telegram.http import AiohttpRequest
from bot.channels.telegram.intake import HOLD_BACK, Intake
from bot.channels.telegram.pacing import ChatOrderedProcessor, PacedRateLimiter
from bot.channels.telegram.sending import TelegramSender
from bot.config import Settings
from bot.conversation import Attachment, Inbound, OutMessage, Recipient
from bot.knowledge import LANGUAGES, Language
from bot.runtime import Runtime
from bot.services import Services
from bot.store import StoreUnavailable
from bot.store.inbox import Inbox
from bot.text import clean

CHANNEL = TELEGRAM
COMMANDS = ("start", "help", "language", "expert", "cancel", "privacy", "mydata", "forget")
WEBHOOK_PATH = "telegram"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
# How long one long poll waits for updates, in seconds.
POLL_SECONDS = 10
_log = logging.getLogger(__name__)


def application_builder(settings: Settings) -> ApplicationBuilder:
    """PTB's builder for the configured bot: its token and Bot API address, requests over
    aiohttp, and sends paced to Telegram's limits."""
    assert settings.telegram_bot_token is not None
    return (
        Application.builder()
        .token(settings.telegram_bot_token.get_secret_value())
        .base_url(settings.telegram_api_base_url)
        .request(AiohttpRequest())
        # A long poll holds its connection, so it has one of its own.
        .get_updates_request(AiohttpRequest(connections=1))
        .rate_limiter(
            PacedRateLimiter(
                chat_per_second=settings.telegram_chat_messages_per_second,
                overall_max_rate=settings.telegram_messages_per_second,
                overall_time_period=1,
                group_max_rate=settings.telegram_group_messages_per_minute,
                group_time_period=60,
                max_retries=settings.telegram_max_retries,
            )
        )
    )


def webhook_secret(settings: Settings) -> str:
    """The secret Telegram must send with every webhook request.

    Set TELEGRAM_WEBHOOK_SECRET to choose it; otherwise it is derived from the bot token, so
    every process of the same bot agrees on it without more configuration.
    """
    if settings.telegram_webhook_secret is not None:
        return settings.telegram_webhook_secret.get_secret_value()
    assert settings.telegram_bot_token is not None
    token = settings.telegram_bot_token.get_secret_value()
    return hashlib.sha256(f"webhook:{token}".encode()).hexdigest()


class TelegramChannel:
    """The bot on Telegram, by long polling or by webhook."""

    name = CHANNEL
    capabilities = Capabilities(
        edits=True, buttons=True, files=True, max_text=MessageLimit.MAX_TEXT_LENGTH
    )

    def __init__(self, settings: Settings, services: Services) -> None:
        self.settings = settings
        self.services = services
        self.lease = timedelta(seconds=settings.telegram_update_lease_seconds)
        processor = ChatOrderedProcessor(on_handled=self._handled)
        # No updater: the channel receives updates itself (`_poll`, `_on_webhook`).
        builder = application_builder(settings).updater(None).concurrent_updates(processor)
        self.application = builder.build()
        self.application.bot_data["channel"] = self
        self.intake = Intake(Inbox(services.store, self.lease), self.application.update_queue)
        self.sender = TelegramSender(self.application.bot)
        self._runtime: Runtime | None = None
        self._polling: asyncio.Task[None] | None = None
        private = filters.ChatType.PRIVATE
        self.application.add_handler(MessageHandler(private & filters.TEXT, _on_text))
        self.application.add_handler(CallbackQueryHandler(_on_button))
        self.application.add_handler(MessageHandler(private & ~filters.TEXT, _on_other_content))
        self.application.add_error_handler(_on_error)

    def routes(self) -> Sequence[web.RouteDef]:
        """The webhook, when updates come that way."""
        return (
            [web.post(f"/{WEBHOOK_PATH}", self._on_webhook)]
            if self.settings.telegram_webhook_url
            else []
        )

    async def start(self, runtime: Runtime) -> str:
        """Reach Telegram, register the commands, and receive."""
        self._runtime = runtime
        if not await self._reach(runtime.stopping):
            return "Telegram not reached before the stop"
        await self.register_commands()
        await self.application.start()
        # The inbox job takes over the updates a stopped process left unhandled, first as the
        # jobs start: after the runtime has sent what that process stored but never showed, so
        # that nothing is shown twice. Those of one that died just now are leased to it a
        # little longer, and taken over when the lease ends.
        renewal = self.lease.total_seconds() / 3
        runtime.every(renewal, self._keep_inbox, "inbox", first=0)
        if self.settings.telegram_webhook_url:
            await self._set_webhook()
            mode = "webhook"
        else:
            await self.application.bot.delete_webhook()
            self._polling = asyncio.create_task(self._poll())
            mode = "long polling"
        return f"on Telegram as @{self.application.bot.username} ({mode})"

    async def stop(self) -> None:
        """Stop receiving, finish what is queued, and close the bot's connections."""
        self.intake.close()
        if self._polling is not None:
            self._polling.cancel()
            await asyncio.gather(self._polling, return_exceptions=True)
        if self.application.running:
            await self.application.stop()
        await self.application.shutdown()

    async def send(self, to: Recipient, message: OutMessage) -> str | None:
        """Send to a user's private chat (its id is the user's); the last part's message id."""
        return await self.sender.send(to, message)

    async def edit(self, to: Recipient, ref: str, message: OutMessage) -> None:
        """Replace a message sent before."""
        await self.sender.edit(to, ref, message)

    async def answer(self, inbound: Inbound) -> list[OutMessage]:
        """The runtime's replies to an inbound."""
        assert self._runtime is not None
        return await self._runtime.answer(inbound)

    async def register_commands(self) -> None:
        """Tell Telegram the bot's commands, described in English and in Chinese."""
        templates = self.services.templates
        for language in LANGUAGES:
            commands = [
                BotCommand(command, templates.label(language, f"command_{command}"))
                for command in COMMANDS
            ]
            await self.application.bot.set_my_commands(
                commands, language_code=None if language == "en" else language
            )

    async def _reach(self, stop: asyncio.Event) -> bool:
        """Initialize the bot (its getMe), trying again while Telegram cannot be reached, for
        up to START_WAIT_SECONDS: the network, or a proxy to Telegram, may come up after the
        bot. False if told to stop meanwhile."""
        try:
            reached = await startup.reach(
                "Telegram",
                self.application.initialize,
                lambda error: isinstance(error, NetworkError),
                self.settings.start_wait_seconds,
                stop,
            )
        except BaseException as error:
            # PTB leaves a bot whose getMe failed with its connections open.
            await self.application.bot.shutdown()
            raise self._refusal(error) from None
        if not reached:
            await self.application.bot.shutdown()
        return reached

    def _refusal(self, error: BaseException) -> BaseException:
        """What a failed start says, in one line: never the token itself."""
        if isinstance(error, InvalidToken):
            # PTB's message quotes the token: it stays out of the output.
            return ChannelError("Telegram refused TELEGRAM_BOT_TOKEN: check it with @BotFather")
        if isinstance(error, NetworkError):
            return ChannelUnreachable(
                f"cannot reach Telegram ({self.settings.telegram_api_base_url}): {error}"
            )
        return error

    async def _set_webhook(self) -> None:
        """Ask Telegram to post updates to TELEGRAM_WEBHOOK_URL."""
        assert self.settings.telegram_webhook_url is not None
        url = f"{self.settings.telegram_webhook_url.rstrip('/')}/{WEBHOOK_PATH}"
        try:
            await self.application.bot.set_webhook(
                url, secret_token=webhook_secret(self.settings), allowed_updates=Update.ALL_TYPES
            )
        except BadRequest as error:
            raise ChannelError(
                f"Telegram refused TELEGRAM_WEBHOOK_URL ({self.settings.telegram_webhook_url}): "
                f"{error.message}"
            ) from None

    async def _on_webhook(self, request: web.Request) -> web.Response:
        """An update Telegram posts: checked, stored, queued, and only then acknowledged."""
        given = request.headers.get(SECRET_HEADER, "")
        if not hmac.compare_digest(given.encode(), webhook_secret(self.settings).encode()):
            return web.Response(status=403, text="Wrong secret token")
        try:
            posted = await request.json()
            if not isinstance(posted, dict) or type(posted.get("update_id")) is not int:
                raise ValueError("no update id")
            update = Update.de_json(posted, self.application.bot)
        except (ValueError, TypeError, KeyError, AttributeError):
            return web.Response(status=400, text="Not a Telegram update")
        await self.intake.receive(update)
        return web.Response()

    async def _poll(self) -> None:
        """Fetch updates until cancelled; each poll confirms those stored since the last."""
        offset: int | None = None
        failed = 0
        while True:
            try:
                updates = await self.application.bot.get_updates(
                    offset=offset, timeout=POLL_SECONDS, allowed_updates=Update.ALL_TYPES
                )
            except Conflict:
                _log.error(
                    "Another process is already receiving this bot's updates (Telegram "
                    "answered 409 Conflict). Only one process may poll a token: stop the other "
                    "one, or run every process in webhook mode (TELEGRAM_WEBHOOK_URL)."
                )
                assert self._runtime is not None
                self._runtime.stop(status=1)
                return
            except (NetworkError, RetryAfter) as error:
                failed += 1
                _log.warning("Could not fetch updates, retrying: %s", error)
                await asyncio.sleep(HOLD_BACK.pause(failed))
                continue
            failed = 0
            for update in updates:
                await self.intake.receive(update)
                offset = update.update_id + 1

    async def _handled(self, update: object) -> None:
        if isinstance(update, Update):
            await self.intake.handled(update)

    async def _keep_inbox(self) -> None:
        """Renew the lease on the updates this process handles; take over abandoned ones."""
        await self.intake.inbox.renew()
        await self.intake.recover(self.application.bot)


def _channel(application: Application) -> TelegramChannel:
    channel = application.bot_data["channel"]
    assert isinstance(channel, TelegramChannel)
    return channel


async def _reply(
    update: Update, context: ContextTypes.DEFAULT_TYPE, chat_id: int, inbound: Inbound
) -> None:
    channel = _channel(context.application)
    updates = channel.intake
    if updates.waits_behind(update):
        # An earlier message of this chat waits for Telegram: this one is answered after it.
        updates.hold_back(update, tried=False)
        return
    if updates.recovered(update):
        inbound = replace(inbound, recovered=True)
    try:
        for reply in await channel.answer(inbound):
            await channel.sender.send_to_chat(chat_id, reply)
    except Forbidden as error:
        # Blocked since, or (tapping in the experts' group) never started a chat with the bot.
        _log.info("Update %s not answered: chat %s refuses the bot (%s)", update.update_id,
                  chat_id, error)  # fmt: skip
    except (NetworkError, RetryAfter) as error:
        if isinstance(error, BadRequest):
            raise
        # Telegram is out of reach (or its answer was lost), or still asks the bot to wait
        # after the rate limiter's own retries: what was decided is stored, and handling the
        # update again, as after a crash, sends what is still owed.
        wait = error.retry_after if isinstance(error, RetryAfter) else 0
        pause = updates.hold_back(update, at_least=_seconds(wait))
        _log.warning(
            "Update %s not answered, Telegram is out of reach or busy (%s): %s",
            update.update_id,
            error,
            f"trying again in {pause:.0f} s" if pause is not None else "left for the next start",
        )
        return
    # Noted with the update's mark: under load one statement notes many.
    updates.answered(update, inbound.message_key)


def _seconds(wait: float | timedelta) -> float:
    """A wait as PTB gives it (seconds, or a timedelta in newer versions), in seconds."""
    return wait.total_seconds() if isinstance(wait, timedelta) else float(wait)


def _inbound(
    update: Update, user: User, text: str, attachment: Attachment | None = None
) -> Inbound:
    """A message update as an Inbound; its update id makes a redelivery recognisable."""
    return Inbound(
        channel=CHANNEL,
        user_key=str(user.id),
        message_key=f"update:{update.update_id}",
        text=text,
        language_hint=user.language_code,
        display_name=user.first_name,
        attachment=attachment,
        edited=update.edited_message is not None,
    )


async def _on_text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message, user = update.effective_message, update.effective_user
    assert message is not None
    assert user is not None
    if update.edited_message is not None and (message.text or "").startswith("/"):
        return  # an edited command is not done a second time
    await _reply(update, context, message.chat_id, _inbound(update, user, message.text or ""))


async def _on_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    query = update.callback_query
    assert query is not None
    tapper = query.from_user.id
    chat = query.message.chat if query.message else None
    chat_id = chat.id if chat else tapper
    message_id = query.message.message_id if query.message else 0
    # The user's app sends the data, so it may be forged: control characters go (PostgreSQL
    # refuses NUL in text), as from anything typed.
    data = clean(query.data or "")
    # The same button tapped twice is one event: the second tap is not answered again. In the
    # experts' group each member's tap is their own, and what it brings (a case card) is for
    # them alone: it goes to their private chat with the bot.
    in_group = chat is not None and chat.type != ChatType.PRIVATE
    key = f"tap:{chat_id}:{message_id}:{f'{tapper}:' if in_group else ''}{data}"
    inbound = Inbound(
        channel=CHANNEL,
        user_key=str(tapper),
        message_key=key,
        button=data,
        language_hint=query.from_user.language_code,
        display_name=query.from_user.first_name,
    )
    try:
        await query.answer()
    except (NetworkError, RetryAfter) as error:
        # Answering only stops the spinner on the button, so the tap is acted on all the same:
        # one handled again later is too old to answer, and Telegram may be out of reach.
        _log.info("Could not answer the tap on message %s: %s", message_id, error)
    await _reply(update, context, tapper if in_group else chat_id, inbound)


_CONTENT_KINDS: Sequence[str] = (
    "photo",
    "document",
    "sticker",
    "voice",
    "audio",
    "video",
    "video_note",
    "animation",
    "location",
    "contact",
)


async def _on_other_content(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message, user = update.effective_message, update.effective_user
    assert message is not None
    assert user is not None
    kind = next((k for k in _CONTENT_KINDS if getattr(message, k, None)), "other")
    content = getattr(message, kind, None)
    if isinstance(content, tuple):  # photos come in several sizes: keep the largest
        content = content[-1] if content else None
    attachment = Attachment(kind, getattr(content, "file_id", None))
    inbound = _inbound(update, user, message.caption or "", attachment)
    await _reply(update, context, message.chat_id, inbound)


async def _on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Log the failure with what it was handling, and tell the user rather than go silent.

    A database outage is expected to pass: the store logs it once, without a traceback; each
    update it stops is noted, and its user asked to try again in a few minutes.
    """
    unavailable = isinstance(context.error, StoreUnavailable)
    if isinstance(context.error, StoreUnavailable):
        _channel(context.application).services.store.availability.lost(context.error)
    if not isinstance(update, Update):
        _log.error("Error outside an update: %s", context.error, exc_info=context.error)
        return
    chat, user = update.effective_chat, update.effective_user
    if unavailable:
        _log.info(
            "Update %s (chat %s) not handled: the database is unavailable (%s)",
            update.update_id,
            chat.id if chat else None,
            context.error,
        )
    else:
        _log.error(
            "Error handling update %s (chat %s, user %s): %s",
            update.update_id,
            chat.id if chat else None,
            user.id if user else None,
            context.error,
            exc_info=context.error,
        )
    if chat is None or chat.type != "private":
        return
    language: Language = "zh" if user and (user.language_code or "").startswith("zh") else "en"
    template = "try_later" if unavailable else "apology"
    channel = _channel(context.application)
    apology = channel.services.templates.render(language, template)
    try:
        await channel.sender.send_to_chat(chat.id, OutMessage(text=apology, language=language))
    except TelegramError as error:
        _log.warning("Could not apologise in chat %s: %s", chat.id, error)
