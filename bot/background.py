"""Work started in the background and finished before stopping: the engine's worker and the payments
service each keep one :class:`Background`."""

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
