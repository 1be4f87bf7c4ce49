"""Money in: the signed ``POST /payments`` webhook, Safaricom's M-Pesa (Daraja) C2B confirmations,
cash recorded by agents and confirmations pasted into the chat — one path for all of them.

1. **Store** the payment first, unconditionally (:meth:`Payments.record`): a repeat (same provider,
   reference, amount and account), or five at once, finds the stored one and changes nothing. Only
   then does a webhook answer 2xx.
2. **Match** its account to a device: any id of a device, or a customer's phone (their one device);
   a device the ledger does not know yet is looked up at the ERM. If the ERM cannot be asked, the
   payment stays PENDING and is tried again (:meth:`Payments.sweep`) — never dropped, never refused.
3. **Apply** it (:meth:`bot.issuing.IssuingEngine.apply_payment`, one transaction, exactly once):
   days = (amount + the device's money credit) ÷ daily price, rounded down; what is left below one
   day stays as credit; what does not fit under the stacking limit is kept as prepaid days; past the
   daily limit the code waits for the next local day. A payment that matches nothing, or a device
   without a price, is kept UNMATCHED for a manager to assign (:meth:`Payments.assign`).
4. **Tell** (at least once): managers of money kept for them, the customer (and the agent who
   registered them) when no code goes out at once. The code itself goes out through the engine's
   delivery, to the customer, their agent and whoever recorded the payment.

A reference is unique per provider, and a payment whose reference is stored already is never
dropped unless it is that payment again. The M-Pesa transaction code an agent pastes (provider
``mpesa_pasted``: the agent's word) is the ``TransID`` Daraja sends (``mpesa``: Safaricom's): with the
same amount they are the same money, and whichever comes second makes no days — Daraja's is kept as a
copy that confirms the pasted one (``confirmed_at``). Anything else under a stored reference (another
amount, account or provider) is kept UNMATCHED for the managers (``reference_conflict``, ``duplicate_of``
the first payment). Cash references cannot take the shape of an M-Pesa code.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.exc import SQLAlchemyError
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup
from telegram.ext import CallbackContext, JobQueue

from bot import logs
from bot.clock import Clock
from bot.config import Settings
from bot.delivery import speak_to
from bot.erm.client import check_product_id
from bot.issuing import IssuingEngine, PaymentApplied, PaymentHeld, Reason, Refused, backoff
from bot.phones import e164
from bot.texts import Texts
from storage import ledger
from storage.db import Database
from storage.models import (
    CONFIRMATION_COPY,
    Customer,
    Device,
    Payment,
    PaymentNotice,
    PaymentStatus,
    Person,
    Role,
    Status,
)

log = logging.getLogger("paygbot.payments")

SIGNATURE_HEADER = "X-Paygbot-Signature"
MAX_BODY = 64 * 1024
MAX_AMOUNT = Decimal("1000000000")
MAX_LOOKUPS = 16
"""ERM lookups of devices new to the ledger at once, for payments worked off in the background."""
STORE_BATCH = 200
"""At most this many payments are stored in one transaction."""
RECORD_GRACE = timedelta(seconds=30)
"""A stored payment not matched within this long (the bot stopped meanwhile) is taken up by the sweep."""
TELL_MANAGERS_AFTER = timedelta(hours=1)
"""Money still PENDING (the ERM unreachable) after this long is shown to the managers too."""
SWEEP_INTERVAL = 5.0
SWEEP_JOB = "payments-sweep"
DARAJA_TZ = ZoneInfo("Africa/Nairobi")
"""Daraja's ``TransTime`` is Kenyan time."""
DARAJA_REGION = "KE"
"""Daraja is Safaricom Kenya's: an ``MSISDN`` without its country code is a Kenyan number."""
DARAJA_ACCEPTED = {"ResultCode": 0, "ResultDesc": "Accepted"}
_TEXT_FIELD = re.compile(r"^[^\x00-\x1f\x7f]+$")
_CURRENCY = re.compile(r"^[A-Za-z]{0,8}$")
_PLAIN_DECIMAL = re.compile(r"[0-9]+(?:\.[0-9]+)?")
"""How an amount is written: ASCII digits and a decimal point (no exponent, '_', sign or other digits)."""


