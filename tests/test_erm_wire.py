"""The ERM's wire. Its connections are split into small pools (``bot.erm.wire.CONNECTIONS_PER_POOL``: httpcore's placing of a
request costs in proportion to its pool's size, and more), yet every call the bot may have in flight at once goes out
at once: none waits for a connection of one pool while another pool has room. And the environment's proxy carries
the calls, as httpx's client would send them through it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest

from bot.erm.errors import ErmOutcomeUnknown, ErmUnavailable
from bot.erm.wire import CONNECTIONS_PER_POOL, GENERATIONS_AT_ONCE, READS_AT_ONCE, ErmHttp
from tests.support.proxy import recording_proxy

AT_ONCE = GENERATIONS_AT_ONCE + READS_AT_ONCE


class Held:
    """A loopback HTTP server that answers nothing until ``AT_ONCE`` requests are in, then all of them."""

    def __init__(self) -> None:
        self.connections = 0
        self.requests = 0
        self.all_in = asyncio.Event()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                await reader.readexactly(length)
                self.requests += 1
                if self.requests >= AT_ONCE:
                    self.all_in.set()
                await self.all_in.wait()
                body = json.dumps({"ok": True}).encode()
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                             + str(len(body)).encode() + b"\r\n\r\n" + body)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def held() -> AsyncIterator[tuple[Held, str]]:
    server = Held()
    listening = await asyncio.start_server(server.serve, "127.0.0.1", 0)
    try:
        yield server, f"http://127.0.0.1:{listening.sockets[0].getsockname()[1]}"
    finally:
        listening.close()


async def test_every_call_in_flight_goes_out_at_once_over_the_pools(held: tuple[Held, str]) -> None:
    server, url = held
    assert AT_ONCE > CONNECTIONS_PER_POOL  # (else there is one pool, and nothing to show)
    async with ErmHttp(url, "bot@example.com", "secret-password") as erm:
        calls = [erm._send("POST", f"/codes/{number}", json={"days": 1}, token=None, what="a code", generation=True)
                 for number in range(GENERATIONS_AT_ONCE)]
        calls += [erm._send("GET", f"/items/{number}", json=None, token=None, what="an item")
                  for number in range(READS_AT_ONCE)]
        answers = await asyncio.wait_for(asyncio.gather(*calls), timeout=20)  # only if all were in at once
    assert [answer.status_code for answer in answers] == [200] * AT_ONCE
    assert server.connections == AT_ONCE


async def test_the_environments_proxy_carries_the_calls_unless_no_proxy_names_the_host(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """``HTTP_PROXY`` (or ``ALL_PROXY``) is where the calls go, as httpx's client would send them; ``NO_PROXY``
    exempts the ERM's host."""
    for variable in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(variable, raising=False)
    async with recording_proxy() as proxy:
        for variable in ("HTTP_PROXY", "ALL_PROXY"):
            monkeypatch.setenv(variable, proxy.url)
            async with ErmHttp("http://erm.invalid", "bot@example.com", "secret-password", timeout=2) as erm:
                with pytest.raises(ErmOutcomeUnknown, match="cut off"):  # the proxy hangs up once it has the line
                    await erm._send("GET", "/items/1", json=None, token=None, what="an item")
            assert proxy.asked.pop() == b"GET http://erm.invalid/items/1 HTTP/1.1\r\n"
            monkeypatch.delenv(variable)
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.setenv("NO_PROXY", "erm.invalid")
        async with ErmHttp("http://erm.invalid", "bot@example.com", "secret-password", timeout=2) as erm:
            with pytest.raises(ErmUnavailable):  # straight to the host, which does not exist
                await erm._send("GET", "/items/1", json=None, token=None, what="an item")
        assert proxy.asked == []
