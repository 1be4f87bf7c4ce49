"""Plans as they stood at a moment, read from the ledger's own history (issue 17, in progress): what
portfolio health is computed from, so that a past day's figures do not change when later rows arrive.

At a moment ``at``: the plans started by then; each one's terms from its last event by then; its paid so far
from the opening balance, the payments applied by then and the reversals made by then; its status from its
end (``ended_at``) if that came by then; its device's credit from the last code issued by then. Reads only
rows stamped at or before ``at``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import exists, or_
from sqlalchemy.orm import aliased
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import (
    GENERATED_STATUSES,
    CodeRequest,
    Customer,
    Device,
    Payment,
    Plan,
    PlanEvent,
    PlanStatus,
    Reversal,
)

TERMS_EVENTS = ("created", "imported", "changed", "price")
PaidOff = aliased(Plan)
"""A device's plan paid off: the device is its customer's, nobody visits it for money."""


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


async def plans_at(*, session: AsyncSession, at: datetime) -> list[PlanAt]:
    """Every plan started by ``at``, as it stood then."""
    plans = (await session.exec(
        select(Plan, Customer.registered_by_id).outerjoin(Customer, col(Customer.id) == Plan.customer_id)
        .where(col(Plan.started_at) <= at).order_by(col(Plan.id))
    )).all()
    if not plans:
        return []
    ids = [plan.id for plan, _ in plans if plan.id is not None]
    terms: dict[int, PlanEvent] = {}
    for event in (await session.exec(
        select(PlanEvent).where(col(PlanEvent.plan_id).in_(ids), col(PlanEvent.kind).in_(TERMS_EVENTS),
                                col(PlanEvent.at) <= at).order_by(col(PlanEvent.id))
    )).all():
        terms[event.plan_id] = event  # the last one by then
    paid: dict[int, Decimal] = {}
    for plan_id, amount in (await session.exec(
        select(Payment.plan_id, Payment.amount).where(col(Payment.plan_id).in_(ids), col(Payment.matched_at) <= at)
    )).all():
        if plan_id is not None:
            paid[plan_id] = paid.get(plan_id, Decimal(0)) + amount
    for plan_id, amount in (await session.exec(
        select(Reversal.plan_id, Reversal.amount).where(col(Reversal.plan_id).in_(ids), col(Reversal.at) <= at)
    )).all():
        if plan_id is not None:
            paid[plan_id] = paid.get(plan_id, Decimal(0)) - amount
    credit = await _credit_at(session, [plan.device_id for plan, _ in plans], at)
    found = []
    for plan, agent_id in plans:
        assert plan.id is not None
        event = terms.get(plan.id)
        ended = plan.ended_at is not None and plan.ended_at <= at
        found.append(PlanAt(
            plan_id=plan.id, device_id=plan.device_id, status=plan.status.value if ended else "active",
            total=event.total if event else plan.total, daily_price=event.daily_price if event else plan.daily_price,
            paid=plan.opening_paid + paid.get(plan.id, Decimal(0)), started_at=plan.started_at,
            ended_at=plan.ended_at if ended else None, credit_until=credit.get(plan.device_id), agent_id=agent_id,
        ))
    return found


async def _credit_at(session: AsyncSession, device_ids: list[int], at: datetime) -> dict[int, datetime | None]:
    """Each device's credit as its last code issued by ``at`` left it."""
    credit: dict[int, tuple[datetime, datetime | None]] = {}
    for device_id, issued_at, until in (await session.exec(
        select(CodeRequest.device_id, CodeRequest.issued_at, CodeRequest.credit_until)
        .where(col(CodeRequest.device_id).in_(device_ids), col(CodeRequest.status).in_(GENERATED_STATUSES),
               col(CodeRequest.issued_at) <= at)
    )).all():
        if issued_at is not None and (device_id not in credit or issued_at > credit[device_id][0]):
            credit[device_id] = (issued_at, until)
    return {device_id: until for device_id, (_, until) in credit.items()}


async def collected(*, session: AsyncSession, start: datetime, end: datetime) -> Decimal:
    """Money counted toward plans in [start, end) (applied then), less what reversals took back then."""
    paid = (await session.exec(select(Payment.amount).where(
        col(Payment.plan_id).is_not(None), col(Payment.matched_at) >= start, col(Payment.matched_at) < end))).all()
    back = (await session.exec(select(Reversal.amount).where(
        col(Reversal.plan_id).is_not(None), col(Reversal.at) >= start, col(Reversal.at) < end))).all()
    return sum(paid, Decimal(0)) - sum(back, Decimal(0))


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
