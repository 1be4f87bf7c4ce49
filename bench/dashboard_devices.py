"""The dashboard's device list on a big ledger: 100,000 devices, a page at a time.

It fills a fresh ledger (real migrations) in bulk: 50 agents; customers for most devices (nine in ten), each
registered by one of the agents; every device known by its label and its ERM id; credit ending anywhere from
60 days ago to 30 days ahead (some never given any, a few devices unlocked); a plan for two devices in five
(most active, some paid off or repossessed). Then it times ``ledger.dashboard.device_list`` — one read
transaction each, as the dashboard calls it — for:

- the first page of all the devices, and a page deep in the list (offset 50,000);
- a search by a fragment of a customer's name (a different surname each time, ~2,300 devices each) and by a
  customer's phone;
- the devices whose credit ends within three days, and those past due (first pages);
- one agent's devices (a different agent each time, ~1,800 each).

Then the same cases through the page itself: the whole bot runs on that ledger (``running_bot``: the Bot API
stand-in in process, the embedded ERM sandbox, the HTTP side on loopback), a manager's session is opened with
launch data signed as Telegram signs it, and ``GET /app/view/devices`` is timed from the request sent to the
answer read over loopback — the session and role checks, the query, the agents' names and the template.

It prints p50/p99 in ms of each (target: p99 under 50 ms), how many devices the last call found, and the
machine's load average (other work on it shows in the figures). The ledger is removed at the end.

    python bench/dashboard_devices.py [--devices 100000] [--repeat 200]
        [--postgresql postgresql://postgres@127.0.0.1:5432/test]   # the ledger on PostgreSQL instead
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import insert, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import percentile, pg_admin  # noqa: E402
from bot.app import running_bot  # noqa: E402
from bot.clock import SystemClock  # noqa: E402
from bot.config import load_settings  # noqa: E402
from bot.http import free_port  # noqa: E402
from bot.overview import PAGE  # noqa: E402
from bot.standins.telegram import FakeBotApi, StandInRequest, TelegramUser  # noqa: E402
from bot.standins.telegram.launch import launch_data  # noqa: E402
from storage import ledger  # noqa: E402
from storage.db import Database, async_url  # noqa: E402
from storage.migrate import upgrade  # noqa: E402
from storage.models import Customer, Device, DeviceAlias, Person, Plan, PlanStatus, Role  # noqa: E402

AGENTS = 50
CHUNK = 10_000
FIRST_NAMES = ["Amina", "Baraka", "Chege", "Daudi", "Esther", "Faith", "Grace", "Hassan", "Imani", "Juma",
               "Kamau", "Lilian", "Mercy", "Njeri", "Otieno", "Peter", "Rehema", "Said", "Tabitha", "Wanjiru"]
SURNAMES = ["Achieng", "Barasa", "Cheruiyot", "Dida", "Gitau", "Kariuki", "Kiprono", "Koech", "Macharia", "Muthoni",
            "Mwangi", "Nyambura", "Odhiambo", "Ochieng", "Omondi", "Onyango", "Ruto", "Wafula", "Wambui", "Waweru",
            "Kilonzo", "Mutua", "Ndungu", "Kimani", "Langat", "Chebet", "Jeptoo", "Auma", "Nekesa", "Makokha",
            "Wekesa", "Simiyu", "Kibet", "Rotich", "Tanui", "Korir", "Kosgei", "Cherono", "Mumbua", "Kavata"]
DESCRIPTIONS = ["Solar home system 40W", "Solar home system 80W", "Solar TV kit 24\"", "Solar lantern", "Water pump"]


def _ledger(devices: int, now: datetime) -> dict[type, list[dict[str, Any]]]:
    """The people, customers, devices, their ids and plans, as rows of each table (the same every run)."""
    rng = random.Random(7)
    created = now - timedelta(days=400)
    people = [{"id": n, "telegram_id": 700_000 + n, "name": f"Agent {n}", "role": Role.AGENT, "active": True,
               "language_chosen": False, "created_at": created} for n in range(1, AGENTS + 1)]
    customers: list[dict[str, Any]] = []
    device_rows: list[dict[str, Any]] = []
    aliases: list[dict[str, Any]] = []
    plans: list[dict[str, Any]] = []
    for n in range(1, devices + 1):
        customer_id = None
        if rng.random() < 0.9:
            customer_id = len(customers) + 1
            customers.append({"id": customer_id, "name": f"{rng.choice(FIRST_NAMES)} {rng.choice(SURNAMES)}",
                              "phone": f"+2547{customer_id:08d}", "registered_by_id": rng.randint(1, AGENTS),
                              "language_chosen": False, "created_at": created})
        label, erm_id = f"PV{n:08d}", f"{rng.getrandbits(96):024x}"
        roll = rng.random()
        credit = None if roll < 0.1 else now + timedelta(days=rng.uniform(-60, 30))
        price = Decimal(rng.choice([30, 40, 50, 70]))
        device_rows.append({
            "id": n, "erm_id": erm_id, "label": label, "customer_id": customer_id, "daily_price": price,
            "currency": "KES", "credit_until": credit, "unlocked": rng.random() < 0.03, "prepaid_days": 0,
            "credit_money": Decimal(0), "owed": Decimal(0), "verified": True, "description": rng.choice(DESCRIPTIONS),
            "created_at": created})
        aliases += [{"alias": label, "device_id": n}, {"alias": erm_id, "device_id": n}]
        if customer_id is not None and rng.random() < 0.45:
            status = rng.choices([PlanStatus.ACTIVE, PlanStatus.PAID_OFF, PlanStatus.REPOSSESSED], [85, 10, 5])[0]
            total = price * 540
            started = now - timedelta(days=rng.uniform(1, 360))
            plans.append({"device_id": n, "customer_id": customer_id, "total": total, "daily_price": price,
                          "currency": "KES", "deposit": Decimal(0), "opening_paid": Decimal(0),
                          "paid": total if status is PlanStatus.PAID_OFF else price * rng.randint(0, 500),
                          "status": status, "started_at": started,
                          "ended_at": None if status is PlanStatus.ACTIVE else started + timedelta(days=200)})
    return {Person: people, Customer: customers, Device: device_rows, DeviceAlias: aliases, Plan: plans}


async def load(url: str, devices: int, now: datetime) -> dict[type, list[dict[str, Any]]]:
    """The ledger in bulk (executemany per chunk), then ANALYZE."""
    rows = _ledger(devices, now)
    engine = create_async_engine(async_url(url))
    async with engine.begin() as connection:
        if connection.dialect.name == "sqlite":
            await connection.exec_driver_sql("PRAGMA synchronous=OFF")
        for table, values in rows.items():
            for first in range(0, len(values), CHUNK):
                await connection.execute(insert(table.__table__), values[first:first + CHUNK])  # type: ignore[attr-defined]
        if connection.dialect.name == "postgresql":
            for table in ("person", "customer", "device"):
                await connection.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                              f"(SELECT max(id) FROM {table}))"))
    async with engine.connect() as connection:
        await _analyze(connection)
    await engine.dispose()
    return rows


async def _analyze(connection: AsyncConnection) -> None:
    """Statistics for the planner; on PostgreSQL the visibility map too, as autovacuum keeps it (an index-only
    scan reads the table for every row of a page not marked all-visible)."""
    if connection.dialect.name == "postgresql":
        await connection.execution_options(isolation_level="AUTOCOMMIT")
        await connection.execute(text("VACUUM ANALYZE"))
        return
    await connection.execute(text("ANALYZE"))
    await connection.commit()


WARM_UP = 10
"""Untimed calls first: connections opened, SQLAlchemy's statement cache filled, pages in memory."""


