"""Between a talent and their expert: what each sees of the other and of the ticket.

Talents are pseudonymous: an expert sees "Talent #T-12" (or a first name the talent agreed to
show), never their channel id or username, and their contact details masked until they agree
to share them. An expert holding several tickets starts a message with the ticket's number.
"""

import re
import unicodedata
from dataclasses import dataclass

from markupsafe import Markup

from bot.conversation import Attachment
from bot.languages import Language
from bot.redact import deadlines, mask_contacts
from bot.store.models import Ticket, User
from bot.templates import Templates
from bot.text import record_number

# A message to one of several tickets starts with its number: "#T-12 …", "T12: …".
# (Full-width too, as a Chinese keyboard types it: "＃Ｔ１２".)
_TICKET_PREFIX = re.compile(
    r"^([#＃]?)[TＴ][-－]?([0-9０-９]+)[\s:,，：]+(.+)$", re.IGNORECASE | re.DOTALL
)


@dataclass(frozen=True)
class Addressed:
    """An expert's message that starts with a ticket's number."""

    ticket: int | None
    text: str
    """The message without the number."""
    marked: bool
    """Written "#T-12": surely a ticket's number ("T-2 was a similar case" may not be)."""


def addressed(text: str) -> Addressed | None:
    """The ticket an expert's message names at its start, if it names one."""
    found = _TICKET_PREFIX.match(text)
    if found is None:
        return None
    ticket = record_number(unicodedata.normalize("NFKC", found.group(2)))
    return Addressed(ticket, found.group(3).strip(), bool(found.group(1)))


def summary(ticket: Ticket) -> dict[str, object]:
    """What a ticket is, for experts' lists and announcements: never who asked."""
    return {
        "ticket": ticket.id,
        "topic": ticket.topic or "-",
        "talent_language": ticket.language,
        "question": mask_contacts(ticket.question)[:300],
        "urgent": ticket.priority > 0 or bool(deadlines(ticket.question)),
    }


def talent_label(ticket: Ticket, talent: User) -> str:
    """The talent as their expert knows them: by ticket, with a first name they let show."""
    if talent.share_name and talent.display_name:
        return f"{talent.display_name} (#T-{ticket.id})"
    return f"#T-{ticket.id}"


def expert_label(templates: Templates, language: Language, expert: User) -> str:
    """The expert as talents know them: a name and what they know about."""
    specialties = ", ".join(
        label(templates, language, "specialty_" + s.replace("-", "_")) for s in expert.specialties
    )
    return label(
        templates, language, "expert_name", name=expert.display_name or "", specialties=specialties
    )


def from_talent(
    templates: Templates,
    language: Language,
    ticket: Ticket,
    talent: User,
    text: str,
    attachment: Attachment | None,
) -> str:
    """What the talent of `ticket` said, as an expert reads it: contacts masked until the
    talent agrees to share them."""
    words = with_attachment(templates, language, text, attachment)
    return templates.render(
        language,
        "relay_to_expert",
        talent=talent_label(ticket, talent),
        message=words if ticket.contacts_shared else mask_contacts(words),
    )


def from_expert(
    templates: Templates, language: Language, expert: User, text: str, attachment: Attachment | None
) -> str:
    """What an expert said, as their talent reads it."""
    return templates.render(
        language,
        "relay_to_talent",
        expert=expert_label(templates, language, expert),
        message=with_attachment(templates, language, text, attachment),
    )


def with_attachment(
    templates: Templates, language: Language, text: str, attachment: Attachment | None
) -> str:
    """A relayed message's words, marked "📎 photo" when a photo or document comes with it."""
    if attachment is None:
        return text
    return f"{label(templates, language, 'attached', kind=attachment.kind)} {text}".rstrip()


def label(templates: Templates, language: Language, name: str, /, **context: object) -> str:
    """A label from the templates as plain text (a button's, or part of a sentence that is
    escaped as a whole)."""
    return Markup(templates.label(language, name, **context)).unescape()
