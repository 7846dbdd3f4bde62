"""The store on SQLite and PostgreSQL: migrations, duplicate intake, one open ticket per talent."""

import asyncio

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import event, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from bot.config import Settings
from bot.conversation import Inbound
from bot.services import build_services
from bot.store import DuplicateInbound, Store
from bot.store.models import Base, Ticket
from tests.conftest import PostgresDatabase


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
            assert services.store.engine.pool.size() == 7
        finally:
            await services.store.close()
