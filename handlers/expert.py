"""The expert desk: what volunteer experts do, on any channel.

An expert sees the queue (/queue) and the tickets they hold (/mine), claims a ticket (its Claim
button, or /claim 12) and gets its case card, talks with the talent through the bot (what they
write goes to the talent of the ticket they hold; "#T-12 …" picks one of several), gives a
ticket back (/release 12) or closes it with a summary (/close 12 …), after which its Draft
button turns their answers into a draft entry for staff. /available and /away say whether new
tickets are shown to them; /language sets the language the desk speaks to them.

An inbound is stored in the transaction that looked the expert up; what it asks is done once
that has committed, each ticket operation conditional and in a transaction of its own, so one
done again after a crash (`recover`) does nothing twice.
"""

import asyncio
import re
import unicodedata
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from bot import notifications, relay
from bot.conversation import EDITED, RELAYED_KINDS, Attachment, Button, Inbound, OutMessage
from bot.drafts import write_draft
from bot.languages import language_of
from bot.payloads import Claim, Draft, Payload, Release, unpack
from bot.redact import deadlines, mask_contacts
from bot.services import Services
from bot.store import restored
from bot.store.models import Ticket, TicketMessage, User
from bot.text import clean, record_number
from handlers import Finish, Request

# The longest name talents see an expert by ("Expert Li"): the longest first name chat apps
# allow.
NAME_CHARS = 64
# Staff's own commands (`handlers/staff.py`): an expert who types one is refused, and it is
# logged.
STAFF_COMMANDS = frozenset({"reload", "unanswered", "stats", "addexpert", "keytalent", "reassign"})
# A ticket's number as a command names it: 12, #12, T-12, #T12.
_TICKET_NUMBER = re.compile(r"#?(?:T-?)?(\d+)", re.IGNORECASE)


async def handle(request: Request) -> Finish:
    """Store an expert's inbound; what it asks is done once that is committed."""
    return await Desk.take(request)


async def recover(services: Services, expert: User, inbound: Inbound) -> list[OutMessage]:
    """An expert's inbound stored before a crash, done again if its replies never went out."""
    return await Desk.redo(services, expert, inbound)


@dataclass(frozen=True)
class Command:
    """A command typed at the desk: "/close #T-12 Sent the form" is `close`, with the
    argument "#T-12 Sent the form", which names ticket 12, and the rest "Sent the form"."""

    name: str
    argument: str
    ticket: int | None
    rest: str

    @classmethod
    def read(cls, text: str) -> "Command":
        """The command `text` (which starts with "/") gives."""
        # Full-width characters (＃, Ｔ, １２) as a Chinese keyboard types them read as ASCII;
        # the summary of a /close may start on a new line.
        head, *after = unicodedata.normalize("NFKC", text[1:]).split(maxsplit=1) or [""]
        argument = after[0].strip() if after else ""
        number, *rest = argument.split(maxsplit=1) or [""]
        found = _TICKET_NUMBER.fullmatch(number)
        ticket = record_number(found.group(1)) if found else None
        return cls(head.split("@", 1)[0].lower(), argument, ticket, "".join(rest).strip())


DeskAction = Callable[[Any, Any], Awaitable[list[OutMessage]]]


