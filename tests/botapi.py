"""A Telegram Bot API emulator on loopback, for end-to-end tests of the real PTB Application.

It speaks Telegram's HTTP API (the methods the bot uses, with Telegram's JSON shapes and error
format), checks what the bot sends as Telegram does (HTML entities, empty or over-long text,
callback data over 64 bytes), enforces the send limits with 429 `retry_after`, and plays the
users: a test makes a `Phone` type or tap, then reads what arrived in that chat.
"""

import asyncio
import contextlib
import itertools
import json
import socket
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any, NotRequired, TypedDict
from urllib.parse import parse_qsl

import aiohttp
import tornado.httpserver
import tornado.web

TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024
CALLBACK_DATA_LIMIT = 64
_SENDS = ("sendMessage", "editMessageText", "editMessageReplyMarkup")
ALLOWED_TAGS = {
    "b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "a", "code", "pre",
    "span", "tg-spoiler", "tg-emoji", "blockquote",
}  # fmt: skip


def free_port() -> int:
    """A loopback port nothing listens on, for a bot's webhook."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ApiError(Exception):
    """A Bot API error answer: `{"ok": false, "error_code": …, "description": …}`."""

    def __init__(self, code: int, description: str, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.retry_after = retry_after


# What Telegram answers while it cannot take requests.
BAD_GATEWAY = ApiError(502, "Bad Gateway")


class _Entities(HTMLParser):
    """Telegram's HTML parse mode: the visible text, and an error for what it rejects."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.text: list[str] = []
        self.open: list[str] = []
        self.error: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in ALLOWED_TAGS and self.error is None:
            self.error = f'Unsupported start tag "{tag}"'
        self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if (not self.open or self.open[-1] != tag) and self.error is None:
            self.error = f'Unmatched end tag "{tag}"'
        elif self.open:
            self.open.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def visible_text(html: str) -> str:
    """What a user reads for an HTML message; raises `ApiError` where Telegram would."""
    parser = _Entities()
    parser.feed(html)
    parser.close()
    if parser.error is None and parser.open:
        parser.error = f'Can\'t find end tag corresponding to start tag "{parser.open[-1]}"'
    if parser.error:
        raise ApiError(400, f"Bad Request: can't parse entities: {parser.error}")
    return "".join(parser.text)


@dataclass
class Limits:
    """Telegram's send limits: per second overall, per second per private chat, per minute
    per group, each a leaky bucket that holds that many messages and drains at that rate.
    A tenth of slack absorbs requests that arrive closer together than they were sent, as
    Telegram's own limits are approximate."""

    overall_per_second: float = 30
    chat_per_second: float = 1
    group_per_minute: float = 20
    slack: float = 0.1


class _Bucket:
    """A leaky bucket: holds `capacity` sends and drains `capacity` per `period` seconds."""

    def __init__(self, capacity: float, period: float) -> None:
        self.capacity = capacity
        self.period = period
        self.level = 0.0
        self.updated = time.monotonic()

    def _drain(self) -> None:
        now = time.monotonic()
        self.level = max(0.0, self.level - (now - self.updated) * self.capacity / self.period)
        self.updated = now

    def has_room(self, slack: float) -> bool:
        self._drain()
        return self.level + 1 <= self.capacity * (1 + slack)

    def add(self) -> None:
        self._drain()
        self.level += 1


@dataclass
class Sent:
    """A message the bot put in a chat, as the user sees it."""

    chat_id: int
    message_id: int
    text: str
    buttons: list[tuple[str, str]] = field(default_factory=list)
    # A photo or document sent by its file id (`text` is then its caption).
    file: str | None = None


