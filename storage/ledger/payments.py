"""Payments: stored once per provider and reference, copies and conflicts beside them, the sweep's work."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import or_, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import (
    CONFIRMATION_COPY,
    CodeRequest,
    Payment,
    PaymentNotice,
    PaymentStatus,
)

# -- payments ---------------------------------------------------------------------------------


async def find_payment(*, session: AsyncSession, provider: str, reference: str) -> Payment | None:
    """The one payment of (provider, reference); the copies kept beside it (``duplicate_of``) are not it."""
    query = select(Payment).where(Payment.provider == provider, Payment.reference == reference,
                                  col(Payment.duplicate_of).is_(None)).order_by(col(Payment.id))
    return (await session.exec(query)).first()


async def add_payment(*, session: AsyncSession, payment: Payment, known_new: bool = False) -> tuple[Payment, bool]:
    """Store a payment once per (provider, reference): returns (the payment, whether it is new).

    ``known_new``: the caller looked already (in this transaction); the unique constraint still decides.
    """
    existing = None if known_new else await find_payment(session=session, provider=payment.provider,
                                                            reference=payment.reference)
    if existing is not None:
        return existing, False
    try:
        async with session.begin_nested():
            session.add(payment)
            await session.flush()
    except IntegrityError:
        existing = await find_payment(session=session, provider=payment.provider, reference=payment.reference)
        assert existing is not None
        return existing, False
    return payment, True


async def request_for_payment(*, session: AsyncSession, payment_id: int) -> CodeRequest | None:
    query = select(CodeRequest).where(CodeRequest.payment_id == payment_id)
    return (await session.exec(query)).first()


async def payment_by_reference(*, session: AsyncSession, reference: str) -> Payment | None:
    """The payment stored under ``reference`` whatever its provider: the first one still kept for the managers
    (a conflicting copy, for /assign), else the first."""
    query = (select(Payment).where(Payment.reference == reference)
             .order_by(col(Payment.status) != PaymentStatus.UNMATCHED, col(Payment.id)).limit(1))
    return (await session.exec(query)).first()


async def add_new_payments(*, session: AsyncSession, payments: Sequence[Payment]) -> list[tuple[Payment, bool]]:
    """Store payments the caller found no reference of (in this transaction) in one flush; if the unique
    constraint refuses one (another writer got there first), one at a time, the repeats not stored."""
    try:
        async with session.begin_nested():
            session.add_all(payments)
            await session.flush()
    except IntegrityError:
        return [await add_payment(session=session, payment=_fresh_copy(payment)) for payment in payments]
    return [(payment, True) for payment in payments]


def _fresh_copy(payment: Payment) -> Payment:
    return Payment.model_validate(payment.model_dump(exclude={"id"}))


async def payments_under_references(*, session: AsyncSession, references: Sequence[str]) -> dict[str, list[Payment]]:
    """Every payment stored under these references, whatever its provider, copies too (oldest first): what a
    new payment with one of them is compared with (a repeat, the same money by another way, or a conflict)."""
    found: dict[str, list[Payment]] = {}
    for offset in range(0, len(references), 500):
        query = (select(Payment).where(col(Payment.reference).in_(references[offset:offset + 500]))
                 .order_by(col(Payment.id)))
        for payment in (await session.exec(query)).all():
            found.setdefault(payment.reference, []).append(payment)
    return found


async def add_payment_copy(*, session: AsyncSession, payment: Payment) -> Payment:
    """Store a payment kept beside another of its reference (``duplicate_of`` set: the unique index of
    (provider, reference) leaves it out), flushed at once so that the next one can point at it."""
    assert payment.duplicate_of is not None
    session.add(payment)
    await session.flush()
    return payment


async def get_payment(*, session: AsyncSession, payment_id: int) -> Payment | None:
    return await session.get(Payment, payment_id, populate_existing=True)


async def lock_payment(*, session: AsyncSession, payment_id: int) -> Payment:
    """The payment row, fresh, for a read-modify-write (the writer transaction serialises these)."""
    payment = await session.get(Payment, payment_id, populate_existing=True, with_for_update=True)
    assert payment is not None
    return payment


async def payments_to_retry(*, session: AsyncSession, now: datetime, limit: int = 100) -> Sequence[Payment]:
    """PENDING payments whose next try is due (the ERM could not be asked, or the bot stopped)."""
    query = (
        select(Payment)
        .where(Payment.status == PaymentStatus.PENDING, col(Payment.retry_at) <= now)
        .order_by(col(Payment.retry_at), col(Payment.id))
        .limit(limit)
    )
    return (await session.exec(query)).all()


async def payments_owing_notice(*, session: AsyncSession, limit: int = 100) -> Sequence[Payment]:
    """Payments someone is still to be told about (managers of unmatched money, customers of a wait)."""
    query = (
        select(Payment)
        .where(col(Payment.notice).is_not(None), col(Payment.notified_at).is_(None))
        .order_by(col(Payment.id))
        .limit(limit)
    )
    return (await session.exec(query)).all()

async def hold_notice(*, session: AsyncSession, payment_id: int, now: datetime, until: datetime) -> bool:
    """Take the sending of a payment's notice until ``until``: False if it is owed no more, or another process
    holds it now."""
    result = await session.exec(  # type: ignore[call-overload]
        update(Payment)
        .where(col(Payment.id) == payment_id, col(Payment.notice).is_not(None), col(Payment.notified_at).is_(None),
               or_(col(Payment.notice_held_until).is_(None), col(Payment.notice_held_until) <= now))
        .values(notice_held_until=until)
    )
    return bool(result.rowcount == 1)


async def let_notice_go(*, session: AsyncSession, payment_id: int) -> None:
    """The notice could not be sent: any process may try again."""
    await session.exec(  # type: ignore[call-overload]
        update(Payment).where(col(Payment.id) == payment_id).values(notice_held_until=None))


async def keep_paid_days(*, session: AsyncSession, payment_id: int, days: int) -> None:
    """``days`` of a payment's code are kept as prepaid days after all (two rows turned out to be one
    device): the payment says so and owes its people a word (:class:`PaymentNotice` RECEIVED)."""
    payment = await session.get(Payment, payment_id, populate_existing=True, with_for_update=True)
    if payment is not None:
        payment.prepaid_days += days
        payment.notice, payment.notified_at = PaymentNotice.RECEIVED, None
        session.add(payment)


async def payment_to_reverse(*, session: AsyncSession, reference: str) -> Payment | None:
    """The payment a reversal of ``reference`` takes back: the first one stored under it that is money of its own
    (not the provider's confirmation copy of a pasted one), whatever its provider."""
    query = (select(Payment).where(Payment.reference == reference, col(Payment.reason).is_distinct_from(
        CONFIRMATION_COPY)).order_by(col(Payment.duplicate_of).is_not(None), col(Payment.id)).limit(1))
    return (await session.exec(query)).first()
