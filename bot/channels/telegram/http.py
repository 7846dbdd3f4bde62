"""How the bot talks HTTP to the Bot API: PTB's request interface over aiohttp.

PTB's own backend is httpx, whose requests cost the bot about four times the CPU of aiohttp's
when many are under way (`bench/http.py`); every reply is one, so under load the bot spends
about a fifth less CPU per question. PTB keeps what a request means (its parameters, the
answer's JSON, its errors); this module only carries it.
"""

import re
import urllib.parse
import urllib.request
from typing import Any

import aiohttp
from telegram.error import NetworkError, TimedOut
from telegram.request import BaseRequest, RequestData

# A bot token ("123456789:AAE…") where it stands in a request's URL: some errors quote the URL.
_TOKEN = re.compile(r"\d+:[\w-]{20,}")


class AiohttpRequest(BaseRequest):
    """PTB's `BaseRequest` over one aiohttp session, with up to `connections` kept open.

    The timeouts are PTB's (connect, read, write, pool), with its defaults; None is no limit.
    aiohttp has no write timeout of its own, so instead a request as a whole may take no
    longer than its four timeouts together (unless one of them is None). Proxies are taken from
    the environment (`HTTPS_PROXY`, `NO_PROXY` …) when the session opens, as PTB's httpx
    backend takes them.
    """

    def __init__(
        self,
        connections: int = 256,
        read_timeout: float | None = 5.0,
        write_timeout: float | None = 5.0,
        connect_timeout: float | None = 5.0,
        pool_timeout: float | None = 1.0,
        media_write_timeout: float | None = 20.0,
    ) -> None:
        self._connections = connections
        self._timeouts = {
            "read": read_timeout,
            "write": write_timeout,
            "connect": connect_timeout,
            "pool": pool_timeout,
        }
        self._media_write_timeout = media_write_timeout
        self._session: aiohttp.ClientSession | None = None
        self._proxies: dict[str, str] = {}

    @property
    def read_timeout(self) -> float | None:
        """The default read timeout (PTB adds a long poll's own wait to it)."""
        return self._timeouts["read"]

    async def initialize(self) -> None:
        """Open the session (inside the running event loop, as aiohttp requires)."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._connections),
                headers={"User-Agent": self.USER_AGENT},
            )
            # Read once: aiohttp's own `trust_env` reads the environment and ~/.netrc again for
            # every request, in worker threads, which costs more than the request itself.
            self._proxies = urllib.request.getproxies_environment()

    async def shutdown(self) -> None:
        """Close the session and its connections."""
        if self._session is not None and not self._session.closed:
            await self._session.close()

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: object = BaseRequest.DEFAULT_NONE,
        write_timeout: object = BaseRequest.DEFAULT_NONE,
        connect_timeout: object = BaseRequest.DEFAULT_NONE,
        pool_timeout: object = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        """Send one request; the answer's status code and body. Each timeout is in seconds,
        None for none, or `DEFAULT_NONE` for this object's own."""
        if self._session is None or self._session.closed:
            raise RuntimeError("This AiohttpRequest is not initialized!")
        files = request_data.multipart_data if request_data else {}
        if write_timeout is BaseRequest.DEFAULT_NONE:
            write_timeout = self._media_write_timeout if files else self._timeouts["write"]
        given = {
            "read": read_timeout,
            "write": write_timeout,
            "connect": connect_timeout,
            "pool": pool_timeout,
        }
        timeouts = {
            phase: self._timeouts[phase] if value is BaseRequest.DEFAULT_NONE else value
            for phase, value in given.items()
        }
        try:
            async with self._session.request(
                method,
                url,
                **_body(request_data, files),
                timeout=_whole(timeouts),
                proxy=self._proxy_for(url),
            ) as response:
                return response.status, await response.read()
        except TimeoutError as error:
            raise TimedOut from error
        except aiohttp.ClientError as error:
            # Not chained: the cause's own message may quote the token, and a log would show it.
            said = _TOKEN.sub("<token>", f"aiohttp.{type(error).__name__}: {error}")
            raise NetworkError(said) from None

    def _proxy_for(self, url: str) -> str | None:
        """The proxy the environment names for `url`, unless its host is exempt."""
        parts = urllib.parse.urlsplit(url)
        proxy = self._proxies.get(parts.scheme)
        if proxy is None:
            return None
        # The standard library's own NO_PROXY rule, as `urllib.request` applies it; typeshed
        # leaves it out.
        exempt = urllib.request.proxy_bypass_environment(  # type: ignore[attr-defined]
            parts.hostname or "", self._proxies
        )
        return None if exempt else proxy


def _body(request_data: RequestData | None, files: dict[str, Any]) -> dict[str, Any]:
    """The parameters as aiohttp sends them: as JSON (which the Bot API takes, and which
    costs far less to make than a URL-encoded form), or as a multipart form if a file goes
    with them."""
    if request_data is None:
        return {}
    if not files:
        return {"json": request_data.parameters}
    form = aiohttp.FormData()
    for name, value in request_data.json_parameters.items():
        form.add_field(name, value)
    for name, (filename, content, mime_type) in files.items():
        form.add_field(name, content, filename=filename, content_type=mime_type)
    return {"data": form}


def _whole(timeouts: dict[str, Any]) -> aiohttp.ClientTimeout:
    """aiohttp's timeouts from PTB's (each in seconds, or None)."""
    pool, connect, read = timeouts["pool"], timeouts["connect"], timeouts["read"]
    return aiohttp.ClientTimeout(
        total=None if None in timeouts.values() else sum(timeouts.values()),
        # aiohttp's "connect" covers waiting for a pooled connection and making a new one.
        connect=pool + connect if pool is not None and connect is not None else None,
        sock_connect=connect,
        sock_read=read,
    )
