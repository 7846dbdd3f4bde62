"""Who handles an inbound: the sender is looked up once, and their role picks the handler.

Everything a talent does is decided in the transaction that looks them up, which is nearly
every inbound; experts and staff have their desk, which stores the inbound there and does the
rest once it is committed.
"""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bot.conversation import Inbound, OutMessage
from bot.languages import language_from_code
from bot.services import Services
from bot.store import DuplicateInbound
from bot.store.models import User
from bot.text import clean, written_language
from handlers import Finish, Request, expert, staff, talent


@dataclass(frozen=True)
class Role:
    """How the inbounds of one kind of user are handled."""

    handle: Callable[[Request], Awaitable[Finish]]
    """Store the inbound in the request's transaction and decide what to do."""
    recover: Callable[[Services, User, Inbound], Awaitable[list[OutMessage]]]
    """What a recovered inbound, stored before, is still owed (see `Inbound.recovered`)."""


ROLES: dict[str, Role] = {
    "talent": Role(talent.handle, talent.recover),
    "expert": Role(expert.handle, expert.recover),
    "staff": Role(staff.handle, staff.recover),
}


async def route(inbound: Inbound, services: Services) -> list[OutMessage]:
    """The replies to one inbound, from the handler for the sender's role; none if it was
    handled before (unless it is recovered and still owed them)."""
    text = clean(inbound.text)
    # A command's own letters say nothing about the language the user reads.
    written = None if text.startswith("/") else written_language(text)
    try:
        async with services.store.transaction() as tx:
            # Whoever writes first is a talent: their language is the one they are known to
            # read, else the one they write in.
            first_language = (
                language_from_code(inbound.language_hint)
                or written
                or services.settings.default_language
            )
            user = await tx.user(
                inbound.channel, inbound.user_key, first_language, inbound.display_name
            )
            role = ROLES[user.role]
            finish = await role.handle(Request(services, tx, user, inbound, text, written))
    except DuplicateInbound:
        return await role.recover(services, user, inbound) if inbound.recovered else []
    return await finish()
