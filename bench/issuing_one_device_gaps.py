"""Pacing of one device in real time: 10 days codes queued at once, the default 6 s gap.

The ERM sandbox runs as its own process (``paygbot sandbox``, its own 6 s check and some latency),
the ledger is a fresh SQLite file, and the real :class:`bot.issuing.IssuingEngine` pumps it on the
wall clock (its own kicks, plus a tick every 0.1 s as the bot's job would). It prints every gap
between consecutive generations, by the ERM's committed ``createdAt`` and by the ledger's
``issued_at``. The target is 6.0 to 6.2 s: never under the gap (the ERM would refuse), and not
later than needed. It takes about a minute.

The bot knows when it asked and when the answer came, not when the ERM committed between them. A device's gap counts
from the answer less part of the time the ERM surely spent before committing (:mod:`bot.issuing.anticipation`), so one
committed code to the next is the gap, plus the ERM's time on the next call up to its commit (the sandbox sleeps its
latency before committing), less that anticipation, plus the bot's own time from the answer to the next request.
Each code generation's request and answer are stamped at the ERM client's transport.

With ``--chat`` the codes are asked for as an agent would: a ``/days`` for each sent to ``paygbot run`` (its own
process, the Bot API stand-in), and the gaps are the ERM's ``createdAt`` once every code has reached the agent.

    python bench/issuing_one_device_gaps.py [--codes 10] [--latency 0.2] [--chat]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import httpx
from sqlmodel import col, select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import COMMAND, bot_process, sandbox_process, seed_ledger  # noqa: E402
from bot.clock import SystemClock  # noqa: E402
from bot.config import load_settings  # noqa: E402
from bot.erm.rest import RestErm  # noqa: E402
from bot.erm.transport import AiohttpTransport  # noqa: E402
from bot.erm.wire import GENERATIONS_AT_ONCE, READS_AT_ONCE  # noqa: E402
from bot.issuing import Accepted, IssuingEngine  # noqa: E402
from bot.standins.telegram import FakeBotApi, TelegramUser  # noqa: E402
from bot.standins.telegram.server import running  # noqa: E402
from storage.db import Database  # noqa: E402
from storage.migrate import upgrade  # noqa: E402
from storage.models import CodeKind, CodeRequest, Status  # noqa: E402

TICK = 0.1
TOKEN = "555000:gaps-token"
TARGET = (6.0, 6.2)


async def pump_every(engine: IssuingEngine, tick: float) -> None:
    """The bot's dispatch job: pump on a timer, on top of the engine's own kicks."""
    while True:
        await engine.pump()
        await asyncio.sleep(tick)


class StampedTransport(AiohttpTransport):
    """The ERM client's transport, stamping (wall clock) when each code generation's request leaves and its answer
    is in."""

    def __init__(self) -> None:
        super().__init__(connections=GENERATIONS_AT_ONCE + READS_AT_ONCE)
        self.generations: list[tuple[float, float]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        sent = time.time()
        response = await super().handle_async_request(request)
        if "Code" in request.url.path:
            self.generations.append((sent, time.time()))
        return response


def split(label: str, values: list[float]) -> None:
    ms = sorted(value * 1000 for value in values)
    print(f"{label} (ms): min {ms[0]:.1f}  median {statistics.median(ms):.1f}  max {ms[-1]:.1f}")


def gaps(times: list[datetime]) -> list[float]:
    return [(later - earlier).total_seconds() for earlier, later in zip(times, times[1:], strict=False)]


def report(label: str, values: list[float]) -> None:
    inside = sum(TARGET[0] <= value <= TARGET[1] for value in values)
    print(f"{label}: " + "  ".join(f"{value:.3f}" for value in values))
    print(f"{' ' * len(label)}  min {min(values):.3f} s  max {max(values):.3f} s  "
          f"({inside}/{len(values)} within {TARGET[0]:g}-{TARGET[1]:g} s)")


async def main(count: int, latency: float) -> None:
    with tempfile.TemporaryDirectory(prefix="paygbot-bench-") as folder:
        url = f"sqlite:///{folder}/ledger.db"
        await upgrade(url)
        db = Database(url)
        async with sandbox_process(devices=1, latency=latency) as (erm_url, ids):
            device = ids[0]
            settings = load_settings(
                _env_file=None, DATABASE_URL=url, ERM_BASE_URL=erm_url, ERM_USERNAME="test@example.com",
                ERM_PASSWORD="test1234",
            )
            transport = StampedTransport()
            async with RestErm(erm_url, "test@example.com", "test1234", timeout=settings.erm_timeout_seconds,
                               transport=transport) as erm:
                engine = IssuingEngine(db=db, erm=erm, settings=settings, clock=SystemClock())
                pumping = asyncio.create_task(pump_every(engine, TICK))
                answers = [await engine.request(device, CodeKind.DAYS, 1) for _ in range(count)]
                assert all(isinstance(answer, Accepted) for answer in answers), answers
                eta = [answer.eta.total_seconds() for answer in answers if isinstance(answer, Accepted)]
                deadline = time.monotonic() + count * (settings.min_gap_seconds + 5) + 30
                while True:
                    async with db.read() as session:
                        rows = (await session.exec(
                            select(CodeRequest).where(col(CodeRequest.status) == Status.ISSUED).order_by(
                                col(CodeRequest.issued_at))
                        )).all()
                    if len(rows) == count:
                        break
                    if time.monotonic() > deadline:
                        raise SystemExit(f"only {len(rows)} of {count} codes issued in time")
                    await asyncio.sleep(0.1)
                pumping.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await pumping
                await engine.close()
                history = (await erm.code_history(device, 0, 100)).events[::-1]
                resent = sum(1 for row in rows if row.attempts > 1)
        await db.dispose()

    print(f"device {device}: {count} days codes queued at once; min gap {settings.min_gap_seconds:g} s, "
          f"sandbox latency {latency:g} s, pump tick {TICK:g} s")
    print("promised eta (s): " + "  ".join(f"{value:.0f}" for value in eta))
    assert len(history) == count, f"the ERM committed {len(history)} codes, the ledger holds {count}"
    report("ERM createdAt gaps (s)", gaps([event.created_at for event in history]))
    report("ledger issued_at gaps (s)", gaps([row.issued_at for row in rows if row.issued_at is not None]))
    calls = transport.generations
    split("the ERM's time on a call, its latency included", [answer - sent for sent, answer in calls])
    split(f"from an answer to the next request, less {settings.min_gap_seconds:g} s (below 0: counted from before "
          "the answer)",
          [later[0] - earlier[1] - settings.min_gap_seconds for earlier, later in zip(calls, calls[1:], strict=False)])
    print(f"requests sent more than once (the ERM said not yet, or no answer): {resent}")


async def through_chat(count: int, latency: float) -> None:
    """``--chat``: an agent asks ``paygbot run`` for ``count`` codes of one device, one ``/days`` after another."""
    api, agent = FakeBotApi(TOKEN), TelegramUser(10_000, "Agent", language_code="en")
    api.meet(agent)
    with tempfile.TemporaryDirectory(prefix="paygbot-bench-") as folder:
        async with sandbox_process(devices=1, latency=latency) as (erm_url, ids), running(api) as base_url:
            device = ids[0]
            env = {"TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_BASE_URL": base_url, "ERM_BASE_URL": erm_url,
                   "ERM_USERNAME": "test@example.com", "ERM_PASSWORD": "test1234", "PAYGBOT_HTTP_PORT": "0",
                   "DATABASE_URL": f"sqlite:///{folder}/ledger.db"}
            await seed_ledger(env["DATABASE_URL"], [agent])
            async with bot_process([*COMMAND, "run"], env, folder):
                deadline = time.monotonic() + 60
                while not api.waiting_polls:
                    if time.monotonic() > deadline:
                        raise SystemExit(f"paygbot did not start: see {folder}/bot.log")
                    await asyncio.sleep(0.05)
                for n in range(count):
                    await api.user_says(agent, f"/days {device} {n + 1}")
                deadline = time.monotonic() + count * 7 + 30
                while sum("🔑" in (sent.rendered or "") for sent in api.sent if sent.chat_id == agent.id) < count:
                    if time.monotonic() > deadline:
                        raise SystemExit(f"not every code reached the agent: see {folder}/bot.log")
                    await asyncio.sleep(0.1)
                refused = (Path(folder) / "bot.log").read_text(errors="replace").count("the ERM says not yet")
            async with RestErm(erm_url, "test@example.com", "test1234") as erm:
                history = (await erm.code_history(device, 0, 100)).events[::-1]
    print(f"device {device}: {count} /days from one agent to paygbot run; sandbox latency {latency:g} s")
    assert len(history) == count, f"the ERM committed {len(history)} codes, the agent asked for {count}"
    report("ERM createdAt gaps (s)", gaps([event.created_at for event in history]))
    print(f"generations the ERM refused as too soon: {refused}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--codes", type=int, default=10)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--chat", action="store_true", help="ask through paygbot run, as an agent would")
    arguments = parser.parse_args()
    asyncio.run((through_chat if arguments.chat else main)(arguments.codes, arguments.latency))
