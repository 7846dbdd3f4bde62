"""Service levels for the expert queue, derived from the store.

The runtime's scheduler (APScheduler) keeps jobs in memory only, so no timer lives there: a
repeating job calls `check`, which finds in the store what is due and acts
on it. Each action is claimed by one conditional UPDATE that stamps the ticket, so a restart
loses nothing, overdue actions run at the first check, and no action runs twice, whichever
process runs the check. The notices an action sends are stored in the stamp's transaction and
sent after it; every check also sends the notices left over (its own, or others', such as those
to staff): a crash, or the channel out of reach, between deciding and sending does not lose
them.
"""

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, func, or_, select, update

from bot import notifications
from bot.services import Services
from bot.store import Transaction, notices
from bot.store.models import Notice, Ticket, User, utcnow

_log = logging.getLogger(__name__)
Action = tuple[str, int]
# A notice that could not be sent for this long is out of date: it is dropped.
NOTICE_LIFETIME = timedelta(days=1)
# A notice older than this is not being sent by whoever decided it: the check sends it.
LEFT_OVER = timedelta(seconds=30)


@dataclass(frozen=True)
class _Step:
    """One service level: when a ticket is due, how it is stamped, and what follows."""

    name: str
    due: ColumnElement[bool]
    stamp: dict[str, object]
    notify: Callable[["_Notify", Ticket], Awaitable[None]] | None = None
    """Stores the notices it sends, in the stamp's transaction."""
    then: Callable[[Ticket], Awaitable[None]] | None = None
    """Done after the stamp is committed: announcing to experts, which is not kept."""


async def check(services: Services, now: datetime | None = None) -> list[Action]:
    """Do everything that is due at `now`, then send the notices waiting; what was done, as
    (action, ticket id)."""
    now = now or utcnow()
    done: list[Action] = []
    queued: list[tuple[Notice, User]] = []
    for step in _steps(services, now):
        for ticket, its_notices in await _take(services, step, now):
            done.append((step.name, ticket.id))
            queued.extend(its_notices)
            if step.then is None:
                continue
            try:
                await step.then(ticket)
            except Exception:  # one failed announcement must not stop the rest
                _log.exception("SLA action %s on ticket %s failed", step.name, ticket.id)
    await _send_notices(services, queued, now)
    return done


def _steps(services: Services, now: datetime) -> list[_Step]:
    """The service levels: a ticket no one claims is shown again, and staff are told of it; a
    claimed one with no reply yet goes back to the queue (its expert reminded before); a
    talent silent after a reply is nudged, then their ticket closed."""
    limits = services.settings
    minutes, hours = (lambda n: now - timedelta(minutes=n)), (lambda n: now - timedelta(hours=n))
    waiting_since = func.coalesce(Ticket.announced_at, Ticket.created_at)
    silent_since = func.coalesce(Ticket.last_talent_at, Ticket.first_reply_at)
    return [
        _Step(
            "announced-again",
            and_(Ticket.status == "open", waiting_since <= minutes(limits.sla_reannounce_minutes)),
            {"announced_at": now},
            then=lambda ticket: notifications.announce(services, ticket.id),
        ),
        _Step(
            "escalated",
            and_(
                Ticket.status == "open",
                Ticket.escalated_at.is_(None),
                Ticket.created_at <= minutes(limits.sla_escalate_minutes),
            ),
            {"escalated_at": now},
            notify=_tell_staff,
        ),
        _Step(
            "returned",
            and_(
                Ticket.status == "claimed",
                Ticket.first_reply_at.is_(None),
                Ticket.claimed_at <= minutes(limits.sla_lease_minutes),
            ),
            {"status": "open", "expert_id": None, "claimed_at": None, "announced_at": now},
            notify=_returned,
            then=lambda ticket: _announce_returned(services, ticket),
        ),
        _Step(
            "reminded",
            and_(
                Ticket.status == "claimed",
                Ticket.first_reply_at.is_(None),
                Ticket.reminded_at.is_(None),
                Ticket.claimed_at <= minutes(limits.sla_first_reply_minutes),
            ),
            {"reminded_at": now},
            notify=_remind,
        ),
        _Step(
            "closed-silent",
            and_(
                Ticket.status == "claimed",
                Ticket.nudged_at <= hours(limits.sla_autoclose_hours),
                or_(Ticket.last_talent_at.is_(None), Ticket.last_talent_at < Ticket.nudged_at),
            ),
            {"status": "closed", "closed_at": now, "close_reason": "silent"},
            notify=_closed_silent,
        ),
        _Step(
            "nudged",
            and_(
                Ticket.status == "claimed",
                Ticket.first_reply_at.is_not(None),
                Ticket.nudged_at.is_(None),
                silent_since <= hours(limits.sla_nudge_hours),
            ),
            {"nudged_at": now},
            notify=_nudge,
        ),
    ]


