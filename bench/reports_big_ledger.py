"""The managers' /summary and /export of one day on a big ledger: 1,000,000 code requests over a
year (~2,700 a day), ~1,000 devices, and ~110,000 payments.

It loads the ledger in bulk (as bench/ledger_limit_check.py does), then times, for the last
full day: the summary's figures, its chart (PNG), and the CSV export, each several times; and
reports the peak memory of the process (targets: summary under 1 s, memory under 200 MB).

    python bench/reports_big_ledger.py [--rows 1000000] [--devices 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import resource
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from sqlalchemy import create_engine, insert

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import percentile  # noqa: E402
from bench.ledger_limit_check import load  # noqa: E402
from bot import reports, texts  # noqa: E402
from bot.clock import SystemClock  # noqa: E402
from storage.db import Database  # noqa: E402
from storage.migrate import upgrade  # noqa: E402
from storage.models import Payment, PaymentStatus  # noqa: E402

PAYMENTS_PER_DAY = 300


def load_payments(path: Path, devices: int, now_days: int, end: object) -> int:
    """About ``PAYMENTS_PER_DAY`` payments a day over the year, matched to random devices."""
    engine = create_engine(f"sqlite:///{path}")
    rng = random.Random(2)
    rows = []
    for index in range(now_days * PAYMENTS_PER_DAY):
        when = end - timedelta(seconds=rng.uniform(0, now_days * 86400))  # type: ignore[operator]
        device = rng.randint(1, devices)
        rows.append({"provider": "mpesa", "reference": f"REF{index:09d}", "amount": str(Decimal(rng.randint(50, 500))),
                     "currency": "KES", "account": f"BENCH{device:09d}", "received_at": when, "device_id": device,
                     "status": PaymentStatus.MATCHED, "days": 1})
    with engine.begin() as connection:
        columns = {column.name for column in Payment.__table__.columns}  # type: ignore[attr-defined]
        connection.execute(insert(Payment.__table__), [  # type: ignore[arg-type]
            {key: value for key, value in row.items() if key in columns} for row in rows])
    engine.dispose()
    return len(rows)


async def main(rows: int, devices: int) -> None:
    with tempfile.TemporaryDirectory(prefix="paygbot-reports-") as folder:
        path = Path(folder) / "ledger.db"
        url = f"sqlite:///{path}"
        await upgrade(url)
        now = SystemClock().now()
        started = time.perf_counter()
        # loading happens in another process, so the memory figure is the reports' alone
        with ProcessPoolExecutor(max_workers=1) as pool:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(pool, load, path, rows, devices, now)
            payments = await loop.run_in_executor(pool, load_payments, path, devices, 365, now)
        print(f"ledger: {rows:,} code requests, {payments:,} payments, {devices:,} devices; loaded in "
              f"{time.perf_counter() - started:.1f} s; {path.stat().st_size / 1e6:.0f} MB on disk")
        from zoneinfo import ZoneInfo

        tz = ZoneInfo("Africa/Nairobi")
        day = (now - timedelta(days=1)).astimezone(tz).date()
        db = Database(url)
        summary_ms, chart_ms, export_ms, sizes = [], [], [], []
        for _ in range(5):
            t0 = time.perf_counter()
            figures = await reports.summary(db, day, tz, now)
            texts.ENGLISH.summary_text(figures, tz, now)
            t1 = time.perf_counter()
            await reports.chart(db, day, tz, texts.ENGLISH)
            t2 = time.perf_counter()
            size = 0
            async for piece in reports.export_csv(db, day, day, tz, texts.ENGLISH):
                size += len(piece.encode())
            t3 = time.perf_counter()
            summary_ms.append((t1 - t0) * 1000)
            chart_ms.append((t2 - t1) * 1000)
            export_ms.append((t3 - t2) * 1000)
            sizes.append(size)
        await db.dispose()
    codes = sum(figures.codes.values())
    print(f"day {day}: {codes:,} codes, {sum(c for c, _ in figures.payments.values()):,} payments; "
          f"export {sizes[0] / 1e6:.2f} MB of CSV")
    for label, values in (("/summary figures + text", summary_ms), ("chart (14 days, PNG)", chart_ms),
                          ("/export of the day (CSV)", export_ms)):
        print(f"{label:<26} p50 {percentile(values, .5):7.1f} ms  max {max(values):7.1f} ms  (n={len(values)})")
    print(f"memory: peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--devices", type=int, default=1000)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.rows, arguments.devices))