class BotApiEmulator:
    """The Bot API for one bot token, served on a free loopback port."""

    # Webhook deliveries under way at once, each on a connection kept open, as Telegram's
    # servers keep theirs.
    webhook_connections = 100

    def __init__(self, token: str = "123456:TEST-TOKEN", limits: Limits | None = None) -> None:
        self.token = token
        self.limits = limits or Limits()
        self.messages: dict[int, list[Sent]] = defaultdict(list)
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.errors: list[tuple[str, str]] = []
        self.limit_hits = 0
        self.commands: dict[str, list[dict[str, str]]] = {}
        self.webhook_url = ""
        self.webhook_secret: str | None = None
        # A load balancer in front of the webhook URL, as several bot processes have: when set,
        # each delivery goes to the next of these addresses in turn.
        self.balanced: list[str] = []
        self._turns = itertools.count()
        self.answered_callbacks: set[str] = set()
        self._failures: dict[str, deque[ApiError | None]] = defaultdict(deque)
        self.other_poller = False
        self.held = 0
        self._stalled: asyncio.Future[None] | None = None
        self.blocked: set[int] = set()
        self.deleted: set[int] = set()
        # File ids users sent the bot: the only ones it may send back, as on Telegram.
        self.files: set[str] = set()
        self._updates: list[dict[str, Any]] = []
        self._update_ids = itertools.count(1)
        self._message_ids = itertools.count(1)
        self._callback_ids = itertools.count(1)
        self._callbacks: dict[str, dict[str, Any]] = {}
        self._arrived = asyncio.Condition()
        self._update_arrived = asyncio.Event()
        self._poller: asyncio.Future[None] | None = None
        self._buckets: dict[object, _Bucket] = {}
        self._server: tornado.httpserver.HTTPServer | None = None
        self._client: aiohttp.ClientSession | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        """What the bot's `TELEGRAM_API_BASE_URL` must be."""
        return f"http://127.0.0.1:{self.port}/bot"

    async def start(self) -> None:
        application = tornado.web.Application(
            [(r"/bot([^/]+)/(\w+)", _MethodHandler, {"emulator": self})]
        )
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
        sock.setblocking(False)
        self.port = sock.getsockname()[1]
        self._server = tornado.httpserver.HTTPServer(application)
        self._server.add_sockets([sock])

    async def stop(self) -> None:
        if self._client is not None:
            await self._client.close()
        if self._server is not None:
            self._server.stop()
            await self._server.close_all_connections()

    def phone(self, user_id: int, first_name: str = "Alex", language: str = "en") -> "Phone":
        """A private chat with a user, to type and tap in."""
        return Phone(self, user_id, first_name, language)

    async def deliver(self, update: dict[str, Any]) -> int | None:
        """Give an update to the bot: by webhook if one is set, else to `getUpdates`.
        Returns the webhook's HTTP status (None when queued for polling)."""
        content = update.get("message") or {}
        for kind in ("photo", "document"):
            files = content.get(kind)
            for file in files if isinstance(files, list) else [files] if files else []:
                if isinstance(file, dict) and isinstance(file.get("file_id"), str):
                    self.files.add(file["file_id"])
        if self.webhook_url:
            return await self.post_to_webhook(update, self.webhook_secret)
        self._updates.append(update)
        self._update_arrived.set()
        return None

    async def post_to_webhook(self, update: Any, secret: str | None, url: str | None = None) -> int:
        """Post an update (or anything else, as a forger might) to `url`, else to the webhook
        (through the load balancer, if any)."""
        headers = {"Content-Type": "application/json"}
        if secret is not None:
            headers["X-Telegram-Bot-Api-Secret-Token"] = secret
        if url is None and self.balanced:
            url = self.balanced[next(self._turns) % len(self.balanced)]
        if self._client is None:
            self._client = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.webhook_connections),
                timeout=aiohttp.ClientTimeout(total=60),
            )
        async with self._client.post(
            url or self.webhook_url, data=json.dumps(update), headers=headers
        ) as response:
            return response.status

    async def deliver_to_each(self, update: dict[str, Any]) -> list[int]:
        """Deliver one update to every balanced address at once, as when Telegram retries a
        delivery it thinks failed and the balancer sends the retry elsewhere."""
        return list(
            await asyncio.gather(
                *(self.post_to_webhook(update, self.webhook_secret, url) for url in self.balanced)
            )
        )

    def new_update_id(self) -> int:
        return next(self._update_ids)

    def fail(self, method: str, *errors: ApiError, after: int = 0) -> None:
        """Answer the next calls of `method` with these errors, one each, in turn, once `after`
        more calls have gone through."""
        self._failures[method].extend([None] * after + list(errors))

    def stall(self) -> None:
        """Hold every message the bot sends from now on, unsent, as a network that stopped
        carrying them would; `held` counts them. `resume` refuses them, still unsent."""
        self._stalled = asyncio.get_running_loop().create_future()

    def resume(self) -> None:
        if self._stalled is not None:
            self._stalled.set_result(None)
            self._stalled = None

    async def _hold(self) -> None:
        assert self._stalled is not None
        stalled = self._stalled
        async with self._arrived:
            self.held += 1
            self._arrived.notify_all()
        await asyncio.shield(stalled)
        raise ApiError(502, "Bad Gateway")

    def stamped(self, update: dict[str, Any]) -> dict[str, Any]:
        """Any update, however odd, with what Telegram itself assigns: a fresh `update_id`,
        and for a callback query a fresh query id that the bot may then answer."""
        stamped = {**update, "update_id": self.new_update_id()}
        query = stamped.get("callback_query")
        if isinstance(query, dict):
            stamped["callback_query"] = {**query, "id": self.new_callback_id()}
            self.register_callback(stamped["callback_query"])
        return stamped

    async def wait_for(self, predicate: Any, within: float = 60.0) -> None:
        """Wait until `predicate()` is true, or fail."""
        deadline = time.monotonic() + within
        async with self._arrived:
            while not predicate():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError("timed out waiting for the bot")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._arrived.wait(), remaining)

    async def refused(self, method: str, error: ApiError) -> None:
        """Note a call answered with an error, for tests waiting on it."""
        async with self._arrived:
            self.errors.append((method, error.description))
            self._arrived.notify_all()

    # The Bot API methods.

    async def call(self, method: str, params: dict[str, Any]) -> Any:
        self.calls.append((method, params))
        handler = getattr(self, f"_api_{method}", None)
        if handler is None:
            raise ApiError(404, "Not Found: method not found")
        if self._stalled is not None and method in _SENDS:
            await self._hold()
        failure = self._failures[method].popleft() if self._failures[method] else None
        if failure is not None:
            raise failure
        try:
            return await handler(params)
        except (KeyError, TypeError, ValueError) as error:
            # A parameter missing or of the wrong shape: Telegram refuses the request.
            raise ApiError(400, f"Bad Request: invalid parameters: {error!r}") from error

    async def _api_getMe(self, params: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": int(self.token.split(":")[0]),
            "is_bot": True,
            "first_name": "IP Desk",
            "username": "ip_desk_bot",
            "can_join_groups": False,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }

    async def _api_getUpdates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        if self.webhook_url:
            raise ApiError(409, "Conflict: can't use getUpdates method while webhook is active")
        if self.other_poller:
            raise ApiError(
                409,
                "Conflict: terminated by other getUpdates request; "
                "make sure that only one bot instance is running",
            )
        if self._poller is not None and not self._poller.done():
            self._poller.set_result(None)  # a newer poll ends the older one, as on Telegram
        poller: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._poller = poller
        offset = int(params.get("offset") or 0)
        # Telegram forgets an update once a poll asks for a later offset; until then it sends
        # the update again to every poll (a bot that died before confirming gets it again).
        self._updates = [u for u in self._updates if u["update_id"] >= offset or u.get("_again")]
        deadline = time.monotonic() + float(params.get("timeout") or 0)
        while True:
            batch = [u for u in self._updates if u["update_id"] >= offset or u.get("_again")]
            remaining = deadline - time.monotonic()
            if batch or remaining <= 0 or poller.done():
                break
            self._update_arrived.clear()
            waiter = asyncio.ensure_future(self._update_arrived.wait())
            await asyncio.wait((waiter, poller), timeout=remaining, return_when="FIRST_COMPLETED")
            waiter.cancel()
        if poller.done() and not batch:
            raise ApiError(
                409,
                "Conflict: terminated by other getUpdates request; "
                "make sure that only one bot instance is running",
            )
        self._updates = [u for u in self._updates if not (u.get("_again") and u in batch)]
        return [{k: v for k, v in u.items() if k != "_again"} for u in batch]

    async def redeliver(self, update: dict[str, Any]) -> None:
        """Deliver an update again with the same `update_id`, as Telegram may."""
        if self.webhook_url:
            await self.post_to_webhook(update, self.webhook_secret)
            return
        self._updates.append({**update, "_again": True})
        self._update_arrived.set()

    async def _api_setWebhook(self, params: dict[str, Any]) -> bool:
        self.webhook_url = params.get("url", "")
        self.webhook_secret = params.get("secret_token")
        return True

    async def _api_deleteWebhook(self, params: dict[str, Any]) -> bool:
        self.webhook_url = ""
        self.webhook_secret = None
        return True

    async def _api_getWebhookInfo(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"url": self.webhook_url, "has_custom_certificate": False, "pending_update_count": 0}

    async def _api_setMyCommands(self, params: dict[str, Any]) -> bool:
        commands = params["commands"]
        if not commands or any(not c.get("command") or not c.get("description") for c in commands):
            raise ApiError(400, "Bad Request: BOT_COMMAND_INVALID")
        self.commands[params.get("language_code", "")] = commands
        return True

    async def _api_sendChatAction(self, params: dict[str, Any]) -> bool:
        return True

    async def _api_answerCallbackQuery(self, params: dict[str, Any]) -> bool:
        query_id = params["callback_query_id"]
        if query_id not in self._callbacks or query_id in self.answered_callbacks:
            raise ApiError(
                400,
                "Bad Request: query is too old and response timeout expired or query ID is invalid",
            )
        self.answered_callbacks.add(query_id)
        return True

    async def _api_sendPhoto(self, params: dict[str, Any]) -> dict[str, Any]:
        return await self._send_file(params, "photo")

    async def _api_sendDocument(self, params: dict[str, Any]) -> dict[str, Any]:
        return await self._send_file(params, "document")

    async def _send_file(self, params: dict[str, Any], kind: str) -> dict[str, Any]:
        chat_id = self._reachable(params)
        file_id = params.get(kind)
        if file_id not in self.files:
            raise ApiError(400, "Bad Request: wrong file identifier/HTTP URL specified")
        caption = params.get("caption") or ""
        if params.get("parse_mode") == "HTML":
            caption = visible_text(caption)
        if len(caption) > CAPTION_LIMIT:
            raise ApiError(400, "Bad Request: message caption is too long")
        self._count_send(chat_id)
        buttons = _buttons(params.get("reply_markup"))
        sent = Sent(chat_id, next(self._message_ids), caption, buttons, file=file_id)
        async with self._arrived:
            self.messages[chat_id].append(sent)
            self._arrived.notify_all()
        message = self._message_json(sent, params)
        message["caption"] = message.pop("text")
        handle = {"file_id": file_id, "file_unique_id": file_id}
        message[kind] = [handle | {"width": 1, "height": 1}] if kind == "photo" else handle
        return message

    def _reachable(self, params: dict[str, Any]) -> int:
        """The chat a send is for, if the bot may send there."""
        chat_id = int(params["chat_id"])
        if chat_id in self.blocked:
            raise ApiError(403, "Forbidden: bot was blocked by the user")
        if chat_id in self.deleted:
            raise ApiError(400, "Bad Request: chat not found")
        return chat_id

    async def _api_sendMessage(self, params: dict[str, Any]) -> dict[str, Any]:
        chat_id = self._reachable(params)
        text, buttons = self._checked_content(params)
        self._count_send(chat_id)
        sent = Sent(chat_id, next(self._message_ids), text, buttons)
        async with self._arrived:
            self.messages[chat_id].append(sent)
            self._arrived.notify_all()
        return self._message_json(sent, params)

    async def _api_editMessageText(self, params: dict[str, Any]) -> dict[str, Any]:
        sent = self._find(params)
        text, buttons = self._checked_content(params)
        if text == sent.text and buttons == sent.buttons:
            raise ApiError(400, "Bad Request: message is not modified")
        self._count_send(sent.chat_id)
        sent.text, sent.buttons = text, buttons
        async with self._arrived:
            self._arrived.notify_all()
        return self._message_json(sent, params)

    async def _api_editMessageReplyMarkup(self, params: dict[str, Any]) -> dict[str, Any]:
        sent = self._find(params)
        buttons = _buttons(params.get("reply_markup"))
        if buttons == sent.buttons:
            raise ApiError(400, "Bad Request: message is not modified")
        sent.buttons = buttons
        async with self._arrived:
            self._arrived.notify_all()
        return self._message_json(sent, params)

    def _find(self, params: dict[str, Any]) -> Sent:
        chat_id = int(params["chat_id"])
        message_id = int(params["message_id"])
        for sent in self.messages.get(chat_id, []):
            if sent.message_id == message_id:
                return sent
        raise ApiError(400, "Bad Request: message to edit not found")

    def _checked_content(self, params: dict[str, Any]) -> tuple[str, list[tuple[str, str]]]:
        raw = params.get("text", "")
        if params.get("parse_mode") not in (None, "HTML"):
            raise ApiError(400, "Bad Request: unsupported parse_mode in this emulator")
        text = visible_text(raw) if params.get("parse_mode") == "HTML" else raw
        if not text.strip():
            raise ApiError(400, "Bad Request: message text is empty")
        if len(text) > TEXT_LIMIT:
            raise ApiError(400, "Bad Request: message is too long")
        return text, _buttons(params.get("reply_markup"))

    def _count_send(self, chat_id: int) -> None:
        """Enforce the send limits as Telegram does: refuse with 429 and `retry_after`."""
        limits = self.limits
        overall = self._bucket("overall", limits.overall_per_second, 1.0)
        if chat_id > 0:
            chat = self._bucket(chat_id, limits.chat_per_second, 1.0)
        else:
            chat = self._bucket(chat_id, limits.group_per_minute, 60.0)
        for bucket in (overall, chat):
            if not bucket.has_room(limits.slack):
                self._refuse(1 if bucket.period <= 1 else 3)
        overall.add()
        chat.add()

    def _bucket(self, key: object, capacity: float, period: float) -> "_Bucket":
        if key not in self._buckets:
            self._buckets[key] = _Bucket(capacity, period)
        return self._buckets[key]

    def _refuse(self, retry_after: int) -> None:
        self.limit_hits += 1
        raise ApiError(429, f"Too Many Requests: retry after {retry_after}", retry_after)

    @staticmethod
    def _message_json(sent: Sent, params: dict[str, Any]) -> dict[str, Any]:
        message: dict[str, Any] = {
            "message_id": sent.message_id,
            "date": int(time.time()),
            "chat": {"id": sent.chat_id, "type": "private" if sent.chat_id > 0 else "group"},
            "from": {"id": 123456, "is_bot": True, "first_name": "IP Desk"},
            "text": sent.text,
        }
        if params.get("reply_markup"):
            markup = params["reply_markup"]
            message["reply_markup"] = json.loads(markup) if isinstance(markup, str) else markup
        return message

    def register_callback(self, query: dict[str, Any]) -> None:
        self._callbacks[query["id"]] = query

    def new_callback_id(self) -> str:
        return str(next(self._callback_ids))


