"""What volunteer experts (and staff) can do: see the queue, claim a ticket, talk with the
talent through the bot, release it or close it. Written once for every channel.

Talents are pseudonymous here: an expert sees "Talent #T-12" (or a first name the talent
agreed to show), never their channel id or username.
"""

import asyncio
import logging
import re
import unicodedata
from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta

from markupsafe import Markup

from bot.channels import TELEGRAM_USER_ID
from bot.conversation import (
    EDITED,
    RELAYED_KINDS,
    Attachment,
    Button,
    Inbound,
    OutMessage,
    Recipient,
    Unreachable,
)
from bot.drafts import write_draft
from bot.knowledge import TOPICS, Language
from bot.redact import deadlines, mask_contacts
from bot.reload import reload
from bot.reports import stats, stats_as_text, unanswered
from bot.services import Services
from bot.store import DuplicateInbound, Transaction, notices, restored
from bot.store.models import Notice, Ticket, TicketMessage, User, utcnow
from bot.store.tickets import Relay
from bot.text import clean, record_number

PAYLOAD_VERSION = "1"
COMMANDS = ("queue", "mine", "claim", "release", "close", "available", "away")
# A message to one of several tickets starts with its number: "#T-12 …", "T12: …".
# (Full-width too, as a Chinese keyboard types it: "＃Ｔ１２".)
_TICKET_PREFIX = re.compile(
    r"^([#＃]?)[TＴ][-－]?([0-9０-９]+)[\s:,，：]+(.+)$", re.IGNORECASE | re.DOTALL
)
# A ticket's number as a command names it: 12, #12, T-12, #T12.
_TICKET_NUMBER = re.compile(r"#?(?:T-?)?(\d+)", re.IGNORECASE)
STAFF_COMMANDS = ("reload", "unanswered", "stats", "addexpert", "keytalent", "reassign")
# The longest name talents see an expert by ("Expert Li"): as Telegram allows a first name.
NAME_CHARS = 64
_log = logging.getLogger(__name__)


async def handle(inbound: Inbound, services: Services) -> list[OutMessage]:
    """The bot's replies to one thing an expert did; none if it was handled before."""
    text = clean(inbound.text)
    again = False
    try:
        async with services.store.transaction() as tx:
            expert = await tx.user(inbound.channel, inbound.user_key, "en")
            await tx.accept(inbound, expert, text, _language_of(expert))
    except DuplicateInbound:
        if not inbound.recovered:
            return []
        # Accepted before a crash, and its replies never went out: it is done again. Every
        # ticket operation is conditional, so nothing already done is done twice.
        async with services.store.transaction() as tx:
            if await tx.unanswered(inbound) is None:
                return []
            expert = await tx.user(inbound.channel, inbound.user_key, "en")
        again = True
    desk = _Desk(services, expert, _language_of(expert), again)
    if inbound.button is not None:
        return await desk.press(inbound.button)
    if text.startswith("/"):
        return await desk.command(text)
    return await desk.relay(text, inbound.message_key, inbound.attachment, inbound.edited)


async def tell_staff(services: Services, template: str, **context: object) -> None:
    """Send a notice to every staff member; one the channel cannot take now is kept and sent
    by a later service-level check."""
    async with services.store.transaction() as tx:
        queued = [
            queue_notice(services, tx, member, template, utcnow(), **context)
            for member in await tx.staff()
        ]
    await send_notices(services, queued)


def queue_notice(
    services: Services,
    tx: Transaction,
    user: User,
    template: str,
    at: datetime,
    **context: object,
) -> tuple[Notice, User]:
    """A notice to `user` from `template`, in their language, stored with `tx` (decided at
    `at`); the notice with its recipient, for `send_notices`."""
    language = _language_of(user)
    text = services.templates.render(language, template, **context)
    return notices.queue(tx, user, text, language, at)


async def send_notices(services: Services, waiting: Sequence[tuple[Notice, User]]) -> None:
    """Send stored notices to their recipients, each forgotten once sent (or once its recipient
    cannot be reached); one the channel cannot take now stays for a later try."""
    for notice, recipient in waiting:
        message = OutMessage(text=notice.text, language=_language_of(notice))
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
    ticket_id: int, services: Services, skip: User | None = None, unshown_only: bool = False
) -> None:
    """Show a new (or returned) ticket to the experts who fit it, with a Claim button (not to
    `skip`, the expert who just gave it back; with `unshown_only`, not to those who have a card
    for it already)."""
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
    group = services.settings.experts_group_chat_id
    if not chosen and group is not None:
        await _announce_to_group(ticket, services, group)
    for expert in chosen:
        card = _announcement(ticket, services, _language_of(expert))
        try:
            ref = await outbox.send(_recipient(expert), card)
        except Unreachable:
            _log.warning("Expert %s cannot be reached; not announcing to them", expert.id)
            continue
        if ref is not None:
            await tickets.add_announcement(ticket.id, expert, ref)


