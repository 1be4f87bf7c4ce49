"""Any sequence of requests, payments, ERM faults, crashes, restarts and clock moves keeps the rules.

A hypothesis state machine drives the real issuing engine against the ERM sandbox served over
loopback HTTP, on a real SQLite ledger, with one :class:`ManualClock` shared by both. Hypothesis
state machines are synchronous, so each example owns an event loop and every step runs its
coroutines with ``run_until_complete``; the engine is drained before the rules are checked, so
each check sees a quiet ledger. After every step (and once more at the end, when the ERM has
recovered, the clock has moved on and the queue has run dry) the test asserts:

- pacing: consecutive committed codes of a device are ``PAYGBOT_MIN_GAP_SECONDS`` apart, and the
  ERM never had to refuse a generation (not for pacing, not for its own daily limit, not for bad days);
- the daily limit: at most ``PAYGBOT_DAILY_CODE_LIMIT`` committed codes per device per *local* day
  (every code, also those of requests a day carried past midnight); once a device's codes of the day
  are out, a request for it is refused, or, paid, planned for a later day;
- stacking: no device overflowed, neither the ERM's nor the ledger's credit ends more than
  ``PAYGBOT_MAX_STACKED_DAYS`` from now, and the ledger (which stacking is reckoned from) never
  believes a device has less credit than it has, but while a code is in flight;
- exactly once: every committed code is held by exactly one ledger request of the same kind and days
  (a code may be held by none only while its request is SENDING), no request holds a code the ERM did
  not commit; a payment reference makes one payment row and at most one request; paid days are
  conserved (issued or queued or kept as prepaid days);
- nothing lost: every accepted request is in the ledger as it was asked; at the end every request
  is ISSUED, or REFUSED (an accepted one only in the ERM's own words), or FAILED with a reason after
  a day of trying (unpaid requests only); none is still QUEUED or SENDING; and once room opens, the
  prepaid days go out.

Settings make the limits bite often: 3 devices (each known by 3 ids) and one the ERM does not know,
a daily limit of 4 in Africa/Nairobi (so the ERM's own 10 a UTC day cannot mask a broken local
limit), stacking up to 60 days, an ERM timeout of 0.2 s. Engine errors logged at ERROR fail the test.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import ssl
import sys
from collections import Counter, defaultdict
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import httpx
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test
from sqlmodel import select
from starlette.exceptions import HTTPException

from bot.clock import ManualClock
from bot.erm.errors import ErmError
from bot.erm.models import CodeType
from bot.erm.rest import RestErm
from bot.issuing import GIVE_UP_AFTER, Accepted, HoldReason, IssuingEngine, PaymentHeld, Reason, Refused, limits
from bot.standins.erm import CodeRecord, ErmSandbox, SandboxDevice, running
from storage import ledger
from storage.db import Database
from storage.models import (
    GENERATED_STATUSES,
    OPEN_STATUSES,
    CodeKind,
    CodeRequest,
    Device,
    Payment,
    PaymentStatus,
    Source,
    Status,
)
from tests.support.databases import Ledgers
from tests.support.logs import ErrorLog
from tests.support.settings import make_settings
from tests.test_issuing import Paid, pay

T = TypeVar("T")

ERM_TIMEOUT = 0.2
LATE_BY = 0.3
SETTINGS = make_settings(
    ERM_TIMEOUT_SECONDS=ERM_TIMEOUT,
    PAYGBOT_TIMEZONE="Africa/Nairobi",
    PAYGBOT_DAILY_CODE_LIMIT=4,  # below the ERM's 10 a UTC day: the sandbox cannot hide a broken local limit
    PAYGBOT_MAX_STACKED_DAYS=60,
)
TZ = SETTINGS.tz
GAP = timedelta(seconds=SETTINGS.min_gap_seconds)
MAX_STACKED = timedelta(days=SETTINGS.max_stacked_days)
START = datetime(2026, 11, 22, 17, 0, tzinfo=UTC)  # 20:00 in Nairobi: a local midnight comes soon
UNKNOWN = "SBX99999999999"  # a well-formed id the ERM does not know
GENERATION_PATHS = ("/otp/daysCode", "/code/code/")
HISTORY_PATHS = ("/oves/v2/codeHistoryList",)
ERM_SAYS_NO = {400: "Invalid request for this product", 403: "Product not assigned to this distributor"}
KIND_OF = {CodeType.DAYS: CodeKind.DAYS, CodeType.FREE: CodeKind.FREE, CodeType.RESET: CodeKind.RESET}
TLS = ssl.create_default_context()


class RecordingSandbox(ErmSandbox):
    """The ERM sandbox, remembering every generation it refused (status and words)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.refusals: list[tuple[str, int, str]] = []

    def generate(self, product_id: str | int, code_type: CodeType, days: Any = None) -> CodeRecord:
        try:
            return super().generate(product_id, code_type, days)
        except HTTPException as exc:
            self.refusals.append((str(product_id), exc.status_code, str(exc.detail)))
            raise


