"""Several processes on one PostgreSQL ledger against one on SQLite: 1,000 devices, one days code each, the ERM
at 200 ms.

For each setting — 1 process on SQLite, then 1, 2 and 3 processes on PostgreSQL — a fresh ledger (the real
migrations; the devices synced from the ERM first, as after a day of work) and a fresh ``paygbot sandbox``
process. Each replica is a process of its own running the real :class:`bot.issuing.IssuingEngine` (its pump
on a 0.1 s tick, as the bot's job): the requests are shared out among them and made at the same moment
through ``engine.request()``, and every replica pumps the whole ledger (any of them may claim any request).
It prints codes per second (first request to last ISSUED, from the ledger), ``request()`` p50/p99 and the
ideal for the concurrency used (ERM latency times the waves that 64 calls per replica allow).

    python bench/replicas.py [--devices 1000] [--latency 0.2] \\
        [--postgresql postgresql://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url
from sqlmodel import col, func, select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import percentile, sandbox_process  # noqa: E402
from bot.clock import SystemClock  # noqa: E402
from bot.config import load_settings  # noqa: E402
from bot.erm.rest import RestErm  # noqa: E402
from bot.issuing import Accepted, IssuingEngine  # noqa: E402
from storage.db import Database  # noqa: E402
from storage.migrate import upgrade  # noqa: E402
from storage.models import CodeKind, CodeRequest, Status  # noqa: E402

TICK = 0.1
CONCURRENCY = 64
DEADLINE = 600.0


def _engine(db: Database, erm: RestErm, url: str, erm_url: str) -> IssuingEngine:
    settings = load_settings(_env_file=None, DATABASE_URL=url, ERM_BASE_URL=erm_url, ERM_USERNAME="test@example.com",
                             ERM_PASSWORD="test1234")
    return IssuingEngine(db=db, erm=erm, settings=settings, clock=SystemClock(), max_concurrency=CONCURRENCY)


async def _issued(db: Database) -> int:
    async with db.read() as session:
        return int((await session.exec(select(func.count()).where(CodeRequest.status == Status.ISSUED))).one())


async def replica(url: str, erm_url: str, ids: list[str], start_at: float, total: int) -> None:
    """One replica: its share of the requests at ``start_at`` (wall clock), then pump until all are issued."""
    db = Database(url)
    async with RestErm(erm_url, "test@example.com", "test1234", timeout=30) as erm:
        engine = _engine(db, erm, url, erm_url)
        await erm.login()

        async def pump() -> None:
            while True:
                await engine.pump()
                await asyncio.sleep(TICK)

        await asyncio.sleep(max(0.0, start_at - time.time()))
        pumping = asyncio.create_task(pump())

        async def timed(device: str) -> float:
            began = time.perf_counter()
            answer = await engine.request(device, CodeKind.DAYS, 30)
            assert isinstance(answer, Accepted), answer
            return time.perf_counter() - began

        latencies = await asyncio.gather(*(timed(device) for device in ids))
        deadline = time.monotonic() + DEADLINE
        while await _issued(db) < total and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        pumping.cancel()
        await engine.close()
    await db.dispose()
    print(json.dumps(latencies))


async def _fresh_ledger(kind: str, admin: str, folder: str) -> tuple[str, str | None]:
    if kind == "sqlite":
        url = f"sqlite:///{folder}/ledger-{uuid.uuid4().hex[:6]}.db"
        await upgrade(url)
        return url, None
    name = f"paygbot_bench_{uuid.uuid4().hex[:8]}"
    plain = make_url(admin).set(drivername="postgresql")
    connection = await asyncpg.connect(plain.render_as_string(hide_password=False))
    await connection.execute(f'CREATE DATABASE "{name}"')
    await connection.close()
    url = plain.set(database=name).render_as_string(hide_password=False)
    await upgrade(url)
    return url, name


async def _drop(admin: str, name: str) -> None:
    plain = make_url(admin).set(drivername="postgresql").render_as_string(hide_password=False)
    connection = await asyncpg.connect(plain)
    await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await connection.close()


async def one_setting(kind: str, replicas: int, devices: int, latency: float, admin: str) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="paygbot-bench-") as folder:
        url, name = await _fresh_ledger(kind, admin, folder)
        try:
            async with sandbox_process(devices=devices, latency=latency) as (erm_url, ids):
                db = Database(url)
                async with RestErm(erm_url, "test@example.com", "test1234", timeout=30) as erm:
                    engine = _engine(db, erm, url, erm_url)
                    await engine.sync_devices()
                    await engine.close()
                ids = ids[:devices]
                start_at = time.time() + 3.0
                workers = [await asyncio.create_subprocess_exec(
                    sys.executable, __file__, "--replica", url, erm_url, json.dumps(ids[n::replicas]), str(start_at),
                    str(len(ids)), stdout=asyncio.subprocess.PIPE) for n in range(replicas)]
                outputs = [await worker.communicate() for worker in workers]
                latencies = [value for out, _ in outputs for value in json.loads(out.decode().strip().splitlines()[-1])]
                async with db.read() as session:
                    rows = (await session.exec(select(CodeRequest).where(col(CodeRequest.status) == Status.ISSUED))).all()
                await db.dispose()
        finally:
            if name is not None:
                await _drop(admin, name)
    assert len(rows) == len(ids), f"{len(rows)} of {len(ids)} issued"
    first = min(row.created_at for row in rows)
    last = max(row.issued_at for row in rows if row.issued_at is not None)
    wall = (last - first).total_seconds()
    ideal = math.ceil(len(rows) / (CONCURRENCY * replicas)) * latency
    return {"codes": len(rows), "wall": wall, "rate": len(rows) / wall, "p50": percentile(latencies, .5) * 1000,
            "p99": percentile(latencies, .99) * 1000, "ideal": ideal}


async def main(devices: int, latency: float, admin: str) -> None:
    print(f"{devices} devices, one days code each, ERM latency {latency:g} s, {CONCURRENCY} ERM calls at once per "
          f"replica, pump tick {TICK:g} s")
    print(f"{'ledger':<12}{'replicas':>9}{'codes/s':>9}{'wall s':>8}{'ideal s':>9}{'x ideal':>9}"
          f"{'request() p50 ms':>18}{'p99 ms':>9}")
    for kind, replicas in (("sqlite", 1), ("postgresql", 1), ("postgresql", 2), ("postgresql", 3)):
        figures = await one_setting(kind, replicas, devices, latency, admin)
        print(f"{kind:<12}{replicas:>9}{figures['rate']:>9.1f}{figures['wall']:>8.2f}{figures['ideal']:>9.2f}"
              f"{figures['wall'] / figures['ideal']:>9.2f}{figures['p50']:>18.1f}{figures['p99']:>9.1f}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--replica":
        _, _, url, erm_url, ids, start_at, total = sys.argv
        asyncio.run(replica(url, erm_url, json.loads(ids), float(start_at), int(total)))
        sys.exit(0)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--postgresql", default="postgresql://postgres@127.0.0.1:5432/test",
                        help="a PostgreSQL server and a database to connect to for administration")
    arguments = parser.parse_args()
    asyncio.run(main(arguments.devices, arguments.latency, arguments.postgresql))
