"""Meters and energy use: tie a customer's utility service account (checked with Omnimetic first), and
fetch what ``/usage`` shows — kept :data:`CACHE_FOR` so that ten taps are not ten calls."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy.exc import IntegrityError

from bot.clock import Clock
from bot.energy import figures
from bot.energy.figures import Usage
from bot.omnimetic.client import OmnimeticClient, check_account_id
from bot.omnimetic.errors import OmnimeticNotFound
from bot.omnimetic.models import ServiceAccount
from storage import ledger
from storage.db import Database
from storage.models import Customer

CACHE_FOR = timedelta(minutes=5)
"""How long Omnimetic's answers are kept: its figures change by the hour at most."""
CACHE_SIZE = 512
"""At most this many answers are kept (a week of one account's hours is ~170 rows)."""

T = TypeVar("T")


@dataclass(frozen=True)
class NoCustomer:
    """The device has no customer registered (``/customer`` first)."""


@dataclass(frozen=True)
class NoMeter:
    """The customer has no utility service account tied."""

    customer: Customer


@dataclass(frozen=True)
class MeterTied:
    customer: Customer
    account: ServiceAccount


@dataclass(frozen=True)
class MeterHeld:
    """The account is another customer's already: nothing was tied."""

    account: str


class Energy:
    """The meters of the ledger's customers, and their energy use from Omnimetic."""

    def __init__(self, *, db: Database, client: OmnimeticClient, clock: Clock, tz: ZoneInfo, sandbox: bool) -> None:
        self.db, self.client, self.clock, self.tz = db, client, clock, tz
        self.sandbox = sandbox
        """The figures are the embedded sandbox's (no Omnimetic keys): replies say so."""
        self._cache: dict[tuple[Any, ...], tuple[datetime, Any]] = {}
        self._locks: dict[tuple[Any, ...], asyncio.Lock] = {}

    # -- meters ---------------------------------------------------------------------------

    async def tie(self, device_id: int, account: str) -> MeterTied | MeterHeld | NoCustomer:
        """Tie the device's customer to ``account`` once Omnimetic knows it (:class:`OmnimeticNotFound`
        otherwise, and nothing is tied); ``ValueError`` for an id Omnimetic could never know."""
        check_account_id(account)
        customer = await self._customer_of(device_id)
        if customer is None or customer.id is None:
            return NoCustomer()
        info = await self._cached(("info", account), lambda: self.client.info(account))
        if info.id.casefold() != account.casefold():  # kept as Omnimetic names it, or not at all
            raise OmnimeticNotFound(f"Omnimetic answered for {info.id} when asked for {account}", status=404)
        try:
            async with self.db.write() as session:
                holder = await ledger.tie_meter(session=session, customer_id=customer.id, account=info.id,
                                                now=self.clock.now())
        except IntegrityError:  # tied to another customer by a concurrent /meter (PostgreSQL)
            return MeterHeld(account)
        if holder is not None:
            return MeterHeld(account)
        return MeterTied(customer, info)

    async def untie(self, device_id: int) -> tuple[Customer, str | None] | NoCustomer:
        """Untie the device's customer's account; the customer and the account that was tied."""
        customer = await self._customer_of(device_id)
        if customer is None or customer.id is None:
            return NoCustomer()
        async with self.db.write() as session:
            account = await ledger.untie_meter(session=session, customer_id=customer.id)
        return customer, account

    # -- energy use -----------------------------------------------------------------------

    async def usage_of_customer(self, customer: Customer) -> Usage | NoMeter:
        """The customer's energy use (their own account only: the ledger's tie decides)."""
        account = customer.utility_account
        if account is None:
            return NoMeter(customer)
        now = self.clock.now()
        today = now.astimezone(self.tz).date()
        # a day either side: the last 7 local days, whatever the zone's offset from UTC
        start = today - timedelta(days=figures.WEEK_DAYS)
        end = today + timedelta(days=1)
        info, this_year, last_year, hours = await asyncio.gather(  # at once: a slow Omnimetic is slow once
            self._cached(("info", account), lambda: self.client.info(account)),
            self._cached(("history", account, today.year), lambda: self.client.history(account, today.year)),
            self._cached(("history", account, today.year - 1),
                         lambda: self.client.history(account, today.year - 1)),
            self._cached(("interval", account, start, end), lambda: self.client.interval(account, start, end)),
        )
        return figures.usage(info, [*last_year, *this_year], hours, now, self.tz)

    async def usage_of_device(self, device_id: int) -> Usage | NoMeter | NoCustomer:
        customer = await self._customer_of(device_id)
        if customer is None:
            return NoCustomer()
        return await self.usage_of_customer(customer)

    async def spreadsheet(self, device_id: int) -> tuple[str, bytes] | NoMeter | NoCustomer:
        """Omnimetic's own spreadsheet of the device's customer's account: (account, xlsx bytes)."""
        customer = await self._customer_of(device_id)
        if customer is None:
            return NoCustomer()
        account = customer.utility_account
        if account is None:
            return NoMeter(customer)
        return account, await self._cached(("download", account), lambda: self.client.download(account))

    async def _customer_of(self, device_id: int) -> Customer | None:
        async with self.db.read() as session:
            device = await ledger.get_device(session=session, device_id=device_id)
            if device is None or device.customer_id is None:
                return None
            return await ledger.get_customer(session=session, customer_id=device.customer_id)

    async def _cached(self, key: tuple[Any, ...], fetch: Callable[[], Awaitable[T]]) -> T:
        """``fetch()``'s answer, kept :data:`CACHE_FOR`; concurrent askers of one key share one call.
        Failures are not kept."""
        lock = self._locks.setdefault(key, asyncio.Lock())
        try:
            async with lock:
                now = self.clock.now()
                kept = self._cache.get(key)
                if kept is not None and kept[0] > now:
                    return kept[1]  # type: ignore[no-any-return]
                value = await fetch()
                self._forget_stale(now)
                self._cache[key] = (now + CACHE_FOR, value)
                return value
        finally:
            if key not in self._cache and not lock.locked():
                self._locks.pop(key, None)  # a failed fetch (a mistyped account) leaves nothing behind

    def _forget_stale(self, now: datetime) -> None:
        """What has run out is dropped, and at most :data:`CACHE_SIZE` answers are kept (oldest out)."""
        for stale in [key for key, (until, _) in self._cache.items() if until <= now]:
            del self._cache[stale]
            self._locks.pop(stale, None)
        while len(self._cache) >= CACHE_SIZE:
            oldest = next(iter(self._cache))
            del self._cache[oldest]