# -- what a step may do -------------------------------------------------------------------------

DEVICE = st.tuples(st.sampled_from([0, 0, 1, 1, 2, 2, 3]), st.integers(0, 2))
"""(device, which of its ids: ERM id, OEM item id, seller item id); device 3 is unknown to the ERM."""
SOME_DAYS = st.sampled_from([1, 2, 5, 7, 10, 14, 20, 30])
"""Few distinct values, so that two codes of one device often carry the same days."""
DAYS = st.one_of(SOME_DAYS, st.integers(1, 30), st.integers(31, 1095), st.sampled_from([0, -1, 1096, 5000]))
PAID_DAYS = st.one_of(st.integers(0, 30), st.integers(31, 400), st.sampled_from([1095, 2000]))
REFERENCE = st.tuples(st.sampled_from(["mpesa", "cash"]), st.sampled_from(["R1", "R2", "R3", "R4", "R5", "R6"]))
ASK = st.one_of(
    st.tuples(st.just("days"), DEVICE, DAYS),
    st.tuples(st.just("days"), DEVICE, DAYS),
    st.tuples(st.just("days"), DEVICE, DAYS),
    st.tuples(st.just("paid"), DEVICE, PAID_DAYS, REFERENCE),
    st.tuples(st.just("paid"), DEVICE, PAID_DAYS, REFERENCE),
    st.tuples(st.just("reset"), DEVICE),
    st.tuples(st.just("free"), DEVICE),
)
FAULT = st.one_of(
    st.tuples(st.just("fail"), st.integers(1, 3), st.sampled_from([500, 503]),
              st.sampled_from(["any", "generation", "history"])),
    st.tuples(st.just("refuse"), st.sampled_from([400, 403])),
    st.just(("drop tokens",)),
)
LOST_ANSWER = st.one_of(st.tuples(st.just("late"), st.integers(1, 2)), st.just(("garbage",)))
SECONDS = st.one_of(
    st.sampled_from([1.0, 5.0, 6.0, 7.0]),
    st.integers(1, 59).map(float),
    st.integers(1, 60).map(lambda minutes: minutes * 60.0),
    st.integers(1, 24).map(lambda hours: hours * 3600.0),
    st.integers(1, 40).map(lambda days: days * 86400.0),
)


