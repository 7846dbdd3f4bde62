"""Notices waiting to be sent: written in the transaction that decides them, deleted once sent
(or once the recipient cannot be reached), so each goes out at least once."""

from datetime import datetime

from sqlalchemy import delete, select

from bot.knowledge import Language
from bot.store import Store, Transaction
from bot.store.models import Notice, User


def queue(
    tx: Transaction, recipient: User, text: str, language: Language, at: datetime
) -> tuple[Notice, User]:
    """Keep a notice for `recipient`, decided at `at`, to be sent once `tx` commits; the notice
    with its recipient, for sending."""
    notice = Notice(recipient_id=recipient.id, text=text, language=language, created_at=at)
    tx.session.add(notice)
    return notice, recipient


async def waiting(store: Store, decided_before: datetime) -> list[tuple[Notice, User]]:
    """The notices decided before `decided_before` and not yet sent, oldest first, each with
    its recipient."""
    async with store.transaction() as tx:
        rows = await tx.session.execute(
            select(Notice, User)
            .join(User, User.id == Notice.recipient_id)
            .where(Notice.created_at < decided_before)
            .order_by(Notice.id)
        )
        return [(notice, user) for notice, user in rows]


async def sent(store: Store, notice: Notice) -> None:
    """Forget a notice that went out (or that its recipient can no longer receive)."""
    async with store.statement() as connection:
        await connection.execute(delete(Notice).where(Notice.id == notice.id))


async def expire(store: Store, before: datetime) -> int:
    """Drop the notices decided before `before` and still not sent; how many."""
    async with store.statement() as connection:
        gone = await connection.execute(delete(Notice).where(Notice.created_at < before))
        return gone.rowcount or 0
