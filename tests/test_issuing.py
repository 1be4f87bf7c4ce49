"""The issuing engine against the ERM sandbox, with a clock moved by hand (no real 6 s waits)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import event
from sqlmodel import select

from bot.clock import ManualClock
from bot.config import Settings
from bot.erm.backend import Api, ErmBackend
from bot.issuing import Accepted, IssuingEngine, PaymentApplied, PaymentHeld, Reason, Refused
from bot.standins.erm import ErmSandbox
from storage import ledger
from storage.db import Database, sync_engine
from storage.models import CodeKind, CodeRequest, Device, Payment, PaymentStatus, Status
from tests.support import erm as erm_support
from tests.support.databases import statements
from tests.support.erm import ErmPaths
from tests.support.settings import make_settings
from tests.support.waiting import eventually

DEVICE = "TEST2503000017"


async def settle(engine: IssuingEngine) -> None:
    """Pump until nothing more starts at this moment of the manual clock."""
    for _ in range(20):
        await engine.pump()
        await engine.drain()


async def requests(db: Database) -> list[CodeRequest]:
    async with db.read() as session:
        return list((await session.exec(select(CodeRequest).order_by(CodeRequest.id))).all())  # type: ignore[arg-type]


def committed(sandbox: ErmSandbox, device: str = DEVICE) -> list[str]:
    return [record.hex for record in sandbox.device(device).codes]


PRICE = Decimal(25)
"""The daily price (KES) :func:`pay` gives a device that has none: a payment of ``days`` is ``days`` × 25."""


@dataclass(frozen=True)
class Paid:
    """What :func:`pay` got: the engine's answer, and whether this call stored the payment (the first of
    its provider and reference)."""

    outcome: PaymentApplied | PaymentHeld
    stored: bool

    @property
    def duplicate(self) -> bool:
        return isinstance(self.outcome, PaymentApplied) and self.outcome.duplicate

    @property
    def applied(self) -> PaymentApplied:
        assert isinstance(self.outcome, PaymentApplied), self.outcome
        return self.outcome


async def pay(engine: IssuingEngine, device_ref: str, days: int, *, provider: str, reference: str) -> Paid | Refused:
    """Money for ``days`` as the payments service brings it to the engine: the device resolved, the payment
    stored once per (provider, reference), then applied to the device it was stored for."""
    device_id = await engine.resolve_device(device_ref)
    if isinstance(device_id, Refused):
        return device_id
    async with engine.db.write() as session:
        device = await ledger.lock_device(session=session, device_id=device_id)
        if device.daily_price is None:
            device.daily_price, device.currency = PRICE, "KES"
            session.add(device)
        payment, stored = await ledger.add_payment(session=session, payment=Payment(
            provider=provider, reference=reference, amount=days * PRICE, currency="KES", account=device_ref,
            received_at=engine.clock.now(), device_id=device_id, status=PaymentStatus.PENDING,
        ))
    assert payment.id is not None and payment.device_id is not None
    return Paid(await engine.apply_payment(payment.id, payment.device_id), stored)


async def test_a_days_code_is_issued_and_recorded(engine: IssuingEngine, erm_sandbox: ErmSandbox, db: Database,
                                                  clock: ManualClock) -> None:
    accepted = await engine.request(DEVICE, CodeKind.DAYS, 30, chat_id=77)
    assert isinstance(accepted, Accepted) and accepted.eta == timedelta(0)
    await settle(engine)
    [row] = await requests(db)
    record = erm_sandbox.device(DEVICE).codes[0]
    assert row.status is Status.ISSUED and row.code == record.keypad and row.code_hex == record.hex
    assert row.issued_at == clock.now() and row.credit_until == clock.now() + timedelta(days=30)
    assert row.chat_id == 77 and row.attempts == 1


async def test_a_free_devices_request_is_claimed_by_its_own_admission(engine: IssuingEngine, erm_sandbox: ErmSandbox,
                                                                     db: Database, clock: ManualClock) -> None:
    """Nothing else of the device open and its gap over: the transaction that admits the request claims it, and it
    goes to the ERM without waiting for a pump; one asked meanwhile waits its turn in the queue."""
    first = await engine.request(DEVICE, CodeKind.DAYS, 1)
    second = await engine.request(DEVICE, CodeKind.DAYS, 2)
    assert isinstance(first, Accepted) and isinstance(second, Accepted) and second.eta == timedelta(seconds=6)
    rows = await requests(db)
    assert rows[0].status in (Status.SENDING, Status.ISSUED) and rows[0].attempts == 1
    assert rows[0].sent_at == clock.now() and rows[1].status is Status.QUEUED
    await engine.drain()
    rows = await requests(db)
    assert [row.status for row in rows] == [Status.ISSUED, Status.QUEUED] and len(committed(erm_sandbox)) == 1
    clock.advance(6)
    await settle(engine)
    assert [row.status for row in await requests(db)] == [Status.ISSUED, Status.ISSUED]


async def test_an_update_asking_twice_makes_one_request_and_its_admission_is_three_statements(
    engine: IssuingEngine, db: Database, clock: ManualClock
) -> None:
    """A request is admitted in three statements: the device, its limits read with whether its plan is paid off
    and whether its update was handled already, and the new row. The same update again (Telegram sends one again
    after a crash) gets the first one's request; the same key two days later is another update."""
    await engine.request(DEVICE, CodeKind.DAYS, 1)  # (the device in the ledger, its statements compiled once)
    await engine.drain()
    with statements(db) as admitted:
        first = await engine.request(DEVICE, CodeKind.DAYS, 3, key="tg:41")
    assert admitted == ["SELECT", "SELECT", "INSERT"], admitted
    again = await engine.request(DEVICE, CodeKind.DAYS, 3, key="tg:41")
    assert isinstance(first, Accepted) and isinstance(again, Accepted) and again.request_id == first.request_id
    assert len(await requests(db)) == 2
    clock.advance(days=2, seconds=1)
    later = await engine.request(DEVICE, CodeKind.DAYS, 3, key="tg:41")
    assert isinstance(later, Accepted) and later.request_id != first.request_id and len(await requests(db)) == 3


