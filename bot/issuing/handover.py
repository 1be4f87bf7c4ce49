"""Handing finished requests on to people, through the notifier the engine was given: at least once
(a failed delivery is tried again with a backoff, the code is never generated again); a warning when
a request's fate is unknown for a day; and a way to wait until a request's people were told.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from datetime import timedelta

from bot.clock import Clock
from bot.issuing.limits import backoff
from bot.issuing.outcomes import Notifier, ReadsAhead
from storage import ledger
from storage.db import Database
from storage.models import CodeRequest, Device, Status

log = logging.getLogger("paygbot.issuing")


DELIVERY_LEASE = timedelta(seconds=30)
"""How long a process holds the telling of an outcome before another may try (Telegram's flood limits
may hold a message back for a while; a second message is better than none)."""
TOLD_KEPT = 1000
"""Requests whose telling is remembered in memory, so that an asker who comes to wait after it needs no read."""


class _Marks:
    """Requests told, written delivered together: the ones told while a write is under way wait for the next
    one, a single transaction (group commit). Nobody waits longer than one write after their own."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self.db, self.clock = db, clock
        self._pending: list[int] = []
        self._written: asyncio.Future[None] | None = None
        self._writing = False

    async def mark(self, request_id: int) -> None:
        self._pending.append(request_id)
        if self._written is None:
            self._written = asyncio.get_running_loop().create_future()
        written = self._written
        if not self._writing:
            self._writing = True
            try:
                while self._pending:
                    batch, done = self._pending, self._written
                    self._pending, self._written = [], None
                    try:
                        async with self.db.write() as session:
                            await ledger.mark_delivered(session=session, request_ids=batch, now=self.clock.now())
                    except BaseException as exc:
                        if done is not None and not done.done():
                            done.set_exception(exc)
                        if isinstance(exc, Exception):
                            continue
                        raise
                    if done is not None and not done.done():
                        done.set_result(None)
            finally:
                self._writing = False
                if self._pending and self._written is not None and not self._written.done():
                    # the writer was cancelled: those waiting are let go; their requests, still undelivered
                    # in the ledger, are told again after their lease (at least once)
                    self._written.set_exception(RuntimeError("the delivered marks were not written"))
                    self._pending, self._written = [], None
        await written


class Handover:
    """Delivery of outcomes, and the retries of it."""

    def __init__(self, *, db: Database, clock: Clock, notify: Notifier | None) -> None:
        self.db, self.clock, self.notify = db, clock, notify
        self._reads_ahead = notify if isinstance(notify, ReadsAhead) else None
        self.delivering: set[int] = set()
        """Requests whose delivery is in hand (the pump starts no second one)."""
        self._told: dict[int, asyncio.Event] = {}
        self._told_lately: OrderedDict[int, None] = OrderedDict()
        self._marks = _Marks(db, clock)

    async def read_ahead(self, session: ledger.AsyncSession, request: CodeRequest, device: Device) -> None:
        """In the transaction that records an issued code: what the notifier will need to tell it, if it reads
        ahead (:class:`~bot.issuing.outcomes.ReadsAhead`)."""
        if self._reads_ahead is not None:
            await self._reads_ahead.read_ahead(session, request, device)

    async def deliver(self, request_id: int, request: CodeRequest | None = None) -> None:
        """Tell the request's people its outcome (``request``: as just written, when the caller holds it)."""
        assert self.notify is not None
        self.delivering.add(request_id)
        try:
            if request is None:
                async with self.db.read() as session:
                    request = await ledger.get_request(session=session, request_id=request_id)
            if request is None or request.delivered_at is not None:
                return
            try:
                await self.notify(request)
            except Exception as exc:  # the notifier talks to the outside world; any failure is retried
                log.warning("request %s: delivery failed (%s); will retry", request_id, type(exc).__name__)
                async with self.db.write() as session:
                    fresh = await ledger.lock_request(session=session, request_id=request_id)
                    assert fresh is not None
                    fresh.delivery_attempts += 1
                    fresh.not_before = self.clock.now() + backoff(fresh.delivery_attempts, base=2, cap=600)
                    session.add(fresh)
                return
            await self._marks.mark(request_id)
            self._told_lately[request_id] = None
            if len(self._told_lately) > TOLD_KEPT:
                self._told_lately.popitem(last=False)
            if request_id in self._told:
                self._told[request_id].set()
        finally:
            self.delivering.discard(request_id)

    async def warn_unsettled(self, request: CodeRequest) -> None:
        """Tell a SENDING request's people that it is not known yet whether its code was made (once: the
        caller marked it first); a failure is logged, not retried."""
        if self.notify is None:
            return
        try:
            await self.notify(request)  # SENDING: the notifier says it is not known yet
        except Exception as exc:
            log.warning("request %s: could not warn that it is unsettled (%s)", request.id, type(exc).__name__)

    @property
    def waiting(self) -> int:
        """How many askers are waiting for their request's outcome right now."""
        return len(self._told)

    async def wait_told(self, request_id: int, timeout: float) -> bool:
        """Wait until the people of a request have been told its outcome, or at least until the
        outcome is known (the message is then on its way, held only by Telegram's flood limits).
        False when the ERM has not answered within ``timeout``."""
        if request_id in self._told_lately:
            return True
        # (told by another process: not heard of here, and found when the wait ends)
        event = self._told.setdefault(request_id, asyncio.Event())
        try:
            await asyncio.wait_for(event.wait(), timeout)
            return True
        except TimeoutError:
            async with self.db.read() as session:
                request = await ledger.get_request(session=session, request_id=request_id)
            return request is not None and request.status not in (Status.QUEUED, Status.SENDING)
        finally:
            self._told.pop(request_id, None)
