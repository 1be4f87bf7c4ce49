"""Onboarding a portfolio from a CSV file (``paygbot plans import``): devices, customers and payment plans,
for a distributor moving from another system.

One row a device: ``device, phone, name, total, per_day, currency`` and optionally ``deposit, paid,
credit_until, agent``. Every row is checked and every bad one reported with its line number; nothing is
applied unless every row is good, and then all of it in one write transaction. A row whose device already
has the same plan for the same customer is *unchanged*, so a re-run of the same file changes nothing.

Devices the ledger does not know are asked of the ERM through the issuing engine: one device sync (the
distributor's devices, all their ids), then a look-up of each id still unknown. The checks that read the
ledger run in the transaction that applies the rows, so nothing can change between them.

This module neither prints nor speaks to Telegram: :func:`bot.plans.plan_file.read_plans` reads the file (or raises
:class:`ImportRefused` for a file that cannot be read as one, before the ledger is touched), and
:func:`import_plans` returns an :class:`Outcome`; :mod:`bot.cli_texts` words both.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from bot.clock import Clock
from bot.erm.errors import ErmAuthError, ErmError
from bot.issuing import IssuingEngine
from bot.issuing.outcomes import Reason, Refused
from bot.plans.plan_file import Fault, PlanFile, Row, RowError, same_name
from storage import ledger
from storage.db import Database
from storage.ledger import onboarding
from storage.models import Customer, Device, Person, Plan, PlanStatus

log = logging.getLogger("paygbot.plans")

RESOLVE_CONCURRENCY = 8
"""Devices looked up at the ERM at once (after the sync, only ids it did not list)."""


@dataclass(frozen=True)
class Outcome:
    """What the import did (``applied``), or would do (a dry run, or rows with errors: nothing applied)."""

    rows: int
    new_plans: int
    unchanged: int
    new_customers: int
    errors: tuple[RowError, ...]
    applied: bool
    dry_run: bool
    ended: int = 0
    """Rows of plans that ended (``status`` paid off or repossessed, as ``/export plans`` writes): left out."""

    @property
    def bad_rows(self) -> int:
        return len({error.line for error in self.errors})


class DeviceLookup(Protocol):
    async def sync_devices(self, page_size: int = 100) -> int: ...

    async def resolve_device(self, device_ref: str) -> int | Refused: ...


OpenLookup = Callable[[], AbstractAsyncContextManager[DeviceLookup]]
"""Opens the ERM (only when a device is unknown to the ledger) and gives what looks devices up in it."""


class LookupEngine(IssuingEngine):
    """The issuing engine as the import uses it: it learns devices from the ERM and never pumps (issuing codes
    is the bot's job, not a command's)."""

    def kick(self) -> None:
        return None


async def import_plans(plans: PlanFile, *, db: Database, clock: Clock, lookup: OpenLookup,
                       dry_run: bool = False) -> Outcome:
    """Check every row against the ledger and, when all are good and it is not a dry run, apply them in one
    write transaction."""
    rows = plans.rows
    refused = await _learn_devices(db, lookup, [row.device_ref for row in rows if row.device_ref])
    clean = not any(row.errors for row in rows)
    write = clean and not dry_run
    async with db.write() if write else db.read() as session:
        found = await _check(session, rows, refused)
        errors = tuple(error for row in rows for error in row.errors)
        applied = write and not errors and found.new_plans > 0
        if applied:
            await _apply(session, found, clock.now(), plans.name)
    outcome = Outcome(rows=len(rows) + len(plans.ended), new_plans=found.new_plans, unchanged=found.unchanged,
                      new_customers=len(found.new_phones), errors=errors, applied=applied, dry_run=dry_run,
                      ended=len(plans.ended))
    log.info("plans import of %s: %s rows, %s new plans, %s unchanged, %s new customers, %s rows with errors%s",
             plans.name, outcome.rows, outcome.new_plans, outcome.unchanged, outcome.new_customers,
             outcome.bad_rows, " (applied)" if applied else "")
    return outcome


async def _learn_devices(db: Database, lookup: OpenLookup, refs: Sequence[str]) -> dict[str, Refused]:
    """Make the ledger know the devices of ``refs`` it does not know yet, from the ERM; returns the ids that
    are no device the ERM knows, or could not be looked up, with why."""
    async with db.read() as session:
        known = await ledger.devices_by_ids(session=session, refs=refs)
    missing = [ref for ref in dict.fromkeys(refs) if ref not in known]
    if not missing:
        return {}
    async with lookup() as erm:
        try:
            learned = await erm.sync_devices()
            log.info("plans import: %s unknown ids; the device sync learned %s devices", len(missing), learned)
        except ErmAuthError:
            raise
        except ErmError as exc:  # each id is looked up on its own, below
            log.info("plans import: the device sync failed (%s)", exc.message)
        async with db.read() as session:
            known = await ledger.devices_by_ids(session=session, refs=missing)
        still = [ref for ref in missing if ref not in known]
        gate = asyncio.Semaphore(RESOLVE_CONCURRENCY)
        down = False

        async def resolve(ref: str) -> int | Refused:
            nonlocal down
            async with gate:
                if down:  # the ERM is not answering: the rest are not asked, each waiting out a timeout
                    return Refused(Reason.ERM_UNAVAILABLE, ref)
                found = await erm.resolve_device(ref)
            if isinstance(found, Refused) and found.reason is Reason.ERM_UNAVAILABLE:
                down = True
            return found

        results = await asyncio.gather(*(resolve(ref) for ref in still))
    return {ref: found for ref, found in zip(still, results, strict=True) if isinstance(found, Refused)}


@dataclass
class _Plan:
    """What the checks found to do: the rows that make new plans, with their devices."""

    todo: list[tuple[Row, Device]] = field(default_factory=list)
    unchanged: int = 0
    customers: dict[str, Customer] = field(default_factory=dict)
    """The customers on file, by phone."""
    agents: dict[int, Person] = field(default_factory=dict)
    new_phones: set[str] = field(default_factory=set)

    @property
    def new_plans(self) -> int:
        return len(self.todo)


async def _check(session: ledger.AsyncSession, rows: list[Row], refused: dict[str, Refused]) -> _Plan:
    """The checks that read the ledger, in bulk; a row's errors go to its ``errors``."""
    refs = [row.device_ref for row in rows if row.device_ref]
    devices = await ledger.devices_by_ids(session=session, refs=refs)
    device_ids = list({device.id for device in devices.values() if device.id is not None})
    plans = await ledger.plans_of_all(session=session, device_ids=device_ids)
    owners = await onboarding.customers_by_ids(
        session=session, customer_ids=[d.customer_id for d in devices.values() if d.customer_id is not None])
    found = _Plan()
    found.customers = await ledger.customers_by_phones(session=session, phones=[r.phone for r in rows if r.phone])
    found.agents = await ledger.people_by_telegram_ids(session=session,
                                                       telegram_ids=[r.agent for r in rows if r.agent is not None])
    line_of_ref: dict[str, int] = {}
    line_of_device: dict[int, int] = {}
    first_name: dict[str, tuple[int, str]] = {}
    for row in rows:
        device = None
        if row.device_ref is not None:
            ref = row.device_ref
            device = devices.get(ref)
            first = line_of_ref.get(ref) or (line_of_device.get(device.id) if device and device.id else None)
            if first is not None:
                row.bad(Fault.SAME_DEVICE, ref, other_line=first)
            line_of_ref.setdefault(ref, row.line)
            if device is not None and device.id is not None:
                line_of_device.setdefault(device.id, row.line)
            elif first is None:
                why = refused.get(ref)
                unavailable = why is not None and why.reason is Reason.ERM_UNAVAILABLE
                row.bad(Fault.ERM_UNAVAILABLE if unavailable else Fault.UNKNOWN_DEVICE, ref)
        customer = found.customers.get(row.phone) if row.phone else None
        if row.phone is not None and row.name is not None:
            if customer is not None and not same_name(customer.name, row.name):
                row.bad(Fault.PHONE_OTHER_NAME, row.raw["phone"], detail=customer.name)
            earlier = first_name.setdefault(row.phone, (row.line, row.name))
            if customer is None and not same_name(earlier[1], row.name):
                row.bad(Fault.SAME_PHONE_OTHER_NAME, row.name, other_line=earlier[0], detail=earlier[1])
        if row.agent is not None:
            agent = found.agents.get(row.agent)
            if agent is None or not agent.active:
                row.bad(Fault.BAD_AGENT, str(row.agent))
        if device is None or device.id is None or any(e.fault is Fault.SAME_DEVICE for e in row.errors):
            _paid_off(row)
            continue
        current = plans.get(device.id)
        if current is not None and _unchanged(current, row, customer):
            if not row.errors:
                found.unchanged += 1
            continue
        _paid_off(row)
        if current is not None:
            if row.terms is not None and row.phone is not None:  # else its own errors say enough
                row.bad(Fault.HAS_PLAN, row.device_ref or "")
            continue
        owner = owners.get(device.customer_id) if device.customer_id is not None else None
        if owner is not None and row.phone is not None and owner.phone != row.phone:
            row.bad(Fault.OTHER_CUSTOMER, row.device_ref or "", detail=owner.phone)
        if device.unlocked:
            row.bad(Fault.UNLOCKED, row.device_ref or "")
        if not row.errors:
            found.todo.append((row, device))
            if customer is None and row.phone is not None:
                found.new_phones.add(row.phone)
    return found


