"""Devices: the directory (one ledger row per device whatever id names it: resolve, sync from the ERM, the
identity checks of devices known only by typed ids, a device's figures) and the daily prices managers set.

A device has three ids, and a new id must not get a pacing clock and a credit of its own when it is a
device the ledger knows by another id. The ERM's item record names all three ids; an ERM that will not
give it still shows the device's code history, which is one per device whatever id asks: an id whose
history holds a code of a known device is that device. An id whose history holds none becomes a row
marked unverified, and its history is compared again before each of its codes
(:meth:`DeviceDirectory.same_as_another`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation

from bot.clock import Clock
from bot.erm.backend import ErmBackend
from bot.erm.errors import ErmAuthError, ErmError, ErmRefused
from bot.erm.models import Item
from bot.issuing import limits
from bot.issuing.outcomes import WAIT_KEPT_PREPAID, DeviceStatus, Reason, Refused
from bot.issuing.quota import Quota
from storage import ledger
from storage.db import Database
from storage.models import CodeKind, CodeRequest, Device, Source, Status

log = logging.getLogger("paygbot.issuing")

HISTORY_PROBE = 50
"""History events read to tell whether a typed id is a device the ledger knows (five days of codes at most)."""
SYNC_WAIT = 15.0
"""Seconds a new id waits for a device sync under way (it may bring the id with all its ids) before being
looked up by itself."""
SYNC_START_WAIT = 2.0
"""Seconds a new id waits for the start-up sync to begin (its job starts at once) before being looked up by
itself."""
ABSENT_FOR = timedelta(hours=1)
"""How long the ERM's item lookup (``assignedItems/{id}``) is not asked again once it showed it is not offered:
a 404 for a device whose code history the ERM does show."""


class DeviceDirectory:
    """Every device once, by any of its ids; its figures as the limits see them."""

    def __init__(self, *, db: Database, erm: ErmBackend, clock: Clock, quota: Quota, kick: Callable[[], None]) -> None:
        self.db, self.erm, self.clock, self.quota, self.kick = db, erm, clock, quota, kick
        self.limits = quota.limits
        self._syncing: asyncio.Event | None = None
        """Set while a device sync runs or is about to; it is set when the sync ends."""
        self._sync_running = False
        self._synced: set[str] = set()
        """The ids the sync under way has written so far (a page at a time)."""
        self._sync_page = asyncio.Event()
        """Set when the sync under way has written a page (then replaced), or has ended."""
        self._item_lookup_absent_until: datetime | None = None

    async def resolve(self, device_ref: str) -> int | Refused:
        """The ledger's device for ``device_ref``; a new id is looked up at the ERM first (see the module)."""
        async with self.db.read() as session:
            device = await ledger.find_device(session=session, ref=device_ref)
        if device is None and self._syncing is not None:  # a sync under way may bring it, with its other ids
            await self._synced_page_with(device_ref)
            async with self.db.read() as session:
                device = await ledger.find_device(session=session, ref=device_ref)
        if device is not None:
            assert device.id is not None
            return device.id
        try:
            ids, item, seen = await self._erm_ids(device_ref)
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
            await ledger.hold_device_directory(session=session)  # the holders read next must stay true
            now = self.clock.now()
            holders = await ledger.devices_holding_codes(session=session, hexes=seen)
            if holders:  # its history holds codes of these rows: they and this id are one device
                known = await ledger.device_aliases(session=session, device_id=holders[0])
                for other in holders[1:]:
                    known += await ledger.device_aliases(session=session, device_id=other)
                ids = [*known, device_ref]
                log.warning("device %s is %s by its code history", device_ref, ", ".join(known))
            device, merged = await ledger.add_device(
                session=session, ids=ids, now=now, label=device_ref, verified=item is not None,
                description=item.description if item else None, life_cycle=item.life_cycle if item else None)
            assert device.id is not None
            if merged:
                await self._refuse_what_no_longer_fits(session, device.id, now)
        if merged:
            self.kick()
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

    async def get(self, device_id: int) -> Device | None:
        async with self.db.read() as session:
            return await ledger.get_device(session=session, device_id=device_id)

    async def status(self, device_id: int, last: int = 3) -> DeviceStatus:
        """The device's figures as the limits see them now."""
        now = self.clock.now()
        async with self.db.read() as session:
            device = await ledger.get_device(session=session, device_id=device_id)
            assert device is not None
            load = await self.quota.load(session, device_id, now)
            slot = await self.quota.daily_slot(session, device_id, now, load)
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

    async def sync(self, page_size: int = 100) -> int:
        """Learn every device of the distributor from the ERM, page by page: its ids, description and life
        cycle; returns how many devices were new or gained ids."""
        if self._sync_running:  # one at a time: the later asker waits for the one under way
            assert self._syncing is not None
            await self._syncing.wait()
            return 0
        self._sync_running = True
        self.expect_sync()
        assert self._syncing is not None
        self._page_written([])  # those waiting for it to begin now wait for their page
        try:
            return await self._sync(page_size)
        finally:
            self._sync_running = False
            self._syncing.set()
            self._syncing, self._synced = None, set()
            self._page_written([])

    def expect_sync(self) -> None:
        """A sync is about to start: a new id asked for before it does waits for it as for one under way (were
        it looked up by itself, a morning's first hundred devices would each cost the ERM two lookups and be
        kept unverified). Should it not begin within ``SYNC_START_WAIT``, the expectation lapses."""
        if self._syncing is None:
            self._syncing, self._synced = asyncio.Event(), set()

    async def _synced_page_with(self, device_ref: str) -> None:
        """Wait until the sync under way has written the page with ``device_ref``, or has ended (at most
        ``SYNC_WAIT``): the first devices of a morning need not wait for the last page."""
        loop = asyncio.get_running_loop()
        began = loop.time()
        while self._syncing is not None and device_ref not in self._synced:
            left = began + (SYNC_WAIT if self._sync_running else SYNC_START_WAIT) - loop.time()
            if left <= 0:
                if not self._sync_running:  # the sync expected never began: no one waits for it again
                    log.warning("the device sync expected at the start has not begun; new ids are looked up")
                    self._syncing, self._synced = None, set()
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._sync_page.wait(), left)

    def _page_written(self, ids: list[str]) -> None:
        self._synced.update(ids)
        page, self._sync_page = self._sync_page, asyncio.Event()
        page.set()

    async def finish_sync(self) -> None:
        """Let a sync under way finish (at most ``SYNC_WAIT``), while the ledger and the ERM are still open."""
        if self._sync_running and self._syncing is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._syncing.wait(), SYNC_WAIT)

    async def _sync(self, page_size: int) -> int:
        learned = 0
        async with contextlib.aclosing(read_ahead(self.erm.items(page_size))) as pages:
            async for items in pages:
                learned += await self._learn_page(items)
        return learned

    async def _learn_page(self, items: list[Item]) -> int:
        """Write a page of the ERM's items into the directory; returns how many were new or gained ids."""
        items = [item for item in items if item.ids]
        aliases = [i for item in items for i in item.ids]
        async with self.db.read() as session:  # the ids the ledger knows, with what it holds of each
            details = await ledger.item_details(session=session, aliases=aliases)
        new = [item for item in items if not set(item.ids) <= details.keys()]
        changed = [item for item in items if item not in new
                   and details.get(item.ids[0]) != (item.description, item.life_cycle)]
        if new or changed:  # the writer is held only for what the ledger does not know yet
            unknown = [item for item in new if not set(item.ids) & details.keys()]
            if len({i for item in unknown for i in item.ids}) != sum(len(set(item.ids)) for item in unknown):
                unknown = []  # an id on two items: one at a time, merged as add_device merges
            async with self.db.write() as session:
                if unknown:  # read again, the directory held: a device asked for meanwhile may be known now
                    await ledger.hold_device_directory(session=session)
                    known = await ledger.item_details(session=session, aliases=[i for it in unknown for i in it.ids])
                    unknown = [item for item in unknown if not set(item.ids) & known.keys()]
                    await ledger.add_new_devices(session=session, now=self.clock.now(), items=[
                        ledger.NewDevice(item.ids, item.oem_item_id or item.ids[0], item.description,
                                         item.life_cycle) for item in unknown])
                for item in (item for item in new if item not in unknown):
                    device, merged = await ledger.add_device(
                        session=session, ids=item.ids, now=self.clock.now(), label=item.oem_item_id or item.ids[0],
                        verified=True, description=item.description, life_cycle=item.life_cycle)
                    if merged and device.id is not None:  # rows kept apart until now are one device
                        await self._refuse_what_no_longer_fits(session, device.id, self.clock.now())
                        self.kick()
                for item in changed:
                    await ledger.set_item_details(session=session, ref=item.ids[0], description=item.description,
                                                  life_cycle=item.life_cycle)
        self._page_written(aliases)
        return len(new)

    # -- the identity checks ---------------------------------------------------------------------

    async def _erm_ids(self, device_ref: str) -> tuple[list[str], Item | None, list[str]]:
        """Every id of the device as the ERM's item record has them, and the record; or, when the ERM will
        not give the record but knows the device (its code history answers), just ``device_ref``, no
        record, and the codes of its history (hex), to compare with the ledger's."""
        now = self.clock.now()
        if self._item_lookup_absent_until is not None and now < self._item_lookup_absent_until:
            return [device_ref], None, await self._history_codes(device_ref)
        try:
            item = await self.erm.item(device_ref)
        except ErmRefused as exc:
            if isinstance(exc, ErmAuthError):
                raise
            seen = await self._history_codes(device_ref)
            if exc.status == 404:  # the ERM knows the device (its history answered) but not the lookup
                log.info("the ERM does not offer item lookups (404 for %s, whose history it shows); not asked "
                         "again for %s", device_ref, ABSENT_FOR)
                self._item_lookup_absent_until = now + ABSENT_FOR
            return [device_ref], None, seen
        return [*item.ids, device_ref], item, []

    async def _history_codes(self, device_ref: str) -> list[str]:
        """The codes (hex) of the newest page of the device's history: a few days of codes at most."""
        page = await self.erm.code_history(device_ref, 0, HISTORY_PROBE)
        return [event.code_hex_string.upper() for event in page.events]

    async def same_as_another(self, request: CodeRequest) -> bool | None:
        """Before a code of a device known only by typed ids: does its code history hold a code of
        another ledger row? Then both are one device: merged (the older row kept, every request moved),
        and this request goes back to the queue to be paced as that device's. True if merged, False if
        it is no other row, None if the history could not be read (unsure: no code now)."""
        try:
            seen = await self._history_codes(request.device_ref)
        except ErmError as exc:
            log.warning("request %s: the code history of %s could not be compared (%s); it waits", request.id,
                        request.device_ref, exc.message)
            return None
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
                kept = request.days - max(room, 0)
                device.prepaid_days += kept
                if room > 0:
                    request.days, room = room, 0
                else:
                    request.status, request.reason, request.delivered_at = Status.REFUSED, WAIT_KEPT_PREPAID, now
                if request.payment_id is not None:  # the payment says so, and its people are told
                    await ledger.keep_paid_days(session=session, payment_id=request.payment_id, days=kept)
            else:
                request.status, request.reason = Status.REFUSED, Reason.STACKING.value
                request.refused_fits = max(room, 0)
            request.not_before = now
            session.add(request)
        session.add(device)


