"""The bot's transport to the Bot API (:class:`bot.telegram_http.AiohttpRequest`) where it can fail: a Bot API that
does not answer in time, or is not there at all, is PTB's ``TimedOut`` or ``NetworkError`` (which PTB's callers and
the bot's delivery retry), never aiohttp's own error. Its round trips (texts, pictures, documents, 429s, long
polling) are ``tests/test_botapi.py``'s, run through it as one of the ways PTB reaches the stand-in."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from telegram import Bot
from telegram.error import NetworkError, TimedOut

from bot.telegram_http import AiohttpRequest
from tests.support.proxy import recording_proxy
from tests.support.waiting import eventually

TOKEN = "123456789:AAH-test-token"


@dataclass
class Silent:
    """A server that takes requests and never answers."""

    url: str
    """Its base URL, as the Bot API's (``.../bot``)."""
    held: list[asyncio.StreamWriter] = field(default_factory=list)
    """The connections it holds."""


@pytest.fixture
async def silent_server() -> AsyncIterator[Silent]:
    silent = Silent("")

    async def hold(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        silent.held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    silent.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/bot"
    try:
        yield silent
    finally:
        for writer in silent.held:
            writer.close()
        server.close()
        await server.wait_closed()


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_a_bot_api_that_does_not_answer_in_time_is_timed_out(silent_server: Silent) -> None:
    requests = AiohttpRequest(read_timeout=0.2), AiohttpRequest()
    bot = Bot(TOKEN, base_url=silent_server.url, request=requests[0], get_updates_request=requests[1])
    try:
        with pytest.raises(TimedOut):
            await bot.initialize()  # getMe
    finally:
        await asyncio.gather(*(request.shutdown() for request in requests))


async def test_a_bot_api_that_is_not_there_is_a_network_error() -> None:
    requests = AiohttpRequest(), AiohttpRequest()
    bot = Bot(TOKEN, base_url=f"http://127.0.0.1:{closed_port()}/bot", request=requests[0],
              get_updates_request=requests[1])
    try:
        with pytest.raises(NetworkError, match="aiohttp.ClientConnectorError") as refused:
            await bot.initialize()  # getMe
    finally:
        await asyncio.gather(*(request.shutdown() for request in requests))
    assert not isinstance(refused.value, TimedOut)


async def test_a_request_before_initialize_or_after_shutdown_says_so() -> None:
    request = AiohttpRequest()
    with pytest.raises(RuntimeError, match="not initialized"):
        await request.do_request("http://127.0.0.1:1/bot/getMe", "POST")
    await request.initialize()
    await request.shutdown()
    with pytest.raises(RuntimeError, match="not initialized"):
        await request.do_request("http://127.0.0.1:1/bot/getMe", "POST")


async def test_the_bot_token_is_in_no_error(silent_server: Silent) -> None:
    """aiohttp's own messages may hold the URL (a connection not had in time does), and a Bot API URL holds the
    token: neither PTB's error nor anything chained to it shows it."""
    url = f"{silent_server.url}{TOKEN}/sendMessage"
    async with AiohttpRequest(connection_pool_size=1, read_timeout=5.0, connect_timeout=0.1, pool_timeout=0.1) as request:
        first = asyncio.create_task(request.post(url))  # holds the one connection: the next waits for it
        await eventually(lambda: silent_server.held, "the first request's connection")
        with pytest.raises(TimedOut, match="ConnectionTimeoutError") as failed:
            await request.post(url)
        first.cancel()
    errors = [failed.value]
    async with AiohttpRequest() as request:
        with pytest.raises(NetworkError) as refused:
            await request.post(f"http://127.0.0.1:{closed_port()}/bot{TOKEN}/sendMessage")
        errors.append(refused.value)
    for error in errors:
        chain: BaseException | None = error
        while chain is not None:
            assert "AAH-test-token" not in str(chain) and "AAH-test-token" not in repr(chain.args)
            chain = chain.__cause__ or chain.__context__


async def test_the_environments_proxy_is_used_unless_no_proxy_names_the_host(monkeypatch: pytest.MonkeyPatch) -> None:
    """As PTB's own transport (httpx) does: ``HTTP(S)_PROXY`` carries the requests, ``NO_PROXY`` exempts a host."""
    async with recording_proxy() as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        async with AiohttpRequest(connect_timeout=1.0) as request:
            with pytest.raises(NetworkError):
                await request.post("http://telegram.invalid/botX/getMe")
        assert proxy.asked == [b"POST http://telegram.invalid/botX/getMe HTTP/1.1\r\n"]
        monkeypatch.setenv("NO_PROXY", "telegram.invalid")
        async with AiohttpRequest(connect_timeout=1.0) as request:
            with pytest.raises(NetworkError):  # straight to the host, which does not exist
                await request.post("http://telegram.invalid/botX/getMe")
        assert len(proxy.asked) == 1
