"""Throughput of the issuing engine across devices: one days code for each of 1,000 devices.

The ERM sandbox runs as its own process (``paygbot sandbox --devices 1000 --latency 0.2``), the
ledger is a fresh SQLite file, and the real :class:`bot.issuing.IssuingEngine` pumps it on the wall
clock (its own kicks, plus a tick every 0.1 s as the bot's job would). All requests are made at
once through ``engine.request()``; the figures come from the ledger's ``created_at`` and
``issued_at``. Different devices never wait for each other, so the floor is the ERM's latency times
the number of waves the engine's concurrency allows.

    python bench/issuing_many_devices.py [--devices 1000] [--latency 0.2] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import sys
import tempfile
import time
from pathlib import Path

from sqlmodel import col, func, select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import percentile, sandbox_process  # noqa: E402
from bot.clock import SystemClock  # noqa: E402
from bot.config import load_settings  # noqa: E402
from bot.erm.rest import RestErm  # noqa: E402
from bot.erm.wire import GENERATIONS_AT_ONCE  # noqa: E402
from bot.issuing import Accepted, IssuingEngine  # noqa: E402
from storage.db import Database  # noqa: E402
from storage.migrate import upgrade  # noqa: E402
from storage.models import CodeKind, CodeRequest, Status  # noqa: E402

TICK = 0.1
DEADLINE = 600.0


async def issued(db: Database) -> int:
    async with db.read() as session:
        return int((await session.exec(select(func.count()).where(CodeRequest.status == Status.ISSUED))).one())


async def pump_every(engine: IssuingEngine, tick: float) -> None:
    """The bot's dispatch job: pump on a timer, on top of the engine's own kicks."""
    while True:
        await engine.pump()
        await asyncio.sleep(tick)


async def main(devices: int, latency: float, concurrency: int) -> None:
    with tempfile.TemporaryDirectory(prefix="paygbot-bench-") as folder:
        url = f"sqlite:///{folder}/ledger.db"
        await upgrade(url)
        db = Database(url)
        async with sandbox_process(devices=devices, latency=latency) as (erm_url, ids):
            settings = load_settings(
                _env_file=None, DATABASE_URL=url, ERM_BASE_URL=erm_url, ERM_USERNAME="test@example.com",
                ERM_PASSWORD="test1234",
            )
            async with RestErm(erm_url, "test@example.com", "test1234", timeout=settings.erm_timeout_seconds) as erm:
                clock = SystemClock()
                engine = IssuingEngine(db=db, erm=erm, settings=settings, clock=clock, max_concurrency=concurrency)
                learned = await engine.sync_devices()  # the ledger knows the devices, as after a day of work
                await erm.login()
                pumping = asyncio.create_task(pump_every(engine, TICK))
                started_at = clock.now()
                enqueue_started = time.perf_counter()
                answers = await asyncio.gather(*(engine.request(device, CodeKind.DAYS, 30) for device in ids[:devices]))
                enqueue_seconds = time.perf_counter() - enqueue_started
                assert all(isinstance(answer, Accepted) for answer in answers), answers
                deadline = time.monotonic() + DEADLINE
                while await issued(db) < len(answers):
                    if time.monotonic() > deadline:
                        raise SystemExit(f"not every request was issued within {DEADLINE:.0f} s")
                    await asyncio.sleep(0.05)
                pumping.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await pumping
                await engine.close()
            async with db.read() as session:
                rows = (await session.exec(select(CodeRequest).where(col(CodeRequest.status) == Status.ISSUED))).all()
        await db.dispose()

    assert all(row.issued_at is not None for row in rows)
    last = max(row.issued_at for row in rows if row.issued_at is not None)
    wall = (last - started_at).total_seconds()
    waits = [(row.issued_at - row.created_at).total_seconds() for row in rows if row.issued_at is not None]
    waves = math.ceil(len(rows) / concurrency)
    ideal = waves * latency
    print(f"requests: {len(rows)} days codes, one per device ({learned} devices synced first), "
          f"sandbox latency {latency:g} s, max_concurrency {concurrency}, pump tick {TICK:g} s")
    print(f"enqueue: {len(rows)} engine.request() calls at once took {enqueue_seconds:.2f} s "
          f"({enqueue_seconds / len(rows) * 1000:.2f} ms each, serialised on the ledger's writer)")
    print(f"wall time, first request to last ISSUED: {wall:.2f} s")
    print(f"ideal for this concurrency: ceil({len(rows)} / {concurrency}) x {latency:g} s = {ideal:.2f} s "
          f"(ERM latency only: no ledger writes, HTTP or pump ticks; {wall / ideal:.2f}x the ideal)")
    print(f"throughput: {len(rows) / wall:.1f} codes/s")
    print(f"request -> issued: p50 {percentile(waits, .5):.2f} s  p95 {percentile(waits, .95):.2f} s  "
          f"p99 {percentile(waits, .99):.2f} s  max {max(waits):.2f} s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, default=GENERATIONS_AT_ONCE,
                        help="the engine's max_concurrency (default: the ERM client's generations at once, 32)")
    arguments = parser.parse_args()
    asyncio.run(main(arguments.devices, arguments.latency, arguments.concurrency))