async def _announce_to_group(ticket: Ticket, services: Services, group: int) -> None:
    """No expert is available: the experts' group sees the ticket and any member may claim."""
    assert services.outbox is not None
    card = _announcement(ticket, services, "en")
    try:
        await services.outbox.send(Recipient("telegram", str(group)), card)
    except Unreachable:
        _log.warning("The experts' group %s cannot be reached", group)


def _announcement(ticket: Ticket, services: Services, language: Language) -> OutMessage:
    """A ticket's summary with its Claim button."""
    claim = Button(
        _label(services, language, "claim", ticket=ticket.id), f"{PAYLOAD_VERSION}:c:{ticket.id}"
    )
    return OutMessage(
        text=services.templates.render(language, "announcement", **_summary(ticket)),
        language=language,
        buttons=(claim,),
    )


async def deliver(relay: Relay, services: Services) -> None:
    """Show a stored relayed message to its recipient, then mark it delivered."""
    outbox, tickets = services.outbox, services.tickets
    ticket = await tickets.get(relay.ticket_id)
    sender = await tickets.user(relay.sender_id) if relay.sender_id else None
    recipient = await tickets.user(relay.recipient_id) if relay.recipient_id else None
    if outbox is None or ticket is None or sender is None or recipient is None:
        return
    language = _language_of(recipient)
    if sender.id == ticket.talent_id:
        text = _from_talent(services, language, ticket, sender, relay.text, relay.attachment)
    else:
        text = services.templates.render(
            language, "relay_to_talent", expert=_expert_label(services, language, sender),
            message=_with_attachment(services, language, relay.text, relay.attachment),
        )  # fmt: skip
    message = OutMessage(text=text, language=language, attachment=relay.attachment)
    try:
        await outbox.send(_recipient(recipient), message)
    except Unreachable:
        await _unreachable(ticket, recipient, services)
        return
    await tickets.delivered(relay.id)


async def redeliver(services: Services) -> int:
    """Send every relayed message stored but never shown (after a crash); how many.

    Only those stored more than an update's lease ago: a newer one may be about to go out from
    another process that is running, and if that process died, the update it came from is
    handed over when its lease runs out, and the message with it.
    """
    lease = timedelta(seconds=services.settings.telegram_update_lease_seconds)
    pending = await services.tickets.undelivered(stored_before=utcnow() - lease)
    for relay in pending:
        await deliver(relay, services)
    return len(pending)


async def closed_by_talent(
    ticket_id: int, expert_id: int | None, services: Services, why: str
) -> None:
    """The talent closed their ticket (withdrew it, or asked to be forgotten): the expert
    holding it is told `why` (a template), and the Claim buttons shown for it say it is
    closed."""
    if services.outbox is None:
        return
    expert = await services.tickets.user(expert_id) if expert_id is not None else None
    if expert is not None:
        language = _language_of(expert)
        text = services.templates.render(language, why, ticket=ticket_id)
        await send_to(services, expert, OutMessage(text=text, language=language))
    await _replace_claim_buttons(
        services, ticket_id, lambda _shown: ("claim_closed", {"ticket": ticket_id})
    )


async def _replace_claim_buttons(
    services: Services,
    ticket_id: int,
    saying: Callable[[User], tuple[str, dict[str, object]]],
) -> None:
    """Replace every Claim button shown for a ticket with what `saying` gives (a template and
    its values) for the expert who was shown it."""
    if services.outbox is None:
        return
    for shown, ref in await services.tickets.announcements(ticket_id):
        language = _language_of(shown)
        template, values = saying(shown)
        text = services.templates.render(language, template, **values)
        try:
            await services.outbox.edit(
                _recipient(shown), ref, OutMessage(text=text, language=language)
            )
        except Unreachable:
            continue