async def test_a_code_answered_after_its_device_row_was_merged_into_another_is_recorded_on_that_row(
    engine: IssuingEngine, erm_sandbox: ErmSandbox, db: Database, clock: ManualClock
) -> None:
    """While the ERM was asked for a device's code, its row was found to be one device with an older row and merged
    into it: the code, the credit it gives and the device's pacing go to the row that kept the device."""
    async with db.write() as session:
        older, _ = await ledger.add_device(session=session, ids=["OLDER2503000001"], now=clock.now())
        older.credit_until = clock.now() + timedelta(days=10)
        session.add(older)
    erm_sandbox.late_next(1, delay=1.0)  # the answer comes a second after the code was committed
    accepted = await engine.request(DEVICE, CodeKind.DAYS, 30)
    assert isinstance(accepted, Accepted)
    await eventually(lambda: len(committed(erm_sandbox)) == 1, "the code committed, its answer held back")
    async with db.write() as session:
        _, merged = await ledger.add_device(session=session, ids=[DEVICE, "OLDER2503000001"], now=clock.now())
    assert merged
    await engine.drain()
    [row] = await requests(db)
    assert row.status is Status.ISSUED and row.code_hex == committed(erm_sandbox)[0] and row.device_id == older.id
    async with db.read() as session:
        kept = await ledger.get_device(session=session, device_id=older.id or 0)
        devices = list((await session.exec(select(Device.id))).all())
    assert kept is not None and kept.credit_until == clock.now() + timedelta(days=40)
    assert kept.last_generation_at == clock.now() and devices == [older.id]


