"""Any sequence of payments, reversals, plan changes, pumps and decisions keeps a payment plan's books.

Hypothesis draws a plan's first terms and a sequence of steps on ONE device (device A): payments in minor units
(tiny ones, shares of the total, a number of days' price give or take a cent, the exact rest of the deposit or of
the total, and ones far beyond it), reversals of the k-th payment so far or of the last one (also of one reversed
already, and of a reference never seen), changes of the plan's terms (a total below paid so far pays it off; bad
terms change nothing), the pump (the ERM sandbox makes the queued codes, so reversals then meet issued codes),
time passing with the bot running (the next day's codes, room for prepaid days), and the managers' decision on
the unlock approval (approve, approve twice, reject, reject and then /free as the bot tells them). A second
device (B), with its own plan, payment and code, is never touched and must never change.

Each example starts from a fresh copy of one prepared ledger (``Stage``: both devices known, A's customer and
agent, a manager, B's plan paid into), a fresh ERM sandbox behind one loopback HTTP server, and a fresh engine, on
one event loop for the module (as ``tests/test_properties.py``, hypothesis runs synchronously and drives it with
``run_until_complete``). The engine's ``kick`` is a no-op, so codes are made only by the pump steps: every step
sees a quiet ledger, and an example replays the same way every time. After every step, read from the ledger and
the sandbox:

1. paid so far is exactly ``opening_paid`` + the unreversed payments counted toward the plan; every Money value
   is a ``Decimal`` in minor units, stored as plain decimal text (a float or a division would show); each
   payment's split (days money, excess), debt paid and days are those of the plan's terms when it arrived;
2. one unlock code per plan: at most one PLAN free code not refused (the plan's ``unlock_request_id``) or /free
   code, the ERM committed at most one free code and no days code after it, the device is unlocked iff its last
   code was that free code; at most one pending approval, an approved one holds the plan's request (or one a
   reversal cancelled); an active plan has no pending approval, no unlock code and no unlocked device; a paid-off
   one has its code (``auto``), or exactly one of a pending approval, its code, or a rejection (``approve``);
3. the plan is PAID_OFF iff paid >= total, but once its unlock code is out it stays PAID_OFF (a reversal leaves
   it short: then payments count toward it again and pay the device's debt, and make no days);
4. ``owed``, ``credit_money``, ``prepaid_days`` are never negative, and never credit and debt at once;
5. a reversal of a payment reversed already or of an unknown reference, a second unlock, bad terms or terms for
   a paid-off plan change no row at all;
6. a reversal takes back exactly what the device holds beyond what paid so far still pays for above the deposit
   (``Reversal.taken``), and while the daily price stays the same the device's value is conserved: its credit
   less its debt plus the days it was given (queued, made, or kept as prepaid days) at that price is what the
   counted payments brought toward days less what reversals took back.

Both ``PAYGBOT_UNLOCK_WHEN_PAID`` modes run: ``approve`` (an approval, then the managers' decision) and
``auto`` (the unlock code queued by the payment that pays the plan off, after its days).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import ssl
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import select as sa_select
from sqlalchemy import text
from sqlmodel import SQLModel, select
from starlette.applications import Starlette

from bot.approvals import Approvals, Verdict
from bot.clock import ManualClock
from bot.erm.models import CodeType
from bot.erm.rest import RestErm
from bot.issuing import HoldReason, IssuingEngine, PaymentApplied, PaymentHeld
from bot.payments.service import Payments
from bot.payments.values import Incoming
from bot.plans.reversals import NotReversed, Reversed, Unreversed, reverse
from bot.plans.service import Bad, Plans, PlanSet, Terms
from bot.standins.erm import ErmSandbox, build_app, running
from storage import ledger
from storage.db import Database
from storage.models import (
    GENERATED_STATUSES,
    OPEN_STATUSES,
    Approval,
    ApprovalStatus,
    CodeKind,
    CodeRequest,
    Device,
    Payment,
    PaymentStatus,
    Person,
    Plan,
    PlanEvent,
    PlanStatus,
    Reversal,
    Role,
    Source,
    Status,
)
from storage.types import Money
from tests.support import erm as erm_support
from tests.support.databases import Ledgers
from tests.support.logs import errors_logged
from tests.support.settings import make_settings

ZERO = Decimal(0)
CENT = Decimal("0.01")
KES = "KES"
AGENT = 2
"""The Telegram id of A's customer's agent."""
START = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
MAX_STACKED_DAYS = 30
"""Small, so that payments often leave prepaid days (and time passing releases them)."""
SETTINGS = {
    mode: make_settings(ERM_TIMEOUT_SECONDS=2, PAYGBOT_MAX_STACKED_DAYS=MAX_STACKED_DAYS,
                        PAYGBOT_UNLOCK_WHEN_PAID=mode)
    for mode in ("approve", "auto")
}
PLAIN_DECIMAL = re.compile(r"[0-9]+(\.[0-9]{1,2})?")
"""How a Money value in minor units is stored (``str(Decimal)``): a float or a division would show."""
TLS = ssl.create_default_context()


def money(cents: int) -> Decimal:
    return Decimal(cents) / 100


# -- what an example is -------------------------------------------------------------------------

CENTS = st.one_of(
    st.integers(1, 99),  # below any daily price
    st.integers(100, 20_000),
    st.integers(100, 20_000),
    st.integers(20_000, 600_000),  # up to beyond any total
)
PER_DAY = st.sampled_from([100, 1_000, 2_500, 3_333]) | st.integers(100, 10_000)
"""The price per day in cents (1 to 100 KES)."""
TERMS = st.tuples(
    st.integers(10_000, 500_000),  # the total in cents (100 to 5000 KES)
    PER_DAY,
    st.sampled_from([0, 0, 100, 500]) | st.integers(0, 1_000),  # the deposit, in thousandths of the total
)
OP = st.one_of(
    st.tuples(st.just("pay"), CENTS),
    st.tuples(st.just("pay_share"), st.integers(1, 1_100)),  # thousandths of the total
    st.tuples(st.just("pay_share"), st.integers(1, 400)),
    st.tuples(st.just("pay_days"), st.integers(1, 45), st.sampled_from([-1, 0, 0, 1, 37])),  # n days' price, ± cents
    st.tuples(st.just("pay_rest"), st.sampled_from(["total", "deposit"]), st.sampled_from([-100, -1, 0, 0, 1, 100])),
    # the rest of the total, the managers' decision, the pump: the unlock code out (or not, rejected)
    st.tuples(st.just("pay_off"), st.sampled_from(["approve", "approve", "approve", "reject, then /free"])),
    st.tuples(st.just("reverse"), st.integers(0, 5)),  # the k-th payment so far (or one never made)
    st.tuples(st.just("reverse"), st.just(-1)),  # the last one
    st.tuples(st.just("reverse"), st.just(-1)),
    st.tuples(st.just("change"), st.integers(100, 1_500), PER_DAY, st.integers(0, 1_200),  # total: ‰ of the total now
              st.sampled_from(["fit", "fit", "fit", "as drawn"]), st.sampled_from(["same price", "same price", "new"])),
    st.tuples(st.just("pump"), st.just(0)),
    st.tuples(st.just("pump"), st.just(0)),
    st.tuples(st.just("later"), st.sampled_from([3_600, 86_400, 3 * 86_400, 20 * 86_400, 31 * 86_400])),
    st.tuples(st.just("later"), st.just(31 * 86_400)),  # the credit ran out: prepaid days go out
    st.tuples(st.just("decide"), st.sampled_from(["approve", "twice"])),
    st.tuples(st.just("decide"), st.sampled_from(["approve", "reject", "reject, then /free"])),
    st.tuples(st.just("free")),  # after a rejection only: the unlock code by hand
    st.tuples(st.just("agent_leaves")),  # the customer's agent is removed: approvals then have no requester
)
EXAMPLE = st.tuples(TERMS, st.lists(OP, min_size=1, max_size=16))


def share(amount: Decimal, thousandths: int) -> Decimal:
    return (amount * thousandths / 1000).quantize(CENT)


def terms_of(total: Decimal, per_day: Decimal, deposit: int, *, fit: bool = True) -> Terms:
    """Terms from a total, a price and a deposit in thousandths of the total; ``fit``: ones Plans.set accepts (the
    price per day and the deposit within the total)."""
    if fit:
        per_day, deposit = min(per_day, total), min(deposit, 1_000)
    return Terms(total, per_day, KES, share(total, deposit))


@dataclass
class Books:
    """Everything of one device, as the ledger has it now."""

    device: Device
    plan: Plan
    payments: list[Payment]
    reversals: list[Reversal]
    requests: list[CodeRequest]
    approvals: list[Approval]
    events: list[PlanEvent]

    @property
    def unlock_request(self) -> CodeRequest | None:
        return next((r for r in self.requests if r.id == self.plan.unlock_request_id), None)

    @property
    def rejected(self) -> bool:
        """The managers rejected the plan's unlock."""
        return any(a.id == self.plan.unlock_approval_id and a.status is ApprovalStatus.REJECTED for a in self.approvals)

    @property
    def unlocked_by_hand(self) -> bool:
        """The device's free code from /free (after the managers rejected the plan's) has left the queue."""
        return any(r.kind is CodeKind.FREE and r.source is Source.CHAT
                   and (r.status in GENERATED_STATUSES or r.status is Status.SENDING) for r in self.requests)

    @property
    def unlock_out(self) -> bool:
        """The plan's unlock code has left the queue (made, or on its way), or the device was unlocked by /free
        after the managers rejected it: it cannot be taken back."""
        request = self.unlock_request
        return self.unlocked_by_hand or (
            request is not None and (request.status in GENERATED_STATUSES or request.status is Status.SENDING))

    @property
    def net(self) -> Decimal:
        return self.device.credit_money - self.device.owed

    def days_given(self) -> int:
        """Paid days the device got: in codes queued or made, and kept as prepaid days."""
        coded = sum(r.days or 0 for r in self.requests if r.kind is CodeKind.DAYS
                    and r.source in (Source.PAYMENT, Source.PREPAID) and r.status is not Status.REFUSED)
        return coded + self.device.prepaid_days


