"""Who handles an inbound: experts and staff have their desk, everyone else is a talent."""

from bot.conversation import Inbound, OutMessage
from bot.services import Services
from handlers import expert, talent


async def route(inbound: Inbound, services: Services) -> list[OutMessage]:
    """The replies to one inbound, from the handler for the sender's role. Nearly every
    inbound is a talent's: the talent's turn looks the sender up as it begins, and hands
    experts and staff back, rather than every inbound paying for a lookup of its own."""
    replies = await talent.handle(inbound, services)
    return replies if replies is not None else await expert.handle(inbound, services)