async def test_a_quiet_tick_of_the_pump_is_one_read_and_a_request_still_goes_at_its_turn(
    engine: IssuingEngine, erm_sandbox: ErmSandbox, db: Database, clock: ManualClock
) -> None:
    """Nothing to settle and no prepaid days to look at (once a minute): what waits on the ERM's answers, on people
    and on its turn is read in one transaction. A request queued behind its device's gap goes out at the tick after."""
    first = await engine.request(DEVICE, CodeKind.DAYS, 1)
    second = await engine.request(DEVICE, CodeKind.DAYS, 2)
    assert isinstance(first, Accepted) and isinstance(second, Accepted)
    await settle(engine)  # (the first tick also looked at prepaid days)
    begun: list[object] = []

    def began(connection: object) -> None:
        begun.append(connection)

    event.listen(sync_engine(db.reader), "begin", began)
    try:
        await engine.pump()
    finally:
        event.remove(sync_engine(db.reader), "begin", began)
    assert len(begun) == 1
    assert [row.status for row in await requests(db)] == [Status.ISSUED, Status.QUEUED]
    clock.advance(6)
    await engine.pump()
    await engine.drain()
    assert [row.status for row in await requests(db)] == [Status.ISSUED, Status.ISSUED]
    assert len(committed(erm_sandbox)) == 2


async def test_an_engine_that_does_not_pump_by_itself_sends_nothing_at_admission(
    engine: IssuingEngine, erm_sandbox: ErmSandbox, db: Database
) -> None:
    engine.kick = lambda: None  # type: ignore[method-assign]  # a queue-only process: its pump steps send
    assert isinstance(await engine.request(DEVICE, CodeKind.DAYS, 1), Accepted)
    await engine.drain()
    [row] = await requests(db)
    assert row.status is Status.QUEUED and row.attempts == 0 and erm_sandbox.generations == 0
    await settle(engine)
    [row] = await requests(db)
    assert row.status is Status.ISSUED and len(committed(erm_sandbox)) == 1


@pytest.mark.parametrize("days", [0, -5, 1096, None])
async def test_bad_days_are_refused_before_the_erm(engine: IssuingEngine, erm_sandbox: ErmSandbox, db: Database,
                                                   days: int | None) -> None:
    refused = await engine.request(DEVICE, CodeKind.DAYS, days)
    assert isinstance(refused, Refused) and refused.reason is Reason.BAD_DAYS
    assert len(erm_sandbox.calls) == 0 and await requests(db) == []


@pytest.mark.parametrize("device", ["", "x" * 500, "'; DROP TABLE device;--", "a/b"])
async def test_bad_device_ids_are_refused_before_the_erm(engine: IssuingEngine, erm_sandbox: ErmSandbox,
                                                         device: str) -> None:
    refused = await engine.request(device, CodeKind.DAYS, 5)
    assert isinstance(refused, Refused) and refused.reason is Reason.BAD_DEVICE
    assert len(erm_sandbox.calls) == 0


async def test_unknown_device_is_refused_with_the_erm_words(engine: IssuingEngine, erm_sandbox: ErmSandbox,
                                                            db: Database) -> None:
    refused = await engine.request("NOSUCH0001", CodeKind.DAYS, 5)
    assert isinstance(refused, Refused) and refused.reason is Reason.UNKNOWN_DEVICE
    assert refused.words == "Product NOSUCH0001 not found"
    assert erm_sandbox.generations == 0 and await requests(db) == []


async def test_all_ids_of_a_device_share_one_pacing_clock(engine: IssuingEngine, erm_sandbox: ErmSandbox,
                                                          clock: ManualClock, db: Database) -> None:
    for ref in ("TEST2503000017", "SELLER2503000042", "64ba2e1eaa6c7f107d7a8918"):
        assert isinstance(await engine.request(ref, CodeKind.DAYS, 1), Accepted)
    await settle(engine)
    assert len(committed(erm_sandbox)) == 1
    clock.advance(6)
    await settle(engine)
    clock.advance(6)
    await settle(engine)
    assert len(committed(erm_sandbox)) == 3
    assert {row.device_id for row in await requests(db)} == {(await requests(db))[0].device_id}


