"""Onboarding in bulk (``paygbot plans import``): what the import reads and writes besides the bulk helpers of
:mod:`storage.ledger.plans`. A few statements for many rows, never one a row: each write here is one
executemany (an INSERT of the table, SQLAlchemy's bulk UPDATE by primary key), inside the caller's
transaction. Rows are given as ``{column: value}``, every row of a call the same columns; the ids of new rows
are read back by their unique keys (a customer's phone, a device's current plan)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import insert, update
from sqlmodel import SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import PLAN_IS_CURRENT, Customer, Device, Plan, PlanEvent

CHUNK = 500
"""Ids per ``IN (…)`` query (well under SQLite's limit of bound parameters)."""

Values = Mapping[str, Any]


async def customers_by_ids(*, session: AsyncSession, customer_ids: Sequence[int]) -> dict[int, Customer]:
    found: dict[int, Customer] = {}
    wanted = list(dict.fromkeys(customer_ids))
    for start in range(0, len(wanted), CHUNK):
        query = select(Customer).where(col(Customer.id).in_(wanted[start:start + CHUNK]))
        found.update({customer.id: customer for customer in (await session.exec(query)).all()
                      if customer.id is not None})
    return found


async def _insert(session: AsyncSession, model: type[SQLModel], rows: Sequence[Values]) -> None:
    """One executemany of the table's INSERT (no ids back: the callers find them by their unique keys)."""
    if rows:
        table: Any = model.__table__  # type: ignore[attr-defined]
        await session.exec(insert(table), params=list(rows))


async def _update(session: AsyncSession, model: type[SQLModel], rows: Sequence[Values]) -> None:
    """Each row names its ``id`` and the columns it sets (every row the same columns: one executemany)."""
    if rows:
        await session.exec(update(model), params=list(rows))  # type: ignore[call-overload]


async def add_customers(*, session: AsyncSession, rows: Sequence[Values]) -> dict[str, int]:
    """New customers (each a new phone); returns their ids by phone."""
    await _insert(session, Customer, rows)
    phones = [row["phone"] for row in rows]
    found: dict[str, int] = {}
    for start in range(0, len(phones), CHUNK):
        query = select(Customer.phone, Customer.id).where(col(Customer.phone).in_(phones[start:start + CHUNK]))
        found.update({phone: customer_id for phone, customer_id in (await session.exec(query)).all()
                      if customer_id is not None})
    return found


async def set_customers(*, session: AsyncSession, rows: Sequence[Values]) -> None:
    await _update(session, Customer, rows)


async def set_devices(*, session: AsyncSession, rows: Sequence[Values]) -> None:
    await _update(session, Device, rows)


async def add_plans(*, session: AsyncSession, rows: Sequence[Values]) -> dict[int, int]:
    """New plans, each the current one of its device (none was); returns their ids by device id."""
    await _insert(session, Plan, rows)
    device_ids = [row["device_id"] for row in rows]
    found: dict[int, int] = {}
    for start in range(0, len(device_ids), CHUNK):
        query = select(Plan.device_id, Plan.id).where(col(Plan.device_id).in_(device_ids[start:start + CHUNK]),
                                                      PLAN_IS_CURRENT)
        found.update({device_id: plan_id for device_id, plan_id in (await session.exec(query)).all()
                      if plan_id is not None})
    return found


async def add_plan_events(*, session: AsyncSession, rows: Sequence[Values]) -> None:
    """Plan events in bulk: each the plan's terms as they are after it (as :func:`~storage.ledger.add_plan_event`
    keeps them one at a time)."""
    await _insert(session, PlanEvent, rows)
