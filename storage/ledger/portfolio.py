"""Plans as they stood at a moment, and the days kept once they are over: what portfolio health is computed
from, so that a past day's figures do not change when later rows arrive.

The plans at a moment ``to`` are the plans now, less everything stamped at or after ``to`` (rewound): the
payments counted toward them and the reversals since (paid so far), their events since (terms, status, whether
the ledger knew the plan at all), and the codes issued since (their device's credit). Reading only rows stamped
since ``to`` keeps it fast on a big ledger: a day just over is a few rows away from now.
"""

from __future__ import annotations

import gc
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, NamedTuple

from sqlalchemy import String, exists, func, or_, type_coerce
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
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


class PlanAt(NamedTuple):
    """One plan at a moment (plain values: :mod:`bot.portfolio` turns them into figures; a tuple, as a
    portfolio has 100,000 of them)."""

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

    @property
    def left(self) -> Decimal:
        return max(Decimal(0), self.total - self.paid)


def _money(value: Any) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(value)


def _moment(value: Any) -> datetime | None:
    """A stored time read raw (SQLite: naive UTC text; PostgreSQL: a datetime) as an aware UTC datetime."""
    if value is None:
        return None
    if isinstance(value, str):
        return datetime.fromisoformat(value + "+00:00")  # three times faster than .replace(tzinfo=UTC)
    return value.replace(tzinfo=UTC)


@contextmanager
def _many_tuples() -> Iterator[None]:
    """Reading 100,000 rows makes as many small tuples, which the cyclic garbage collector would scan again
    and again (a third of the time); none of them can hold a cycle, so it waits until they are made."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


async def one_snapshot(*, session: AsyncSession) -> None:
    """Make the reads of this transaction see one moment of the ledger, as a rewind needs (the plans now and
    the rows since must agree): SQLite's read transaction does already; PostgreSQL's default gives each
    statement its own. Call it first."""
    bind = session.bind
    if bind is not None and bind.dialect.name == "postgresql":
        await session.connection(execution_options={"isolation_level": "REPEATABLE READ"})


async def _rows(session: AsyncSession, query: Any) -> Sequence[Any]:
    """Rows of a query over plain columns, without the ORM's loading (a third of the time on 100,000 rows)."""
    connection = await session.connection()
    return (await connection.execute(query)).all()


def _raw(column: Any) -> Any:
    """A column read without the ORM's conversions (Money, UTCDateTime, enums): the same SQL, plain values —
    converted here in bulk, ten times faster on 100,000 rows."""
    return type_coerce(column, String)


STATUSES = {status.name: status.value for status in PlanStatus}
CHUNK = 500
"""Ids in one ``IN (…)``: under the 999 parameters of older SQLite (as the rest of the ledger)."""


async def plans_now(*, session: AsyncSession) -> list[PlanAt]:
    """Every plan as it stands: its own columns, its device's credit, its customer's agent."""
    with _many_tuples():
        return await _plans_now(session)


async def _plans_now(session: AsyncSession) -> list[PlanAt]:
    rows = await _rows(session, (
        select(Plan.id, Plan.device_id, _raw(Plan.status), _raw(Plan.total), _raw(Plan.daily_price),
               _raw(Plan.paid), _raw(Plan.started_at), _raw(Plan.ended_at), _raw(Device.credit_until),
               Customer.registered_by_id)
        .join(Device, col(Device.id) == Plan.device_id)
        .outerjoin(Customer, col(Customer.id) == Plan.customer_id)
        .order_by(col(Plan.id))
    ))
    money, moment, statuses = _money, _moment, STATUSES
    return [PlanAt(plan_id, device_id, statuses.get(status, status), money(total), money(price), money(paid),
                   moment(started), moment(ended), moment(credit), agent)  # type: ignore[arg-type]
            for plan_id, device_id, status, total, price, paid, started, ended, credit, agent in rows]


async def standing_now(*, session: AsyncSession) -> tuple[list[tuple[int | None, Decimal, Decimal, datetime]],
                                                           list[tuple[int | None, str, int]]]:
    """What the figures now need and no more: the active plans as (agent, total, paid, when their device's
    credit ended or, without credit, when they started), and how many plans ended per agent and status."""
    with _many_tuples():
        return await _standing_now(session)


