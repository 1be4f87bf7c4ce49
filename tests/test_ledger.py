"""The ledger: migrations, SQLite settings, exact money and UTC times, uniqueness, aliases, the CLI."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import event, inspect, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import IntegrityError, OperationalError, StatementError
from sqlalchemy.ext.asyncio import create_async_engine
from sqlmodel import SQLModel

import storage.db
from storage import ledger
from storage.db import Database, async_url, sync_engine
from storage.migrate import alembic_config, current_revision, head_revision, upgrade
from storage.models import CodeKind, CodeRequest, Customer, Payment, Plan, PlanStatus, Role, Status
from storage.sqlite_inline import CHECKPOINT_EVERY, WRITER_CHECKPOINT_PAGES
from tests.support.cli import run
from tests.support.databases import statements

NOW = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)


async def test_migrations_create_every_table_and_reach_head(empty_database_url: str) -> None:
    url = empty_database_url
    assert await current_revision(url) is None
    await upgrade(url)
    await upgrade(url)  # twice is harmless
    assert await current_revision(url) == head_revision() is not None
    names = await _tables(url)
    assert {"person", "customer", "device", "device_alias", "payment", "code_request", "invite", "approval",
            "plan", "portfolio_day"} <= names


async def test_the_migrations_make_exactly_the_tables_the_models_describe(empty_database_url: str) -> None:
    """A model changed without a migration (or the other way round) fails here, not in the field
    (``alembic check``, on SQLite and on PostgreSQL)."""
    await upgrade(empty_database_url)
    assert await _drift(empty_database_url) == []


async def test_every_migration_goes_down_and_up_again(empty_database_url: str) -> None:
    """Down to nothing, every downgrade in turn, then up again: the same tables, no drift."""
    await upgrade(empty_database_url)
    tables = await _tables(empty_database_url)
    await _downgrade(empty_database_url, "base")
    assert await _tables(empty_database_url) <= {"alembic_version"}
    await upgrade(empty_database_url)
    assert await _tables(empty_database_url) == tables
    assert await _drift(empty_database_url) == []


async def _tables(url: str) -> set[str]:
    engine = create_async_engine(async_url(url))
    try:
        async with engine.connect() as connection:
            return set(await connection.run_sync(lambda sync: inspect(sync).get_table_names()))
    finally:
        await engine.dispose()


async def _drift(url: str) -> list[object]:
    engine = create_async_engine(async_url(url))
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(
                lambda sync: compare_metadata(MigrationContext.configure(sync), SQLModel.metadata))
    finally:
        await engine.dispose()


async def _downgrade(url: str, revision: str) -> None:
    engine = create_async_engine(async_url(url))

    def down(sync: Connection) -> None:
        config = alembic_config()
        config.attributes["connection"] = sync
        command.downgrade(config, revision)

    try:
        async with engine.begin() as connection:
            await connection.run_sync(down)
    finally:
        await engine.dispose()


@pytest.mark.sqlite_only
async def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(db: Database) -> None:
    async with db.write() as session:
        mode = (await session.exec(text("PRAGMA journal_mode"))).one()[0]
        timeout = (await session.exec(text("PRAGMA busy_timeout"))).one()[0]
        foreign = (await session.exec(text("PRAGMA foreign_keys"))).one()[0]
    assert (mode, timeout, foreign) == ("wal", 10000, 1)


@pytest.mark.sqlite_only
async def test_sqlite_transactions_run_on_the_loops_thread_and_reports_beside_it(db: Database) -> None:
    """The ledger's short transactions run where the loop runs (no hop per statement); a report reads on a
    driver thread, so that the chats go on meanwhile. Both see what was committed; a failed write changes
    nothing and says why as SQLAlchemy's error."""
    for engine in {id(e): e for e in (db.writer, db.reader, db.reporter)}.values():
        @event.listens_for(sync_engine(engine), "connect")
        def _thread(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.create_function("thread_id", 0, threading.get_ident)
    await db.dispose()  # new connections, with the function
    loop_thread = threading.get_ident()
    async with db.write() as session:
        await ledger.put_person(session=session, telegram_id=7, role=Role.AGENT, name="Ann", now=NOW)
        written_on = (await session.exec(text("SELECT thread_id()"))).one()[0]
    async with db.read() as session:
        read_on = (await session.exec(text("SELECT thread_id()"))).one()[0]
        read = await ledger.get_person(session=session, telegram_id=7)
    async with db.report() as session:
        reported_on = (await session.exec(text("SELECT thread_id()"))).one()[0]
        reported = await ledger.get_person(session=session, telegram_id=7)
    assert written_on == read_on == loop_thread != reported_on
    assert read is not None and reported is not None and read.name == reported.name == "Ann"
    with pytest.raises(IntegrityError, match="UNIQUE"):  # a second person with Ann's Telegram id
        async with db.write() as session:
            await session.exec(text("UPDATE person SET name = 'Ann K.'"))
            await session.exec(text(
                "INSERT INTO person (telegram_id, name, role, active, language, language_chosen, created_at) "
                "SELECT telegram_id, 'Bob', role, active, language, language_chosen, created_at FROM person"))
    async with db.read() as session:
        assert [p.name for p in await ledger.active_people(session=session)] == ["Ann"]


@pytest.mark.sqlite_only
async def test_inline_sqlite_writes_wait_their_turn_without_holding_the_loop_and_reads_never_wait(db: Database) -> None:
    """SQLite on the loop's thread has one writer connection: a second write waits for the first to end, and the loop
    goes on meanwhile (the first can be let go from another task); its write then sees the first's. Reads held open
    across an await are as many as are asked for: none waits for a pool, which would block the loop."""
    holding, release = asyncio.Event(), asyncio.Event()
    order: list[str] = []

    async def first() -> None:
        async with db.write() as session:
            await ledger.put_person(session=session, telegram_id=7, role=Role.AGENT, name="Ann", now=NOW)
            holding.set()
            await release.wait()
            order.append("first commits")

    async def second() -> str | None:
        await holding.wait()
        async with db.write() as session:
            order.append("second begins")
            seen = await ledger.get_person(session=session, telegram_id=7)
            await ledger.put_person(session=session, telegram_id=8, role=Role.AGENT, name="Bob", now=NOW)
            return None if seen is None else seen.name

    writers = asyncio.gather(first(), second())
    await holding.wait()
    for _ in range(5):  # the loop turns while the second write waits
        await asyncio.sleep(0)
    assert order == []
    release.set()
    _, seen = await asyncio.wait_for(writers, 10)
    assert order == ["first commits", "second begins"] and seen == "Ann"

    opened, many = asyncio.Event(), 12
    counted: list[int] = []

    async def reader() -> None:
        async with db.read() as session:
            counted.append(len(await ledger.active_people(session=session)))
            if len(counted) == many:
                opened.set()
            await opened.wait()

    await asyncio.wait_for(asyncio.gather(*(reader() for _ in range(many))), 10)
    assert counted == [2] * many


@pytest.mark.sqlite_only
async def test_inline_sqlite_transactions_keep_their_connections_out_of_the_pool(db: Database) -> None:
    """A transaction takes the connection the last one left (no checkout from the pool: a quarter of the cost of a
    one-statement transaction), also after a write that failed half-way and was rolled back; after a connection
    was invalidated, the next transaction has one that works."""
    checkouts: list[str] = []
    listens = [(sync_engine(db.writer), "checkout", lambda *_: checkouts.append("writer")),
               (sync_engine(db.reader), "checkout", lambda *_: checkouts.append("reader"))]
    for listen in listens:
        event.listen(*listen)
    try:
        for n in range(5):
            async with db.write() as session:
                await ledger.put_person(session=session, telegram_id=100 + n, role=Role.AGENT, name=f"A{n}", now=NOW)
            async with db.read() as session:
                assert len(await ledger.active_people(session=session)) == n + 1
        with pytest.raises(RuntimeError, match="half-way"):
            async with db.write() as session:
                await ledger.put_person(session=session, telegram_id=200, role=Role.AGENT, name="Gone", now=NOW)
                raise RuntimeError("a failure half-way")
        async with db.write() as session:
            assert await ledger.get_person(session=session, telegram_id=200) is None
            await ledger.put_person(session=session, telegram_id=201, role=Role.AGENT, name="Kept", now=NOW)
        assert sorted(checkouts) in ([], ["reader"], ["writer"], ["reader", "writer"])  # (the first of each, if any)
        async with db.read() as session:
            (await session.connection()).sync_connection.invalidate()
        async with db.read() as session:
            assert len(await ledger.active_people(session=session)) == 6
        assert checkouts[-1] == "reader"  # a new connection
    finally:
        for listen in listens:
            event.remove(*listen)


@pytest.mark.sqlite_only
async def test_a_sqlite_write_holds_the_writer_from_its_start_and_one_that_cannot_begin_says_why(
    db: Database, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A write transaction takes SQLite's write lock at its first statement, read or not (``BEGIN IMMEDIATE``), so
    that it is never refused half-way; one that cannot take it in time (another process writes) fails as
    SQLAlchemy's ``OperationalError``, which the web routes turn into an answer, and writes nothing."""
    database = make_url(db.url).database or ""
    other = sqlite3.connect(database, isolation_level=None, timeout=0)
    try:
        async with db.write() as session:
            await ledger.get_person(session=session, telegram_id=7)  # a read only, so far
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")
        other.execute("BEGIN IMMEDIATE")
        monkeypatch.setattr(storage.db, "BUSY_TIMEOUT_MS", 50)
        await db.dispose()  # new connections, with the short timeout
        with pytest.raises(OperationalError, match="locked"):
            async with db.write() as session:
                await ledger.put_person(session=session, telegram_id=7, role=Role.AGENT, name="Ann", now=NOW)
        other.execute("ROLLBACK")
    finally:
        other.close()
    async with db.read() as session:
        assert await ledger.get_person(session=session, telegram_id=7) is None


@pytest.mark.sqlite_only
async def test_sqlite_checkpoints_run_beside_the_loop_and_keep_the_wal_small(db: Database) -> None:
    """A checkpoint ends in an fsync: none runs inside a commit on the loop's thread (the writer's automatic one
    only past a WAL of 40 MB); a thread of its own copies the WAL back every ``CHECKPOINT_EVERY`` write
    transactions, so that the WAL is reused rather than grown by every commit.

    The writes wait for each checkpoint to end: a PASSIVE checkpoint leaves what was committed while it ran, and
    the WAL is reused from its start only once a checkpoint has copied all of it. On a machine so loaded that the
    thread falls behind the writes, the WAL grows until they calm down (bounded by the writer's own checkpoint),
    which this test does not measure."""
    async with db.write() as session:
        assert (await session.exec(text("PRAGMA wal_autocheckpoint"))).one()[0] == WRITER_CHECKPOINT_PAGES
    checkpoints = db._checkpoints
    assert checkpoints is not None
    transactions = 20 * CHECKPOINT_EVERY
    for number in range(transactions):
        async with db.write() as session:
            await ledger.put_person(session=session, telegram_id=1000 + number, role=Role.AGENT, name="Ann", now=NOW)
        if checkpoints._running is not None:
            await checkpoints._running
    database = Path(make_url(db.url).database or "")
    wal = database.with_name(database.name + "-wal").stat().st_size
    assert wal < transactions * 4096  # each commit appends at least one page: unchecked, the WAL holds them all
    async with db.read() as session:
        assert len(await ledger.active_people(session=session)) == transactions


async def test_update_row_writes_its_columns_only_and_leaves_the_object_as_the_ledger_holds_it(db: Database) -> None:
    """``ledger.update_row`` writes the named columns of one row, by its id, and nothing else; the object then
    holds the written values and has nothing left for a flush to write (no second UPDATE)."""
    later = NOW + timedelta(days=30)
    async with db.write() as session:
        device, _ = await ledger.add_device(session=session, ids=["D1"], now=NOW, label="first")
        other, _ = await ledger.add_device(session=session, ids=["D2"], now=NOW, label="second")
    async with db.write() as session:
        assert device.id is not None
        locked = await ledger.lock_device(session=session, device_id=device.id)
        with statements(db) as written:
            await ledger.update_row(session=session, row=locked, credit_until=later, unlocked=True)
            assert (locked.credit_until, locked.unlocked, locked.label) == (later, True, "first")
            await session.flush()
    assert written == ["UPDATE"]
    async with db.read() as session:
        assert other.id is not None
        fresh = await ledger.get_device(session=session, device_id=device.id)
        untouched = await ledger.get_device(session=session, device_id=other.id)
    assert fresh is not None and untouched is not None
    assert (fresh.credit_until, fresh.unlocked, fresh.label) == (later, True, "first")
    assert (untouched.credit_until, untouched.unlocked) == (other.credit_until, other.unlocked)


async def test_money_is_exact_and_times_are_utc(db: Database) -> None:
    nairobi = datetime(2026, 11, 22, 12, 0, tzinfo=UTC).astimezone(__import__("zoneinfo").ZoneInfo("Africa/Nairobi"))
    async with db.write() as session:
        payment, new = await ledger.add_payment(session=session, payment=Payment(
            provider="mpesa", reference="QK71ABC123", amount=Decimal("250.10"), currency="KES", account="X1",
            received_at=nairobi,
        ))
    assert new
    async with db.read() as session:
        stored = await ledger.find_payment(session=session, provider="mpesa", reference="QK71ABC123")
        raw = (await session.exec(text("SELECT amount, received_at FROM payment"))).one()
    assert stored is not None and stored.amount == Decimal("250.10") and isinstance(stored.amount, Decimal)
    assert stored.received_at == datetime(2026, 11, 22, 12, 0, tzinfo=UTC) and stored.received_at.tzinfo is UTC
    assert raw[0] == "250.10" and str(raw[1]).startswith("2026-11-22 12:00:00")


async def test_naive_times_are_refused(db: Database) -> None:
    with pytest.raises(StatementError, match="timezone-aware"):
        async with db.write() as session:
            await ledger.put_person(session=session, telegram_id=1, role=Role.AGENT, name="x",
                                    now=datetime(2026, 1, 1))


async def test_a_payment_reference_is_stored_once_per_provider(db: Database) -> None:
    def payment(provider: str) -> Payment:
        return Payment(provider=provider, reference="R1", amount=Decimal(100), account="X1", received_at=NOW)

    async with db.write() as session:
        first, new_first = await ledger.add_payment(session=session, payment=payment("webhook"))
        again, new_again = await ledger.add_payment(session=session, payment=payment("webhook"))
        other, new_other = await ledger.add_payment(session=session, payment=payment("cash"))
    assert (new_first, new_again, new_other) == (True, False, True)
    assert again.id == first.id and other.id != first.id


async def test_concurrent_duplicate_payments_make_one_row(db: Database) -> None:
    async def store() -> bool:
        async with db.write() as session:
            _, new = await ledger.add_payment(session=session, payment=Payment(
                provider="webhook", reference="SAME", amount=Decimal(5), account="X", received_at=NOW))
        return new

    results = await asyncio.gather(*(store() for _ in range(5)))
    assert sorted(results) == [False, False, False, False, True]
    async with db.read() as session:
        assert (await session.exec(text("SELECT count(*) FROM payment"))).one()[0] == 1


async def test_a_device_is_one_device_under_all_its_ids(db: Database) -> None:
    async with db.write() as session:
        first, _ = await ledger.add_device(session=session, ids=["TEST2503000017"], now=NOW)
        merged, two_rows = await ledger.add_device(
            session=session, ids=["64ba2e1eaa6c7f107d7a8918", "TEST2503000017", "SELLER2503000042"], now=NOW
        )
    assert merged.id == first.id and not two_rows
    async with db.read() as session:
        by_seller = await ledger.find_device(session=session, ref="SELLER2503000042")
        aliases = await ledger.device_aliases(session=session, device_id=first.id or 0)
        unknown = await ledger.find_device(session=session, ref="NOPE")
    assert by_seller is not None and by_seller.id == first.id and unknown is None
    assert aliases == ["64ba2e1eaa6c7f107d7a8918", "SELLER2503000042", "TEST2503000017"]


async def test_an_added_request_is_the_sessions_row_and_a_later_change_to_it_is_written(db: Database) -> None:
    """``add_request`` writes the row without the ORM's flush, then holds the object as that row: its id is set,
    it reads back whole, and what the same transaction changes on it afterwards is written too."""
    async with db.write() as session:
        device, _ = await ledger.add_device(session=session, ids=["ADDED1"], now=NOW)
        added = await ledger.add_request(session=session, request=CodeRequest(
            device_id=device.id or 0, device_ref="ADDED1", kind=CodeKind.DAYS, days=3, chat_id=77, not_before=NOW,
            created_at=NOW, request_key="update:1"))
        assert added.id is not None and inspect(added).persistent
        assert await ledger.get_request(session=session, request_id=added.id) is added  # (the session's one object)
        added.status, added.attempts = Status.SENDING, 1
    async with db.read() as session:
        row = await ledger.get_request(session=session, request_id=added.id)
        keyed = await ledger.request_by_key(session=session, key="update:1", since=NOW)
    assert row is not None and (row.status, row.attempts, row.days, row.chat_id) == (Status.SENDING, 1, 3, 77)
    assert row.created_at == NOW and row.device_ref == "ADDED1" and row.kind is CodeKind.DAYS
    assert keyed == (added.id, "ADDED1", CodeKind.DAYS, 3)


async def test_two_rows_found_to_be_one_device_are_merged_keeping_every_request(db: Database) -> None:
    later = NOW + timedelta(days=10)
    async with db.write() as session:
        oem, _ = await ledger.add_device(session=session, ids=["OEM1"], now=NOW)
        seller, _ = await ledger.add_device(session=session, ids=["SELLER1"], now=NOW)
        assert oem.id is not None and seller.id is not None
        oem.credit_until, seller.credit_until = later, later
        for device, ref in ((oem, "OEM1"), (seller, "SELLER1")):
            await ledger.add_request(session=session, request=CodeRequest(
                device_id=device.id or 0, device_ref=ref, kind=CodeKind.DAYS, days=10, not_before=NOW, created_at=NOW))
        one, merged = await ledger.add_device(session=session, ids=["ERM1", "OEM1", "SELLER1"], now=NOW,
                                              verified=True)
    assert merged and one.id == oem.id and one.verified
    async with db.read() as session:
        assert await ledger.device_aliases(session=session, device_id=one.id or 0) == ["ERM1", "OEM1", "SELLER1"]
        requests = await ledger.open_requests(session=session, device_id=one.id or 0)
        kept = await ledger.get_device(session=session, device_id=one.id or 0)
        gone = await ledger.get_device(session=session, device_id=seller.id)
    assert [r.device_ref for r in requests] == ["OEM1", "SELLER1"]  # every request kept, on the one device
    assert kept is not None and kept.credit_until == NOW + timedelta(days=20) and gone is None


async def test_a_request_is_locked_with_whether_its_device_has_another_waiting(db: Database) -> None:
    async with db.write() as session:
        mine, _ = await ledger.add_device(session=session, ids=["QUEUE1"], now=NOW)
        other, _ = await ledger.add_device(session=session, ids=["QUEUE2"], now=NOW)
        assert mine.id is not None and other.id is not None
        made = [await ledger.add_request(session=session, request=CodeRequest(
            device_id=device.id or 0, device_ref=ref, kind=CodeKind.DAYS, days=1, not_before=NOW, created_at=NOW,
            status=status)) for device, ref, status in ((mine, "QUEUE1", Status.SENDING), (mine, "QUEUE1", Status.QUEUED),
                                                        (other, "QUEUE2", Status.QUEUED))]
    sending, queued, elsewhere = (request.id or 0 for request in made)

    async def locked(request_id: int) -> tuple[int | None, bool]:
        async with db.write() as session:
            request, waiting = await ledger.lock_request_with_queue(session=session, request_id=request_id)
            return (None if request is None else request.id), waiting

    assert await locked(sending) == (sending, True)
    async with db.write() as session:
        await ledger.update_row(session=session, row=await ledger.lock_request(session=session, request_id=queued),
                                status=Status.ISSUED)
    assert await locked(sending) == (sending, False)  # (another device's queue is not this one's)
    assert await locked(elsewhere) == (elsewhere, False)  # (itself is not "another")
    assert await locked(999_999) == (None, False)


async def test_merged_rows_keep_their_plans_and_debt(db: Database) -> None:
    async with db.write() as session:
        oem, _ = await ledger.add_device(session=session, ids=["OEM2"], now=NOW)
        seller, _ = await ledger.add_device(session=session, ids=["SELLER2"], now=NOW)
        assert oem.id is not None and seller.id is not None
        oem.owed, seller.owed = Decimal(30), Decimal(20)
        session.add_all([oem, seller])
        kept_plan = await ledger.add_plan(session=session, plan=Plan(
            device_id=oem.id, total=Decimal(1000), daily_price=Decimal(50), currency="KES", started_at=NOW))
        ended_plan = await ledger.add_plan(session=session, plan=Plan(
            device_id=seller.id, total=Decimal(800), daily_price=Decimal(40), currency="KES", paid=Decimal(80),
            started_at=NOW))
        one, merged = await ledger.add_device(session=session, ids=["ERM2", "OEM2", "SELLER2"], now=NOW,
                                              verified=True)
    assert merged and one.id == oem.id and one.owed == Decimal(50)
    async with db.read() as session:
        current = await ledger.current_plan(session=session, device_id=one.id or 0)
        ended = await ledger.get_plan(session=session, plan_id=ended_plan.id or 0)
        events = await ledger.plan_events(session=session, plan_id=ended_plan.id or 0)
    assert current is not None and current.id == kept_plan.id
    assert ended is not None and (ended.device_id, ended.status, ended.paid) == (one.id, PlanStatus.REPOSSESSED,
                                                                                Decimal(80))
    assert [event.kind for event in events] == ["merged"]


async def test_one_payment_one_code_request(db: Database) -> None:
    async with db.write() as session:
        device, _ = await ledger.add_device(session=session, ids=["D1"], now=NOW)
        payment, _ = await ledger.add_payment(session=session, payment=Payment(
            provider="cash", reference="C1", amount=Decimal(1), account="D1", received_at=NOW))
        assert device.id is not None and payment.id is not None
        await ledger.add_request(session=session, request=CodeRequest(
            device_id=device.id, device_ref="D1", kind=CodeKind.DAYS, days=1, payment_id=payment.id,
            not_before=NOW, created_at=NOW))
    with pytest.raises(Exception, match="(?i)unique"):
        async with db.write() as session:
            await ledger.add_request(session=session, request=CodeRequest(
                device_id=device.id, device_ref="D1", kind=CodeKind.DAYS, days=1, payment_id=payment.id,
                not_before=NOW, created_at=NOW))


async def test_claim_happens_once(db: Database) -> None:
    async with db.write() as session:
        device, _ = await ledger.add_device(session=session, ids=["D1"], now=NOW)
        assert device.id is not None
        request = await ledger.add_request(session=session, request=CodeRequest(
            device_id=device.id, device_ref="D1", kind=CodeKind.FREE, not_before=NOW, created_at=NOW))
    assert request.id is not None
    claims = []
    for _ in range(2):
        async with db.write() as session:
            claims.append(await ledger.claim(session=session, request_id=request.id, now=NOW,
                                             settle_after=NOW + timedelta(seconds=35)))
    assert claims == [True, False]
    async with db.read() as session:
        stored = await ledger.get_request(session=session, request_id=request.id)
    assert stored is not None and stored.status is Status.SENDING and stored.attempts == 1 and stored.sent_at == NOW


async def test_the_pumps_reads_leave_out_the_devices_asked(db: Database) -> None:
    """The pump's reads of due and unsettled requests, with no device left out (a prepared statement) and with some
    (a list: another statement): each leaves out exactly those devices."""
    ids: dict[str, int] = {}
    async with db.write() as session:
        for ref, status in (("Q1", Status.QUEUED), ("Q2", Status.QUEUED), ("S1", Status.SENDING),
                            ("S2", Status.SENDING)):
            device, _ = await ledger.add_device(session=session, ids=[ref], now=NOW)
            assert device.id is not None
            ids[ref] = device.id
            await ledger.add_request(session=session, request=CodeRequest(
                device_id=device.id, device_ref=ref, kind=CodeKind.FREE, status=status, not_before=NOW,
                created_at=NOW))
    later = NOW + timedelta(minutes=1)

    async def due(exclude: list[int]) -> set[str]:
        async with db.read() as session:
            return {request.device_ref for request in await ledger.due_requests(
                session=session, now=later, gap_edge=later, exclude=exclude, limit=10)}

    async def unsettled(exclude: list[int]) -> set[str]:
        async with db.read() as session:
            return {request.device_ref for request in await ledger.unsettled(session=session, now=later,
                                                                            exclude=exclude)}

    assert await due([]) == {"Q1", "Q2"} and await due([ids["Q1"]]) == {"Q2"}
    assert await due([ids["Q1"], ids["Q2"]]) == set()
    assert await unsettled([]) == {"S1", "S2"} and await unsettled([ids["S2"], ids["Q1"]]) == {"S1"}


def test_users_add_and_list(tmp_path: Path) -> None:
    env = {"DATABASE_URL": f"sqlite:///{tmp_path}/ledger.db"}
    empty = run("users", "list", cwd=tmp_path, env=env)
    assert empty.code == 0 and "No managers or agents yet" in empty.out
    added = run("users", "add", "--telegram-id", "1001", "--role", "manager", "--name", "Ann Mwangi", cwd=tmp_path, env=env)
    assert added.code == 0 and added.out.strip() == "1001 (Ann Mwangi) is now a manager."
    assert run("users", "add", "--telegram-id", "1002", "--role", "agent", cwd=tmp_path, env=env).code == 0
    promoted = run("users", "add", "--telegram-id", "1002", "--role", "manager", cwd=tmp_path, env=env)
    assert promoted.out.strip() == "1002 is now a manager."
    listing = run("users", "list", cwd=tmp_path, env=env)
    rows = listing.out.strip().splitlines()
    assert rows[0].split() == ["telegram", "id", "role", "active", "name"]
    assert sorted(row.split()[:2] for row in rows[1:]) == [["1001", "manager"], ["1002", "manager"]]


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("users", "add", "--telegram-id", "abc", "--role", "agent"), "'abc' is not a numeric Telegram user id"),
        (("users", "add", "--telegram-id", "5", "--role", "boss"), "invalid choice: 'boss'"),
        (("users", "add", "--role", "agent"), "required: --telegram-id"),
    ],
)
def test_users_bad_input(tmp_path: Path, args: tuple[str, ...], words: str) -> None:
    result = run(*args, cwd=tmp_path, env={"DATABASE_URL": f"sqlite:///{tmp_path}/ledger.db"})
    assert result.code == 2 and words in result.err and len(result.err.strip().splitlines()) == 1
    assert not (tmp_path / "ledger.db").exists()  # nothing was written


