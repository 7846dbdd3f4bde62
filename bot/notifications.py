"""What users are told besides the replies to what they wrote: experts shown a ticket to claim,
a talent's and an expert's messages passed to each other, talents told what their expert did,
staff told of events.

Each takes the bot's `Services`; everything leaves through `services.outbox`, which reaches each user on their own channel (a
process without one, such as `ipbot chat`, tells no one). A user it cannot reach is logged and
passed over; a talent or expert it cannot reach any more ends their part in the ticket.
"""

import logging
from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta

from bot import relay
from bot.channels import experts_group
from bot.conversation import Button, OutMessage, Recipient, Unreachable
from bot.languages import Language, language_of
from bot.payloads import Claim, Rate
from bot.services import Services
from bot.store import Transaction, notices
from bot.store.models import Notice, Ticket, User, utcnow
from bot.store.tickets import Relay

_log = logging.getLogger(__name__)


async def send_to(services: Services, user: User, message: OutMessage) -> str | None:
    """Send to any user on their channel; the channel's reference to the message, or None
    if they cannot be reached (or there is no channel to send through)."""
    if services.outbox is None:
        return None
    try:
        return await services.outbox.send(_recipient(user), message)
    except Unreachable:
        _log.warning("User %s cannot be reached", user.id)
        return None


async def tell(services: Services, user: User, template: str, **context: object) -> None:
    """Send `user` the message `template`, in their language."""
    message = _message(services, language_of(user.language), template, **context)
    await send_to(services, user, message)


async def tell_staff(services: Services, template: str, **context: object) -> None:
    """Send a notice to every staff member; one the channel cannot take now is kept and
    sent by a later service-level check."""
    async with services.store.transaction() as tx:
        queued = [
            queue_notice(services, tx, member, template, utcnow(), **context)
            for member in await tx.staff()
        ]
    await send_notices(services, queued)


def queue_notice(
    services: Services, tx: Transaction, user: User, template: str, at: datetime, **context: object
) -> tuple[Notice, User]:
    """A notice to `user` from `template`, in their language, stored with `tx` (decided at
    `at`); the notice with its recipient, for `send_notices`."""
    language = language_of(user.language)
    text = services.templates.render(language, template, **context)
    return notices.queue(tx, user, text, language, at)


async def send_notices(services: Services, waiting: Sequence[tuple[Notice, User]]) -> None:
    """Send stored notices to their recipients, each forgotten once sent (or once its
    recipient cannot be reached); one the channel cannot take now stays for a later try."""
    for notice, recipient in waiting:
        message = OutMessage(text=notice.text, language=language_of(notice.language))
        try:
            await send_to(services, recipient, message)
        except Exception as error:  # the channel is out of reach, or refused this one
            _log.warning("Notice %s to user %s not sent yet: %s", notice.id, recipient.id, error)
            continue
        await notices.sent(services.store, notice)


async def report_stale(services: Services, today: date) -> int:
    """Tell staff which entries were last reviewed too long ago, and what they cite."""
    before = today - timedelta(days=services.settings.stale_after_days)
    stale = services.matcher.knowledge.reviewed_before(before)
    if stale:
        await tell_staff(services, "stale_entries", entries=stale, before=before.isoformat())
    return len(stale)


async def announce(
    services: Services, ticket_id: int, skip: User | None = None, unshown_only: bool = False
) -> None:
    """Show a new (or returned) ticket to the experts who fit it, with a Claim button (not
    to `skip`, the expert who just gave it back; with `unshown_only`, not to those who have
    a card for it already). With no expert to show it to, the experts' group sees it."""
    outbox, tickets = services.outbox, services.tickets
    ticket = await tickets.get(ticket_id)
    if outbox is None or ticket is None or ticket.status != "open":
        return
    shown = (
        {user.id for user, _ in await tickets.announcements(ticket.id)} if unshown_only else set()
    )
    chosen = [
        expert
        for expert in await tickets.experts_for(ticket.topic, ticket.language)
        if (skip is None or expert.id != skip.id) and expert.id not in shown
    ]
    group = experts_group(services.settings.experts_group_chat_id)
    if not chosen and group is not None:
        try:
            await outbox.send(group, _announcement(services, ticket, "en"))
        except Unreachable:
            _log.warning("The experts' group %s cannot be reached", group.external_id)
    for expert in chosen:
        try:
            ref = await outbox.send(
                _recipient(expert), _announcement(services, ticket, language_of(expert.language))
            )
        except Unreachable:
            _log.warning("Expert %s cannot be reached; not announcing to them", expert.id)
            continue
        if ref is not None:
            await tickets.add_announcement(ticket.id, expert, ref)


async def taken(services: Services, ticket: Ticket, talent: User, holder: User) -> None:
    """`holder` now has the ticket: its Claim buttons say so, and the talent is told who."""
    await _replace_claim_buttons(
        services,
        ticket.id,
        lambda shown: (
            "announcement_yours" if shown.id == holder.id else "announcement_taken",
            relay.summary(ticket),
        ),
    )
    language = language_of(talent.language)
    expert = relay.expert_label(services.templates, language, holder)
    await send_to(services, talent, _message(services, language, "expert_took", expert=expert))