async def _unreachable(ticket: Ticket, who: User, services: Services) -> None:
    """A talent who blocked the bot closes their ticket; an expert who did gives it back."""
    tickets, outbox = services.tickets, services.outbox
    if who.id == ticket.talent_id:
        await tickets.close(ticket.id, None, "talent unreachable", reason="unreachable")
        expert = await tickets.user(ticket.expert_id) if ticket.expert_id else None
        if expert is not None and outbox is not None:
            language = _language_of(expert)
            text = services.templates.render(language, "talent_unreachable", ticket=ticket.id)
            await send_to(services, expert, OutMessage(text=text, language=language))
    elif ticket.expert_id == who.id and await tickets.release(ticket.id, who):
        talent = await tickets.user(ticket.talent_id)
        if talent is not None:
            language = _language_of(talent)
            text = services.templates.render(language, "released_talent")
            await send_to(services, talent, OutMessage(text=text, language=language))
        await announce(ticket.id, services, skip=who)


async def send_to(services: Services, user: User, message: OutMessage) -> str | None:
    """Send to any user through the running channel; None if they cannot be reached."""
    if services.outbox is None:
        return None
    try:
        return await services.outbox.send(_recipient(user), message)
    except Unreachable:
        _log.warning("User %s cannot be reached", user.id)
        return None


