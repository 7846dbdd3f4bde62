"""The pace of Telegram traffic: sends within Telegram's limits, and each chat's updates handled
one at a time, in the order they came."""

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiolimiter import AsyncLimiter
from telegram import Update
from telegram.ext import AIORateLimiter, BaseUpdateProcessor


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
