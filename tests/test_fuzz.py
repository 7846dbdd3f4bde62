"""Bad input, generated: whatever Telegram could deliver, the real Application takes in stride.

Hypothesis writes the updates: text in any script and of any length (empty, blank, control
characters, NUL, emoji, right-to-left, over Telegram's 4096), buttons in the bot's own formats
with odd, stale or forged fields, messages without the optional fields, edited messages,
channel posts, group messages, update types the bot does not handle, users with odd language
codes. Three talents, an expert and a staff member send them; the emulator delivers them by
webhook, then once more (Telegram redelivers after a crash). After every batch: nothing was
logged as an error (the error handler logs and apologises), Telegram refused none of the
bot's requests, the redelivered batch was not handled again, and the store holds together.

Hypothesis runs in a worker thread and hands each batch to the test's event loop, so one
Application serves every example; `derandomize` makes every run try the same examples.
"""

import asyncio
import logging
import shutil
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from telegram.ext import Application

from bot.channels import TELEGRAM
from bot.channels.telegram import TelegramChannel
from bot.matching import Matcher
from bot.paths import bundled
from bot.services import Services
from bot.store import Store
from bot.store.models import Feedback, Message, Ticket, TicketMessage, User
from bot.templates import Templates
from tests.botapi import BotApiEmulator, Limits, free_port
from tests.conftest import running, telegram_settings
from tests.conversations import QUESTION

TALENTS = (1001, 1002, 1003)
NEWCOMER = 1009
EXPERT = 2001
STAFF = 2002
GROUP = -1001234
CHANNEL = -1005678
BOT = {"id": 123456, "is_bot": True, "first_name": "IP Desk", "username": "ip_desk_bot"}
TALENT_COMMANDS = [
    "start", "help", "language", "expert", "cancel", "privacy", "mydata", "forget", "claim", "nonsense", "",
]  # fmt: skip
DESK_COMMANDS = [
    "queue", "mine", "claim", "release", "close", "available", "away", "unanswered", "stats",
    "addexpert", "keytalent", "reassign", "help",
]  # fmt: skip
SENDS = ("sendMessage", "editMessageText", "editMessageReplyMarkup")
# Batches per database: about 10 s each, the same batches in every run (`derandomize`).
EXAMPLES = 60
# Blank, control characters, NUL, joined emoji, right-to-left, markup, and real questions.
ODD_TEXTS = [
    "", " ", "\n\t ", "\x00", "a\x00b", "\u200b", "\u202eevil", "\ufeff", "🤷🏽‍♀️", "🇨🇳",
    "مرحبا، هل يمكنني تسجيل براءة اختراع في الصين؟", "שלום, מה שלומך?", "<b>bold</b> & <script>",
    "&amp; &lt;", "hello", "thanks", QUESTION, "外国人可以参加专利代理师考试吗？",
    "I need an expert", "my deadline is tomorrow, call +86 138 0000 0000",
]  # fmt: skip


def _json_values() -> st.SearchStrategy[Any]:
    return st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=10),
        lambda inner: (
            st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
        ),
        max_leaves=8,
    )


def _names() -> st.SearchStrategy[str]:
    # Telegram allows up to 64 characters in a name, and no control characters; its JSON is
    # UTF-8, which cannot carry a lone surrogate.
    return st.text(st.characters(exclude_categories=["Cc", "Cs"]), min_size=1, max_size=64)


def _users(ids: tuple[int, ...]) -> st.SearchStrategy[dict[str, Any]]:
    language_codes = st.sampled_from(
        [
            "en",
            "zh",
            "zh-hans",
            "zh-TW",
            "ZH",
            "zh_CN",
            "en-US",
            "ar",
            "he",
            "fa",
            "ru",
            "",
            "x-klingon",
        ]
    ) | st.text(max_size=12)
    return st.builds(
        lambda user_id, first_name, optional: {
            "id": user_id,
            "is_bot": False,
            "first_name": first_name,
            **optional,
        },
        st.sampled_from(ids),
        _names(),
        st.fixed_dictionaries(
            {},
            optional={
                "language_code": language_codes,
                "last_name": _names(),
                "username": st.from_regex(r"[a-z][a-z0-9_]{4,31}", fullmatch=True),
                "is_premium": st.booleans(),
            },
        ),
    )