class IssuingMachine(RuleBasedStateMachine):
    """One example: a fresh ledger, a fresh sandbox on loopback, an engine that may crash."""

    def __init__(self, ledgers: Ledgers) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.exits = contextlib.AsyncExitStack()
        self.clock = ManualClock(START)
        self.sandbox = RecordingSandbox(clock=self.clock, device_count=1)
        self.devices: list[SandboxDevice] = self.sandbox.devices[:3]
        self.errors = ErrorLog()
        logging.getLogger("paygbot").addHandler(self.errors)
        self.ledgers = ledgers
        self.database_url = ledgers.new()
        self.url = self.run(self.exits.enter_async_context(running(self.sandbox)))
        self.engine_up = False
        self.start_engine()
        # the model: what was asked and accepted, which payment reference was stored first
        self.accepted: dict[int, tuple[str, CodeKind, int | None]] = {}
        self.stored: dict[tuple[str, str], tuple[tuple[int, int], int]] = {}
        """Payment references as first stored: (device, days)."""
        self.payments: dict[tuple[str, str], tuple[str, int, int | None]] = {}
        """Payments turned into days: (device id as paid for, days, their request)."""

    # -- plumbing ----------------------------------------------------------------------------

    def run(self, work: Awaitable[T]) -> T:
        async def wrapped() -> T:
            return await work

        return self.loop.run_until_complete(wrapped())

    def start_engine(self) -> None:
        """A new process: its own connections, its own ERM client (and login), the same ledger and ERM."""
        self.db = Database(self.database_url)
        transport = httpx.AsyncHTTPTransport(verify=TLS)  # loopback HTTP; a shared context makes restarts cheap
        self.erm = RestErm(self.url, "test@example.com", "test1234", timeout=ERM_TIMEOUT, transport=transport)
        self.engine = IssuingEngine(db=self.db, erm=self.erm, settings=SETTINGS, clock=self.clock)
        self.engine_up = True

    def stop_engine(self) -> None:
        self.engine_up = False
        self.run(self.engine.close())
        self.run(self.erm.aclose())
        self.run(self.db.dispose())

    def ref(self, device: tuple[int, int]) -> str:
        index, alias = device
        if index >= len(self.devices):
            return UNKNOWN
        sandbox_device = self.devices[index]
        return (sandbox_device.erm_id, sandbox_device.oem_item_id, sandbox_device.seller_item_id)[alias]

    # -- asking ------------------------------------------------------------------------------

    async def ask(self, what: tuple[Any, ...]) -> tuple[tuple[Any, ...], Accepted | Refused | Paid]:
        kind, device = what[0], self.ref(what[1])
        if kind == "paid":
            days, (provider, reference) = what[2], what[3]
            return what, await pay(self.engine, device, days, provider=provider, reference=reference)
        days = what[2] if kind == "days" else None
        return what, await self.engine.request(device, CodeKind(kind), days)

    def note(self, what: tuple[Any, ...], outcome: Accepted | Refused | Paid) -> None:
        """Check one answer against the rules and remember what was accepted."""
        kind, device = what[0], self.ref(what[1])
        if kind == "paid":
            key = what[3]
            if isinstance(outcome, Refused):
                self.note_not_found(device, outcome)
                return
            assert isinstance(outcome, Paid), outcome
            # applied to the device and for the days it was first stored with (a repeat changes nothing)
            assert key in self.stored, f"payment {key} applied but never stored"
            paid_for, days = self.ref(self.stored[key][0]), self.stored[key][1]
            if isinstance(outcome.outcome, PaymentHeld):  # every device has a price: only an unlocked one holds it
                assert outcome.outcome.reason is HoldReason.UNLOCKED and key not in self.payments, outcome
                return
            applied = outcome.applied
            if applied.duplicate:
                assert key in self.payments, f"a first payment {key} was called a duplicate"
                assert applied.request_id == self.payments[key][2], "a repeated reference changed its request"
                return
            assert key not in self.payments, f"payment {key} was turned into days twice"
            assert applied.days == days and applied.days_now + applied.prepaid_days == days, applied
            assert (applied.request_id is not None) == (applied.days_now > 0), applied
            self.payments[key] = (paid_for, days, applied.request_id)
            if applied.request_id is not None:
                self.accepted[applied.request_id] = (paid_for, CodeKind.DAYS, applied.days_now)
            return
        days = what[2] if kind == "days" else None
        if kind == "days" and not limits.valid_days(days):
            assert isinstance(outcome, Refused) and outcome.reason is Reason.BAD_DAYS, (what, outcome)
            return
        if isinstance(outcome, Accepted):
            assert outcome.request_id not in self.accepted
            self.accepted[outcome.request_id] = (device, CodeKind(kind), days)
            return
        assert isinstance(outcome, Refused), outcome
        if outcome.reason is Reason.STACKING:
            assert outcome.fits is not None and days is not None and outcome.fits < days, outcome
        elif outcome.reason is Reason.DAILY_LIMIT:
            assert outcome.possible_at is not None and outcome.possible_at > self.clock.now(), outcome
        elif outcome.reason in (Reason.UNKNOWN_DEVICE, Reason.ERM_UNAVAILABLE):
            self.note_not_found(device, outcome)
        else:
            assert outcome.reason is Reason.UNLOCKED and kind == "days", outcome

    def note_not_found(self, device: str, outcome: Refused) -> None:
        """Unknown to the ERM, or not known yet and the ERM could not be asked: nothing is queued."""
        if device == UNKNOWN:
            assert outcome.reason in (Reason.UNKNOWN_DEVICE, Reason.ERM_UNAVAILABLE), outcome
        else:
            assert outcome.reason is Reason.ERM_UNAVAILABLE, outcome

    def notes(self, answers: list[tuple[tuple[Any, ...], Accepted | Refused | Paid]]) -> None:
        # Concurrent payments with one reference: which one stored it first, then the one that turned it into
        # days (maybe another), then the duplicates.
        for what, outcome in answers:
            if isinstance(outcome, Paid) and outcome.stored:
                assert what[3] not in self.stored, f"payment reference {what[3]} was stored twice"
                self.stored[what[3]] = (what[1], what[2])
        for what, outcome in sorted(answers, key=lambda pair: isinstance(pair[1], Paid) and pair[1].duplicate):
            self.note(what, outcome)

    def ask_together(self, asks: list[tuple[Any, ...]]) -> None:
        """Ask all at once (while the pump the first one kicks runs), then check every answer.

        A device whose codes of today are all out (and none in flight) must not have a request
        accepted: it is refused with the time it becomes possible, or, paid, planned for a later day.
        """
        full = {what[1]: self.run(self.day_is_full(what[1])) for what in asks}

        async def together() -> list[tuple[tuple[Any, ...], Accepted | Refused | Paid]]:
            return list(await asyncio.gather(*(self.ask(what) for what in asks)))

        answers = self.run(together())
        stored_with = {what[3]: what[1] for what, outcome in answers if isinstance(outcome, Paid) and outcome.stored}
        for what, outcome in answers:
            if full[what[1]] and isinstance(outcome, Accepted):
                raise AssertionError(f"{what} accepted although today's {SETTINGS.daily_code_limit} codes are out")
            if isinstance(outcome, Paid) and not isinstance(outcome.outcome, PaymentHeld) and not outcome.duplicate:
                paid_for = stored_with.get(what[3]) or self.stored.get(what[3], (None, 0))[0]
                if full.get(paid_for) and outcome.applied.days_now:
                    assert outcome.applied.not_before is not None, outcome
                    assert outcome.applied.not_before >= self.day_end(), outcome
        self.notes(answers)

    def day_end(self) -> datetime:
        return limits.local_day(self.clock.now(), TZ)[1]

    async def day_is_full(self, device: tuple[int, int]) -> bool:
        """The device had its daily limit of codes committed today, and has none in flight."""
        if device[0] >= len(self.devices):
            return False
        today = self.clock.now().astimezone(TZ).date()
        codes = self.devices[device[0]].codes
        if sum(code.created_at.astimezone(TZ).date() == today for code in codes) < SETTINGS.daily_code_limit:
            return False
        async with self.db.read() as session:
            known = await ledger.find_device(session=session, ref=self.ref(device))
            if known is None or known.id is None:
                return False
            in_flight = select(CodeRequest.id).where(
                CodeRequest.device_id == known.id, CodeRequest.status == Status.SENDING
            )
            return (await session.exec(in_flight)).first() is None

    @rule(what=ASK)
    def ask_one(self, what: tuple[Any, ...]) -> None:
        self.ask_together([what])

    @rule(asks=st.lists(ASK, min_size=2, max_size=4))
    def ask_at_once(self, asks: list[tuple[Any, ...]]) -> None:
        """Several chats and payments in the same instant."""
        self.ask_together(asks)

    @rule(device=DEVICE, days=st.lists(SOME_DAYS, min_size=3, max_size=8), every=st.sampled_from([0.0, 0.0, 7.0]))
    def rush(self, device: tuple[int, int], days: list[int], every: float) -> None:
        """An agent taps /days again and again for one device (all at once, or one every 7 s as the
        pump runs): pacing, the daily limit and stacking at once, maybe across midnight."""
        if not every:
            self.ask_together([("days", device, n) for n in days])
            return
        for n in days:
            self.ask_together([("days", device, n)])
            self.clock.advance(every)
            self.run(self.engine.drain())

    # -- the ERM misbehaves ----------------------------------------------------------------------

    @rule(fault=FAULT)
    def erm_misbehaves(self, fault: tuple[Any, ...]) -> None:
        """- fail: the next ``n`` requests (of any path, generations, or history reads) answer 5xx;
        - refuse: the next generation is refused (4xx): that request ends REFUSED with the ERM's words;
        - drop tokens: every access token is refused from now on (the client logs in again)."""
        match fault:
            case ("fail", n, status, where):
                paths = {"any": None, "generation": GENERATION_PATHS, "history": HISTORY_PATHS}[where]
                self.sandbox.fail_next(n, status, paths=paths)
            case ("refuse", status):
                self.sandbox.fail_next(1, status, body={"message": ERM_SAYS_NO[status]}, paths=GENERATION_PATHS)
            case ("drop tokens",):
                self.sandbox.expire_tokens()
            case _:
                raise AssertionError(fault)

    @rule(fault=LOST_ANSWER)
    def erm_answer_is_lost(self, fault: tuple[Any, ...]) -> None:
        """The outcome of the next generation(s) is unknown to the client: the engine must settle it.

        - late: the next ``n`` codes are committed but answered after the client gave up;
        - garbage: the next generation answers 200 with no code (nothing was committed)."""
        match fault:
            case ("late", n):
                self.sandbox.late_next(n, LATE_BY)
            case ("garbage",):
                self.sandbox.fail_next(1, 200, body={"message": "Succeed"}, paths=GENERATION_PATHS)
            case _:
                raise AssertionError(fault)

    # -- time, the pump, crashes ----------------------------------------------------------------

    @rule(seconds=SECONDS)
    def time_passes(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule(zone=st.sampled_from(["local", "UTC"]), before=st.integers(1, 40))
    def just_before_midnight(self, zone: str, before: int) -> None:
        """Local days and the ERM's UTC days end at different times: both edges are worth a visit."""
        target = limits.local_day(self.clock.now(), TZ if zone == "local" else UTC)[1] - timedelta(seconds=before)
        if target > self.clock.now():
            self.clock.set(target)

    @rule()
    def pump(self) -> None:
        self.run(self.engine.pump())
        self.run(self.engine.drain())

    @rule(times=st.integers(1, 6), seconds=st.sampled_from([6.0, 6.5, 8.0, 30.0]))
    def pump_as_time_passes(self, times: int, seconds: float) -> None:
        for _ in range(times):
            self.clock.advance(seconds)
            self.run(self.engine.pump())
            self.run(self.engine.drain())

    @rule()
    def restart(self) -> None:
        self.stop_engine()
        self.start_engine()

    @rule(
        wait=st.sampled_from([0.0, 6.0]),
        pick=st.integers(0, 3),
        then=st.sampled_from(["nothing sent", "code committed", "answer late"]),
    )
    def crash_while_sending(self, wait: float, pick: int, then: str) -> None:
        """``wait`` seconds on, a process claims a due request (SENDING), maybe gets its code committed,
        and dies before recording anything; a new process starts on the same ledger and ERM."""
        self.clock.advance(wait)

        async def claim_and_die() -> None:
            now = self.clock.now()
            async with self.db.read() as session:
                due = await ledger.due_requests(session=session, now=now, gap_edge=now - GAP, exclude=[], limit=50)
            if not due:
                return
            request = due[pick % len(due)]
            assert request.id is not None
            async with self.db.write() as session:
                claimed = await ledger.claim(
                    session=session, request_id=request.id, now=now, settle_after=now + self.engine.settle_delay
                )
            assert claimed
            if then == "nothing sent":
                return
            if then == "answer late":
                self.sandbox.late_next(1, LATE_BY)
            with contextlib.suppress(ErmError):
                if request.kind is CodeKind.DAYS:
                    assert request.days is not None
                    await self.erm.days_code(request.device_ref, request.days)
                elif request.kind is CodeKind.FREE:
                    await self.erm.free_code(request.device_ref)
                else:
                    await self.erm.reset_code(request.device_ref)

        self.run(claim_and_die())
        self.stop_engine()
        self.start_engine()

    # -- the rules, after every step ------------------------------------------------------------

    @invariant()
    def rules_hold(self) -> None:
        if self.engine_up:
            self.run(self.engine.drain())
            self.check(final=False)

    async def read_ledger(self) -> tuple[list[CodeRequest], list[Device], list[Payment]]:
        async with self.db.read() as session:
            requests = list((await session.exec(select(CodeRequest).order_by(CodeRequest.id))).all())
            devices = list((await session.exec(select(Device))).all())
            payments = list((await session.exec(select(Payment))).all())
        return requests, devices, payments

    def check(self, *, final: bool) -> None:
        now = self.clock.now()
        # The sandbox is read first: a code the ledger holds was committed before it was recorded.
        committed = {id(device): list(device.codes) for device in self.sandbox.devices}
        requests, devices, payments = self.run(self.read_ledger())

        assert not self.errors.records, [record.getMessage() for record in self.errors.records]

        # pacing, and the ERM never had to say no
        assert not self.sandbox.refusals, f"the ERM refused generations: {self.sandbox.refusals}"
        for device in self.sandbox.devices:
            for before, after in itertools.pairwise(committed[id(device)]):
                assert after.created_at - before.created_at >= GAP, f"{device.erm_id}: codes too close"

        # stacking
        for device in self.sandbox.devices:
            assert not device.overflowed, device.erm_id
            if device.credit_until is not None:
                assert device.credit_until - now <= MAX_STACKED, (device.erm_id, device.credit_until, now)
        for row in devices:
            if row.credit_until is not None:
                assert row.credit_until - now <= MAX_STACKED, (row.erm_id, row.credit_until, now)
        # ... and the ledger never believes a device has less credit than it has (stacking is
        # reckoned from the ledger's figure), except while a code is committed but not yet recorded
        in_flight = {request.device_id for request in requests if request.status is Status.SENDING}
        for row in devices:
            device = self.sandbox.find(row.erm_id)
            assert device is not None, row
            if row.id in in_flight or device.credit_until is None:
                continue
            assert row.credit_until is not None and row.credit_until >= device.credit_until, (
                f"{row.erm_id}: the ledger says credit until {row.credit_until}, the device {device.credit_until}"
            )

        # exactly once
        held: dict[int, dict[str, CodeRequest]] = defaultdict(dict)
        sending: dict[int, list[CodeRequest]] = defaultdict(list)
        for request in requests:
            assert (request.code_hex is not None) == (request.status in GENERATED_STATUSES), request
            sandbox_device = self.sandbox.find(request.device_ref)
            assert sandbox_device is not None, f"request {request.id} was queued for a device the ERM does not know"
            if request.status is Status.SENDING:
                sending[id(sandbox_device)].append(request)
            if request.code_hex is None:
                continue
            assert request.code_hex not in held[id(sandbox_device)], f"code {request.code_hex} held twice"
            held[id(sandbox_device)][request.code_hex] = request
        for device in self.sandbox.devices:
            codes = {code.hex: code for code in committed[id(device)]}
            for hex_code, request in held[id(device)].items():
                assert hex_code in codes, f"request {request.id} holds code {hex_code} the ERM never committed"
                code = codes[hex_code]
                assert KIND_OF[code.code_type] is request.kind, (request, code)
                assert request.kind is not CodeKind.DAYS or code.code_days == request.days, (request, code)
            loose = [code for code in committed[id(device)] if code.hex not in held[id(device)]]
            if final:
                assert not loose, f"{device.erm_id}: committed codes no request holds: {loose}"
                continue
            waiting = sending[id(device)]
            assert len(loose) <= len(waiting), f"{device.erm_id}: codes no request holds: {loose}"
            for code in loose:
                assert any(
                    request.sent_at is not None
                    and request.sent_at <= code.created_at
                    and request.kind is KIND_OF[code.code_type]
                    and (request.kind is not CodeKind.DAYS or request.days == code.code_days)
                    for request in waiting
                ), f"{device.erm_id}: code {code.number} belongs to no request in flight"

        # the daily limit, in local days (a code no request holds yet counts too)
        for device in self.sandbox.devices:
            per_day = Counter(code.created_at.astimezone(TZ).date() for code in committed[id(device)])
            busiest = max(per_day.values(), default=0)
            assert busiest <= SETTINGS.daily_code_limit, f"{device.erm_id}: {per_day}"

        # one payment reference, one payment, at most one request; paid days are conserved
        stored = Counter((payment.provider, payment.reference) for payment in payments)
        assert all(count == 1 for count in stored.values()), stored
        assert set(stored) == set(self.stored), (set(stored), set(self.stored))
        by_payment = Counter(request.payment_id for request in requests if request.payment_id is not None)
        assert all(count == 1 for count in by_payment.values()), by_payment
        paid: Counter[int] = Counter()
        for payment in payments:
            key = (payment.provider, payment.reference)
            device, days = self.stored[key]
            assert payment.account == self.ref(device), payment
            if key in self.payments:  # turned into days
                assert (payment.status, payment.days) == (PaymentStatus.MATCHED, days), payment
            else:  # kept for a manager: the device was unlocked
                assert (payment.status, payment.days) == (PaymentStatus.UNMATCHED, 0), payment
            assert payment.device_id is not None
            paid[payment.device_id] += payment.days
        given: Counter[int] = Counter()
        for request in requests:
            if request.source in (Source.PAYMENT, Source.PREPAID):
                assert request.days is not None
                given[request.device_id] += request.days
        for row in devices:
            assert row.id is not None and row.prepaid_days >= 0, row
            assert paid[row.id] == given[row.id] + row.prepaid_days, (row.erm_id, paid[row.id], given[row.id])

        # nothing lost: every accepted request is in the ledger as asked, and ends well
        by_id = {request.id: request for request in requests}
        for request_id, (device_ref, kind, days) in self.accepted.items():
            request = by_id.get(request_id)
            assert request is not None, f"accepted request {request_id} is not in the ledger"
            # a payment's days are asked under the device's label, for the device paid for
            same_device = self.sandbox.find(request.device_ref) is self.sandbox.find(device_ref)
            as_asked = request.device_ref == device_ref or (request.source is Source.PAYMENT and same_device)
            assert as_asked and (request.kind, request.days) == (kind, days), request
        for request in requests:
            if request.status is Status.REFUSED:
                assert request.reason, request
            if request.status is Status.FAILED:
                assert request.source is Source.CHAT and request.reason, request
                assert request.not_before - request.created_at > GIVE_UP_AFTER, request
            if request.id in self.accepted and request.status is Status.REFUSED:
                # accepted, so only the ERM itself may have refused it, in its own words
                assert request.reason in ERM_SAYS_NO.values(), request
            if final:
                assert request.status not in OPEN_STATUSES, f"request {request.id} is still {request.status}"

    def run_dry(self) -> None:
        """The ERM recovers; the clock moves on and the pump runs until nothing is left to do."""
        self.sandbox.clear_faults()
        before: list[tuple[int | None, Status]] = []
        for _ in range(400):
            self.run(self.engine.pump())
            self.run(self.engine.drain())
            requests, _, _ = self.run(self.read_ledger())
            waiting = [request for request in requests if request.status in OPEN_STATUSES]
            if not waiting:
                return
            now = self.clock.now()
            state = [(request.id, request.status) for request in waiting]
            later = [request.not_before for request in waiting if request.not_before > now]
            if state == before and later:
                # nothing moved: what is left waits for a later time (a deferred day, a backoff)
                self.clock.advance(max(GAP.total_seconds(), (min(later) - now).total_seconds()))
            else:
                until = min(request.not_before for request in waiting) - now
                self.clock.advance(max(GAP.total_seconds(), until.total_seconds()))
            before = state
        raise AssertionError(f"the queue never ran dry: {waiting}")

    def room_opens(self) -> None:
        """Prepaid days go out when room opens: let the credit of every device holding some run out."""
        _, devices, _ = self.run(self.read_ledger())
        holding = {row.id: row.prepaid_days for row in devices if row.prepaid_days > 0 and not row.unlocked}
        if not holding:
            return
        ends = [row.credit_until for row in devices if row.id in holding and row.credit_until is not None]
        self.clock.set(max([self.clock.now(), *ends]) + timedelta(minutes=2))
        self.run_dry()
        _, devices, _ = self.run(self.read_ledger())
        for row in devices:
            if row.id in holding:
                expected = holding[row.id] - min(holding[row.id], SETTINGS.max_stacked_days)
                assert row.prepaid_days == expected, f"{row.erm_id}: {row.prepaid_days} prepaid days, not {expected}"

    def teardown(self) -> None:
        try:
            if sys.exc_info()[0] is None:  # the steps passed: now the end state
                self.run_dry()
                self.check(final=True)
                self.room_opens()
                self.check(final=True)
        finally:
            logging.getLogger("paygbot").removeHandler(self.errors)
            try:
                if self.engine_up:
                    self.stop_engine()
                self.run(self.exits.aclose())
                self.loop.run_until_complete(self.loop.shutdown_asyncgens())
                self.loop.run_until_complete(self.loop.shutdown_default_executor())
            finally:
                self.loop.close()
                self.ledgers.drop(self.database_url)


def test_any_sequence_keeps_the_rules(ledgers: Ledgers) -> None:
    run_state_machine_as_test(
        lambda: IssuingMachine(ledgers),
        settings=settings(
            max_examples=30,
            stateful_step_count=40,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
        ),
    )


@pytest.mark.parametrize("carried_over", ["queue and payments", "a retry and a queue"])
def test_a_day_gets_no_more_than_the_limit(
    carried_over: str, ledgers: Ledgers
) -> None:
    """The machine's daily-limit failures, shortened and replayed step by step (limit 4 a local day).

    - queue and payments: 10 s before midnight, four /days for a device (one goes out at once, the
      queue runs past midnight), then four payments for it: today is full, so each payment is planned
      for tomorrow 00:00, where two of the /days land too (before the claim-time check: six codes).
    - a retry and a queue: 5 s before midnight a /free meets an ERM 503 and is retried after midnight;
      then four /days are accepted, today having no code and nothing planned before midnight; they
      queue behind the /free (before the claim-time check: five codes tomorrow).
    """
    machine = IssuingMachine(ledgers)
    try:
        if carried_over == "queue and payments":
            machine.just_before_midnight(zone="local", before=10)
            machine.rush(device=(1, 0), days=[1, 1, 1, 1], every=0.0)
            machine.rules_hold()
            machine.ask_at_once(asks=[("paid", (1, 0), 1, ("mpesa", f"R{n}")) for n in range(1, 5)])
            machine.rules_hold()
        else:
            machine.just_before_midnight(zone="local", before=5)
            machine.erm_misbehaves(fault=("fail", 1, 503, "generation"))
            machine.ask_one(what=("free", (0, 0)))
            machine.rules_hold()
            machine.rush(device=(0, 0), days=[1, 1, 1, 1], every=0.0)
            machine.rules_hold()
    finally:
        machine.teardown()  # the queue runs dry, then every rule is checked
