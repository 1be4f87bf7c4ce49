"""A proxy on loopback that only listens: it keeps the request line of each request sent through it and hangs
up, so that a test sees whether, and where, a client went through the environment's proxy."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field


@dataclass
class RecordingProxy:
    url: str
    asked: list[bytes] = field(default_factory=list)
    """The request line of each request that came through (``GET http://host/path HTTP/1.1``)."""


@asynccontextmanager
async def recording_proxy() -> AsyncIterator[RecordingProxy]:
    """A :class:`RecordingProxy` listening until the block ends."""
    proxy = RecordingProxy("")

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        proxy.asked.append(await reader.readline())
        writer.close()

    server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    proxy.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    try:
        yield proxy
    finally:
        server.close()
        await server.wait_closed()
