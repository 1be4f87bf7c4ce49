"""``/portfolio`` and the summary's portfolio line on a real portfolio: 100,000 plans started over three
years and about 10 million payment and code rows (a payment of 3–10 days every week or so, each with its code;
some customers stop paying, some plans are paid off or repossessed), on SQLite.

The ledger is loaded in bulk in another process (so that the memory figure is the bot's alone), then it
times, as the bot runs them:

- the first ``/portfolio`` on a ledger with no day kept yet (it works out and keeps the 12 weeks its chart
  and collection rates read: once, after the upgrade);
- ``/portfolio`` after that: its answer (figures, per agent, 7- and 30-day collection, the text), and with
  the 12-week chart PNG sent after it;
- the summary's line (PAR30 and the 7-day collection rate now and the day before);
- the next day's first ``/portfolio`` (one more day to work out and keep);

and prints p50 and max of each, and the peak RSS. Target: ``/portfolio`` and the summary line under 1 s.

    python bench/portfolio_big.py [--plans 100000] [--keep ledger.db]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import resource
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import percentile  # noqa: E402
from bot import texts  # noqa: E402
from bot.portfolio import chart, service  # noqa: E402
from storage.db import Database  # noqa: E402
from storage.migrate import upgrade  # noqa: E402

NOW = datetime(2026, 12, 2, 15, 0, tzinfo=UTC)
YEARS = 3
AGENTS = 200
PRICE = 50
TOTAL = PRICE * 540
TZ = ZoneInfo("Africa/Nairobi")


def _stamp(moment: datetime) -> str:
    """As the ledger stores times: naive UTC text."""
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ")


def load(path: Path, plans: int) -> tuple[int, int]:
    """People, customers, devices, plans with their events, payments and codes; returns (payments, codes)."""
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA synchronous=OFF")
    connection.execute("PRAGMA cache_size=-400000")
    indexes = [sql for (sql,) in connection.execute(
        "SELECT sql FROM sqlite_master WHERE type='index' AND sql IS NOT NULL AND tbl_name IN ('payment', "
        "'code_request')")]
    for (name,) in connection.execute("SELECT name FROM sqlite_master WHERE type='index' AND sql IS NOT NULL "
                                      "AND tbl_name IN ('payment', 'code_request')").fetchall():
        connection.execute(f'DROP INDEX "{name}"')  # built again after the load: sorting once is faster
    connection.execute("BEGIN")
    created = _stamp(NOW - timedelta(days=YEARS * 366))
    connection.executemany("INSERT INTO person (id, telegram_id, name, role, active, created_at, language_chosen) "
                           "VALUES (?, ?, ?, 'AGENT', 1, ?, 0)",
                           [(n, 10_000 + n, f"Agent {n}", created) for n in range(1, AGENTS + 1)])
    rng = random.Random(17)
    payments: list[tuple[object, ...]] = []
    codes: list[tuple[object, ...]] = []
    counts = [0, 0]

    def flush() -> None:
        connection.executemany(
            "INSERT INTO payment (id, provider, reference, amount, currency, account, received_at, device_id, "
            "status, days, prepaid_days, attempts, matched_at, plan_id, plan_paid) "
            "VALUES (?, 'mpesa', ?, ?, 'KES', ?, ?, ?, 'MATCHED', ?, 0, 0, ?, ?, ?)", payments)
        connection.executemany(
            "INSERT INTO code_request (device_id, device_ref, kind, days, source, payment_id, status, code, "
            "credit_until, attempts, not_before, created_at, issued_at, delivered_at, delivery_attempts) "
            "VALUES (?, ?, 'DAYS', ?, 'PAYMENT', ?, 'DELIVERED', '*123#', ?, 1, ?, ?, ?, ?, 1)", codes)
        counts[0] += len(payments)
        counts[1] += len(codes)
        payments.clear()
        codes.clear()

    for n in range(1, plans + 1):
        label = f"PF{n:09d}"
        started = NOW - timedelta(days=rng.uniform(1, YEARS * 365))
        kind = rng.random()
        stops = started + timedelta(days=rng.uniform(20, 400)) if kind < 0.25 else None  # stops paying
        credit: datetime | None = None
        paid = 0
        moment = started
        ended: datetime | None = None
        status = "ACTIVE"
        while True:
            moment += timedelta(days=rng.uniform(3, 10), hours=rng.uniform(0, 12))
            if moment >= NOW or (stops is not None and moment >= stops):
                break
            days = rng.randint(3, 10)
            amount = min(days * PRICE, TOTAL - paid)
            paid += amount
            credit = (credit if credit is not None and credit > moment else moment) + timedelta(days=days)
            payment_id = counts[0] + len(payments) + 1
            payments.append((payment_id, f"R{payment_id:010d}", str(amount), label, _stamp(moment), n, days,
                             _stamp(moment), n, str(paid)))
            codes.append((n, label, days, payment_id, _stamp(credit), _stamp(moment), _stamp(moment),
                          _stamp(moment), _stamp(moment + timedelta(seconds=2))))
            if paid >= TOTAL:
                ended, status = moment, "PAID_OFF"
                break
        if status == "ACTIVE" and stops is not None and rng.random() < 0.2 and stops + timedelta(days=90) < NOW:
            ended, status = stops + timedelta(days=90), "REPOSSESSED"
        agent = rng.randint(1, AGENTS)
        connection.execute("INSERT INTO customer (id, name, phone, registered_by_id, created_at, language_chosen) "
                           "VALUES (?, ?, ?, ?, ?, 0)", (n, f"Customer {n}", f"+2547{n:08d}", agent, _stamp(started)))
        connection.execute(
            "INSERT INTO device (id, erm_id, label, customer_id, daily_price, currency, credit_until, unlocked, "
            "prepaid_days, credit_money, created_at, verified, owed) VALUES (?, ?, ?, ?, ?, 'KES', ?, 0, 0, '0', ?, 1, "
            "'0')", (n, label, label, n, str(PRICE), _stamp(credit) if credit else None, _stamp(started)))
        connection.execute(
            "INSERT INTO plan (id, device_id, customer_id, total, daily_price, currency, deposit, opening_paid, paid, "
            "status, started_at, ended_at) VALUES (?, ?, ?, ?, ?, 'KES', '0', '0', ?, ?, ?, ?)",
            (n, n, n, str(TOTAL), str(PRICE), str(paid), status, _stamp(started), _stamp(ended) if ended else None))
        connection.execute("INSERT INTO plan_event (plan_id, at, kind, total, daily_price, currency, deposit, paid) "
                           "VALUES (?, ?, 'created', ?, ?, 'KES', '0', '0')", (n, _stamp(started), str(TOTAL), str(PRICE)))
        if ended is not None:
            connection.execute(
                "INSERT INTO plan_event (plan_id, at, kind, total, daily_price, currency, deposit, paid) "
                "VALUES (?, ?, ?, ?, ?, 'KES', '0', ?)",
                (n, _stamp(ended), status.lower(), str(TOTAL), str(PRICE), str(paid)))
        if len(payments) > 200_000:
            flush()
    flush()
    connection.execute("COMMIT")
    for sql in indexes:
        connection.execute(sql)
    connection.execute("ANALYZE")
    connection.close()
    return counts[0], counts[1]


def _timed(values: list[float]) -> Iterator[None]:
    started = time.perf_counter()
    yield
    values.append((time.perf_counter() - started) * 1000)


async def portfolio(db: Database, now: datetime, answer: list[float] | None = None) -> int:
    """What ``/portfolio`` does: the figures and the text (its answer, timed into ``answer``), then the chart."""
    started = time.perf_counter()
    health = await service.health(db, now, TZ)
    text = texts.ENGLISH.portfolio_text(health, "KES", {})
    if answer is not None:
        answer.append((time.perf_counter() - started) * 1000)
    picture = chart.chart(service.weeks(health), health.figures, texts.ENGLISH)
    return len(text) + len(picture)


async def main(plans: int, keep: Path | None) -> None:
    with tempfile.TemporaryDirectory(prefix="paygbot-portfolio-") as folder:
        path = keep or Path(folder) / "ledger.db"
        url = f"sqlite:///{path}"
        if not path.exists():
            await upgrade(url)
            started = time.perf_counter()
            with ProcessPoolExecutor(max_workers=1) as pool:
                made = await asyncio.get_running_loop().run_in_executor(pool, load, path, plans)
            print(f"ledger: {plans:,} plans, {made[0]:,} payments and {made[1]:,} codes ({sum(made):,} rows); "
                  f"loaded in {time.perf_counter() - started:.0f} s; {path.stat().st_size / 1e6:.0f} MB on disk")
        else:
            print(f"ledger: {path} as kept")
        with sqlite3.connect(path) as connection:
            connection.execute("DELETE FROM portfolio_day")  # every run starts with no day kept
        connection.close()
        db = Database(url)
        first: list[float] = []
        answer: list[float] = []
        warm: list[float] = []
        line: list[float] = []
        next_day: list[float] = []
        for _ in _timed(first):
            await portfolio(db, NOW)
        for _ in range(7):
            for _ in _timed(warm):
                await portfolio(db, NOW, answer)
            for _ in _timed(line):
                found = await service.summary_line(db, NOW.astimezone(TZ).date(), TZ, NOW)
        for _ in _timed(next_day):
            await portfolio(db, NOW + timedelta(days=1))
        health = await service.health(db, NOW, TZ)
        await db.dispose()
    figures = health.figures
    print(f"now: {figures.active:,} active, {figures.paid_off:,} paid off, {figures.repossessed:,} repossessed; "
          f"PAR30 {float(figures.par30 or 0):.1%}; collection 7 days {float(health.week.rate or 0):.1%}; "
          f"summary line {found}")
    for label, values in (("first /portfolio (keeps 12 weeks)", first), ("/portfolio: its text", answer),
                          ("/portfolio: text and chart", warm),
                          ("summary line", line), ("next day's first /portfolio", next_day)):
        print(f"{label:<34} p50 {percentile(values, .5):8.1f} ms  max {max(values):8.1f} ms  (n={len(values)})")
    print(f"memory: peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plans", type=int, default=100_000)
    parser.add_argument("--keep", type=Path, help="a ledger file to build once and reuse")
    arguments = parser.parse_args()
    asyncio.run(main(arguments.plans, arguments.keep))
