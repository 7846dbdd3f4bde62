"""The outbox: whatever a handler wants said leaves here, routed to the recipient's channel."""

import logging
from collections.abc import Iterable

from bot.channels.contract import Channel
from bot.conversation import OutMessage, Recipient, Unreachable

_log = logging.getLogger(__name__)


class Outbox:
    """Sends to any user on their own channel, among the channels this process runs."""

    def __init__(self, channels: Iterable[Channel] = ()) -> None:
        self._channels: dict[str, Channel] = {}
        for channel in channels:
            self.add(channel)

    def add(self, channel: Channel) -> None:
        """Reach the users of `channel` through it from now on."""
        self._channels[channel.name] = channel

    def channel(self, name: str) -> Channel | None:
        """The running channel of that name, if this process runs it."""
        return self._channels.get(name)

    async def send(self, to: Recipient, message: OutMessage) -> str | None:
        """Send a message; the channel's reference to it, if it has one. Raises
        `Unreachable` if the recipient's channel is not running here or refuses them."""
        return await self._channel_of(to).send(to, message)

    async def edit(self, to: Recipient, ref: str, message: OutMessage) -> None:
        """Replace a message sent before; where the channel cannot edit, the new version goes
        out as a message of its own."""
        channel = self._channel_of(to)
        if channel.capabilities.edits:
            await channel.edit(to, ref, message)
        else:
            await channel.send(to, message)

    def _channel_of(self, to: Recipient) -> Channel:
        channel = self._channels.get(to.channel)
        if channel is None:
            raise Unreachable(f"no {to.channel} channel runs in this process")
        return channel
