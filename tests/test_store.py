"""The store on SQLite and PostgreSQL: migrations, duplicate intake, one open ticket per talent,
what a turn writes, and a connection lost in the middle of one."""

import asyncio
from datetime import timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import event, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.pool import QueuePool

from bot.config import Settings
from bot.conversation import Button, Inbound, OutMessage
from bot.services import build_services
from bot.store import DuplicateInbound, Store, StoreUnavailable
from bot.store.inbox import Inbox
from bot.store.models import Base, Message, Ticket, User, utcnow
from tests.conftest import PostgresDatabase, upgraded_store
from tests.postgres import as_admin


async def test_migrations_build_exactly_the_models_schema(store: Store) -> None:
    def differences(connection: Connection) -> list[object]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return compare_metadata(context, Base.metadata)

    async with store.engine.connect() as connection:
        assert await connection.run_sync(differences) == []
    assert await store.is_current()


async def test_upgrading_twice_changes_nothing(store: Store) -> None:
    await store.upgrade()
    assert await store.is_current()


async def test_a_seen_message_key_is_refused(store: Store) -> None:
    inbound = Inbound(channel="telegram", user_key="42", message_key="update-1", text="hi")
    async with store.transaction() as tx:
        user = await tx.user("telegram", "42", "en")
        await tx.accept(inbound, user, "hi", "en")
    async with store.transaction() as tx:
        user = await tx.user("telegram", "42", "en")
        with pytest.raises(DuplicateInbound):
            await tx.accept(inbound, user, "hi", "en")


async def test_the_same_key_on_another_channel_is_a_different_message(store: Store) -> None:
    async with store.transaction() as tx:
        for channel in ("telegram", "wechat"):
            user = await tx.user(channel, "42", "en")
            inbound = Inbound(channel=channel, user_key="42", message_key="1", text="hi")
            await tx.accept(inbound, user, "hi", "en")


async def test_first_contact_creates_a_user_once(store: Store) -> None:
    async with store.transaction() as tx:
        first = await tx.user("telegram", "7", "zh")
        again = await tx.user("telegram", "7", "en")
    assert first.id == again.id
    assert again.language == "zh"


async def test_two_first_contacts_at_once_make_one_user_with_the_first_name(
    store: Store,
) -> None:
    async def first_contact(name: str, delay: float) -> int:
        await asyncio.sleep(delay)
        async with store.transaction() as tx:
            user = await tx.user("telegram", "77", "en", name)
            # Held open: the other contact comes while this one has not committed.
            await asyncio.sleep(0.1)
            return user.id

    first, second = await asyncio.gather(first_contact("Ann", 0), first_contact("Bo", 0.02))
    assert first == second
    async with store.transaction() as tx:
        users = list(await tx.session.scalars(select(User)))
    assert [(user.external_id, user.display_name) for user in users] == [("77", "Ann")]


async def test_a_talent_cannot_hold_two_open_tickets(store: Store) -> None:
    async with store.transaction() as tx:
        user = await tx.user("telegram", "9", "en")
        tx.session.add(Ticket(talent_id=user.id, question="a", language="en"))
    with pytest.raises(IntegrityError):
        async with store.transaction() as tx:
            tx.session.add(Ticket(talent_id=user.id, question="b", language="en"))
    async with store.transaction() as tx:
        tx.session.add(Ticket(talent_id=user.id, question="c", language="en", status="closed"))


async def test_a_burst_of_work_reuses_the_postgresql_connections_kept_open() -> None:
    async with PostgresDatabase() as url:
        store = Store.open(url, pool_size=8)
        opened: list[object] = []
        event.listen(store.engine.sync_engine, "connect", lambda *_: opened.append(None))

        async def work() -> None:
            async with store.transaction() as tx:
                await tx.session.execute(text("SELECT pg_sleep(0.05)"))

        try:
            for _burst in range(3):
                await asyncio.gather(*(work() for _ in range(8)))
        finally:
            await store.close()
    assert len(opened) == 8


async def test_the_bot_keeps_as_many_postgresql_connections_as_its_setting_says() -> None:
    async with PostgresDatabase() as url:
        services = build_services(Settings(database_url=url, database_pool_size=7))
        try:
            pool = services.store.engine.pool
            assert isinstance(pool, QueuePool)
            assert pool.size() == 7
        finally:
            await services.store.close()


async def test_a_turn_stores_its_question_decision_and_replies_as_they_were_given(
    store: Store,
) -> None:
    inbound = Inbound(channel="telegram", user_key="42", message_key="update-7", text="fees?")
    before = utcnow()
    async with store.transaction() as tx:
        user = await tx.user("telegram", "42", "en")
        question = await tx.accept(inbound, user, "fees?", "en")
        question.action, question.entry_id, question.score = "clarify", None, 0.41
        question.options = ["patent-fees", "trademark-fees"]
        replies = [
            OutMessage("Which one?", "en", (Button("Patent fees", "1:e:patent-fees"),)),
            OutMessage("Or ask an expert.", "en"),
        ]
        await tx.record_replies(question, replies)
    async with store.transaction() as tx:
        rows = list(await tx.session.scalars(select(Message).order_by(Message.id)))
        nulls = await tx.session.scalar(
            text("SELECT count(*) FROM messages WHERE attachment IS NULL AND options IS NULL")
        )
    asked, *said = rows
    assert (asked.text, asked.direction, asked.action, asked.score) == (
        "fees?",
        "in",
        "clarify",
        0.41,
    )
    assert asked.options == ["patent-fees", "trademark-fees"]
    assert asked.attachment is None
    assert asked.buttons is None
    assert [(reply.text, reply.buttons, reply.reply_to) for reply in said] == [
        ("Which one?", [["Patent fees", "1:e:patent-fees"]], asked.id),
        ("Or ask an expert.", None, asked.id),
    ]
    # None is SQL's NULL, not JSON's null; times are UTC, read back as they were written.
    assert nulls == 2
    assert all(before <= row.created_at <= utcnow() + timedelta(seconds=1) for row in rows)


