"""What a payment is as it arrives, and what it can become: plain values, shared by the package."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from bot.issuing import PaymentApplied, PaymentHeld
from storage.models import Payment


class Provider(StrEnum):
    WEBHOOK = "webhook"
    MPESA = "mpesa"
    """Safaricom's own confirmation (Daraja C2B)."""
    MPESA_PASTED = "mpesa_pasted"
    """An M-Pesa confirmation message pasted or forwarded by an agent: the agent's word until Daraja's agrees."""
    CASH = "cash"


MPESA_FAMILY = (Provider.MPESA, Provider.MPESA_PASTED)
"""Two ways of hearing of one M-Pesa transaction: one transaction code, one payment."""


class Unmatched(StrEnum):
    """Why a payment matched no device by itself (besides :class:`bot.issuing.HoldReason`)."""

    UNKNOWN_ACCOUNT = "unknown_account"
    SEVERAL_DEVICES = "several_devices"
    REFERENCE_CONFLICT = "reference_conflict"
    """Its reference is another payment's (another amount, account or provider): a manager decides."""


PENDING_REASON = "erm_unavailable"


@dataclass(frozen=True)
class Incoming:
    """A payment as it arrives, before it is stored."""

    provider: str
    reference: str
    amount: Decimal
    account: str
    currency: str = ""
    phone: str | None = None
    payer: str | None = None
    paid_at: datetime | None = None
    recorded_by: int | None = None
    chat_id: int | None = None


@dataclass(frozen=True)
class NotMatched:
    """Kept UNMATCHED for a manager: the account names no device, or a customer with several."""

    payment_id: int
    reason: Unmatched
    candidates: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class Pending:
    """Stored, not matched yet: the ERM could not be asked; tried again later."""

    payment_id: int
    retry_at: datetime


Outcome = PaymentApplied | PaymentHeld | NotMatched | Pending


@dataclass(frozen=True)
class Received:
    """A payment stored (``new``) or found already stored, and what it became if it was new."""

    payment: Payment
    new: bool
    outcome: Outcome | None


Notifier = Callable[[Payment], Awaitable[None]]
"""Tells people what a payment's ``notice`` says; raises if it should be tried again."""
