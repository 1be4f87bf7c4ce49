"""A request becomes a code: validate, enqueue, dispatch, record, hand on for delivery.

The ledger is the source of truth; this engine only pumps it. A request is written
QUEUED before anything else; :meth:`IssuingEngine.pump` claims due requests (SENDING,
committed before the ERM is called), one device at a time and many devices at once, and
records the outcome. Generation is exactly-once: a request whose outcome is unknown (a
timeout, or a crash while SENDING) is settled from the ERM's code history and sent again
only if no code was committed. Delivery is at-least-once and may be retried.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum

from bot import limits
from bot.clock import Clock, SystemClock
from bot.config import Settings
from bot.erm.client import ErmClient, check_product_id
from bot.erm.errors import (
    ErmAuthError,
    ErmError,
    ErmOutcomeUnknown,
    ErmRateLimited,
    ErmRefused,
    ErmUnavailable,
)
from bot.erm.models import CodeEvent, CodeType, GeneratedCode
from storage import ledger
from storage.db import Database
from storage.models import (
    CodeKind,
    CodeRequest,
    Customer,
    Device,
    Payment,
    PaymentNotice,
    PaymentStatus,
    Source,
    Status,
)

log = logging.getLogger("paygbot.issuing")

Notifier = Callable[[CodeRequest], Awaitable[None]]
"""Tells people the outcome of a finished request (issued, refused, failed); raises if it could not."""

_ERM_TYPE = {CodeKind.DAYS: CodeType.DAYS, CodeKind.FREE: CodeType.FREE, CodeKind.RESET: CodeType.RESET}
_HISTORY_DAYS = {CodeKind.FREE: 1096, CodeKind.RESET: 2192}
CLOCK_SKEW = timedelta(minutes=10)
SETTLE_GRACE = timedelta(seconds=5)
GIVE_UP_AFTER = timedelta(days=1)
SETTLE_POLL_CAP = timedelta(minutes=5)
PREPAID_BATCH_DAYS = 30
PREPAID_CHECK_EVERY = timedelta(minutes=1)


class Reason(StrEnum):
    """Why a request was refused before it reached the ERM (or by the ERM itself)."""

    BAD_DEVICE = "bad_device"
    BAD_DAYS = "bad_days"
    UNKNOWN_DEVICE = "unknown_device"
    DAILY_LIMIT = "daily_limit"
    STACKING = "stacking"
    UNLOCKED = "unlocked"
    ERM_REFUSED = "erm_refused"
    ERM_UNAVAILABLE = "erm_unavailable"


# Why a request waits (or failed, when it waited too long), kept in ``CodeRequest.reason`` as a
# word that bot/texts.py puts in the reader's language. A refusal by the ERM keeps its own words.
WAIT_ERM_UNAVAILABLE = "erm_unavailable"
WAIT_ERM_LOGIN = "erm_login"
WAIT_ERM_NOT_YET = "erm_not_yet"
WAIT_SETTLING = "settling"
WAIT_RESENDING = "resending"
WAIT_UNSETTLED = "unsettled"
"""A day without the ERM saying whether the code was made; people were told (once)."""
WAIT_TOO_LATE = "too_late"
"""Settled as nothing made, but asked over a day ago: an unpaid request then ends (FAILED)."""
WAIT_KEPT_PREPAID = "kept_prepaid"
"""A paid request whose days no longer fit once two rows were found to be one device: kept as prepaid days."""
HISTORY_PROBE = 50
"""History events read to tell whether a typed id is a device the ledger knows (five days of codes at most)."""


@dataclass(frozen=True)
class Accepted:
    """Queued: the code follows in about ``eta``."""

    request_id: int
    device_ref: str
    kind: CodeKind
    days: int | None
    eta: timedelta


@dataclass(frozen=True)
class Refused:
    """Not queued; what is possible instead: ``fits`` days now, or a code at ``possible_at``."""

    reason: Reason
    device_ref: str
    fits: int | None = None
    possible_at: datetime | None = None
    words: str | None = None


@dataclass(frozen=True)
class DeviceStatus:
    """What an agent sees of a device: credit, today's codes, when the next code can go out."""

    device: Device
    aliases: list[str]
    customer: Customer | None
    days_left: int
    codes_today: int
    daily_limit: int
    next_code_at: datetime
    queued: int
    last_codes: list[CodeRequest]


@dataclass(frozen=True)
class PaidOutcome:
    """What a payment turned into. ``duplicate``: the reference was seen before; nothing changed."""

    payment_id: int
    duplicate: bool
    request_id: int | None
    days_now: int
    prepaid_days: int
    not_before: datetime | None


class HoldReason(StrEnum):
    """Why a stored payment was not turned into days: it waits for a manager."""

    NO_PRICE = "no_price"
    CURRENCY = "currency"
    UNLOCKED = "unlocked"


@dataclass(frozen=True)
class PaymentApplied:
    """A stored payment turned into days for a device (``duplicate``: it had been before; nothing changed).

    ``days`` = (amount + the device's money credit) ÷ daily price, rounded down; ``days_now`` of them
    are queued (at ``not_before``: later than now past the daily limit), ``prepaid_days`` kept for when
    room opens under the stacking limit; ``credit_left`` is the money kept toward the next payment.
    """

    payment_id: int
    duplicate: bool
    device_id: int
    days: int
    days_now: int
    prepaid_days: int
    request_id: int | None
    not_before: datetime | None
    credit_left: Decimal