async def test_pacing_waits_exactly_the_gap_and_no_longer(engine: IssuingEngine, erm_sandbox: ErmSandbox,
                                                          clock: ManualClock) -> None:
    accepted = [await engine.request(DEVICE, CodeKind.DAYS, 2) for _ in range(3)]
    assert [a.eta for a in accepted if isinstance(a, Accepted)] == [timedelta(0), timedelta(seconds=6), timedelta(seconds=12)]
    await settle(engine)
    assert len(committed(erm_sandbox)) == 1
    clock.advance(5.9)
    await settle(engine)
    assert len(committed(erm_sandbox)) == 1
    clock.advance(0.1)
    await settle(engine)
    assert len(committed(erm_sandbox)) == 2
    times = [record.created_at for record in erm_sandbox.device(DEVICE).codes]
    assert times[1] - times[0] == timedelta(seconds=6)
    assert erm_sandbox.generations == 2  # never refused by the ERM for pacing


async def test_different_devices_never_wait_for_each_other(engine: IssuingEngine, erm_sandbox: ErmSandbox) -> None:
    devices = [device.ids[1] for device in erm_sandbox.devices[2:12]]
    for device in devices:
        assert isinstance(await engine.request(device, CodeKind.DAYS, 7), Accepted)
    await settle(engine)
    assert all(len(erm_sandbox.device(device).codes) == 1 for device in devices)


async def test_daily_limit_in_the_local_zone(erm: ErmBackend, db: Database, erm_sandbox: ErmSandbox) -> None:
    clock = ManualClock(datetime(2026, 11, 22, 6, 0, tzinfo=UTC))  # 09:00 in Nairobi
    erm_sandbox.clock = clock
    engine = IssuingEngine(db=db, erm=erm, settings=make_settings(PAYGBOT_TIMEZONE="Africa/Nairobi"), clock=clock)
    for _ in range(10):
        assert isinstance(await engine.request(DEVICE, CodeKind.DAYS, 1), Accepted)
    refused = await engine.request(DEVICE, CodeKind.DAYS, 1)
    assert isinstance(refused, Refused) and refused.reason is Reason.DAILY_LIMIT
    assert refused.possible_at == datetime(2026, 11, 22, 21, 0, tzinfo=UTC)  # midnight in Nairobi
    kept = (await requests(db))[-1]
    assert (kept.status, kept.reason, kept.refused_until) == (Status.REFUSED, "daily_limit", refused.possible_at)
    for _ in range(10):
        await settle(engine)
        clock.advance(6)
    assert len(committed(erm_sandbox)) == 10
    assert isinstance(await engine.request(DEVICE, CodeKind.DAYS, 1), Refused)
    clock.set(datetime(2026, 11, 22, 21, 0, tzinfo=UTC))
    assert isinstance(await engine.request(DEVICE, CodeKind.DAYS, 1), Accepted)
    await engine.close()


async def test_stacking_counts_credit_and_queued_days(engine: IssuingEngine, erm_sandbox: ErmSandbox,
                                                      clock: ManualClock) -> None:
    assert isinstance(await engine.request(DEVICE, CodeKind.DAYS, 1000), Accepted)
    refused = await engine.request(DEVICE, CodeKind.DAYS, 100)  # 1000 queued, not yet issued
    assert isinstance(refused, Refused) and refused.reason is Reason.STACKING and refused.fits == 95
    await settle(engine)
    clock.advance(days=10)
    refused = await engine.request(DEVICE, CodeKind.DAYS, 106)
    assert isinstance(refused, Refused) and refused.fits == 105
    assert isinstance(await engine.request(DEVICE, CodeKind.DAYS, 105), Accepted)
    await settle(engine)
    assert not erm_sandbox.device(DEVICE).overflowed
    assert [record.code_days for record in erm_sandbox.device(DEVICE).codes] == [1000, 105]


