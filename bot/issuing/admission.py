"""Admission: what goes into the queue. A request is checked against every limit and queued, or refused
with what is possible instead (the refusal kept in the ledger, its details as columns); a stored payment
becomes days exactly once (past the daily limit for the next local day, what does not fit kept as
prepaid days); prepaid days are queued when room opens.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Protocol

from bot.background import TurnPlaces
from bot.clock import Clock
from bot.erm.backend import check_product_id
from bot.issuing import limits, plan_terms
from bot.issuing.devices import DeviceDirectory
from bot.issuing.outcomes import Accepted, HoldReason, PaymentApplied, PaymentHeld, PlanBalance, Reason, Refused
from bot.issuing.ownership import Ownership
from bot.issuing.quota import Quota
from storage import ledger
from storage.db import Database
from storage.models import (
    ApprovalStatus,
    CodeKind,
    CodeRequest,
    Device,
    Payment,
    PaymentNotice,
    PaymentStatus,
    Plan,
    PlanStatus,
    Source,
    Status,
)

log = logging.getLogger("paygbot.issuing")

KEYS_KEPT = timedelta(days=2)
"""How long a request's key finds it again (Telegram sends an update again for a day at most)."""

PREPAID_BATCH_DAYS = 30
PREPAID_CHECK_EVERY = timedelta(minutes=1)


class Lane(Protocol):
    """Room for a request to go out at once (the engine's worker, while the engine pumps by itself)."""

    def reserve(self, device_id: int) -> bool: ...

    def release(self, device_id: int) -> None: ...

    def run_claimed(self, request: CodeRequest) -> None: ...


