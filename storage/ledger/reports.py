"""The managers' figures: the day's codes, payments, refusals, the team, the export, the summary pushes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import ColumnElement, func, or_
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import (
    CONFIRMATION_COPY,
    GENERATED_STATUSES,
    CodeKind,
    CodeRequest,
    Customer,
    Device,
    Payment,
    Person,
    Status,
    SummaryPush,
)


def _status_among(statuses: Sequence[Status]) -> ColumnElement[bool]:
    """``status IN statuses`` for the day's reports, written as NOT IN the other statuses, which no index
    serves: SQLite's planner (it has no statistics: the ledger is never ANALYZEd) then walks the time
    index over one day of rows rather than the status index over every code ever: 577 ms -> 21 ms for
    the summary at 1M codes (bench/reports_big_ledger.py)."""
    return col(CodeRequest.status).not_in([status for status in Status if status not in statuses])


def _generated_between(start: datetime, end: datetime) -> tuple[ColumnElement[bool], ...]:
    """Codes generated in [start, end), for the day's reports."""
    return (col(CodeRequest.issued_at) >= start, col(CodeRequest.issued_at) < end,
            _status_among(GENERATED_STATUSES))


async def agents_with_codes(*, session: AsyncSession, start: datetime, end: datetime) -> list[tuple[Person, int]]:
    """Active agents and managers with the codes they asked that were generated in [start, end)."""
    generated = (
        select(CodeRequest.requested_by_id, func.count().label("codes"))
        .where(*_generated_between(start, end))
        .group_by(col(CodeRequest.requested_by_id))
        .subquery()
    )
    query = (
        select(Person, func.coalesce(generated.c.codes, 0))
        .outerjoin(generated, generated.c.requested_by_id == col(Person.id))
        .where(col(Person.active).is_(True))
        .order_by(col(Person.role), col(Person.name))
    )
    return [(person, int(codes)) for person, codes in (await session.exec(query)).all()]


async def generated_by_kind(*, session: AsyncSession, start: datetime, end: datetime) -> list[tuple[CodeKind, int, int]]:
    """(kind, codes, days) of the codes generated in [start, end)."""
    query = (
        select(CodeRequest.kind, func.count(), func.coalesce(func.sum(CodeRequest.days), 0))
        .where(*_generated_between(start, end))
        .group_by(col(CodeRequest.kind))
    )
    return [(kind, int(count), int(days)) for kind, count, days in (await session.exec(query)).all()]


async def generated_by_person(
    *, session: AsyncSession, start: datetime, end: datetime
) -> list[tuple[int | None, int, int]]:
    """(person id, codes, days) of the codes generated in [start, end), per person who asked."""
    query = (
        select(CodeRequest.requested_by_id, func.count(), func.coalesce(func.sum(CodeRequest.days), 0))
        .where(*_generated_between(start, end))
        .group_by(col(CodeRequest.requested_by_id))
    )
    return [(person, int(count), int(days)) for person, count, days in (await session.exec(query)).all()]


async def ended_badly(
    *, session: AsyncSession, start: datetime, end: datetime, limit: int = 50
) -> tuple[int, list[tuple[str, Status, str | None, int | None, datetime | None]]]:
    """Refusals and failures asked in [start, end): how many, and the latest
    (device, status, reason, refused_fits, refused_until)."""
    where = (col(CodeRequest.created_at) >= start, col(CodeRequest.created_at) < end,
             _status_among((Status.REFUSED, Status.FAILED)))
    total = (await session.exec(select(func.count()).select_from(CodeRequest).where(*where))).one()
    query = (
        select(CodeRequest.device_ref, CodeRequest.status, CodeRequest.reason, CodeRequest.refused_fits,
               CodeRequest.refused_until)
        .where(*where)
        .order_by(col(CodeRequest.id).desc())
        .limit(limit)
    )
    rows = (await session.exec(query)).all()
    return int(total), [(ref, status, reason, fits, until) for ref, status, reason, fits, until in rows]