async def test_credit_follows_free_and_reset(engine: IssuingEngine, db: Database, clock: ManualClock) -> None:
    await engine.request(DEVICE, CodeKind.DAYS, 10)
    await settle(engine)
    clock.advance(6)
    await engine.request(DEVICE, CodeKind.FREE)
    await settle(engine)
    refused = await engine.request(DEVICE, CodeKind.DAYS, 10)
    assert isinstance(refused, Refused) and refused.reason is Reason.UNLOCKED
    clock.advance(6)
    await engine.request(DEVICE, CodeKind.RESET)
    await settle(engine)
    async with db.read() as session:
        device = await ledger.find_device(session=session, ref=DEVICE)
    assert device is not None and not device.unlocked and device.credit_until == clock.now()
    clock.advance(6)
    assert isinstance(await engine.request(DEVICE, CodeKind.DAYS, 1095), Accepted)


async def test_an_erm_refusal_ends_the_request_with_its_words(engine: IssuingEngine, erm_sandbox: ErmSandbox,
                                                              db: Database, clock: ManualClock) -> None:
    await engine.request(DEVICE, CodeKind.DAYS, 5)  # the device becomes known
    await settle(engine)
    erm_sandbox.fail_next(1, status=403, body={"message": "Product is not assigned to you"})
    clock.advance(6)
    await engine.request(DEVICE, CodeKind.DAYS, 5)
    await settle(engine)
    rows = await requests(db)
    assert rows[-1].status is Status.REFUSED and rows[-1].reason == "Product is not assigned to you"
    assert len(committed(erm_sandbox)) == 1


async def test_unreachable_erm_is_retried_with_backoff(engine: IssuingEngine, erm_sandbox: ErmSandbox,
                                                       db: Database, clock: ManualClock, erm_paths: ErmPaths) -> None:
    await engine.request(DEVICE, CodeKind.DAYS, 5)
    erm_sandbox.fail_next(2, status=503, paths=erm_paths.days)
    await settle(engine)
    [row] = await requests(db)
    assert row.status is Status.QUEUED and row.not_before == clock.now() + timedelta(seconds=5)
    clock.advance(4.9)
    await settle(engine)
    assert (await requests(db))[0].attempts == 1
    clock.advance(0.1)
    await settle(engine)
    [row] = await requests(db)
    assert row.attempts == 2 and row.not_before == clock.now() + timedelta(seconds=10)
    clock.advance(10)
    await settle(engine)
    [row] = await requests(db)
    assert row.status is Status.ISSUED and row.attempts == 3 and len(committed(erm_sandbox)) == 1


async def test_a_timeout_is_settled_from_the_history_not_asked_again(
    db: Database, erm_url: str, erm_sandbox: ErmSandbox, clock: ManualClock, erm_api: Api
) -> None:
    settings = make_settings(ERM_TIMEOUT_SECONDS=0.3)
    async with erm_support.client(erm_api, erm_url, timeout=0.3) as erm:
        engine = IssuingEngine(db=db, erm=erm, settings=settings, clock=clock)
        await engine.request(DEVICE, CodeKind.DAYS, 9)
        erm_sandbox.late_next(1, delay=1.0)
        await settle(engine)
        [row] = await requests(db)
        assert row.status is Status.SENDING and len(committed(erm_sandbox)) == 1
        clock.advance(5.3)  # the request's time limit and a grace period
        await settle(engine)
        [row] = await requests(db)
        assert row.status is Status.ISSUED and row.code_hex == committed(erm_sandbox)[0]
        assert row.credit_until == row.issued_at + timedelta(days=9)  # type: ignore[operator]
        assert erm_sandbox.generations == 1
        await engine.close()


async def _crashed_while_sending(engine: IssuingEngine, db: Database, clock: ManualClock) -> int:
    """Queue a request and claim it as a dying process would, without asking the ERM."""
    accepted = await engine.request(DEVICE, CodeKind.DAYS, 4)
    assert isinstance(accepted, Accepted)
    async with db.write() as session:
        assert await ledger.claim(session=session, request_id=accepted.request_id, now=clock.now(),
                                  settle_after=clock.now() + engine.settle_delay)
    return accepted.request_id


