"""The ERM's HTTP connections: httpx's requests and answers, carried by aiohttp's client.

httpx stays the ERM client's interface: :class:`~bot.erm.wire.ErmHttp` builds an ``httpx.Request``, reads an
``httpx.Response`` and its failures are httpx's exceptions (tests hand it an ``httpx.MockTransport``). Only the
carrying is aiohttp's, as for the Bot API (:mod:`bot.telegram_http`): httpx's own transport (httpcore on anyio,
h11's parser in Python, a pool that looks through every connection to place each request) cost about twice the
CPU per call.

What matters most here is which failures mean "not sent": a code generation that may have reached the ERM is
settled from its code history, never asked again. Only a connection that could not be made, or not had from the
pool in time, is "not sent" (``httpx.ConnectError``, ``ConnectTimeout``); anything once a connection was had may
have reached the ERM (``ReadTimeout``, ``RemoteProtocolError``, ``ReadError``, ``ProxyError``). aiohttp sends an
idempotent request (a ``GET``: a read) once more when a kept-alive connection drops it, as RFC 9112 allows; a
``POST``, which every code generation is, never.
"""

from __future__ import annotations

import functools
import ssl

import aiohttp
import httpx

__all__ = ["AiohttpTransport"]

IDLE_EXPIRY = 4.0
"""Seconds a connection may wait unused before it is closed rather than used again (aiohttp's default: 15). Servers
close idle connections too (uvicorn after 5 s, as httpx's client did after 5): one the server has just closed,
taken again before a busy loop has read the server's FIN, cuts off the request sent on it, and a code generation
cut off has an unknown outcome, settled from the history only after a wait. Seen once in ``bench/replicas.py``
with 15 s."""


@functools.cache
def _tls() -> ssl.SSLContext:
    """The certificates httpx trusts (certifi's), in one context for every connection: each costs ~40 ms to make."""
    return httpx.create_ssl_context()


class AiohttpTransport(httpx.AsyncBaseTransport):
    """Up to ``connections`` kept-alive connections, through ``proxy`` if given. No cookies are kept and no
    redirect is followed (as httpx's transport: the ERM uses neither), and the answer's body is left encoded for
    httpx to decode. The session is made at the first request, on the loop that makes it."""

    def __init__(self, *, connections: int, proxy: str | None = None, idle_expiry: float = IDLE_EXPIRY) -> None:
        self.connections, self.proxy, self.idle_expiry = connections, proxy, idle_expiry
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(limit=self.connections, limit_per_host=0, ssl=_tls(),
                                         keepalive_timeout=self.idle_expiry)
        self._session = aiohttp.ClientSession(
            connector=connector, cookie_jar=aiohttp.DummyCookieJar(), auto_decompress=False,
            skip_auto_headers=("Accept", "Accept-Encoding", "User-Agent", "Content-Type"),
        )
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        session = self._session or self._open()
        timeout = request.extensions.get("timeout", {})
        limits = aiohttp.ClientTimeout(total=None, connect=timeout.get("pool"), sock_connect=timeout.get("connect"),
                                       sock_read=timeout.get("read"))
        headers = [(name.decode("latin-1"), value.decode("latin-1")) for name, value in request.headers.raw]
        try:
            async with session.request(request.method, str(request.url), headers=headers,
                                       data=request.content or None, proxy=self.proxy, allow_redirects=False,
                                       timeout=limits) as answer:
                body = await answer.read()
        except aiohttp.ConnectionTimeoutError as exc:  # no connection in time (a new one, or one from the pool)
            raise httpx.ConnectTimeout(str(exc), request=request) from exc
        except aiohttp.ClientConnectorError as exc:  # the connection (or the proxy's, or TLS) could not be made
            raise httpx.ConnectError(str(exc), request=request) from exc
        except aiohttp.InvalidURL as exc:
            raise httpx.UnsupportedProtocol(str(exc), request=request) from exc
        except aiohttp.ServerTimeoutError as exc:  # sent, and no answer in time
            raise httpx.ReadTimeout(str(exc), request=request) from exc
        except aiohttp.ClientHttpProxyError as exc:
            raise httpx.ProxyError(str(exc), request=request) from exc
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientResponseError, aiohttp.ClientPayloadError) as exc:
            raise httpx.RemoteProtocolError(str(exc) or type(exc).__name__, request=request) from exc
        except (aiohttp.ClientError, OSError) as exc:  # anything else once connected: it may have been read
            raise httpx.ReadError(str(exc) or type(exc).__name__, request=request) from exc
        return httpx.Response(answer.status, headers=answer.raw_headers, content=body, request=request,
                              extensions={"http_version": f"HTTP/{answer.version.major}.{answer.version.minor}".encode()})

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
