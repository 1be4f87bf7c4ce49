"""The bot's transport to Telegram's Bot API: PTB's requests carried by aiohttp rather than httpx.

Every code message, and every long poll that brings an agent's ``/days``, is one request here. Through PTB's
own ``HTTPXRequest`` a ``sendMessage`` cost ~1.25 ms of CPU on this project's machines (httpx, httpcore, h11 and
anyio, each a layer in Python), through this one ~0.5 ms: aiohttp's parser and connection pool are C and plain
asyncio. What PTB asks of a transport (:class:`telegram.request.BaseRequest`) is small: send the method's form, or
its multipart form when it carries a file, within the timeouts it gives, and hand back the status and the body;
PTB reads the answer, 429s and all. The ERM keeps httpx (:mod:`bot.erm`): one request per code, where Telegram
has two (the update's long poll and the code's message).
"""

from __future__ import annotations

import re
import urllib.parse
from typing import Any

import aiohttp
from pydantic import SecretStr
from telegram.error import NetworkError, TelegramError, TimedOut
from telegram.request import BaseRequest, RequestData

from bot.remote import environment_proxy, scrub

_TOKEN_IN_URL = re.compile(r"/bot([^/]+)/")

POOL_TIMEOUT = 1.0
"""As PTB's own: a request that finds every connection busy for this long fails (it is retried as any)."""


class AiohttpRequest(BaseRequest):
    """PTB's transport over one :class:`aiohttp.ClientSession`, with PTB's default pool size and timeouts.

    aiohttp has no write timeout of its own: a request's write counts against the read timeout, which starts
    when the connection is had (``sock_read``); the connect and pool timeouts are aiohttp's ``sock_connect`` and
    ``connect`` (which covers waiting for the pool)."""

    def __init__(
        self,
        connection_pool_size: int = 256,
        read_timeout: float | None = 5.0,
        connect_timeout: float | None = 5.0,
        pool_timeout: float | None = POOL_TIMEOUT,
    ) -> None:
        self._pool_size = connection_pool_size
        self._read_timeout, self._connect_timeout, self._pool_timeout = read_timeout, connect_timeout, pool_timeout
        self._session: aiohttp.ClientSession | None = None
        self._proxies: dict[tuple[str, str], str | None] = {}
        self._timeouts: dict[tuple[float | None, ...], aiohttp.ClientTimeout] = {}

    @property
    def read_timeout(self) -> float | None:
        return self._read_timeout

    async def initialize(self) -> None:
        if self._session is None or self._session.closed:
            # No cookies, and the environment's proxy looked up once per host (``trust_env`` would look it up, and
            # read ~/.netrc on a thread, for every request).
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._pool_size, limit_per_host=self._pool_size),
                headers={"User-Agent": self.USER_AGENT}, cookie_jar=aiohttp.DummyCookieJar(),
            )

    async def shutdown(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: Any = BaseRequest.DEFAULT_NONE,
        write_timeout: Any = BaseRequest.DEFAULT_NONE,
        connect_timeout: Any = BaseRequest.DEFAULT_NONE,
        pool_timeout: Any = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        """See :meth:`telegram.request.BaseRequest.do_request` (a timeout left as PTB's ``DEFAULT_NONE``: ours)."""
        if self._session is None or self._session.closed:
            raise RuntimeError("This AiohttpRequest is not initialized!")
        read = _given(read_timeout, self._read_timeout)
        connect = _given(connect_timeout, self._connect_timeout)
        pool = _given(pool_timeout, self._pool_timeout)
        write = _given(write_timeout, None)
        timeout = self._timeouts.get((read, connect, pool, write))
        if timeout is None:
            timeout = self._timeouts[read, connect, pool, write] = aiohttp.ClientTimeout(
                total=None,
                connect=None if connect is None or pool is None else connect + pool,
                sock_connect=connect,
                sock_read=None if read is None else read + (write or 0.0),
            )
        data, headers = _body(request_data)
        # aiohttp's errors hold the URL, and a Bot API URL the bot token: PTB's error says what failed without it,
        # and is raised after the ``except``, so that the original is not even its context.
        failure: TelegramError
        try:
            async with self._session.request(method, url, data=data, headers=headers, timeout=timeout,
                                             proxy=self._proxy(url)) as response:
                return response.status, await response.read()
        except TimeoutError as error:  # aiohttp's timeouts (asyncio's TimeoutError is the built-in one)
            failure = TimedOut(f"Timed out: aiohttp.{error.__class__.__name__}")
        except aiohttp.ClientError as error:
            failure = NetworkError(f"aiohttp.{error.__class__.__name__}: {_without_token(str(error), url)}")
        raise failure

    def _proxy(self, url: str) -> str | None:
        """The proxy the environment names for ``url``'s scheme and host, if any (looked up once for each)."""
        parts = urllib.parse.urlsplit(url)
        key = (parts.scheme, parts.hostname or "")
        if key not in self._proxies:
            self._proxies[key] = environment_proxy(url)
        return self._proxies[key]


def _without_token(text: str, url: str) -> str:
    """``text`` without the bot token that the Bot API's URLs carry (``/bot<token>/method``), plain or quoted."""
    token = _TOKEN_IN_URL.search(url)
    if token is None:
        return text
    forms = (token.group(1), urllib.parse.quote(token.group(1)), urllib.parse.quote(token.group(1), safe=""))
    return scrub(text, *(SecretStr(form) for form in forms))


def _given(timeout: Any, default: float | None) -> float | None:
    return default if timeout is BaseRequest.DEFAULT_NONE else timeout


_FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def _body(request_data: RequestData | None) -> tuple[aiohttp.FormData | bytes | None, dict[str, str] | None]:
    """The method's parameters as a form (each value JSON, as PTB encodes it), and its headers; with a file, a
    multipart form. The plain form is encoded here: through aiohttp's ``FormData`` it cost a fifth of a request."""
    if request_data is None:
        return None, None
    fields = request_data.json_parameters
    files = request_data.multipart_data
    if not files:
        return urllib.parse.urlencode(fields).encode(), _FORM
    form = aiohttp.FormData()
    for name, value in fields.items():
        form.add_field(name, value)
    for name, (filename, content, mimetype) in files.items():
        form.add_field(name, content, filename=filename, content_type=mimetype)
    return form, None