class Provider(StrEnum):
    WEBHOOK = "webhook"
    MPESA = "mpesa"
    """Safaricom's own confirmation (Daraja C2B)."""
    MPESA_PASTED = "mpesa_pasted"
    """An M-Pesa confirmation message pasted or forwarded by an agent: the agent's word until Daraja's agrees."""
    CASH = "cash"


MPESA_FAMILY = (Provider.MPESA, Provider.MPESA_PASTED)
"""Two ways of hearing of one M-Pesa transaction: one transaction code, one payment."""


class Unmatched(StrEnum):
    """Why a payment matched no device by itself (besides :class:`bot.issuing.HoldReason`)."""

    UNKNOWN_ACCOUNT = "unknown_account"
    SEVERAL_DEVICES = "several_devices"
    REFERENCE_CONFLICT = "reference_conflict"
    """Its reference is another payment's (another amount, account or provider): a manager decides."""


PENDING_REASON = "erm_unavailable"


@dataclass(frozen=True)
class Incoming:
    """A payment as it arrives, before it is stored."""

    provider: str
    reference: str
    amount: Decimal
    account: str
    currency: str = ""
    phone: str | None = None
    payer: str | None = None
    paid_at: datetime | None = None
    recorded_by: int | None = None
    chat_id: int | None = None


@dataclass(frozen=True)
class NotMatched:
    """Kept UNMATCHED for a manager: the account names no device, or a customer with several."""

    payment_id: int
    reason: Unmatched
    candidates: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class Pending:
    """Stored, not matched yet: the ERM could not be asked; tried again later."""

    payment_id: int
    retry_at: datetime


Outcome = PaymentApplied | PaymentHeld | NotMatched | Pending


@dataclass(frozen=True)
class Received:
    """A payment stored (``new``) or found already stored, and what it became if it was new."""

    payment: Payment
    new: bool
    outcome: Outcome | None


Notifier = Callable[[Payment], Awaitable[None]]
"""Tells people what a payment's ``notice`` says; raises if it should be tried again."""