@dataclass(frozen=True)
class Stage:
    """The ledger every example starts from (made once): devices A and B known, A's customer and their agent, a
    manager; B's plan, B's payment and its code made."""

    url: str
    now: datetime
    a: int
    b: int
    a_ref: str
    b_ref: str
    manager: Person
    b_before: tuple[Any, ...]


@dataclass
class Example:
    """One example: a fresh ledger (from the stage), sandbox and engine; device A under test, device B a
    bystander."""

    mode: str
    clock: ManualClock
    references: list[str] = field(default_factory=list)
    held: Decimal = ZERO
    """What the device holds of the plan's money, reckoned here: what the counted payments brought toward days
    (beyond the deposit, within the total) less what reversals took back."""
    one_price: bool = True
    """The daily price never changed (the device's value is reckoned in days at one price)."""
    trace: list[str] = field(default_factory=list)
    fresh: Books | None = None
    """Device A's books as last read, while nothing changed since."""
    events: set[str] = field(default_factory=set)
    """What this example got to (hypothesis statistics: ``--hypothesis-show-statistics``)."""

    @contextlib.asynccontextmanager
    async def running(self, served: Served, ledgers: Ledgers, like: str | None) -> AsyncIterator[str]:
        """A copy of the ledger ``like`` (None: a new one), a fresh sandbox behind ``served``, an engine (that
        never pumps by itself)."""
        url = ledgers.new(like)
        self.sandbox = served.serve(ErmSandbox(clock=self.clock, device_count=2))
        self.db = Database(url)
        try:
            transport = httpx.AsyncHTTPTransport(verify=TLS)  # loopback HTTP; one context keeps examples cheap
            async with RestErm(served.url, erm_support.USER, erm_support.PASSWORD, timeout=2,
                               transport=transport) as erm:
                self.engine = IssuingEngine(db=self.db, erm=erm, settings=SETTINGS[self.mode], clock=self.clock)
                self.engine.kick = lambda: None  # type: ignore[method-assign]  # codes only in the pump steps
                self.payments = Payments(db=self.db, engine=self.engine, clock=self.clock, phone_region="KE")
                self.plans = Plans(db=self.db, engine=self.engine, clock=self.clock)
                self.approvals = Approvals(self.db, self.clock)
                try:
                    yield url
                finally:
                    await self.payments.close()
                    await self.engine.close()
        finally:
            await self.db.dispose()

    async def stage(self, served: Served, ledgers: Ledgers) -> Stage:
        async with self.running(served, ledgers, None) as url:
            a, b = self.sandbox.devices[:2]
            self.a_ref, self.b_ref = a.erm_id, b.erm_id
            a_id, b_id = await self.engine.resolve_device(self.a_ref), await self.engine.resolve_device(self.b_ref)
            assert isinstance(a_id, int) and isinstance(b_id, int)
            self.a, self.b = a_id, b_id
            async with self.db.write() as session:
                now = self.clock.now()
                manager = await ledger.put_person(session=session, telegram_id=1, role=Role.MANAGER, name="M",
                                                  now=now)
                # A's customer has an agent: the plan's approval is asked in the agent's name
                agent = await ledger.put_person(session=session, telegram_id=AGENT, role=Role.AGENT, name="A",
                                                now=now)
                device = await ledger.lock_device(session=session, device_id=self.a)
                await ledger.put_customer(session=session, device=device, phone="+254712345678", name="C",
                                          registered_by_id=agent.id, now=now)
            # B: a plan of its own, a payment (deposit, two days and credit), its code made; it must never change
            assert isinstance(await self.plans.set(self.b, Terms(Decimal(1000), Decimal(20), KES, Decimal(100)),
                                                   by=None), PlanSet)
            await self.payments.receive(Incoming(provider="cash", reference="B-1", amount=Decimal("150.50"),
                                                 account=self.b_ref, currency=KES))
            await self.quiet()
            return Stage(url, self.clock.now(), self.a, self.b, self.a_ref, self.b_ref, manager,
                         await self.snapshot_b())

    async def run(self, served: Served, terms: tuple[int, int, int], ops: list[tuple[Any, ...]],
                  ledgers: Ledgers) -> None:
        stage = served.stage
        self.a, self.b, self.a_ref, self.b_ref, self.manager = stage.a, stage.b, stage.a_ref, stage.b_ref, stage.manager
        async with self.running(served, ledgers, stage.url) as url:
            try:
                first = terms_of(money(terms[0]), money(terms[1]), terms[2])
                made = await self.plans.set(self.a, first, by=None)
                assert isinstance(made, PlanSet) and made.created and not made.paid_off, made
                self.price = first.daily_price
                await self.check()
                for op in ops:
                    self.trace.append(repr(op))
                    await getattr(self, f"op_{op[0]}")(*op[1:])
                    await self.check()
                assert await self.snapshot_b() == stage.b_before, "device B changed"
            finally:
                ledgers.drop(url)

    @property
    def auto(self) -> bool:
        return self.mode == "auto"

    # -- reading the ledger ----------------------------------------------------------------------

    async def books(self, device_id: int | None = None) -> Books:
        device_id = self.a if device_id is None else device_id
        async with self.db.read() as session:
            device = await ledger.get_device(session=session, device_id=device_id)
            plan = await ledger.current_plan(session=session, device_id=device_id)
            assert device is not None and plan is not None and plan.id is not None
            payments = list((await session.exec(select(Payment).where(Payment.device_id == device_id)
                                                .order_by(Payment.id))).all())  # type: ignore[arg-type]
            reversals = list((await session.exec(select(Reversal).order_by(Reversal.id))).all())  # type: ignore[arg-type]
            ids = {p.id for p in payments}
            reversals = [r for r in reversals if r.payment_id in ids]
            requests = list((await session.exec(select(CodeRequest).where(CodeRequest.device_id == device_id)
                                                .order_by(CodeRequest.id))).all())  # type: ignore[arg-type]
            approvals = list((await session.exec(select(Approval).where(Approval.device_id == device_id)
                                                 .order_by(Approval.id))).all())  # type: ignore[arg-type]
            events = list(await ledger.plan_events(session=session, plan_id=plan.id))
        return Books(device, plan, payments, reversals, requests, approvals, events)

    async def dump(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every row of every table, as stored."""
        rows: dict[str, list[tuple[Any, ...]]] = {}
        async with self.db.read() as session:
            for table in SQLModel.metadata.sorted_tables:
                query = sa_select(table).order_by(*table.primary_key.columns)
                rows[table.name] = [tuple(row) for row in (await session.exec(query)).all()]  # type: ignore[call-overload]
        return rows

    async def money_as_stored(self) -> list[tuple[str, str, Any]]:
        """Every Money value as its raw column text (one query)."""
        parts = [f'SELECT \'{table.name}\', \'{column.name}\', "{column.name}" FROM "{table.name}" '
                 f'WHERE "{column.name}" IS NOT NULL'
                 for table in SQLModel.metadata.sorted_tables for column in table.columns
                 if isinstance(column.type, Money)]
        async with self.db.read() as session:
            result = await session.exec(text(" UNION ALL ".join(parts)))  # type: ignore[call-overload]
            return [tuple(row) for row in result.all()]

    async def now(self) -> Books:
        """Device A's books now (read again only if something may have changed)."""
        if self.fresh is None:
            self.fresh = await self.books()
        return self.fresh

    async def changed(self) -> Books:
        self.fresh = await self.books()
        return self.fresh

    async def snapshot_b(self) -> tuple[Any, ...]:
        b = await self.books(self.b)
        return (
            b.plan.model_dump(), {k: v for k, v in b.device.model_dump().items()
                                  if k in ("owed", "credit_money", "prepaid_days", "unlocked", "daily_price",
                                           "currency", "credit_until")},
            [p.model_dump() for p in b.payments], [r.model_dump() for r in b.reversals],
            [(r.id, r.status, r.kind, r.days) for r in b.requests], [a.model_dump() for a in b.approvals],
            len(b.events),
        )

    # -- the steps -------------------------------------------------------------------------------

    async def op_pay(self, cents: int) -> None:
        await self.pay(money(cents))

    async def op_pay_share(self, thousandths: int) -> None:
        await self.pay(max(CENT, share((await self.now()).plan.total, thousandths)))

    async def op_pay_days(self, days: int, cents: int) -> None:
        await self.pay(max(CENT, days * self.price + money(cents)))

    async def op_pay_rest(self, of: str, delta: int) -> None:
        """Pay exactly what is left of the total (or the deposit), a cent or a unit either side."""
        plan = (await self.now()).plan
        rest = (plan.total if of == "total" else plan.deposit) - plan.paid + money(delta)
        await self.pay(rest if rest > 0 else CENT)

    async def op_pay_off(self, how: str) -> None:
        await self.op_pay_rest("total", 0)
        await self.check()
        await self.op_decide(how)
        await self.check()
        await self.op_pump(0)

    async def pay(self, amount: Decimal) -> None:
        before, self.fresh = await self.now(), None
        reference = f"A-{len(self.references) + 1}"
        self.references.append(reference)
        received = await self.payments.receive(Incoming(provider="cash", reference=reference, amount=amount,
                                                        account=self.a_ref, currency=KES))
        after = await self.changed()
        assert received.new, received
        payment = next(p for p in after.payments if p.reference == reference)
        assert payment.amount == amount and isinstance(payment.amount, Decimal)
        plan0, plan1 = before.plan, after.plan
        if plan0.paid >= plan0.total:  # paid off: money beyond it is the managers' to review
            assert plan0.status is PlanStatus.PAID_OFF, plan0
            assert isinstance(received.outcome, PaymentHeld), received.outcome
            assert received.outcome.reason in (HoldReason.PAID_OFF, HoldReason.UNLOCKED), received.outcome
            assert payment.status is PaymentStatus.UNMATCHED and payment.plan_id is None and payment.days == 0
            assert plan1.model_dump() == plan0.model_dump()
            assert (after.device.owed, after.device.credit_money, after.device.prepaid_days) == (
                before.device.owed, before.device.credit_money, before.device.prepaid_days)
            self.events.add("a payment to a paid-off plan held")
            return
        # active, or paid off, unlocked and left short by a reversal: it counts (and pays what is owed)
        assert plan0.status is PlanStatus.ACTIVE or before.unlock_out, plan0
        assert isinstance(received.outcome, PaymentApplied) and not received.outcome.duplicate, received.outcome
        assert payment.status is PaymentStatus.MATCHED and payment.plan_id == plan0.id
        # the split, reckoned here from the terms as they were: all of it counts; days only beyond the deposit
        # and within the total; what goes beyond the total is excess
        paid0, paid1 = plan0.paid, plan0.paid + amount
        for_days = max(ZERO, min(paid1, plan0.total) - max(paid0, plan0.deposit))
        excess = max(ZERO, paid1 - max(plan0.total, paid0))
        paid_off = paid0 < plan0.total <= paid1
        assert plan1.paid == paid1 == payment.plan_paid, (plan1.paid, paid1, payment.plan_paid)
        assert payment.day_money == for_days and (payment.excess or ZERO) == excess, (payment, for_days, excess)
        assert (plan1.status is PlanStatus.PAID_OFF) == (paid_off or before.unlock_out), (plan1, paid_off)
        # the days: the debt first, then whole days at the price (none for an unlocked device)
        price = before.device.daily_price
        assert price is not None and payment.day_price == price
        pot = for_days + before.device.credit_money
        owed_paid = min(before.device.owed, pot)
        days = 0 if before.device.unlocked else int((pot - owed_paid) // price)
        assert (payment.owed_paid or ZERO) == owed_paid and payment.days == days, (payment, owed_paid, days)
        assert after.device.owed == before.device.owed - owed_paid
        assert after.device.credit_money == pot - owed_paid - days * price
        self.held += for_days
        if paid_off:
            self.events.add("paid off by a payment" + (" with excess" if excess else "")
                            + (" again, after the unlock" if before.unlock_out else ""))
        elif before.unlock_out:
            self.events.add("a payment toward a plan short after its unlock")
        if owed_paid:
            self.events.add("a payment paid a debt first")
        if payment.prepaid_days:
            self.events.add("a payment kept prepaid days")

    async def op_reverse(self, k: int) -> None:
        if k < 0:
            k += len(self.references)
        reference = self.references[k] if 0 <= k < len(self.references) else f"NEVER-{k}"
        before = await self.now()
        payment0 = next((p for p in before.payments if p.reference == reference), None)
        nothing = payment0 is None or payment0.reversed_at is not None
        rows = await self.dump() if nothing else None
        self.fresh = None
        result = await reverse(self.db, self.clock, reference, reason="taken back", by=self.manager.id)
        if payment0 is None or payment0.reversed_at is not None:
            assert isinstance(result, NotReversed), result
            assert result.why is (Unreversed.UNKNOWN if payment0 is None else Unreversed.ALREADY), result
            assert await self.dump() == rows, "a reversal that reversed nothing changed the ledger"
            self.events.add(f"reversal: {result.why}")
            return
        assert isinstance(result, Reversed), result
        after = await self.changed()
        payment1 = next(p for p in after.payments if p.reference == reference)
        assert payment1.reversed_at is not None
        [reversal] = [r for r in after.reversals if r.payment_id == payment1.id]
        assert reversal.amount == payment0.amount
        if payment0.plan_id is None:  # never applied (held): it simply never will be
            assert payment0.status is not PaymentStatus.MATCHED and payment1.status is PaymentStatus.UNMATCHED
            assert after.plan.paid == before.plan.paid and after.net == before.net
            self.events.add("reversal of a held payment")
            return
        assert after.plan.paid == before.plan.paid - payment0.amount, (before.plan.paid, after.plan.paid)
        if before.unlock_out:  # the device is the customer's: the plan stays paid off, short of its total
            assert after.plan.status is PlanStatus.PAID_OFF, "a plan whose unlock code is out opened again"
            self.events.add("reversal after the unlock code went out")
        elif before.plan.status is PlanStatus.PAID_OFF and after.plan.paid < after.plan.total:
            assert after.plan.status is PlanStatus.ACTIVE and result.reopened, (after.plan, result)
            self.events.add("reversal reopened a paid-off plan" + (" (unlock queued)" if before.unlock_request else ""))
        # what the device holds beyond what paid so far still pays for (above the deposit) is taken back: days
        # not issued yet (more than that comes back as prepaid days and credit), then credit, the rest is owed
        plan = after.plan

        def paid_for(paid: Decimal) -> Decimal:
            return max(ZERO, min(paid, plan.total) - max(plan.deposit, plan.opening_paid))

        # what the reversal changes under the terms now in force, never more than the device holds
        over = min(max(ZERO, self.held), paid_for(plan.paid + payment0.amount) - paid_for(plan.paid))
        assert reversal.taken == over, f"reversal took {reversal.taken} back, not {over} (held {self.held})"
        assert after.net + after.days_given() * self.price == before.net + before.days_given() * self.price - over \
            or not self.one_price, (before.device, after.device, reversal)
        self.held -= over
        self.events.add("reversal: " + ("days cancelled" if reversal.cancelled_days else "no days cancelled")
                        + (", owing" if reversal.owed else "") + (", nothing to take" if not over else ""))

    async def op_change(self, total: int, per_day: int, deposit: int, how: str, price: str) -> None:
        before = await self.now()
        new = terms_of(max(Decimal(1), share(before.plan.total, total)), self.price if price == "same price" else money(per_day),
                       deposit, fit=how == "fit")
        refused = new.daily_price > new.total or new.deposit > new.total or before.plan.status is PlanStatus.PAID_OFF
        rows = await self.dump() if refused else None
        self.fresh = None
        result = await self.plans.set(self.a, new, by=None)
        if new.daily_price > new.total or new.deposit > new.total:
            assert result in (Bad.PRICE_ABOVE_TOTAL, Bad.DEPOSIT_ABOVE_TOTAL), result
            assert await self.dump() == rows, "refused terms changed the ledger"
            return
        if before.plan.status is PlanStatus.PAID_OFF:
            assert result is Bad.PAID_OFF, result
            assert await self.dump() == rows, "terms for a paid-off plan changed the ledger"
            self.events.add("terms refused: paid off")
            return
        assert isinstance(result, PlanSet) and not result.created, result
        after = await self.changed()
        plan = after.plan
        assert (plan.total, plan.daily_price, plan.deposit, plan.paid) == (
            new.total, new.daily_price, new.deposit, before.plan.paid), plan
        assert after.device.daily_price == new.daily_price
        assert result.paid_off == (plan.paid >= plan.total) == (plan.status is PlanStatus.PAID_OFF), (result, plan)
        if result.paid_off:
            self.events.add("paid off by lower terms")
        if new.daily_price != self.price:
            self.one_price = False
        self.price = new.daily_price

    async def op_pump(self, _: int) -> None:
        self.fresh = None
        await self.quiet()

    async def op_later(self, seconds: int) -> None:
        """Time passes with the bot running: what is due goes out first (then room may open for prepaid days)."""
        self.fresh = None
        await self.quiet()
        self.clock.advance(seconds)
        await self.quiet()

    async def op_decide(self, how: str) -> None:
        """The managers approve the plan's pending unlock approval (the handler's way: decide, then queue the
        code, then remember it on the approval); ``twice``: the button again, or a late tap; ``reject``: they
        reject it (the plan stays paid off without its unlock code: "send /free" when it should go out)."""
        before = await self.now()
        plan = before.plan
        assert plan.id is not None and self.manager.id is not None
        pending = [a for a in before.approvals if a.status is ApprovalStatus.PENDING]
        if pending and how == "reject":
            [approval] = pending
            assert approval.id is not None
            self.fresh = None
            decision = await self.approvals.decide(approval.id, self.manager, False)
            assert decision.verdict is Verdict.DECIDED, decision
            self.events.add("approval rejected")
            return
        if pending and how == "reject, then /free":
            await self.op_decide("reject")
            await self.check()
            await self.op_free()
            await self.check()
            await self.op_pump(0)
            return
        if pending:
            [approval] = pending
            assert approval.id is not None
            self.fresh = None
            decision = await self.approvals.decide(approval.id, self.manager, True)
            assert decision.verdict is Verdict.DECIDED, decision
            request_id = await self.engine.unlock_plan(plan.id, requested_by=self.manager.id, chat_id=None)
            assert request_id is not None, "an approved unlock of a paid-off plan was not queued"
            await self.approvals.record_request(approval.id, request_id)
            self.events.add("approval decided" + ("" if approval.requested_by_id else ", no agent asked"))
            if how != "twice":
                return
            before = await self.now()
        if before.plan.status is PlanStatus.PAID_OFF and before.plan.unlock_request_id is None:
            return  # paid off without its code: the managers rejected it (a tap now would not queue it)
        rows = await self.dump()
        again = await self.engine.unlock_plan(plan.id, requested_by=self.manager.id, chat_id=None)
        if before.plan.status is PlanStatus.ACTIVE:
            assert again is None, again
        else:
            assert again == before.plan.unlock_request_id, (again, before.plan)
        assert await self.dump() == rows, "unlocking again changed the ledger"

    async def op_free(self) -> None:
        """After rejecting a plan's unlock, a manager sends /free for the device, as the bot tells them to when the
        code should go out after all (the only time this test sends one: the plan's unlock code, by hand)."""
        before = await self.now()
        if not before.rejected or before.plan.status is not PlanStatus.PAID_OFF or before.device.unlocked or any(
                r.kind is CodeKind.FREE and r.status is not Status.REFUSED for r in before.requests):
            return
        self.fresh = None
        await self.engine.request(self.a_ref, CodeKind.FREE, requested_by=self.manager.id, chat_id=None)
        self.events.add("/free after a rejected unlock")

    async def op_agent_leaves(self) -> None:
        async with self.db.write() as session:
            await ledger.deactivate(session=session, telegram_id=AGENT)

    async def quiet(self) -> None:
        """Pump as the clock moves on (7 s, past the pacing gap) until no code is due."""
        for _ in range(40):
            await self.engine.pump()
            await self.engine.drain()
            async with self.db.read() as session:
                waiting = (await session.exec(select(CodeRequest).where(
                    CodeRequest.status.in_(OPEN_STATUSES)))).all()  # type: ignore[attr-defined]
            if not any(r.not_before <= self.clock.now() for r in waiting):
                return
            self.clock.advance(7)
        raise AssertionError("the queue never ran dry")

    # -- the rules ---------------------------------------------------------------------------------

    async def check(self) -> None:
        books = await self.now()
        plan, device = books.plan, books.device

        # 1. paid so far: every counted, unreversed payment, exactly; money is Decimal in minor units
        counted = [p for p in books.payments if p.plan_id == plan.id and p.reversed_at is None]
        assert plan.paid == plan.opening_paid + sum((p.amount for p in counted), ZERO), (
            plan.paid, [(p.reference, p.amount) for p in counted])
        assert all(p.status is PaymentStatus.MATCHED for p in books.payments if p.plan_id is not None)
        assert all(p.plan_id == plan.id for p in books.payments if p.status is PaymentStatus.MATCHED)
        for row in (plan, device, *books.payments, *books.reversals, *books.events):
            for name, value in row.model_dump().items():
                column = type(row).__table__.columns.get(name)  # type: ignore[attr-defined]
                if column is not None and isinstance(column.type, Money) and value is not None:
                    assert type(value) is Decimal and value == value.quantize(CENT), (type(row).__name__, name, value)
        for table, column_name, raw in await self.money_as_stored():
            assert isinstance(raw, str) and PLAIN_DECIMAL.fullmatch(raw), (table, column_name, raw)
        assert plan.paid >= 0

        # 2. one unlock code per plan
        frees = [r for r in books.requests if r.kind is CodeKind.FREE and r.source is Source.PLAN
                 and r.status is not Status.REFUSED]
        assert len(frees) <= 1, frees
        assert [r.id for r in frees] == ([plan.unlock_request_id] if plan.unlock_request_id else []), (
            frees, plan.unlock_request_id)
        mine = [a for a in books.approvals if a.plan_id == plan.id]
        pending = [a for a in mine if a.status is ApprovalStatus.PENDING]
        assert len(pending) <= 1, pending
        if any(a.status is ApprovalStatus.CANCELLED for a in mine):
            self.events.add("approval cancelled by a reversal")
        assert not (self.auto and mine), "an approval asked though the unlock goes out at once"
        for approval in mine:
            if approval.status is ApprovalStatus.APPROVED:
                held = next((r for r in books.requests if r.id == approval.code_request_id), None)
                assert held is not None, approval
                assert held.id == plan.unlock_request_id or held.status is Status.REFUSED, (approval, held)
        kinds = [code.code_type for code in self.sandbox.device(self.a_ref).codes]
        assert kinds.count(CodeType.FREE) <= 1, kinds
        assert device.unlocked == (kinds[-1:] == [CodeType.FREE]), (device.unlocked, kinds)
        by_hand = [r for r in books.requests if r.kind is CodeKind.FREE and r.source is Source.CHAT
                   and r.status is not Status.REFUSED]
        assert len(frees) + len(by_hand) <= 1, ("two unlock codes", frees, by_hand)
        assert (CodeType.FREE in kinds) == any(r.status in GENERATED_STATUSES for r in frees + by_hand), (kinds, frees)
        if CodeType.FREE in kinds:
            self.events.add("unlock code made")
            unlock = next(r for r in frees + by_hand if r.status in GENERATED_STATUSES)
            after_unlock = [r for r in books.requests if r.kind is CodeKind.DAYS and r.issued_at is not None
                            and r.issued_at > unlock.issued_at]  # type: ignore[operator]
            assert len(after_unlock) == kinds[kinds.index(CodeType.FREE):].count(CodeType.DAYS), (after_unlock, kinds)
            assert not after_unlock, f"a days code after the unlock code locked the paid-off device again: {kinds}"
        if plan.status is PlanStatus.ACTIVE:
            assert not pending and not frees and plan.unlock_approval_id is None and plan.unlock_request_id is None, (
                plan, pending, frees)
            assert not device.unlocked, "an active plan's device is unlocked"
        elif plan.status is PlanStatus.PAID_OFF:
            if self.auto:
                assert frees, "a paid-off plan without its unlock code (auto)"
            else:
                # its approval waits, or its code was queued, or the managers rejected it (no code then)
                rejected = [a for a in mine if a.id == plan.unlock_approval_id and a.status is ApprovalStatus.REJECTED]
                assert len(pending) + len(frees) + len(rejected) == 1, (pending, frees, rejected)
                assert not pending or pending[0].id == plan.unlock_approval_id, (pending, plan)

        # 3. paid off iff paid >= total, unless its unlock code is out: then it stays paid off (short, if a
        # reversal took paid so far below the total: the device owes what the plan is short)
        if books.unlock_out:
            assert plan.status is PlanStatus.PAID_OFF, plan
            if plan.paid < plan.total:
                self.events.add("paid off and short after its unlock")
        else:
            assert (plan.status is PlanStatus.PAID_OFF) == (plan.paid >= plan.total), (plan.status, plan.paid,
                                                                                          plan.total)

        # 4. the device's figures
        assert device.owed >= 0 and device.credit_money >= 0 and device.prepaid_days >= 0, device
        assert not (device.owed > 0 and device.credit_money > 0), f"credit {device.credit_money} and debt {device.owed}"

        # 6. value, while the price stayed the same
        if any(r.source is Source.PREPAID for r in books.requests):
            self.events.add("prepaid days released")
        if self.one_price:
            given = books.days_given() * self.price
            assert books.net + given == self.held, (
                f"credit {device.credit_money} - owed {device.owed} + {books.days_given()} days at {self.price} "
                f"!= what the plan's payments brought toward days less what reversals took back: {self.held}")


class Served:
    """The ERM sandbox over loopback HTTP for a whole module, on one event loop: each example serves a fresh
    sandbox behind the same address. ``stage``: the ledger every example starts from."""

    stage: Stage

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.exits = contextlib.AsyncExitStack()
        self.app: Starlette | None = None
        self.url = self.loop.run_until_complete(self.exits.enter_async_context(running(ErmSandbox(), app=self)))

    def serve(self, sandbox: ErmSandbox) -> ErmSandbox:
        self.app = build_app(sandbox)
        return sandbox

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        assert self.app is not None
        await self.app(scope, receive, send)

    def close(self) -> None:
        try:
            self.loop.run_until_complete(self.exits.aclose())
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.run_until_complete(self.loop.shutdown_default_executor())
        finally:
            self.loop.close()


@pytest.fixture(scope="module")
def served(ledgers: Ledgers) -> Iterator[Served]:
    serving = Served()
    try:
        with errors_logged() as errors:
            setup = Example("approve", ManualClock(START))
            serving.stage = serving.loop.run_until_complete(
                setup.stage(serving, ledgers))
        assert not errors.records, [record.getMessage() for record in errors.records]
        yield serving
    finally:
        serving.close()


EXAMPLES = int(os.environ.get("PLANS_PROPERTY_EXAMPLES", "40"))
"""Examples per mode (a deeper run: ``PLANS_PROPERTY_EXAMPLES=500``)."""
_settings = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.mark.parametrize("mode", ["approve", "auto"])
@_settings
@given(example=EXAMPLE)
def test_any_sequence_keeps_the_plan_books(mode: str, example: tuple[tuple[int, int, int], list[tuple[Any, ...]]],
                                           served: Served, ledgers: Ledgers) -> None:
    terms, ops = example
    run = Example(mode, ManualClock(served.stage.now))
    with errors_logged() as errors:
        try:
            served.loop.run_until_complete(run.run(served, terms, ops, ledgers))
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nsteps: {run.trace}") from exc
        assert not errors.records, [record.getMessage() for record in errors.records]
    for happened in sorted(run.events):
        event(happened)




@pytest.mark.parametrize(("mode", "terms", "ops"), [
    pytest.param("approve", (100_000, 2_500, 0), [("pay", 3_000), ("pay", 2_000), ("reverse", 1)],
                 id="a cancelled code gives back the credit it used"),
    pytest.param("auto", (10_000, 100, 0), [("pay", 5_000), ("pump", 0), ("pay", 5_000), ("later", 20 * 86_400)],
                 id="no prepaid days behind a queued unlock code"),
    pytest.param("auto", (10_000, 100, 0), [("pay", 10_000), ("pump", 0), ("reverse", 0), ("pay", 5_000),
                                            ("pay", 6_000), ("pump", 0)],
                 id="reversed after the unlock: short, then paid off again"),
    pytest.param("approve", (10_000, 1_000, 0), [("pay", 10_000), ("decide", "reject, then /free"), ("reverse", 0),
                                                 ("pay", 10_000), ("decide", "approve"), ("pump", 0)],
                 id="unlocked by /free: a reversal does not reopen it, no second unlock code"),
    pytest.param("approve", (10_000, 100, 100), [("pay", 100), ("pay", 900), ("pay", 350), ("reverse", 0),
                                                 ("reverse", 2)],
                 id="what a cancelled code gives back pays the debt first"),
])
def test_sequences_the_property_found(mode: str, terms: tuple[int, int, int], ops: list[tuple[Any, ...]],
                                      served: Served, ledgers: Ledgers) -> None:
    """The shortest sequences of the bugs this property found (each fixed since), kept as they were found."""
    run = Example(mode, ManualClock(served.stage.now))
    with errors_logged() as errors:
        served.loop.run_until_complete(run.run(served, terms, ops, ledgers))
    assert not errors.records, [record.getMessage() for record in errors.records]
