"""A payment taken back by its provider (``/reverse``, or a signed webhook body with ``"reverses"``).

One transaction, with the payment, device and plan rows locked (in that order, as every writer takes them):
paid so far goes down by the amount, and the device gives back what it now holds beyond what is paid for —
with a plan, what its payments gave toward days less earlier reversals, beyond what paid so far still pays
for above the deposit; without one, the payment's days. Days of the payment not yet issued go first (its
queued code cancelled, its prepaid days removed), then its money credit; what is left was already issued as
codes and cannot be taken back, so the device owes it (the next payments pay it first). A plan paid off by
it opens again unless its unlock code has left the queue; a plan repossessed since keeps the debt, not the
device. A payment not yet applied simply never will be. Reversing twice, or a reference never seen, changes
nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from bot.clock import Clock
from bot.issuing.outcomes import WAIT_KEPT_PREPAID as KEPT_PREPAID
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

ZERO = Decimal(0)
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
                reopened = await _lower_plan(session, plan, device, payment, reversal, now)
            over = await _over_given(session, payment, plan)
            if plan is not None and plan.status is PlanStatus.REPOSSESSED \
                    and not await ledger.plan_merged(session=session, plan_id=plan.id or 0):
                # the device is someone else's now: what was given is recorded against the old plan only
                reversal.owed = reversal.taken = over
            else:
                await _take_back(session, payment, device, reversal, over, now)
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


async def _over_given(session: ledger.AsyncSession, payment: Payment, plan: Plan | None) -> Decimal:
    """How much the device must give back. With a plan (paid so far lowered already): what the reversal takes
    out of what paid so far pays for above the deposit, under the terms now in force (so reversing a deposit
    takes back the days of the payments after it), never more than the device holds from the plan's payments
    (what they gave toward days less what reversals took back). Without one: this payment's days."""
    if plan is None or plan.id is None:
        return payment.day_money if payment.day_money is not None else payment.amount
    given, taken = await ledger.plan_money(session=session, plan_id=plan.id)
    floor = max(plan.deposit, plan.opening_paid)

    def paid_for(paid: Decimal) -> Decimal:
        return max(ZERO, min(paid, plan.total) - floor)

    return max(ZERO, min(given - taken, paid_for(plan.paid + payment.amount) - paid_for(plan.paid)))


async def _take_back(session: ledger.AsyncSession, payment: Payment, device: Device, reversal: Reversal,
                     over: Decimal, now: datetime) -> None:
    """Take ``over`` back from the device: the payment's days not yet issued (its queued code cancelled, its
    prepaid days removed; more than ``over`` comes back as prepaid days and credit), then its money credit; what
    is left was issued as codes and is owed."""
    assert payment.id is not None
    reversal.taken = over
    if over <= 0:
        return
    price = payment.day_price or device.daily_price or ZERO  # what the cancelled days were bought at
    today = device.daily_price or price  # what a surplus buys now, as a new payment would
    cancelled = 0
    request = await ledger.request_for_payment(session=session, payment_id=payment.id)
    if request is not None and request.id is not None and request.days:
        if await ledger.cancel_request(session=session, request_id=request.id, reason=REVERSED, now=now):
            cancelled += request.days
        elif request.status is Status.FAILED or (request.status is Status.REFUSED and request.reason != KEPT_PREPAID):
            cancelled += request.days  # never made: nothing was given (days kept as prepaid are counted below)
    prepaid = min(payment.prepaid_days, device.prepaid_days)
    device.prepaid_days -= prepaid
    cancelled += prepaid
    back = cancelled * price
    if back >= over:  # more than is owed back: the rest pays any debt first, then stays as prepaid days and credit
        surplus = back - over
        settled = min(device.owed, surplus)
        device.owed -= settled
        surplus -= settled
        days = int(surplus // today) if today > 0 else 0
        device.prepaid_days += days
        device.credit_money += surplus - days * today
        owed = ZERO
    else:
        rest = over - back
        from_credit = min(device.credit_money, rest)
        device.credit_money -= from_credit
        owed = rest - from_credit
    device.owed += owed
    reversal.cancelled_days, reversal.owed = cancelled, owed


async def _lower_plan(session: ledger.AsyncSession, plan: Plan, device: Device, payment: Payment,
                      reversal: Reversal, now: datetime) -> bool:
    """Paid so far goes down by the amount; a plan paid off opens again unless its unlock code has left the
    queue, or the device was unlocked otherwise (a manager's /free): its approval or queued code cancelled.
    True if it opened again."""
    plan.paid -= payment.amount
    reversal.plan_id = plan.id
    await ledger.add_plan_event(session=session, plan=plan, kind="reversed", at=now,
                                by_id=reversal.by_id, note=f"{payment.reference}: {reversal.reason or ''}".strip())
    reopened = False
    if plan.status is PlanStatus.PAID_OFF and plan.paid < plan.total:
        unlock_out = device.unlocked
        if plan.unlock_request_id is not None and not unlock_out and not await ledger.cancel_request(
                session=session, request_id=plan.unlock_request_id, reason=REVERSED, now=now):
            # not queued any more: out if the worker claimed it (or made it), not if it was refused or failed
            request = await ledger.get_request(session=session, request_id=plan.unlock_request_id)
            unlock_out = request is not None and request.status in (Status.SENDING, *GENERATED_STATUSES)

        if not unlock_out:
            if plan.unlock_approval_id is not None:
                await ledger.cancel_approval(session=session, approval_id=plan.unlock_approval_id, now=now)
            plan.status, plan.ended_at = PlanStatus.ACTIVE, None
            plan.unlock_approval_id = plan.unlock_request_id = None
            await ledger.add_plan_event(session=session, plan=plan, kind="reopened", at=now)
            reopened = True
    session.add(plan)
    return reopened