def _buttons(markup: Any) -> list[tuple[str, str]]:
    if not markup:
        return []
    if isinstance(markup, str):
        markup = json.loads(markup)
    buttons = []
    for row in markup.get("inline_keyboard", []):
        for button in row:
            data = button.get("callback_data", "")
            if not button.get("text"):
                raise ApiError(
                    400, "Bad Request: text buttons are unallowed in the inline keyboard"
                )
            if len(data.encode("utf-8")) > CALLBACK_DATA_LIMIT or "callback_data" not in button:
                raise ApiError(400, "Bad Request: BUTTON_DATA_INVALID")
            buttons.append((button["text"], data))
    return buttons


class _MethodHandler(tornado.web.RequestHandler):
    def initialize(self, emulator: BotApiEmulator) -> None:
        self.emulator = emulator

    async def post(self, token: str, method: str) -> None:
        await self._serve(token, method)

    async def get(self, token: str, method: str) -> None:
        await self._serve(token, method)

    async def _serve(self, token: str, method: str) -> None:
        emulator = self.emulator
        if token != emulator.token:
            self._answer(401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
            return
        try:
            result = await emulator.call(method, self._params())
        except ApiError as error:
            await emulator.refused(method, error)
            body: dict[str, Any] = {
                "ok": False,
                "error_code": error.code,
                "description": error.description,
            }
            if error.retry_after is not None:
                body["parameters"] = {"retry_after": error.retry_after}
            self._answer(error.code, body)
            return
        self._answer(200, {"ok": True, "result": result})

    def _params(self) -> dict[str, Any]:
        content_type = self.request.headers.get("Content-Type", "")
        body = self.request.body.decode("utf-8") if self.request.body else ""
        if content_type.startswith("application/json"):
            return json.loads(body) if body else {}
        params: dict[str, Any] = dict(parse_qsl(body, keep_blank_values=True))
        params.update({k: v[-1].decode() for k, v in self.request.query_arguments.items()})
        for key in ("commands", "reply_markup", "allowed_updates"):
            if isinstance(params.get(key), str) and params[key]:
                params[key] = json.loads(params[key])
        return params

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(body))


