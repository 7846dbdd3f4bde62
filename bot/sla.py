"""Service levels for the expert queue, derived from the store.

PTB's JobQueue (APScheduler) keeps jobs in memory only and drops one that runs late, so no
timer lives there: a repeating job calls `check`, which finds in the store what is due and acts
on it. Each action is claimed by one conditional UPDATE that stamps the ticket, so a restart
loses nothing, overdue actions run at the first check, and no action runs twice, whichever
process runs the check.
"""

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, func, or_, select, update

from bot.conversation import OutMessage
from bot.services import Services
from bot.store.models import Ticket, utcnow
from handlers import expert

_log = logging.getLogger(__name__)
Action = tuple[str, int]


async def check(services: Services, now: datetime | None = None) -> list[Action]:
    """Do everything that is due at `now`; what was done, as (action, ticket id)."""
    now = now or utcnow()
    limits = services.settings
    minutes, hours = (lambda n: now - timedelta(minutes=n)), (lambda n: now - timedelta(hours=n))
    waiting_since = func.coalesce(Ticket.announced_at, Ticket.created_at)
    silent_since = func.coalesce(Ticket.last_talent_at, Ticket.first_reply_at)
    steps: list[
        tuple[str, ColumnElement[bool], dict[str, object], Callable[[Ticket], Awaitable[None]]]
    ] = [
        (
            "announced-again",
            and_(Ticket.status == "open", waiting_since <= minutes(limits.sla_reannounce_minutes)),
            {"announced_at": now},
            lambda ticket: expert.announce(ticket.id, services),
        ),
        (
            "escalated",
            and_(
                Ticket.status == "open",
                Ticket.escalated_at.is_(None),
                Ticket.created_at <= minutes(limits.sla_escalate_minutes),
            ),
            {"escalated_at": now},
            lambda ticket: _tell_staff(services, ticket),
        ),
        (
            "returned",
            and_(
                Ticket.status == "claimed",
                Ticket.first_reply_at.is_(None),
                Ticket.claimed_at <= minutes(limits.sla_lease_minutes),
            ),
            {"status": "open", "expert_id": None, "claimed_at": None, "announced_at": now},
            lambda ticket: _returned(services, ticket),
        ),
        (
            "reminded",
            and_(
                Ticket.status == "claimed",
                Ticket.first_reply_at.is_(None),
                Ticket.reminded_at.is_(None),
                Ticket.claimed_at <= minutes(limits.sla_first_reply_minutes),
            ),
            {"reminded_at": now},
            lambda ticket: _remind(services, ticket),
        ),
        (
            "closed-silent",
            and_(
                Ticket.status == "claimed",
                Ticket.nudged_at <= hours(limits.sla_autoclose_hours),
                or_(Ticket.last_talent_at.is_(None), Ticket.last_talent_at < Ticket.nudged_at),
            ),
            {"status": "closed", "closed_at": now, "close_reason": "silent"},
            lambda ticket: _closed_silent(services, ticket),
        ),
        (
            "nudged",
            and_(
                Ticket.status == "claimed",
                Ticket.first_reply_at.is_not(None),
                Ticket.nudged_at.is_(None),
                silent_since <= hours(limits.sla_nudge_hours),
            ),
            {"nudged_at": now},
            lambda ticket: _nudge(services, ticket),
        ),
    ]
    done: list[Action] = []
    for name, due, stamp, act in steps:
        for ticket in await _take(services, due, stamp):
            done.append((name, ticket.id))
            try:
                await act(ticket)
            except Exception:  # one failed notice must not stop the others
                _log.exception("SLA action %s on ticket %s failed", name, ticket.id)
    return done


async def _take(
    services: Services, due: ColumnElement[bool], stamp: dict[str, object]
) -> list[Ticket]:
    """The due tickets this check wins: each is stamped by a conditional UPDATE first."""
    async with services.store.transaction() as tx:
        candidates = list(await tx.session.scalars(select(Ticket.id).where(due)))
    taken = []
    for ticket_id in candidates:
        async with services.store.transaction() as tx:
            before = await tx.session.get(Ticket, ticket_id)
            snapshot = _copy(before) if before is not None else None
            won = await tx.session.execute(
                update(Ticket)
                .where(Ticket.id == ticket_id, due)
                .values(**stamp)
                .execution_options(synchronize_session=False)
            )
        if won.rowcount == 1 and snapshot is not None:
            taken.append(snapshot)
    return taken


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


async def _say(services: Services, user_id: int | None, template: str, **context: object) -> None:
    user = await services.tickets.user(user_id) if user_id else None
    if user is None:
        return
    language = "zh" if user.language == "zh" else "en"
    text = services.templates.render(language, template, **context)
    await expert.send_to(services, user, OutMessage(text=text, language=language))


async def _tell_staff(services: Services, ticket: Ticket) -> None:
    minutes = int(services.settings.sla_escalate_minutes)
    await expert.tell_staff(services, "escalated", ticket=ticket.id, minutes=minutes)


async def _remind(services: Services, ticket: Ticket) -> None:
    minutes = int(services.settings.sla_lease_minutes - services.settings.sla_first_reply_minutes)
    await _say(services, ticket.expert_id, "reminder", ticket=ticket.id, minutes=minutes)


async def _returned(services: Services, ticket: Ticket) -> None:
    await _say(services, ticket.expert_id, "lease_expired", ticket=ticket.id)
    await _say(services, ticket.talent_id, "released_talent")
    holder = await services.tickets.user(ticket.expert_id) if ticket.expert_id else None
    await expert.announce(ticket.id, services, skip=holder)


async def _nudge(services: Services, ticket: Ticket) -> None:
    hours = int(services.settings.sla_autoclose_hours)
    await _say(services, ticket.talent_id, "nudge", ticket=ticket.id, hours=hours)


async def _closed_silent(services: Services, ticket: Ticket) -> None:
    await _say(services, ticket.talent_id, "closed_silent_talent", ticket=ticket.id)
    await _say(services, ticket.expert_id, "closed_silent_expert", ticket=ticket.id)
