"""What staff can do besides what experts do at the desk: reload the knowledge base (/reload,
/reload force), see the questions the bot could not answer (/unanswered) and the figures
(/stats), enrol an expert (/addexpert), mark a ticket's talent as a key talent (/keytalent 12),
and give a ticket to another expert (/reassign 12 <their id>).
"""

import asyncio
from typing import ClassVar

from bot import notifications
from bot.channels import valid_user_id
from bot.conversation import Inbound, OutMessage
from bot.knowledge import TOPICS
from bot.reload import reload
from bot.reports import stats, stats_as_text, unanswered
from bot.services import Services
from bot.store.models import User
from handlers import Finish, Request
from handlers.expert import NAME_CHARS, Command, Desk, DeskAction


async def handle(request: Request) -> Finish:
    """Store a staff member's inbound; what it asks is done once that is committed."""
    return await StaffDesk.take(request)


async def recover(services: Services, member: User, inbound: Inbound) -> list[OutMessage]:
    """A staff member's inbound stored before a crash, done again if its replies never went
    out."""
    return await StaffDesk.redo(services, member, inbound)


class StaffDesk(Desk):
    """The desk as staff have it: every expert's command, and their own."""

    STAFF = True

    async def reload_knowledge(self, command: Command) -> list[OutMessage]:
        """Load the knowledge base again (even one that answers worse, with "force")."""
        force = command.argument == "force"
        outcome = await asyncio.to_thread(reload, self.services, force)
        await self.tickets.audit(
            self.expert, "reload", outcome.version, status=outcome.status, forced=force
        )
        return [self._say("kb_" + outcome.status, outcome=outcome)]

    async def show_unanswered(self, _command: Command) -> list[OutMessage]:
        gaps = await unanswered(self.services.store, self.services.matcher)
        return [self._say("unanswered", gaps=gaps[:10])]

    async def show_stats(self, _command: Command) -> list[OutMessage]:
        return [self._say("stats", text=stats_as_text(await stats(self.services.store)))]

    async def add_expert(self, command: Command) -> list[OutMessage]:
        """`/addexpert <their id> <name> [specialty,specialty] [en,zh]`: the id on the staff
        member's own channel."""
        words = command.argument.split()
        if (
            len(words) < 2
            or not valid_user_id(self.expert.channel, words[0])
            or len(words[1]) > NAME_CHARS
        ):
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

    async def key_talent(self, command: Command) -> list[OutMessage]:
        """The talent of a ticket is a key talent: their tickets come first."""
        if command.ticket is None:
            return [self._help()]
        marked = await self.tickets.mark_key_talent(command.ticket, self.expert)
        return [self._say("key_talent" if marked else "claim_missing", ticket=command.ticket)]

    async def reassign(self, command: Command) -> list[OutMessage]:
        """`/reassign 12 <expert's id>` gives #T-12 to that expert, who gets its case card."""
        ticket_id, external_id = command.ticket, command.rest
        if ticket_id is None:
            return [self._help()]
        to = await self.tickets.find(self.expert.channel, external_id)
        before = await self.tickets.get(ticket_id)
        if to is None or to.role not in ("expert", "staff") or before is None:
            return [self._say("reassign_usage")]
        if not await self.tickets.reassign(ticket_id, to, self.expert):
            return [self._say("claim_closed", ticket=ticket_id)]
        if before.expert_id is not None and before.expert_id != to.id:
            previous = await self.tickets.user(before.expert_id)
            if previous is not None:
                await notifications.tell(
                    self.services, previous, "reassigned_away", ticket=ticket_id
                )
        ticket = await self.tickets.get(ticket_id)
        talent = await self.tickets.user(before.talent_id)
        if ticket is not None and talent is not None:
            await notifications.taken(self.services, ticket, talent, to)
            for message in await Desk(self.services, to).case(ticket, talent):
                await notifications.send_to(self.services, to, message)
        return [self._say("reassigned", ticket=ticket_id, name=to.display_name or external_id)]

    COMMANDS: ClassVar[dict[str, DeskAction]] = Desk.COMMANDS | {
        "reload": reload_knowledge,
        "unanswered": show_unanswered,
        "stats": show_stats,
        "addexpert": add_expert,
        "keytalent": key_talent,
        "reassign": reassign,
    }