async def timed(repeat: int, work: Callable[[int], Awaitable[int]]) -> tuple[list[float], int]:
    """Milliseconds per call of ``work(i)``, and how many devices the last call found in all."""
    for index in range(repeat, repeat + WARM_UP):
        await work(index)
    spent, found = [], 0
    for index in range(repeat):
        started = time.perf_counter()
        found = await work(index)
        spent.append((time.perf_counter() - started) * 1000)
    return spent, found


def line(label: str, values: list[float], found: int) -> str:
    return (f"{label:<36} p50 {percentile(values, .5):6.2f} ms  p99 {percentile(values, .99):6.2f} ms  "
            f"max {max(values):6.2f} ms  (n={len(values)}, {found:,} found)")


async def main(devices: int, repeat: int, postgresql: str | None) -> None:
    with tempfile.TemporaryDirectory(prefix="paygbot-bench-") as folder:
        url, database = f"sqlite:///{Path(folder) / 'ledger.db'}", None
        if postgresql is not None:
            database = f"paygbot_bench_{random.getrandbits(32):08x}"
            await pg_admin(postgresql, f'CREATE DATABASE "{database}"')
            url = make_url(postgresql).set(drivername="postgresql", database=database).render_as_string(
                hide_password=False)
        try:
            await upgrade(url)
            now = SystemClock().now()
            started = time.perf_counter()
            rows = await load(url, devices, now)
            load_seconds = time.perf_counter() - started
            phones = [customer["phone"] for customer in rows[Customer]]
            fragments = [surname[1:6].lower() for surname in SURNAMES]  # "wangi", "chien", … inside the name
            db = Database(url)

            def listing(**filters: Any) -> Callable[[int], Awaitable[int]]:
                async def work(index: int) -> int:
                    chosen = {key: value(index) if callable(value) else value for key, value in filters.items()}
                    async with db.read() as session:
                        page, total = await ledger.dashboard.device_list(session=session, now=now, **chosen)
                    assert page or not total or chosen.get("offset", 0) >= total
                    return total
                return work

            deep = min(50_000, devices // 2)
            cases = [
                ("all, first page", listing()),
                (f"all, offset {deep:,}", listing(offset=deep)),
                ("search: part of a customer's name", listing(text=lambda i: fragments[i % len(fragments)])),
                ("search: a customer's phone", listing(phone=lambda i: phones[(i * 7919) % len(phones)])),
                ("show=ending (3 days)", listing(show="ending")),
                ("show=past_due", listing(show="past_due")),
                ("one agent's devices", listing(agent_id=lambda i: 1 + i % AGENTS)),
            ]
            results = [(label, *await timed(repeat, work)) for label, work in cases]
            await db.dispose()
            pages = await through_the_page(url, repeat, deep, fragments, phones)
        finally:
            if database is not None and postgresql is not None:
                await pg_admin(postgresql, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')

    print(f"ledger ({'PostgreSQL' if database else 'SQLite'}): {devices:,} devices, {len(rows[Customer]):,} customers "
          f"of {AGENTS} agents, {len(rows[DeviceAlias]):,} ids, {len(rows[Plan]):,} plans; bulk load "
          f"{load_seconds:.1f} s")
    print("ledger.dashboard.device_list, one read transaction:")
    for label, values, found in results:
        print(line(label, values, found))
    print("GET /app/view/devices (the list as the page asks for it), request to answer over loopback:")
    for label, values, found in pages:
        print(line(label, values, found))
    print("load average over 1, 5, 15 min: " + ", ".join(f"{load:.2f}" for load in os.getloadavg())
          + f" ({os.cpu_count()} CPUs)")


MANAGER = 1001
TOKEN = "123456:BENCH-token-for-the-stand-in"
SETTLE = 15.0


async def through_the_page(url: str, repeat: int, deep: int, fragments: list[str],
                           phones: list[str]) -> list[tuple[str, list[float], int]]:
    """The device list timed through ``GET /app/view/devices`` of the running bot."""
    port = free_port()
    settings = load_settings(_env_file=None, TELEGRAM_BOT_TOKEN=TOKEN, DATABASE_URL=url, PAYGBOT_HTTP_PORT=str(port),
                             PAYGBOT_PUBLIC_URL=f"http://127.0.0.1:{port}", PAYGBOT_MANAGERS=str(MANAGER))
    api = FakeBotApi(TOKEN)
    api.meet(TelegramUser(MANAGER, "Mary"))
    async with running_bot(settings, http_host="127.0.0.1", telegram=lambda: StandInRequest(api)), \
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        # The start-up jobs go first (the device sync at 1 s, the managers' jobs at 2 s, the reminders at 5 s
        # over 100,000 devices): the figures are of the page, not of those sharing the loop with it.
        await asyncio.sleep(SETTLE)
        launch = launch_data(TelegramUser(MANAGER, "Mary"), TOKEN, SystemClock().now())
        opened = (await client.post("/app/session", data={"init_data": launch})).json()
        headers = {"Authorization": f"Bearer {opened['token']}", "HX-Target": "device-list"}

        def page(**params: Any) -> Callable[[int], Awaitable[int]]:
            async def work(index: int) -> int:
                chosen = {key: value(index) if callable(value) else value for key, value in params.items()}
                answer = await client.get("/app/view/devices", params=chosen, headers=headers)
                assert answer.status_code == 200, answer.status_code
                counted = re.search(r"of ([0-9,]+)</p>", answer.text)  # "1–50 of 2,270"
                return int(counted[1].replace(",", "")) if counted else 0
            return work

        cases = [
            ("all, first page", page()),
            (f"all, page {deep // PAGE + 1:,}", page(page=str(deep // PAGE + 1))),
            ("search: part of a customer's name", page(q=lambda i: fragments[i % len(fragments)])),
            ("search: a customer's phone", page(q=lambda i: phones[(i * 7919) % len(phones)])),
            ("show=ending (3 days)", page(show="ending")),
            ("show=past_due", page(show="past_due")),
            ("one agent's devices", page(agent=lambda i: str(1 + i % AGENTS))),
        ]
        return [(label, *await timed(repeat, work)) for label, work in cases]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--postgresql", default=None, metavar="ADMIN_URL",
                        help="the ledger in a new database on this PostgreSQL server (dropped at the end)")
    arguments = parser.parse_args()
    asyncio.run(main(arguments.devices, arguments.repeat, arguments.postgresql))
