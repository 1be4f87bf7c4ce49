"""Storing a payment: one per provider and reference, and never dropped.

A repeat (the same provider, reference, amount and account: a webhook's retry) is the stored payment
and changes nothing. The M-Pesa transaction code an agent pastes (``mpesa_pasted``: the agent's word)
is the ``TransID`` Daraja sends (``mpesa``: Safaricom's): with the same amount they are the same money,
and whichever comes second makes no days — Daraja's is kept as a copy that confirms the pasted one
(``confirmed_at``). Anything else under a stored reference (another amount, account or provider) is
stored beside the first (``duplicate_of``) and kept UNMATCHED for the managers (``reference_conflict``).
"""

from __future__ import annotations

import logging
import secrets
from datetime import datetime, timedelta

from bot.payments.values import MPESA_FAMILY, Incoming, Provider, Unmatched
from bot.phones import e164
from storage import ledger
from storage.db import Database
from storage.models import CONFIRMATION_COPY, Payment, PaymentStatus

log = logging.getLogger("paygbot.payments")

STORE_BATCH = 200
"""At most this many payments are stored in one transaction."""
RECORD_GRACE = timedelta(seconds=30)
"""A stored payment not matched within this long (the bot stopped meanwhile) is taken up by the sweep."""


async def store(db: Database, batch: list[Incoming], now: datetime) -> list[tuple[Payment, bool]]:
    """Store ``batch`` in one transaction: for each, (the stored payment, whether it is new and is to be matched)."""
    async with db.write() as session:
        stored = await ledger.payments_under_references(session=session,
                                                        references=list({i.reference for i in batch}))
        # references new to the ledger (the first of each in the batch): one flush for all of them
        fresh: dict[str, tuple[int, Payment]] = {}
        for index, incoming in enumerate(batch):
            if incoming.reference not in stored and incoming.reference not in fresh:
                fresh[incoming.reference] = (index, _row(incoming, now))
        added = await ledger.add_new_payments(session=session, payments=[row for _, row in fresh.values()])
        results: dict[int, tuple[Payment, bool]] = {}
        for (index, _), (payment, new) in zip(fresh.values(), added, strict=True):
            stored.setdefault(payment.reference, []).append(payment)
            if new:
                results[index] = (payment, True)
        # the rest: compared with every payment of their reference, one by one
        for index, incoming in enumerate(batch):
            if index in results:
                continue
            rows = stored[incoming.reference]
            payment, new, row = beside(incoming, rows, now, await device_named(session, incoming))
            if row is not None:
                await ledger.add_payment_copy(session=session, payment=row)
                rows.append(row)
                _log_beside(row)
            if row is not None and row.reason == CONFIRMATION_COPY:
                payment.confirmed_at = payment.confirmed_at or now
                session.add(payment)
            results[index] = (payment, new)
    ordered = [results[index] for index in range(len(batch))]
    for payment, new in ordered:
        if new and payment.duplicate_of is None:
            log.info("payment %s/%s stored: %s %s for %r", payment.provider, payment.reference, payment.amount,
                     payment.currency, payment.account)
    return ordered


MPESA_REGION = "KE"
"""M-Pesa (Daraja, and the messages agents paste) is Safaricom Kenya's: local numbers are Kenyan."""


async def device_named(session: ledger.AsyncSession, incoming: Incoming) -> int | None:
    """The ledger device an M-Pesa payment's account names (any of its ids), to tell whether a pasted message
    and Safaricom's confirmation are for the same device."""
    if incoming.provider not in MPESA_FAMILY or not incoming.account.strip():
        return None
    device = await ledger.find_device(session=session, ref=incoming.account.strip())
    return device.id if device is not None else None


