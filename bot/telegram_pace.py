"""Telegram's flood limits kept by all the processes on one PostgreSQL ledger together.

PTB's ``AIORateLimiter`` keeps the limits in one process's memory: three replicas would each send 30
messages a second. :class:`SharedRateLimiter` reserves each message's turn in the ledger instead (one row per
scope, its "theoretical arrival time", as in the generic cell rate algorithm): its chat's turn — one a
second, a few at once allowed — then a slot of the bot as a whole from then on, 27 a second. The
database's clock decides, so replicas' clocks need not agree. A 429 still waits its ``retry_after`` and is
tried again, as with PTB's limiter. One process on SQLite uses PTB's own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from datetime import datetime, timedelta
from typing import Any

from telegram.error import RetryAfter
from telegram.ext import BaseRateLimiter

from storage import ledger
from storage.db import Database

log = logging.getLogger("paygbot.telegram")

BOT_INTERVAL = 1 / 27
"""Seconds between two messages of the bot, whichever process sends them: at most 28 in any second, two
short of Telegram's 30, for the jitter between a slot and the moment its message reaches Telegram."""
BOT_BURST = 0.0
"""How far ahead of its slot a message may go (none: a burst at the start of a second is what Telegram counts)."""
CHAT_INTERVAL = 1.0
"""About one message a second to one chat, as Telegram asks."""
CHAT_BURST = 4.0
"""...with up to five at once (an answer, its code, a notice)."""
GROUP_INTERVAL = 3.0
"""Groups: 20 messages a minute."""
MAX_RETRIES = 10
LATE = 0.05
"""Seconds a message may go after its turn; later, it takes a new turn."""
MAX_LATE_TURNS = 5


class SharedRateLimiter(BaseRateLimiter[int]):
    """PTB's rate limiter interface, with the limits in the ledger (see the module)."""

    def __init__(self, *, max_retries: int = MAX_RETRIES) -> None:
        self.db: Database | None = None
        self.max_retries = max_retries

    def attach(self, db: Database) -> None:
        """The ledger to keep the limits in (the application is built before the ledger is opened)."""
        self.db = db

    async def initialize(self) -> None:
        pass

    async def shutdown(self) -> None:
        pass

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, bool | dict[str, Any] | list[dict[str, Any]]]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: int | None,
    ) -> bool | dict[str, Any] | list[dict[str, Any]]:
        chat_id = data.get("chat_id")
        retries = rate_limit_args or self.max_retries
        for attempt in range(retries + 1):
            if chat_id is not None and self.db is not None:
                await self._wait_turn(self.db, chat_id)
            try:
                return await callback(*args, **kwargs)
            except RetryAfter as exc:
                if attempt == retries:
                    raise
                pause = exc.retry_after.total_seconds() if isinstance(exc.retry_after, timedelta) else float(
                    exc.retry_after)
                log.info("Telegram asks to wait %.1f s (%s); trying again then", pause, endpoint)
                await asyncio.sleep(pause + 0.1)
        raise AssertionError("unreachable")

    async def _wait_turn(self, db: Database, chat_id: object) -> None:
        """Sleep until this message's turn comes. A turn missed by more than ``LATE`` (this process was held up:
        a busy CPU, a pause) is given up and a new one taken, so that late messages never go out together."""
        loop = asyncio.get_running_loop()
        for _ in range(MAX_LATE_TURNS):
            go, now = await self.reserve(db, chat_id)
            due = loop.time() + max(0.0, (go - now).total_seconds())
            await asyncio.sleep(max(0.0, due - loop.time()))
            if loop.time() - due <= LATE:
                return
            log.debug("message to %s missed its turn by %.0f ms; taking another", chat_id,
                      (loop.time() - due) * 1000)

    @staticmethod
    async def reserve(db: Database, chat_id: object) -> tuple[datetime, datetime]:
        """When a message to ``chat_id`` may go, and the database's clock now: its chat's turn (the generic
        cell rate algorithm: ``interval`` apart, up to ``burst`` early), then the bot's first slot from then
        on; the chat's turn moves on from when the message really goes. One transaction, the chat's row
        locked throughout."""
        group = isinstance(chat_id, str)
        with contextlib.suppress(TypeError, ValueError):
            group = group or int(chat_id) < 0  # type: ignore[call-overload]
        interval, burst = (GROUP_INTERVAL, 0.0) if group else (CHAT_INTERVAL, CHAT_BURST)
        scope = f"chat:{chat_id}"[:40]
        async with db.write() as session:
            tat, now = await ledger.hold_send_pace(session=session, scope=scope)
            earliest = now if tat is None else max(now, tat - timedelta(seconds=burst))
            slot, now = await ledger.take_send_slot(session=session, scope="bot", interval=BOT_INTERVAL,
                                                    not_before=earliest)
            go = max(earliest, slot - timedelta(seconds=BOT_BURST))
            await ledger.set_send_pace(session=session, scope=scope,
                                       tat=max(tat or go, go) + timedelta(seconds=interval))
        return go, now
