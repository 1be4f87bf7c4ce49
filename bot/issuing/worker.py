"""The worker loop: the pump starts every piece of work that is due, as tasks.

The ledger is the source of truth and the pump only reads it: settlements of unknown outcomes,
prepaid days that have room again, generations (claimed SENDING in one transaction, only as many
as can be sent at once, one device at a time and many devices at once), deliveries. On start,
everything QUEUED or SENDING is picked up by the first pump.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Sequence
from datetime import datetime, timedelta

from bot.background import Background
from bot.clock import Clock
from bot.issuing import limits
from bot.issuing.admission import Admission
from bot.issuing.handover import DELIVERY_LEASE, Handover
from bot.issuing.settlement import Settlement
from storage import ledger
from storage.db import Database
from storage.models import CodeRequest

log = logging.getLogger("paygbot.issuing")



class Worker:
    """Pumps the ledger: claims what is due and runs it, never two tasks for one device."""

    def __init__(
        self, *, db: Database, clock: Clock, rules: limits.Limits, admission: Admission, settlement: Settlement,
        handover: Handover, max_concurrency: int, settle_delay: timedelta,
    ) -> None:
        self.db, self.clock, self.limits = db, clock, rules
        self.admission, self.settlement, self.handover = admission, settlement, handover
        self.max_concurrency, self.settle_delay = max_concurrency, settle_delay
        self._busy: set[int] = set()
        self._background = Background(log, "issuing")
        self._pump_lock = asyncio.Lock()
        self._kick_pending = False
        self._full = False
        """The last pump left due requests for want of room: a task that ends pumps again."""

    def kick(self) -> None:
        """Pump the generations now rather than at the next tick (a new request should not wait for the timer)."""
        if not self._background.closed and not self._kick_pending:
            self._kick_pending = True
            self._spawn(self.pump(recover=False))

    def reserve(self, device_id: int) -> bool:
        """Room for one generation of the device now, held for it: the admission claims its new request in
        its own transaction and hands it to :meth:`run_claimed`, or gives the room back (:meth:`release`)."""
        if self._background.closed or device_id in self._busy or len(self._busy) >= self.max_concurrency:
            return False
        self._busy.add(device_id)
        return True

    def release(self, device_id: int) -> None:
        """The room :meth:`reserve` held, not used after all."""
        self._busy.discard(device_id)

    def run_claimed(self, request: CodeRequest) -> None:
        """Generate a request claimed (SENDING) by the admission's transaction, in the room reserved for it."""
        self._spawn(self.settlement.dispatch(request, verified=True), device_id=request.device_id)

    async def pump(self, *, recover: bool = True) -> None:
        """Start every piece of work that is due: settlements, generations, deliveries, prepaid days (``recover``
        false: generations only; what waits for a lease or a backoff to end can wait for the next tick)."""
        if self._background.closed:
            return
        async with self._pump_lock:
            self._kick_pending = False
            now = self.clock.now()
            busy = sorted(self._busy)
            unsettled: Sequence[CodeRequest] = []
            finished: Sequence[CodeRequest] = []
            read_due: tuple[list[CodeRequest], set[int], dict[int, datetime]] | None = None
            if recover:
                async with self.db.read() as session:  # one read for what waits on the ERM's answers and on people
                    unsettled = await ledger.unsettled(session=session, now=now, exclude=busy)
                    if self.handover.notify is not None:
                        finished = await ledger.undelivered(session=session, now=now)
                    if not unsettled and not self.admission.prepaid_due(now):
                        # the usual tick: nothing below changes what is due, so it is read here too
                        read_due = await self._due(now, session)
            if unsettled:  # claimed for the time a settlement takes: another process takes none of them
                async with self.db.write() as session:
                    ours = await ledger.claim_settlements(session=session, request_ids=[r.id for r in unsettled
                                                                                        if r.id is not None],
                                                          now=now, until=now + self.settle_delay)
                for request in unsettled:
                    if request.id in ours and request.device_id not in self._busy:
                        self._busy.add(request.device_id)
                        self._spawn(self.settlement.settle(request), device_id=request.device_id)
            await self.admission.release_prepaid(now)
            claimed: list[CodeRequest] = []
            due, unverified, leaves = read_due if read_due is not None else await self._due(now)
            if due:
                # One transaction claims the whole batch, and only as many as can be sent at once,
                # so that sent_at is the moment the request really leaves.
                day_start, day_end = limits.local_day(now, self.limits.tz)
                async with self.db.write() as session:
                    for request in due:
                        assert request.id is not None
                        # The daily limit again, now: what a queue, a retry or yesterday carries past
                        # midnight must not come on top of the day's own codes.
                        load = await ledger.device_load(session=session, device_id=request.device_id,
                                                        day_start=day_start, day_end=day_end)
                        if load.generated_today >= self.limits.daily_limit:
                            await ledger.defer(session=session, request_id=request.id, not_before=day_end)
                            continue
                        if await ledger.claim(session=session, request_id=request.id, now=now,
                                              settle_after=now + self.settle_delay, row=request):
                            claimed.append(request)
            for request in claimed:  # the rows as claimed: the generation need not read them again
                self._busy.add(request.device_id)
                self._spawn(self.settlement.dispatch(request, verified=request.device_id not in unverified,
                                                     leaves_at=leaves.get(request.device_id)),
                            device_id=request.device_id)
            if finished:
                waiting = [r.id for r in finished if r.id is not None and r.id not in self.handover.delivering]
                if waiting:  # claimed for a while: a process that dies telling them leaves it to another
                    async with self.db.write() as session:
                        ours = await ledger.claim_deliveries(session=session, request_ids=waiting, now=now,
                                                             until=now + DELIVERY_LEASE)
                    for request_id in sorted(ours):
                        self.handover.delivering.add(request_id)
                        self._spawn(self.handover.deliver(request_id))

    async def _due(self, now: datetime, session: ledger.AsyncSession | None = None
                   ) -> tuple[list[CodeRequest], set[int], dict[int, datetime]]:
        """What may go out now, as many as there is room for; which of the devices read are known only by
        typed ids; and when the devices whose gap ends within ``claim_ahead`` may have their code (the first
        batch read in ``session`` if given, a read of the pump's tick).

        Devices known only by typed ids and holding no code yet may be one device under two ids, and
        their code histories cannot tell until one of them has a code: they get codes one at a time,
        none while another's answer is awaited, so each compares its history after the last one's code.
        Those held back are left out of the next read, so that they never stand in the others' way."""
        unverified: set[int] = set()
        leaves: dict[int, datetime] = {}
        room = self.max_concurrency - len(self._busy)
        self._full = room <= 0
        exclude = set(self._busy)
        due: list[CodeRequest] = []
        one_blank: bool | None = None  # whether one more such device may go (asked once, when first met)
        while room > 0:
            asked = room
            async with contextlib.nullcontext(session) if session is not None else self.db.read() as reading:
                batch = await ledger.due_with_last_generation(session=reading, now=now,
                                                               gap_edge=now + self.limits.claim_ahead
                                                               - self.limits.min_gap,
                                                               exclude=sorted(exclude), limit=asked)
                coded = await ledger.unverified_among(session=reading, device_ids=[r.device_id for r, _ in batch])
                unverified.update(coded)
                blank = {device_id for device_id, has_code in coded.items() if not has_code}
                if blank and one_blank is None:
                    one_blank = not await ledger.unverified_without_codes_sending(session=reading)
            session = None  # (a next batch: a read of its own)
            held = False
            for request, last_generation_at in batch:
                exclude.add(request.device_id)
                if last_generation_at is not None and (gap_end := last_generation_at + self.limits.min_gap) > now:
                    leaves[request.device_id] = gap_end
                if request.device_id in blank:
                    if not one_blank:
                        held = True
                        continue
                    one_blank = False
                due.append(request)
                room -= 1
            self._full = room <= 0 and len(batch) == asked
            if not held or len(batch) < asked:
                break
        return due, unverified, leaves

    async def drain(self) -> None:
        """Wait until every task started so far, and the ones they started, has finished."""
        await self._background.drain()

    async def close(self) -> None:
        """Stop taking work and let what is in hand finish (the ledger keeps the rest)."""
        await self._background.close()

    def _spawn(self, work: Awaitable[None], device_id: int | None = None) -> None:
        """Run ``work`` in the background; the device is free again when it ends (and the room it leaves is
        taken at once, when requests were left waiting for it)."""
        def then() -> None:
            self._busy.discard(device_id)
            if self._full:
                self.kick()

        self._background.spawn(work, None if device_id is None else then)