def beside(incoming: Incoming, rows: list[Payment], now: datetime,
           device_id: int | None = None) -> tuple[Payment, bool, Payment | None]:
    """Where a payment goes whose reference is stored already (``rows``, oldest first): (the payment it is,
    whether that is new, the row to store beside the others).

    The same provider, amount and account again is that payment (webhooks retry). Daraja's confirmation of
    money pasted first (the same amount, for the same account or the same device: ``device_id`` is the one
    ``incoming``'s account names) is a copy beside it that makes no days; money pasted after Daraja's
    confirmation of it is Daraja's. Anything else is a conflict: stored, never dropped, kept for the managers.
    """
    same_provider = [row for row in rows if row.provider == incoming.provider]
    for row in same_provider:
        if _same_money(row, incoming) and _same_account(row.account, incoming.account):
            return _shown(row, rows), False, None
    if not same_provider and incoming.provider in MPESA_FAMILY:
        # the same M-Pesa money only when it also names the same account (the device typed, or the payer's
        # number): a pasted message naming another device must not absorb Safaricom's real payment
        twin = next((row for row in rows if row.provider in MPESA_FAMILY and _same_money(row, incoming)
                     and (_same_mpesa_account(row.account, incoming.account)
                          or (device_id is not None and row.device_id == device_id))), None)
        if twin is not None and incoming.provider == Provider.MPESA:
            assert twin.id is not None
            copy = _row(incoming, now)
            copy.status, copy.reason, copy.duplicate_of, copy.retry_at = (PaymentStatus.MATCHED, CONFIRMATION_COPY,
                                                                          twin.id, None)
            copy.device_id, copy.matched_at = twin.device_id, now
            return twin, False, copy
        if twin is not None:
            return twin, False, None
    first = next((row for row in rows if row.duplicate_of is None), rows[0])
    assert first.id is not None
    conflict = _row(incoming, now)
    conflict.reason, conflict.duplicate_of = Unmatched.REFERENCE_CONFLICT.value, first.id
    return conflict, True, conflict


def new_cash_reference(now: datetime) -> str:
    """A reference for cash recorded without one: ``CASH-20261122-7F3A9C``."""
    return f"CASH-{now:%Y%m%d}-{secrets.token_hex(3).upper()}"


def _row(incoming: Incoming, now: datetime) -> Payment:
    """A payment as first stored: PENDING, matched at once (or by the sweep after ``RECORD_GRACE``)."""
    return Payment(
        provider=incoming.provider, reference=incoming.reference, amount=incoming.amount, currency=incoming.currency,
        account=incoming.account, phone=incoming.phone, payer=incoming.payer, paid_at=incoming.paid_at,
        received_at=now, status=PaymentStatus.PENDING, recorded_by_id=incoming.recorded_by, chat_id=incoming.chat_id,
        retry_at=now + RECORD_GRACE,
    )


def _shown(row: Payment, rows: list[Payment]) -> Payment:
    """What a repeat of ``row`` is answered with: the payment itself, the pasted one for Daraja's copy of it."""
    if row.reason == CONFIRMATION_COPY and row.duplicate_of is not None:
        return next((other for other in rows if other.id == row.duplicate_of), row)
    return row


def _same_money(stored: Payment, incoming: Incoming) -> bool:
    currencies = (stored.currency.upper(), incoming.currency.upper())
    return stored.amount == incoming.amount and (not all(currencies) or currencies[0] == currencies[1])


def _same_account(stored: str, incoming: str) -> bool:
    return stored.strip().casefold() == incoming.strip().casefold()


def _same_mpesa_account(stored: str, incoming: str) -> bool:
    """Two M-Pesa accounts alike: as typed (a device id), or as Kenyan phone numbers however written."""
    if _same_account(stored, incoming):
        return True
    one, other = e164(stored, MPESA_REGION), e164(incoming, MPESA_REGION)
    return one is not None and one == other


def _log_beside(row: Payment) -> None:
    if row.reason == CONFIRMATION_COPY:
        log.info("payment %s/%s: it confirms payment %s (no days of its own)", row.provider, row.reference,
                 row.duplicate_of)
    else:
        log.warning("payment %s/%s stored beside payment %s: same reference, another amount, account or provider "
                    "(%s %s for %r)", row.provider, row.reference, row.duplicate_of, row.amount, row.currency,
                    row.account)
