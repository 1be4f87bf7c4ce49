"""The cost of the limit checks on a big ledger: 1,000,000 code requests, a year, ~1,000 devices.

It builds a fresh SQLite ledger with the real migrations, bulk-loads a year of history through the
storage models' tables (SQLAlchemy core, tens of seconds), then times, over a few hundred
repetitions each:

- ``engine.request()`` for a known device, end to end: device lookup, the daily-slot and stacking
  checks, the new row and the ETA, in one write transaction (the ERM is an ``httpx.MockTransport``
  that fails every call, so no network is involved, and nothing pumps);
- the check alone: ``ledger.admission_load`` (today's codes, what is queued, pending days, whether the plan is paid
  off, whether the update was handled already), one query;
- the pump's ``due_requests`` over the whole queue.

It prints p50/p95/p99 in ms (target: under 5 ms for one check) and the database's size on disk.
The temporary directory is removed at the end.

    python bench/ledger_limit_check.py [--rows 1000000] [--devices 1000] [--repeat 500]
        [--postgresql postgresql://postgres@127.0.0.1:5432/test]   # the ledger on PostgreSQL instead
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, event, insert, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import percentile, pg_admin  # noqa: E402
from bot.clock import SystemClock  # noqa: E402
from bot.config import load_settings  # noqa: E402
from bot.erm.rest import RestErm  # noqa: E402
from bot.issuing import IssuingEngine, limits  # noqa: E402
from storage import ledger  # noqa: E402
from storage.db import Database, async_url  # noqa: E402
from storage.migrate import upgrade  # noqa: E402
from storage.models import CodeKind, CodeRequest, Device, DeviceAlias, Source, Status  # noqa: E402

CHUNK = 20_000
OPEN_ROWS = 300
"""Requests still QUEUED (due now, spread over devices) at the end of the year: a busy queue."""


class _NoPump(IssuingEngine):
    """Validates and queues; nothing pumps, so the timings are the request path's alone."""

    def kick(self) -> None:
        return None