class TelegramUser(TypedDict):
    """A user, as the Bot API describes one."""

    id: int
    is_bot: bool
    first_name: str
    language_code: str
    username: NotRequired[str]


class TelegramChat(TypedDict):
    """A chat, as the Bot API describes one: private (with a first name) or a group (with a
    title)."""

    id: int
    type: str
    first_name: NotRequired[str]
    title: NotRequired[str]


class Phone:
    """One user's private chat with the bot."""

    def __init__(self, emulator: BotApiEmulator, user_id: int, first_name: str, language: str):
        self.emulator = emulator
        self.user: TelegramUser = {
            "id": user_id,
            "is_bot": False,
            "first_name": first_name,
            "language_code": language,
        }
        self.chat: TelegramChat = {"id": user_id, "type": "private", "first_name": first_name}
        self._read = 0

    def _message(self, **content: Any) -> dict[str, Any]:
        return {
            "message_id": next(self.emulator._message_ids),
            "date": int(time.time()),
            "chat": self.chat,
            "from": self.user,
            **content,
        }

    def update(self, **content: Any) -> dict[str, Any]:
        """A message update from this user, not yet delivered."""
        return {"update_id": self.emulator.new_update_id(), "message": self._message(**content)}

    async def send(self, text: str) -> dict[str, Any]:
        """Type a message (a command if it starts with /)."""
        content: dict[str, Any] = {"text": text}
        if text.startswith("/"):
            command = text.split()[0]
            content["entities"] = [{"type": "bot_command", "offset": 0, "length": len(command)}]
        update = self.update(**content)
        await self.emulator.deliver(update)
        return update

    async def edit(self, sent: dict[str, Any], text: str) -> dict[str, Any]:
        """Change the text of a message this user sent (`sent`, the update that brought it)."""
        message = sent["message"] | {"text": text, "edit_date": int(time.time())}
        update = {"update_id": self.emulator.new_update_id(), "edited_message": message}
        await self.emulator.deliver(update)
        return update

    async def send_content(self, **content: Any) -> dict[str, Any]:
        """Send something other than text (a sticker, a photo …)."""
        update = self.update(**content)
        await self.emulator.deliver(update)
        return update

    async def tap(self, message: Sent, label: str) -> dict[str, Any]:
        """Tap the button with this label under one of the bot's messages."""
        data = next(data for text, data in message.buttons if text == label)
        return await self.tap_data(message, data)

    async def tap_in_group(self, message: Sent, label: str) -> dict[str, Any]:
        """Tap a button under one of the bot's messages in a group this user is in."""
        data = next(data for text, data in message.buttons if text == label)
        group: TelegramChat = {"id": message.chat_id, "type": "supergroup", "title": "Experts"}
        return await self.tap_data(message, data, chat=group)

    async def tap_data(
        self, message: Sent, data: str, chat: TelegramChat | None = None
    ) -> dict[str, Any]:
        """Send a callback with any data, as a forged or stale button would."""
        query = {
            "id": self.emulator.new_callback_id(),
            "from": self.user,
            "chat_instance": str((chat or self.chat)["id"]),
            "data": data,
            "message": {
                "message_id": message.message_id,
                "date": int(time.time()),
                "chat": chat or self.chat,
                "from": {"id": 123456, "is_bot": True, "first_name": "IP Desk"},
                "text": message.text,
            },
        }
        self.emulator.register_callback(query)
        update = {"update_id": self.emulator.new_update_id(), "callback_query": query}
        await self.emulator.deliver(update)
        return update

    @property
    def received(self) -> list[Sent]:
        """Everything the bot sent to this chat."""
        return self.emulator.messages.get(self.chat["id"], [])

    async def read(self, count: int = 1, within: float = 60.0) -> list[Sent]:
        """The next `count` messages the bot sends to this chat (waits for them)."""
        wanted = self._read + count
        await self.emulator.wait_for(lambda: len(self.received) >= wanted, within)
        new = self.received[self._read : wanted]
        self._read = wanted
        return new

    async def quiet(self, seconds: float = 0.5) -> list[Sent]:
        """Whatever else arrives within `seconds` (expected: nothing)."""
        await asyncio.sleep(seconds)
        extra = self.received[self._read :]
        self._read = len(self.received)
        return extra
