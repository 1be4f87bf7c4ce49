"""What the engine answers and what it keeps: a request accepted or refused (and what is possible
instead), a payment applied or held, a device's figures; and the words kept in ``CodeRequest.reason``.

A refusal is kept as data: ``reason`` holds the :class:`Reason` alone, ``refused_fits`` and
``refused_until`` its details (see ``Admission``'s refused rows); bot/texts.py puts them in words.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Protocol, runtime_checkable

from storage.ledger import AsyncSession
from storage.models import CodeKind, CodeRequest, Customer, Device

Notifier = Callable[[CodeRequest], Awaitable[None]]
"""Tells people the outcome of a finished request (issued, refused, failed); raises if it could not."""


@runtime_checkable
class ReadsAhead(Protocol):
    """A notifier that reads what it will need to tell an issued code in the transaction that records the code
    (one transaction fewer between the ERM's answer and the message); it reads again if it must."""

    async def read_ahead(self, session: AsyncSession, request: CodeRequest, device: Device) -> None: ...


class Reason(StrEnum):
    """Why a request was refused before it reached the ERM (or by the ERM itself)."""

    BAD_DEVICE = "bad_device"
    BAD_DAYS = "bad_days"
    UNKNOWN_DEVICE = "unknown_device"
    DAILY_LIMIT = "daily_limit"
    STACKING = "stacking"
    UNLOCKED = "unlocked"
    PAID_OFF = "paid_off"
    """Its plan is paid off: the device is the customer's, its unlock code follows (or has gone)."""
    ERM_REFUSED = "erm_refused"
    ERM_UNAVAILABLE = "erm_unavailable"


# Why a request waits (or failed, when it waited too long), kept in ``CodeRequest.reason`` as a
# word that bot/texts.py puts in the reader's language. A refusal by the ERM keeps its own words.
WAIT_ERM_UNAVAILABLE = "erm_unavailable"
WAIT_ERM_LOGIN = "erm_login"
WAIT_ERM_NOT_YET = "erm_not_yet"
WAIT_SETTLING = "settling"
WAIT_RESENDING = "resending"
WAIT_UNSETTLED = "unsettled"
"""A day without the ERM saying whether the code was made; people were told (once)."""
WAIT_TOO_LATE = "too_late"
"""Settled as nothing made, but asked over a day ago: an unpaid request then ends (FAILED)."""
WAIT_KEPT_PREPAID = "kept_prepaid"
"""A paid request whose days no longer fit once two rows were found to be one device: kept as prepaid days."""


@dataclass(frozen=True)
class Accepted:
    """Queued: the code follows in about ``eta``."""

    request_id: int
    device_ref: str
    kind: CodeKind
    days: int | None
    eta: timedelta


@dataclass(frozen=True)
class Refused:
    """Not queued; what is possible instead: ``fits`` days now, or a code at ``possible_at``."""

    reason: Reason
    device_ref: str
    fits: int | None = None
    possible_at: datetime | None = None
    words: str | None = None


@dataclass(frozen=True)
class DeviceStatus:
    """What an agent sees of a device: credit, today's codes, when the next code can go out."""

    device: Device
    aliases: list[str]
    customer: Customer | None
    days_left: int
    codes_today: int
    daily_limit: int
    next_code_at: datetime
    queued: int
    last_codes: list[CodeRequest]


class HoldReason(StrEnum):
    """Why a stored payment was not turned into days: it waits for a manager."""

    NO_PRICE = "no_price"
    CURRENCY = "currency"
    UNLOCKED = "unlocked"
    PAID_OFF = "paid_off"
    """Its plan is paid off already: the money is kept for review (it never becomes days)."""
    REVERSED = "reversed"
    """The provider took it back before it was applied: it counts for nothing."""


@dataclass(frozen=True)
class PlanBalance:
    """Where a device's plan stands after a payment: its receipt's balance."""

    paid: Decimal
    total: Decimal
    currency: str
    excess: Decimal
    """Of this payment, what went beyond the total (kept for review, never days)."""
    paid_off: bool
    """This payment paid the plan off."""
    deposit_left: Decimal
    for_days: Decimal = Decimal(0)
    """Of this payment, what could become days (beyond the deposit, within the total)."""


@dataclass(frozen=True)
class PaymentApplied:
    """A stored payment turned into days for a device (``duplicate``: it had been before; nothing changed).

    ``days`` = (amount + the device's money credit) ÷ daily price, rounded down; ``days_now`` of them
    are queued (at ``not_before``: later than now past the daily limit), ``prepaid_days`` kept for when
    room opens under the stacking limit; ``credit_left`` is the money kept toward the next payment.
    """

    payment_id: int
    duplicate: bool
    device_id: int
    days: int
    days_now: int
    prepaid_days: int
    request_id: int | None
    not_before: datetime | None
    credit_left: Decimal
    plan: PlanBalance | None = None
    owed_paid: Decimal = Decimal(0)
    """Of this payment, what paid the device's debt (reversed payments whose codes were issued) first."""


@dataclass(frozen=True)
class PaymentHeld:
    """A stored payment kept for a manager: the device has no daily price, another currency, is unlocked or
    paid off, or the payment was reversed."""

    payment_id: int
    device_id: int
    reason: HoldReason