class _Desk:
    """One expert's request, with what is needed to answer it."""

    def __init__(
        self, services: Services, expert: User, language: Language, again: bool = False
    ) -> None:
        self.services = services
        self.expert = expert
        self.language = language
        self.tickets = services.tickets
        # Whether this request is done again after a crash (see `handle`).
        self.again = again

    async def press(self, payload: str) -> list[OutMessage]:
        version, _, rest = payload.partition(":")
        kind, _, argument = rest.partition(":")
        ticket_id = record_number(argument)
        if version != PAYLOAD_VERSION or ticket_id is None:
            return [self._say("button_expired")]
        if kind == "c":
            return await self.claim(ticket_id)
        if kind == "r":
            return await self.release(ticket_id)
        if kind == "d":
            return await self.draft(ticket_id)
        return [self._say("button_expired")]

    async def command(self, text: str) -> list[OutMessage]:
        # Full-width characters (＃, Ｔ, １２) as a Chinese keyboard types them read as ASCII;
        # the summary of a /close may start on a new line.
        head, *rest = unicodedata.normalize("NFKC", text[1:]).split(maxsplit=1) or [""]
        command = head.split("@", 1)[0].lower()
        argument = rest[0].strip() if rest else ""
        number, *remainder = argument.split(maxsplit=1) or [""]
        found = _TICKET_NUMBER.fullmatch(number)
        ticket_id = record_number(found.group(1)) if found else None
        if command in STAFF_COMMANDS and self.expert.role != "staff":
            await self.tickets.audit(self.expert, "refused", f"/{command}", reason="not staff")
            return [self._say("not_staff")]
        if command in ("claim", "release", "close"):
            if ticket_id is None:
                return [self._say("expert_usage", command=command)]
            if command == "claim":
                return await self.claim(ticket_id)
            if command == "release":
                return await self.release(ticket_id)
            return await self.close(ticket_id, "".join(remainder).strip())
        if command == "queue":
            waiting, total = await self.tickets.waiting(), await self.tickets.waiting_count()
            summaries = [_summary(t) for t in waiting]
            return [self._say("queue", tickets=summaries, more=total - len(waiting))]
        if command == "mine":
            held = await self.tickets.held_by(self.expert)
            return [self._say("mine", tickets=[_summary(t) for t in held])]
        if command == "reload" and self.expert.role == "staff":
            outcome = await asyncio.to_thread(reload, self.services, argument == "force")
            await self.tickets.audit(
                self.expert,
                "reload",
                outcome.version,
                status=outcome.status,
                forced=argument == "force",
            )
            return [self._say("kb_" + outcome.status, outcome=outcome)]
        if command == "unanswered" and self.expert.role == "staff":
            gaps = await unanswered(self.services.store, self.services.matcher)
            return [self._say("unanswered", gaps=gaps[:10])]
        if command == "stats" and self.expert.role == "staff":
            return [self._say("stats", text=stats_as_text(await stats(self.services.store)))]
        if command == "addexpert" and self.expert.role == "staff":
            return await self.add_expert(argument)
        if command == "keytalent" and self.expert.role == "staff" and ticket_id is not None:
            marked = await self.tickets.mark_key_talent(ticket_id, self.expert)
            return [self._say("key_talent" if marked else "claim_missing", ticket=ticket_id)]
        if command == "reassign" and self.expert.role == "staff" and ticket_id is not None:
            return await self.reassign(ticket_id, "".join(remainder).strip())
        if command == "language" and argument.lower() in ("en", "zh"):
            language: Language = "zh" if argument.lower() == "zh" else "en"
            await self.tickets.set_language(self.expert, language)
            self.language = language
            return [self._say("language_set")]
        if command in ("available", "away"):
            await self.tickets.set_available(self.expert, command == "available")
            return [self._say(command)]
        return [self._say("expert_help", limit=self._limit(), staff=self.expert.role == "staff")]

    async def add_expert(self, argument: str) -> list[OutMessage]:
        """Staff: `/addexpert <telegram id> <name> [specialty,specialty] [en,zh]`."""
        words = argument.split()
        if len(words) < 2 or not TELEGRAM_USER_ID.fullmatch(words[0]) or len(words[1]) > NAME_CHARS:
            return [self._say("add_expert_usage")]
        specialties = [s for s in (words[2].split(",") if len(words) > 2 else []) if s]
        languages = [s for s in (words[3].split(",") if len(words) > 3 else ["en", "zh"]) if s]
        unknown = [s for s in specialties if s not in TOPICS] + [
            s for s in languages if s not in ("en", "zh")
        ]
        if unknown:
            return [self._say("add_expert_usage", unknown=unknown)]
        await self.tickets.enrol(
            self.expert.channel, words[0], words[1], specialties=specialties, languages=languages
        )
        return [self._say("expert_added", name=words[1], specialties=specialties)]

    async def reassign(self, ticket_id: int, external_id: str) -> list[OutMessage]:
        """Staff: `/reassign 12 <expert's id>` gives #T-12 to that expert."""
        to = await self.tickets.find(self.expert.channel, external_id)
        before = await self.tickets.get(ticket_id)
        if to is None or to.role not in ("expert", "staff") or before is None:
            return [self._say("reassign_usage")]
        if not await self.tickets.reassign(ticket_id, to, self.expert):
            return [self._say("claim_closed", ticket=ticket_id)]
        previous = await self.tickets.user(before.expert_id) if before.expert_id else None
        if previous is not None and previous.id != to.id:
            language = _language_of(previous)
            text = self.services.templates.render(language, "reassigned_away", ticket=ticket_id)
            await send_to(self.services, previous, OutMessage(text=text, language=language))
        ticket = await self.tickets.get(ticket_id)
        talent = await self.tickets.user(before.talent_id)
        if ticket is not None and talent is not None:
            await self._taken(ticket, talent, to)
            for message in await _Desk(self.services, to, _language_of(to))._case(ticket, talent):
                await send_to(self.services, to, message)
        return [self._say("reassigned", ticket=ticket_id, name=to.display_name or external_id)]

    async def claim(self, ticket_id: int) -> list[OutMessage]:
        outcome = await self.tickets.claim(ticket_id, self.expert, self._limit())
        if outcome == "yours" and self.again:
            outcome = "claimed"  # claimed before the crash; what follows a claim was not done
        if outcome != "claimed":
            return [self._say(f"claim_{outcome}", ticket=ticket_id, limit=self._limit())]
        ticket = await self.tickets.get(ticket_id)
        talent = await self.tickets.user(ticket.talent_id) if ticket else None
        if ticket is None or talent is None:
            return [self._say("claim_missing", ticket=ticket_id)]
        await self._taken(ticket, talent, self.expert)
        return await self._case(ticket, talent)

    async def _taken(self, ticket: Ticket, talent: User, holder: User) -> None:
        """`holder` now has the ticket: its Claim buttons go, and the talent is told who."""
        await self._withdraw_announcements(ticket, holder)
        language = _language_of(talent)
        text = self.services.templates.render(
            language, "expert_took", expert=_expert_label(self.services, language, holder)
        )
        await send_to(self.services, talent, OutMessage(text=text, language=language))

    async def release(self, ticket_id: int) -> list[OutMessage]:
        ticket = await self.tickets.get(ticket_id)
        if ticket is None or not await self.tickets.release(ticket_id, self.expert):
            return [self._say("not_your_ticket", ticket=ticket_id)]
        talent = await self.tickets.user(ticket.talent_id)
        if talent is not None:
            language = _language_of(talent)
            await send_to(
                self.services,
                talent,
                OutMessage(text=self.services.templates.render(language, "released_talent"), language=language),
            )  # fmt: skip
        await announce(ticket_id, self.services, skip=self.expert)
        return [self._say("released", ticket=ticket_id)]

    async def close(self, ticket_id: int, summary: str) -> list[OutMessage]:
        if not summary:
            return [self._say("expert_usage", command="close")]
        before = await self.tickets.get(ticket_id)
        ticket = await self.tickets.close(ticket_id, self.expert, summary)
        if ticket is None or before is None:
            return [self._say("not_your_ticket", ticket=ticket_id)]
        holder = None
        if before.expert_id is not None and before.expert_id != self.expert.id:
            holder = await self.tickets.user(before.expert_id)
        if holder is not None:
            # Staff closed a ticket an expert was answering: the expert hears it from the bot.
            language = _language_of(holder)
            text = self.services.templates.render(
                language, "closed_by_staff", ticket=ticket_id, summary=summary
            )
            await send_to(self.services, holder, OutMessage(text=text, language=language))
        talent = await self.tickets.user(ticket.talent_id)
        if talent is not None:
            language = _language_of(talent)
            rating = tuple(
                Button(str(stars), f"{PAYLOAD_VERSION}:s:{ticket.id}:{stars}") for stars in range(1, 6)
            )  # fmt: skip
            asked = OutMessage(
                text=self.services.templates.render(
                    language, "closed_talent", ticket=ticket.id, summary=summary
                ),
                language=language,
                buttons=rating,
            )
            # Kept in the talent's conversation, so that typing "5" rates as tapping 5 does.
            await self.tickets.note_said(talent, asked)
            await send_to(self.services, talent, asked)
        draft = Button(self._label("draft"), f"{PAYLOAD_VERSION}:d:{ticket_id}")
        return [self._say("closed", buttons=[draft], ticket=ticket_id)]

    async def draft(self, ticket_id: int) -> list[OutMessage]:
        """Write a draft entry from the expert's answers on a closed ticket; tell staff."""
        ticket = await self.tickets.get(ticket_id)
        allowed = ticket is not None and (
            ticket.expert_id == self.expert.id or self.expert.role == "staff"
        )
        if ticket is None or not allowed or ticket.status != "closed":
            return [self._say("not_your_ticket", ticket=ticket_id)]
        answers = [
            m.text
            for m in await self.tickets.ticket_messages(ticket_id)
            if m.sender_id == ticket.expert_id
        ]
        path = await asyncio.to_thread(
            write_draft,
            self.services.settings.knowledge_dir,
            ticket_id,
            ticket.question,
            "\n\n".join(answers) or ticket.summary or "",
            ticket.topic,
            ticket.language,
        )
        await self.tickets.audit(self.expert, "draft", f"T-{ticket_id}", path=str(path))
        await tell_staff(self.services, "draft_written", ticket=ticket_id, path=str(path))
        return [self._say("draft_done", ticket=ticket_id)]

    async def relay(
        self,
        text: str,
        source_key: str,
        attachment: Attachment | None = None,
        edited: bool = False,
    ) -> list[OutMessage]:
        if attachment is not None and attachment.kind not in RELAYED_KINDS:
            return [self._say("not_relayed_to_talent")]
        if not text and attachment is None:
            return [
                self._say("expert_help", limit=self._limit(), staff=self.expert.role == "staff")
            ]
        held = await self.tickets.held_by(self.expert)
        addressed = _TICKET_PREFIX.match(text)
        wanted = (
            record_number(unicodedata.normalize("NFKC", addressed.group(2))) if addressed else None
        )
        chosen = [ticket for ticket in held if ticket.id == wanted]
        if addressed and chosen:
            text = addressed.group(3).strip()
        elif addressed and (addressed.group(1) or len(held) != 1):
            # "#T-9 …" for a ticket not theirs; without "#" and with one ticket held, "T-2 was
            # a similar case" is just a message that starts so.
            return [self._say("not_holding", wanted=wanted, tickets=[_summary(t) for t in held])]
        else:
            chosen = held
        if len(chosen) != 1:
            return [self._say("which_ticket", tickets=[_summary(t) for t in held])]
        ticket = chosen[0]
        if edited:
            # The talent saw the first version: the new one comes marked as a change.
            text = f"{EDITED} {text}"
        talent = await self.tickets.user(ticket.talent_id)
        relay = await self.tickets.store_relay(
            ticket, self.expert, talent, text, source_key, attachment
        )
        if relay is None and self.again:
            relay = await self.tickets.undelivered_from(source_key)
        if relay is not None:
            await deliver(relay, self.services)
        return []

    async def _case(self, ticket: Ticket, talent: User) -> list[OutMessage]:
        """The case card, then each photo or document the talent put on the ticket."""
        added = [
            m for m in await self.tickets.ticket_messages(ticket.id) if m.sender_id == talent.id
        ]
        files = []
        for message in added:
            attachment = restored(message.attachment)
            if attachment is not None:
                text = _from_talent(
                    self.services, self.language, ticket, talent, message.text, attachment
                )
                files.append(OutMessage(text=text, language=self.language, attachment=attachment))
        return [await self._case_card(ticket, talent, added), *files]

    async def _case_card(
        self, ticket: Ticket, talent: User, added: list[TicketMessage]
    ) -> OutMessage:
        rejected = []
        for entry_id in await self.tickets.rejected_answers(talent):
            entry = self.services.matcher.knowledge.get(entry_id)
            if entry is not None and entry.text(self.language).question not in rejected:
                rejected.append(entry.text(self.language).question)
        earlier = await self.tickets.recent_questions(talent, ticket) + [
            _with_attachment(self.services, self.language, m.text, restored(m.attachment))
            for m in added
        ]
        words = " ".join([ticket.question, *earlier])
        show = (lambda s: s) if ticket.contacts_shared else mask_contacts
        return self._say(
            "case_card",
            ticket=ticket.id,
            talent=_talent_label(ticket, talent),
            topic=ticket.topic or "-",
            talent_language=ticket.language,
            question=show(ticket.question),
            earlier=[show(m) for m in earlier],
            rejected=rejected,
            deadlines=deadlines(words),
            urgent=bool(deadlines(words)) or ticket.priority > 0,
            buttons=[Button(self._label("release"), f"{PAYLOAD_VERSION}:r:{ticket.id}")],
        )

    async def _withdraw_announcements(self, ticket: Ticket, holder: User) -> None:
        """Replace every Claim button for this ticket with "taken" (or "yours", for `holder`)."""
        await _replace_claim_buttons(
            self.services,
            ticket.id,
            lambda shown: (
                "announcement_yours" if shown.id == holder.id else "announcement_taken",
                _summary(ticket),
            ),
        )

    def _limit(self) -> int:
        return self.expert.max_open_tickets or self.services.settings.expert_max_open_tickets

    def _label(self, name: str, **context: object) -> str:
        return _label(self.services, self.language, name, **context)

    def _say(
        self, template: str, buttons: list[Button] | None = None, **context: object
    ) -> OutMessage:
        text = self.services.templates.render(self.language, template, **context)
        return OutMessage(text=text, language=self.language, buttons=tuple(buttons or ()))