@dataclass(frozen=True)
class PaymentHeld:
    """A stored payment kept for a manager: the device has no daily price, another currency, or is unlocked."""

    payment_id: int
    device_id: int
    reason: HoldReason


def backoff(attempts: int, base: float = 5.0, cap: float = 300.0) -> timedelta:
    """5 s, 10 s, 20 s … up to 5 minutes."""
    return timedelta(seconds=min(cap, base * 2 ** max(0, attempts - 1)))


class IssuingEngine:
    """Holds every device to the limits and every request to exactly one code."""

    def __init__(
        self,
        *,
        db: Database,
        erm: ErmClient,
        settings: Settings,
        clock: Clock | None = None,
        notify: Notifier | None = None,
        max_concurrency: int = 64,
    ) -> None:
        self.db, self.erm, self.clock = db, erm, clock or SystemClock()
        self.notify = notify
        self.limits = limits.Limits(
            min_gap=timedelta(seconds=settings.min_gap_seconds),
            daily_limit=settings.daily_code_limit,
            max_stacked_days=settings.max_stacked_days,
            tz=settings.tz,
        )
        self.settle_delay = timedelta(seconds=settings.erm_timeout_seconds) + SETTLE_GRACE
        self.max_concurrency = max_concurrency
        self._slots = asyncio.Semaphore(max_concurrency)
        self._busy: set[int] = set()
        self._delivering: set[int] = set()
        self._told: dict[int, asyncio.Event] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._pump_lock = asyncio.Lock()
        self._kick_pending = False
        self._prepaid_checked: datetime | None = None
        self._closed = False

    # -- asking for codes -------------------------------------------------------------------

    async def request(
        self,
        device_ref: str,
        kind: CodeKind,
        days: int | None = None,
        *,
        requested_by: int | None = None,
        chat_id: int | None = None,
        source: Source = Source.CHAT,
    ) -> Accepted | Refused:
        """Validate a request against every limit and queue it, or say why not and what is possible."""
        try:
            check_product_id(device_ref)
        except ValueError:
            return Refused(Reason.BAD_DEVICE, device_ref)
        if kind is CodeKind.DAYS and (days is None or not limits.valid_days(days)):
            return Refused(Reason.BAD_DAYS, device_ref, fits=None)
        if kind is not CodeKind.DAYS:
            days = None
        device_id = await self.resolve_device(device_ref)
        if isinstance(device_id, Refused):
            return device_id
        now = self.clock.now()
        async with self.db.write() as session:
            device = await ledger.lock_device(session=session, device_id=device_id)
            refusal = await self._check(session, device, device_ref, kind, days, now)
            if refusal is not None:
                await ledger.add_request(session=session, request=_refused_row(device, device_ref, kind, days,
                                                                                refusal, requested_by, source, now))
                return refusal
            request = await ledger.add_request(
                session=session,
                request=CodeRequest(
                    device_id=device_id, device_ref=device_ref, kind=kind, days=days, source=source,
                    requested_by_id=requested_by, chat_id=chat_id, not_before=now, created_at=now,
                ),
            )
            eta = await self._eta(session, device, now)
        assert request.id is not None
        log.info("request %s queued: device %s, %s %s", request.id, device_ref, kind, days or "")
        self.kick()
        return Accepted(request.id, device_ref, kind, days, eta)

    async def request_paid(
        self,
        device_ref: str,
        days: int,
        *,
        provider: str,
        reference: str,
        amount: Decimal,
        currency: str = "",
        account: str | None = None,
        phone: str | None = None,
        paid_at: datetime | None = None,
        recorded_by: int | None = None,
        chat_id: int | None = None,
    ) -> PaidOutcome | Refused:
        """A paid days code: never refused for the daily limit or stacking, at most one per reference.

        Past the daily limit it waits for the next local day; days that do not fit under the
        stacking limit are kept as the device's prepaid days and issued when room opens.
        (Payments whose days come from the device's price go through :meth:`apply_payment`.)
        """
        try:
            check_product_id(device_ref)
        except ValueError:
            return Refused(Reason.BAD_DEVICE, device_ref)
        if days < 0:
            return Refused(Reason.BAD_DAYS, device_ref)
        device_id = await self.resolve_device(device_ref)
        if isinstance(device_id, Refused):
            return device_id
        now = self.clock.now()
        async with self.db.write() as session:
            payment, new = await ledger.add_payment(
                session=session,
                payment=Payment(
                    provider=provider, reference=reference, amount=amount, currency=currency,
                    account=account or device_ref, phone=phone, paid_at=paid_at, received_at=now,
                    device_id=device_id, status=PaymentStatus.MATCHED, days=days, recorded_by_id=recorded_by,
                    chat_id=chat_id, matched_at=now,
                ),
            )
            assert payment.id is not None
            if not new:
                existing = await ledger.request_for_payment(session=session, payment_id=payment.id)
                return PaidOutcome(payment.id, True, existing.id if existing else None, 0, 0, None)
            device = await ledger.lock_device(session=session, device_id=device_id)
            days_now, request_id, not_before = await self._queue_paid(
                session, device, payment, days, device_ref, requested_by=recorded_by, chat_id=chat_id, now=now)
        log.info("payment %s/%s: device %s, %s days now, %s prepaid", provider, reference, device_ref,
                 days_now, days - days_now)
        self.kick()
        return PaidOutcome(payment.id, False, request_id, days_now, days - days_now,
                           not_before if days_now else None)

    async def apply_payment(
        self, payment_id: int, device_id: int, *, assigned_by: int | None = None, chat_id: int | None = None
    ) -> PaymentApplied | PaymentHeld:
        """Turn a stored payment into days for the device at its daily price, exactly once.

        One transaction reads the payment and the device and writes the outcome: the days (queued
        now or for the next local day past the daily limit, the rest kept as prepaid days), the
        money below one day's price kept as the device's credit, or the reason it is held for a
        manager. A payment already applied changes nothing (``duplicate``).
        """
        now = self.clock.now()
        async with self.db.write() as session:
            payment = await ledger.lock_payment(session=session, payment_id=payment_id)
            if payment.status is PaymentStatus.MATCHED:
                assert payment.device_id is not None
                existing = await ledger.request_for_payment(session=session, payment_id=payment_id)
                return PaymentApplied(payment_id, True, payment.device_id, payment.days,
                                      payment.days - payment.prepaid_days, payment.prepaid_days,
                                      existing.id if existing else None, existing.not_before if existing else None,
                                      payment.credit_left or Decimal(0))
            device = await ledger.lock_device(session=session, device_id=device_id)
            payment.device_id = device_id
            if assigned_by is not None:
                payment.assigned_by_id = assigned_by
            if not payment.currency and device.currency:
                payment.currency = device.currency
            hold = _hold_reason(payment, device)
            if hold is not None:
                payment.status, payment.reason = PaymentStatus.UNMATCHED, hold.value
                if assigned_by is None:  # found by itself: every manager hears of it (an assigning one is answered)
                    payment.notice, payment.notified_at = PaymentNotice.MANAGERS, None
                session.add(payment)
                log.info("payment %s/%s kept for a manager: device %s, %s", payment.provider, payment.reference,
                         device.label, hold.value)
                return PaymentHeld(payment_id, device_id, hold)
            assert device.daily_price is not None
            money = payment.amount + device.credit_money
            days = int(money // device.daily_price)
            device.credit_money = money - days * device.daily_price
            days_now, request_id, not_before = await self._queue_paid(
                session, device, payment, days, device.label,
                requested_by=payment.recorded_by_id or assigned_by, chat_id=chat_id or payment.chat_id, now=now)
            payment.status, payment.reason, payment.days = PaymentStatus.MATCHED, None, days
            payment.prepaid_days, payment.credit_left, payment.matched_at = days - days_now, device.credit_money, now
            payment.retry_at = None
            waits = not days_now or not_before > now or days_now < days
            payment.notice, payment.notified_at = (PaymentNotice.RECEIVED, None) if waits else (None, None)
            session.add_all([payment, device])
        log.info("payment %s/%s: device %s, %s days (%s now, %s prepaid), credit %s", payment.provider,
                 payment.reference, device.label, days, days_now, days - days_now, device.credit_money)
        self.kick()
        return PaymentApplied(payment_id, False, device_id, days, days_now, days - days_now, request_id,
                              not_before if days_now else None, device.credit_money)

    async def _queue_paid(
        self, session: ledger.AsyncSession, device: Device, payment: Payment, days: int, device_ref: str, *,
        requested_by: int | None, chat_id: int | None, now: datetime,
    ) -> tuple[int, int | None, datetime]:
        """Queue what fits of a payment's days (past the daily limit: for the next local day) and keep
        the rest as the device's prepaid days; returns (days queued, their request, when they go out)."""
        assert device.id is not None and payment.id is not None
        days_now, not_before = await self._fit_paid(session, device, days, now)
        device.prepaid_days += days - days_now
        request_id = None
        if days_now:
            request = await ledger.add_request(
                session=session,
                request=CodeRequest(
                    device_id=device.id, device_ref=device_ref, kind=CodeKind.DAYS, days=days_now,
                    source=Source.PAYMENT, payment_id=payment.id, payment_reference=payment.reference,
                    requested_by_id=requested_by, chat_id=chat_id, not_before=not_before, created_at=now,
                ),
            )
            request_id = request.id
        session.add(device)
        return days_now, request_id, not_before

    async def resolve_device(self, device_ref: str) -> int | Refused:
        """The ledger's device for ``device_ref``; a new id is looked up at the ERM first.

        A device has three ids, and a new id must not get a pacing clock and a credit of its own when
        it is a device the ledger knows by another id. The ERM's item record names all three ids; an ERM
        that will not give it still shows the device's code history, which is one per device whatever
        id asks: an id whose history holds a code of a known device is that device. An id whose history
        holds none becomes a row marked unverified, and its history is compared again before each of its
        codes (:meth:`_same_as_another`).
        """
        async with self.db.read() as session:
            device = await ledger.find_device(session=session, ref=device_ref)
        if device is not None:
            assert device.id is not None
            return device.id
        try:
            ids, verified, seen = await self._erm_ids(device_ref)
        except ErmAuthError as exc:
            log.error("the ERM refused our credentials while looking up device %s: %s", device_ref, exc.message)
            return Refused(Reason.ERM_UNAVAILABLE, device_ref, words=exc.message)
        except ErmRefused as exc:
            log.info("device %s unknown to the ERM: %s", device_ref, exc.message)
            return Refused(Reason.UNKNOWN_DEVICE, device_ref, words=exc.message)
        except ErmError as exc:
            # Not guessed: an unverified id could be a second name of a known device, and two
            # ledger rows for one device would break its pacing and stacking.
            log.warning("could not look up device %s (%s)", device_ref, exc.message)
            return Refused(Reason.ERM_UNAVAILABLE, device_ref, words=exc.message)
        async with self.db.write() as session:
            now = self.clock.now()
            holders = await ledger.devices_holding_codes(session=session, hexes=seen)
            if holders:  # its history holds codes of these rows: they and this id are one device
                known = await ledger.device_aliases(session=session, device_id=holders[0])
                for other in holders[1:]:
                    known += await ledger.device_aliases(session=session, device_id=other)
                ids = [*known, device_ref]
                log.warning("device %s is %s by its code history", device_ref, ", ".join(known))
            device = await ledger.add_device(session=session, ids=ids, now=now, label=device_ref, verified=verified)
        assert device.id is not None
        return device.id

    async def customer_view(self, customer_id: int) -> list[tuple[Device, int, CodeRequest | None]]:
        """A customer's devices with their days left and their last code, for /balance and /code."""
        now = self.clock.now()
        async with self.db.read() as session:
            devices = await ledger.customer_devices(session=session, customer_id=customer_id)
            view = []
            for device in devices:
                assert device.id is not None
                last = await ledger.last_codes(session=session, device_id=device.id, limit=1)
                view.append((device, limits.days_left(device.credit_until, now), last[0] if last else None))
            return view

    async def device(self, device_id: int) -> Device | None:
        async with self.db.read() as session:
            return await ledger.get_device(session=session, device_id=device_id)

    async def status(self, device_id: int, last: int = 3) -> DeviceStatus:
        """The device's figures as the limits see them now."""
        now = self.clock.now()
        async with self.db.read() as session:
            device = await ledger.get_device(session=session, device_id=device_id)
            assert device is not None
            load = await self._load(session, device_id, now)
            slot = await self._daily_slot(session, device_id, now, load)
            customer = None
            if device.customer_id is not None:
                customer = await ledger.get_customer(session=session, customer_id=device.customer_id)
            return DeviceStatus(
                device=device,
                aliases=await ledger.device_aliases(session=session, device_id=device_id),
                customer=customer,
                days_left=limits.days_left(device.credit_until, now),
                codes_today=load.generated_today,
                daily_limit=self.limits.daily_limit,
                next_code_at=max(slot, limits.pacing_ready_at(device.last_generation_at, self.limits.min_gap, now)),
                queued=load.open_count,
                last_codes=list(await ledger.last_codes(session=session, device_id=device_id, limit=last)),
            )

    async def _erm_ids(self, device_ref: str) -> tuple[list[str], bool, list[str]]:
        """Every id of the device as the ERM's item record has them (verified); or, when the ERM will not
        give the record but knows the device (its code history answers), just ``device_ref`` and the
        codes of its history (hex), to compare with the ledger's."""
        try:
            item = await self.erm.assigned_item(device_ref)
        except ErmRefused as exc:
            if isinstance(exc, ErmAuthError):
                raise
            return [device_ref], False, await self._history_codes(device_ref)
        return [*item.ids, device_ref], True, []

    async def _history_codes(self, device_ref: str) -> list[str]:
        """The codes (hex) of the newest page of the device's history: a few days of codes at most."""
        page = await self.erm.code_history(device_ref, 0, HISTORY_PROBE)
        return [event.code_hex_string.upper() for event in page.events]

    async def _same_as_another(self, request: CodeRequest) -> bool:
        """Before a code of a device known only by typed ids: does its code history hold a code of
        another ledger row? Then both are one device: merged (the older row kept, every request moved),
        and this request goes back to the queue to be paced as that device's. True if merged."""
        try:
            seen = await self._history_codes(request.device_ref)
        except ErmError as exc:  # the generation will meet the same fault and be retried as usual
            log.warning("request %s: the code history of %s could not be compared (%s)", request.id,
                        request.device_ref, exc.message)
            return False
        now = self.clock.now()
        async with self.db.write() as session:
            holders = [d for d in await ledger.devices_holding_codes(session=session, hexes=seen)
                       if d != request.device_id]
            if not holders:
                return False
            rows = sorted({*holders, request.device_id})
            keep = rows[0]
            for gone in rows[1:]:
                await ledger.merge_devices(session=session, keep_id=keep, gone_id=gone, now=now)
            await ledger.requeue(session=session, request_id=request.id or 0, now=now)
            await self._refuse_what_no_longer_fits(session, keep, now)
        log.warning("device %s: its code history shows it is ledger device %s; merged, request %s queued again",
                    request.device_ref, keep, request.id)
        self.kick()
        return True

    async def _refuse_what_no_longer_fits(self, session: ledger.AsyncSession, device_id: int, now: datetime) -> None:
        """After a merge, the open requests of both rows weigh on one credit: unpaid days that no longer fit
        under the stacking limit are refused (their people are told, with how many days fit); paid days
        that do not fit are kept as prepaid days, as for any payment."""
        device = await ledger.lock_device(session=session, device_id=device_id)
        room = limits.headroom(device.credit_until, 0, now, self.limits.max_stacked_days)
        for request in await ledger.open_requests(session=session, device_id=device_id):
            if request.kind is not CodeKind.DAYS or request.days is None or request.status is not Status.QUEUED:
                room -= request.days or 0
                continue
            if request.days <= room:
                room -= request.days
                continue
            if request.source in (Source.PAYMENT, Source.PREPAID):
                device.prepaid_days += request.days - max(room, 0)
                if room > 0:
                    request.days, room = room, 0
                else:
                    request.status, request.reason, request.delivered_at = Status.REFUSED, WAIT_KEPT_PREPAID, now
            else:
                request.status, request.reason = Status.REFUSED, f"{Reason.STACKING}: {max(room, 0)} days fit"
            request.not_before = now
            session.add(request)
        session.add(device)

    async def sync_devices(self, page_size: int = 100) -> int:
        """Learn every assigned device and its ids from the ERM (``assignedItemsList``), page by page;
        returns how many devices were new or gained ids."""
        learned, offset = 0, 0
        while True:
            items = await self.erm.assigned_items(offset, page_size)
            async with self.db.read() as session:
                known = await ledger.known_aliases(session=session, aliases=[i for item in items for i in item.ids])
            new = [item for item in items if item.ids and not set(item.ids) <= known]
            if new:  # the writer is held only for what the ledger does not know yet
                async with self.db.write() as session:
                    for item in new:
                        await ledger.add_device(session=session, ids=item.ids, now=self.clock.now(),
                                            label=item.oem_item_id or item.ids[0], verified=True)
            learned += len(new)
            if len(items) < page_size:
                return learned
            offset += len(items)

    async def _check(
        self, session: ledger.AsyncSession, device: Device, ref: str, kind: CodeKind, days: int | None, now: datetime
    ) -> Refused | None:
        assert device.id is not None
        if kind is CodeKind.DAYS and device.unlocked:
            return Refused(Reason.UNLOCKED, ref)
        load = await self._load(session, device.id, now)
        slot = await self._daily_slot(session, device.id, now, load)
        if slot > now:
            return Refused(Reason.DAILY_LIMIT, ref, possible_at=slot)
        if kind is CodeKind.DAYS:
            assert days is not None
            fits = limits.headroom(device.credit_until, load.pending_days, now, self.limits.max_stacked_days)
            if days > fits:
                return Refused(Reason.STACKING, ref, fits=fits)
        return None

    async def _load(self, session: ledger.AsyncSession, device_id: int, now: datetime) -> ledger.DeviceLoad:
        day_start, day_end = limits.local_day(now, self.limits.tz)
        return await ledger.device_load(session=session, device_id=device_id, day_start=day_start, day_end=day_end)

    async def _fit_paid(
        self, session: ledger.AsyncSession, device: Device, days: int, now: datetime
    ) -> tuple[int, datetime]:
        """How many of ``days`` fit now, and the earliest time they may go out (daily limit)."""
        assert device.id is not None
        load = await self._load(session, device.id, now)
        fits = limits.headroom(device.credit_until, load.pending_days, now, self.limits.max_stacked_days)
        return min(days, fits), await self._daily_slot(session, device.id, now, load)

    async def _daily_slot(
        self, session: ledger.AsyncSession, device_id: int, now: datetime, load: ledger.DeviceLoad
    ) -> datetime:
        """``now`` if the device has a code left today, else the start of the first local day that has."""
        if load.generated_today + load.open_today < self.limits.daily_limit:
            return now
        _, day_end = limits.local_day(now, self.limits.tz)
        while True:
            day_start, day_end = limits.local_day(day_end, self.limits.tz)
            planned = await ledger.open_between(session=session, device_id=device_id, start=day_start, end=day_end)
            if planned < self.limits.daily_limit:
                return day_start

    async def _eta(self, session: ledger.AsyncSession, device: Device, now: datetime) -> timedelta:
        """About how long until the newest request of the device is generated."""
        assert device.id is not None
        ahead = (await self._load(session, device.id, now)).open_count - 1
        ready = limits.pacing_ready_at(device.last_generation_at, self.limits.min_gap, now)
        return (ready - now) + ahead * self.limits.min_gap

    # -- the pump ---------------------------------------------------------------------------

    def kick(self) -> None:
        """Pump now rather than at the next tick (a new request should not wait for the timer)."""
        if not self._closed and not self._kick_pending:
            self._kick_pending = True
            self._spawn(self.pump())

    async def pump(self) -> None:
        """Start every piece of work that is due: settlements, generations, deliveries, prepaid days."""
        if self._closed:
            return
        async with self._pump_lock:
            self._kick_pending = False
            now = self.clock.now()
            busy = sorted(self._busy)
            async with self.db.read() as session:
                unsettled = await ledger.unsettled(session=session, now=now, exclude=busy)
            for request in unsettled:
                if request.device_id not in self._busy:
                    self._busy.add(request.device_id)
                    self._spawn(self._settle(request), device_id=request.device_id)
            await self._release_prepaid(now)
            room = self.max_concurrency - len(self._busy)
            claimed: list[CodeRequest] = []
            due: Sequence[CodeRequest] = []
            if room > 0:
                async with self.db.read() as session:
                    due = await ledger.due_requests(
                        session=session, now=now, gap_edge=now - self.limits.min_gap, exclude=sorted(self._busy),
                        limit=room,
                    )
            if due:
                due = await self._one_unverified_at_a_time(due)
            if due:
                # One transaction claims the whole batch, and only as many as can be sent at once,
                # so that sent_at is the moment the request really leaves.
                day_start, day_end = limits.local_day(now, self.limits.tz)
                async with self.db.write() as session:
                    for request in due:
                        assert request.id is not None
                        # The daily limit again, now: what a queue, a retry or yesterday carries past
                        # midnight must not come on top of the day's own codes.
                        load = await ledger.device_load(session=session, device_id=request.device_id,
                                                        day_start=day_start, day_end=day_end)
                        if load.generated_today >= self.limits.daily_limit:
                            await ledger.defer(session=session, request_id=request.id, not_before=day_end)
                            continue
                        if await ledger.claim(session=session, request_id=request.id, now=now,
                                              settle_after=now + self.settle_delay):
                            claimed.append(request)
            for request in claimed:
                assert request.id is not None
                self._busy.add(request.device_id)
                self._spawn(self._dispatch(request.id), device_id=request.device_id)
            if self.notify is not None:
                async with self.db.read() as session:
                    finished = await ledger.undelivered(session=session, now=now)
                for request in finished:
                    if request.id not in self._delivering:
                        assert request.id is not None
                        self._delivering.add(request.id)
                        self._spawn(self._deliver(request.id))

    async def _one_unverified_at_a_time(self, due: Sequence[CodeRequest]) -> list[CodeRequest]:
        """Devices known only by typed ids and holding no code yet may be one device under two ids, and
        their code histories cannot tell until one of them has a code: they get codes one at a time,
        none while another's answer is awaited, so each compares its history after the last one's code."""
        async with self.db.read() as session:
            blank = await ledger.unverified_without_codes(session=session, device_ids=[r.device_id for r in due])
            if not blank:
                return list(due)
            room = not await ledger.unverified_without_codes_sending(session=session)
        kept = []
        for request in due:
            if request.device_id in blank:
                if not room:
                    continue
                room = False
            kept.append(request)
        return kept

    async def wait_told(self, request_id: int, timeout: float) -> bool:
        """Wait until the people of a request have been told its outcome, or at least until the
        outcome is known (the message is then on its way, held only by Telegram's flood limits).
        False when the ERM has not answered within ``timeout``."""
        event = self._told.setdefault(request_id, asyncio.Event())
        try:
            async with self.db.read() as session:
                request = await ledger.get_request(session=session, request_id=request_id)
            if request is not None and request.delivered_at is not None:
                return True
            await asyncio.wait_for(event.wait(), timeout)
            return True
        except TimeoutError:
            async with self.db.read() as session:
                request = await ledger.get_request(session=session, request_id=request_id)
            return request is not None and request.status not in (Status.QUEUED, Status.SENDING)
        finally:
            self._told.pop(request_id, None)

    async def drain(self) -> None:
        """Wait until every task started so far, and the ones they started, has finished."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        """Stop taking work and let what is in hand finish (the ledger keeps the rest)."""
        self._closed = True
        await self.drain()

    def _spawn(self, work: Awaitable[None], device_id: int | None = None) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(work)
        self._tasks.add(task)

        def done(finished: asyncio.Task[None]) -> None:
            self._tasks.discard(finished)
            if device_id is not None:
                self._busy.discard(device_id)
            if not finished.cancelled() and finished.exception() is not None:
                log.error("issuing task failed", exc_info=finished.exception())

        task.add_done_callback(done)

    # -- one generation -----------------------------------------------------------------------

    async def _dispatch(self, request_id: int) -> None:
        async with self.db.read() as session:
            request = await ledger.get_request(session=session, request_id=request_id)
            assert request is not None and request.status is Status.SENDING
            device = await ledger.get_device(session=session, device_id=request.device_id)
        if device is not None and not device.verified and await self._same_as_another(request):
            return
        try:
            async with self._slots:
                code = await self._generate(request)
        except ErmOutcomeUnknown as exc:
            log.warning("request %s: outcome unknown (%s); will settle from the code history", request_id, exc.message)
            await self._outcome_unknown(request_id)
        except ErmAuthError as exc:
            log.error("request %s: the ERM refused our credentials: %s", request_id, exc.message)
            await self._retry_later(request_id, WAIT_ERM_LOGIN)
        except ErmRateLimited as exc:
            log.warning("request %s: the ERM says not yet: %s", request_id, exc.message)
            await self._retry_later(request_id, WAIT_ERM_NOT_YET, at_least=self.limits.min_gap)
        except ErmRefused as exc:
            log.info("request %s refused by the ERM: %s", request_id, exc.message)
            await self._finish(request_id, Status.REFUSED, exc.message)
        except ErmUnavailable as exc:
            log.warning("request %s: ERM unavailable (%s); will retry", request_id, exc.message)
            await self._retry_later(request_id, WAIT_ERM_UNAVAILABLE)
        else:
            await self._issued(request_id, code.code, code.hex, code.otp_count, None)

    async def _generate(self, request: CodeRequest) -> GeneratedCode:
        if request.kind is CodeKind.DAYS:
            assert request.days is not None
            return await self.erm.days_code(request.device_ref, request.days)
        if request.kind is CodeKind.FREE:
            return await self.erm.free_code(request.device_ref)
        return await self.erm.reset_code(request.device_ref)

    async def _issued(
        self, request_id: int, code: str, hex_code: str, count: int | None, number: int | None
    ) -> None:
        """Record the code and what it does to the device's credit, then hand it on."""
        now = self.clock.now()
        async with self.db.write() as session:
            request = await ledger.get_request(session=session, request_id=request_id)
            assert request is not None
            if request.status is not Status.SENDING:
                log.error("request %s was %s when its code arrived; code %s kept in the log only",
                          request_id, request.status, hex_code)
                return
            device = await ledger.lock_device(session=session, device_id=request.device_id)
            device.last_generation_at = now
            if request.kind is CodeKind.FREE:
                device.unlocked = True
            else:
                device.unlocked = False
                device.credit_until = limits.credit_after(request.kind, request.days, device.credit_until, now)
            request.status, request.code, request.code_hex = Status.ISSUED, code, hex_code
            request.erm_count, request.erm_code_number = count, number
            request.issued_at, request.not_before, request.credit_until = now, now, device.credit_until
            request.reason = None
            session.add_all([device, request])
        log.info("request %s issued: device %s", request_id, request.device_ref)
        self.kick()

    async def _finish(self, request_id: int, status: Status, reason: str) -> None:
        now = self.clock.now()
        async with self.db.write() as session:
            request = await ledger.get_request(session=session, request_id=request_id)
            assert request is not None
            request.status, request.reason, request.not_before = status, reason[:500], now
            session.add(request)
        self.kick()

    async def _retry_later(self, request_id: int, reason: str, at_least: timedelta = timedelta(0)) -> None:
        """Nothing was committed: back to the queue after a backoff (unpaid requests give up after a day)."""
        now = self.clock.now()
        async with self.db.write() as session:
            request = await ledger.get_request(session=session, request_id=request_id)
            assert request is not None
            if request.source is Source.CHAT and now - request.created_at > GIVE_UP_AFTER:
                request.status = Status.FAILED
                request.not_before = now
            else:
                request.status = Status.QUEUED
                request.not_before = now + max(at_least, backoff(request.attempts))
            request.reason = reason[:500]
            session.add(request)

    async def _outcome_unknown(self, request_id: int) -> None:
        """Stay SENDING; settle from the history once the ERM has surely finished with it."""
        now = self.clock.now()
        async with self.db.write() as session:
            request = await ledger.get_request(session=session, request_id=request_id)
            assert request is not None
            device = await ledger.lock_device(session=session, device_id=request.device_id)
            device.last_generation_at = now  # a code may have been committed just now
            request.not_before = now + SETTLE_GRACE
            request.reason = WAIT_SETTLING
            session.add_all([device, request])

    # -- settling unknown outcomes ------------------------------------------------------------

    async def _settle(self, request: CodeRequest) -> None:
        """A SENDING request whose answer never came: a committed code is the answer, else send again."""
        assert request.id is not None
        try:
            async with self._slots:
                page = await self.erm.code_history(request.device_ref, 0, 20)
        except ErmError as exc:
            log.warning("request %s: cannot read the code history yet (%s)", request.id, exc.message)
            now = self.clock.now()
            async with self.db.write() as session:
                fresh = await ledger.get_request(session=session, request_id=request.id)
                if fresh is None or fresh.status is not Status.SENDING:
                    return
                waited = now - (fresh.sent_at or fresh.created_at)
                # ask less often the longer it lasts: a tenth of the wait, at most every 5 minutes
                fresh.not_before = now + max(backoff(fresh.attempts), min(SETTLE_POLL_CAP, waited / 10))
                session.add(fresh)
            if fresh.reason != WAIT_UNSETTLED and waited > GIVE_UP_AFTER:
                await self._tell_unsettled(fresh)
            return
        async with self.db.read() as session:
            known = await ledger.known_codes(session=session, device_id=request.device_id)
        event = self._committed(request, page.events, known)
        if event is not None:
            log.info("request %s settled: code %s was committed", request.id, event.code_number)
            await self._issued(request.id, event.code_dec_string, event.code_hex_string.upper(), None,
                               event.code_number)
            return
        now = self.clock.now()
        if request.source is Source.CHAT and now - request.created_at > GIVE_UP_AFTER:
            # as _retry_later: an unpaid request does not go out more than a day after it was asked
            log.info("request %s settled: nothing was committed, and it was asked over a day ago", request.id)
            await self._finish(request.id, Status.FAILED, WAIT_TOO_LATE)
            return
        log.info("request %s settled: nothing was committed; it goes out again", request.id)
        async with self.db.write() as session:
            fresh = await ledger.get_request(session=session, request_id=request.id)
            if fresh is not None and fresh.status is Status.SENDING:
                fresh.status, fresh.not_before = Status.QUEUED, now
                fresh.reason = WAIT_RESENDING
                session.add(fresh)
        self.kick()

    def _committed(self, request: CodeRequest, events: list[CodeEvent], known: set[str]) -> CodeEvent | None:
        """The oldest code in the history that this request could have made and no other request holds."""
        assert request.sent_at is not None
        days = request.days if request.kind is CodeKind.DAYS else _HISTORY_DAYS[request.kind]
        for event in reversed(events):
            if (
                event.code_type == _ERM_TYPE[request.kind]
                and event.code_days == days
                and event.code_hex_string.upper() not in known
                and event.created_at >= request.sent_at - CLOCK_SKEW
            ):
                return event
        return None

    # -- delivery and prepaid days ---------------------------------------------------------------

    async def _tell_unsettled(self, request: CodeRequest) -> None:
        """A day without knowing whether a request's code was made: its people are warned, once (marked
        first: a warning is not worth repeating). The engine goes on asking the ERM and never sends
        again what may have been committed, so the request stays SENDING; how it ends (the code, or
        nothing made) reaches them as usual."""
        async with self.db.write() as session:
            fresh = await ledger.get_request(session=session, request_id=request.id or 0)
            if fresh is None or fresh.status is not Status.SENDING:
                return
            fresh.reason = WAIT_UNSETTLED
            session.add(fresh)
        if self.notify is None:
            return
        try:
            await self.notify(fresh)  # SENDING: the notifier says it is not known yet
        except Exception as exc:
            log.warning("request %s: could not warn that it is unsettled (%s)", request.id, type(exc).__name__)

    async def _deliver(self, request_id: int) -> None:
        assert self.notify is not None
        try:
            async with self.db.read() as session:
                request = await ledger.get_request(session=session, request_id=request_id)
            if request is None or request.delivered_at is not None:
                return
            try:
                await self.notify(request)
            except Exception as exc:  # the notifier talks to the outside world; any failure is retried
                log.warning("request %s: delivery failed (%s); will retry", request_id, type(exc).__name__)
                async with self.db.write() as session:
                    fresh = await ledger.get_request(session=session, request_id=request_id)
                    assert fresh is not None
                    fresh.delivery_attempts += 1
                    fresh.not_before = self.clock.now() + backoff(fresh.delivery_attempts, base=2, cap=600)
                    session.add(fresh)
                return
            async with self.db.write() as session:
                fresh = await ledger.get_request(session=session, request_id=request_id)
                assert fresh is not None
                fresh.delivered_at = self.clock.now()
                if fresh.status is Status.ISSUED:
                    fresh.status = Status.DELIVERED
                session.add(fresh)
            if request_id in self._told:
                self._told[request_id].set()
        finally:
            self._delivering.discard(request_id)

    async def _release_prepaid(self, now: datetime) -> None:
        """Queue prepaid days of devices that have room again (in batches, not a code a day)."""
        if self._prepaid_checked is not None and now - self._prepaid_checked < PREPAID_CHECK_EVERY:
            return
        self._prepaid_checked = now
        async with self.db.read() as session:
            waiting = await ledger.devices_with_prepaid(session=session)
        for device_id in waiting:
            async with self.db.write() as session:
                device = await ledger.lock_device(session=session, device_id=device_id)
                if device.prepaid_days <= 0 or device.unlocked:
                    continue
                load = await self._load(session, device_id, now)
                if load.pending_days:
                    continue
                fits = limits.headroom(device.credit_until, 0, now, self.limits.max_stacked_days)
                days = min(device.prepaid_days, fits)
                if days < min(device.prepaid_days, PREPAID_BATCH_DAYS):
                    continue
                not_before = await self._daily_slot(session, device_id, now, load)
                await ledger.add_request(
                    session=session,
                    request=CodeRequest(
                        device_id=device_id, device_ref=device.label, kind=CodeKind.DAYS, days=days,
                        source=Source.PREPAID, not_before=not_before, created_at=now,
                    ),
                )
                device.prepaid_days -= days
                session.add(device)
            log.info("device %s: %s prepaid days queued", device.label, days)


def _hold_reason(payment: Payment, device: Device) -> HoldReason | None:
    """Why the payment cannot become days for this device without a manager, if it cannot."""
    if device.unlocked:
        return HoldReason.UNLOCKED
    if device.daily_price is None or device.daily_price <= 0:
        return HoldReason.NO_PRICE
    if payment.currency and payment.currency.upper() != (device.currency or "").upper():
        return HoldReason.CURRENCY  # a price without a currency takes no currency at face value
    return None


def _refused_row(
    device: Device, ref: str, kind: CodeKind, days: int | None, refusal: Refused,
    requested_by: int | None, source: Source, now: datetime,
) -> CodeRequest:
    """A refusal kept for the summary and the export; already told, so never delivered again."""
    assert device.id is not None
    detail = {Reason.STACKING: f": {refusal.fits} days fit", Reason.DAILY_LIMIT: f": next at {refusal.possible_at}"}
    return CodeRequest(
        device_id=device.id, device_ref=ref, kind=kind, days=days, source=source, requested_by_id=requested_by,
        status=Status.REFUSED, reason=f"{refusal.reason}{detail.get(refusal.reason, '')}",
        not_before=now, created_at=now, delivered_at=now,
    )
