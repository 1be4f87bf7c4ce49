"""Payment plans: a device's current plan, its history, reversals of payments, the plans' export."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import bindparam, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import (
    PLAN_IS_CURRENT,
    Approval,
    ApprovalStatus,
    CodeRequest,
    Customer,
    Device,
    DeviceAlias,
    Payment,
    Person,
    Plan,
    PlanEvent,
    Reversal,
    Status,
)

_CURRENT_PLAN = select(Plan).where(Plan.device_id == bindparam("device_id"), PLAN_IS_CURRENT
                                   ).execution_options(populate_existing=True)


async def current_plan(*, session: AsyncSession, device_id: int) -> Plan | None:
    """The device's plan that is not repossessed (active or paid off), if any."""
    return (await session.exec(_CURRENT_PLAN, params={"device_id": device_id})).first()  # type: ignore[call-overload]


async def lock_plan(*, session: AsyncSession, plan_id: int) -> Plan:
    """The plan row, fresh, for a read-modify-write (the writer transaction serialises these)."""
    plan = await session.get(Plan, plan_id, populate_existing=True, with_for_update=True)
    assert plan is not None
    return plan


async def get_plan(*, session: AsyncSession, plan_id: int) -> Plan | None:
    return await session.get(Plan, plan_id, populate_existing=True)


async def plans_of_devices(*, session: AsyncSession, device_ids: Sequence[int]) -> dict[int, Plan]:
    """The current plan of each of the devices that has one."""
    if not device_ids:
        return {}
    query = select(Plan).where(col(Plan.device_id).in_(device_ids), PLAN_IS_CURRENT)
    return {plan.device_id: plan for plan in (await session.exec(query)).all()}


async def add_plan(*, session: AsyncSession, plan: Plan) -> Plan:
    session.add(plan)
    await session.flush()
    return plan


async def add_plan_event(*, session: AsyncSession, plan: Plan, kind: str, at: datetime, by_id: int | None = None,
                         note: str | None = None) -> None:
    """Keep the plan's terms as they are now, and what changed them."""
    assert plan.id is not None
    session.add(PlanEvent(plan_id=plan.id, at=at, kind=kind, by_id=by_id, total=plan.total,
                          daily_price=plan.daily_price, currency=plan.currency, deposit=plan.deposit, paid=plan.paid,
                          note=note[:300] if note else None))


async def plan_events(*, session: AsyncSession, plan_id: int) -> Sequence[PlanEvent]:
    query = select(PlanEvent).where(PlanEvent.plan_id == plan_id).order_by(col(PlanEvent.id))
    return (await session.exec(query)).all()


async def plan_merged(*, session: AsyncSession, plan_id: int) -> bool:
    """Whether the plan ended because its device row was merged into another (not repossessed): its device's
    days, credit and codes moved on with the device."""
    query = select(PlanEvent.id).where(PlanEvent.plan_id == plan_id, PlanEvent.kind == "merged").limit(1)
    return (await session.exec(query)).first() is not None


async def cancel_approval(*, session: AsyncSession, approval_id: int, now: datetime) -> bool:
    """PENDING -> CANCELLED, once: False if someone decided first."""
    result = await session.exec(  # type: ignore[call-overload]
        update(Approval)
        .where(col(Approval.id) == approval_id, col(Approval.status) == ApprovalStatus.PENDING)
        .values(status=ApprovalStatus.CANCELLED, decided_at=now)
    )
    return bool(result.rowcount == 1)


async def cancel_request(*, session: AsyncSession, request_id: int, reason: str, now: datetime) -> bool:
    """QUEUED -> REFUSED (``reason``), once: False if the worker claimed it first (then it is on its way)."""
    result = await session.exec(  # type: ignore[call-overload]
        update(CodeRequest)
        .where(col(CodeRequest.id) == request_id, col(CodeRequest.status) == Status.QUEUED)
        .values(status=Status.REFUSED, reason=reason, delivered_at=now)
    )
    return bool(result.rowcount == 1)


# -- reversals ------------------------------------------------------------------------------------


async def reversal_of(*, session: AsyncSession, payment_id: int) -> Reversal | None:
    return (await session.exec(select(Reversal).where(Reversal.payment_id == payment_id))).first()


