"""The inbox: channel updates kept from their arrival until handled, for every bot process.

Each process names itself with an owner token and holds a lease on the updates it received,
renewing it while it lives. An update still unhandled when its lease has run out was left by
a process that died (or stalled for longer than a lease): another process takes it over, one
only, by a conditional UPDATE, and handles it again.
"""

import functools
import os
import uuid
from collections.abc import Collection
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from bot.store import Store, answered_inbounds
from bot.store.driver import DriverStatement, one_of
from bot.store.models import InboxUpdate, utcnow

_INBOX = InboxUpdate.__table__


class Inbox:
    """This process's side of the inbox."""

    def __init__(self, store: Store, lease: timedelta) -> None:
        self.store = store
        self.lease = lease
        self.owner = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"

    async def receive(self, update_id: int, payload: dict[str, Any]) -> bool:
        """Keep an update that arrived, leased to this process; whether this process is to
        handle it (not if it was handled, or another process has it)."""
        now = utcnow()
        async with self.store.statement() as connection:
            kept = await _keeping(connection.dialect.name).rows_written(
                connection,
                {
                    "update_id": update_id,
                    "payload": payload,
                    "owner": self.owner,
                    "lease_until": now + self.lease,
                    "received_at": now,
                },
            )
            return kept == 1

    async def handled(
        self, update_ids: Collection[int], channel: str = "", answered: Collection[str] = ()
    ) -> None:
        """Mark updates handled; their content goes, their ids stay to refuse them if sent
        again. With them, note the inbounds of `channel` keyed `answered` as answered (the
        replies to them went out): on PostgreSQL in the same statement, elsewhere first, so
        that an update handled again after a crash between the two is owed nothing, rather
        than one not noted as answered getting its replies once more."""
        values = {
            "update_ids": list(update_ids),
            "from_channel": channel,
            "keys": list(answered),
            "now": utcnow(),
        }
        async with self.store.statement() as connection:
            dialect = connection.dialect.name
            if dialect != "postgresql" and answered:
                await connection.execute(answered_inbounds(dialect), values)
            await _handled(dialect).rows_written(connection, values)

    async def renew(self) -> None:
        """Extend this process's lease on the updates it has not finished."""
        async with self.store.statement() as connection:
            await connection.execute(
                update(_INBOX)
                .where(_INBOX.c.owner == self.owner, _INBOX.c.handled_at.is_(None))
                .values(lease_until=utcnow() + self.lease)
            )

    async def take_abandoned(self) -> list[dict[str, Any]]:
        """Take over the unhandled updates whose lease ran out, oldest first; their JSON."""
        now = utcnow()
        abandoned = (
            InboxUpdate.handled_at.is_(None),
            InboxUpdate.lease_until < now,
            InboxUpdate.owner != self.owner,
        )
        taken = []
        async with self.store.transaction() as tx:
            candidates = await tx.session.execute(
                select(InboxUpdate.update_id, InboxUpdate.payload)
                .where(*abandoned)
                .order_by(InboxUpdate.update_id)
            )
            for update_id, payload in candidates.all():
                won = await tx.session.execute(
                    update(InboxUpdate)
                    .where(InboxUpdate.update_id == update_id, *abandoned)
                    .values(owner=self.owner, lease_until=now + self.lease)
                    .execution_options(synchronize_session=False)
                )
                if won.rowcount == 1 and payload is not None:
                    taken.append(payload)
        return taken

    async def purge(self, before: datetime) -> int:
        """Forget updates handled before `before`; how many."""
        async with self.store.transaction() as tx:
            gone = await tx.session.execute(
                delete(InboxUpdate)
                .where(InboxUpdate.handled_at < before)
                .execution_options(synchronize_session=False)
            )
            return gone.rowcount or 0


@functools.cache
def _keeping(dialect: str) -> DriverStatement:
    """The statement that keeps an arrived update, built once: every update runs it, and
    building it costs about as much as running it."""
    insert = (postgresql_insert if dialect == "postgresql" else sqlite_insert)(_INBOX)
    # Already this process's, and not handled: a first try whose commit went through but whose
    # answer was lost, or Telegram sending it again meanwhile (the process knows what it has
    # queued).
    return DriverStatement(
        insert.on_conflict_do_update(
            index_elements=["update_id"],
            set_={"lease_until": insert.excluded.lease_until},
            where=(_INBOX.c.owner == insert.excluded.owner) & _INBOX.c.handled_at.is_(None),
        ),
        columns=["update_id", "payload", "owner", "lease_until", "received_at"],
    )


@functools.cache
def _handled(dialect: str) -> DriverStatement:
    """The statement that marks updates handled, built once, as `_keeping`: every update is
    marked, one or many at a time. On PostgreSQL it notes the inbounds answered as well, in a
    statement of their own inside it: one round trip, and both or neither."""
    handled = (
        update(_INBOX)
        .where(one_of(_INBOX.c.update_id, "update_ids", dialect))
        .values(handled_at=bindparam("now"), payload=None)
    )
    if dialect == "postgresql":
        handled = handled.add_cte(answered_inbounds(dialect).cte("answered"))
    return DriverStatement(handled)
