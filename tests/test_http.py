"""The bot's HTTP to the Bot API: PTB's request interface over aiohttp, against a loopback
server. (Every Telegram test also goes through it, to the emulator.)"""

import asyncio
import contextlib
import traceback
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup
from telegram.error import NetworkError, TimedOut

from bot.channels.telegram.http import AiohttpRequest
from tests.botapi import free_port

_BOT = {"id": 1, "is_bot": True, "first_name": "IP Desk", "username": "ip_desk_bot"}
_SENT = {"message_id": 1, "date": 0, "chat": {"id": 5, "type": "private"}}


class _BotApi:
    """A Bot API that keeps what each request carried and answers once `answering` is set (or
    after a second): `getMe` with a bot, any other method with a message sent."""

    def __init__(self) -> None:
        self.answering = asyncio.Event()
        self.answering.set()
        self.received: list[dict[str, Any]] = []
        self.url = ""

    async def answer(self, request: web.Request) -> web.Response:
        if request.content_type == "application/json":
            self.received.append(await request.json())
        else:
            form = await request.post()
            self.received.append(
                {
                    name: (
                        (value.filename, value.file.read())
                        if isinstance(value, web.FileField)
                        else value
                    )
                    for name, value in form.items()
                }
            )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.answering.wait(), 1)
        result = _BOT if request.match_info["method"] == "getMe" else _SENT
        return web.json_response({"ok": True, "result": result})


@pytest.fixture
async def bot_api() -> AsyncIterator[_BotApi]:
    api = _BotApi()
    application = web.Application()
    application.router.add_post("/bot1:TOKEN/{method}", api.answer)
    runner = web.AppRunner(application)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    api.url = f"http://127.0.0.1:{port}/bot1:TOKEN"
    yield api
    api.answering.set()
    await runner.cleanup()


@pytest.fixture
async def request_() -> AsyncIterator[AiohttpRequest]:
    async with AiohttpRequest() as request:
        yield request


@pytest.fixture
async def bot(bot_api: _BotApi) -> AsyncIterator[Bot]:
    bot = Bot(
        "1:TOKEN",
        base_url=bot_api.url.removesuffix("1:TOKEN"),
        request=AiohttpRequest(),
        get_updates_request=AiohttpRequest(connections=1),
    )
    await bot.initialize()
    yield bot
    await bot.shutdown()


async def test_a_message_goes_as_json_and_the_sent_message_comes_back(
    bot_api: _BotApi, bot: Bot
) -> None:
    keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("Helpful", callback_data="1:y:7")]])
    sent = await bot.send_message(5, "专利 & patents", reply_markup=keyboard)
    assert sent.message_id == 1
    received = bot_api.received[-1]
    assert received["chat_id"] == 5
    assert received["text"] == "专利 & patents"
    assert received["reply_markup"] == keyboard.to_dict()


async def test_a_file_goes_as_multipart_beside_the_parameters(bot_api: _BotApi, bot: Bot) -> None:
    await bot.send_document(5, b"my data", filename="my-data.json")
    received = bot_api.received[-1]
    assert received["chat_id"] == "5"
    assert received["document"] == ("my-data.json", b"my data")


async def test_a_bot_api_that_does_not_answer_in_time_is_a_timeout(
    bot_api: _BotApi, request_: AiohttpRequest
) -> None:
    bot_api.answering.clear()
    with pytest.raises(TimedOut):
        await request_.post(f"{bot_api.url}/getMe", read_timeout=0.2)


async def test_an_unreachable_bot_api_is_a_network_error(request_: AiohttpRequest) -> None:
    with pytest.raises(NetworkError) as raised:
        await request_.post(f"http://127.0.0.1:{free_port()}/bot/getMe")
    assert not isinstance(raised.value, TimedOut)
    assert "aiohttp.ClientConnectorError" in raised.value.message


async def test_a_failed_request_does_not_show_the_bot_token(request_: AiohttpRequest) -> None:
    token = "123456789:AAE-secretsecretsecretsecret_12345"
    with pytest.raises(NetworkError) as raised:
        await request_.post(f"api.example.org/bot{token}/getMe")
    assert "aiohttp.InvalidUrlClientError" in raised.value.message
    assert "bot<token>/getMe" in raised.value.message
    assert token not in "".join(traceback.format_exception(raised.value))


async def test_a_request_before_initialize_is_refused_with_a_clear_message() -> None:
    with pytest.raises(NetworkError, match="not initialized"):
        await AiohttpRequest().post("http://127.0.0.1:1/bot/getMe")


async def test_requests_go_through_the_proxy_the_environment_names(
    bot_api: _BotApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("http_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", bot_api.url.removesuffix("/bot1:TOKEN"))
    async with AiohttpRequest() as request:
        # The Bot API's own host does not resolve: only the proxy can carry the request.
        result = await request.post("http://api.telegram.invalid/bot1:TOKEN/getMe")
    assert isinstance(result, dict)
    assert result["username"] == "ip_desk_bot"


async def test_a_host_the_environment_exempts_is_reached_without_the_proxy(
    bot_api: _BotApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("http_proxy", raising=False)
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    async with AiohttpRequest() as request:
        result = await request.post(f"{bot_api.url}/getMe")
    assert isinstance(result, dict)
    assert result["username"] == "ip_desk_bot"
