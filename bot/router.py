"""Who handles an inbound: experts and staff have their desk, everyone else is a talent."""

from bot.conversation import Inbound, OutMessage
from bot.services import Services
from handlers import expert, talent


async def route(inbound: Inbound, services: Services) -> list[OutMessage]:
    """The replies to one inbound, from the handler for the sender's role."""
    role = await services.tickets.role_of(inbound.channel, inbound.user_key)
    if role in ("expert", "staff"):
        return await expert.handle(inbound, services)
    return await talent.handle(inbound, services)