def _offline(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("the benchmark never talks to the ERM", request=request)


def _history(rows: int, devices: int, now: datetime) -> tuple[list[dict[str, Any]], list[dict[str, Any]],
                                                            Iterator[list[dict[str, Any]]]]:
    """The devices, their aliases, and a year of code requests in chunks, oldest first (the same every run)."""
    rng = random.Random(1)
    start = now - timedelta(days=365)
    step = timedelta(days=365) / rows
    statuses = [Status.DELIVERED] * 92 + [Status.ISSUED] * 3 + [Status.REFUSED] * 3 + [Status.FAILED] * 2
    kinds = [CodeKind.DAYS] * 96 + [CodeKind.RESET] * 3 + [CodeKind.FREE]
    device_rows = [
        {"id": n, "erm_id": f"BENCH{n:09d}", "label": f"BENCH{n:09d}", "credit_until": now + timedelta(days=rng.randint(0, 60)),
         "unlocked": False, "last_generation_at": now - timedelta(hours=1), "prepaid_days": 0,
         "credit_money": "0", "owed": "0", "verified": True, "created_at": start}
        for n in range(1, devices + 1)
    ]
    aliases = [{"alias": f"BENCH{n:09d}", "device_id": n} for n in range(1, devices + 1)]

    def chunks() -> Iterator[list[dict[str, Any]]]:
        for first in range(0, rows, CHUNK):
            batch = []
            for index in range(first, min(rows, first + CHUNK)):
                device = rng.randint(1, devices)
                created = start + step * index
                open_row = index >= rows - OPEN_ROWS
                status = Status.QUEUED if open_row else rng.choice(statuses)
                kind = CodeKind.DAYS if open_row else rng.choice(kinds)
                generated = status in (Status.ISSUED, Status.DELIVERED)
                issued = created + timedelta(seconds=rng.uniform(0.3, 8)) if generated else None
                hex_code = f"{rng.getrandbits(64):016X}" if generated else None
                batch.append({
                    "device_id": device, "device_ref": f"BENCH{device:09d}", "kind": kind,
                    "days": rng.randint(1, 30) if kind is CodeKind.DAYS else None, "source": Source.CHAT,
                    "status": status, "reason": "daily_limit" if status is Status.REFUSED else None,
                    "code": f"*{int(hex_code, 16):024d}#" if hex_code else None, "code_hex": hex_code,
                    "attempts": 0 if status is Status.QUEUED else 1, "not_before": issued or created,
                    "created_at": created, "sent_at": created if generated else None, "issued_at": issued,
                    "delivered_at": issued if status is Status.DELIVERED else None, "delivery_attempts": 0,
                })
            yield batch

    return device_rows, aliases, chunks()


def load(path: Path, rows: int, devices: int, now: datetime) -> None:
    """A year of history in a SQLite file, in bulk (one transaction per chunk, no fsync while loading)."""
    engine = create_engine(f"sqlite:///{path}")

    @event.listens_for(engine, "connect")
    def _fast(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=OFF")
        cursor.close()

    device_rows, aliases, chunks = _history(rows, devices, now)
    with engine.begin() as connection:
        connection.execute(insert(Device.__table__), device_rows)  # type: ignore[arg-type]
        connection.execute(insert(DeviceAlias.__table__), aliases)  # type: ignore[arg-type]
    for batch in chunks:
        with engine.begin() as connection:
            connection.execute(insert(CodeRequest.__table__), batch)  # type: ignore[arg-type]
    with engine.connect() as connection:
        connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()


async def load_postgresql(url: str, rows: int, devices: int, now: datetime) -> None:
    """The same history in a PostgreSQL database (asyncpg's executemany per chunk), then ANALYZE."""
    engine = create_async_engine(async_url(url))
    device_rows, aliases, chunks = _history(rows, devices, now)
    async with engine.begin() as connection:
        await connection.execute(insert(Device.__table__), device_rows)  # type: ignore[arg-type]
        await connection.execute(insert(DeviceAlias.__table__), aliases)  # type: ignore[arg-type]
        await connection.execute(text("SELECT setval(pg_get_serial_sequence('device', 'id'), :n)"), {"n": devices})
    for batch in chunks:
        async with engine.begin() as connection:
            await connection.execute(insert(CodeRequest.__table__), batch)  # type: ignore[arg-type]
    async with engine.connect() as connection:
        await connection.execution_options(isolation_level="AUTOCOMMIT")
        await connection.execute(text("ANALYZE"))
    await engine.dispose()


WARM_UP = 10
"""Untimed calls first: connections opened, SQLAlchemy's statement cache filled, pages in memory."""


async def timed(repeat: int, work: Callable[[int], Awaitable[object]]) -> tuple[list[float], Counter[str]]:
    """Milliseconds per call of ``work(i)``, and what the calls returned (by type name)."""
    for index in range(repeat, repeat + WARM_UP):
        await work(index)
    spent, outcomes = [], Counter[str]()
    for index in range(repeat):
        started = time.perf_counter()
        outcome = await work(index)
        spent.append((time.perf_counter() - started) * 1000)
        outcomes[type(outcome).__name__] += 1
    return spent, outcomes


def line(label: str, values: list[float], outcomes: Counter[str] | None = None) -> str:
    detail = f"  [{', '.join(f'{name} {count}' for name, count in outcomes.items())}]" if outcomes else ""
    return (f"{label:<44} p50 {percentile(values, .5):6.2f} ms  p95 {percentile(values, .95):6.2f} ms  "
            f"p99 {percentile(values, .99):6.2f} ms  max {max(values):6.2f} ms  (n={len(values)}){detail}")


async def main(rows: int, devices: int, repeat: int, postgresql: str | None) -> None:
    with tempfile.TemporaryDirectory(prefix="paygbot-bench-") as folder:
        path = Path(folder) / "ledger.db"
        url, database = f"sqlite:///{path}", None
        if postgresql is not None:
            database = f"paygbot_bench_{random.getrandbits(32):08x}"
            await pg_admin(postgresql, f'CREATE DATABASE "{database}"')
            url = make_url(postgresql).set(drivername="postgresql", database=database).render_as_string(
                hide_password=False)
        await upgrade(url)
        now = SystemClock().now()
        started = time.perf_counter()
        if database is None:
            await asyncio.to_thread(load, path, rows, devices, now)
        else:
            await load_postgresql(url, rows, devices, now)
        load_seconds = time.perf_counter() - started
        settings = load_settings(_env_file=None, DATABASE_URL=url)
        db = Database(url)
        async with RestErm("http://erm.invalid", "bench", "bench", transport=httpx.MockTransport(_offline)) as erm:
            engine = _NoPump(db=db, erm=erm, settings=settings)
            refs = [f"BENCH{n:09d}" for n in range(1, devices + 1)]
            async def check(index: int) -> int:
                device_id = 1 + index % devices
                day_start, day_end = limits.local_day(now, settings.tz)
                async with db.read() as session:  # (as a request's admission reads it: the plan and the key too)
                    load = await ledger.admission_load(session=session, device_id=device_id, day_start=day_start,
                                                       day_end=day_end, key=f"tg:{index}", since=now - timedelta(days=2))
                return load.generated_today + load.open_today + load.pending_days

            async def due(index: int) -> int:
                async with db.read() as session:
                    found = await ledger.due_requests(session=session, now=SystemClock().now(),
                                                      gap_edge=SystemClock().now() - timedelta(seconds=6),
                                                      exclude=[], limit=500)
                return len(found)

            async def request(index: int) -> object:
                return await engine.request(refs[(index * 7919) % devices], CodeKind.DAYS, 5)

            check_ms, _ = await timed(repeat, check)
            due_found = await due(0)
            due_ms, _ = await timed(max(50, repeat // 5), due)
            request_ms, request_outcomes = await timed(repeat, request)
        await db.dispose()
        sizes = {file.name: file.stat().st_size for file in Path(folder).glob("ledger.db*")}
        if database is not None and postgresql is not None:
            await pg_admin(postgresql, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')

    print(f"ledger ({'PostgreSQL' if database else 'SQLite'}): {rows:,} code requests over 365 days, "
          f"{devices:,} devices, {OPEN_ROWS} still queued; bulk load {load_seconds:.1f} s "
          f"({rows / load_seconds:,.0f} rows/s)" + ("; on disk " + ", ".join(
              f"{name} {size / 1e6:.1f} MB" for name, size in sorted(sizes.items())) if sizes else ""))
    print(line("limit check (daily slot, stacking, plan, key: one query)", check_ms))
    print(line("engine.request() end to end (one write txn)", request_ms, request_outcomes))
    print(line(f"due_requests for the pump ({due_found} due)", due_ms))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=500)
    parser.add_argument("--postgresql", default=None, metavar="ADMIN_URL",
                        help="the ledger in a new database on this PostgreSQL server (dropped at the end)")
    arguments = parser.parse_args()
    asyncio.run(main(arguments.rows, arguments.devices, arguments.repeat, arguments.postgresql))