@pytest.fixture
async def crashed(db: Database, erm: ErmBackend, settings: Settings, clock: ManualClock) -> AsyncIterator[int]:
    """A request left SENDING by an engine that died (its pump never ran)."""
    dead = IssuingEngine(db=db, erm=erm, settings=settings, clock=clock)
    dead.kick = lambda: None  # type: ignore[method-assign]
    yield await _crashed_while_sending(dead, db, clock)


async def test_crash_before_the_erm_committed_sends_again(
    crashed: int, db: Database, erm: ErmBackend, settings: Settings, clock: ManualClock, erm_sandbox: ErmSandbox
) -> None:
    restarted = IssuingEngine(db=db, erm=erm, settings=settings, clock=clock)
    await settle(restarted)
    assert erm_sandbox.generations == 0  # not before the settle time
    clock.advance(7)
    await settle(restarted)
    [row] = await requests(db)
    assert row.status is Status.ISSUED and len(committed(erm_sandbox)) == 1 and row.attempts == 2
    await restarted.close()


async def test_crash_after_the_erm_committed_takes_the_committed_code(
    crashed: int, db: Database, erm: ErmBackend, settings: Settings, clock: ManualClock, erm_sandbox: ErmSandbox
) -> None:
    from bot.erm.models import CodeType

    record = erm_sandbox.generate(DEVICE, CodeType.DAYS, 4)  # the ERM committed; the answer was lost
    restarted = IssuingEngine(db=db, erm=erm, settings=settings, clock=clock)
    clock.advance(7)
    await settle(restarted)
    [row] = await requests(db)
    assert row.status is Status.ISSUED and row.code_hex == record.hex and row.erm_code_number == record.number
    assert erm_sandbox.generations == 0 and len(committed(erm_sandbox)) == 1
    await restarted.close()


async def test_one_payment_reference_one_code(engine: IssuingEngine, erm_sandbox: ErmSandbox, db: Database) -> None:
    async def pay_once() -> Paid | Refused:
        return await pay(engine, DEVICE, 30, provider="webhook", reference="PAY-1")

    outcomes = await asyncio.gather(*(pay_once() for _ in range(5)))
    assert sorted(o.duplicate for o in outcomes if isinstance(o, Paid)) == [False, True, True, True, True]
    assert sorted(o.stored for o in outcomes if isinstance(o, Paid)) == [False, False, False, False, True]
    await settle(engine)
    again = await pay_once()
    assert isinstance(again, Paid) and again.duplicate and not again.stored
    await settle(engine)
    assert len(committed(erm_sandbox)) == 1 and len(await requests(db)) == 1


async def test_a_paid_request_past_the_daily_limit_waits_for_the_next_day(
    engine: IssuingEngine, erm_sandbox: ErmSandbox, db: Database, clock: ManualClock
) -> None:
    for _ in range(10):
        await engine.request(DEVICE, CodeKind.DAYS, 1)
        await settle(engine)
        clock.advance(6)
    paid = await pay(engine, DEVICE, 10, provider="cash", reference="C-9")
    midnight = datetime(2026, 11, 23, tzinfo=UTC)
    assert isinstance(paid, Paid) and paid.applied.days_now == 10 and paid.applied.not_before == midnight
    clock.set(midnight - timedelta(seconds=1))
    await settle(engine)
    assert len(committed(erm_sandbox)) == 10
    clock.set(midnight)
    await settle(engine)
    assert len(committed(erm_sandbox)) == 11 and (await requests(db))[-1].status is Status.ISSUED


