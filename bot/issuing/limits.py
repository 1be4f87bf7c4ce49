"""The rules that hold every device to the ERM's limits: pure functions, no I/O, no clock.

- pacing: at least ``min_gap`` between two generations for one device;
- the daily limit: at most ``daily_limit`` codes per device per local day;
- stacking: credit left + new days never above ``max_stacked_days`` (1095 at most);

and how long to wait before trying again (:func:`backoff`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from storage.models import CodeKind

DAY = timedelta(days=1)
MIN_DAYS, MAX_DAYS = 1, 1095


@dataclass(frozen=True)
class Limits:
    min_gap: timedelta
    daily_limit: int
    max_stacked_days: int
    tz: ZoneInfo
    claim_ahead: timedelta = timedelta(0)
    """How long before a device's gap ends its next request may be claimed: the claim's work is done by then,
    and the request leaves for the ERM the moment the gap ends (it waits in :meth:`Settlement.dispatch`)."""


def local_day(now: datetime, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """The UTC start and end of the local day that contains ``now``."""
    local = now.astimezone(tz).date()
    start = datetime.combine(local, time(0), tzinfo=tz)
    end = datetime.combine(local + DAY, time(0), tzinfo=tz)
    return start.astimezone(UTC), end.astimezone(UTC)


def days_left(credit_until: datetime | None, now: datetime) -> int:
    """Whole days of credit left, a started day counted in full (never under-counts)."""
    if credit_until is None or credit_until <= now:
        return 0
    return math.ceil((credit_until - now) / DAY)


def headroom(credit_until: datetime | None, pending_days: int, now: datetime, max_stacked_days: int) -> int:
    """How many more days fit under the stacking limit, counting days already queued."""
    return max(0, max_stacked_days - days_left(credit_until, now) - pending_days)


def pacing_ready_at(last_generation_at: datetime | None, min_gap: timedelta, now: datetime) -> datetime:
    """When the device may next have a code generated (``now`` if it may already)."""
    if last_generation_at is None:
        return now
    return max(now, last_generation_at + min_gap)


def credit_after(kind: CodeKind, days: int | None, credit_until: datetime | None, now: datetime) -> datetime | None:
    """Credit-until once a code is entered: days add from max(now, credit-until); reset ends it.

    A free code unlocks for good, so it leaves no date (``None``); the caller records that.
    """
    if kind is CodeKind.DAYS:
        assert days is not None
        start = credit_until if credit_until is not None and credit_until > now else now
        return start + timedelta(days=days)
    if kind is CodeKind.RESET:
        return now
    return None


def valid_days(days: int) -> bool:
    return not isinstance(days, bool) and isinstance(days, int) and MIN_DAYS <= days <= MAX_DAYS


def backoff(attempts: int, base: float = 5.0, cap: float = 300.0) -> timedelta:
    """5 s, 10 s, 20 s … up to 5 minutes."""
    return timedelta(seconds=min(cap, base * 2 ** max(0, attempts - 1)))