async def _standing_now(session: AsyncSession) -> tuple[list[tuple[int | None, Decimal, Decimal, datetime]],
                                                        list[tuple[int | None, str, int]]]:
    anchor = func.coalesce(Device.credit_until, Plan.started_at)
    active = await _rows(session, (
        select(Customer.registered_by_id, _raw(Plan.total), _raw(Plan.paid), _raw(anchor))
        .select_from(Plan).join(Device, col(Device.id) == Plan.device_id)
        .outerjoin(Customer, col(Customer.id) == Plan.customer_id)
        .where(col(Plan.status) == PlanStatus.ACTIVE)
    ))
    ended = await _rows(session, (
        select(Customer.registered_by_id, _raw(Plan.status), func.count())
        .select_from(Plan).outerjoin(Customer, col(Customer.id) == Plan.customer_id)
        .where(col(Plan.status) != PlanStatus.ACTIVE).group_by(Customer.registered_by_id, Plan.status)
    ))
    if active and isinstance(active[0][3], str):  # SQLite's times are text: converted without a call per value
        parse = datetime.fromisoformat
        found = [(agent, Decimal(total), Decimal(paid), parse(ended_at + "+00:00"))
                 for agent, total, paid, ended_at in active]
    else:
        found = [(agent, _money(total), _money(paid), _moment(ended_at)) for agent, total, paid, ended_at in active]
    return found, [(agent, STATUSES.get(status, status), count) for agent, status, count in ended]


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
    for plan_id, amount in await _rows(session, select(Payment.plan_id, _raw(Payment.amount))
                                       .where(col(Payment.plan_id).is_not(None), window(Payment.matched_at))):
        paid[plan_id] -= _money(amount)
    for plan_id, amount in await _rows(session, select(Reversal.plan_id, _raw(Reversal.amount))
                                       .where(col(Reversal.plan_id).is_not(None), window(Reversal.at))):
        paid[plan_id] += _money(amount)
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
            then = then._replace(paid=then.paid + paid.get(plan.plan_id, Decimal(0)),
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
    return plan._replace(status=status, ended_at=ended_at, total=last.total, daily_price=last.daily_price)


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
    then left it, or an import after that code; with neither, what its first code after stacked on (or no
    credit)."""
    issued = col(CodeRequest.status).in_(GENERATED_STATUSES)
    found: dict[int, datetime | None] = {}
    days_kind = CodeKind.DAYS.name
    for device_id, issued_at, until, kind, days in await _rows(session, (
        select(CodeRequest.device_id, _raw(CodeRequest.issued_at), _raw(CodeRequest.credit_until),
               _raw(CodeRequest.kind), CodeRequest.days)
        .where(issued, window(CodeRequest.issued_at))
        .order_by(col(CodeRequest.issued_at).desc(), col(CodeRequest.id).desc())
    )):
        # the earliest wins: ordered latest first
        found[device_id] = _stacked_on(kind == days_kind, days, _moment(until), _moment(issued_at))
    if not found:
        return found
    Earlier = aliased(CodeRequest)  # noqa: N806
    last_before = (select(Earlier.id)
                   .where(Earlier.device_id == Device.id, col(Earlier.status).in_(GENERATED_STATUSES),
                          col(Earlier.issued_at) < to)
                   .order_by(col(Earlier.issued_at).desc(), col(Earlier.id).desc()).limit(1).scalar_subquery())
    devices = list(found)
    for first in range(0, len(devices), CHUNK):
        chunk = devices[first:first + CHUNK]
        known: dict[int, tuple[datetime, datetime | None]] = {}  # device: when its credit was last set, to what
        for device_id, issued_at, until in await _rows(session, (
            select(Device.id, _raw(CodeRequest.issued_at), _raw(CodeRequest.credit_until)).select_from(Device)
            .join(CodeRequest, col(CodeRequest.id) == last_before)
            .where(col(Device.id).in_(chunk))
        )):
            known[device_id] = (_moment(issued_at), _moment(until))  # type: ignore[assignment]
        for device_id, at, until in await _rows(session, (  # an import sets credit with no code
            select(Plan.device_id, _raw(PlanEvent.at), _raw(PlanEvent.credit_until))
            .join(Plan, col(Plan.id) == PlanEvent.plan_id)
            .where(col(PlanEvent.kind) == "imported", col(PlanEvent.at) < to, col(Plan.device_id).in_(chunk))
        )):
            when = _moment(at)
            assert when is not None
            if device_id not in known or when > known[device_id][0]:
                known[device_id] = (when, _moment(until))
        for device_id, (_, until) in known.items():
            found[device_id] = until
    return found


def _stacked_on(days_code: bool, days: int | None, until: datetime | None,
                issued_at: datetime | None) -> datetime | None:
    """The credit a days code found when issued, where it added to running credit (None otherwise)."""
    if not days_code or days is None or until is None or issued_at is None:
        return None
    before = until - timedelta(days=days)
    return before if before > issued_at else None


async def collected(*, session: AsyncSession, start: datetime, end: datetime | None = None) -> Decimal:
    """Money counted toward plans in [start, end) (None: since ``start``, all of it), less what reversals took
    back then."""

    def between(column: Any) -> Any:
        return (col(column) >= start) if end is None else (col(column) >= start) & (col(column) < end)

    paid = await _rows(session, select(_raw(Payment.amount)).where(col(Payment.plan_id).is_not(None),
                                                                    between(Payment.matched_at)))
    back = await _rows(session, select(_raw(Reversal.amount)).where(col(Reversal.plan_id).is_not(None),
                                                                     between(Reversal.at)))
    return (sum((_money(amount) for (amount,) in paid), Decimal(0))
            - sum((_money(amount) for (amount,) in back), Decimal(0)))


async def portfolio_days(*, session: AsyncSession, first: date, last: date) -> dict[date, PortfolioDay]:
    """The days kept from ``first`` to ``last``."""
    return {row.day: row for row in (await session.exec(
        select(PortfolioDay).where(col(PortfolioDay.day) >= first, col(PortfolioDay.day) <= last))).all()}


async def keep_portfolio_days(*, session: AsyncSession, days: Sequence[PortfolioDay]) -> None:
    """Keep the days not kept yet: a day once kept is never rewritten, whoever worked it out first (another
    process may have kept the same day meanwhile)."""
    if not days:
        return
    connection = await session.connection()
    insert = postgresql_insert if connection.dialect.name == "postgresql" else sqlite_insert
    await connection.execute(
        insert(PortfolioDay).on_conflict_do_nothing(index_elements=["day"]),  # type: ignore[arg-type]
        [{column: getattr(day, column) for column in PortfolioDay.__table__.columns.keys()}  # type: ignore[attr-defined]
         for day in days])


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
