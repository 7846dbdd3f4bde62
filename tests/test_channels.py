"""A channel written only against the channel contract plugs into the runtime: a talent on it
asks for an expert, an expert on it claims the ticket, and the two talk through the bot.

The channel here is a notebook: users write to it over HTTP on the runtime's own web server,
and what the bot says to each user is written down. It cannot edit a sent message, so the
outbox sends a withdrawn announcement again as a new message.
"""

import itertools
from collections import defaultdict
from collections.abc import Sequence

import aiohttp
from aiohttp import web

from bot.channels.contract import Capabilities
from bot.config import Settings
from bot.conversation import Inbound, OutMessage, Recipient
from bot.runtime import Runtime
from bot.services import Services
from tests.botapi import free_port, visible_text
from tests.conftest import running

QUESTION = "How long does a Chinese invention patent take to be granted?"


class Notebook:
    """A channel of users who write over HTTP and read what the bot wrote them."""

    name = "notebook"
    capabilities = Capabilities(edits=False, buttons=False, files=False, max_text=2000)

    def __init__(self) -> None:
        self.said: dict[str, list[OutMessage]] = defaultdict(list)
        self._runtime: Runtime | None = None
        self._keys = itertools.count(1)

    def routes(self) -> Sequence[web.RouteDef]:
        return [web.post("/notebook/{user}", self._on_post)]

    async def start(self, runtime: Runtime) -> str:
        self._runtime = runtime
        return "on the notebook"

    async def stop(self) -> None:
        self._runtime = None

    async def send(self, to: Recipient, message: OutMessage) -> str | None:
        self.said[to.external_id].append(message)
        return f"{to.external_id}:{len(self.said[to.external_id])}"

    async def edit(self, to: Recipient, ref: str, message: OutMessage) -> None:
        raise AssertionError("the outbox asked a channel that cannot edit to edit")

    async def _on_post(self, request: web.Request) -> web.Response:
        assert self._runtime is not None
        user, body = request.match_info["user"], await request.json()
        inbound = Inbound(
            channel=self.name,
            user_key=user,
            message_key=f"note:{next(self._keys)}",
            text=body.get("text", ""),
            button=body.get("button"),
        )
        replies = await self._runtime.answer(inbound)
        self.said[user].extend(replies)
        return web.json_response({"replies": len(replies)})

    def read(self, user: str) -> list[str]:
        """What the bot wrote to `user` since the last read, as they would read it."""
        messages, self.said[user] = self.said[user], []
        return [visible_text(message.text) for message in messages]


async def test_a_talent_and_an_expert_on_a_new_channel_talk_through_the_bot(
    services: Services,
) -> None:
    notebook, port = Notebook(), free_port()
    await services.tickets.enrol(notebook.name, "mei", "Mei", languages=["en"])
    settings = Settings(web_port=port)
    async with running(settings, services, notebook), aiohttp.ClientSession() as web_client:

        async def write(user: str, **note: str) -> None:
            url = f"http://127.0.0.1:{port}/notebook/{user}"
            async with web_client.post(url, json=note) as response:
                assert response.status == 200

        await write("alex", text=QUESTION)
        await write("alex", text="/expert")
        assert any("#T-1" in said for said in notebook.read("alex"))
        [announcement] = notebook.said["mei"]
        [claim] = announcement.buttons
        notebook.read("mei")

        await write("mei", button=claim.payload)
        # The announcement could not be edited: its new version came as a message of its own.
        yours, case_card = notebook.read("mei")
        assert "#T-1" in yours
        assert "is yours" in yours
        assert QUESTION in case_card
        [took] = notebook.read("alex")
        assert "Mei" in took

        await write("mei", text="About two to four years from filing.")
        [relayed] = notebook.read("alex")
        assert "Mei" in relayed
        assert "About two to four years from filing." in relayed
        await write("alex", text="Thank you!")
        [relayed] = notebook.read("mei")
        assert "Thank you!" in relayed


async def test_the_web_server_says_the_process_is_up_and_ready(services: Services) -> None:
    port = free_port()
    async with running(Settings(web_port=port), services), aiohttp.ClientSession() as client:
        async with client.get(f"http://127.0.0.1:{port}/healthz") as healthy:
            assert healthy.status == 200
            assert await healthy.json() == {"status": "ok"}
        async with client.get(f"http://127.0.0.1:{port}/readyz") as ready:
            assert ready.status == 200
            assert await ready.json() == {"status": "ready", "knowledge": True, "database": True}
