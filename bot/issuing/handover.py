"""Handing finished requests on to people, through the notifier the engine was given: at least once
(a failed delivery is tried again with a backoff, the code is never generated again); a warning when
a request's fate is unknown for a day; and a way to wait until a request's people were told.
"""

from __future__ import annotations

import asyncio
import logging

from bot.clock import Clock
from bot.issuing.limits import backoff
from bot.issuing.outcomes import Notifier
from storage import ledger
from storage.db import Database
from storage.models import CodeRequest, Status

log = logging.getLogger("paygbot.issuing")


class Handover:
    """Delivery of outcomes, and the retries of it."""

    def __init__(self, *, db: Database, clock: Clock, notify: Notifier | None) -> None:
        self.db, self.clock, self.notify = db, clock, notify
        self.delivering: set[int] = set()
        """Requests whose delivery is in hand (the pump starts no second one)."""
        self._told: dict[int, asyncio.Event] = {}

    async def deliver(self, request_id: int) -> None:
        assert self.notify is not None
        try:
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
            async with self.db.write() as session:
                fresh = await ledger.lock_request(session=session, request_id=request_id)
                assert fresh is not None
                fresh.delivered_at = self.clock.now()
                if fresh.status is Status.ISSUED:
                    fresh.status = Status.DELIVERED
                session.add(fresh)
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

    async def wait_told(self, request_id: int, timeout: float) -> bool:
        """Wait until the people of a request have been told its outcome, or at least until the
        outcome is known (the message is then on its way, held only by Telegram's flood limits).
        False when the ERM has not answered within ``timeout``."""
        event = self._told.setdefault(request_id, asyncio.Event())
        try:
            async with self.db.read() as session:
                request = await ledger.get_request(session=session, request_id=request_id)
            if request is not None and request.delivered_at is not None:
                return True
            await asyncio.wait_for(event.wait(), timeout)
            return True
        except TimeoutError:
            async with self.db.read() as session:
                request = await ledger.get_request(session=session, request_id=request_id)
            return request is not None and request.status not in (Status.QUEUED, Status.SENDING)
        finally:
            self._told.pop(request_id, None)
