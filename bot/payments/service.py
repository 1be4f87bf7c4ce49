"""The payments service: a payment is stored first, then matched to a device and turned into days by
the engine, or kept for a manager; people are told what became of it (at least once).

1. **Store** the payment first, unconditionally (:meth:`Payments.record`, :mod:`bot.payments.storing`):
   a repeat, or five at once, finds the stored one and changes nothing. Only then does a webhook answer 2xx.
2. **Match** its account to a device (:mod:`bot.payments.matching`); a device the ledger does not know yet
   is looked up at the ERM. If the ERM cannot be asked, the payment stays PENDING and is tried again
   (:meth:`Payments.sweep`) — never dropped, never refused.
3. **Apply** it (:meth:`bot.issuing.IssuingEngine.apply_payment`, one transaction, exactly once), or keep
   it UNMATCHED for a manager to assign (:meth:`Payments.assign`).
4. **Tell** (:meth:`Payments.tell`, through the ``notify`` it is given): managers of money kept for them,
   the customer (and their agent) when no code goes out at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable
from datetime import datetime, timedelta
from typing import Any

from bot.background import Background, TurnPlaces
from bot.clock import Clock
from bot.issuing import IssuingEngine, PaymentApplied, Reason, Refused
from bot.payments import matching, storing
from bot.payments.storing import STORE_BATCH
from bot.payments.values import Incoming, Notifier, Outcome, Received, Unmatched
from storage import ledger
from storage.db import Database
from storage.models import Customer, Device, Payment, PaymentStatus, Person

log = logging.getLogger("paygbot.payments")

NOTICE_HELD = timedelta(seconds=30)
"""How long one process holds a notice's sending before another may try (it died meanwhile)."""

MAX_LOOKUPS = 16
"""ERM lookups of devices new to the ledger at once, for payments worked off in the background."""


class Payments:
    """Money in, stored first, then matched and turned into days by the engine."""

    def __init__(
        self, *, db: Database, engine: IssuingEngine, clock: Clock, phone_region: str, notify: Notifier | None = None,
        max_concurrency: int = 2,
    ) -> None:
        self.db, self.engine, self.clock, self.notify = db, engine, clock, notify
        self.phone_region = phone_region
        self._slots = TurnPlaces(max_concurrency, hold_a_turn=db.holds_the_loop)
        """The background's few places at the ledger: a burst of webhooks is answered first, its payments worked
        off behind."""
        self._lookups = asyncio.Semaphore(MAX_LOOKUPS)
        self._working: set[int] = set()
        self._telling: set[int] = set()
        self._background = Background(log, "payment")
        self._to_store: list[tuple[Incoming, asyncio.Future[tuple[Payment, bool]]]] = []
        self._storing = False

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
                    stored = await storing.store(self.db, [incoming for incoming, _ in batch], self.clock.now())
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

    async def receive(self, incoming: Incoming) -> Received:
        """Store, then match and apply at once (the chat's way: the person waits for the outcome)."""
        payment, new = await self.record(incoming)
        if not new:
            return Received(payment, False, None)
        return Received(payment, True, await self.process(payment))

    def process_soon(self, payment: Payment) -> None:
        """Match and apply in the background (the webhook's way: it has answered already)."""
        if not self._background.closed:
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
                held = await matching.hold_conflict(self.db, payment, self.phone_region)
                if isinstance(held, int):  # assigned by a manager meanwhile (or a copy): nothing changes
                    return await self.engine.apply_payment(payment.id, held)
                return held
        if payment.status is PaymentStatus.MATCHED and payment.device_id is not None:
            async with slot:
                return await self.engine.apply_payment(payment.id, payment.device_id)
        match = await self._match(payment, slot)
        async with slot:
            if isinstance(match, int):
                return await self.engine.apply_payment(payment.id, match)
            kept = await matching.keep(self.db, payment.id, match, self.clock.now())
            if isinstance(kept, int):  # someone assigned it meanwhile
                return await self.engine.apply_payment(payment.id, kept)
            return kept

    async def _match(self, payment: Payment, slot: contextlib.AbstractAsyncContextManager[Any]
                     ) -> int | Unmatched | list[int] | None:
        """The device the payment is for; the reason there is none; the candidates; None: ask later."""
        account = payment.account.strip()
        async with slot:
            by_account = await matching.known(self.db, account, self.phone_region)
        if by_account is not None:
            return by_account
        if account and matching.could_be_device(account):
            async with self._lookups:  # a device new to the ledger: the ERM is asked (not holding a slot)
                found = await self.engine.resolve_device(account)
            if not isinstance(found, Refused):
                return found
            if found.reason is Reason.ERM_UNAVAILABLE:
                return None
        if payment.phone and payment.phone != account:
            async with slot:
                by_phone = await matching.known(self.db, payment.phone, self.phone_region, devices=False)
            if by_phone is not None:
                return by_phone
        return Unmatched.UNKNOWN_ACCOUNT

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
            device_id = await storing.device_named(session, incoming)
        rows = stored.get(incoming.reference)
        if not rows:
            return None
        payment, new, row = storing.beside(incoming, rows, self.clock.now(), device_id)
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
        named = await matching.known(self.db, account, self.phone_region)
        if not isinstance(named, int):
            return None
        async with self.db.read() as session:
            device = await ledger.get_device(session=session, device_id=named)
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
            now = self.clock.now()
            async with self.db.write() as session:  # one process at a time sends it
                if not await ledger.hold_notice(session=session, payment_id=payment_id, now=now,
                                                until=now + NOTICE_HELD):
                    return True
                payment = await ledger.get_payment(session=session, payment_id=payment_id)
            if payment is None or payment.notice is None or payment.notified_at is not None:
                return True
            notice = payment.notice
            try:
                await self.notify(payment)
            except Exception as exc:  # the notifier talks to the outside world; any failure is retried
                log.warning("payment %s: notice to %s not sent (%s); will retry", payment_id, notice,
                            type(exc).__name__)
                async with self.db.write() as session:
                    await ledger.let_notice_go(session=session, payment_id=payment_id)
                return False
            async with self.db.write() as session:
                fresh = await ledger.lock_payment(session=session, payment_id=payment_id)
                if fresh.notice is notice and fresh.notified_at is None:
                    fresh.notified_at = self.clock.now()
                    session.add(fresh)
            return True
        finally:
            self._telling.discard(payment_id)

    def tell_soon(self, payment_id: int) -> None:
        """Send the payment's notice in the background (a webhook has answered already)."""
        if not self._background.closed:
            self._spawn(self.tell(payment_id))

    async def sweep(self) -> None:
        """Take up PENDING payments due for another try, and notices still owed."""
        if self._background.closed:
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
        await self._background.drain()

    async def close(self) -> None:
        """Stop taking new work; let what is in hand finish (the ledger keeps the rest)."""
        await self._background.close()

    def _spawn(self, work: Awaitable[Any]) -> None:
        self._background.spawn(work)

    @property
    def busy(self) -> bool:
        """Whether background work (storing, matching, telling) is in hand."""
        return bool(self._background.tasks)


def _may_owe_notice(outcome: Outcome, now: datetime) -> bool:
    """False when the payment's code simply goes out now (its message says it all)."""
    if isinstance(outcome, PaymentApplied):
        if not outcome.duplicate and outcome.plan is not None and (outcome.plan.paid_off or outcome.plan.excess):
            return True
        waits = outcome.not_before is not None and outcome.not_before > now
        return not outcome.duplicate and (outcome.days_now == 0 or outcome.prepaid_days > 0 or waits)
    return True