class Desk:
    """One expert's inbound, with what is needed to answer it. Its commands and buttons are
    `COMMANDS` and `BUTTONS`, each a method given the `Command` or the payload."""

    # Whether this is staff's desk: they may draft from any closed ticket, and their help
    # lists their own commands.
    STAFF: ClassVar[bool] = False

    def __init__(self, services: Services, expert: User, again: bool = False) -> None:
        self.services = services
        self.expert = expert
        self.language = language_of(expert.language)
        self.tickets = services.tickets
        # Whether this inbound is done again after a crash (see `redo`).
        self.again = again

    @classmethod
    async def take(cls, request: Request) -> Finish:
        """Store the inbound in the request's transaction; answer it once that commits."""
        expert, inbound, text = request.user, request.inbound, request.text
        await request.tx.accept(inbound, expert, text, language_of(expert.language))
        desk = cls(request.services, expert)
        return lambda: desk.respond(inbound, text)

    @classmethod
    async def redo(cls, services: Services, expert: User, inbound: Inbound) -> list[OutMessage]:
        """An inbound accepted before a crash whose replies never went out is done again:
        every ticket operation is conditional, so nothing already done is done twice."""
        async with services.store.transaction() as tx:
            if await tx.unanswered(inbound) is None:
                return []
        return await cls(services, expert, again=True).respond(inbound, clean(inbound.text))

    async def respond(self, inbound: Inbound, text: str) -> list[OutMessage]:
        """The replies to a tap, a command, or a message for a talent."""
        if inbound.button is not None:
            return await self.press(inbound.button)
        if text.startswith("/"):
            return await self.command(text)
        return await self.relay(text, inbound.message_key, inbound.attachment, inbound.edited)

    async def press(self, packed: str) -> list[OutMessage]:
        """What a tapped button does (`BUTTONS`); an unknown one has expired."""
        payload = unpack(packed)
        action = self.BUTTONS.get(type(payload)) if payload is not None else None
        if action is None:
            return [self._say("button_expired")]
        return await action(self, payload)

    async def command(self, text: str) -> list[OutMessage]:
        """What a command does (`COMMANDS`); staff's are refused, anything else gets help."""
        command = Command.read(text)
        action = self.COMMANDS.get(command.name)
        if action is not None:
            return await action(self, command)
        if command.name in STAFF_COMMANDS:
            await self.tickets.audit(self.expert, "refused", f"/{command.name}", reason="not staff")
            return [self._say("not_staff")]
        return [self._help()]

    async def queue(self, _command: Command) -> list[OutMessage]:
        waiting, total = await self.tickets.waiting(), await self.tickets.waiting_count()
        summaries = [relay.summary(ticket) for ticket in waiting]
        return [self._say("queue", tickets=summaries, more=total - len(waiting))]

    async def mine(self, _command: Command) -> list[OutMessage]:
        held = await self.tickets.held_by(self.expert)
        return [self._say("mine", tickets=[relay.summary(ticket) for ticket in held])]

    async def claim_command(self, command: Command) -> list[OutMessage]:
        if command.ticket is None:
            return [self._say("expert_usage", command=command.name)]
        return await self.claim(command.ticket)

    async def release_command(self, command: Command) -> list[OutMessage]:
        if command.ticket is None:
            return [self._say("expert_usage", command=command.name)]
        return await self.release(command.ticket)

    async def close_command(self, command: Command) -> list[OutMessage]:
        if command.ticket is None or not command.rest:
            return [self._say("expert_usage", command=command.name)]
        return await self.close(command.ticket, command.rest)

    async def availability(self, command: Command) -> list[OutMessage]:
        """/available and /away: whether new tickets are shown to this expert."""
        await self.tickets.set_available(self.expert, command.name == "available")
        return [self._say(command.name)]

    async def choose_language(self, command: Command) -> list[OutMessage]:
        chosen = command.argument.lower()
        if chosen not in ("en", "zh"):
            return [self._help()]
        self.language = language_of(chosen)
        await self.tickets.set_language(self.expert, self.language)
        return [self._say("language_set")]

    async def claim(self, ticket_id: int) -> list[OutMessage]:
        """Take the ticket, if it is open and the expert has room: its case card follows."""
        outcome = await self.tickets.claim(ticket_id, self.expert, self._limit())
        if outcome == "yours" and self.again:
            outcome = "claimed"  # claimed before the crash; what follows a claim was not done
        if outcome != "claimed":
            return [self._say(f"claim_{outcome}", ticket=ticket_id, limit=self._limit())]
        ticket = await self.tickets.get(ticket_id)
        talent = await self.tickets.user(ticket.talent_id) if ticket else None
        if ticket is None or talent is None:
            return [self._say("claim_missing", ticket=ticket_id)]
        await notifications.taken(self.services, ticket, talent, self.expert)
        return await self.case(ticket, talent)

    async def release(self, ticket_id: int) -> list[OutMessage]:
        """Give the ticket back to the queue."""
        ticket = await self.tickets.get(ticket_id)
        if ticket is None or not await self.tickets.release(ticket_id, self.expert):
            return [self._say("not_your_ticket", ticket=ticket_id)]
        await notifications.returned(self.services, ticket, self.expert)
        return [self._say("released", ticket=ticket_id)]

    async def close(self, ticket_id: int, summary: str) -> list[OutMessage]:
        """Close the ticket with a summary for the talent; a Draft button follows."""
        before = await self.tickets.get(ticket_id)
        ticket = await self.tickets.close(ticket_id, self.expert, summary)
        if ticket is None or before is None:
            return [self._say("not_your_ticket", ticket=ticket_id)]
        await notifications.closed(self.services, ticket, self.expert, before.expert_id, summary)
        draft = Button(self._label("draft"), Draft(ticket_id).pack())
        return [self._say("closed", buttons=[draft], ticket=ticket_id)]

    async def claim_button(self, payload: Claim) -> list[OutMessage]:
        return await self.claim(payload.ticket)

    async def release_button(self, payload: Release) -> list[OutMessage]:
        return await self.release(payload.ticket)

    async def draft(self, payload: Draft) -> list[OutMessage]:
        """Write a draft entry from the expert's answers on a closed ticket; tell staff."""
        ticket_id = payload.ticket
        ticket = await self.tickets.get(ticket_id)
        allowed = ticket is not None and (self.STAFF or ticket.expert_id == self.expert.id)
        if ticket is None or not allowed or ticket.status != "closed":
            return [self._say("not_your_ticket", ticket=ticket_id)]
        answers = [
            message.text
            for message in await self.tickets.ticket_messages(ticket_id)
            if message.sender_id == ticket.expert_id
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
        await notifications.tell_staff(
            self.services, "draft_written", ticket=ticket_id, path=str(path)
        )
        return [self._say("draft_done", ticket=ticket_id)]

    async def relay(
        self, text: str, source_key: str, attachment: Attachment | None, edited: bool
    ) -> list[OutMessage]:
        """Pass what the expert wrote to the talent of the ticket it is for: the one they
        hold, or the one it names at its start ("#T-12 …")."""
        if attachment is not None and attachment.kind not in RELAYED_KINDS:
            return [self._say("not_relayed_to_talent")]
        if not text and attachment is None:
            return [self._help()]
        held = await self.tickets.held_by(self.expert)
        named = relay.addressed(text)
        chosen = [ticket for ticket in held if named is not None and ticket.id == named.ticket]
        if named is not None and chosen:
            text = named.text
        elif named is not None and (named.marked or len(held) != 1):
            # "#T-9 …" for a ticket not theirs; without "#" and with one ticket held, "T-2 was
            # a similar case" is just a message that starts so.
            summaries = [relay.summary(ticket) for ticket in held]
            return [self._say("not_holding", wanted=named.ticket, tickets=summaries)]
        else:
            chosen = held
        if len(chosen) != 1:
            summaries = [relay.summary(ticket) for ticket in held]
            return [self._say("which_ticket", tickets=summaries)]
        ticket = chosen[0]
        if edited:
            # The talent saw the first version: the new one comes marked as a change.
            text = f"{EDITED} {text}"
        talent = await self.tickets.user(ticket.talent_id)
        stored = await self.tickets.store_relay(
            ticket, self.expert, talent, text, source_key, attachment
        )
        if stored is None and self.again:
            stored = await self.tickets.undelivered_from(source_key)
        if stored is not None:
            await notifications.deliver(self.services, stored)
        return []

    async def case(self, ticket: Ticket, talent: User) -> list[OutMessage]:
        """The case card, then each photo or document the talent put on the ticket."""
        added = [
            message
            for message in await self.tickets.ticket_messages(ticket.id)
            if message.sender_id == talent.id
        ]
        files = []
        for message in added:
            attachment = restored(message.attachment)
            if attachment is not None:
                text = relay.from_talent(
                    self.services.templates, self.language, ticket, talent, message.text, attachment
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
        templates = self.services.templates
        earlier = await self.tickets.recent_questions(talent, ticket) + [
            relay.with_attachment(templates, self.language, m.text, restored(m.attachment))
            for m in added
        ]
        words = " ".join([ticket.question, *earlier])
        show = (lambda s: s) if ticket.contacts_shared else mask_contacts
        return self._say(
            "case_card",
            ticket=ticket.id,
            talent=relay.talent_label(ticket, talent),
            topic=ticket.topic or "-",
            talent_language=ticket.language,
            question=show(ticket.question),
            earlier=[show(m) for m in earlier],
            rejected=rejected,
            deadlines=deadlines(words),
            urgent=bool(deadlines(words)) or ticket.priority > 0,
            buttons=[Button(self._label("release"), Release(ticket.id).pack())],
        )

    def _help(self) -> OutMessage:
        return self._say("expert_help", limit=self._limit(), staff=self.STAFF)

    def _limit(self) -> int:
        return self.expert.max_open_tickets or self.services.settings.expert_max_open_tickets

    def _label(self, name: str, **context: object) -> str:
        return relay.label(self.services.templates, self.language, name, **context)

    def _say(
        self, template: str, buttons: list[Button] | None = None, **context: object
    ) -> OutMessage:
        text = self.services.templates.render(self.language, template, **context)
        return OutMessage(text=text, language=self.language, buttons=tuple(buttons or ()))

    COMMANDS: ClassVar[dict[str, DeskAction]] = {
        "queue": queue,
        "mine": mine,
        "claim": claim_command,
        "release": release_command,
        "close": close_command,
        "available": availability,
        "away": availability,
        "language": choose_language,
    }
    BUTTONS: ClassVar[dict[type[Payload], DeskAction]] = {
        Claim: claim_button,
        Release: release_button,
        Draft: draft,
    }
