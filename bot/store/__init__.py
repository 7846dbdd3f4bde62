"""The store: the database is the source of truth for users, what was said and tickets."""

import functools
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import (
    ColumnElement,
    Select,
    Update,
    and_,
    bindparam,
    event,
    func,
    insert,
    inspect,
    literal_column,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, InvalidatePoolError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import make_transient_to_detached
from sqlalchemy.orm.util import identity_key

from bot.conversation import RELAYED_KINDS, Attachment, Button, Inbound, OutMessage
from bot.knowledge import Language
from bot.redact import deadlines
from bot.store import migrate, outage
from bot.store.driver import DriverStatement, one_of
from bot.store.models import (
    AuditEvent,
    Base,
    Feedback,
    Message,
    Ticket,
    TicketMessage,
    User,
    utcnow,
)
from bot.store.outage import Backoff, StoreUnavailable

T = TypeVar("T")
_Model = TypeVar("_Model", bound=Base)
# Photos and documents a talent sent this recently go with the ticket they then open.
KEPT_FILES_FOR = timedelta(days=1)
# A pooled connection returned this recently is lent out again without a test round trip.
_TRUSTED_IDLE_SECONDS = 1.0


def typed_talent_questions(*columns: Any) -> Select[Any]:
    """A query for questions talents typed (not buttons they picked) that the matcher saw."""
    return (
        select(*columns)
        .join(User, User.id == Message.user_id)
        .where(
            User.role == "talent",
            Message.direction == "in",
            Message.action.is_not(None),
            Message.button.is_(None),
        )
    )


def stored(attachment: Attachment | None) -> dict[str, str] | None:
    """An attachment as the store keeps it."""
    if attachment is None:
        return None
    return {"kind": attachment.kind, "file_id": attachment.file_id or ""}


def restored(kept: dict[str, str] | None) -> Attachment | None:
    """An attachment the store kept."""
    if not kept:
        return None
    return Attachment(kept["kind"], kept.get("file_id") or None)


def outgoing(user_id: int, channel: str, said: OutMessage, **fields: Any) -> dict[str, Any]:
    """What the bot says to a user, as the conversation keeps it: a new message's columns
    (with its buttons, so that a number typed next picks from them)."""
    return new_message(
        user_id=user_id,
        channel=channel,
        direction="out",
        text=said.text,
        buttons=[[button.label, button.payload] for button in said.buttons] or None,
        language=said.language,
        **fields,
    )


def new_message(**columns: Any) -> dict[str, Any]:
    """A new message's columns, as `_NEW_MESSAGE` takes them: every row of one statement must
    name the same columns, and the statement applies no defaults, so those not given are
    NULL and `created_at` is now. (Built as a dict: an ORM object costs more to make and read.)"""
    return _BLANK_MESSAGE | {"created_at": utcnow()} | columns


class DuplicateInbound(Exception):
    """This inbound's channel key was seen before: it has been handled already."""


class Store:
    """The database, opened from a URL (SQLite or PostgreSQL)."""

    def __init__(self, engine: AsyncEngine, backoff: Backoff | None = None) -> None:
        self.engine = engine
        self.backoff = backoff or Backoff()
        self.availability = outage.Availability()
        noting_writes = outage.sessions_noting_writes()
        self._sessions = async_sessionmaker(
            engine, expire_on_commit=False, sync_session_class=noting_writes
        )
        self._autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
        outage.count_failed_connects_as_lost(engine)

    @classmethod
    def open(
        cls,
        url: str,
        lock_wait: float = 30,
        backoff: Backoff | None = None,
        pool_size: int = 5,
    ) -> "Store":
        """A store for `url`; a SQLite file's folder is created if missing. A SQLite connection
        waits up to `lock_wait` seconds for another one's lock; up to `pool_size` PostgreSQL
        connections are kept open between uses."""
        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite":
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            engine = create_async_engine(url, connect_args={"timeout": lock_wait})
            _enforce_sqlite_foreign_keys(engine)
        else:
            # A pooled connection the server has closed is replaced before it is lent out.
            engine = create_async_engine(url, pool_size=pool_size)
            _ping_on_checkout(engine)
        return cls(engine, backoff)

    async def upgrade(self) -> None:
        """Bring the schema to the newest migration."""
        await migrate.upgrade(self.engine)

    async def is_current(self) -> bool:
        """Whether the schema is at the newest migration."""
        return await migrate.is_current(self.engine)

    async def close(self) -> None:
        """Close every connection."""
        await self.engine.dispose()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator["Transaction"]:
        """One unit of work: committed when the block ends, rolled back if it raises.

        Raises `StoreUnavailable` if the database cannot be reached or the connection is lost.
        """
        async with self._reaching():
            async with self.engine.connect() as connection, connection.begin():
                tx = Transaction(connection, self._sessions)
                try:
                    yield tx
                    await tx.write_changes()
                finally:
                    await tx.close()
            outage.committed(wrote=tx.wrote)

    @asynccontextmanager
    async def statement(self) -> AsyncIterator[AsyncConnection]:
        """A connection for work of one statement, which commits as it runs: without BEGIN
        and COMMIT, two round trips fewer than `transaction`, and without the session's
        bookkeeping, which costs as much CPU again. The statement must be a write that is safe
        to run twice, for a lost connection may hide that it ran.

        Raises `StoreUnavailable` as `transaction` does.
        """
        async with self._reaching():
            async with self._autocommit.connect() as connection:
                yield connection
            outage.committed(wrote=True)

    @asynccontextmanager
    async def _reaching(self) -> AsyncIterator[None]:
        """A lost connection as `StoreUnavailable`; work that went through as the database
        reached."""
        try:
            yield
        except (DBAPIError, OSError) as error:
            if not outage.lost(error):
                raise
            raise StoreUnavailable(outage.summary(error)) from error
        self.availability.reached()

    async def retrying(self, work: Callable[[], Awaitable[T]]) -> T:
        """`work()`, which uses the store's transactions, done again after a lost connection
        (with growing pauses) as long as none of its writes was committed. Raises
        `StoreUnavailable` if the database stays out of reach."""
        return await outage.run(work, self.backoff, self.availability)


class Transaction:
    """The store's operations inside one database transaction.

    Its statements run on its connection; the ORM session, which costs more CPU than most
    turns' statements, is made only when something asks for it (`session`). Objects read
    before then (`_loaded`) join it when it is made, or make it at the end if they changed."""

    def __init__(self, connection: AsyncConnection, sessions: async_sessionmaker[AsyncSession]):
        self.connection = connection
        self._sessions = sessions
        self._session: AsyncSession | None = None
        # Read past the session while there was none, by identity.
        self._read: dict[Any, Base] = {}
        self._wrote = False
        # What `accept` learnt with each message, as of just before it: the user's open
        # ticket (by user; kept for the next `ticket_of` only) and what they tapped (by message).
        self._open_tickets: dict[int, int | None] = {}
        self._taps: dict[int, str | None] = {}

    @property
    def session(self) -> AsyncSession:
        """The ORM session, in this transaction, with the objects read so far."""
        if self._session is None:
            self._session = self._sessions(bind=self.connection)
            self._session.add_all(self._read.values())
        return self._session

    @property
    def wrote(self) -> bool:
        """Whether this transaction changed anything."""
        session = self._session
        return self._wrote or (session is not None and bool(session.info.get("wrote")))

    async def write_changes(self) -> None:
        """Write what the session holds, and changes made to objects read past it."""
        if self._unwritten():
            await self.session.flush()

    def _unwritten(self) -> bool:
        """Whether something changed that is not yet written: in the session, or (while there
        is none) in an object read past it."""
        session = self._session
        if session is not None:
            return bool(session.new or session.dirty or session.deleted)
        return any(inspect(read).modified for read in self._read.values())

    async def close(self) -> None:
        """Let the session go (the transaction is the connection's to end)."""
        if self._session is not None:
            await self._session.close()

    async def user(
        self,
        channel: str,
        external_id: str,
        language: Language,
        display_name: str | None = None,
    ) -> User:
        """The user with this channel id, created on first contact (with `language` and
        `display_name`); on PostgreSQL their row stays locked until the transaction ends, so
        that two of a user's messages handled at once (by two processes) are handled one after
        the other, each seeing what the other did. (SQLite lets one transaction write at a
        time anyway.)"""
        known = {"channel": channel, "external_id": external_id}
        # Nearly every message is from someone the bot knows: one query finds them.
        found = await self._loaded(User, _KNOWN_USER, known)
        if found is not None:
            return found
        self._wrote = True
        created = await _new_user(self.connection.dialect.name).row(
            self.connection,
            known
            | {
                "display_name": display_name,
                "language": language,
                "language_chosen": False,
                "role": "talent",
                "key_talent": False,
                "specialties": [],
                "expert_languages": [],
                "available": True,
                "max_open_tickets": None,
                "share_name": False,
                "created_at": utcnow(),
            },
        )
        if created is not None:
            return self._as_read(User, created)
        # Created meanwhile by a transaction that got in first, now committed.
        found = await self._loaded(User, _KNOWN_USER, known)
        assert found is not None
        return found

    async def accept(self, inbound: Inbound, user: User, text: str, language: Language) -> Message:
        """Store an inbound message; raise `DuplicateInbound` if its key was seen before (the
        unique channel key refuses it, which also settles two deliveries handled at once).

        The message returned is not tracked by the session (a statement of its own costs
        less than the unit of work): what the turn decides about it is written with the
        replies, by `record_replies`. The same round trip finds what a turn asks next: the
        user's open ticket and their previous tap (`ticket_of`, `previous_tap`)."""
        row = new_message(
            user_id=user.id,
            channel=inbound.channel,
            channel_key=inbound.message_key,
            direction="in",
            text=text,
            button=inbound.button,
            attachment=stored(inbound.attachment),
            language=language,
        )
        try:
            self._wrote = True
            accepted = await _ACCEPTED.returning(self.connection, row)
        except IntegrityError:
            raise DuplicateInbound(inbound.message_key) from None
        self._open_tickets[user.id] = accepted["open_ticket"]
        self._taps[accepted["id"]] = accepted["previous_tap"]
        return Message(id=accepted["id"], **row)

    async def record_replies(
        self, inbound: Message, replies: Sequence[OutMessage], **decision: Any
    ) -> None:
        """Store what was decided about `inbound` (from `accept`) and what the bot says to it;
        `decision` holds the matcher's fields for an answer."""
        decided = {"inbound_id": inbound.id} | {
            f"decided_{field}": getattr(inbound, field) for field in _DECISION
        }
        said = [
            outgoing(inbound.user_id, inbound.channel, reply, reply_to=inbound.id, **decision)
            for reply in replies
        ]
        self._wrote = True
        if said and self.connection.dialect.name == "postgresql":
            # One round trip for both: the decision goes with each reply, written again
            # alike for a second one.
            await _REPLIES_AND_DECISION.run(self.connection, [row | decided for row in said])
            return
        await _DECIDED.run(self.connection, decided)
        if said:
            await _NEW_MESSAGE.run(self.connection, said)

    async def unanswered(self, inbound: Inbound) -> Message | None:
        """The stored inbound with this key, if the replies to it never went out."""
        return await self.session.scalar(
            _UNANSWERED, {"from_channel": inbound.channel, "keys": [inbound.message_key]}
        )

    async def replies_to(self, inbound: Message) -> list[OutMessage]:
        """The replies stored for an inbound, in order."""
        stored = await self.session.scalars(
            select(Message)
            .where(Message.user_id == inbound.user_id, Message.reply_to == inbound.id)
            .order_by(Message.id)
        )
        return [
            OutMessage(
                text=reply.text,
                language="zh" if reply.language == "zh" else "en",
                buttons=tuple(Button(label, payload) for label, payload in reply.buttons or []),
            )
            for reply in stored
        ]

    async def last_buttons(self, user: User, before: int) -> list[tuple[str, str]]:
        """The choices of the last message the bot sent this user before message `before`."""
        last = await _LAST_BUTTONS.row(self.connection, {"user": user.id, "before": before})
        return [(label, payload) for label, payload in (last or {}).get("buttons") or []]

    async def last_question(self, user: User, before: int) -> Message | None:
        """The last question this user asked before message `before` (one the matcher saw)."""
        return await self._loaded(Message, _LAST_QUESTION, {"user": user.id, "before": before})

    async def withdraw(self, ticket_id: int, talent: User) -> bool:
        """Close a ticket its talent takes back; whether it was open until now. On PostgreSQL
        a claim under way is waited for, so `holder` then names its expert."""
        closed = await self.session.execute(
            update(Ticket)
            .where(Ticket.id == ticket_id, Ticket.talent_id == talent.id, Ticket.status != "closed")
            .values(status="closed", closed_at=utcnow(), close_reason="withdrawn")
            .execution_options(synchronize_session=False)
        )
        if closed.rowcount != 1:
            return False
        await self.audit(talent, "withdraw", f"T-{ticket_id}")
        return True

    async def holder(self, ticket_id: int) -> int | None:
        """The expert a ticket was with (read after the talent's own change to it, so that a
        claim that got in first is seen)."""
        return await self.session.scalar(select(Ticket.expert_id).where(Ticket.id == ticket_id))

    async def asked(self, user: User, message_id: int) -> Message | None:
        """A question this user typed, by id; None if it is not theirs or not a question."""
        message = await self.session.get(Message, message_id)
        if message is None or message.user_id != user.id or message.direction != "in":
            return None
        return message if message.button is None and message.action is not None else None

    async def staff(self) -> list[User]:
        """Every staff member."""
        return list(
            await self.session.scalars(select(User).where(User.role == "staff").order_by(User.id))
        )

    async def ticket_of(self, user: User) -> Ticket | None:
        """The talent's ticket that is not closed, if any. Right after `accept`, which found
        none, there is none (nothing can have opened one in between); otherwise it is read."""
        if user.id in self._open_tickets and self._open_tickets.pop(user.id) is None:
            return None
        return await self._loaded(Ticket, _OPEN_TICKET, {"talent": user.id})

    async def add_to_ticket(
        self,
        ticket: Ticket,
        sender: User,
        text: str,
        source_key: str,
        attachment: Attachment | None = None,
    ) -> TicketMessage:
        """Store a talent's message (and a photo or document with it) on their ticket: for its
        expert, or for whoever claims it."""
        message = TicketMessage(
            ticket_id=ticket.id,
            sender_id=sender.id,
            recipient_id=ticket.expert_id if ticket.status == "claimed" else None,
            source_key=source_key,
            text=text,
            attachment=stored(attachment),
        )
        self.session.add(message)
        ticket.last_talent_at = utcnow()
        ticket.nudged_at = None
        await self.session.flush()
        return message

    async def rate(self, ticket_id: int, talent: User, stars: int) -> bool:
        """Keep the talent's 1-5 rating of a closed ticket of theirs."""
        rated = await self.session.execute(
            update(Ticket)
            .where(Ticket.id == ticket_id, Ticket.talent_id == talent.id, Ticket.status == "closed")
            .values(rating=stars)
            .execution_options(synchronize_session=False)
        )
        return rated.rowcount == 1

    async def previous_tap(self, user: User, before: int) -> str | None:
        """The button the user tapped (or picked by number) just before message `before`;
        None if they did something else then, or nothing."""
        if before in self._taps:
            return self._taps[before]
        previous = await _PREVIOUS_TAP.row(self.connection, {"user": user.id, "before": before})
        return previous["button"] if previous is not None else None

    async def audit(self, actor: User | None, action: str, subject: str, **detail: object) -> None:
        """Record who did what: claims, closes, refused attempts, role changes."""
        self.session.add(
            AuditEvent(
                actor_id=actor.id if actor else None,
                action=action,
                subject=subject,
                detail=detail or None,
            )
        )

    async def answer_message(self, user: User, message_id: int) -> Message | None:
        """An answer the bot sent this user, by id; None if it is not theirs or not an answer."""
        message = await self.session.get(Message, message_id)
        if message is None or message.user_id != user.id or message.action != "answer":
            return None
        return message

    async def record_feedback(self, user: User, answer: Message, helpful: bool) -> None:
        """Keep the talent's verdict on an answer; a second tap replaces the first."""
        feedback = await self.session.scalar(
            select(Feedback).where(Feedback.message_id == answer.id)
        )
        if feedback is None:
            assert answer.entry_id is not None
            self.session.add(
                Feedback(
                    message_id=answer.id, user_id=user.id, entry_id=answer.entry_id, helpful=helpful
                )
            )
        else:
            feedback.helpful = helpful
        await self.session.flush()

    async def _loaded(
        self, model: type[_Model], statement: DriverStatement, values: Mapping[str, Any]
    ) -> _Model | None:
        """The row `statement` finds, as an object of `model`: the one read before in this
        transaction, else one made from the row as if the session had read it (its changes
        are written at the end). The session's own query would cost about twice the CPU.
        Changes not yet written go first, as before the session's own queries."""
        await self.write_changes()
        row = await statement.row(self.connection, values)
        return self._as_read(model, row) if row is not None else None

    def _as_read(self, model: type[_Model], row: Mapping[str, Any]) -> _Model:
        """`row` of `model`'s table as the object `_loaded` gives."""
        session = self._session
        key = identity_key(model, row["id"])
        held = session.identity_map.get(key) if session is not None else self._read.get(key)
        if held is not None:
            return held  # type: ignore[return-value]
        loaded = model(**row)
        make_transient_to_detached(loaded)
        if session is not None:
            session.add(loaded)
        else:
            self._read[key] = loaded
        return loaded

    async def _bring_kept_files(self, user: User, ticket: Ticket) -> None:
        """Put the photos and documents the talent sent in the last day, since their previous
        ticket closed, on their new ticket: whoever claims it sees them (not those sent during
        that ticket, which were its expert's)."""
        since = utcnow() - KEPT_FILES_FOR
        previous = await self.session.scalar(
            select(func.max(func.coalesce(Ticket.closed_at, Ticket.created_at))).where(
                Ticket.talent_id == user.id, Ticket.id != ticket.id
            )
        )
        if previous is not None:
            since = max(since, previous)
        kept = await self.session.scalars(
            select(Message)
            .where(
                Message.user_id == user.id,
                Message.direction == "in",
                Message.attachment.is_not(None),
                Message.created_at >= since,
            )
            .order_by(Message.id)
        )
        for message in kept:
            attachment = restored(message.attachment)
            if attachment is None or attachment.kind not in RELAYED_KINDS:
                continue
            self.session.add(
                TicketMessage(
                    ticket_id=ticket.id,
                    sender_id=user.id,
                    source_key=f"kept:{message.id}",
                    text=message.text,
                    attachment=message.attachment,
                )
            )
        await self.session.flush()

    async def request_expert(
        self, user: User, question: str, language: Language, topic: str | None
    ) -> tuple[Ticket, int, bool]:
        """The talent's open ticket (created if needed), its place in the queue, and whether
        it is new."""
        ticket = await self.ticket_of(user)
        created = ticket is None
        if ticket is None:
            ticket = Ticket(
                talent_id=user.id,
                question=question,
                language=language,
                topic=topic,
                # Key talents, and anyone who mentions a deadline, come first in the queue.
                priority=1 if user.key_talent or deadlines(question) else 0,
            )
            self.session.add(ticket)
            await self.session.flush()
            await self._bring_kept_files(user, ticket)
        # The queue's order: priority first, then the oldest.
        ahead = await self.session.scalar(
            select(func.count())
            .select_from(Ticket)
            .where(
                Ticket.status == "open",
                Ticket.id != ticket.id,
                or_(
                    Ticket.priority > ticket.priority,
                    and_(Ticket.priority == ticket.priority, Ticket.id < ticket.id),
                ),
            )
        )
        return ticket, (ahead or 0) + 1, created


# The statements nearly every update runs, built once: building one costs about as much
# as running it.
# Selected as the tables' columns, not as ORM entities: `Transaction._loaded` makes the object.
_KNOWN_USER = DriverStatement(
    select(User.__table__)
    .where(User.channel == bindparam("channel"), User.external_id == bindparam("external_id"))
    .with_for_update()
)
_OPEN_TICKET = DriverStatement(
    select(Ticket.__table__).where(
        Ticket.talent_id == bindparam("talent"), Ticket.status != "closed"
    )
)
_EARLIER_INBOUND = (
    Message.user_id == bindparam("user"),
    Message.direction == "in",
    Message.id < bindparam("before"),
)
_PREVIOUS_TAP = DriverStatement(
    select(Message.button).where(*_EARLIER_INBOUND).order_by(Message.id.desc()).limit(1)
)
_LAST_QUESTION = DriverStatement(
    select(Message.__table__)
    .where(*_EARLIER_INBOUND, Message.action.is_not(None), Message.button.is_(None))
    .order_by(Message.id.desc())
    .limit(1)
)
_LAST_BUTTONS = DriverStatement(
    select(Message.buttons)
    .where(
        Message.user_id == bindparam("user"),
        Message.direction == "out",
        Message.id < bindparam("before"),
    )
    .order_by(Message.id.desc())
    .limit(1)
)
_MESSAGES = Message.__table__
_USERS = User.__table__
_BLANK_MESSAGE = dict.fromkeys(column.key for column in _MESSAGES.c if column.key != "id")
_NEW_MESSAGE = DriverStatement(insert(_MESSAGES), columns=list(_BLANK_MESSAGE))
_TICKETS = Ticket.__table__
_EARLIER = _MESSAGES.alias("earlier")
# The row being inserted, named as its own RETURNING clause sees it: SQLAlchemy does not
# correlate a subquery there with the INSERT's table.
_INSERTED_USER = literal_column("messages.user_id")
# An inbound, returning with its id the user's open ticket and their previous tap: read in
# the INSERT's snapshot, they are as of just before it (and after the user's lock).
_ACCEPTED = DriverStatement(
    insert(_MESSAGES).returning(
        _MESSAGES.c.id,
        select(_TICKETS.c.id)
        .where(_TICKETS.c.talent_id == _INSERTED_USER, _TICKETS.c.status != "closed")
        .scalar_subquery()
        .label("open_ticket"),
        select(_EARLIER.c.button)
        .where(
            _EARLIER.c.user_id == _INSERTED_USER,
            _EARLIER.c.direction == "in",
            _EARLIER.c.id < literal_column("messages.id"),
        )
        .order_by(_EARLIER.c.id.desc())
        .limit(1)
        .scalar_subquery()
        .label("previous_tap"),
    ),
    columns=list(_BLANK_MESSAGE),
)
# What a turn may decide about the inbound it answers.
_DECISION = ("button", "language", "action", "entry_id", "score", "options", "kb_version")
# Named apart from the columns of the replies written with it (`_REPLIES_AND_DECISION`).
_DECIDED = DriverStatement(
    update(_MESSAGES)
    .where(_MESSAGES.c.id == bindparam("inbound_id"))
    .values(
        {field: bindparam(f"decided_{field}", type_=_MESSAGES.c[field].type) for field in _DECISION}
    )
)
# On PostgreSQL: the replies, with the decision in a statement of its own inside.
_REPLIES_AND_DECISION = DriverStatement(
    insert(_MESSAGES)
    .values(
        {column: bindparam(column, type_=_MESSAGES.c[column].type) for column in _BLANK_MESSAGE}
    )
    .add_cte(_DECIDED.statement.cte("decided"))  # type: ignore[attr-defined]
)


def _owed(keys: ColumnElement[bool]) -> tuple[ColumnElement[bool], ...]:
    """The stored inbounds whose channel keys match `keys` (bound as "keys"), while the
    replies to them have not gone out."""
    return (
        _MESSAGES.c.channel == bindparam("from_channel"),
        keys,
        _MESSAGES.c.direction == "in",
        _MESSAGES.c.delivered_at.is_(None),
    )


_UNANSWERED = select(Message).where(
    *_owed(_MESSAGES.c.channel_key.in_(bindparam("keys", expanding=True)))
)


@functools.cache
def _new_user(dialect: str) -> DriverStatement:
    """The statement that adds a user on first contact, returning their row; none if a
    transaction that got in first added them (PostgreSQL makes this one wait for it)."""
    insert = (postgresql_insert if dialect == "postgresql" else sqlite_insert)(_USERS)
    return DriverStatement(
        insert.on_conflict_do_nothing(index_elements=["channel", "external_id"]).returning(
            *_USERS.c
        ),
        columns=[column.key for column in _USERS.c if column.key != "id"],
    )


def answered_inbounds(dialect: str) -> Update:
    """The statement that notes the inbounds of channel "from_channel" keyed "keys" as
    answered at "now": the replies to them went out, so they are owed nothing any more."""
    return (
        update(_MESSAGES)
        .where(*_owed(one_of(_MESSAGES.c.channel_key, "keys", dialect)))
        .values(delivered_at=bindparam("now"))
    )


def _ping_on_checkout(engine: AsyncEngine) -> None:
    """Test a PostgreSQL connection before it is lent out, if it sat unused in the pool for
    `_TRUSTED_IDLE_SECONDS` or more, in one round trip (the dialect's own pre-ping wraps its
    query in BEGIN and ROLLBACK, three round trips, before every transaction).

    A connection back from work a moment ago is lent without a test: under load that saves a
    round trip per transaction, and if it was cut meanwhile its first statement fails and the
    work is done again (`Store.retrying`), as for a connection cut in the middle of work.
    """

    @event.listens_for(engine.sync_engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info["checked_in"] = time.monotonic()

    @event.listens_for(engine.sync_engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle = time.monotonic() - record.info.get("checked_in", -math.inf)
        if idle < _TRUSTED_IDLE_SECONDS:
            return
        try:
            dbapi_connection.run_async(lambda connection: connection.execute("SELECT 1"))
        except Exception as error:
            # As after a failed pre-ping: the server may have restarted, so every connection
            # made before now is replaced, this one at once.
            raise InvalidatePoolError() from error


def _enforce_sqlite_foreign_keys(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()