async def reversal_by_reference(*, session: AsyncSession, reference: str) -> Reversal | None:
    return (await session.exec(select(Reversal).where(Reversal.reference == reference))).first()


async def plan_money(*, session: AsyncSession, plan_id: int) -> tuple[Decimal, Decimal]:
    """What the plan's payments gave toward days (``Payment.day_money``, reversed ones too) and what its
    reversals took back (``Reversal.taken``): the device holds the difference."""
    given = (await session.exec(select(Payment.day_money).where(Payment.plan_id == plan_id))).all()
    taken = (await session.exec(select(Reversal.taken).where(Reversal.plan_id == plan_id))).all()
    return sum((value or Decimal(0) for value in given), Decimal(0)), sum(taken, Decimal(0))


async def reversals_between(*, session: AsyncSession, start: datetime, end: datetime) -> Sequence[tuple[Reversal, str]]:
    """The reversals made in [start, end), with their payment's currency (the day's summary)."""
    query = (select(Reversal, Payment.currency).join(Payment, col(Payment.id) == Reversal.payment_id)
             .where(col(Reversal.at) >= start, col(Reversal.at) < end).order_by(col(Reversal.id)))
    return (await session.exec(query)).all()


async def add_reversal(*, session: AsyncSession, reversal: Reversal) -> Reversal:
    session.add(reversal)
    await session.flush()
    return reversal


# -- bulk: the import and the export ------------------------------------------------------------


async def devices_by_ids(*, session: AsyncSession, refs: Sequence[str]) -> dict[str, Device]:
    """The ledger's devices for any of their ids (label, ERM id or alias), as typed, in a few queries."""
    found: dict[str, Device] = {}
    wanted = list(dict.fromkeys(refs))
    for start in range(0, len(wanted), 500):
        chunk = wanted[start:start + 500]
        aliases = await session.exec(select(DeviceAlias.alias, Device).join(Device, col(Device.id) ==
                                                                           DeviceAlias.device_id)
                                     .where(col(DeviceAlias.alias).in_(chunk)))
        for alias, device in aliases.all():
            found[alias] = device
        rest = [ref for ref in chunk if ref not in found]
        if rest:
            for device in (await session.exec(select(Device).where(col(Device.erm_id).in_(rest)))).all():
                found[device.erm_id] = device
            for device in (await session.exec(select(Device).where(col(Device.label).in_(rest)))).all():
                found.setdefault(device.label, device)
    return found


async def customers_by_phones(*, session: AsyncSession, phones: Sequence[str]) -> dict[str, Customer]:
    found: dict[str, Customer] = {}
    wanted = list(dict.fromkeys(phones))
    for start in range(0, len(wanted), 500):
        query = select(Customer).where(col(Customer.phone).in_(wanted[start:start + 500]))
        found.update({customer.phone: customer for customer in (await session.exec(query)).all()})
    return found


async def plans_of_all(*, session: AsyncSession, device_ids: Sequence[int]) -> dict[int, Plan]:
    """Like :func:`plans_of_devices`, for many devices (the import)."""
    found: dict[int, Plan] = {}
    wanted = list(dict.fromkeys(device_ids))
    for start in range(0, len(wanted), 500):
        found.update(await plans_of_devices(session=session, device_ids=wanted[start:start + 500]))
    return found


async def people_by_telegram_ids(*, session: AsyncSession, telegram_ids: Sequence[int]) -> dict[int, Person]:
    if not telegram_ids:
        return {}
    query = select(Person).where(col(Person.telegram_id).in_(list(set(telegram_ids))))
    return {person.telegram_id: person for person in (await session.exec(query)).all()}


@dataclass(frozen=True)
class PlanRow:
    """One line of the plans' export."""

    plan: Plan
    device: Device
    customer: Customer | None
    agent: Person | None


async def plan_rows(*, session: AsyncSession) -> list[PlanRow]:
    """Every plan (newest of a device last), with its device, customer and the customer's agent."""
    query = (
        select(Plan, Device, Customer, Person)
        .join(Device, col(Device.id) == Plan.device_id)
        .outerjoin(Customer, col(Customer.id) == Plan.customer_id)
        .outerjoin(Person, col(Person.id) == Customer.registered_by_id)
        .order_by(col(Device.label), col(Plan.id))
    )
    return [PlanRow(plan, device, customer, agent) for plan, device, customer, agent in (await session.exec(query)).all()]
