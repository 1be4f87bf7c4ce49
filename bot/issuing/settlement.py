"""One generation and its outcome, exactly once.

A claimed request (SENDING, committed before the ERM is asked) is generated and its outcome
recorded: the code and what it does to the device's credit, the ERM's refusal in its own words, or
a retry after a backoff when nothing was committed. An outcome that is unknown (a timeout, or a
crash while SENDING) is settled from the ERM's code history: a committed code no other request
holds is the answer; otherwise the request is sent again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from bot.clock import Clock
from bot.erm.backend import ErmBackend
from bot.erm.errors import ErmAuthError, ErmError, ErmOutcomeUnknown, ErmRateLimited, ErmRefused, ErmUnavailable
from bot.erm.models import CodeEvent, CodeType, GeneratedCode
from bot.erm.wire import generation_round_trip
from bot.issuing import limits
from bot.issuing.anticipation import Anticipation
from bot.issuing.devices import DeviceDirectory
from bot.issuing.handover import DELIVERY_LEASE, Handover
from bot.issuing.limits import backoff
from bot.issuing.outcomes import (
    WAIT_ERM_LOGIN,
    WAIT_ERM_NOT_YET,
    WAIT_ERM_UNAVAILABLE,
    WAIT_RESENDING,
    WAIT_SETTLING,
    WAIT_TOO_LATE,
    WAIT_UNSETTLED,
)
from storage import ledger
from storage.db import Database
from storage.models import CodeKind, CodeRequest, Source, Status

log = logging.getLogger("paygbot.issuing")

_ERM_TYPE = {CodeKind.DAYS: CodeType.DAYS, CodeKind.FREE: CodeType.FREE, CodeKind.RESET: CodeType.RESET}
_HISTORY_DAYS = {CodeKind.FREE: 1096, CodeKind.RESET: 2192}
CLOCK_SKEW = timedelta(minutes=10)
SETTLE_GRACE = timedelta(seconds=5)
GIVE_UP_AFTER = timedelta(days=1)
SETTLE_POLL_CAP = timedelta(minutes=5)


class Settlement:
    """Generates claimed requests and settles the ones whose answer never came."""

    def __init__(
        self, *, db: Database, erm: ErmBackend, clock: Clock, rules: limits.Limits, devices: DeviceDirectory,
        handover: Handover, kick: Callable[[], None], max_concurrency: int, call_deadline: float,
    ) -> None:
        self.db, self.erm, self.clock, self.limits = db, erm, clock, rules
        self.call_deadline = call_deadline
        """Seconds one generation may take, login included, before its outcome counts as unknown."""
        self.devices, self.handover, self.kick = devices, handover, kick
        self.slots = asyncio.Semaphore(max_concurrency)
        """ERM calls in flight at once (generations and history reads)."""
        self.anticipation = Anticipation()

    # -- one generation -----------------------------------------------------------------------

    async def dispatch(self, request: CodeRequest, *, verified: bool, leaves_at: datetime | None = None) -> None:
        """Generate a request this process claimed (the row as claimed; ``verified``: its device's ids are the
        ERM's; ``leaves_at``: not before, when it was claimed ahead of its device's gap). Its outcome is recorded
        only while the claim is still this one (SENDING, same attempt): the call is cut at ``call_deadline``,
        before the claim's lease ends and another process would settle it from the history."""
        assert request.id is not None and request.status is Status.SENDING
        request_id, attempt = request.id, request.attempts
        if not verified:
            same = await self.devices.same_as_another(request)
            if same is None:  # unsure: never a code while this may be a device known by another id
                await self._retry_later(request_id, WAIT_ERM_UNAVAILABLE, attempt=attempt)
                return
            if same:
                return
        if leaves_at is not None and (wait := (leaves_at - self.clock.now()).total_seconds()) > 0:
            await asyncio.sleep(wait)  # (only a clock that moves claims ahead: see Limits.claim_ahead)
        try:
            async with self.slots:
                async with asyncio.timeout(self.call_deadline):
                    sent = self.clock.now()
                    code = await self._generate(request)
                    early = self.anticipation.answered(sent, self.clock.now(), generation_round_trip(),
                                                       self.erm.round_trips)
        except (ErmOutcomeUnknown, TimeoutError) as exc:
            log.warning("request %s: outcome unknown (%s); will settle from the code history", request_id,
                        exc.message if isinstance(exc, ErmError) else "no answer in time")
            await self._outcome_unknown(request_id, attempt=attempt)
        except ErmAuthError as exc:
            log.error("request %s: the ERM refused our credentials: %s", request_id, exc.message)
            await self._retry_later(request_id, WAIT_ERM_LOGIN, attempt=attempt)
        except ErmRateLimited as exc:
            log.warning("request %s: the ERM says not yet: %s", request_id, exc.message)
            self.anticipation.refused(self.clock.now())
            await self._retry_later(request_id, WAIT_ERM_NOT_YET, at_least=self.limits.min_gap, attempt=attempt)
        except ErmRefused as exc:
            log.info("request %s refused by the ERM: %s", request_id, exc.message)
            await self._finish(request_id, Status.REFUSED, exc.message, attempt=attempt)
        except ErmUnavailable as exc:
            log.warning("request %s: ERM unavailable (%s); will retry", request_id, exc.message)
            await self._retry_later(request_id, WAIT_ERM_UNAVAILABLE, attempt=attempt)
        else:
            await self._issued(request, code.code, code.hex, code.otp_count, None, attempt=attempt, early=early)

    async def _generate(self, request: CodeRequest) -> GeneratedCode:
        if request.kind is CodeKind.DAYS:
            assert request.days is not None
            return await self.erm.days_code(request.device_ref, request.days)
        if request.kind is CodeKind.FREE:
            return await self.erm.free_code(request.device_ref)
        return await self.erm.reset_code(request.device_ref)

    async def _issued(
        self, request: CodeRequest, code: str, hex_code: str, count: int | None, number: int | None, *,
        attempt: int | None, early: timedelta = timedelta(0),
    ) -> None:
        """Record the code and what it does to the device's credit, then hand it on (``request``: as the caller
        last read it). The device's gap counts from its answer, less ``early``: the time the ERM surely spent
        before committing it, where it was asked and answered just now (see :mod:`bot.issuing.anticipation`)."""
        assert request.id is not None
        request_id, now = request.id, self.clock.now()
        device_id = request.device_id
        while True:
            try:
                recorded = await self._record(request_id, device_id, code, hex_code, count, number, attempt, now,
                                              gap_from=now - early)
                break
            except _Moved as moved:  # merged into another device while the ERM was asked: that one, locked first
                device_id = moved.device_id
        if recorded is None:
            return
        issued, more = recorded
        log.info("request %s issued: device %s", request_id, issued.device_ref)
        if more:  # the device's next code: as soon as its gap allows (telling this one takes a while)
            elapsed = (self.clock.now() - now + early).total_seconds()
            ahead = (self.limits.min_gap - self.limits.claim_ahead).total_seconds()
            asyncio.get_running_loop().call_later(max(0.0, ahead - elapsed), self.kick)
        if self.handover.notify is not None:
            await self.handover.deliver(request_id, issued)

    async def _record(
        self, request_id: int, device_id: int, code: str, hex_code: str, count: int | None, number: int | None,
        attempt: int | None, now: datetime, *, gap_from: datetime,
    ) -> tuple[CodeRequest, bool] | None:
        """One transaction: the device (``device_id``, where the request was last seen), then the request, locked in
        that order and written; the request as written and whether the device has another queued. None if the
        request moved on meanwhile (another process settled it); :class:`_Moved` if it is another device's now.
        The code counts as issued ``now``; the device's gap counts from ``gap_from``."""
        async with self.db.write() as session:
            device = await ledger.lock_device_if_any(session=session, device_id=device_id)
            request, queued = await ledger.lock_request_with_queue(session=session, request_id=request_id)
            assert request is not None
            if device is None or request.device_id != device.id:
                raise _Moved(request.device_id)  # (nothing written: the transaction is rolled back)
            if not _still_claimed(request, attempt):  # (another process settled it meanwhile)
                log.error("request %s was %s when its code arrived; code %s kept in the log only",
                          request_id, request.status, hex_code)
                return None
            unlocked = request.kind is CodeKind.FREE
            credit_until = (device.credit_until if unlocked
                            else limits.credit_after(request.kind, request.days, device.credit_until, now))
            if device.last_generation_at is not None:  # never back: another code of it may count from later
                gap_from = max(gap_from, device.last_generation_at)
            await ledger.update_row(session=session, row=device, last_generation_at=gap_from, unlocked=unlocked,
                                    credit_until=credit_until)
            # told from here: the telling is held as the pump's claim would hold it (another process may try
            # once the lease ends, if this one died telling)
            await ledger.update_row(
                session=session, row=request, status=Status.ISSUED, code=code, code_hex=hex_code, erm_count=count,
                erm_code_number=number, issued_at=now, credit_until=credit_until, reason=None,
                not_before=now + DELIVERY_LEASE if self.handover.notify is not None else now)
            await self.handover.read_ahead(session, request, device)
            return request, queued

    async def _finish(self, request_id: int, status: Status, reason: str, *, attempt: int | None) -> None:
        now = self.clock.now()
        async with self.db.write() as session:
            request = await ledger.lock_request(session=session, request_id=request_id)
            assert request is not None
            if not _still_claimed(request, attempt):
                log.warning("request %s: outcome %s not recorded, the request moved on meanwhile", request_id, status)
                return
            request.status, request.reason, request.not_before = status, reason[:500], now
            session.add(request)
        self.kick()

    async def _retry_later(self, request_id: int, reason: str, at_least: timedelta = timedelta(0), *,
                           attempt: int) -> None:
        """Nothing was committed: back to the queue after a backoff (unpaid requests give up after a day)."""
        now = self.clock.now()
        async with self.db.write() as session:
            request = await ledger.lock_request(session=session, request_id=request_id)
            assert request is not None
            if not _still_claimed(request, attempt):
                log.warning("request %s: not queued again, the request moved on meanwhile", request_id)
                return
            if request.source is Source.CHAT and now - request.created_at > GIVE_UP_AFTER:
                request.status = Status.FAILED
                request.not_before = now
            else:
                request.status = Status.QUEUED
                request.not_before = now + max(at_least, backoff(request.attempts))
            request.reason = reason[:500]
            session.add(request)

    async def _outcome_unknown(self, request_id: int, *, attempt: int) -> None:
        """Stay SENDING; settle from the history once the ERM has surely finished with it."""
        now = self.clock.now()
        async with self.db.write() as session:
            request = await ledger.get_request(session=session, request_id=request_id)
            assert request is not None
            device = await ledger.lock_device(session=session, device_id=request.device_id)
            request = await ledger.lock_request(session=session, request_id=request_id)
            assert request is not None
            if not _still_claimed(request, attempt):
                return
            device.last_generation_at = now  # a code may have been committed just now
            request.not_before = now + SETTLE_GRACE
            request.reason = WAIT_SETTLING
            session.add_all([device, request])

    # -- settling unknown outcomes ------------------------------------------------------------

    async def settle(self, request: CodeRequest) -> None:
        """A SENDING request whose answer never came: a committed code is the answer, else send again."""
        assert request.id is not None
        try:
            async with self.slots:
                page = await self.erm.code_history(request.device_ref, 0, 20)
        except ErmError as exc:
            log.warning("request %s: cannot read the code history yet (%s)", request.id, exc.message)
            now = self.clock.now()
            async with self.db.write() as session:
                fresh = await ledger.lock_request(session=session, request_id=request.id)
                if fresh is None or fresh.status is not Status.SENDING:
                    return
                waited = now - (fresh.sent_at or fresh.created_at)
                # ask less often the longer it lasts: a tenth of the wait, at most every 5 minutes
                fresh.not_before = now + max(backoff(fresh.attempts), min(SETTLE_POLL_CAP, waited / 10))
                session.add(fresh)
            if fresh.reason != WAIT_UNSETTLED and waited > GIVE_UP_AFTER:
                await self._tell_unsettled(fresh)
            return
        async with self.db.read() as session:
            # read again: the device row may have been merged into another while the ERM was asked
            fresh = await ledger.get_request(session=session, request_id=request.id)
            if fresh is None or fresh.status is not Status.SENDING:
                return
            known = await ledger.known_codes(session=session, device_id=fresh.device_id)
        event = self._committed(request, page.events, known)
        if event is not None:
            log.info("request %s settled: code %s was committed", request.id, event.code_number)
            await self._issued(fresh, event.code_dec_string, event.code_hex_string.upper(), None,
                               event.code_number, attempt=None)
            return
        now = self.clock.now()
        if request.source is Source.CHAT and now - request.created_at > GIVE_UP_AFTER:
            # as _retry_later: an unpaid request does not go out more than a day after it was asked
            log.info("request %s settled: nothing was committed, and it was asked over a day ago", request.id)
            await self._finish(request.id, Status.FAILED, WAIT_TOO_LATE, attempt=None)
            return
        log.info("request %s settled: nothing was committed; it goes out again", request.id)
        async with self.db.write() as session:
            fresh = await ledger.lock_request(session=session, request_id=request.id)
            if fresh is not None and fresh.status is Status.SENDING:
                fresh.status, fresh.not_before = Status.QUEUED, now
                fresh.reason = WAIT_RESENDING
                session.add(fresh)
        self.kick()

    def _committed(self, request: CodeRequest, events: list[CodeEvent], known: set[str]) -> CodeEvent | None:
        """The oldest code in the history that this request could have made and no other request holds."""
        assert request.sent_at is not None
        days = request.days if request.kind is CodeKind.DAYS else _HISTORY_DAYS[request.kind]
        for event in reversed(events):
            if (
                event.code_type == _ERM_TYPE[request.kind]
                and event.code_days == days
                and event.code_hex_string.upper() not in known
                and event.created_at >= request.sent_at - CLOCK_SKEW
            ):
                return event
        return None

    async def _tell_unsettled(self, request: CodeRequest) -> None:
        """A day without knowing whether a request's code was made: its people are warned, once (marked
        first: a warning is not worth repeating). The engine goes on asking the ERM and never sends
        again what may have been committed, so the request stays SENDING; how it ends (the code, or
        nothing made) reaches them as usual."""
        async with self.db.write() as session:
            fresh = await ledger.lock_request(session=session, request_id=request.id or 0)
            if fresh is None or fresh.status is not Status.SENDING:
                return
            fresh.reason = WAIT_UNSETTLED
            session.add(fresh)
        await self.handover.warn_unsettled(fresh)


class _Moved(Exception):  # noqa: N818 (not an error: a request found on another device than it was last seen on)
    """The request is another device's now (``device_id``)."""

    def __init__(self, device_id: int) -> None:
        super().__init__(device_id)
        self.device_id = device_id


def _still_claimed(request: CodeRequest, attempt: int | None) -> bool:
    """Whether an outcome may still be recorded: the request is SENDING and, for a generation's own answer,
    still under the claim that sent it (``attempt``; None: the settlement, which holds its own claim)."""
    return request.status is Status.SENDING and (attempt is None or request.attempts == attempt)
