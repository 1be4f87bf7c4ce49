"""Setting, changing, showing and ending payment plans (``/plan``, ``/repossess``, ``/balance``, ``/device``).

Every change is one transaction with the plan and device rows locked, and leaves a ``PlanEvent`` with the
terms after it. The plan's price per day is the device's daily price (what turns payments into days), so
setting one sets the other.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from zoneinfo import ZoneInfo

from bot.clock import Clock
from bot.issuing import IssuingEngine, PlanBalance, limits, plan_terms
from storage import ledger
from storage.db import Database
from storage.models import Customer, Device, Payment, Person, Plan, PlanEvent, PlanStatus

log = logging.getLogger("paygbot.plans")

MAX_TOTAL = Decimal("1000000000")
_MONEY = re.compile(r"[0-9]{1,10}(?:[.,][0-9]{1,2})?")
"""ASCII digits only (``\\d`` takes other scripts' digits, which Decimal reads as money)."""
_CURRENCY = re.compile(r"[A-Za-z]{3}")


def parse_money(text: str, *, zero: bool = False) -> Decimal | None:
    """An amount as people type it (``30000``, ``30000.50``, ``30000,5``), above 0 (or 0 with ``zero``)."""
    text = text.strip()
    if not _MONEY.fullmatch(text):
        return None
    try:
        amount = Decimal(text.replace(",", "."))
    except InvalidOperation:
        return None
    return amount if (Decimal(0) <= amount if zero else Decimal(0) < amount) and amount <= MAX_TOTAL else None


def parse_currency(text: str) -> str | None:
    return text.strip().upper() if _CURRENCY.fullmatch(text.strip()) else None


@dataclass(frozen=True)
class Terms:
    """What a plan asks: the total price, the price per day, the currency and the deposit."""

    total: Decimal
    daily_price: Decimal
    currency: str
    deposit: Decimal = Decimal(0)


class Bad(StrEnum):
    """Why terms are refused (nothing changes)."""

    PRICE_ABOVE_TOTAL = "price_above_total"
    DEPOSIT_ABOVE_TOTAL = "deposit_above_total"
    CURRENCY_CHANGE = "currency_change"
    """Money was counted toward the plan in its currency already."""
    PAID_OFF = "paid_off"
    UNLOCKED = "unlocked"
    NO_PLAN = "no_plan"


def check_terms(terms: Terms) -> Bad | None:
    if terms.daily_price > terms.total:
        return Bad.PRICE_ABOVE_TOTAL
    if terms.deposit > terms.total:
        return Bad.DEPOSIT_ABOVE_TOTAL
    return None


@dataclass(frozen=True)
class PlanView:
    """A device's plan as people see it: the plan, its history and where the device's credit stands."""

    plan: Plan
    device: Device
    customer: Customer | None
    events: list[PlanEvent]
    left: Decimal
    percent: int
    deposit_left: Decimal
    days_left: int
    theirs_on: date | None
    """The day it becomes theirs at the plan's price per day (None: paid off)."""


@dataclass(frozen=True)
class PlanSet:
    """``/plan`` done: ``created`` or changed; ``paid_off``: the new terms pay it off now."""

    view: PlanView
    created: bool
    changed: bool
    paid_off: bool


@dataclass(frozen=True)
class Repossessed:
    view: PlanView
    customer: Customer | None


class Plans:
    """Payment plans of devices, through the ledger (and the engine, for the unlock code of a plan paid off)."""

    def __init__(self, *, db: Database, engine: IssuingEngine, clock: Clock) -> None:
        self.db, self.engine, self.clock = db, engine, clock

    async def set(self, device_id: int, terms: Terms, *, by: Person | None) -> PlanSet | Bad:
        """Give the device a plan, or change its plan's terms (paid so far stays); the daily price follows."""
        bad = check_terms(terms)
        if bad is not None:
            return bad
        now = self.clock.now()
        by_id = by.id if by is not None else None
        async with self.db.write() as session:
            device = await ledger.lock_device(session=session, device_id=device_id)
            plan = await ledger.current_plan(session=session, device_id=device_id)
            if plan is not None:
                plan = await ledger.lock_plan(session=session, plan_id=plan.id or 0)
            if plan is not None and plan.status is PlanStatus.PAID_OFF:
                return Bad.PAID_OFF
            if plan is None and device.unlocked:
                return Bad.UNLOCKED
            created = plan is None
            if plan is None:
                plan = await ledger.add_plan(session=session, plan=Plan(
                    device_id=device_id, customer_id=device.customer_id, total=terms.total,
                    daily_price=terms.daily_price, currency=terms.currency, deposit=terms.deposit,
                    started_at=now, created_by_id=by_id,
                ))
                await ledger.add_plan_event(session=session, plan=plan, kind="created", at=now, by_id=by_id)
                changed = True
            else:
                if terms.currency != plan.currency and plan.paid > 0:
                    return Bad.CURRENCY_CHANGE
                changed = (plan.total, plan.daily_price, plan.currency, plan.deposit) != (
                    terms.total, terms.daily_price, terms.currency, terms.deposit)
                if changed:
                    plan.total, plan.daily_price, plan.currency, plan.deposit = (
                        terms.total, terms.daily_price, terms.currency, terms.deposit)
                    await ledger.add_plan_event(session=session, plan=plan, kind="changed", at=now, by_id=by_id)
            device.daily_price, device.currency = terms.daily_price, terms.currency
            plan.customer_id = plan.customer_id or device.customer_id
            paid_off = plan.status is PlanStatus.ACTIVE and plan.paid >= plan.total
            if paid_off:  # a lower total than was paid already
                await self.engine.ownership.paid_off(session, plan, device, now)
            session.add_all([plan, device])
            view = await _view(session, plan, device, now, self.engine.limits.tz)
        if paid_off:
            self.engine.kick()
        log.info("plan %s of device %s %s: %s %s, %s a day, deposit %s", plan.id, device.label,
                 "set" if created else "changed" if changed else "unchanged", plan.total, plan.currency,
                 plan.daily_price, plan.deposit)
        return PlanSet(view, created, changed, paid_off)

    async def set_price(self, device_id: int, price: Decimal, currency: str | None, *, default_currency: str,
                        by: Person | None) -> Bad | None:
        """``/price``: the device's daily price and currency (the one given, else its own, else
        ``default_currency``); its active plan's price per day follows, in the same transaction. Another currency
        than the plan's, once money was counted in it, is refused and nothing changes."""
        now = self.clock.now()
        async with self.db.write() as session:
            device = await ledger.lock_device(session=session, device_id=device_id)
            plan = await ledger.current_plan(session=session, device_id=device_id)
            if plan is not None and plan.id is not None:
                plan = await ledger.lock_plan(session=session, plan_id=plan.id)
            currency = currency or device.currency or default_currency
            active = plan is not None and plan.status is PlanStatus.ACTIVE
            if plan is not None and active and currency != plan.currency and plan.paid > 0:
                return Bad.CURRENCY_CHANGE
            device.daily_price, device.currency = price, currency
            session.add(device)
            if plan is not None and active and (plan.daily_price, plan.currency) != (price, currency):
                plan.daily_price, plan.currency = price, currency
                session.add(plan)
                await ledger.add_plan_event(session=session, plan=plan, kind="price", at=now,
                                            by_id=by.id if by else None)
        return None

    async def view(self, device_id: int) -> PlanView | None:
        """The device's current plan (active or paid off), or None."""
        async with self.db.read() as session:
            device = await ledger.get_device(session=session, device_id=device_id)
            plan = await ledger.current_plan(session=session, device_id=device_id)
            if device is None or plan is None:
                return None
            return await _view(session, plan, device, self.clock.now(), self.engine.limits.tz)

    async def views_of_customer(self, customer_id: int) -> dict[int, PlanView]:
        """The plans of a customer's devices, by device id (``/balance``)."""
        now = self.clock.now()
        async with self.db.read() as session:
            devices = await ledger.customer_devices(session=session, customer_id=customer_id)
            plans = await ledger.plans_of_devices(session=session, device_ids=[d.id for d in devices if d.id])
            return {device.id: await _view(session, plans[device.id], device, now, self.engine.limits.tz,
                                           history=False)
                    for device in devices if device.id in plans}

    async def agent_of(self, device: Device) -> Person | None:
        """The active agent who looks after the device's customer (who registered them), if any."""
        async with self.db.read() as session:
            return await self.engine.ownership.agent_of(session, device)

    async def rows(self) -> list[ledger.PlanRow]:
        """Every plan with its device, customer and agent (``/export plans``)."""
        async with self.db.read() as session:
            return await ledger.plan_rows(session=session)

    async def repossess(self, device_id: int, *, by: Person | None) -> Repossessed | Bad:
        """End the device's active plan as repossessed: the device leaves its customer (and may get a new one
        and a new plan); its prepaid days, money credit and debt go with the old plan (kept in its history)."""
        now = self.clock.now()
        async with self.db.write() as session:
            device = await ledger.lock_device(session=session, device_id=device_id)
            plan = await ledger.current_plan(session=session, device_id=device_id)
            if plan is None:
                return Bad.NO_PLAN
            plan = await ledger.lock_plan(session=session, plan_id=plan.id or 0)
            if plan.status is PlanStatus.PAID_OFF:
                return Bad.PAID_OFF
            customer = None
            if device.customer_id is not None:
                customer = await ledger.get_customer(session=session, customer_id=device.customer_id)
            plan.status, plan.ended_at = PlanStatus.REPOSSESSED, now
            note = (f"customer {customer.name} {customer.phone}; " if customer else "") + (
                f"prepaid days {device.prepaid_days}, credit {device.credit_money}, owed {device.owed}")
            await ledger.add_plan_event(session=session, plan=plan, kind="repossessed", at=now,
                                        by_id=by.id if by else None, note=note)
            device.customer_id, device.prepaid_days = None, 0
            device.credit_money, device.owed = Decimal(0), Decimal(0)
            session.add_all([plan, device])
            view = await _view(session, plan, device, now, self.engine.limits.tz)
        log.info("plan %s of device %s repossessed (paid %s of %s)", plan.id, device.label, plan.paid, plan.total)
        return Repossessed(view, customer)


async def receipt_balance(db: Database, payment: Payment) -> PlanBalance | None:
    """A payment's receipt balance: its plan's paid so far right after it, of the total (the paid-off and
    excess lines are the paid-off notice's)."""
    if payment.plan_id is None or payment.plan_paid is None:
        return None
    async with db.read() as session:
        plan = await ledger.get_plan(session=session, plan_id=payment.plan_id)
    if plan is None:
        return None
    return PlanBalance(payment.plan_paid, plan.total, plan.currency, Decimal(0), False,
                       plan_terms.deposit_left(payment.plan_paid, plan.deposit), payment.day_money or Decimal(0))


async def _view(session: ledger.AsyncSession, plan: Plan, device: Device, now: datetime, tz: ZoneInfo, *,
                history: bool = True) -> PlanView:
    customer = None
    # a plan set before its device had a customer is the customer's registered since (while it runs)
    customer_id = plan.customer_id if plan.customer_id is not None or plan.status is not PlanStatus.ACTIVE \
        else device.customer_id
    if customer_id is not None:
        customer = await ledger.get_customer(session=session, customer_id=customer_id)
    events = list(await ledger.plan_events(session=session, plan_id=plan.id or 0)) if history else []
    active = plan.status is PlanStatus.ACTIVE
    return PlanView(
        plan=plan, device=device, customer=customer, events=events,
        left=plan_terms.left(plan.paid, plan.total), percent=plan_terms.percent(plan.paid, plan.total),
        deposit_left=plan_terms.deposit_left(plan.paid, plan.deposit),
        days_left=limits.days_left(device.credit_until, now),
        theirs_on=plan_terms.becomes_theirs(plan.paid, plan.total, plan.daily_price, device.credit_until, now, tz)
        if active else None,
    )