async def test_days_that_do_not_fit_are_kept_as_prepaid(
    engine: IssuingEngine, erm_sandbox: ErmSandbox, db: Database, clock: ManualClock
) -> None:
    await engine.request(DEVICE, CodeKind.DAYS, 1000)
    await settle(engine)
    clock.advance(6)
    paid = await pay(engine, DEVICE, 200, provider="cash", reference="C-1")
    assert isinstance(paid, Paid) and (paid.applied.days_now, paid.applied.prepaid_days) == (95, 105)
    await settle(engine)
    assert [record.code_days for record in erm_sandbox.device(DEVICE).codes] == [1000, 95]
    clock.advance(days=29)
    await settle(engine)
    assert len(committed(erm_sandbox)) == 2  # 29 days of room: not yet a batch worth a code
    clock.advance(days=1)
    await settle(engine)
    assert [record.code_days for record in erm_sandbox.device(DEVICE).codes] == [1000, 95, 30]
    clock.advance(days=80)
    await settle(engine)
    assert [record.code_days for record in erm_sandbox.device(DEVICE).codes] == [1000, 95, 30, 75]
    async with db.read() as session:
        device = await ledger.find_device(session=session, ref=DEVICE)
    assert device is not None and device.prepaid_days == 0 and not erm_sandbox.device(DEVICE).overflowed


async def test_delivery_is_retried_and_generation_is_not(
    db: Database, erm: ErmBackend, settings: Settings, clock: ManualClock, erm_sandbox: ErmSandbox
) -> None:
    told: list[int] = []
    failures = 2

    async def notify(request: CodeRequest) -> None:
        nonlocal failures
        if failures:
            failures -= 1
            raise ConnectionError("Telegram is down")
        assert request.id is not None
        told.append(request.id)

    engine = IssuingEngine(db=db, erm=erm, settings=settings, clock=clock, notify=notify)
    accepted = await engine.request(DEVICE, CodeKind.DAYS, 3)
    assert isinstance(accepted, Accepted)
    await settle(engine)
    assert told == [] and (await requests(db))[0].status is Status.ISSUED
    for _ in range(2):
        clock.advance(5)
        await settle(engine)
    [row] = await requests(db)
    assert told == [accepted.request_id] and row.status is Status.DELIVERED and row.delivery_attempts == 2
    assert len(committed(erm_sandbox)) == 1
    await engine.close()


async def test_refusals_are_kept_in_the_ledger(engine: IssuingEngine, db: Database) -> None:
    await engine.request(DEVICE, CodeKind.DAYS, 1000)
    await engine.request(DEVICE, CodeKind.DAYS, 500)
    rows = await requests(db)
    assert rows[0].status in (Status.QUEUED, Status.SENDING, Status.ISSUED)  # it goes out at once (a free device)
    assert rows[1].status is Status.REFUSED
    assert (rows[1].reason, rows[1].refused_fits, rows[1].refused_until) == ("stacking", 95, None)
    assert rows[1].delivered_at is not None


async def test_a_retried_request_is_not_overtaken_by_later_ones(
    engine: IssuingEngine, erm_sandbox: ErmSandbox, db: Database, clock: ManualClock, erm_paths: ErmPaths
) -> None:
    await engine.request(DEVICE, CodeKind.DAYS, 1)
    await settle(engine)
    clock.advance(6)
    erm_sandbox.fail_next(1, status=503, paths=erm_paths.reset)
    await engine.request(DEVICE, CodeKind.RESET)
    await engine.request(DEVICE, CodeKind.DAYS, 30)
    for _ in range(4):
        await settle(engine)
        clock.advance(6)
    assert [record.code_type for record in erm_sandbox.device(DEVICE).codes] == ["DAYSCODE", "RESETCODE", "DAYSCODE"]
    async with db.read() as session:
        device = await ledger.find_device(session=session, ref=DEVICE)
    issued_at = (await requests(db))[-1].issued_at
    assert device is not None and issued_at is not None
    assert device.credit_until == issued_at + timedelta(days=30)  # the 30 days asked after the reset are there


async def test_no_more_are_claimed_than_can_be_sent_at_once(
    db: Database, erm: ErmBackend, settings: Settings, clock: ManualClock, erm_sandbox: ErmSandbox
) -> None:
    engine = IssuingEngine(db=db, erm=erm, settings=settings, clock=clock, max_concurrency=3)
    engine.kick = lambda: None  # type: ignore[method-assign]
    for device in erm_sandbox.devices[2:8]:
        assert isinstance(await engine.request(device.ids[1], CodeKind.DAYS, 1), Accepted)
    erm_sandbox.latency = 0.3
    await engine.pump()
    statuses = [row.status for row in await requests(db)]
    assert statuses.count(Status.SENDING) == 3 and statuses.count(Status.QUEUED) == 3
    await engine.drain()
    await settle(engine)
    assert all(row.status is Status.ISSUED for row in await requests(db))
    await engine.close()


