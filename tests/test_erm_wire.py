"""The ERM's wire (:mod:`bot.erm.wire`, :mod:`bot.erm.transport`) against real loopback servers.

Every call the bot may have in flight at once goes out at once, and the environment's proxy carries the calls, as
httpx's client would send them through it. Servers that misbehave show which failures say the request was not sent
(the ERM is unavailable: asked again later) and which say it may have been read (a code generation's outcome is
unknown: settled from the code history, never asked again). And what httpx's transport did besides carrying is
still done: the answer's encoding decoded, no cookie kept, no redirect followed."""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import httpx
import pytest

from bot.erm.errors import ErmOutcomeUnknown, ErmUnavailable
from bot.erm.transport import AiohttpTransport
from bot.erm.wire import GENERATIONS_AT_ONCE, READS_AT_ONCE, ErmHttp
from tests.support.proxy import recording_proxy
from tests.support.waiting import eventually

AT_ONCE = GENERATIONS_AT_ONCE + READS_AT_ONCE


Reply = Callable[[bytes, asyncio.StreamWriter], Awaitable[None]]


class Scripted:
    """A loopback HTTP/1.1 server: each request read whole (its head kept), then ``reply`` does what it will with
    the connection."""

    def __init__(self, reply: Reply) -> None:
        self.reply, self.heads = reply, []
        self.connections = 0

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                await reader.readexactly(length)
                self.heads.append(head)
                await self.reply(head, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@asynccontextmanager
async def scripted(reply: Reply) -> AsyncIterator[tuple[Scripted, str]]:
    server = Scripted(reply)
    listening = await asyncio.start_server(server.serve, "127.0.0.1", 0)
    try:
        yield server, f"http://127.0.0.1:{listening.sockets[0].getsockname()[1]}"
    finally:
        listening.close()


def answer(body: bytes, *headers: bytes, status: bytes = b"200 OK") -> bytes:
    return (b"HTTP/1.1 " + status + b"\r\nContent-Type: application/json\r\nContent-Length: " + str(len(body)).encode()
            + b"".join(b"\r\n" + header for header in headers) + b"\r\n\r\n" + body)


async def test_every_call_in_flight_goes_out_at_once() -> None:
    all_in = asyncio.Event()

    async def held(_head: bytes, writer: asyncio.StreamWriter) -> None:  # nothing answered until every call is in
        if len(server.heads) >= AT_ONCE:
            all_in.set()
        await all_in.wait()
        writer.write(answer(json.dumps({"ok": True}).encode()))
        await writer.drain()

    async with scripted(held) as (server, url), ErmHttp(url, "bot@example.com", "secret-password") as erm:
        calls = [erm._send("POST", f"/codes/{number}", json={"days": 1}, token=None, what="a code", generation=True)
                 for number in range(GENERATIONS_AT_ONCE)]
        calls += [erm._send("GET", f"/items/{number}", json=None, token=None, what="an item")
                  for number in range(READS_AT_ONCE)]
        answers = await asyncio.wait_for(asyncio.gather(*calls), timeout=20)  # only if all were in at once
    assert [response.status_code for response in answers] == [200] * AT_ONCE
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
                    await generation(erm)
            assert proxy.asked.pop() == b"POST http://erm.invalid/otp/daysCode/v2 HTTP/1.1\r\n"
            assert proxy.asked == []  # (a code generation is never sent twice)
            monkeypatch.delenv(variable)
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.setenv("NO_PROXY", "erm.invalid")
        async with ErmHttp("http://erm.invalid", "bot@example.com", "secret-password", timeout=2) as erm:
            with pytest.raises(ErmUnavailable):  # straight to the host, which does not exist
                await erm._send("GET", "/items/1", json=None, token=None, what="an item")
        assert proxy.asked == []


async def hang_up(_head: bytes, writer: asyncio.StreamWriter) -> None:
    writer.close()


async def stall(_head: bytes, _writer: asyncio.StreamWriter) -> None:
    await asyncio.sleep(30)


def generation(erm: ErmHttp) -> Awaitable[object]:
    return erm._send("POST", "/otp/daysCode/v2", json={"days": 1}, token=None, what="a code", generation=True)


async def test_no_server_at_the_address_is_unavailable() -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with ErmHttp(f"http://127.0.0.1:{port}", "bot@example.com", "secret-password", timeout=2) as erm:
        with pytest.raises(ErmUnavailable, match="could not be reached"):
            await generation(erm)


async def test_a_request_read_and_never_answered_has_an_unknown_outcome() -> None:
    for reply, words in ((hang_up, "cut off"), (stall, "no answer")):
        async with scripted(reply) as (server, url), ErmHttp(url, "bot@example.com", "secret-password",
                                                              timeout=0.5) as erm:
            with pytest.raises(ErmOutcomeUnknown, match=words):
                await generation(erm)
        assert [head.split(b"\r\n")[0] for head in server.heads] == [b"POST /otp/daysCode/v2 HTTP/1.1"]


async def test_a_request_that_found_no_free_connection_in_time_was_not_sent() -> None:
    """Two connections, both held by requests the server does not answer: a third request waits for one, and gives
    up having sent nothing (``ConnectTimeout``: the ERM client's "unavailable", asked again later)."""
    async with scripted(stall) as (server, url):
        transport = AiohttpTransport(connections=2)

        def request(timeout: float) -> httpx.Request:
            return httpx.Request("POST", url + "/otp/daysCode/v2", json={"days": 1},
                                 extensions={"timeout": httpx.Timeout(timeout).as_dict()})

        held = [asyncio.ensure_future(transport.handle_async_request(request(10))) for _ in range(2)]
        try:
            await eventually(lambda: len(server.heads) == 2, "both held requests at the server")
            with pytest.raises(httpx.ConnectTimeout):
                await transport.handle_async_request(request(0.3))
            assert len(server.heads) == 2
        finally:
            for call in held:
                call.cancel()
            await asyncio.gather(*held, return_exceptions=True)
            await transport.aclose()


async def test_a_gzipped_answer_is_read_and_no_cookie_or_redirect_is_followed() -> None:
    body = gzip.compress(json.dumps({"accessToken": "t"}).encode())

    async def reply(head: bytes, writer: asyncio.StreamWriter) -> None:
        if head.startswith(b"GET /moved"):
            writer.write(answer(b"", b"Location: /elsewhere", status=b"302 Found"))
        else:
            writer.write(answer(body, b"Content-Encoding: gzip", b"Set-Cookie: session=abc; Path=/"))
        await writer.drain()

    async with scripted(reply) as (server, url), ErmHttp(url, "bot@example.com", "secret-password", timeout=2) as erm:
        first = await erm._send("POST", "/auth/login", json={}, token=None, what="login")
        again = await erm._send("POST", "/auth/login", json={}, token=None, what="login")
        moved = await erm._send("GET", "/moved", json=None, token=None, what="an item")
    assert first.json() == again.json() == {"accessToken": "t"}
    assert moved.status_code == 302
    assert [head.split(b"\r\n")[0] for head in server.heads] == [
        b"POST /auth/login HTTP/1.1", b"POST /auth/login HTTP/1.1", b"GET /moved HTTP/1.1"]
    assert not any(b"\r\ncookie:" in head.lower() for head in server.heads)


async def test_a_connection_left_unused_past_its_expiry_is_not_taken_again() -> None:
    """A server closes idle connections (uvicorn after 5 s): one it has just closed, taken again before the loop
    read its FIN, would cut off the request sent on it. Past ``idle_expiry`` the client opens a new one."""

    async def ok(_head: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(answer(b"{}"))
        await writer.drain()

    async with scripted(ok) as (server, url):
        transport = AiohttpTransport(connections=4, idle_expiry=0.2)
        try:
            for pause in (0.0, 0.05, 0.4):  # the second goes on the same connection, the third on a new one
                await asyncio.sleep(pause)
                assert (await transport.handle_async_request(httpx.Request("GET", url + "/items/1"))).status_code == 200
            assert server.connections == 2
        finally:
            await transport.aclose()
