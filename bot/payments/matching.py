"""Which device a stored payment is for, as far as the ledger alone can say, and keeping for the
managers what matches none.

An account names a device by any of its ids, or a customer by their phone (their one device: several
are a manager's choice). A device new to the ledger is looked up at the ERM by the service
(:meth:`bot.payments.service.Payments.process`), not here.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from bot.erm.backend import check_product_id
from bot.issuing import backoff
from bot.payments.values import PENDING_REASON, NotMatched, Pending, Unmatched
from bot.phones import e164
from storage import ledger
from storage.db import Database
from storage.models import Device, Payment, PaymentNotice, PaymentStatus

log = logging.getLogger("paygbot.payments")

TELL_MANAGERS_AFTER = timedelta(hours=1)
"""Money still PENDING (the ERM unreachable) after this long is shown to the managers too."""


async def known(db: Database, account: str, phone_region: str, *, devices: bool = True) -> int | list[int] | None:
    """What the ledger alone says ``account`` is: a device, or a customer's devices (their whole number:
    local ones read in ``phone_region``)."""
    if not account:
        return None
    async with db.read() as session:
        if devices:
            device = await ledger.find_device(session=session, ref=account)
            if device is not None:
                assert device.id is not None
                return device.id
        phone = e164(account, phone_region)
        customer = await ledger.customer_by_phone(session=session, phone=phone) if phone else None
        if customer is None or customer.id is None:
            return None
        owned = [d.id for d in await ledger.customer_devices(session=session, customer_id=customer.id) if d.id]
    if len(owned) == 1:
        return owned[0]
    return owned or None


def could_be_device(account: str) -> bool:
    """Whether ``account`` is written as a device id is (worth asking the ERM about)."""
    try:
        check_product_id(account)
    except ValueError:
        return False
    return True


async def keep(db: Database, payment_id: int, match: Unmatched | list[int] | None, now: datetime
               ) -> NotMatched | Pending | int:
    """Keep the payment UNMATCHED for the managers (``match``: why, or the candidate devices), or PENDING
    to be tried again (``None``: the ERM could not be asked) — unless it moved on meanwhile: then the
    device a manager assigned it to, to be applied."""
    async with db.write() as session:
        payment = await ledger.lock_payment(session=session, payment_id=payment_id)
        if payment.status is PaymentStatus.MATCHED and payment.device_id is not None:
            return payment.device_id
        if payment.status is not PaymentStatus.PENDING:
            return NotMatched(payment_id, Unmatched(payment.reason) if payment.reason in set(Unmatched)
                              else Unmatched.UNKNOWN_ACCOUNT)
        if match is None:
            payment.attempts += 1
            payment.retry_at = now + backoff(payment.attempts, base=10, cap=600)
            payment.reason = PENDING_REASON
            if now - payment.received_at >= TELL_MANAGERS_AFTER and payment.notice is None:
                payment.notice = PaymentNotice.MANAGERS
            session.add(payment)
            log.warning("payment %s/%s: the ERM could not be asked about %r; trying again at %s",
                        payment.provider, payment.reference, payment.account, payment.retry_at)
            return Pending(payment_id, payment.retry_at)
        reason = Unmatched.SEVERAL_DEVICES if isinstance(match, list) else match
        payment.status, payment.reason, payment.retry_at = PaymentStatus.UNMATCHED, reason.value, None
        payment.notice, payment.notified_at = PaymentNotice.MANAGERS, None
        session.add(payment)
        log.info("payment %s/%s kept for the managers: %r, %s", payment.provider, payment.reference,
                 payment.account, reason.value)
        return NotMatched(payment_id, reason, match if isinstance(match, list) else [])


async def hold_conflict(db: Database, payment: Payment, phone_region: str) -> NotMatched | int:
    """Keep a payment whose reference is another's for the managers, with the device its account names,
    if the ledger knows one, for the notice's button — unless a manager assigned it meanwhile (or it is a
    copy): then its device, to be applied (which changes nothing twice)."""
    assert payment.id is not None
    named = await known(db, payment.account.strip(), phone_region)
    async with db.write() as session:
        fresh = await ledger.lock_payment(session=session, payment_id=payment.id)
        if fresh.status is PaymentStatus.PENDING:
            fresh.status, fresh.reason, fresh.retry_at = (PaymentStatus.UNMATCHED,
                                                          Unmatched.REFERENCE_CONFLICT.value, None)
            if fresh.device_id is None and isinstance(named, int):
                fresh.device_id = named
            fresh.notice, fresh.notified_at = PaymentNotice.MANAGERS, None
            session.add(fresh)
            log.warning("payment %s/%s kept for the managers: payment %s has its reference", fresh.provider,
                        fresh.reference, fresh.duplicate_of)
        moved_on = fresh.device_id if fresh.status is PaymentStatus.MATCHED else None
    if moved_on is not None:
        return moved_on
    return NotMatched(payment.id, Unmatched.REFERENCE_CONFLICT,
                      [named] if isinstance(named, int) else named if isinstance(named, list) else [])


async def candidates(db: Database, payment: Payment, phone_region: str) -> list[Device]:
    """Devices a kept payment may be for: its device (no price yet), or its customer's devices (their
    whole number: local ones read in ``phone_region``)."""
    async with db.read() as session:
        found: dict[int, Device] = {}
        if payment.device_id is not None:
            device = await ledger.get_device(session=session, device_id=payment.device_id)
            if device is not None and device.id is not None:
                found[device.id] = device
        for number in (payment.account, payment.phone):
            phone = e164(number, phone_region) if number else None
            customer = await ledger.customer_by_phone(session=session, phone=phone) if phone else None
            if customer is not None and customer.id is not None:
                for device in await ledger.customer_devices(session=session, customer_id=customer.id):
                    if device.id is not None:
                        found.setdefault(device.id, device)
    return list(found.values())[:6]
