"""The Telegram channel: python-telegram-bot around the channel-neutral handlers.

A talent's message or button tap becomes an `Inbound`; the talent handler decides; the replies
go out as Telegram HTML with inline keyboards. Everything Telegram-specific lives here:
update keys for idempotency, splitting long text, the send pace, the error handler, and
running by long polling or by webhook, each update stored until handled (see `updates`).
"""

import asyncio
import hashlib
import logging
import signal
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import timedelta
from typing import Any

from aiolimiter import AsyncLimiter
from telegram import (
    Bot,
    BotCommand,
    InlineKeyboardMarkup,
    Update,
    User,
)
from telegram.constants import ChatType, MessageLimit, ParseMode
from telegram.error import (
    BadRequest,
    Conflict,
    Forbidden,
    NetworkError,
    RetryAfter,
    TelegramError,
)
from telegram.ext import (
    AIORateLimiter,
    Application,
    ApplicationBuilder,
    BaseUpdateProcessor,
    CallbackQueryHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from bot import heap, notifications, pidfile, sla, startup
from bot.channels import TELEGRAM
from bot.channels.http import AiohttpRequest
from bot.channels.updates import DurableUpdateQueue
from bot.config import Settings
from bot.conversation import Attachment, Inbound, OutMessage, Recipient, Unreachable
from bot.knowledge import LANGUAGES, Language
from bot.leadership import RETRY_SECONDS, Leadership
from bot.reload import fingerprint, follow, reload
from bot.router import route
from bot.services import Services
from bot.store import StoreUnavailable, privacy
from bot.store.inbox import Inbox
from bot.store.models import utcnow
from bot.text import clean

CHANNEL = TELEGRAM
COMMANDS = ("start", "help", "language", "expert", "cancel", "privacy", "mydata", "forget")
WEBHOOK_PATH = "telegram"
_log = logging.getLogger(__name__)
_NO_PREVIEW = {"is_disabled": True}


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


def build_application(settings: Settings, services: Services) -> Application:
    """The PTB application for the configured bot, wired to the handlers."""
    lease = timedelta(seconds=settings.telegram_update_lease_seconds)
    updates = DurableUpdateQueue(Inbox(services.store, lease))
    application = (
        application_builder(settings)
        .update_queue(updates)
        .concurrent_updates(ChatOrderedProcessor(on_handled=updates.handled))
        .build()
    )
    application.bot_data["services"] = services
    services.outbox = TelegramOutbox(application)
    private = filters.ChatType.PRIVATE
    application.add_handler(MessageHandler(private & filters.TEXT, _on_text))
    application.add_handler(CallbackQueryHandler(_on_button))
    application.add_handler(MessageHandler(private & ~filters.TEXT, _on_other_content))
    application.add_error_handler(_on_error)
    # With several processes, the jobs that act for the whole bot run in one: see leadership.
    application.bot_data["leadership"] = Leadership(services.store)
    application.job_queue.run_repeating(
        _contend_for_jobs, interval=RETRY_SECONDS, first=0, name="leadership"
    )
    # Soon after start, so what fell due while the bot was down is done at once.
    application.job_queue.run_repeating(
        _check_service_levels, interval=settings.sla_check_seconds, first=1, name="sla"
    )
    application.job_queue.run_repeating(
        _report_stale_entries, interval=7 * 24 * 3600, first=300, name="staleness"
    )
    application.job_queue.run_repeating(
        _purge_old_conversations, interval=6 * 3600, first=60, name="retention"
    )
    # In every process: renew the lease on the updates it handles, take over abandoned ones.
    renewal = lease.total_seconds() / 3
    application.job_queue.run_repeating(_keep_inbox, interval=renewal, first=renewal, name="inbox")
    application.job_queue.run_repeating(
        _watch_knowledge,
        interval=settings.knowledge_check_seconds,
        first=settings.knowledge_check_seconds,
        name="knowledge",
        data={"seen": fingerprint(settings.knowledge_dir), "forced": None},
    )
    return application


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


async def serve(
    application: Application,
    settings: Settings,
    on_running: Callable[[str], object] = lambda _username: None,
) -> int:
    """Run until SIGINT/SIGTERM, by webhook if a public URL is set, else by long polling;
    `on_running` is given the bot's username once updates are coming in.

    Returns the exit status: 1 if another process is already polling this bot's token.
    """
    logging.getLogger("telegram.ext.Updater").addFilter(_quiet_unconfirmed_updates)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(_quiet_cut_off_polls)
    for signal_number in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signal_number, stop.set)
    # `ipbot kb reload` (or kill -HUP) asks for the knowledge base to be loaded again now.
    loop.add_signal_handler(
        signal.SIGHUP,
        lambda: application.create_task(reload_and_tell(_services(application))),
    )
    with pidfile.held(settings.pid_file) as holding:
        if not holding:
            _log.info(
                "Another process holds %s: `ipbot kb reload` signals that one", settings.pid_file
            )
        if not await _reach_telegram(application.bot, settings.start_wait_seconds, stop):
            return 0
        return await _serve_updates(application, settings, stop, on_running)


