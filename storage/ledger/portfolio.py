"""Plans as they stood at a moment, and the days kept once they are over: what portfolio health is computed
from, so that a past day's figures do not change when later rows arrive.

The plans at a moment ``to`` are the plans now, less everything stamped at or after ``to`` (rewound): the payments
counted toward them and the reversals since (paid so far), their events since (terms, status, whether the
ledger knew the plan at all), and the codes issued since (their device's credit). Reading only rows stamped
after ``to`` keeps it fast on a big ledger: a day just over is a few rows away from now.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import exists, or_
from sqlalchemy.orm import aliased
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import (
    GENERATED_STATUSES,
    CodeKind,
    CodeRequest,
    Customer,
    Device,
    Payment,
    Plan,
    PlanEvent,
    PlanStatus,
    PortfolioDay,
    Reversal,
)

PaidOff = aliased(Plan)
"""A device's plan paid off: the device is its customer's, nobody visits it for money."""
STATUS_AFTER = {"created": "active", "imported": "active", "reopened": "active", "paid_off": "paid_off",
                "repossessed": "repossessed", "merged": "repossessed"}
"""The plan events that change a plan's status, and its status after them."""


@dataclass(frozen=True)
class PlanAt:
    """One plan at a moment (plain values: :mod:`bot.portfolio` turns them into figures)."""

    plan_id: int
    device_id: int
    status: str
    total: Decimal
    daily_price: Decimal
    paid: Decimal
    started_at: datetime
    ended_at: datetime | None
    credit_until: datetime | None
    agent_id: int | None


async def plans_now(*, session: AsyncSession) -> list[PlanAt]:
    """Every plan as it stands: its own columns, its device's credit, its customer's agent."""
    rows = (await session.exec(
        select(Plan.id, Plan.device_id, Plan.status, Plan.total, Plan.daily_price, Plan.paid, Plan.started_at,
               Plan.ended_at, Device.credit_until, Customer.registered_by_id)
        .join(Device, col(Device.id) == Plan.device_id)
        .outerjoin(Customer, col(Customer.id) == Plan.customer_id)
        .order_by(col(Plan.id))
    )).all()
    return [PlanAt(plan_id, device_id, status.value, total, price, paid, started, ended, credit, agent)
            for plan_id, device_id, status, total, price, paid, started, ended, credit, agent in rows]


async def plans_at(*, session: AsyncSession, at: datetime) -> list[PlanAt]:
    """Every plan the ledger knew at ``at``, as it stood then."""
    return await rewind(session=session, plans=await plans_now(session=session), to=at)


async def rewind(*, session: AsyncSession, plans: Sequence[PlanAt], to: datetime,
                 since: datetime | None = None) -> list[PlanAt]:
    """``plans`` as they stood at ``since`` (None: now) taken back to ``to``, by undoing every row stamped at
    or after ``to`` (and before ``since``): a moment's own rows belong to what follows it, as a day's first
    moment belongs to that day."""

    def window(column: Any) -> Any:
        after = col(column) >= to
        return after if since is None else after & (col(column) < since)

    paid: dict[int, Decimal] = defaultdict(Decimal)
    for plan_id, amount in (await session.exec(
        select(Payment.plan_id, Payment.amount).where(col(Payment.plan_id).is_not(None), window(Payment.matched_at))
    )).all():
        paid[plan_id] -= amount
    for plan_id, amount in (await session.exec(
        select(Reversal.plan_id, Reversal.amount).where(col(Reversal.plan_id).is_not(None), window(Reversal.at))
    )).all():
        paid[plan_id] += amount
    events = await _events_until(session, to, window)
    credit = await _credit_at(session, to, window)
    found = []
    for plan in plans:
        if plan.started_at >= to:
            continue
        then = plan
        if plan.plan_id in events:
            history = events[plan.plan_id]
            if not history:
                continue  # the ledger did not know it yet (an import brings plans started long before)
            then = _from_events(plan, history)
        if plan.plan_id in paid or plan.device_id in credit:
            then = replace(then, paid=then.paid + paid.get(plan.plan_id, Decimal(0)),
                           credit_until=credit.get(plan.device_id, plan.credit_until))
        found.append(then)  # most plans unchanged since: the same object, no copy
    return found


def _from_events(plan: PlanAt, history: list[PlanEvent]) -> PlanAt:
    """A plan's terms after its last event, and its status after its last event that changed it."""
    status, ended_at = "active", None
    for event in history:
        if event.kind in STATUS_AFTER:
            status = STATUS_AFTER[event.kind]
            ended_at = None if status == "active" else event.at
    last = history[-1]
    return replace(plan, status=status, ended_at=ended_at, total=last.total, daily_price=last.daily_price)


async def _events_until(session: AsyncSession, to: datetime,
                        window: Callable[[Any], Any]) -> dict[int, list[PlanEvent]]:
    """For each plan with an event in the window, its events before ``to`` (oldest first; maybe none)."""
    Later = aliased(PlanEvent)  # noqa: N806 - apart from the outer query's table, or it would be correlated
    changed = select(Later.plan_id).where(window(Later.at)).distinct()
    touched: dict[int, list[PlanEvent]] = {plan_id: [] for plan_id in (await session.exec(changed)).all()}
    if touched:
        for event in (await session.exec(
            select(PlanEvent).where(col(PlanEvent.plan_id).in_(changed), col(PlanEvent.at) < to)
            .order_by(col(PlanEvent.id))
        )).all():
            touched[event.plan_id].append(event)
    return touched


