"""The limits as the ledger stands: a device's load, the first moment it has a code left under the daily
limit, what a request or a payment may have now, how long until a queued code goes out.

The rules themselves are the pure functions of :mod:`bot.issuing.limits`; this adds the ledger's
figures, read in the caller's transaction.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from bot.issuing import limits
from bot.issuing.outcomes import Reason, Refused
from storage import ledger
from storage.models import CodeKind, Device


class Quota:
    """What the limits allow a device now, read in the caller's session."""

    def __init__(self, rules: limits.Limits) -> None:
        self.limits = rules

    async def check(
        self, session: ledger.AsyncSession, device: Device, ref: str, kind: CodeKind, days: int | None, now: datetime,
        load: ledger.DeviceLoad,
    ) -> Refused | None:
        """Why an unpaid request may not be queued now (and what is possible instead), or None (``load``: the
        device's, read in this transaction by :meth:`admission_load`)."""
        assert device.id is not None and load.paid_off is not None
        if kind is CodeKind.DAYS and device.unlocked:
            return Refused(Reason.UNLOCKED, ref)
        if kind is CodeKind.DAYS and load.paid_off:
            return Refused(Reason.PAID_OFF, ref)
        slot = await self.daily_slot(session, device.id, now, load)
        if slot > now:
            return Refused(Reason.DAILY_LIMIT, ref, possible_at=slot)
        if kind is CodeKind.DAYS:
            assert days is not None
            fits = limits.headroom(device.credit_until, load.pending_days, now, self.limits.max_stacked_days)
            if days > fits:
                return Refused(Reason.STACKING, ref, fits=fits)
        return None

    async def load(self, session: ledger.AsyncSession, device_id: int, now: datetime) -> ledger.DeviceLoad:
        day_start, day_end = limits.local_day(now, self.limits.tz)
        return await ledger.device_load(session=session, device_id=device_id, day_start=day_start, day_end=day_end)

    async def admission_load(self, session: ledger.AsyncSession, device_id: int, now: datetime, key: str | None,
                             since: datetime) -> ledger.DeviceLoad:
        """The device's load, with whether its plan is paid off and whether a request was made for ``key`` since
        ``since``, as :meth:`check` and the admission of a request ask (one statement)."""
        day_start, day_end = limits.local_day(now, self.limits.tz)
        return await ledger.admission_load(session=session, device_id=device_id, day_start=day_start, day_end=day_end,
                                           key=key, since=since)

    async def fit_paid(
        self, session: ledger.AsyncSession, device: Device, days: int, now: datetime
    ) -> tuple[int, datetime]:
        """How many of ``days`` fit now, and the earliest time they may go out (daily limit)."""
        assert device.id is not None
        load = await self.load(session, device.id, now)
        fits = limits.headroom(device.credit_until, load.pending_days, now, self.limits.max_stacked_days)
        return min(days, fits), await self.daily_slot(session, device.id, now, load)

    async def daily_slot(
        self, session: ledger.AsyncSession, device_id: int, now: datetime, load: ledger.DeviceLoad
    ) -> datetime:
        """``now`` if the device has a code left today, else the start of the first local day that has."""
        if load.generated_today + load.open_today < self.limits.daily_limit:
            return now
        _, day_end = limits.local_day(now, self.limits.tz)
        while True:
            day_start, day_end = limits.local_day(day_end, self.limits.tz)
            planned = await ledger.open_between(session=session, device_id=device_id, start=day_start, end=day_end)
            if planned < self.limits.daily_limit:
                return day_start

    async def eta(self, session: ledger.AsyncSession, device: Device, now: datetime, ahead: int | None = None
                  ) -> timedelta:
        """About how long until the newest request of the device is generated (``ahead``: how many of its
        requests are before it, when known)."""
        assert device.id is not None
        if ahead is None:
            ahead = (await self.load(session, device.id, now)).open_count - 1
        ready = limits.pacing_ready_at(device.last_generation_at, self.limits.min_gap, now)
        return (ready - now) + ahead * self.limits.min_gap