async def test_what_a_turn_reads_is_as_stored_and_what_it_changes_is_kept(store: Store) -> None:
    inbound = Inbound(channel="telegram", user_key="42", message_key="update-8", text="fees?")
    async with store.transaction() as tx:
        user = await tx.user("telegram", "42", "en")
        question = await tx.accept(inbound, user, "fees?", "en")
        question.action, question.score, question.options = "clarify", 0.41, ["patent-fees"]
        choices = (Button("Patent fees", "1:e:patent-fees"),)
        await tx.record_replies(question, [OutMessage("Which one?", "en", choices)])
        tx.session.add(Ticket(talent_id=user.id, question="fees?", language="en"))
    async with store.transaction() as tx:
        user = await tx.user("telegram", "42", "en")
        user.language, user.display_name = "zh", "Li"
        ticket = await tx.ticket_of(user)
        assert ticket is not None
        ticket.contacts_shared = True
        assert await tx.ticket_of(user) is ticket
        asked = await tx.last_question(user, before=question.id + 10)
        buttons = await tx.last_buttons(user, before=question.id + 10)
    assert asked is not None
    assert (asked.text, asked.score, asked.options) == ("fees?", 0.41, ["patent-fees"])
    assert asked.created_at.tzinfo is not None
    assert buttons == [("Patent fees", "1:e:patent-fees")]
    async with store.transaction() as tx:
        user = await tx.user("telegram", "42", "en")
        ticket = await tx.ticket_of(user)
        assert ticket is not None
        assert (user.language, user.display_name, ticket.contacts_shared) == ("zh", "Li", True)
        # A change not yet written is seen by what the turn reads next.
        ticket.status = "closed"
        assert await tx.ticket_of(user) is None


async def test_an_accepted_message_knows_the_open_ticket_and_the_tap_just_before_it(
    store: Store,
) -> None:
    def said(key: str, button: str | None = None) -> Inbound:
        return Inbound("telegram", "42", key, text="" if button else "hi", button=button)

    async with store.transaction() as tx:
        user = await tx.user("telegram", "42", "en")
        await tx.accept(said("tap", "1:s:5:4"), user, "", "en")
    async with store.transaction() as tx:
        user = await tx.user("telegram", "42", "en")
        typed = await tx.accept(said("typed"), user, "hi", "en")
        assert await tx.previous_tap(user, before=typed.id) == "1:s:5:4"
        assert await tx.ticket_of(user) is None
        tx.session.add(Ticket(talent_id=user.id, question="hi", language="en"))
        opened = await tx.ticket_of(user)
        assert opened is not None
    async with store.transaction() as tx:
        user = await tx.user("telegram", "42", "en")
        again = await tx.accept(said("again"), user, "hi", "en")
        assert await tx.previous_tap(user, before=again.id) is None
        found = await tx.ticket_of(user)
        assert found is not None
        assert found.id == opened.id


async def test_a_connection_cut_in_the_middle_of_a_turn_is_an_outage_the_store_gets_over() -> None:
    inbound = Inbound(channel="telegram", user_key="42", message_key="update-8", text="hi")
    async with PostgresDatabase() as url, upgraded_store(url) as store:

        async def cut_turn() -> None:
            async with store.transaction() as tx:
                user = await tx.user("telegram", "42", "en")
                backend = await tx.session.scalar(text("SELECT pg_backend_pid()"))
                await as_admin(url, "SELECT pg_terminate_backend($1)", backend)
                await tx.accept(inbound, user, "hi", "en")

        with pytest.raises(StoreUnavailable):
            await cut_turn()
        # Nothing of the cut turn was kept, and the next one gets a working connection.
        async with store.transaction() as tx:
            user = await tx.user("telegram", "42", "en")
            await tx.accept(inbound, user, "hi", "en")


async def test_a_single_statement_on_a_connection_cut_while_pooled_is_an_outage_then_works() -> (
    None
):
    async with PostgresDatabase() as url, upgraded_store(url) as store:
        inbox = Inbox(store, timedelta(minutes=1))
        assert await inbox.receive(1, {"update_id": 1})
        # Cut while it waits in the pool, too briefly to be tested before it is lent again.
        await as_admin(
            url,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
        with pytest.raises(StoreUnavailable):
            await inbox.receive(2, {"update_id": 2})
        assert await inbox.receive(2, {"update_id": 2})
