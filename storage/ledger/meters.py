"""Meters: which customer a utility service account (Omnimetic) is tied to."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import Customer


async def customer_with_meter(*, session: AsyncSession, account: str) -> Customer | None:
    """The customer this utility service account is tied to, if any (ids compared ignoring case: Omnimetic's
    hex ids name one account however they are typed)."""
    query = select(Customer).where(func.lower(col(Customer.utility_account)) == account.lower())
    return (await session.exec(query)).first()


async def tie_meter(*, session: AsyncSession, customer_id: int, account: str, now: datetime) -> Customer | None:
    """Tie ``account`` to the customer; returns the other customer who holds it already (nothing changed),
    or None when tied (or already theirs)."""
    holder = await customer_with_meter(session=session, account=account)
    if holder is not None and holder.id != customer_id:
        return holder
    customer = await session.get(Customer, customer_id, populate_existing=True, with_for_update=True)
    assert customer is not None
    if customer.utility_account != account:
        customer.utility_account, customer.utility_account_tied_at = account, now
        session.add(customer)
    return None


async def untie_meter(*, session: AsyncSession, customer_id: int) -> str | None:
    """Untie the customer's account; returns the account that was tied (None: there was none)."""
    customer = await session.get(Customer, customer_id, populate_existing=True, with_for_update=True)
    assert customer is not None
    account = customer.utility_account
    if account is not None:
        customer.utility_account, customer.utility_account_tied_at = None, None
        session.add(customer)
    return account