def _numbers() -> st.SearchStrategy[str]:
    """Ticket and message numbers as a user might write them: real, negative, huge, and
    characters Python counts as digits that `int` may not read."""
    return (
        st.integers(-2, 12).map(str)
        | st.sampled_from([2**31 - 1, 2**31, 2**63, 10**70]).map(str)
        | st.sampled_from(["²", "٣", "１", "0x1", "1e3", "#T-1", "T-2", " 3 ", ""])
        | st.text(st.characters(categories=["Nd", "No"]), min_size=1, max_size=3)
    )


def _texts() -> st.SearchStrategy[str]:
    odd = st.sampled_from(ODD_TEXTS)
    long = st.builds(
        lambda piece, times: piece * times, st.text(min_size=1, max_size=8), st.integers(300, 1200)
    )
    return st.one_of(odd, _commands(TALENT_COMMANDS), _numbers(), st.text(max_size=200), long)


def _commands(names: list[str]) -> st.SearchStrategy[str]:
    return st.builds(
        lambda command, mention, argument: f"/{command}{mention} {argument}".rstrip(),
        st.sampled_from(names),
        st.sampled_from(["", "@ip_desk_bot", "@", "@other_bot"]),
        st.one_of(
            _numbers(),
            st.builds(lambda n, rest: f"{n} {rest}", _numbers(), st.text(max_size=40)),
            # An argument longer than any column it could land in.
            st.builds(
                lambda n, word: f"{n} {word}",
                _numbers(),
                st.text(st.characters(categories=["L"]), min_size=100, max_size=200),
            ),
            st.sampled_from(["en", "zh", "xx", "3001 Mei patent,trademark en,zh", "1 2002"]),
        ),
    )


def _enrolments() -> st.SearchStrategy[str]:
    """Staff adding an expert, with any id and name."""
    return st.builds(
        lambda user_id, name, rest: f"/addexpert {user_id} {name} {rest}".rstrip(),
        _numbers(),
        _names() | st.text(st.characters(categories=["L"]), min_size=65, max_size=200),
        st.sampled_from(["", "patent", "patent,xx en", "trademark zh,en", ","]),
    )


def _callback_data(entry_ids: list[str]) -> st.SearchStrategy[str]:
    argument = st.one_of(
        _numbers(),
        st.sampled_from([*entry_ids, "en", "zh", "fr", "yes", "no", "name", "contacts", "x.y"]),
        st.builds(
            lambda ticket, stars: f"{ticket}:{stars}",
            _numbers(),
            st.sampled_from(["1", "5", "0", "6", "x"]),
        ),
        st.text(max_size=12),
    )
    own = st.builds(
        lambda version, kind, arg: f"{version}:{kind}:{arg}" if arg else f"{version}:{kind}",
        st.sampled_from(["1", "1", "1", "0", "2", ""]),
        st.sampled_from([*"emynxolfkscrd", "", "zz"]),
        argument,
    )
    # Telegram refuses callback data over 64 bytes, so no tap can carry more.
    return (own | st.text(max_size=16)).filter(lambda data: len(data.encode()) <= 64)


def _message(user: dict[str, Any], chat: dict[str, Any], **content: Any) -> dict[str, Any]:
    return {"message_id": 1, "date": 1700000000, "chat": chat, "from": user, **content}


def _private(user: dict[str, Any]) -> dict[str, Any]:
    return {"id": user["id"], "type": "private", "first_name": user["first_name"]}


def _contents() -> st.SearchStrategy[dict[str, Any]]:
    file = {"file_id": "AgAD", "file_unique_id": "u1"}
    things = st.sampled_from(
        [
            {
                "sticker": {
                    **file,
                    "type": "regular",
                    "width": 512,
                    "height": 512,
                    "is_animated": False,
                    "is_video": False,
                }
            },
            {"photo": [{**file, "width": 90, "height": 90}, {**file, "width": 800, "height": 800}]},
            {"photo": []},
            {"document": {**file, "file_name": "申请书.pdf"}},
            {"voice": {**file, "duration": 3}},
            {"location": {"latitude": 31.2, "longitude": 121.5}},
            {"contact": {"phone_number": "+8613800000000", "first_name": "Li"}},
            {"dice": {"emoji": "🎲", "value": 6}},
            {},
        ]
    )
    captions = st.fixed_dictionaries({}, optional={"caption": _texts()})
    return st.builds(lambda thing, caption: {**thing, **caption}, things, captions)