class Payments:
    """Money in, stored first, then matched and turned into days by the engine."""

    def __init__(
        self, *, db: Database, engine: IssuingEngine, clock: Clock, phone_region: str, notify: Notifier | None = None,
        max_concurrency: int = 2,
    ) -> None:
        self.db, self.engine, self.clock, self.notify = db, engine, clock, notify
        self.phone_region = phone_region
        self._slots = asyncio.Semaphore(max_concurrency)
        self._lookups = asyncio.Semaphore(MAX_LOOKUPS)
        self._working: set[int] = set()
        self._telling: set[int] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._to_store: list[tuple[Incoming, asyncio.Future[tuple[Payment, bool]]]] = []
        self._storing = False
        self._closed = False

    # -- storing ------------------------------------------------------------------------------

    async def record(self, incoming: Incoming) -> tuple[Payment, bool]:
        """Store the payment: (the stored payment, whether it is new and is to be matched).

        Not new: a repeat of a stored payment, or the same M-Pesa money heard of again (Daraja's copy of a
        pasted one is stored beside it; the pasted one is returned). New: a payment, or a conflicting one
        under a stored reference (matched to nothing: kept for the managers).

        Returns once it is committed. Payments arriving together are written in one transaction
        (group commit): while one is being written the next ones gather, so a burst costs a few
        commits rather than one each.
        """
        arrived: asyncio.Future[tuple[Payment, bool]] = asyncio.get_running_loop().create_future()
        self._to_store.append((incoming, arrived))
        if not self._storing:
            self._storing = True
            self._spawn(self._store_waiting())
        return await arrived

    async def _store_waiting(self) -> None:
        try:
            while self._to_store:
                batch, self._to_store = self._to_store[:STORE_BATCH], self._to_store[STORE_BATCH:]
                try:
                    stored = await self._store([incoming for incoming, _ in batch])
                except Exception as exc:  # the database failed: every caller hears it (a webhook answers 503)
                    for _, arrived in batch:
                        if not arrived.done():
                            arrived.set_exception(exc)
                    continue
                for (_, arrived), result in zip(batch, stored, strict=True):
                    if not arrived.done():
                        arrived.set_result(result)
        finally:
            self._storing = False

    async def _store(self, batch: list[Incoming]) -> list[tuple[Payment, bool]]:
        now = self.clock.now()
        async with self.db.write() as session:
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
                payment, new, row = _beside(incoming, rows, now)
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

    async def receive(self, incoming: Incoming) -> Received:
        """Store, then match and apply at once (the chat's way: the person waits for the outcome)."""
        payment, new = await self.record(incoming)
        if not new:
            return Received(payment, False, None)
        return Received(payment, True, await self.process(payment))

    def process_soon(self, payment: Payment) -> None:
        """Match and apply in the background (the webhook's way: it has answered already)."""
        if not self._closed:
            self._spawn(self.process(payment, background=True))

    # -- matching and applying ------------------------------------------------------------------

    async def process(self, payment: Payment, *, background: bool = False) -> Outcome:
        """Match a stored payment to a device and turn it into days, or keep it for a manager.

        In the ``background`` (webhooks, the sweep) only ``max_concurrency`` payments use the ledger
        at once, so that a burst of payments is accepted first and worked off behind; a person in the
        chat does not wait behind that queue.
        """
        assert payment.id is not None
        self._working.add(payment.id)
        try:
            outcome = await self._process(payment, self._slots if background else contextlib.nullcontext())
            if _may_owe_notice(outcome, self.clock.now()):
                await self.tell(payment.id)
            return outcome
        finally:
            self._working.discard(payment.id)

    async def _process(self, payment: Payment, slot: contextlib.AbstractAsyncContextManager[Any]) -> Outcome:
        assert payment.id is not None
        if payment.duplicate_of is not None:  # kept beside another payment of its reference: never days by itself
            async with slot:
                return await self._hold_conflict(payment)
        if payment.status is PaymentStatus.MATCHED and payment.device_id is not None:
            async with slot:
                return await self.engine.apply_payment(payment.id, payment.device_id)
        match = await self._match(payment, slot)
        async with slot:
            if isinstance(match, int):
                return await self.engine.apply_payment(payment.id, match)
            return await self._keep(payment.id, match)

    async def _match(self, payment: Payment, slot: contextlib.AbstractAsyncContextManager[Any]
                     ) -> int | Unmatched | list[int] | None:
        """The device the payment is for; the reason there is none; the candidates; None: ask later."""
        account = payment.account.strip()
        async with slot:
            by_account = await self._known(account)
        if by_account is not None:
            return by_account
        if account and _could_be_device(account):
            async with self._lookups:  # a device new to the ledger: the ERM is asked (not holding a slot)
                found = await self.engine.resolve_device(account)
            if not isinstance(found, Refused):
                return found
            if found.reason is Reason.ERM_UNAVAILABLE:
                return None
        if payment.phone and payment.phone != account:
            async with slot:
                by_phone = await self._known(payment.phone, devices=False)
            if by_phone is not None:
                return by_phone
        return Unmatched.UNKNOWN_ACCOUNT

    async def _known(self, account: str, *, devices: bool = True) -> int | list[int] | None:
        """What the ledger alone says ``account`` is: a device, or a customer's devices."""
        if not account:
            return None
        async with self.db.read() as session:
            if devices:
                device = await ledger.find_device(session=session, ref=account)
                if device is not None:
                    assert device.id is not None
                    return device.id
            phone = e164(account, self.phone_region)
            customer = await ledger.customer_by_phone(session=session, phone=phone) if phone else None
            if customer is None or customer.id is None:
                return None
            owned = [d.id for d in await ledger.customer_devices(session=session, customer_id=customer.id) if d.id]
        if len(owned) == 1:
            return owned[0]
        return owned or None

    async def _keep(self, payment_id: int, match: Unmatched | list[int] | None) -> Outcome:
        """Keep it UNMATCHED for the managers, or PENDING to be tried again (unless it moved on meanwhile)."""
        now = self.clock.now()
        async with self.db.write() as session:
            payment = await ledger.lock_payment(session=session, payment_id=payment_id)
            if payment.status is PaymentStatus.MATCHED and payment.device_id is not None:
                moved_on = payment.device_id
            elif payment.status is not PaymentStatus.PENDING:
                return NotMatched(payment_id, Unmatched(payment.reason) if payment.reason in set(Unmatched)
                                  else Unmatched.UNKNOWN_ACCOUNT)
            else:
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
        return await self.engine.apply_payment(payment_id, moved_on)  # someone assigned it meanwhile

    async def _hold_conflict(self, payment: Payment) -> Outcome:
        """Keep a payment whose reference is another's for the managers (unless one assigned it meanwhile),
        with the device its account names, if the ledger knows one, for the notice's button."""
        assert payment.id is not None
        known = await self._known(payment.account.strip())
        async with self.db.write() as session:
            fresh = await ledger.lock_payment(session=session, payment_id=payment.id)
            if fresh.status is PaymentStatus.PENDING:
                fresh.status, fresh.reason, fresh.retry_at = (PaymentStatus.UNMATCHED,
                                                              Unmatched.REFERENCE_CONFLICT.value, None)
                if fresh.device_id is None and isinstance(known, int):
                    fresh.device_id = known
                fresh.notice, fresh.notified_at = PaymentNotice.MANAGERS, None
                session.add(fresh)
                log.warning("payment %s/%s kept for the managers: payment %s has its reference", fresh.provider,
                            fresh.reference, fresh.duplicate_of)
            moved_on = fresh.device_id if fresh.status is PaymentStatus.MATCHED else None
        if moved_on is not None:  # assigned by a manager meanwhile (or a copy): nothing changes
            return await self.engine.apply_payment(payment.id, moved_on)
        return NotMatched(payment.id, Unmatched.REFERENCE_CONFLICT,
                          [known] if isinstance(known, int) else known if isinstance(known, list) else [])

    # -- managers assign what was kept ---------------------------------------------------------

    async def get(self, payment_id: int) -> Payment | None:
        async with self.db.read() as session:
            return await ledger.get_payment(session=session, payment_id=payment_id)

    async def find(self, reference: str) -> Payment | None:
        async with self.db.read() as session:
            return await ledger.payment_by_reference(session=session, reference=reference)

    async def repeated(self, incoming: Incoming) -> Payment | None:
        """The stored payment that ``incoming`` would only repeat (storing it would change nothing), if any:
        for a pasted confirmation, before it is shown back."""
        async with self.db.read() as session:
            stored = await ledger.payments_under_references(session=session, references=[incoming.reference])
        rows = stored.get(incoming.reference)
        if not rows:
            return None
        payment, new, row = _beside(incoming, rows, self.clock.now())
        return None if new or row is not None else payment

    async def assign(self, payment_id: int, device_id: int, *, manager: Person, chat_id: int | None) -> Outcome:
        """A manager says which device a kept payment is for: it is applied now (exactly once)."""
        assert manager.id is not None
        self._working.add(payment_id)
        try:
            outcome = await self.engine.apply_payment(payment_id, device_id, assigned_by=manager.id, chat_id=chat_id)
        finally:
            self._working.discard(payment_id)
        log.info("payment %s assigned to device %s by person %s: %s", payment_id, device_id, manager.id,
                 type(outcome).__name__)
        await self.tell(payment_id)
        return outcome

    async def target(self, account: str | None) -> tuple[Device, Customer | None] | None:
        """What the ledger knows ``account`` to be (a device, or a customer's only device), for previews."""
        if not account:
            return None
        known = await self._known(account)
        if not isinstance(known, int):
            return None
        async with self.db.read() as session:
            device = await ledger.get_device(session=session, device_id=known)
            if device is None:
                return None
            customer = None
            if device.customer_id is not None:
                customer = await ledger.get_customer(session=session, customer_id=device.customer_id)
        return device, customer

    # -- telling people, and the sweep -----------------------------------------------------------

    async def tell(self, payment_id: int) -> bool:
        """Send the payment's notice if one is owed; False if it could not be sent (tried again later)."""
        if self.notify is None or payment_id in self._telling:
            return True
        self._telling.add(payment_id)
        try:
            async with self.db.read() as session:
                payment = await ledger.get_payment(session=session, payment_id=payment_id)
            if payment is None or payment.notice is None or payment.notified_at is not None:
                return True
            notice = payment.notice
            try:
                await self.notify(payment)
            except Exception as exc:  # the notifier talks to the outside world; any failure is retried
                log.warning("payment %s: notice to %s not sent (%s); will retry", payment_id, notice,
                            type(exc).__name__)
                return False
            async with self.db.write() as session:
                fresh = await ledger.lock_payment(session=session, payment_id=payment_id)
                if fresh.notice is notice and fresh.notified_at is None:
                    fresh.notified_at = self.clock.now()
                    session.add(fresh)
            return True
        finally:
            self._telling.discard(payment_id)

    async def sweep(self) -> None:
        """Take up PENDING payments due for another try, and notices still owed."""
        if self._closed:
            return
        now = self.clock.now()
        async with self.db.read() as session:
            due = await ledger.payments_to_retry(session=session, now=now)
            owed = await ledger.payments_owing_notice(session=session)
        for payment in due:
            if payment.id is not None and payment.id not in self._working:
                self._working.add(payment.id)
                self._spawn(self.process(payment, background=True))
        for payment in owed:
            if payment.id is not None and payment.id not in self._working and payment.id not in self._telling:
                self._spawn(self.tell(payment.id))

    async def drain(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        """Stop taking new work; let what is in hand finish (the ledger keeps the rest)."""
        self._closed = True
        await self.drain()

    def _spawn(self, work: Awaitable[Any]) -> None:
        task: asyncio.Task[Any] = asyncio.ensure_future(work)
        self._tasks.add(task)

        def done(finished: asyncio.Task[Any]) -> None:
            self._tasks.discard(finished)
            if not finished.cancelled() and finished.exception() is not None:
                log.error("payment task failed", exc_info=finished.exception())

        task.add_done_callback(done)


def _row(incoming: Incoming, now: datetime) -> Payment:
    """A payment as first stored: PENDING, matched at once (or by the sweep after ``RECORD_GRACE``)."""
    return Payment(
        provider=incoming.provider, reference=incoming.reference, amount=incoming.amount, currency=incoming.currency,
        account=incoming.account, phone=incoming.phone, payer=incoming.payer, paid_at=incoming.paid_at,
        received_at=now, status=PaymentStatus.PENDING, recorded_by_id=incoming.recorded_by, chat_id=incoming.chat_id,
        retry_at=now + RECORD_GRACE,
    )


def _beside(incoming: Incoming, rows: list[Payment], now: datetime) -> tuple[Payment, bool, Payment | None]:
    """Where a payment goes whose reference is stored already (``rows``, oldest first): (the payment it is,
    whether that is new, the row to store beside the others).

    The same provider, amount and account again is that payment (webhooks retry). Daraja's confirmation of
    money pasted first (the same amount) is a copy beside it that makes no days; money pasted after Daraja's
    confirmation of it is Daraja's. Anything else is a conflict: stored, never dropped, kept for the managers.
    """
    same_provider = [row for row in rows if row.provider == incoming.provider]
    for row in same_provider:
        if _same_money(row, incoming) and _same_account(row.account, incoming.account):
            return _shown(row, rows), False, None
    if not same_provider and incoming.provider in MPESA_FAMILY:
        twin = next((row for row in rows if row.provider in MPESA_FAMILY and _same_money(row, incoming)), None)
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


def _log_beside(row: Payment) -> None:
    if row.reason == CONFIRMATION_COPY:
        log.info("payment %s/%s: it confirms payment %s (no days of its own)", row.provider, row.reference,
                 row.duplicate_of)
    else:
        log.warning("payment %s/%s stored beside payment %s: same reference, another amount, account or provider "
                    "(%s %s for %r)", row.provider, row.reference, row.duplicate_of, row.amount, row.currency,
                    row.account)


def _may_owe_notice(outcome: Outcome, now: datetime) -> bool:
    """False when the payment's code simply goes out now (its message says it all)."""
    if isinstance(outcome, PaymentApplied):
        waits = outcome.not_before is not None and outcome.not_before > now
        return not outcome.duplicate and (outcome.days_now == 0 or outcome.prepaid_days > 0 or waits)
    return True


def _could_be_device(account: str) -> bool:
    try:
        check_product_id(account)
    except ValueError:
        return False
    return True


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


def new_cash_reference(now: datetime) -> str:
    """A reference for cash recorded without one: ``CASH-20261122-7F3A9C``."""
    return f"CASH-{now:%Y%m%d}-{secrets.token_hex(3).upper()}"


# == telling people in the chat =================================================================


class ChatNotices:
    """The payments' notifier, sending through the bot: managers of kept money, customers of a wait."""

    def __init__(self, bot: Bot, db: Database, settings: Settings, clock: Clock) -> None:
        self.bot, self.db, self.settings, self.clock = bot, db, settings, clock

    async def __call__(self, payment: Payment) -> None:
        if payment.notice is PaymentNotice.MANAGERS:
            await self._managers(payment)
        elif payment.notice is PaymentNotice.RECEIVED:
            await self._received(payment)

    async def _managers(self, payment: Payment) -> None:
        devices = await candidates(self.db, payment, self.settings.phone_region)
        async with self.db.read() as session:
            people = await ledger.active_people(session=session)
            first = None
            if payment.duplicate_of is not None:
                first = await ledger.get_payment(session=session, payment_id=payment.duplicate_of)
        details = dict(
            reference=payment.reference, amount=payment.amount, currency=payment.currency, account=payment.account,
            payer=payment.payer, phone=payment.phone, provider=payment.provider, reason=payment.reason or "",
            device=next((d.label for d in devices if d.id == payment.device_id), None),
            first=(first.amount, first.currency, first.account, first.provider) if first is not None else None,
        )
        for person in people:
            if person.role is Role.MANAGER:
                await self._send(person.telegram_id, lambda t: t.payment_kept_notice(**details),
                                 lambda t: assign_buttons(payment, devices, t))

    async def _received(self, payment: Payment) -> None:
        assert payment.id is not None and payment.device_id is not None
        async with self.db.read() as session:
            device = await ledger.get_device(session=session, device_id=payment.device_id)
            request = await ledger.request_for_payment(session=session, payment_id=payment.id)
            customer = agent = None
            if device is not None and device.customer_id is not None:
                customer = await ledger.get_customer(session=session, customer_id=device.customer_id)
            if customer is not None and customer.registered_by_id is not None:
                agent = await ledger.person_by_id(session=session, person_id=customer.registered_by_id)
        if device is None:
            return
        now = self.clock.now()
        waits_until = None
        if request is not None and request.status is Status.QUEUED and request.not_before > now:
            waits_until = request.not_before
        words = dict(
            reference=payment.reference, amount=payment.amount, currency=payment.currency, device=device.label,
            days=payment.days, prepaid=payment.prepaid_days, credit_left=payment.credit_left,
            price=device.daily_price, waits_until=waits_until, tz=self.settings.tz,
        )
        sent: set[int] = {payment.chat_id} if payment.chat_id is not None else set()
        if customer is not None and customer.chat_id is not None and customer.chat_id not in sent:
            sent.add(customer.chat_id)
            await self._send(customer.chat_id, lambda t: t.payment_received_notice(for_customer=True, **words))
        if agent is not None and agent.active and agent.telegram_id not in sent:
            await self._send(agent.telegram_id, lambda t: t.payment_received_notice(for_customer=False, **words))

    async def _send(self, chat_id: int, words: Callable[[Texts], str],
                    markup: Callable[[Texts], InlineKeyboardMarkup | None] | None = None) -> None:
        await speak_to(self.bot, self.db, chat_id, words, sandbox=self.settings.uses_sandbox, markup=markup,
                       unreachable="payment notice")


def assign_buttons(payment: Payment, candidates: list[Device], words: Texts) -> InlineKeyboardMarkup | None:
    """One button per device the money may be for (``pay:asg:<payment>:<device>``)."""
    rows = [[InlineKeyboardButton(words.assign_button(device.label), callback_data=f"pay:asg:{payment.id}:{device.id}")]
            for device in candidates]
    return InlineKeyboardMarkup(rows) if rows else None


# == the HTTP side ===============================================================================


class BadPayment(ValueError):
    """The body is not a payment (the message says what is wrong; nothing was stored)."""


def signature_ok(secret: bytes, body: bytes, header: str | None) -> bool:
    """``sha256=<hex HMAC-SHA256 of the raw body>``, compared in constant time."""
    if not header:
        return False
    given = header.strip()
    if given[:7].lower() != "sha256=":
        return False
    expected = hmac.new(secret, body, hashlib.sha256).hexdigest().encode()
    return hmac.compare_digest(expected, given[7:].strip().lower().encode("utf-8", "replace"))


def sign(secret: str, body: bytes) -> str:
    """The header value a sender puts on ``body`` (for tests, benchmarks and integrators)."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class _Number:
    """A JSON number with a fraction or an exponent, as written (``250.50``, ``1e3``): an amount is read
    from its text, so that only plain decimals are money."""

    text: str


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body, parse_float=_Number, parse_constant=_no_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadPayment("the body is not JSON") from exc
    if not isinstance(data, dict):
        raise BadPayment("the body is not a JSON object")
    return data


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number")


def _text(data: dict[str, Any], name: str, *, required: bool, limit: int, numbers: bool = False) -> str | None:
    value = data.get(name)
    if value is None or (isinstance(value, str) and not value.strip() and not required):
        if required:
            raise BadPayment(f"{name} is missing")
        return None
    if numbers and isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        value = str(value)
    if not isinstance(value, str):
        raise BadPayment(f"{name} must be text")
    value = value.strip()
    if not value or len(value) > limit or not _TEXT_FIELD.match(value):
        raise BadPayment(f"{name} must be 1 to {limit} printable characters")
    return value


def _positive_amount(value: Any, name: str) -> Decimal:
    """Plain decimals only (``250``, ``250.50``): ``1e3``, ``1_000``, ``+5`` or other scripts' digits are
    refused, as a number and as text — Python's Decimal would read them all."""
    if isinstance(value, bool) or not isinstance(value, (int, _Number, str)):
        raise BadPayment(f"{name} must be a positive decimal number")
    text = value.text if isinstance(value, _Number) else value.strip() if isinstance(value, str) else str(value)
    if not _PLAIN_DECIMAL.fullmatch(text):
        raise BadPayment(f"{name} must be a positive decimal number, written like 250 or 250.50")
    try:
        amount = Decimal(text)
    except InvalidOperation as exc:
        raise BadPayment(f"{name} must be a positive decimal number") from exc
    if not amount.is_finite() or amount <= 0 or amount > MAX_AMOUNT or amount.as_tuple().exponent < -4:  # type: ignore[operator]
        raise BadPayment(f"{name} must be a positive decimal number (at most 4 decimal places)")
    return amount


def parse_webhook(body: bytes) -> Incoming:
    """``{"reference", "amount", "currency", "account", "phone"?, "paid_at"?}`` as product.md has it."""
    data = _json_object(body)
    reference = _text(data, "reference", required=True, limit=100)
    if "amount" not in data or data["amount"] is None:
        raise BadPayment("amount is missing")
    amount = _positive_amount(data["amount"], "amount")
    account = _text(data, "account", required=True, limit=100, numbers=True)
    currency = data.get("currency") or ""
    if not isinstance(currency, str) or not _CURRENCY.match(currency.strip()):
        raise BadPayment("currency must be a currency code such as KES")
    phone = _text(data, "phone", required=False, limit=32, numbers=True)
    paid_at = None
    if data.get("paid_at") not in (None, ""):
        raw = data["paid_at"]
        try:
            paid_at = datetime.fromisoformat(raw.replace("Z", "+00:00")) if isinstance(raw, str) else None
        except ValueError:
            paid_at = None
        if paid_at is None:
            raise BadPayment("paid_at must be an ISO 8601 time, such as 2026-11-22T10:15:00+03:00")
        paid_at = paid_at.replace(tzinfo=UTC) if paid_at.tzinfo is None else paid_at.astimezone(UTC)
    assert reference is not None and account is not None
    return Incoming(Provider.WEBHOOK, reference, amount, account, currency.strip().upper(), phone, paid_at=paid_at)


def parse_daraja(body: bytes) -> Incoming:
    """A Daraja C2B confirmation: ``TransID`` (the reference), ``TransAmount``, ``BillRefNumber`` (the
    account the payer typed; empty for till payments: then the payer's ``MSISDN``), ``TransTime``."""
    data = _json_object(body)
    reference = _text(data, "TransID", required=True, limit=100)
    if data.get("TransAmount") in (None, ""):
        raise BadPayment("TransAmount is missing")
    amount = _positive_amount(data["TransAmount"], "TransAmount")
    account = _text(data, "BillRefNumber", required=False, limit=100, numbers=True)
    msisdn = _text(data, "MSISDN", required=False, limit=64, numbers=True)
    phone = e164(msisdn, DARAJA_REGION) if msisdn else None
    names = [data.get(key) for key in ("FirstName", "MiddleName", "LastName")]
    payer = " ".join(name.strip() for name in names if isinstance(name, str) and name.strip())[:100] or None
    paid_at = None
    when = data.get("TransTime")
    if isinstance(when, (str, int)) and re.fullmatch(r"\d{14}", str(when)):
        try:
            paid_at = datetime.strptime(str(when), "%Y%m%d%H%M%S").replace(tzinfo=DARAJA_TZ).astimezone(UTC)
        except ValueError:
            paid_at = None
    assert reference is not None
    return Incoming(Provider.MPESA, reference, amount, account or phone or "", "KES", phone, payer, paid_at)


async def _body(request: Request) -> bytes:
    """The raw body, refusing more than ``MAX_BODY`` bytes without reading them all."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY:
        raise _TooLarge
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


class _TooLarge(Exception):
    pass


def _keep_out_of_logs(settings: Settings) -> None:
    """The webhook secret and the M-Pesa path are redacted from every log line, also uvicorn's access
    lines (off by default, but a logging configuration can turn them on: the path is in them)."""
    for value in (settings.webhook_secret, settings.mpesa_path):
        if value is not None:
            logs.register_secret(value.get_secret_value())
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(existing, logs.RedactSecrets) for existing in access.filters):
        access.addFilter(logs.RedactSecrets())


def payment_routes(payments: Payments, settings: Settings) -> list[Route]:
    """``POST /payments`` (signed) and ``POST /payments/mpesa/<PAYGBOT_MPESA_PATH>`` (Daraja C2B)."""
    secret = settings.webhook_secret.get_secret_value().encode() if settings.webhook_secret else None
    mpesa_path = settings.mpesa_path.get_secret_value().encode() if settings.mpesa_path else None
    _keep_out_of_logs(settings)
    if secret is None:
        log.warning("PAYGBOT_WEBHOOK_SECRET is not set: every POST /payments is refused")

    async def store(incoming: Incoming) -> tuple[Payment, bool] | None:
        try:
            payment, new = await payments.record(incoming)
        except SQLAlchemyError as exc:
            log.error("payment %s could not be stored (%s); the sender will retry", incoming.reference,
                      type(exc).__name__)
            return None
        if new:
            payments.process_soon(payment)
        return payment, new

    async def webhook(request: Request) -> JSONResponse:
        """A payment from a provider, signed with PAYGBOT_WEBHOOK_SECRET."""
        try:
            body = await _body(request)
        except _TooLarge:
            return JSONResponse({"error": "the body is too large"}, status_code=413)
        if secret is None or not signature_ok(secret, body, request.headers.get(SIGNATURE_HEADER)):
            log.warning("POST /payments from %s refused: missing or wrong signature",
                        request.client.host if request.client else "?")
            return JSONResponse({"error": "missing or wrong signature"}, status_code=401)
        try:
            incoming = parse_webhook(body)
        except BadPayment as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        stored = await store(incoming)
        if stored is None:
            return JSONResponse({"error": "the ledger is unavailable; try again"}, status_code=503)
        payment, new = stored
        return JSONResponse({"status": "accepted" if new else "duplicate", "reference": payment.reference})

    async def daraja(request: Request) -> JSONResponse:
        """A Safaricom M-Pesa C2B confirmation, at the secret path."""
        given = request.path_params.get("secret", "")
        if mpesa_path is None or not hmac.compare_digest(mpesa_path, given.encode("utf-8", "replace")):
            return JSONResponse({"error": "not found"}, status_code=404)
        try:
            body = await _body(request)
        except _TooLarge:
            return JSONResponse({"ResultCode": 1, "ResultDesc": "Rejected: the body is too large"}, status_code=413)
        try:
            incoming = parse_daraja(body)
        except BadPayment as exc:
            return JSONResponse({"ResultCode": 1, "ResultDesc": f"Rejected: {exc}"}, status_code=400)
        if await store(incoming) is None:
            return JSONResponse({"ResultCode": 1, "ResultDesc": "Rejected: try again"}, status_code=503)
        return JSONResponse(DARAJA_ACCEPTED)

    return [
        Route("/payments", webhook, methods=["POST"]),
        Route("/payments/mpesa/{secret}", daraja, methods=["POST"]),
    ]


# == the sweep job ===============================================================================


async def _sweep(context: CallbackContext[Any, Any, Any, Any]) -> None:
    assert context.job is not None
    payments: Payments = context.job.data  # type: ignore[assignment]
    await payments.sweep()


def schedule_payment_sweep(job_queue: JobQueue[Any], payments: Payments, interval: float = SWEEP_INTERVAL) -> None:
    """Every few seconds: PENDING payments due for another try, and notices still owed."""
    job_queue.run_repeating(_sweep, interval=interval, first=interval, name=SWEEP_JOB, data=payments,
                            job_kwargs={"max_instances": 1, "coalesce": True})
