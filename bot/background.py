"""Work started in the background and finished before stopping: the engine's worker and the payments
service each keep one :class:`Background`. Also :class:`TurnPlaces`, a few places at once for work that comes
in crowds."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any


class Background:
    """Tasks started and not awaited: a failure is logged, never lost; ``close`` lets them all finish."""

    def __init__(self, log: logging.Logger, what: str) -> None:
        self.log, self.what = log, what
        self.tasks: set[asyncio.Task[Any]] = set()
        self.closed = False

    def spawn(self, work: Awaitable[Any], then: Callable[[], None] | None = None) -> None:
        """Run ``work``; ``then`` runs when it ends, however it ends."""
        task: asyncio.Task[Any] = asyncio.ensure_future(work)
        self.tasks.add(task)

        def done(finished: asyncio.Task[Any]) -> None:
            self.tasks.discard(finished)
            if then is not None:
                then()
            if not finished.cancelled() and finished.exception() is not None:
                self.log.error("%s task failed", self.what, exc_info=finished.exception())

        task.add_done_callback(done)

    async def drain(self) -> None:
        """Wait until every task started so far, and the ones they started, has finished."""
        while self.tasks:
            await asyncio.gather(*list(self.tasks), return_exceptions=True)

    async def close(self) -> None:
        """Start nothing more (callers check ``closed``); let what is in hand finish."""
        self.closed = True
        await self.drain()


class TurnPlaces:
    """At most ``places`` holders at once; with ``hold_a_turn`` each keeps its place over one more turn of the
    event loop after its work. On SQLite the ledger's transactions run on the loop's thread without giving it
    up: a place freed at once would be taken again at once, and a crowd (a hundred chats' requests, a burst of
    payments worked off behind their webhooks) would hold the loop back to back while everything else waits."""

    def __init__(self, places: int, *, hold_a_turn: bool) -> None:
        self._places, self._hold_a_turn = asyncio.Semaphore(places), hold_a_turn

    async def __aenter__(self) -> None:
        await self._places.acquire()

    async def __aexit__(self, kind: type[BaseException] | None, *_: object) -> None:
        try:
            if kind is None and self._hold_a_turn:
                await asyncio.sleep(0)
        finally:
            self._places.release()
