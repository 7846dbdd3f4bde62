"""The process's one web server (aiohttp): the channels' routes, `/healthz` and `/readyz`."""

import logging
import os
from typing import TYPE_CHECKING

from aiohttp import web
from sqlalchemy import text

from bot.channels.contract import ChannelError
from bot.config import Settings

if TYPE_CHECKING:
    from bot.runtime import Runtime

_log = logging.getLogger(__name__)
RUNTIME = web.AppKey("runtime", object)


def address(settings: Settings) -> str:
    """Where the web server listens, as host:port."""
    return f"{settings.web_listen}:{settings.web_port}"


def bound_address(runner: web.AppRunner) -> str:
    """Where the started server listens, as host:port (the port it was given, if 0 asked for
    any free one)."""
    host, port = runner.addresses[0][:2]
    return f"{host}:{port}"


def application(runtime: "Runtime") -> web.Application:
    """The web application: health checks and every channel's routes."""
    app = web.Application()
    app[RUNTIME] = runtime
    app.router.add_get("/healthz", _healthy)
    app.router.add_get("/readyz", _ready)
    for channel in runtime.channels:
        app.router.add_routes(channel.routes())
    return app


async def serve(runtime: "Runtime") -> web.AppRunner:
    """Start the web server; the runner that stops it. Raises `ChannelError` if the address
    cannot be listened on."""
    settings = runtime.settings
    runner = web.AppRunner(application(runtime), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, settings.web_listen, settings.web_port)
    try:
        await site.start()
    except OSError as error:
        await runner.cleanup()
        raise ChannelError(
            f"cannot listen on WEB_LISTEN:WEB_PORT ({address(settings)}): "
            f"{os.strerror(error.errno) if error.errno else error}"
        ) from None
    return runner


async def _healthy(_request: web.Request) -> web.Response:
    """The process is up and serving."""
    return web.json_response({"status": "ok"})


async def _ready(request: web.Request) -> web.Response:
    """The process can answer: its database is reachable and its knowledge base loaded."""
    runtime: Runtime = request.app[RUNTIME]  # type: ignore[assignment]
    services = runtime.services
    checks = {"knowledge": len(services.matcher.knowledge) > 0}
    try:
        async with services.store.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
        checks["database"] = True
    except Exception as error:
        _log.info("Not ready: the database cannot be reached (%s)", error)
        checks["database"] = False
    ready = all(checks.values())
    return web.json_response(
        {"status": "ready" if ready else "not ready", **checks}, status=200 if ready else 503
    )