def test_db_upgrade_command(tmp_path: Path) -> None:
    result = run("db", "upgrade", cwd=tmp_path, env={"DATABASE_URL": f"sqlite:///{tmp_path}/data/ledger.db"})
    assert result.code == 0 and result.out.strip() == f"The ledger is at schema revision {head_revision()}."
    assert (tmp_path / "data" / "ledger.db").exists()


def test_db_upgrade_on_an_unusable_path(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")
    result = run("db", "upgrade", cwd=tmp_path, env={"DATABASE_URL": f"sqlite:///{tmp_path}/file/ledger.db"})
    assert result.code == 1 and "the ledger could not be used" in result.err and "Traceback" not in result.err


async def test_what_the_erm_says_of_a_device_is_cut_to_its_columns(db: Database) -> None:
    """PostgreSQL refuses a value longer than its column: a long description from the ERM must not stop
    the device sync."""
    now = datetime(2026, 12, 2, tzinfo=UTC)
    async with db.write() as session:
        device, _ = await ledger.add_device(session=session, ids=["ERM1", "OEM1"], now=now,
                                            description="x" * 500, life_cycle="L" * 80)
        assert device.id is not None
        await ledger.set_item_details(session=session, ref="OEM1", description="y" * 300, life_cycle="ASSIGNED")
    async with db.read() as session:
        stored = await ledger.find_device(session=session, ref="ERM1")
    assert stored is not None and stored.description == "y" * 200 and stored.life_cycle == "ASSIGNED"
    async with db.read() as session:
        details = await ledger.item_details(session=session, aliases=["OEM1", "NOPE"])
    assert details == {"OEM1": ("y" * 200, "ASSIGNED")}


async def test_a_utility_account_is_one_customers_whatever_its_case(db: Database) -> None:
    now = datetime(2026, 12, 2, tzinfo=UTC)
    async with db.write() as session:
        jane = Customer(name="Jane", phone="+254712345678", created_at=now)
        peter = Customer(name="Peter", phone="+254722000111", created_at=now)
        session.add_all([jane, peter])
        await session.flush()
        assert jane.id is not None and peter.id is not None
        assert await ledger.tie_meter(session=session, customer_id=jane.id, account="32c73fdb3fdbe731dbb7f668",
                                      now=now) is None
        holder = await ledger.tie_meter(session=session, customer_id=peter.id, account="32C73FDB3FDBE731DBB7F668",
                                        now=now)
        assert holder is not None and holder.id == jane.id
    async with db.read() as session:
        again = await ledger.get_customer(session=session, customer_id=peter.id)
    assert again is not None and again.utility_account is None