def _updates(entry_ids: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    """Update bodies without the ids Telegram assigns (`BotApiEmulator.stamped` adds them)."""
    users = _users(TALENTS * 3 + (EXPERT, STAFF))
    talk = st.builds(
        lambda user, text: {"message": _message(user, _private(user), text=text)},
        _users(TALENTS),
        _texts(),
    )
    desk = st.builds(
        lambda user, text: {"message": _message(user, _private(user), text=text)},
        _users((EXPERT, STAFF)),
        _commands(DESK_COMMANDS) | _enrolments() | _texts(),
    )
    edited = st.builds(
        lambda user, text: {
            "edited_message": _message(user, _private(user), text=text, edit_date=1700000100)
        },
        users,
        _texts(),
    )
    other = st.builds(
        lambda user, content: {"message": _message(user, _private(user), **content)},
        users,
        _contents(),
    )
    group = st.builds(
        lambda user, kind, text: {
            "message": _message(user, {"id": GROUP, "type": kind, "title": "Experts"}, text=text)
        },
        users,
        st.sampled_from(["group", "supergroup"]),
        _texts(),
    )
    channel = {"id": CHANNEL, "type": "channel", "title": "News"}
    post = st.builds(
        lambda key, text: {
            key: {
                "message_id": 7,
                "date": 1700000000,
                "chat": channel,
                "sender_chat": channel,
                "text": text,
            }
        },
        st.sampled_from(["channel_post", "edited_channel_post"]),
        _texts(),
    )
    return st.one_of(
        talk,
        talk,
        talk,
        desk,
        desk,
        edited,
        other,
        group,
        post,
        _taps(users, entry_ids),
        _others(users),
    )


def _tap(user: dict[str, Any], where: str, message_id: int, data: str | None) -> dict[str, Any]:
    query: dict[str, Any] = {"from": user, "chat_instance": "42"}
    if data is not None:
        query["data"] = data
    if where == "inline":
        query["inline_message_id"] = "AAAA"
    else:
        chat = (
            _private(user)
            if where == "private"
            else {"id": GROUP, "type": "supergroup", "title": "Experts"}
        )
        # Date 0: a message too old for Telegram to show, which the bot still gets.
        query["message"] = _message(BOT, chat, message_id=message_id, text="…") | (
            {"date": 0} if where == "inaccessible" else {}
        )
    return {"callback_query": query}


def _taps(
    users: st.SearchStrategy[dict[str, Any]], entry_ids: list[str]
) -> st.SearchStrategy[dict[str, Any]]:
    return st.builds(
        _tap,
        users,
        st.sampled_from(["private", "private", "group", "inline", "inaccessible"]),
        st.integers(1, 40),
        st.none() | _callback_data(entry_ids),
    )


def _says(user_id: int, text: str) -> dict[str, Any]:
    user = {"id": user_id, "is_bot": False, "first_name": "Ana"}
    return {"message": _message(user, _private(user), text=text)}


def _taps_on(user_id: int, data: str) -> dict[str, Any]:
    return _tap({"id": user_id, "is_bot": False, "first_name": "Ana"}, "private", 1, data)


def _others(users: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    """Update types the bot registers no handler for, and one Telegram may add one day."""
    blocked = st.builds(
        lambda user, status: {
            "my_chat_member": {
                "chat": _private(user),
                "from": user,
                "date": 1700000000,
                "old_chat_member": {"status": "member", "user": BOT},
                "new_chat_member": {"status": status, "user": BOT, "until_date": 0},
            }
        },
        users,
        st.sampled_from(["kicked", "member"]),
    )
    inline = st.builds(
        lambda user, text: {"inline_query": {"id": "9", "from": user, "query": text, "offset": ""}},
        users,
        st.text(max_size=50),
    )
    reaction = st.builds(
        lambda user: {
            "message_reaction": {
                "chat": _private(user),
                "message_id": 3,
                "user": user,
                "date": 1700000000,
                "old_reaction": [],
                "new_reaction": [{"type": "emoji", "emoji": "👍"}],
            }
        },
        users,
    )
    future = st.builds(
        lambda name, value: {f"future_{name}": value},
        st.from_regex(r"[a-z]{1,12}", fullmatch=True),
        _json_values(),
    )
    return st.one_of(blocked, inline, reaction, future)


@asynccontextmanager
async def _served_by_webhook(
    emulator: BotApiEmulator, store: Store, matcher: Matcher, knowledge_dir: Path
) -> AsyncIterator[Application]:
    port = free_port()
    # Pacing would only slow the test: the limits are the subject of other tests.
    emulator.limits = Limits(
        overall_per_second=10_000, chat_per_second=10_000, group_per_minute=10**6
    )
    bot_settings = telegram_settings(
        emulator,
        knowledge_dir=knowledge_dir,
        knowledge_check_seconds=3600,
        experts_group_chat_id=GROUP,
        telegram_webhook_url=f"http://127.0.0.1:{port}",
        web_port=port,
        telegram_messages_per_second=10_000,
        telegram_chat_messages_per_second=10_000,
        telegram_group_messages_per_minute=10**6,
    )
    services = Services(
        settings=bot_settings,
        store=store,
        matcher=matcher,
        templates=Templates(bundled("templates")),
    )
    await services.tickets.enrol("telegram", str(EXPERT), "Mei", languages=["en", "zh"])
    await services.tickets.appoint_staff("telegram", str(STAFF))
    async with running(bot_settings, services) as runtime:
        channel = runtime.outbox.channel(TELEGRAM)
        assert isinstance(channel, TelegramChannel)
        yield channel.application


async def _set_the_scene(app: Application, emulator: BotApiEmulator) -> None:
    """An answer with its buttons, and tickets in every state, for the fuzzed ids to find."""
    talent, waiting, served, expert = (emulator.phone(n) for n in (*TALENTS, EXPERT))
    for phone, text in [
        (talent, QUESTION),
        (talent, "/expert"),
        (expert, "/claim 1"),
        (waiting, "/expert"),
        (served, "/expert"),
        (expert, "/claim 3"),
        (expert, "/close 3 Answered by phone"),
    ]:
        await phone.send(text)
        await app.update_queue.join()


async def _deliver(
    app: Application, emulator: BotApiEmulator, updates: list[dict[str, Any]]
) -> None:
    """Deliver by webhook, then wait until the bot has handled every update."""
    for update in updates:
        status = await emulator.deliver(update)
        assert status == 200, f"the webhook answered {status} to {update!r}"
    await app.update_queue.join()


async def _counts(store: Store) -> dict[str, int]:
    async with store.transaction() as tx:
        return {
            model.__tablename__: await tx.session.scalar(select(func.count()).select_from(model))
            or 0
            for model in (User, Message, Ticket, TicketMessage, Feedback)
        }


async def _inconsistencies(store: Store) -> list[str]:
    """What the store holds that its own rules forbid."""
    problems: list[str] = []
    async with store.transaction() as tx:
        users = {user.id: user for user in await tx.session.scalars(select(User))}
        messages = {message.id: message for message in await tx.session.scalars(select(Message))}
        tickets = list(await tx.session.scalars(select(Ticket)))
        relayed = list(await tx.session.scalars(select(TicketMessage)))
        feedback = list(await tx.session.scalars(select(Feedback)))
    for message in messages.values():
        if message.user_id not in users:
            problems.append(f"message {message.id} belongs to no user")
        if message.direction not in ("in", "out"):
            problems.append(f"message {message.id} goes {message.direction!r}")
        if message.direction == "in" and not message.channel_key:
            problems.append(f"inbound message {message.id} has no channel key")
        if message.action not in (None, "answer", "clarify", "handoff"):
            problems.append(f"message {message.id} has action {message.action!r}")
        if "\x00" in message.text:
            problems.append(f"message {message.id} keeps a NUL")
    open_tickets: dict[int, int] = {}
    for ticket in tickets:
        expert = users.get(ticket.expert_id) if ticket.expert_id is not None else None
        if ticket.talent_id not in users:
            problems.append(f"ticket {ticket.id} belongs to no talent")
        if ticket.status == "claimed" and (
            expert is None or expert.role not in ("expert", "staff")
        ):
            problems.append(f"ticket {ticket.id} is claimed by no expert")
        elif ticket.status == "open" and ticket.expert_id is not None:
            problems.append(f"open ticket {ticket.id} has an expert")
        elif ticket.status == "closed" and ticket.closed_at is None:
            problems.append(f"closed ticket {ticket.id} has no closing time")
        elif ticket.status not in ("open", "claimed", "closed"):
            problems.append(f"ticket {ticket.id} is {ticket.status!r}")
        if ticket.rating is not None and not 1 <= ticket.rating <= 5:
            problems.append(f"ticket {ticket.id} is rated {ticket.rating}")
        if ticket.status != "closed":
            open_tickets[ticket.talent_id] = open_tickets.get(ticket.talent_id, 0) + 1
    problems += [f"talent {t} has {n} open tickets" for t, n in open_tickets.items() if n > 1]
    ticket_ids = {ticket.id for ticket in tickets}
    problems += [
        f"relayed message {m.id} is on no ticket" for m in relayed if m.ticket_id not in ticket_ids
    ]
    for verdict in feedback:
        answer = messages.get(verdict.message_id)
        if answer is None or answer.action != "answer" or answer.user_id != verdict.user_id:
            problems.append(f"feedback {verdict.id} is not on an answer to its talent")
    return problems


async def test_no_update_telegram_could_send_breaks_the_bot(
    emulator: BotApiEmulator,
    store: Store,
    matcher: Matcher,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    knowledge_dir = tmp_path / "knowledge"
    shutil.copytree(bundled("knowledge"), knowledge_dir)
    async with _served_by_webhook(emulator, store, matcher, knowledge_dir) as app:
        await _set_the_scene(app, emulator)
        await _fuzz(app, emulator, store, matcher, caplog)


async def _fuzz(
    app: Application,
    emulator: BotApiEmulator,
    store: Store,
    matcher: Matcher,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with store.transaction() as tx:
        scene = list(await tx.session.scalars(select(Ticket.status).order_by(Ticket.id)))
    assert scene == ["claimed", "open", "closed"]
    templates = Templates(bundled("templates"))
    apologies = {templates.render(language, "apology") for language in ("en", "zh")}
    loop = asyncio.get_running_loop()

    def on_loop(coroutine: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, loop).result(timeout=60)

    def sends(start: int) -> list[tuple[str, dict[str, Any]]]:
        return [call for call in emulator.calls[start:] if call[0] in SENDS]

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    # Batches that once broke the bot, tried first in every run.
    @example([_says(TALENTS[0], "²")])  # a digit to Python, but not to int()
    @example([_taps_on(NEWCOMER, "1:y:99999999999")])  # beyond PostgreSQL's INTEGER
    @example([_taps_on(NEWCOMER, "1:s:x"), _says(NEWCOMER, "thank you, that helped")])
    @example([_taps_on(NEWCOMER, "\x00")])  # PostgreSQL refuses NUL in text
    @example([_says(EXPERT, "/claim 99999999999")])
    @example([_says(EXPERT, "0" * 4100)])  # no space to split at
    @example([_says(STAFF, "/addexpert ² Mei"), _says(TALENTS[2], "/expert")])
    @example([_says(STAFF, "/addexpert " + "1" * 70 + " Mei")])
    @example([_says(STAFF, "/addexpert 3001 " + "B" * 200)])
    @given(st.lists(_updates([entry.id for entry in matcher.knowledge]), min_size=1, max_size=6))
    def handles(bodies: list[dict[str, Any]]) -> None:
        logged, refused, called = len(caplog.records), len(emulator.errors), len(emulator.calls)
        updates = [emulator.stamped(body) for body in bodies]
        on_loop(_deliver(app, emulator, updates))
        apologised = [call for call in sends(called) if call[1].get("text") in apologies]
        called, stored = len(emulator.calls), on_loop(_counts(store))
        on_loop(_deliver(app, emulator, updates))
        errors = [r.getMessage() for r in caplog.records[logged:] if r.levelno >= logging.ERROR]
        assert errors == []
        assert apologised == []
        assert emulator.errors[refused:] == [], "Telegram refused a request"
        assert sends(called) == [], "a redelivered update was answered again"
        assert on_loop(_counts(store)) == stored, "a redelivered update was stored again"
        assert on_loop(_inconsistencies(store)) == []

    await asyncio.to_thread(handles)