def _summary(ticket: Ticket) -> dict[str, object]:
    """What a ticket is, for lists and announcements: never who asked."""
    return {
        "ticket": ticket.id,
        "topic": ticket.topic or "-",
        "talent_language": ticket.language,
        "question": mask_contacts(ticket.question)[:300],
        "urgent": ticket.priority > 0 or bool(deadlines(ticket.question)),
    }


def _talent_label(ticket: Ticket, talent: User) -> str:
    if talent.share_name and talent.display_name:
        return f"{talent.display_name} (#T-{ticket.id})"
    return f"#T-{ticket.id}"


def _expert_label(services: Services, language: Language, expert: User) -> str:
    specialties = ", ".join(
        _label(services, language, "specialty_" + s.replace("-", "_")) for s in expert.specialties
    )
    return _label(
        services, language, "expert_name", name=expert.display_name or "", specialties=specialties
    )


def _label(services: Services, language: Language, name: str, /, **context: object) -> str:
    return Markup(services.templates.label(language, name, **context)).unescape()


def _from_talent(
    services: Services,
    language: Language,
    ticket: Ticket,
    talent: User,
    text: str,
    attachment: Attachment | None,
) -> str:
    """What the talent of `ticket` said, as an expert reads it: contacts masked until the
    talent agrees to share them."""
    words = _with_attachment(services, language, text, attachment)
    return services.templates.render(
        language,
        "relay_to_expert",
        talent=_talent_label(ticket, talent),
        message=words if ticket.contacts_shared else mask_contacts(words),
    )


def _with_attachment(
    services: Services, language: Language, text: str, attachment: Attachment | None
) -> str:
    """A relayed message's words, marked "📎 photo" when a photo or document comes with it."""
    if attachment is None:
        return text
    return f"{_label(services, language, 'attached', kind=attachment.kind)} {text}".rstrip()


def _language_of(holder: User | Notice) -> Language:
    return "zh" if holder.language == "zh" else "en"


def _recipient(user: User) -> Recipient:
    return Recipient(user.channel, user.external_id)