class Admission:
    """Requests and payments in, as QUEUED rows (or refusals) in the ledger."""

    def __init__(
        self, *, db: Database, clock: Clock, quota: Quota, devices: DeviceDirectory, kick: Callable[[], None],
        ownership: Ownership, lane: Lane, settle_delay: timedelta,
    ) -> None:
        self.db, self.clock, self.quota, self.devices, self.kick = db, clock, quota, devices, kick
        self.lane, self.settle_delay = lane, settle_delay
        """A request of a device with nothing else open and its gap over is claimed (SENDING) by the transaction
        that admits it and handed to ``lane``: the pump's read and claim (two transactions) are the most of
        what an agent's code waits for on a quiet day. ``settle_delay``: as the pump's claim holds it."""
        self._one_a_turn: contextlib.AbstractAsyncContextManager[None] = (
            TurnPlaces(1, hold_a_turn=True) if db.holds_the_loop else contextlib.nullcontext())
        """On SQLite, requests are queued one per turn of the event loop: a hundred chats' requests woken at once
        would otherwise be queued back to back, holding the loop while the first code's claim, its call to the
        ERM and the ERM's answers wait."""
        self.ownership = ownership
        self.limits = quota.limits
        self._prepaid_checked: datetime | None = None

    async def request(
        self,
        device_ref: str,
        kind: CodeKind,
        days: int | None = None,
        *,
        requested_by: int | None = None,
        chat_id: int | None = None,
        source: Source = Source.CHAT,
        key: str | None = None,
    ) -> Accepted | Refused:
        """Validate a request against every limit and queue it, or say why not and what is possible. ``key``
        names what asked (an update): asked again under the same key, the request made the first time is
        the answer."""
        try:
            check_product_id(device_ref)
        except ValueError:
            return Refused(Reason.BAD_DEVICE, device_ref)
        if kind is CodeKind.DAYS and (days is None or not limits.valid_days(days)):
            return Refused(Reason.BAD_DAYS, device_ref, fits=None)
        if kind is not CodeKind.DAYS:
            days = None
        async with self._one_a_turn:  # a device the ledger knows is found in the transaction that queues
            queued = await self._queue(None, device_ref, kind, days, requested_by, chat_id, source, key)
        if queued is not None:
            return queued
        device_id = await self.devices.resolve(device_ref)  # new to the ledger: looked up at the ERM first
        if isinstance(device_id, Refused):
            return device_id
        async with self._one_a_turn:
            queued = await self._queue(device_id, device_ref, kind, days, requested_by, chat_id, source, key)
        assert queued is not None
        return queued

    async def _queue(
        self, device_id: int | None, device_ref: str, kind: CodeKind, days: int | None, requested_by: int | None,
        chat_id: int | None, source: Source, key: str | None,
    ) -> Accepted | Refused | None:
        """One transaction: the request checked against the device's limits as they are now, and queued (or
        claimed, when it may go out at once: see ``lane``). Without ``device_id`` the device is found by
        ``device_ref``, and None, with nothing written, says the ledger does not know it."""
        now = self.clock.now()
        at_once = False
        try:
            async with self.db.write() as session:
                if device_id is None:
                    found = await ledger.find_device(session=session, ref=device_ref, lock=True)
                    if found is None:
                        return None
                    device, device_id = found, found.id
                    assert device_id is not None
                else:
                    device = await ledger.lock_device(session=session, device_id=device_id)
                load = await self.quota.admission_load(session, device_id, now, key, since=now - KEYS_KEPT)
                made = (await ledger.request_by_key(session=session, key=key, since=now - KEYS_KEPT)
                        if key is not None and load.made_for_key else None)
                if made is not None:  # the same update again: its request, as it was answered
                    log.info("request %s was made for %s already", made.id, key)
                    return Accepted(made.id, made.device_ref, made.kind, made.days,
                                    await self.quota.eta(session, device, now))
                refusal = await self.quota.check(session, device, device_ref, kind, days, now, load)
                if refusal is not None:
                    await ledger.add_request(session=session, request=_refused_row(
                        device, device_ref, kind, days, refusal, requested_by, source, now))
                    return refusal
                at_once = self._free_now(device, load, now) and self.lane.reserve(device_id)
                gap_ends = (limits.pacing_ready_at(device.last_generation_at, self.limits.min_gap, now)
                            if not at_once and load.open_count == 0 else None)
                request = CodeRequest(
                    device_id=device_id, device_ref=device_ref, kind=kind, days=days, source=source,
                    requested_by_id=requested_by, chat_id=chat_id, not_before=now, created_at=now, request_key=key,
                )
                if at_once:  # as the pump's claim leaves it
                    request.status, request.sent_at, request.attempts = Status.SENDING, now, 1
                    request.not_before = now + self.settle_delay
                request = await ledger.add_request(session=session, request=request)
                eta = await self.quota.eta(session, device, now, ahead=load.open_count)  # (its own is not counted)
        except BaseException:
            if at_once and device_id is not None:
                self.lane.release(device_id)
            raise
        assert request.id is not None
        log.info("request %s %s: device %s, %s %s", request.id, "sent" if at_once else "queued", device_ref, kind,
                 days or "")
        if at_once:
            self.lane.run_claimed(request)
        else:
            self.kick()
            if gap_ends is not None and gap_ends > now and self.clock.moves:
                _kick_as_the_gap_ends(gap_ends - self.limits.claim_ahead - now, self.kick)
        return Accepted(request.id, device_ref, kind, days, eta)

    def _free_now(self, device: Device, load: ledger.DeviceLoad, now: datetime) -> bool:
        """Whether a new request of the device may go out now, without the pump: nothing else of it is open,
        its gap is over, and its ids are the ERM's (a device known only by typed ids waits for the pump, which
        sends such devices one at a time)."""
        return (load.open_count == 0 and device.verified
                and limits.pacing_ready_at(device.last_generation_at, self.limits.min_gap, now) <= now)

    async def apply_payment(
        self, payment_id: int, device_id: int, *, assigned_by: int | None = None, chat_id: int | None = None
    ) -> PaymentApplied | PaymentHeld:
        """Turn a stored payment into days for the device at its daily price, exactly once.

        One transaction reads the payment, the device and its plan and writes the outcome: the days (queued
        now or for the next local day past the daily limit, the rest kept as prepaid days), the
        money below one day's price kept as the device's credit, or the reason it is held for a
        manager. A debt left by a reversed payment is paid first. With a plan, all of the payment counts
        toward paid so far, but only money beyond the deposit and within the total becomes days; reaching
        the total pays the plan off (:class:`~bot.issuing.ownership.Ownership`). A payment already applied
        changes nothing (``duplicate``).
        """
        now = self.clock.now()
        async with self.db.write() as session:
            payment = await ledger.lock_payment(session=session, payment_id=payment_id)
            if payment.status is PaymentStatus.MATCHED:
                return await _applied_before(session, payment)
            device = await ledger.lock_device(session=session, device_id=device_id)
            plan = await ledger.current_plan(session=session, device_id=device_id)
            if plan is not None and plan.id is not None:
                plan = await ledger.lock_plan(session=session, plan_id=plan.id)
            if payment.reversed_at is not None:  # taken back before it was applied: it stays as the reversal left it
                return PaymentHeld(payment_id, device_id, HoldReason.REVERSED)
            payment.device_id = device_id
            if assigned_by is not None:
                payment.assigned_by_id = assigned_by
            if not payment.currency and device.currency:
                payment.currency = device.currency
            hold = _hold_reason(payment, device, plan)
            if hold is not None:
                payment.status, payment.reason = PaymentStatus.UNMATCHED, hold.value
                if assigned_by is None:  # found by itself: every manager hears of it (an assigning one is answered)
                    payment.notice, payment.notified_at = PaymentNotice.MANAGERS, None
                session.add(payment)
                log.info("payment %s/%s kept for a manager: device %s, %s", payment.provider, payment.reference,
                         device.label, hold.value)
                return PaymentHeld(payment_id, device_id, hold)
            assert device.daily_price is not None
            split = plan_terms.share(plan.paid, payment.amount, plan.total, plan.deposit) if plan else None
            money = (split.for_days if split else payment.amount) + device.credit_money
            owed_paid = min(device.owed, money)
            device.owed -= owed_paid
            money -= owed_paid
            # an unlocked device needs no days: what it is paid (a plan short after a reversal) pays its debt
            days = 0 if device.unlocked else int(money // device.daily_price)
            device.credit_money = money - days * device.daily_price
            days_now, request_id, not_before = await self._queue_paid(
                session, device, payment, days, device.label,
                requested_by=payment.recorded_by_id or assigned_by, chat_id=chat_id or payment.chat_id, now=now)
            payment.status, payment.reason, payment.days = PaymentStatus.MATCHED, None, days
            payment.prepaid_days, payment.credit_left, payment.matched_at = days - days_now, device.credit_money, now
            payment.day_money = split.for_days if split else payment.amount
            payment.day_price, payment.owed_paid = device.daily_price, owed_paid or None
            payment.retry_at = None
            waits = not days_now or not_before > now or days_now < days
            payment.notice, payment.notified_at = (PaymentNotice.RECEIVED, None) if waits else (None, None)
            balance = None
            if plan is not None and split is not None:
                balance = await self._count_toward(session, plan, device, payment, split, now)
            session.add_all([payment, device])
        log.info("payment %s/%s: device %s, %s days (%s now, %s prepaid), credit %s", payment.provider,
                 payment.reference, device.label, days, days_now, days - days_now, device.credit_money)
        self.kick()
        return PaymentApplied(payment_id, False, device_id, days, days_now, days - days_now, request_id,
                              not_before if days_now else None, device.credit_money, balance, owed_paid)

    async def unlock_plan(self, plan_id: int, *, requested_by: int | None, chat_id: int | None,
                          approval_id: int | None = None) -> int | None:
        """Queue a paid-off plan's unlock code (the managers approved it), once: the request's id, or None
        when the plan is not paid off any more (a payment of it was reversed), or ``approval_id`` is not the
        approval it waits for now (an old button of a plan paid off again since)."""
        now = self.clock.now()
        async with self.db.write() as session:
            found = await ledger.get_plan(session=session, plan_id=plan_id)
            assert found is not None
            device = await ledger.lock_device(session=session, device_id=found.device_id)  # device, then plan:
            plan = await ledger.lock_plan(session=session, plan_id=plan_id)  # the order every writer keeps
            if approval_id is not None and plan.unlock_approval_id != approval_id:
                return None
            request_id = await self.ownership.queue_unlock(session, plan, device, now, requested_by=requested_by,
                                                           chat_id=chat_id)
        self.kick()
        return request_id

    @staticmethod
    async def _unlock_due(session: ledger.AsyncSession, device_id: int) -> bool:
        """The device's plan is paid off and its unlock code is asked of the managers or queued: days released
        now could go out after it (a days code after the unlock code locks the device again)."""
        plan = await ledger.current_plan(session=session, device_id=device_id)
        if plan is None or plan.status is not PlanStatus.PAID_OFF:
            return False
        if plan.unlock_request_id is not None:
            return True
        approval = (await ledger.get_approval(session=session, approval_id=plan.unlock_approval_id)
                    if plan.unlock_approval_id is not None else None)
        return approval is not None and approval.status is ApprovalStatus.PENDING

    async def _count_toward(self, session: ledger.AsyncSession, plan: Plan, device: Device, payment: Payment,
                            split: plan_terms.Share, now: datetime) -> PlanBalance:
        """Add the whole payment to the plan's paid so far; past the total, the plan is paid off (its unlock
        code queued or asked of the managers) and the excess kept for review."""
        plan.paid += payment.amount
        plan.customer_id = plan.customer_id or device.customer_id  # set before the device had a customer
        payment.plan_id, payment.plan_paid, payment.excess = plan.id, plan.paid, split.excess or None
        session.add(plan)
        if split.paid_off:
            await self.ownership.paid_off(session, plan, device, now)
        if split.paid_off or split.excess:
            payment.notice, payment.notified_at = PaymentNotice.PAID_OFF, None
        log.info("plan %s of device %s: paid %s of %s %s", plan.id, device.label, plan.paid, plan.total,
                 plan.currency)
        return PlanBalance(plan.paid, plan.total, plan.currency, split.excess, split.paid_off,
                           plan_terms.deposit_left(plan.paid, plan.deposit), split.for_days)

    async def _queue_paid(
        self, session: ledger.AsyncSession, device: Device, payment: Payment, days: int, device_ref: str, *,
        requested_by: int | None, chat_id: int | None, now: datetime,
    ) -> tuple[int, int | None, datetime]:
        """Queue what fits of a payment's days (past the daily limit: for the next local day) and keep
        the rest as the device's prepaid days; returns (days queued, their request, when they go out)."""
        assert device.id is not None and payment.id is not None
        days_now, not_before = await self.quota.fit_paid(session, device, days, now)
        device.prepaid_days += days - days_now
        request_id = None
        if days_now:
            request = await ledger.add_request(
                session=session,
                request=CodeRequest(
                    device_id=device.id, device_ref=device_ref, kind=CodeKind.DAYS, days=days_now,
                    source=Source.PAYMENT, payment_id=payment.id, payment_reference=payment.reference,
                    requested_by_id=requested_by, chat_id=chat_id, not_before=not_before, created_at=now,
                ),
            )
            request_id = request.id
        session.add(device)
        return days_now, request_id, not_before

    def prepaid_due(self, now: datetime) -> bool:
        """Whether :meth:`release_prepaid` would look at the ledger now (once a minute)."""
        return self._prepaid_checked is None or now - self._prepaid_checked >= PREPAID_CHECK_EVERY

    async def release_prepaid(self, now: datetime) -> None:
        """Queue prepaid days of devices that have room again (in batches, not a code a day)."""
        if not self.prepaid_due(now):
            return
        self._prepaid_checked = now
        async with self.db.read() as session:
            waiting = await ledger.devices_with_prepaid(session=session)
        for device_id in waiting:
            async with self.db.write() as session:
                device = await ledger.lock_device(session=session, device_id=device_id)
                if device.prepaid_days <= 0 or device.unlocked:
                    continue
                if await self._unlock_due(session, device_id):  # its unlock code comes instead
                    continue
                load = await self.quota.load(session, device_id, now)
                if load.pending_days:
                    continue
                fits = limits.headroom(device.credit_until, 0, now, self.limits.max_stacked_days)
                days = min(device.prepaid_days, fits)
                if days < min(device.prepaid_days, PREPAID_BATCH_DAYS):
                    continue
                not_before = await self.quota.daily_slot(session, device_id, now, load)
                await ledger.add_request(
                    session=session,
                    request=CodeRequest(
                        device_id=device_id, device_ref=device.label, kind=CodeKind.DAYS, days=days,
                        source=Source.PREPAID, not_before=not_before, created_at=now,
                    ),
                )
                device.prepaid_days -= days
                session.add(device)
            log.info("device %s: %s prepaid days queued", device.label, days)


async def _applied_before(session: ledger.AsyncSession, payment: Payment) -> PaymentApplied:
    """A payment applied already, as it was: nothing changes."""
    assert payment.device_id is not None and payment.id is not None
    existing = await ledger.request_for_payment(session=session, payment_id=payment.id)
    balance = None
    if payment.plan_id is not None and payment.plan_paid is not None:
        plan = await ledger.get_plan(session=session, plan_id=payment.plan_id)
        if plan is not None:
            balance = PlanBalance(payment.plan_paid, plan.total, plan.currency, payment.excess or Decimal(0),
                                  False, plan_terms.deposit_left(payment.plan_paid, plan.deposit),
                                  payment.day_money or Decimal(0))
    return PaymentApplied(payment.id, True, payment.device_id, payment.days, payment.days - payment.prepaid_days,
                          payment.prepaid_days, existing.id if existing else None,
                          existing.not_before if existing else None, payment.credit_left or Decimal(0), balance,
                          payment.owed_paid or Decimal(0))


def _hold_reason(payment: Payment, device: Device, plan: Plan | None) -> HoldReason | None:
    """Why the payment cannot become days for this device without a manager, if it cannot. A plan left short of
    its total by a reversal after its unlock code went out still takes payments (they pay what is owed)."""
    short = plan is not None and plan.paid < plan.total
    if plan is not None and plan.status is PlanStatus.PAID_OFF and not short:
        return HoldReason.PAID_OFF
    if device.unlocked and not short:
        return HoldReason.UNLOCKED
    if device.daily_price is None or device.daily_price <= 0:
        return HoldReason.NO_PRICE
    if payment.currency and payment.currency.upper() != (device.currency or "").upper():
        return HoldReason.CURRENCY  # a price without a currency takes no currency at face value
    return None


def _refused_row(
    device: Device, ref: str, kind: CodeKind, days: int | None, refusal: Refused,
    requested_by: int | None, source: Source, now: datetime,
) -> CodeRequest:
    """A refusal kept for the summary and the export (the reason a word, its details columns); already
    told, so never delivered again."""
    assert device.id is not None
    return CodeRequest(
        device_id=device.id, device_ref=ref, kind=kind, days=days, source=source, requested_by_id=requested_by,
        status=Status.REFUSED, reason=refusal.reason.value,
        refused_fits=refusal.fits if refusal.reason is Reason.STACKING else None,
        refused_until=refusal.possible_at if refusal.reason is Reason.DAILY_LIMIT else None,
        not_before=now, created_at=now, delivered_at=now,
    )


def _kick_as_the_gap_ends(delay: timedelta, kick: Callable[[], None]) -> None:
    """A request that waits only for its device's gap is claimed as the gap is about to end (as the last code's
    record does for the ones queued before it), not at the pump's first tick after it."""
    asyncio.get_running_loop().call_later(max(0.0, delay.total_seconds()), kick)