async def _credit_at(session: AsyncSession, to: datetime,
                     window: Callable[[Any], Any]) -> dict[int, datetime | None]:
    """For each device issued a code in the window, its credit at ``to``: what its last code issued before
    then left it; with none, what its first code after stacked on (or no credit)."""
    issued = col(CodeRequest.status).in_(GENERATED_STATUSES)
    found: dict[int, datetime | None] = {}
    for device_id, issued_at, until, kind, days in (await session.exec(
        select(CodeRequest.device_id, CodeRequest.issued_at, CodeRequest.credit_until, CodeRequest.kind,
               CodeRequest.days)
        .where(issued, window(CodeRequest.issued_at)).order_by(col(CodeRequest.issued_at).desc())
    )).all():
        found[device_id] = _stacked_on(kind, days, until, issued_at)  # the earliest wins: ordered latest first
    if not found:
        return found
    Earlier = aliased(CodeRequest)  # noqa: N806
    Later = aliased(CodeRequest)  # noqa: N806
    touched = (select(Later.device_id).where(col(Later.status).in_(GENERATED_STATUSES), window(Later.issued_at))
               .distinct().subquery())
    last_before = (select(Earlier.id)
                   .where(Earlier.device_id == touched.c.device_id, col(Earlier.status).in_(GENERATED_STATUSES),
                          col(Earlier.issued_at) < to)
                   .order_by(col(Earlier.issued_at).desc()).limit(1).scalar_subquery())
    for device_id, until in (await session.exec(
        select(touched.c.device_id, CodeRequest.credit_until).select_from(touched)
        .join(CodeRequest, col(CodeRequest.id) == last_before)
    )).all():
        found[device_id] = until  # one step back along (device_id, issued_at) for each device
    return found


def _stacked_on(kind: CodeKind, days: int | None, until: datetime | None,
                issued_at: datetime | None) -> datetime | None:
    """The credit a days code found when issued, where it added to running credit (None otherwise)."""
    if kind is not CodeKind.DAYS or days is None or until is None or issued_at is None:
        return None
    before = until - timedelta(days=days)
    return before if before > issued_at else None


async def collected(*, session: AsyncSession, start: datetime, end: datetime) -> Decimal:
    """Money counted toward plans in [start, end), less what reversals took back then."""
    paid = (await session.exec(select(Payment.amount).where(
        col(Payment.plan_id).is_not(None), col(Payment.matched_at) >= start, col(Payment.matched_at) < end))).all()
    back = (await session.exec(select(Reversal.amount).where(
        col(Reversal.plan_id).is_not(None), col(Reversal.at) >= start, col(Reversal.at) < end))).all()
    return sum(paid, Decimal(0)) - sum(back, Decimal(0))


async def portfolio_days(*, session: AsyncSession, first: date, last: date) -> dict[date, PortfolioDay]:
    """The days kept from ``first`` to ``last``."""
    return {row.day: row for row in (await session.exec(
        select(PortfolioDay).where(col(PortfolioDay.day) >= first, col(PortfolioDay.day) <= last))).all()}


async def keep_portfolio_days(*, session: AsyncSession, days: Sequence[PortfolioDay]) -> int:
    """Keep the days not kept yet (a day once kept is never rewritten); how many were new."""
    if not days:
        return 0
    kept = set(await portfolio_days(session=session, first=min(d.day for d in days), last=max(d.day for d in days)))
    new = [day for day in days if day.day not in kept]
    session.add_all(new)
    return len(new)


@dataclass(frozen=True)
class Visit:
    """A customer's device whose credit ended: who to visit, how late, and what is owed."""

    device: str
    customer: str
    phone: str
    agent_id: int | None
    credit_until: datetime | None
    started_at: datetime | None
    daily_price: Decimal | None
    currency: str | None
    left: Decimal | None
    """Left to pay on its plan (None: pay-as-you-go)."""


async def visits(*, session: AsyncSession, ended_before: datetime, agent_id: int | None = None) -> list[Visit]:
    """Customers' devices (not unlocked, not paid off) whose credit ended before ``ended_before`` — or that never
    had any, on a plan started before then — longest ago first; only ``agent_id``'s customers when given."""
    query = (
        select(Device, Customer, Plan)
        .join(Customer, col(Customer.id) == Device.customer_id)
        .outerjoin(Plan, (col(Plan.device_id) == Device.id) & (col(Plan.status) == PlanStatus.ACTIVE))
        .where(col(Device.unlocked).is_(False),
               ~exists().where(col(PaidOff.device_id) == Device.id, col(PaidOff.status) == PlanStatus.PAID_OFF),
               or_(col(Device.credit_until) < ended_before,
                   col(Device.credit_until).is_(None) & col(Plan.started_at).is_not(None)
                   & (col(Plan.started_at) < ended_before)))
    )
    if agent_id is not None:
        query = query.where(Customer.registered_by_id == agent_id)
    found = [Visit(device.label, customer.name, customer.phone, customer.registered_by_id, device.credit_until,
                   plan.started_at if plan else None, device.daily_price, device.currency,
                   max(Decimal(0), plan.total - plan.paid) if plan else None)
             for device, customer, plan in (await session.exec(query)).all()]
    return sorted(found, key=lambda visit: (visit.credit_until or visit.started_at or ended_before, visit.device))
