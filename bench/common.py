"""What the benchmarks share: the ERM sandbox run as its own process, as ``paygbot sandbox``; the bot run as
``paygbot run`` in its own, on a ledger that knows its agents."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import httpx
from sqlalchemy.engine import make_url

from bot.clock import SystemClock
from bot.http import free_port
from bot.standins.telegram import TelegramUser
from storage import ledger
from storage.db import Database
from storage.migrate import upgrade
from storage.models import Role

_SCRIPT = Path(sys.executable).with_name("paygbot")
COMMAND = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "bot.cli"]


async def pg_admin(url: str, statement: str) -> None:
    """One statement on the PostgreSQL server of ``url`` outside a transaction (CREATE / DROP DATABASE)."""
    connection = await asyncpg.connect(make_url(url).set(drivername="postgresql").render_as_string(hide_password=False))
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_speed(runs: int = 5) -> float:
    """Milliseconds this machine takes, now, for a pure-Python loop of a million steps (the best of ``runs``).
    Its speed changes by 30-50% from one hour to the next: a latency is comparable only with one measured at a
    like figure."""
    best = float("inf")
    for _ in range(runs):
        began, total = time.perf_counter(), 0
        for step in range(1_000_000):
            total += step * step % 7
        best = min(best, time.perf_counter() - began)
    return best * 1000


def percentile(values: list[float], share: float) -> float:
    """The value below which ``share`` of ``values`` lie (nearest rank, no interpolation)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


@asynccontextmanager
async def sandbox_process(devices: int = 48, latency: float = 0.0, *, offers_item_lookup: bool = True
                          ) -> AsyncIterator[tuple[str, list[str]]]:
    """``paygbot sandbox`` on a free port; yields its URL and the OEM ids of its generated devices
    (``offers_item_lookup=False``: without the route ``assignedItems/{id}``)."""
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        *COMMAND, "sandbox", "--port", str(port), "--devices", str(devices), "--latency", str(latency),
        *([] if offers_item_lookup else ["--without-item-lookup"]), stderr=asyncio.subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=url) as probe:
            deadline = asyncio.get_running_loop().time() + 30
            while True:
                try:
                    state = (await probe.get("/_sandbox/state")).json()
                    break
                except httpx.ConnectError:
                    if asyncio.get_running_loop().time() > deadline:
                        raise RuntimeError("the sandbox did not start") from None
                    await asyncio.sleep(0.05)
        ids = [device["oemItemID"] for device in state["devices"] if device["oemItemID"].startswith("SBX")]
        yield url, ids
    finally:
        process.send_signal(signal.SIGTERM)
        await process.wait()


async def seed_ledger(url: str, people: list[TelegramUser]) -> None:
    """The agents, as ``paygbot users add`` would make them (one by one would take minutes for 500)."""
    await upgrade(url)
    db = Database(url)
    try:
        async with db.write() as session:
            for person in people:
                await ledger.put_person(session=session, telegram_id=person.id, role=Role.AGENT,
                                        name=person.first_name, now=SystemClock().now(), language="en")
    finally:
        await db.dispose()


@asynccontextmanager
async def bot_process(command: list[str], env: dict[str, str], folder: str) -> AsyncIterator[int]:
    """A bot in its own process (its output in ``folder``); yields its pid."""
    with open(Path(folder) / "bot.log", "wb") as output:
        process = await asyncio.create_subprocess_exec(*command, env={**os.environ, **env}, stdout=output,
                                                       stderr=output)
        try:
            yield process.pid
        finally:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(process.wait(), 30)
                except TimeoutError:
                    process.kill()
                    await process.wait()
