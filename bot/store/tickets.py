"""The expert queue in the store: claiming, releasing, closing, rating and relayed messages.

Every change of a ticket's state is one conditional UPDATE whose row count decides the
outcome, so it stays correct with many bot processes on one PostgreSQL.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import func, select, update

from bot.conversation import Attachment, OutMessage
from bot.store import Store, outgoing, restored, stored, typed_talent_questions
from bot.store.models import (
    Announcement,
    AuditEvent,
    Feedback,
    Message,
    Ticket,
    TicketMessage,
    User,
    utcnow,
)

ClaimOutcome = Literal["claimed", "yours", "taken", "closed", "missing", "limit"]


@dataclass(frozen=True)
class Relay:
    """A relayed message waiting to be delivered (or just delivered)."""

    id: int
    ticket_id: int
    sender_id: int | None
    recipient_id: int | None
    text: str
    attachment: Attachment | None = None

    @classmethod
    def of(cls, message: TicketMessage) -> "Relay":
        """The relay a stored ticket message makes."""
        return cls(
            message.id,
            message.ticket_id,
            message.sender_id,
            message.recipient_id,
            message.text,
            restored(message.attachment),
        )


# A relayed message stored, with someone to show it to, and not shown yet.
_UNDELIVERED = (TicketMessage.delivered_at.is_(None), TicketMessage.recipient_id.is_not(None))


# What one expert did with a ticket, cleared when it passes to another (or back to the
# queue): the next one is reminded, and the talent nudged, by their own clock.
_NEW_HOLDER: dict[str, None] = {"first_reply_at": None, "reminded_at": None, "nudged_at": None}


class Tickets:
    """Ticket operations, each in its own transaction."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def claim(self, ticket_id: int, expert: User, limit: int) -> ClaimOutcome:
        """Give the ticket to `expert` if it is open and they are under their limit."""
        async with self.store.transaction() as tx:
            session = tx.session
            if session.bind.dialect.name == "postgresql":
                # Claims by one expert queue up here, so two cannot both pass the limit check.
                await session.execute(select(User.id).where(User.id == expert.id).with_for_update())
            claimed = await session.execute(
                update(Ticket)
                .where(
                    Ticket.id == ticket_id,
                    Ticket.status == "open",
                    select(func.count())
                    .select_from(Ticket)
                    .where(Ticket.expert_id == expert.id, Ticket.status == "claimed")
                    .scalar_subquery()
                    < limit,
                )
                .values(status="claimed", expert_id=expert.id, claimed_at=utcnow(), **_NEW_HOLDER)
                .execution_options(synchronize_session=False)
            )
            if claimed.rowcount == 1:
                await tx.audit(expert, "claim", f"T-{ticket_id}")
                return "claimed"
            ticket = await session.get(Ticket, ticket_id)
            if ticket is None:
                return "missing"
            if ticket.status == "closed":
                return "closed"
            if ticket.status == "claimed":
                return "yours" if ticket.expert_id == expert.id else "taken"
            return "limit"

    async def reassign(self, ticket_id: int, to: User, by: User) -> bool:
        """Staff: give a ticket that is not closed to another expert."""
        async with self.store.transaction() as tx:
            moved = await tx.session.execute(
                update(Ticket)
                .where(Ticket.id == ticket_id, Ticket.status != "closed")
                .values(status="claimed", expert_id=to.id, claimed_at=utcnow(), **_NEW_HOLDER)
                .execution_options(synchronize_session=False)
            )
            if moved.rowcount == 1:
                await tx.audit(by, "reassign", f"T-{ticket_id}", to=to.id)
            return moved.rowcount == 1

    async def find(self, channel: str, external_id: str) -> User | None:
        async with self.store.transaction() as tx:
            return await tx.session.scalar(
                select(User).where(User.channel == channel, User.external_id == external_id)
            )

    async def release(self, ticket_id: int, expert: User) -> bool:
        """Put a ticket the expert holds back in the queue."""
        async with self.store.transaction() as tx:
            released = await tx.session.execute(
                update(Ticket)
                .where(
                    Ticket.id == ticket_id,
                    Ticket.status == "claimed",
                    Ticket.expert_id == expert.id,
                )
                .values(
                    status="open", expert_id=None, claimed_at=None, announced_at=None, **_NEW_HOLDER
                )
                .execution_options(synchronize_session=False)
            )
            if released.rowcount == 1:
                await tx.audit(expert, "release", f"T-{ticket_id}")
            return released.rowcount == 1

    async def close(
        self, ticket_id: int, by: User | None, summary: str, reason: str = "solved"
    ) -> Ticket | None:
        """Close a ticket held by `by` (any ticket for staff, or for the bot itself when `by`
        is None); the ticket, if it was closed now."""
        async with self.store.transaction() as tx:
            conditions = [Ticket.id == ticket_id, Ticket.status != "closed"]
            if by is not None and by.role != "staff":
                conditions.append(Ticket.expert_id == by.id)
            closed = await tx.session.execute(
                update(Ticket)
                .where(*conditions)
                .values(status="closed", closed_at=utcnow(), summary=summary, close_reason=reason)
                .execution_options(synchronize_session=False)
            )
            if closed.rowcount != 1:
                return None
            await tx.audit(by, "close", f"T-{ticket_id}", reason=reason)
            return await tx.session.get(Ticket, ticket_id)

    async def note_said(self, user: User, message: OutMessage) -> None:
        """Keep something the bot says to a user outside a reply to them (the rating asked
        for when their ticket closes) in their conversation, so that typing a number picks
        from its buttons as from any reply's."""
        async with self.store.transaction() as tx:
            tx.session.add(Message(**outgoing(user.id, user.channel, message)))

    async def get(self, ticket_id: int) -> Ticket | None:
        async with self.store.transaction() as tx:
            return await tx.session.get(Ticket, ticket_id)

    async def open_for(self, talent: User) -> Ticket | None:
        """The talent's ticket that is not closed, if any."""
        async with self.store.transaction() as tx:
            return await tx.session.scalar(
                select(Ticket).where(Ticket.talent_id == talent.id, Ticket.status != "closed")
            )

    async def held_by(self, expert: User) -> list[Ticket]:
        """The tickets an expert has claimed, oldest first."""
        async with self.store.transaction() as tx:
            return list(
                await tx.session.scalars(
                    select(Ticket)
                    .where(Ticket.expert_id == expert.id, Ticket.status == "claimed")
                    .order_by(Ticket.claimed_at, Ticket.id)
                )
            )

    async def waiting(self, limit: int = 20) -> list[Ticket]:
        """Open tickets, most urgent (priority) and oldest first."""
        async with self.store.transaction() as tx:
            return list(
                await tx.session.scalars(
                    select(Ticket)
                    .where(Ticket.status == "open")
                    .order_by(Ticket.priority.desc(), Ticket.created_at, Ticket.id)
                    .limit(limit)
                )
            )

    async def waiting_count(self) -> int:
        """How many tickets are open."""
        async with self.store.transaction() as tx:
            counted = await tx.session.scalar(
                select(func.count()).select_from(Ticket).where(Ticket.status == "open")
            )
            return counted or 0

    async def store_relay(
        self,
        ticket: Ticket,
        sender: User,
        recipient: User | None,
        text: str,
        source_key: str,
        attachment: Attachment | None = None,
    ) -> Relay | None:
        """Write a relayed message (and a photo or document with it) before it is sent; None
        if this source was stored before."""
        async with self.store.transaction() as tx:
            seen = await tx.session.scalar(
                select(TicketMessage.id).where(
                    TicketMessage.ticket_id == ticket.id, TicketMessage.source_key == source_key
                )
            )
            if seen is not None:
                return None
            message = TicketMessage(
                ticket_id=ticket.id,
                sender_id=sender.id,
                recipient_id=recipient.id if recipient else None,
                source_key=source_key,
                text=text,
                attachment=stored(attachment),
            )
            tx.session.add(message)
            now = utcnow()
            values = {"last_talent_at": now} if sender.id == ticket.talent_id else {}
            if sender.id != ticket.talent_id and ticket.first_reply_at is None:
                values["first_reply_at"] = now
            if values:
                await tx.session.execute(
                    update(Ticket)
                    .where(Ticket.id == ticket.id)
                    .values(**values)
                    .execution_options(synchronize_session=False)
                )
            await tx.session.flush()
            return Relay.of(message)

    async def delivered(self, relay_id: int) -> None:
        """Mark a relayed message as shown to its recipient."""
        async with self.store.transaction() as tx:
            await tx.session.execute(
                update(TicketMessage)
                .where(TicketMessage.id == relay_id, TicketMessage.delivered_at.is_(None))
                .values(delivered_at=utcnow())
                .execution_options(synchronize_session=False)
            )

    async def undelivered(self, stored_before: datetime | None = None) -> list[Relay]:
        """Relayed messages stored (before `stored_before`) but not yet shown: a crash between
        store and send."""
        async with self.store.transaction() as tx:
            query = select(TicketMessage).where(*_UNDELIVERED)
            if stored_before is not None:
                query = query.where(TicketMessage.created_at < stored_before)
            rows = await tx.session.scalars(query.order_by(TicketMessage.id))
            return [Relay.of(message) for message in rows]

    async def undelivered_from(self, source_key: str) -> Relay | None:
        """The relayed message stored from this inbound, if it was never shown (a crash)."""
        async with self.store.transaction() as tx:
            message = await tx.session.scalar(
                select(TicketMessage).where(TicketMessage.source_key == source_key, *_UNDELIVERED)
            )
            return Relay.of(message) if message is not None else None

    async def user(self, user_id: int) -> User | None:
        async with self.store.transaction() as tx:
            return await tx.session.get(User, user_id)

    async def enrol(
        self,
        channel: str,
        external_id: str,
        name: str,
        role: str = "expert",
        specialties: list[str] | None = None,
        languages: list[str] | None = None,
    ) -> User:
        """Make someone an expert (or staff), creating them if they never wrote to the bot."""
        async with self.store.transaction() as tx:
            user = await tx.user(channel, external_id, (languages or ["en"])[0])  # type: ignore[arg-type]
            user.role = role
            user.display_name = name
            user.specialties = specialties or []
            user.expert_languages = languages or ["en", "zh"]
            user.available = True
            await tx.audit(None, "role-change", f"{channel}:{external_id}", role=role)
        return user

    async def appoint_staff(self, channel: str, external_id: str) -> None:
        """Make someone staff (the first staff come from the STAFF_IDS setting)."""
        async with self.store.transaction() as tx:
            user = await tx.user(channel, external_id, "en")
            if user.role != "staff":
                user.role = "staff"
                user.display_name = user.display_name or "Staff"
                await tx.audit(None, "role-change", f"{channel}:{external_id}", role="staff")

    async def mark_key_talent(self, ticket_id: int, by: User) -> bool:
        """Mark a ticket's talent as a key talent: their tickets come first in the queue."""
        async with self.store.transaction() as tx:
            ticket = await tx.session.get(Ticket, ticket_id)
            if ticket is None:
                return False
            talent = await tx.session.get(User, ticket.talent_id)
            if talent is None:
                return False
            talent.key_talent = True
            if ticket.status != "closed":
                ticket.priority = max(ticket.priority, 1)
            await tx.audit(by, "key-talent", f"T-{ticket_id}")
            return True

    async def set_language(self, user: User, language: str) -> None:
        """The language the bot writes to an expert (or staff member) in."""
        async with self.store.transaction() as tx:
            await tx.session.execute(
                update(User).where(User.id == user.id).values(language=language)
            )

    async def set_available(self, expert: User, available: bool) -> None:
        async with self.store.transaction() as tx:
            await tx.session.execute(
                update(User).where(User.id == expert.id).values(available=available)
            )

    async def audit(self, actor: User | None, action: str, subject: str, **detail: object) -> None:
        """Record an action that needs no other change (a reload, for example)."""
        async with self.store.transaction() as tx:
            await tx.audit(actor, action, subject, **detail)

    async def last_forced_reload(self) -> str | None:
        """The version of the knowledge base staff last forced a process to load, if any."""
        async with self.store.transaction() as tx:
            return await tx.session.scalar(
                select(AuditEvent.subject)
                .where(
                    AuditEvent.action == "reload",
                    AuditEvent.detail["forced"].as_boolean(),
                    AuditEvent.detail["status"].as_string() == "loaded",
                )
                .order_by(AuditEvent.id.desc())
                .limit(1)
            )

    async def experts(self) -> list[User]:
        """Every expert and staff member."""
        async with self.store.transaction() as tx:
            return list(
                await tx.session.scalars(
                    select(User).where(User.role.in_(("expert", "staff"))).order_by(User.id)
                )
            )

    async def experts_for(self, topic: str | None, language: str) -> list[User]:
        """Available experts whose specialties and languages fit; else every available one."""
        available = [expert for expert in await self.experts() if expert.available]
        fitting = [
            expert
            for expert in available
            if language in (expert.expert_languages or [language])
            and (topic is None or not expert.specialties or topic in expert.specialties)
        ]
        return fitting or available

    async def add_announcement(self, ticket_id: int, recipient: User, ref: str) -> None:
        async with self.store.transaction() as tx:
            tx.session.add(
                Announcement(ticket_id=ticket_id, recipient_id=recipient.id, message_ref=ref)
            )

    async def announcements(self, ticket_id: int) -> list[tuple[User, str]]:
        """Who was shown the ticket with a Claim button, and the message to update."""
        async with self.store.transaction() as tx:
            rows = await tx.session.execute(
                select(User, Announcement.message_ref)
                .join(Announcement, Announcement.recipient_id == User.id)
                .where(Announcement.ticket_id == ticket_id)
            )
            return [(user, ref) for user, ref in rows.all()]

    async def rejected_answers(self, talent: User) -> list[str]:
        """Entries whose answers the talent marked as not helpful, most recent first."""
        async with self.store.transaction() as tx:
            return list(
                await tx.session.scalars(
                    select(Feedback.entry_id)
                    .where(Feedback.user_id == talent.id, Feedback.helpful.is_(False))
                    .order_by(Feedback.id.desc())
                )
            )

    async def recent_questions(self, talent: User, ticket: Ticket, count: int = 3) -> list[str]:
        """What the talent asked the bot before handing off, oldest first."""
        async with self.store.transaction() as tx:
            rows = await tx.session.scalars(
                select(Message.text)
                .where(
                    Message.user_id == talent.id,
                    Message.direction == "in",
                    Message.action.is_not(None),
                    Message.button.is_(None),
                    Message.created_at <= ticket.created_at,
                )
                .order_by(Message.id.desc())
                .limit(count)
            )
            return [text for text in reversed(list(rows)) if text != ticket.question]

    async def recent_talent_questions(self, count: int) -> list[str]:
        """The last `count` questions talents asked the bot (typed, not picked), oldest first."""
        async with self.store.transaction() as tx:
            rows = await tx.session.scalars(
                typed_talent_questions(Message.text).order_by(Message.id.desc()).limit(count)
            )
            return list(reversed(list(rows)))

    async def ticket_messages(self, ticket_id: int) -> list[TicketMessage]:
        async with self.store.transaction() as tx:
            return list(
                await tx.session.scalars(
                    select(TicketMessage)
                    .where(TicketMessage.ticket_id == ticket_id)
                    .order_by(TicketMessage.id)
                )
            )
