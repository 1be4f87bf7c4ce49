"""The HTTP side, in the bot's own process and event loop (starlette + uvicorn): ``/healthz``.

As in PTB's ``customwebhookbot`` example, uvicorn runs as a task beside the bot and stops with it.
:func:`serving` is the project's one in-process server runner (the stand-ins in
:mod:`bot.standins` serve themselves with it too), and :func:`free_port` its one free-port finder.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import uvicorn
from sqlalchemy.exc import SQLAlchemyError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp

from bot.services import Services
from storage import ledger

log = logging.getLogger("paygbot.http")


def build_http_app(services: Services, routes: list[Route] | None = None) -> Starlette:
    """The HTTP routes: ``GET /healthz`` and whatever else the bot serves (payments)."""

    async def healthz(request: Request) -> JSONResponse:
        """The bot, the database and the queue, for a load balancer or a HEALTHCHECK."""
        now = services.clock.now()
        try:
            async with services.db.read() as session:
                depth, oldest = await ledger.queue_depth(session=session)
        except SQLAlchemyError as exc:
            log.error("healthz: the database cannot be read (%s)", type(exc).__name__)
            return JSONResponse({"status": "error", "database": "unavailable"}, status_code=503)
        return JSONResponse({
            "status": "ok",
            "bot": services.bot_username,
            "database": "ok",
            "erm": "sandbox" if services.sandbox else "configured",
            "queue": {
                "depth": depth,
                "oldest_seconds": round((now - oldest).total_seconds(), 1) if oldest else None,
            },
        })

    return Starlette(routes=[Route("/healthz", healthz), *(routes or [])])


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without its own signal handling: whoever embeds it decides when to stop."""

    def capture_signals(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()


@contextlib.asynccontextmanager
async def serving(app: ASGIApp, port: int, host: str = "0.0.0.0") -> AsyncIterator[int]:  # noqa: S104
    """Serve ``app`` on this event loop until the block ends; yields the port actually bound
    (``port=0`` picks a free one).

    The socket is bound here, so a port in use is an ``OSError`` the caller can report
    (uvicorn itself would exit the process). No signal handling and no logging set-up of its
    own: the process that embeds it keeps both.
    """
    # IPPROTO_TCP as asyncio would create it: its transports then set TCP_NODELAY on every accepted
    # connection (with proto 0 they do not, and Nagle's algorithm holds small answers back ~40 ms).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    # No access log: a request line can hold a secret (the M-Pesa path).
    config = uvicorn.Config(app, log_level="warning", log_config=None, ws="none", lifespan="off", access_log=False)
    server = _EmbeddedServer(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError(f"the HTTP side could not start on port {port}")
        if loop.time() > deadline:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            sock.close()
            raise RuntimeError(f"the HTTP side did not start on port {port}")
        await asyncio.sleep(0.01)  # uvicorn sets ``started`` and offers nothing to await
    bound: Any = server.servers[0].sockets[0].getsockname()
    try:
        yield int(bound[1])
    finally:
        server.should_exit = True
        await task
        sock.close()


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on right now, for a server that must be told its port before it
    starts (the demo's HTTP side, a ``paygbot`` process started by a test or a benchmark).

    Chosen at random below the kernel's ephemeral range: a port the kernel handed out would be
    its choice again for the next outgoing connection, which could take it before the server
    binds it (seen under parallel tests: "Address already in use"). From the system's randomness,
    not the ``random`` module's: Hypothesis seeds that one alike in every process running tests.
    """
    low = _ephemeral_low()
    for _ in range(200):
        port = _PICKER.randrange(_LOWEST_PICKED, low)
        with socket.socket() as probe:
            try:
                probe.bind((host, port))
            except OSError:
                continue
            return port
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


_LOWEST_PICKED = 10000
_PICKER = random.SystemRandom()


def _ephemeral_low() -> int:
    """The lowest port of Linux's ephemeral range (32768 on most machines and elsewhere)."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768
    return low if low > _LOWEST_PICKED + 1000 else 32768
