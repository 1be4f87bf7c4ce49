"""``paygbot plans import`` of a big portfolio: a 10,000-row CSV file onto a ledger that knows the devices.

A fresh SQLite ledger gets 10,000 devices straight away, each with its three ids as aliases (ERM id, OEM
item id, seller item id; as ``ledger.add_device`` keeps them), and five agents. The CSV file names each
device by one of its ids, most by the OEM id, some by the seller or ERM id; every fourth customer has two
devices; about half the rows carry a deposit, paid so far, credit until and an agent. Then, timed, through
:func:`bot.plans.importing.import_plans` (what the command runs): a dry run, the import, and a re-run of the
same file (all unchanged), each from reading the file to the end of its transaction. The ERM is never asked:
a look-up would fail the benchmark.

    python bench/plans_import.py [--rows 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import random
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date, timedelta
from pathlib import Path

from sqlalchemy import create_engine, func, insert
from sqlmodel import select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.clock import SystemClock  # noqa: E402
from bot.config import load_settings  # noqa: E402
from bot.plans.importing import DeviceLookup, Outcome, import_plans  # noqa: E402
from bot.plans.plan_file import read_plans  # noqa: E402
from storage.db import Database  # noqa: E402
from storage.migrate import upgrade  # noqa: E402
from storage.models import Customer, Device, DeviceAlias, Person, Plan, PlanEvent, Role  # noqa: E402

AGENTS = [7_000_000_001 + n for n in range(5)]


def ids(n: int) -> tuple[str, str, str]:
    """The ERM id, OEM item id and seller item id of device ``n``."""
    return f"{n:024x}", f"PIB{n:011d}", f"SELLERPIB{n:011d}"


def load(path: Path, devices: int) -> None:
    """The devices and their aliases, and the agents, in bulk."""
    engine = create_engine(f"sqlite:///{path}")
    now = SystemClock().now()
    with engine.begin() as connection:
        connection.execute(insert(Device.__table__), [  # type: ignore[arg-type]
            {"id": n, "erm_id": ids(n)[0], "label": ids(n)[1], "unlocked": False, "prepaid_days": 0,
             "credit_money": "0", "owed": "0", "verified": True, "created_at": now}
            for n in range(1, devices + 1)
        ])
        connection.execute(insert(DeviceAlias.__table__), [  # type: ignore[arg-type]
            {"alias": alias, "device_id": n} for n in range(1, devices + 1) for alias in ids(n)
        ])
        connection.execute(insert(Person.__table__), [  # type: ignore[arg-type]
            {"telegram_id": telegram_id, "name": f"Agent {n}", "role": Role.AGENT.name, "active": True,
             "language_chosen": False, "created_at": now}
            for n, telegram_id in enumerate(AGENTS, 1)
        ])
    engine.dispose()


def write_csv(path: Path, rows: int) -> None:
    rng = random.Random(3)
    today = date.today()
    with path.open("w", newline="", encoding="utf-8") as file:
        out = csv.writer(file)
        out.writerow(["device", "phone", "name", "total", "per_day", "currency", "deposit", "paid",
                      "credit_until", "agent", "status"])
        for n in range(1, rows + 1):
            person = n if n % 4 else n - 1  # every fourth customer has two devices
            device = ids(n)[rng.choices([0, 1, 2], weights=[1, 8, 1])[0]]
            total = rng.choice([15000, 24000, 30000, 45000])
            full = n % 2 == 0
            out.writerow([
                device, f"0712 {person // 1000:03d} {person % 1000:03d}", f"Customer {person}", total,
                total // 300, "KES", 1000 if full else "", rng.randint(0, total - 1) if full else "",
                (today + timedelta(days=rng.randint(-30, 30))).isoformat() if full else "",
                rng.choice(AGENTS) if full else "", "active",
            ])


@asynccontextmanager
async def no_erm() -> AsyncIterator[DeviceLookup]:
    raise RuntimeError("the benchmark's ledger knows every device: the ERM must not be asked")
    yield  # pragma: no cover


async def counts(db: Database) -> str:
    async with db.read() as session:
        figures = [(await session.exec(select(func.count()).select_from(table))).one()
                   for table in (Customer, Plan, PlanEvent)]
    return "{:,} customers, {:,} plans, {:,} plan events".format(*figures)


async def main(rows: int) -> None:
    with tempfile.TemporaryDirectory(prefix="paygbot-import-") as folder:
        path, csv_path = Path(folder) / "ledger.db", Path(folder) / "plans.csv"
        url = f"sqlite:///{path}"
        await upgrade(url)
        started = time.perf_counter()
        load(path, rows)
        write_csv(csv_path, rows)
        print(f"ledger: {rows:,} devices ({3 * rows:,} ids); {csv_path.stat().st_size / 1e6:.1f} MB of CSV, "
              f"{rows:,} rows; made in {time.perf_counter() - started:.1f} s")
        settings = load_settings(_env_file=None, DATABASE_URL=url, PAYGBOT_TIMEZONE="Africa/Nairobi")
        db = Database(url)
        try:
            for what, dry_run in (("dry run", True), ("import", False), ("re-run", False)):
                t0 = time.perf_counter()
                clock = SystemClock()
                plans = read_plans(csv_path, settings=settings, clock=clock)
                outcome: Outcome = await import_plans(plans, db=db, clock=clock, lookup=no_erm, dry_run=dry_run)
                spent = time.perf_counter() - t0
                assert not outcome.errors, outcome.errors[:5]
                print(f"{what:<8} {outcome.rows:,} rows in {spent:5.2f} s ({outcome.rows / spent:,.0f} rows/s): "
                      f"{outcome.new_plans:,} new plans, {outcome.unchanged:,} unchanged, "
                      f"{outcome.new_customers:,} new customers{', applied' if outcome.applied else ''}")
            print(f"ledger after: {await counts(db)}")
        finally:
            await db.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.rows))
