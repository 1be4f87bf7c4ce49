"""A payment taken back by its provider (``/reverse``, or a signed webhook body with ``"reverses"``).

One transaction, with the payment, device and plan rows locked: paid so far goes down by the amount; days of
the payment not yet issued are taken back (its queued code cancelled, its prepaid days removed), then its
money credit; what is left was already issued as codes and cannot be taken back, so the device owes it (the
next payments pay it first). A plan paid off by it opens again unless its unlock code has gone out. A payment
not yet applied simply never will be. Reversing twice, or a reference never seen, changes nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from bot.clock import Clock
from storage import ledger
from storage.db import Database
from storage.models import (
    GENERATED_STATUSES,
    Device,
    Payment,
    PaymentNotice,
    PaymentStatus,
    Plan,
    PlanStatus,
    Reversal,
    Status,
)

log = logging.getLogger("paygbot.plans")

REVERSED = "reversed"
"""The ``reason`` of a payment taken back before it was applied, and of its cancelled code."""


class Unreversed(StrEnum):
    """Why nothing changed."""

    UNKNOWN = "unknown"
    """No payment has that reference."""
    ALREADY = "already"
    """It was reversed before (or this very reversal was received before)."""
    REFERENCE_USED = "reference_used"
    """The reversal's own reference is another reversal's (of another payment)."""


@dataclass(frozen=True)
class Reversed:
    payment: Payment
    reversal: Reversal
    device: Device | None
    plan: Plan | None
    reopened: bool
    """The plan it had paid off is active again (its unlock code had not gone out: cancelled)."""


@dataclass(frozen=True)
class NotReversed:
    why: Unreversed
    payment: Payment | None = None
    reversal: Reversal | None = None


async def reverse(db: Database, clock: Clock, reference: str, *, reversal_reference: str | None = None,
                  reason: str | None = None, by: int | None = None) -> Reversed | NotReversed:
    """Take back the payment stored under ``reference``, once."""
    now = clock.now()
    async with db.write() as session:
        if reversal_reference is not None:
            earlier = await ledger.reversal_by_reference(session=session, reference=reversal_reference)
            if earlier is not None:
                payment = await ledger.get_payment(session=session, payment_id=earlier.payment_id)
                same = payment is not None and payment.reference == reference
                return NotReversed(Unreversed.ALREADY if same else Unreversed.REFERENCE_USED, payment, earlier)
        found = await ledger.payment_to_reverse(session=session, reference=reference)
        if found is None or found.id is None:
            return NotReversed(Unreversed.UNKNOWN)
        payment = await ledger.lock_payment(session=session, payment_id=found.id)
        if payment.reversed_at is not None:
            return NotReversed(Unreversed.ALREADY, payment, await ledger.reversal_of(session=session,
                                                                                    payment_id=found.id))
        reversal = Reversal(payment_id=found.id, reference=reversal_reference, reason=reason, by_id=by, at=now,
                            amount=payment.amount)
        device = plan = None
        reopened = False
        if payment.status is PaymentStatus.MATCHED and payment.device_id is not None:
            device = await ledger.lock_device(session=session, device_id=payment.device_id)
            if payment.plan_id is not None:
                plan = await ledger.lock_plan(session=session, plan_id=payment.plan_id)
            unlock_out = await _unlock_out(session, plan)
            await _take_back(session, payment, device, reversal, now, whole=unlock_out)
            if plan is not None:
                reopened = await _lower_plan(session, plan, payment, reversal, now, unlock_out)
            session.add(device)
        else:  # stored, kept or waiting: it never becomes days now
            payment.status, payment.reason, payment.retry_at = PaymentStatus.UNMATCHED, REVERSED, None
        payment.reversed_at = now
        payment.notice, payment.notified_at = PaymentNotice.REVERSED, None
        session.add(payment)
        reversal = await ledger.add_reversal(session=session, reversal=reversal)
    log.info("payment %s/%s reversed%s: %s days taken back, %s owed", payment.provider, payment.reference,
             f" ({reversal_reference})" if reversal_reference else "", reversal.cancelled_days, reversal.owed)
    return Reversed(payment, reversal, device, plan, reopened)


async def _unlock_out(session: ledger.AsyncSession, plan: Plan | None) -> bool:
    """Whether the plan's unlock code has left the queue (claimed, made or delivered): it cannot be taken back."""
    if plan is None or plan.unlock_request_id is None:
        return False
    request = await ledger.get_request(session=session, request_id=plan.unlock_request_id)
    return request is not None and (request.status in GENERATED_STATUSES or request.status is Status.SENDING)


async def _take_back(session: ledger.AsyncSession, payment: Payment, device: Device, reversal: Reversal,
                     now: datetime, *, whole: bool) -> None:
    """Undo what the payment gave the device: days not yet issued, then money credit; the rest is owed.
    ``whole``: the plan's unlock code is out, so all of the payment within the total is owed, not only its days."""
    assert payment.id is not None
    price = payment.day_price or device.daily_price or Decimal(0)
    cancelled = 0
    request = await ledger.request_for_payment(session=session, payment_id=payment.id)
    if request is not None and request.id is not None and request.days:
        if await ledger.cancel_request(session=session, request_id=request.id, reason=REVERSED, now=now):
            cancelled += request.days
        elif request.status in (Status.REFUSED, Status.FAILED):  # never made: nothing was given
            cancelled += request.days
    prepaid = min(payment.prepaid_days, device.prepaid_days)
    device.prepaid_days -= prepaid
    cancelled += prepaid
    given = (payment.amount - (payment.excess or Decimal(0))) if whole else (
        payment.day_money if payment.day_money is not None else payment.amount)
    rest = max(Decimal(0), given - cancelled * price)
    from_credit = min(device.credit_money, rest)
    device.credit_money -= from_credit
    rest -= from_credit
    device.owed += rest
    reversal.cancelled_days, reversal.owed = cancelled, rest


async def _lower_plan(session: ledger.AsyncSession, plan: Plan, payment: Payment, reversal: Reversal,
                      now: datetime, unlock_out: bool) -> bool:
    """Paid so far goes down by the amount; a plan paid off opens again while its unlock code has not gone out
    (its approval or queued code cancelled). True if it opened again."""
    plan.paid -= payment.amount
    reversal.plan_id = plan.id
    await ledger.add_plan_event(session=session, plan=plan, kind="reversed", at=now,
                                by_id=reversal.by_id, note=f"{payment.reference}: {reversal.reason or ''}".strip())
    reopened = False
    if plan.status is PlanStatus.PAID_OFF and plan.paid < plan.total and not unlock_out:
        if plan.unlock_approval_id is not None:
            await ledger.cancel_approval(session=session, approval_id=plan.unlock_approval_id, now=now)
        if plan.unlock_request_id is not None:
            await ledger.cancel_request(session=session, request_id=plan.unlock_request_id, reason=REVERSED,
                                        now=now)
        plan.status, plan.ended_at = PlanStatus.ACTIVE, None
        plan.unlock_approval_id = plan.unlock_request_id = None
        await ledger.add_plan_event(session=session, plan=plan, kind="reopened", at=now)
        reopened = True
    session.add(plan)
    return reopened
