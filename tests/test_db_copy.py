"""``paygbot db copy``: a SQLite ledger the bot has written, copied into an empty PostgreSQL database row for
row, and the bot goes on from it there; what cannot be copied is refused in one line and changes nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect, select
from sqlalchemy.ext.asyncio import create_async_engine
from sqlmodel import SQLModel

from bot.clock import ManualClock
from bot.standins.erm import ErmSandbox
from storage.db import async_url
from storage.migrate import head_revision
from tests.support.chat import AGENT, MANAGER
from tests.support.cli import arun, run
from tests.support.databases import PostgresqlLedgers
from tests.support.paying import DEVICE, paying

pytestmark = pytest.mark.sqlite_only  # the source is a SQLite ledger; the target PostgreSQL


@pytest.fixture
def target(postgresql_ledgers: PostgresqlLedgers | None) -> Iterator[str]:
    """An empty PostgreSQL database (no PostgreSQL reachable: skipped)."""
    if postgresql_ledgers is None:
        pytest.skip("no PostgreSQL reachable (PAYGBOT_TEST_POSTGRESQL_URL)")
    url = postgresql_ledgers.empty()
    yield url
    postgresql_ledgers.drop(url)


def every_row(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, as the models read it (money as Decimal, times in UTC)."""
    async def read() -> dict[str, list[tuple[Any, ...]]]:
        engine = create_async_engine(async_url(url))
        try:
            async with engine.connect() as connection:
                return {table.name: [tuple(row) for row in await connection.execute(
                    select(table).order_by(*table.primary_key.columns))] for table in SQLModel.metadata.sorted_tables}
        finally:
            await engine.dispose()

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, read()).result()


async def test_a_written_ledger_is_copied_whole_and_the_bot_goes_on_from_it(
    erm_sandbox: ErmSandbox, erm_url: str, database_url: str, clock: ManualClock, tmp_path: Path, target: str
) -> None:
    async with paying(erm_sandbox, erm_url, database_url, clock) as bot:  # the bot writes its SQLite ledger
        await bot.customer()
        await bot.chat.say(MANAGER, f"/plan {DEVICE} 1000 50 KES")
        await bot.chat.say(AGENT, f"/pay {DEVICE} 100 R-1")
        await bot.issued(1)
    source = every_row(database_url)
    assert source["plan"] and source["payment"] and source["code_request"] and source["customer"]

    copied = await arun("db", "copy", target, cwd=tmp_path, env={"DATABASE_URL": database_url})
    assert copied.code == 0, copied.err
    rows = sum(len(table) for table in source.values())
    assert copied.out.strip() == (f"Copied the ledger into {target}: {rows:,} rows in {len(source)} tables, "
                                  f"schema revision {head_revision()}. Set DATABASE_URL to it, then start the bot(s).")
    assert every_row(target) == source

    again = await arun("db", "copy", target, cwd=tmp_path, env={"DATABASE_URL": database_url})
    assert again.code == 1 and "already has tables" in again.err and every_row(target) == source

    clock.advance(10)
    async with paying(erm_sandbox, erm_url, target, clock) as bot:  # on PostgreSQL now: new rows get new ids
        await bot.chat.say(AGENT, f"/pay {DEVICE} 50 R-2")
        await bot.issued(2)  # a new payment and code request: the id sequences were moved past the copied ids
        assert len(erm_sandbox.device(DEVICE).codes) == 2
        assert [p.amount for p in await bot.payments()] == [Decimal(100), Decimal(50)]


def test_what_cannot_be_copied_is_refused_in_one_line(tmp_path: Path, database_url: str, target: str) -> None:
    sqlite = {"DATABASE_URL": database_url}
    cases = [
        (sqlite, "sqlite:///elsewhere.db", "goes into a PostgreSQL database"),
        ({"DATABASE_URL": target}, target, "DATABASE_URL is not a SQLite ledger"),
        ({"DATABASE_URL": f"sqlite:///{tmp_path}/none.db"}, target, "no ledger at DATABASE_URL"),
        (sqlite, "postgresql://paygbot:db-SECRET-pw@127.0.0.1:9/paygbot", "The copy failed"),
    ]
    for env, into, said in cases:
        result = run("db", "copy", into, cwd=tmp_path, env=env)
        assert result.code == 1 and said in result.err, (into, result.err)
        assert "Traceback" not in result.err and "db-SECRET-pw" not in result.err
        assert len(result.err.strip().splitlines()) == 1
    assert not Path(tmp_path / "none.db").exists()
    with ThreadPoolExecutor(1) as pool:  # the target untouched: still no tables
        assert pool.submit(asyncio.run, _tables(target)).result() == []


async def _tables(url: str) -> list[str]:
    engine = create_async_engine(async_url(url))
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(lambda sync: inspect(sync).get_table_names())
    finally:
        await engine.dispose()