def _paid_off(row: Row) -> None:
    """Only plans still being paid are imported (a paid-off plan the ledger has already is unchanged)."""
    if row.total is not None and row.paid >= row.total:
        row.bad(Fault.PAID_OFF, row.raw["paid"], detail=row.raw["total"])


def _unchanged(plan: Plan, row: Row, customer: Customer | None) -> bool:
    """The device's plan is the row's already: the same customer and terms, and paid so far as the row has it
    (paid before the import: a re-run of the file; or paid now: the ``/export plans`` file imported back)."""
    return (customer is not None and plan.customer_id == customer.id and row.terms is not None
            and (plan.total, plan.daily_price, plan.currency, plan.deposit) == (
                row.terms.total, row.terms.daily_price, row.terms.currency, row.terms.deposit)
            and row.paid in (plan.opening_paid, plan.paid))


async def _apply(session: ledger.AsyncSession, found: _Plan, now: datetime, source: str) -> None:
    """The new customers, the agents of those on file, the devices' customers, prices and credit, the plans
    and their first events: one bulk statement for each (10,000 rows are a few seconds, not minutes)."""
    customer_ids = {phone: customer.id for phone, customer in found.customers.items() if customer.id is not None}
    new: dict[str, dict[str, object]] = {}
    agent_of: dict[int, int] = {}
    for row, _device in found.todo:
        assert row.phone is not None and row.name is not None
        agent = found.agents[row.agent].id if row.agent is not None else None
        if row.phone in customer_ids:
            if agent is not None:
                agent_of[customer_ids[row.phone]] = agent
        elif row.phone in new:
            new[row.phone]["registered_by_id"] = agent if agent is not None else new[row.phone]["registered_by_id"]
        else:
            new[row.phone] = {"name": row.name, "phone": row.phone, "registered_by_id": agent, "created_at": now,
                              "language_chosen": False}
    customer_ids.update(await onboarding.add_customers(session=session, rows=list(new.values())))
    await onboarding.set_customers(session=session, rows=[{"id": customer_id, "registered_by_id": agent}
                                                          for customer_id, agent in agent_of.items()])
    devices, plans = [], []
    for row, device in found.todo:
        assert row.phone is not None and row.terms is not None and device.id is not None
        terms, customer_id = row.terms, customer_ids[row.phone]
        credit_until = device.credit_until
        if row.credit_until is not None and (credit_until is None or row.credit_until > credit_until):
            credit_until = row.credit_until
        devices.append({"id": device.id, "customer_id": customer_id, "daily_price": terms.daily_price,
                        "currency": terms.currency, "credit_until": credit_until})
        plans.append({"device_id": device.id, "customer_id": customer_id, "total": terms.total,
                      "daily_price": terms.daily_price, "currency": terms.currency, "deposit": terms.deposit,
                      "opening_paid": row.paid, "paid": row.paid, "status": PlanStatus.ACTIVE, "started_at": now,
                      "ended_at": None, "created_by_id": None})
    await onboarding.set_devices(session=session, rows=devices)
    plan_ids = await onboarding.add_plans(session=session, rows=plans)
    await onboarding.add_plan_events(session=session, rows=[
        {"plan_id": plan_ids[plan["device_id"]], "at": now, "kind": "imported", "by_id": None,
         "total": plan["total"], "daily_price": plan["daily_price"], "currency": plan["currency"],
         "deposit": plan["deposit"], "paid": plan["paid"], "note": f"{source}:{row.line}"[:300],
         "credit_until": credit["credit_until"]}
        for plan, credit, (row, _device) in zip(plans, devices, found.todo, strict=True)])
