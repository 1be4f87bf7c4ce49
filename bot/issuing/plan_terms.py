"""A payment plan's arithmetic, exact (``Decimal``) and pure: what a payment does to a plan, what is left, when the
device becomes its customer's."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

ZERO = Decimal(0)


@dataclass(frozen=True)
class Share:
    """What one payment does to a plan: all of it counts toward paid so far; ``for_days`` of it (beyond the
    deposit, within the total) may become days; ``excess`` (beyond the total) never does."""

    for_days: Decimal
    excess: Decimal
    paid_off: bool
    """This payment brings paid so far to the total."""


def share(paid_before: Decimal, amount: Decimal, total: Decimal, deposit: Decimal) -> Share:
    after = paid_before + amount
    for_days = max(ZERO, min(after, total) - max(paid_before, deposit))
    excess = max(ZERO, after - max(total, paid_before))
    return Share(for_days, excess, paid_before < total <= after)


def left(paid: Decimal, total: Decimal) -> Decimal:
    return max(ZERO, total - paid)


def percent(paid: Decimal, total: Decimal) -> int:
    """Whole percent paid, rounded down (100 only when paid off)."""
    if total <= 0:
        return 100
    return min(100, int(paid * 100 // total))


def deposit_left(paid: Decimal, deposit: Decimal) -> Decimal:
    return max(ZERO, deposit - paid)


def becomes_theirs(paid: Decimal, total: Decimal, daily_price: Decimal, credit_until: datetime | None,
                   now: datetime, tz: ZoneInfo) -> date:
    """The day the device is theirs if they pay the plan's price for each day from the end of their credit
    (from today, without credit): what is left buys that many more days."""
    start = max(now, credit_until) if credit_until is not None else now
    more = math.ceil(left(paid, total) / daily_price) if daily_price > 0 else 0
    return (start + timedelta(days=more)).astimezone(tz).date()