async def test_codes_carried_past_midnight_count_for_the_new_day(
    erm: ErmBackend, db: Database, erm_sandbox: ErmSandbox
) -> None:
    clock = ManualClock(datetime(2026, 11, 22, 23, 59, 55, tzinfo=UTC))
    erm_sandbox.clock = clock
    engine = IssuingEngine(db=db, erm=erm, settings=make_settings(PAYGBOT_DAILY_CODE_LIMIT="2"), clock=clock)
    engine.kick = lambda: None  # type: ignore[method-assign]
    assert isinstance(await engine.request(DEVICE, CodeKind.DAYS, 1), Accepted)
    await settle(engine)  # today's first code
    planned = []
    for reference in ("P-1", "P-2", "P-3"):
        paid = await pay(engine, DEVICE, 1, provider="cash", reference=reference)
        assert isinstance(paid, Paid) and paid.applied.not_before is not None
        planned.append(paid.applied.not_before.date().isoformat())
    assert planned == ["2026-11-22", "2026-11-23", "2026-11-23"]  # P-1 fits today, but pacing carries it over
    for _ in range(4):
        clock.advance(6)
        await settle(engine)
    days = [record.created_at.date().isoformat() for record in erm_sandbox.device(DEVICE).codes]
    assert days == ["2026-11-22", "2026-11-23", "2026-11-23"]  # the new day gets no more than its limit
    [waiting] = [row for row in await requests(db) if row.status is Status.QUEUED]
    assert waiting.not_before == datetime(2026, 11, 24, tzinfo=UTC)
    clock.set(datetime(2026, 11, 24, 0, 0, 0, tzinfo=UTC))
    await settle(engine)
    assert len(committed(erm_sandbox)) == 4
    await engine.close()


async def test_a_day_without_knowing_tells_people_once_and_never_sends_again(
    crashed: int, db: Database, erm: ErmBackend, settings: Settings, clock: ManualClock, erm_sandbox: ErmSandbox,
    erm_paths: ErmPaths,
) -> None:
    """The ERM refuses the code history (a 4xx) for a request whose answer never came: after a day its
    people are warned, once; it stays SENDING (a code may exist) until the ERM answers. Nothing was
    made, and an unpaid request does not go out a day late: it ends FAILED, and they are told."""
    told: list[tuple[int | None, Status, str | None]] = []

    async def notify(request: CodeRequest) -> None:
        told.append((request.id, request.status, request.reason))

    restarted = IssuingEngine(db=db, erm=erm, settings=settings, clock=clock, notify=notify)
    erm_sandbox.fail_next(10_000, status=404, body={"message": "Product not found"}, paths=erm_paths.history)
    clock.advance(7)
    await settle(restarted)
    assert told == [] and [row.status for row in await requests(db)] == [Status.SENDING]
    clock.advance(hours=24)
    for _ in range(3):
        await settle(restarted)
        [row] = await requests(db)
        assert row.not_before == clock.now() + timedelta(minutes=5)  # asked less often as the wait goes on
        clock.advance(minutes=5)
    assert told == [(crashed, Status.SENDING, "unsettled")] and row.status is Status.SENDING
    assert erm_sandbox.generations == 0  # never sent again while a code may exist
    erm_sandbox.clear_faults()
    await settle(restarted)
    [row] = await requests(db)
    assert row.status is Status.FAILED and row.reason == "too_late" and row.delivered_at is not None
    assert erm_sandbox.generations == 0
    assert told[-1] == (crashed, Status.FAILED, "too_late") and len(told) == 2
    await restarted.close()