async def _take(
    services: Services, step: _Step, now: datetime
) -> list[tuple[Ticket, list[tuple[Notice, User]]]]:
    """The due tickets this check wins, each with the notices stored with its stamp: each is
    stamped by a conditional UPDATE first."""
    async with services.store.transaction() as tx:
        candidates = list(await tx.session.scalars(select(Ticket.id).where(step.due)))
    taken = []
    for ticket_id in candidates:
        async with services.store.transaction() as tx:
            before = await tx.session.get(Ticket, ticket_id)
            snapshot = _copy(before) if before is not None else None
            won = await tx.session.execute(
                update(Ticket)
                .where(Ticket.id == ticket_id, step.due)
                .values(**step.stamp)
                .execution_options(synchronize_session=False)
            )
            notify = _Notify(services, tx, now)
            if won.rowcount == 1 and snapshot is not None and step.notify is not None:
                await step.notify(notify, snapshot)
        if won.rowcount == 1 and snapshot is not None:
            taken.append((snapshot, notify.queued))
    return taken


async def _send_notices(
    services: Services, queued: list[tuple[Notice, User]], now: datetime
) -> None:
    """Send the notices this check queued, then those left from before: not sent when they
    were decided (the channel out of reach, a crash), and not just being sent by whoever
    decided them. Out of date ones are dropped."""
    expired = await notices.expire(services.store, now - NOTICE_LIFETIME)
    if expired:
        _log.warning("Dropped %d notices that could not be sent for a day", expired)
    await notifications.send_notices(services, queued)
    left_over = await notices.waiting(services.store, now - LEFT_OVER)
    await notifications.send_notices(services, left_over)


def _copy(ticket: Ticket) -> Ticket:
    """The ticket as it was before the stamp (who held it, who asked)."""
    return Ticket(
        id=ticket.id,
        talent_id=ticket.talent_id,
        expert_id=ticket.expert_id,
        status=ticket.status,
        question=ticket.question,
        language=ticket.language,
        topic=ticket.topic,
        priority=ticket.priority,
        created_at=ticket.created_at,
    )


@dataclass
class _Notify:
    """Stores notices in the transaction of a stamp."""

    services: Services
    tx: Transaction
    now: datetime
    queued: list[tuple[Notice, User]] = field(default_factory=list)

    async def user(self, user_id: int | None, template: str, **context: object) -> None:
        user = await self.tx.session.get(User, user_id) if user_id else None
        if user is not None:
            self._queue(user, template, **context)

    async def staff(self, template: str, **context: object) -> None:
        for member in await self.tx.staff():
            self._queue(member, template, **context)

    def _queue(self, user: User, template: str, **context: object) -> None:
        self.queued.append(
            notifications.queue_notice(self.services, self.tx, user, template, self.now, **context)
        )


async def _tell_staff(notify: _Notify, ticket: Ticket) -> None:
    minutes = int(notify.services.settings.sla_escalate_minutes)
    await notify.staff("escalated", ticket=ticket.id, minutes=minutes)


async def _remind(notify: _Notify, ticket: Ticket) -> None:
    settings = notify.services.settings
    minutes = int(settings.sla_lease_minutes - settings.sla_first_reply_minutes)
    await notify.user(ticket.expert_id, "reminder", ticket=ticket.id, minutes=minutes)


async def _returned(notify: _Notify, ticket: Ticket) -> None:
    await notify.user(ticket.expert_id, "lease_expired", ticket=ticket.id)
    await notify.user(ticket.talent_id, "released_talent")


async def _announce_returned(services: Services, ticket: Ticket) -> None:
    holder = await services.tickets.user(ticket.expert_id) if ticket.expert_id else None
    await notifications.announce(services, ticket.id, skip=holder)


async def _nudge(notify: _Notify, ticket: Ticket) -> None:
    hours = int(notify.services.settings.sla_autoclose_hours)
    await notify.user(ticket.talent_id, "nudge", ticket=ticket.id, hours=hours)


async def _closed_silent(notify: _Notify, ticket: Ticket) -> None:
    await notify.user(ticket.talent_id, "closed_silent_talent", ticket=ticket.id)
    await notify.user(ticket.expert_id, "closed_silent_expert", ticket=ticket.id)