def _quiet_unconfirmed_updates(record: logging.LogRecord) -> bool:
    """PTB confirms the updates it fetched with a last getUpdates as polling stops, and logs an
    error with a traceback when Telegram cannot be reached then. Nothing is lost or done twice
    here (the inbox has every update, and refuses one fetched again), so it is said in one
    line."""
    if record.exc_info and "mark all fetched updates" in record.getMessage():
        record.msg = (
            "Could not confirm the last updates to Telegram while stopping (%s): they are "
            "kept, and not handled twice"
        )
        record.args = (record.exc_info[1],)
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        record.exc_info, record.exc_text = None, None
    return True


def _quiet_cut_off_polls(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """PTB's polling does not read the failure of a getUpdates that fails as polling stops
    (Telegram out of reach), and asyncio reports it as an error with a traceback ("Task
    exception was never retrieved"). The poll was over anyway: it is noted in one line.
    Anything else is reported as asyncio would."""
    error, task = context.get("exception"), context.get("future")
    coroutine = task.get_coro() if isinstance(task, asyncio.Task) else None
    if isinstance(error, NetworkError) and "polling_action_cb" in getattr(
        coroutine, "__qualname__", ""
    ):
        _log.info("A poll for updates cut off by the stop failed: %s", error)
        return
    loop.default_exception_handler(context)


async def _reach_telegram(bot: Bot, patience: float, stop: asyncio.Event) -> bool:
    """Initialize the bot (its getMe), trying again while Telegram cannot be reached, for up to
    `patience` seconds: the network, or a proxy to Telegram, may come up after the bot. False if
    told to stop meanwhile; the last `NetworkError` once patience runs out."""
    try:
        reached = await startup.reach(
            "Telegram",
            bot.initialize,
            lambda error: isinstance(error, NetworkError),
            patience,
            stop,
        )
    except BaseException:
        # PTB leaves a bot whose getMe failed with its connections open.
        await bot.shutdown()
        raise
    if not reached:
        await bot.shutdown()
    return reached


async def _serve_updates(
    application: Application,
    settings: Settings,
    stop: asyncio.Event,
    on_running: Callable[[str], object],
) -> int:
    """Serve updates until `stop` is set; the exit status."""
    outcome = {"status": 0}

    def on_polling_error(error: TelegramError) -> None:
        if isinstance(error, Conflict):
            _log.error(
                "Another process is already receiving this bot's updates (Telegram answered "
                "409 Conflict). Only one process may poll a token: stop the other one, or run "
                "every process in webhook mode (TELEGRAM_WEBHOOK_URL)."
            )
            outcome["status"] = 1
            stop.set()
        else:
            _log.warning("Could not fetch updates, retrying: %s", error)

    async with application:
        await register_commands(application)
        for channel, external_id in settings.staff:
            await _services(application).tickets.appoint_staff(channel, external_id)
        await notifications.redeliver(_services(application))
        await application.start()
        try:
            # Updates a stopped process left unhandled. Those of one that died just now are
            # leased to it a little longer: the inbox job takes them over when the lease ends.
            await _updates(application).recover(application.bot)
            if settings.telegram_webhook_url:
                await _start_webhook(application, settings)
            else:
                await application.updater.start_polling(
                    allowed_updates=Update.ALL_TYPES, error_callback=on_polling_error
                )
            heap.settle()
            on_running(application.bot.username)
            await stop.wait()
            await application.updater.stop()
        finally:
            await application.stop()
            await step_down(application)
    return outcome["status"]


class WebhookRefused(Exception):
    """Updates cannot come by webhook: Telegram refused the address, or the port is taken."""


async def _start_webhook(application: Application, settings: Settings) -> None:
    """Listen for updates and ask Telegram to post them to TELEGRAM_WEBHOOK_URL."""
    assert settings.telegram_webhook_url is not None
    url = settings.telegram_webhook_url.rstrip("/") + "/" + WEBHOOK_PATH
    address = f"{settings.telegram_webhook_listen}:{settings.telegram_webhook_port}"
    secret = webhook_secret(settings)
    try:
        # Asked here first, so that a refusal is said in one line rather than in PTB's log of
        # its own attempt (which asks again, to the same effect).
        await application.bot.set_webhook(
            url, secret_token=secret, allowed_updates=Update.ALL_TYPES
        )
        await application.updater.start_webhook(
            listen=settings.telegram_webhook_listen,
            port=settings.telegram_webhook_port,
            url_path=WEBHOOK_PATH,
            secret_token=secret,
            webhook_url=url,
            allowed_updates=Update.ALL_TYPES,
        )
    except BadRequest as error:
        raise WebhookRefused(
            f"Telegram refused TELEGRAM_WEBHOOK_URL ({settings.telegram_webhook_url}): "
            f"{error.message}"
        ) from None
    except OSError as error:
        raise WebhookRefused(
            f"cannot listen on TELEGRAM_WEBHOOK_LISTEN:TELEGRAM_WEBHOOK_PORT ({address}): "
            f"{error.strerror or error}"
        ) from None


class TelegramOutbox:
    """Sends `OutMessage`s to Telegram chats: the channel's side of the `Outbox`."""

    def __init__(self, application: Application) -> None:
        self._bot = application.bot

    async def send(self, to: Recipient, message: OutMessage) -> str | None:
        """Send to a user's private chat (its id is the user's); the last part's message id."""
        if not to.external_id.lstrip("-").isdecimal():
            # A talent who asked to be forgotten keeps no Telegram id.
            raise Unreachable(f"no Telegram chat: {to.external_id}")
        try:
            return str(await self.send_to_chat(int(to.external_id), message))
        except (Forbidden, BadRequest) as error:
            if isinstance(error, BadRequest) and "chat not found" not in error.message.lower():
                raise
            raise Unreachable(str(error)) from error

    async def edit(self, to: Recipient, ref: str, message: OutMessage) -> None:
        try:
            await self._bot.edit_message_text(
                message.text,
                chat_id=int(to.external_id),
                message_id=int(ref),
                parse_mode=ParseMode.HTML,
                reply_markup=_keyboard(message),
            )
        except Forbidden as error:
            raise Unreachable(str(error)) from error
        except BadRequest as error:
            # Already edited so (the edit is done again after a crash): nothing to change.
            if "not modified" not in error.message.lower():
                raise

    async def send_to_chat(self, chat_id: int, reply: OutMessage) -> int:
        """Send one reply as HTML; text over Telegram's limit goes out in several messages, the
        buttons with the last. Returns the last message's id."""
        attachment = reply.attachment
        if attachment is not None and attachment.file_id:
            return await self._send_file(chat_id, reply, attachment)
        parts = split_html(reply.text)
        sent: Any = {}
        for number, part in enumerate(parts, start=1):
            # Sent as JSON, and the message Telegram returns kept as JSON: as PTB objects the
            # two cost about a tenth of the bot's CPU for each update, and only the id is used.
            # `_post` is the step of PTB's own methods that does just that (paced, and with
            # Telegram's errors raised as PTB's); its `do_api_request`, made for methods PTB
            # lacks, warns at each call for one it has.
            sent = await self._bot._post(
                "sendMessage",
                {
                    "chat_id": chat_id,
                    "text": part,
                    "parse_mode": ParseMode.HTML,
                    "link_preview_options": _NO_PREVIEW,
                    "reply_markup": _keyboard_json(reply) if number == len(parts) else None,
                },
            )
        return int(sent["message_id"])

    async def _send_file(self, chat_id: int, reply: OutMessage, attachment: Attachment) -> int:
        """A photo or document with the reply as its caption; a reply too long for a caption
        goes first, as text. Returns the file's message id."""
        caption: str | None = reply.text
        if len(reply.text) > MessageLimit.CAPTION_LENGTH:
            await self.send_to_chat(chat_id, replace(reply, attachment=None, buttons=()))
            caption = None
        # Telegram takes back a file it handed this bot by its id: nothing is downloaded.
        send = self._bot.send_photo if attachment.kind == "photo" else self._bot.send_document
        sent = await send(
            chat_id,
            attachment.file_id,
            caption=caption,
            parse_mode=ParseMode.HTML,
            reply_markup=_keyboard(reply),
        )
        return sent.message_id


def split_html(text: str, limit: int = MessageLimit.MAX_TEXT_LENGTH) -> list[str]:
    """`text` in parts of at most `limit` characters, cut between paragraphs where possible,
    then between lines, then between words, never inside a tag's line."""
    if len(text) <= limit:
        return [text]
    parts: list[str] = []
    current = ""
    for piece in _pieces(text, limit):
        joined = f"{current}\n\n{piece}" if current else piece
        if len(joined) <= limit:
            current = joined
        else:
            parts.append(current)
            current = piece
    if current:
        parts.append(current)
    return parts


_LONGEST_ENTITY = len("&#x1f600;")


def _pieces(text: str, limit: int) -> list[str]:
    pieces: list[str] = []
    for paragraph in text.split("\n\n"):
        if len(paragraph) <= limit:
            pieces.append(paragraph)
            continue
        line_group = ""
        for word in paragraph.replace("\n", " \n ").split(" "):
            for chunk in _chunks(word, limit):
                candidate = f"{line_group} {chunk}" if line_group else chunk
                if len(candidate) > limit:
                    pieces.append(line_group.strip())
                    line_group = chunk
                else:
                    line_group = candidate
        if line_group.strip():
            pieces.append(line_group.strip())
    return pieces


def _chunks(word: str, limit: int) -> list[str]:
    """A word longer than `limit` (a long link; Chinese, which has no spaces) in parts that
    fit, never cut inside an HTML entity such as `&amp;`."""
    chunks: list[str] = []
    while len(word) > limit:
        cut = limit
        entity = word.rfind("&", max(0, cut - _LONGEST_ENTITY), cut)
        if entity > 0 and ";" not in word[entity:cut]:
            cut = entity
        chunks.append(word[:cut])
        word = word[cut:]
    chunks.append(word)
    return chunks


def _keyboard(reply: OutMessage) -> InlineKeyboardMarkup | None:
    keyboard = _keyboard_json(reply)
    return InlineKeyboardMarkup.de_json(keyboard, None) if keyboard else None


def _keyboard_json(reply: OutMessage) -> dict[str, Any] | None:
    """The reply's buttons as the Bot API takes them: one a row."""
    if not reply.buttons:
        return None
    return {
        "inline_keyboard": [
            [{"text": button.label, "callback_data": button.payload}] for button in reply.buttons
        ]
    }


class PacedRateLimiter(AIORateLimiter):
    """PTB's AIORateLimiter, which paces the overall rate and groups, plus a pace for each
    private chat (Telegram allows about one message a second there), which it lacks."""

    def __init__(self, chat_per_second: float, **limits: Any) -> None:
        super().__init__(**limits)
        self._chat_period = 1.0 / chat_per_second
        self._chats: dict[int, AsyncLimiter] = {}

    async def process_request(
        self,
        callback: Any,
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: int | None,
    ) -> Any:
        chat_id = _private_chat(data.get("chat_id"))
        if chat_id is None:
            return await super().process_request(
                callback, args, kwargs, endpoint, data, rate_limit_args
            )
        async with self._chat_limiter(chat_id):
            return await super().process_request(
                callback, args, kwargs, endpoint, data, rate_limit_args
            )

    def _chat_limiter(self, chat_id: int) -> AsyncLimiter:
        if len(self._chats) > 1024:
            for key, limiter in list(self._chats.items()):
                if limiter.has_capacity(1):
                    del self._chats[key]
        if chat_id not in self._chats:
            self._chats[chat_id] = AsyncLimiter(1, self._chat_period)
        return self._chats[chat_id]


def _private_chat(chat_id: object) -> int | None:
    try:
        number = int(chat_id)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


class ChatOrderedProcessor(BaseUpdateProcessor):
    """Handles updates concurrently, but one at a time per chat, in the order they came."""

    def __init__(
        self,
        max_concurrent_updates: int = 64,
        on_handled: Callable[[object], Awaitable[None]] | None = None,
    ) -> None:
        super().__init__(max_concurrent_updates)
        self._locks: dict[int, asyncio.Lock] = {}
        self._on_handled = on_handled

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        await self._in_chat_order(update, coroutine)
        # Not reached if the handling was cancelled: the update is then handled again.
        if self._on_handled is not None:
            await self._on_handled(update)

    async def _in_chat_order(self, update: object, coroutine: Awaitable[Any]) -> None:
        chat = update.effective_chat if isinstance(update, Update) else None
        if chat is None:
            await coroutine
            return
        lock = self._locks.setdefault(chat.id, asyncio.Lock())
        try:
            async with lock:
                await coroutine
        finally:
            if not lock.locked():
                self._locks.pop(chat.id, None)

    async def initialize(self) -> None:
        """Nothing to set up."""

    async def shutdown(self) -> None:
        """Nothing to release."""


async def step_down(application: Application) -> None:
    """Give up the scheduled jobs, so another process of the bot takes them at once."""
    await _leadership(application).step_down()


def _leadership(application: Application) -> Leadership:
    return application.bot_data["leadership"]


async def _contend_for_jobs(context: ContextTypes.DEFAULT_TYPE) -> None:
    await _leadership(context.application).contend()


_Job = Callable[[ContextTypes.DEFAULT_TYPE], Awaitable[None]]


def _by_the_leader(job: _Job) -> _Job:
    """The job, run only in the process that holds the jobs' lock."""

    async def run_if_leading(context: ContextTypes.DEFAULT_TYPE) -> None:
        if await _leadership(context.application).contend():
            await job(context)

    return run_if_leading


@_by_the_leader
async def _check_service_levels(context: ContextTypes.DEFAULT_TYPE) -> None:
    done = await sla.check(_services(context.application))
    if done:
        _log.info("Service levels: %s", done)


@_by_the_leader
async def _report_stale_entries(context: ContextTypes.DEFAULT_TYPE) -> None:
    await notifications.report_stale(_services(context.application), utcnow().date())


@_by_the_leader
async def _purge_old_conversations(context: ContextTypes.DEFAULT_TYPE) -> None:
    services = _services(context.application)
    before = utcnow() - timedelta(days=services.settings.retention_days)
    purged = await privacy.purge(services.store, before)
    if purged:
        _log.info("Purged %d messages older than %s", purged, before.date())
    # Telegram sends an update again for a day at most: the inbox need not remember it longer.
    await _updates(context.application).inbox.purge(utcnow() - timedelta(days=1))


async def _keep_inbox(context: ContextTypes.DEFAULT_TYPE) -> None:
    updates = _updates(context.application)
    await updates.inbox.renew()
    await updates.recover(context.application.bot)


async def _watch_knowledge(context: ContextTypes.DEFAULT_TYPE) -> None:
    """Reload when the knowledge files change, in every process (each has its own matcher);
    the one running the scheduled jobs tells staff what happened, once per change. A set staff
    forced in one process is loaded by the others, whose own check would refuse it."""
    services = _services(context.application)
    seen = context.job.data if context.job else None
    if seen is None:
        return
    forced = await services.tickets.last_forced_reload()
    if forced is not None and forced not in (seen["forced"], services.matcher.knowledge.version):
        seen["forced"] = forced
        await asyncio.to_thread(follow, services, forced)
    now = fingerprint(services.settings.knowledge_dir)
    if now == seen["seen"]:
        return
    seen["seen"] = now
    await reload_and_tell(services, tell=await _leadership(context.application).contend())


async def reload_and_tell(services: Services, force: bool = False, tell: bool = True) -> None:
    """Reload the knowledge base and tell staff the outcome (with every problem's place)."""
    # Building the new index takes a moment: off the event loop, so updates keep flowing.
    outcome = await asyncio.to_thread(reload, services, force)
    await services.tickets.audit(None, "reload", outcome.version, status=outcome.status)
    if tell:
        await notifications.tell_staff(services, "kb_" + outcome.status, outcome=outcome)


async def register_commands(application: Application) -> None:
    """Tell Telegram the bot's commands, described in English and in Chinese."""
    templates = _services(application).templates
    for language in LANGUAGES:
        commands = [
            BotCommand(command, templates.label(language, f"command_{command}"))
            for command in COMMANDS
        ]
        await application.bot.set_my_commands(
            commands, language_code=None if language == "en" else language
        )


def _services(application: Application) -> Services:
    return application.bot_data["services"]


def _updates(application: Application) -> DurableUpdateQueue:
    updates = application.update_queue
    assert isinstance(updates, DurableUpdateQueue)
    return updates


async def _reply(
    update: Update, context: ContextTypes.DEFAULT_TYPE, chat_id: int, inbound: Inbound
) -> None:
    services = _services(context.application)
    updates = _updates(context.application)
    if updates.waits_behind(update):
        # An earlier message of this chat waits for Telegram: this one is answered after it.
        updates.hold_back(update, tried=False)
        return
    if updates.recovered(update):
        inbound = replace(inbound, recovered=True)
    outbox = TelegramOutbox(context.application)
    try:
        # A turn cut off by a lost database connection was rolled back: it is done again.
        replies = await services.store.retrying(lambda: route(inbound, services))
        for reply in replies:
            await outbox.send_to_chat(chat_id, reply)
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
    update it stops is noted, and its user asked to try again in a few minutes (a job simply
    runs again at its next time).
    """
    unavailable = isinstance(context.error, StoreUnavailable)
    if isinstance(context.error, StoreUnavailable):
        _services(context.application).store.availability.lost(context.error)
    if not isinstance(update, Update):
        if unavailable:
            job = context.job.name if context.job else None
            _log.info("Job %s not done: the database is unavailable (%s)", job, context.error)
        else:
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
    apology = _services(context.application).templates.render(language, template)
    try:
        await TelegramOutbox(context.application).send_to_chat(
            chat.id, OutMessage(text=apology, language=language)
        )
    except TelegramError as error:
        _log.warning("Could not apologise in chat %s: %s", chat.id, error)
