"""What the store keeps about a talent, erasing it on request, and purging old logs."""

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select, update

from bot.store import Store, Transaction
from bot.store.models import Feedback, Message, Notice, Ticket, TicketMessage, User, utcnow

ERASED = "[erased]"


@dataclass(frozen=True)
class Holdings:
    """Everything stored about one talent, counted."""

    channel: str
    external_id: str
    language: str
    first_name: str | None
    messages: int
    feedback: int
    tickets: list[tuple[int, str]]
    shares_name: bool


async def holdings(tx: Transaction, user: User) -> Holdings:
    """What is stored about `user`."""
    session = tx.session
    messages = await session.scalar(
        select(func.count()).select_from(Message).where(Message.user_id == user.id)
    )
    feedback = await session.scalar(
        select(func.count()).select_from(Feedback).where(Feedback.user_id == user.id)
    )
    tickets = await session.execute(
        select(Ticket.id, Ticket.status).where(Ticket.talent_id == user.id).order_by(Ticket.id)
    )
    return Holdings(
        channel=user.channel,
        external_id=user.external_id,
        language=user.language,
        first_name=user.display_name,
        messages=messages or 0,
        feedback=feedback or 0,
        tickets=[(ticket_id, status) for ticket_id, status in tickets.all()],
        shares_name=user.share_name,
    )


async def forget(tx: Transaction, user: User) -> None:
    """Erase a talent's messages and profile; their tickets stay, anonymised and closed, for
    the figures.

    The user row is kept as an anonymous stub (a new random id, no name), so nothing links it
    to their channel account any more.
    """
    session = tx.session
    await session.execute(delete(Feedback).where(Feedback.user_id == user.id))
    await session.execute(delete(Message).where(Message.user_id == user.id))
    await session.execute(delete(Notice).where(Notice.recipient_id == user.id))
    await session.execute(
        update(TicketMessage)
        .where(TicketMessage.sender_id == user.id)
        .values(text=ERASED, attachment=None)
    )
    # A ticket still waiting or being answered closes: nobody is left to answer.
    await session.execute(
        update(Ticket)
        .where(Ticket.talent_id == user.id, Ticket.status != "closed")
        .values(status="closed", closed_at=utcnow(), close_reason="forgotten")
        .execution_options(synchronize_session=False)
    )
    await session.execute(
        update(Ticket)
        .where(Ticket.talent_id == user.id)
        .values(question=ERASED, rating_comment=None)
        .execution_options(synchronize_session=False)
    )
    user.external_id = f"forgotten-{uuid.uuid4().hex}"
    user.display_name = None
    user.share_name = False
    user.language_chosen = False
    await tx.audit(user, "forget", user.external_id)


async def purge(store: Store, before: datetime) -> int:
    """Delete conversation messages older than `before`; how many."""
    async with store.transaction() as tx:
        gone = await tx.session.execute(
            delete(Message)
            .where(Message.created_at < before)
            .execution_options(synchronize_session=False)
        )
        await tx.session.execute(
            delete(TicketMessage)
            .where(
                TicketMessage.created_at < before,
                TicketMessage.ticket_id.in_(
                    select(Ticket.id).where(Ticket.status == "closed", Ticket.closed_at < before)
                ),
            )
            .execution_options(synchronize_session=False)
        )
        return gone.rowcount or 0