async def read_ahead(pages: AsyncIterator[list[Item]]) -> AsyncIterator[list[Item]]:
    """The pages of ``pages``, each next one asked for while the caller writes this one (a page of the ERM is a
    round trip; a morning's 500 new devices are six)."""
    coming: asyncio.Future[list[Item]] = asyncio.ensure_future(anext(pages))
    try:
        while True:
            try:
                page = await coming
            except StopAsyncIteration:
                return
            coming = asyncio.ensure_future(anext(pages))
            yield page
    finally:
        coming.cancel()  # a page asked for that no one will write
        await asyncio.wait([coming])
        if not coming.cancelled():
            coming.exception()  # (retrieved, so that it is not reported as lost)
        if isinstance(pages, AsyncGenerator):
            await pages.aclose()


# -- prices ------------------------------------------------------------------------------------------

MAX_PRICE = Decimal("1000000")
_AMOUNT = re.compile(r"[0-9]{1,9}(?:[.,][0-9]{1,2})?")
"""ASCII digits only: ``\\d`` takes other scripts' digits (``٥٠``, ``５０``), which Decimal reads as money."""
_CURRENCY = re.compile(r"^[A-Za-z]{3}$")


def parse_amount(text: str) -> Decimal | None:
    """A positive amount of money as people type it (``250``, ``250.50``, ``250,5``); None if not one."""
    text = text.strip()
    if not _AMOUNT.fullmatch(text):
        return None
    try:
        amount = Decimal(text.replace(",", "."))
    except InvalidOperation:
        return None
    return amount if Decimal(0) < amount <= MAX_PRICE else None


def parse_currency(text: str) -> str | None:
    return text.upper() if _CURRENCY.match(text.strip()) else None


async def set_price(db: Database, device_id: int, price: Decimal, currency: str | None, *,
                    default_currency: str | None = None) -> None:
    """Set the device's daily price and its currency: the one given, else the device's own, else
    ``default_currency`` (PAYGBOT_CURRENCY). A price always has a currency, so that money in another
    currency is never taken at face value."""
    async with db.write() as session:
        device = await ledger.lock_device(session=session, device_id=device_id)
        device.daily_price = price
        device.currency = currency or device.currency or default_currency
        session.add(device)