async def payments_between(*, session: AsyncSession, start: datetime, end: datetime) -> Sequence[Payment]:
    query = select(Payment).where(col(Payment.received_at) >= start, col(Payment.received_at) < end).order_by(
        col(Payment.id)
    )
    return (await session.exec(query)).all()


async def credit_ending(
    *, session: AsyncSession, now: datetime, until: datetime
) -> Sequence[tuple[Device, Customer | None]]:
    """Devices whose credit ends in (now, until], soonest first, with their customer."""
    query = (
        select(Device, Customer)
        .outerjoin(Customer, col(Customer.id) == col(Device.customer_id))
        .where(col(Device.credit_until) > now, col(Device.credit_until) <= until, col(Device.unlocked).is_(False))
        .order_by(col(Device.credit_until))
    )
    return (await session.exec(query)).all()


async def generated_times(*, session: AsyncSession, start: datetime, end: datetime) -> list[datetime]:
    """When each code in [start, end) was generated (for the chart's daily counts)."""
    query = select(CodeRequest.issued_at).where(*_generated_between(start, end))
    return [when for when in (await session.exec(query)).all() if when is not None]


async def payment_times(*, session: AsyncSession, start: datetime, end: datetime) -> list[datetime]:
    """When each payment in [start, end) was received; a provider's copy of a pasted one is not another payment."""
    not_a_copy = or_(col(Payment.duplicate_of).is_(None), col(Payment.reason).is_(None),
                     col(Payment.reason) != CONFIRMATION_COPY)
    query = select(Payment.received_at).where(col(Payment.received_at) >= start, col(Payment.received_at) < end,
                                              not_a_copy)
    return list((await session.exec(query)).all())


async def export_rows(
    *, session: AsyncSession, start: datetime, end: datetime, chunk: int = 2000
) -> AsyncIterator[ExportRow]:
    """Every code request asked in [start, end), oldest first, with the customer's name, who asked
    (name or Telegram id) and the payment's amount — streamed in chunks, never all in memory."""
    last_id = 0
    while True:
        query = (
            select(CodeRequest, Customer.name, Person.name, Person.telegram_id, Payment.amount, Payment.currency)
            .join(Device, col(Device.id) == col(CodeRequest.device_id))
            .outerjoin(Customer, col(Customer.id) == col(Device.customer_id))
            .outerjoin(Person, col(Person.id) == col(CodeRequest.requested_by_id))
            .outerjoin(Payment, col(Payment.id) == col(CodeRequest.payment_id))
            .where(col(CodeRequest.created_at) >= start, col(CodeRequest.created_at) < end,
                   col(CodeRequest.id) > last_id)
            .order_by(col(CodeRequest.id))
            .limit(chunk)
        )
        rows = (await session.exec(query)).all()
        if not rows:
            return
        for request, customer, name, telegram_id, amount, currency in rows:
            who = name or (str(telegram_id) if telegram_id else None)
            yield ExportRow(request, customer, who, amount, currency)
        last_id = rows[-1][0].id or last_id


@dataclass(frozen=True)
class ExportRow:
    request: CodeRequest
    customer: str | None
    asked_by: str | None
    amount: Decimal | None
    currency: str | None


async def claim_summary_day(*, session: AsyncSession, day: date, now: datetime) -> bool:
    """Claim the push of ``day``'s summary: True once, False ever after."""
    if await session.get(SummaryPush, day) is not None:
        return False
    try:
        async with session.begin_nested():
            session.add(SummaryPush(day=day, pushed_at=now))
            await session.flush()
    except IntegrityError:
        return False
    return True


async def payments_with_codes(*, session: AsyncSession, payment_ids: Sequence[int]) -> set[int]:
    """Which of these payments have a code request."""
    found: set[int] = set()
    for offset in range(0, len(payment_ids), 500):
        chunk = payment_ids[offset : offset + 500]
        query = select(CodeRequest.payment_id).where(col(CodeRequest.payment_id).in_(chunk))
        found.update(value for value in (await session.exec(query)).all() if value is not None)
    return found