async def returned(services: Services, ticket: Ticket, by: User) -> None:
    """The expert `by` gave the ticket back: its talent is told, and the other experts
    who fit it see it again."""
    talent = await services.tickets.user(ticket.talent_id)
    if talent is not None:
        await tell(services, talent, "released_talent")
    await announce(services, ticket.id, skip=by)


async def closed(
    services: Services, ticket: Ticket, by: User, holder_id: int | None, summary: str
) -> None:
    """`by` closed the ticket with `summary`: the expert who held it (`holder_id`), if
    someone else (staff closed it), hears it from the bot; the talent reads the summary and
    is asked for stars."""
    if holder_id is not None and holder_id != by.id:
        holder = await services.tickets.user(holder_id)
        if holder is not None:
            await tell(services, holder, "closed_by_staff", ticket=ticket.id, summary=summary)
    talent = await services.tickets.user(ticket.talent_id)
    if talent is None:
        return
    language = language_of(talent.language)
    text = services.templates.render(language, "closed_talent", ticket=ticket.id, summary=summary)
    stars = tuple(Button(str(n), Rate(ticket.id, n).pack()) for n in (1, 2, 3, 4, 5))
    asked = OutMessage(text=text, language=language, buttons=stars)
    # Kept in the talent's conversation, so that typing "5" rates as tapping 5 does.
    await services.tickets.note_said(talent, asked)
    await send_to(services, talent, asked)


async def closed_by_talent(
    services: Services, ticket_id: int, expert_id: int | None, why: str
) -> None:
    """The talent closed their ticket (withdrew it, or asked to be forgotten): the expert
    holding it is told `why` (a template), and the Claim buttons shown for it say it is
    closed."""
    if services.outbox is None:
        return
    expert = await services.tickets.user(expert_id) if expert_id is not None else None
    if expert is not None:
        await tell(services, expert, why, ticket=ticket_id)
    await _replace_claim_buttons(
        services, ticket_id, lambda _shown: ("claim_closed", {"ticket": ticket_id})
    )


async def deliver(services: Services, message: Relay) -> None:
    """Show a stored relayed message to its recipient, then mark it delivered."""
    tickets, templates = services.tickets, services.templates
    ticket = await tickets.get(message.ticket_id)
    sender = await tickets.user(message.sender_id) if message.sender_id else None
    recipient = await tickets.user(message.recipient_id) if message.recipient_id else None
    if services.outbox is None or ticket is None or sender is None or recipient is None:
        return
    language = language_of(recipient.language)
    words, attachment = message.text, message.attachment
    if sender.id == ticket.talent_id:
        text = relay.from_talent(templates, language, ticket, sender, words, attachment)
    else:
        text = relay.from_expert(templates, language, sender, words, attachment)
    try:
        await services.outbox.send(
            _recipient(recipient),
            OutMessage(text=text, language=language, attachment=attachment),
        )
    except Unreachable:
        await _unreachable(services, ticket, recipient)
        return
    await tickets.delivered(message.id)


async def redeliver(services: Services) -> int:
    """Send every relayed message stored but never shown (after a crash); how many.

    Only those stored more than an update's lease ago: a newer one may be about to go out
    from another process that is running, and if that process died, the update it came
    from is handed over when its lease runs out, and the message with it.
    """
    lease = timedelta(seconds=services.settings.telegram_update_lease_seconds)
    pending = await services.tickets.undelivered(stored_before=utcnow() - lease)
    for message in pending:
        await deliver(services, message)
    return len(pending)


async def _unreachable(services: Services, ticket: Ticket, who: User) -> None:
    """A talent who blocked the bot closes their ticket; an expert who did gives it back."""
    tickets = services.tickets
    if who.id == ticket.talent_id:
        await tickets.close(ticket.id, None, "talent unreachable", reason="unreachable")
        expert = await tickets.user(ticket.expert_id) if ticket.expert_id else None
        if expert is not None:
            await tell(services, expert, "talent_unreachable", ticket=ticket.id)
    elif ticket.expert_id == who.id and await tickets.release(ticket.id, who):
        await returned(services, ticket, who)


async def _replace_claim_buttons(
    services: Services, ticket_id: int, saying: Callable[[User], tuple[str, dict[str, object]]]
) -> None:
    """Replace every Claim button shown for a ticket with what `saying` gives (a template
    and its values) for the expert who was shown it."""
    outbox = services.outbox
    if outbox is None:
        return
    for shown, ref in await services.tickets.announcements(ticket_id):
        template, values = saying(shown)
        message = _message(services, language_of(shown.language), template, **values)
        try:
            await outbox.edit(_recipient(shown), ref, message)
        except Unreachable:
            continue


def _announcement(services: Services, ticket: Ticket, language: Language) -> OutMessage:
    """A ticket's summary with its Claim button."""
    claim = Button(
        relay.label(services.templates, language, "claim", ticket=ticket.id),
        Claim(ticket.id).pack(),
    )
    text = services.templates.render(language, "announcement", **relay.summary(ticket))
    return OutMessage(text=text, language=language, buttons=(claim,))


def _message(
    services: Services, language: Language, template: str, **context: object
) -> OutMessage:
    text = services.templates.render(language, template, **context)
    return OutMessage(text=text, language=language)


def _recipient(user: User) -> Recipient:
    return Recipient(user.channel, user.external_id)
