"""The tables: users and their roles, what was said, feedback, tickets and their messages, audit,
the inbox of channel updates not yet handled, and notices not yet sent.

Times are stored as naive UTC (SQLite has no time zones) and read back as aware UTC.
"""

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

# None is kept as SQL NULL, not as JSON's null, however it is written (an ORM attribute or a
# statement's parameter): `IS NULL` then finds it (rows written before may hold JSON's null).
JSON_VALUE = JSON(none_as_null=True)


def utcnow() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp kept as naive UTC in the database and handed out as aware UTC."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: pass an aware UTC time")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return value.replace(tzinfo=UTC) if value is not None else None


class Base(DeclarativeBase):
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(table_name)s_%(column_0_N_name)s",
            "uq": "uq_%(table_name)s_%(column_0_N_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


class User(Base):
    """Anyone who talks to the bot on a channel: a talent, an expert or staff."""

    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("channel", "external_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))
    external_id: Mapped[str] = mapped_column(String(64))
    display_name: Mapped[str | None] = mapped_column(String(128))
    language: Mapped[str] = mapped_column(String(2), default="en")
    # True once the user picked a language; until then it follows what they write in.
    language_chosen: Mapped[bool] = mapped_column(Boolean, default=False)
    role: Mapped[str] = mapped_column(String(8), default="talent")
    key_talent: Mapped[bool] = mapped_column(Boolean, default=False)
    specialties: Mapped[list[str]] = mapped_column(JSON_VALUE, default=list)
    expert_languages: Mapped[list[str]] = mapped_column(JSON_VALUE, default=list)
    available: Mapped[bool] = mapped_column(Boolean, default=True)
    # For experts: how many claimed tickets at once (None: the EXPERT_MAX_OPEN_TICKETS setting).
    max_open_tickets: Mapped[int | None] = mapped_column(Integer)
    # A talent's consent to show their first name to the expert on their ticket.
    share_name: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Message(Base):
    """One thing said between the bot and a user, with the matcher's decision for questions."""

    __tablename__ = "messages"
    __table_args__ = (
        # A redelivered inbound carries the same key and is refused here.
        UniqueConstraint("channel", "channel_key"),
        Index(None, "user_id", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(16))
    channel_key: Mapped[str | None] = mapped_column(String(128))
    direction: Mapped[str] = mapped_column(String(3))  # "in" or "out"
    text: Mapped[str] = mapped_column(Text, default="")
    button: Mapped[str | None] = mapped_column(String(64))
    # Something other than text the user sent (a photo, a document …): kind and channel file id.
    attachment: Mapped[dict[str, str] | None] = mapped_column(JSON_VALUE)
    buttons: Mapped[list[list[str]] | None] = mapped_column(JSON_VALUE)
    language: Mapped[str] = mapped_column(String(2))
    action: Mapped[str | None] = mapped_column(String(8))
    entry_id: Mapped[str | None] = mapped_column(String(48))
    score: Mapped[float | None] = mapped_column(Float)
    options: Mapped[list[str] | None] = mapped_column(JSON_VALUE)
    kb_version: Mapped[str | None] = mapped_column(String(16))
    # For a reply: the inbound it answers (replies stored but never sent go out on recovery).
    reply_to: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # For an inbound: when the replies to it went out (until then, a recovered one is owed them).
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Feedback(Base):
    """A talent's verdict on one answer; tapping again changes it."""

    __tablename__ = "feedback"

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[int] = mapped_column(
        ForeignKey("messages.id", ondelete="CASCADE"), unique=True
    )
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    entry_id: Mapped[str] = mapped_column(String(48))
    helpful: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Ticket(Base):
    """A talent's question waiting for, or taken by, a volunteer expert."""

    __tablename__ = "tickets"
    __table_args__ = (
        Index(None, "status", "priority", "created_at"),
        # One open ticket per talent: asking again adds to it.
        Index(
            "uq_tickets_open_per_talent",
            "talent_id",
            unique=True,
            sqlite_where=text("status != 'closed'"),
            postgresql_where=text("status != 'closed'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    talent_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    expert_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    status: Mapped[str] = mapped_column(String(8), default="open")  # open, claimed, closed
    question: Mapped[str] = mapped_column(Text)
    language: Mapped[str] = mapped_column(String(2))
    topic: Mapped[str | None] = mapped_column(String(32))
    priority: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    first_reply_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    close_reason: Mapped[str | None] = mapped_column(String(16))
    summary: Mapped[str | None] = mapped_column(Text)
    rating: Mapped[int | None] = mapped_column(Integer)
    rating_comment: Mapped[str | None] = mapped_column(Text)
    # Whether the talent agreed to show the expert the phone numbers, e-mail addresses and
    # application numbers they wrote; until then the case card masks them.
    contacts_shared: Mapped[bool] = mapped_column(Boolean, default=False)
    # When the scheduled checks last acted on the ticket: each is set by the same conditional
    # update that acts, so a check never runs twice, whichever process runs it.
    announced_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    escalated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reminded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    nudged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_talent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class TicketMessage(Base):
    """A message relayed between a talent and an expert: stored first, delivered after."""

    __tablename__ = "ticket_messages"
    __table_args__ = (UniqueConstraint("ticket_id", "source_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    sender_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    recipient_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    source_key: Mapped[str] = mapped_column(String(128))
    text: Mapped[str] = mapped_column(Text)
    # A photo or document passed on with the text (its caption): {"kind", "file_id"}.
    attachment: Mapped[dict[str, str] | None] = mapped_column(JSON_VALUE)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Announcement(Base):
    """A ticket shown to an expert with a Claim button, so it can be updated when claimed."""

    __tablename__ = "announcements"
    __table_args__ = (Index(None, "ticket_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    recipient_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    message_ref: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AuditEvent(Base):
    """Who did what to what, and when: claims, closes, role changes, reloads."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    action: Mapped[str] = mapped_column(String(32))
    subject: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON_VALUE)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class InboxUpdate(Base):
    """A channel update (a Telegram update, as its JSON) kept from its arrival until handled.

    It is stored before the channel is told it arrived, so an update is never lost in a crash:
    one that a process received but did not finish is handed in again once that process's
    lease on it runs out. Once handled, only its id is kept, to refuse it if sent again.
    """

    __tablename__ = "inbox"
    __table_args__ = (Index(None, "handled_at", "lease_until"),)

    update_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSON_VALUE)
    # The process handling it, which renews its lease while it lives.
    owner: Mapped[str] = mapped_column(String(32))
    lease_until: Mapped[datetime] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    handled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Notice(Base):
    """A message to someone outside their conversation (a service-level reminder, an
    escalation to staff), kept from when it is decided until it is sent: a crash or a channel
    out of reach in between does not lose it."""

    __tablename__ = "notices"

    id: Mapped[int] = mapped_column(primary_key=True)
    recipient_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    text: Mapped[str] = mapped_column(Text)
    language: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
