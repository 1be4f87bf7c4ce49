"""The bot's own time per ``/days`` update, split at the ERM call: median and p99.

The real bot (:func:`bot.app.running_bot`: PTB long polling, its rate limiter, the handlers, the
engine, a fresh SQLite ledger) runs against the Bot API stand-in (:class:`bot.standins.telegram.FakeBotApi`)
and the ERM sandbox at zero latency (:class:`bot.standins.erm.ErmSandbox`), both served over
loopback HTTP in this process, on the bot's event loop. Nothing in the bot is changed: from here,
each server's Starlette app gets one pure ASGI middleware that stamps ``time.perf_counter()`` when
a request reaches the app (its headers parsed) and when the last byte of its answer is handed to
the socket. Eight agents in turn send ``/days <device> 1`` N times, one at a time (the next only after the
code message came, plus ``--gap``), each for a different sandbox device, after one warm-up request from each
(a person's first update also registers their command menu: once, not a ``/days`` cost), and from 6 s after the
bot's start (its start-up jobs' first runs are over: :data:`STARTED`). Per update:

1. update in -> ERM call out: from the stand-in writing the ``getUpdates`` answer that carries the
   update (the moment the bot can have it) to the sandbox receiving ``POST /otp/daysCode/v2``;
2. ERM answer in -> message out: from the sandbox writing its answer to the stand-in receiving
   the ``sendMessage`` with the code (checked to be the code the sandbox generated);

their sum (the bot's own time), and end to end (update in -> code message in: the bot's own time
plus the sandbox's time on the call). Also the process's CPU time (``time.process_time``) from queueing the
update to the code message: the bot's CPU per ``/days`` with the two stand-ins' share for it (an upper bound). Also shown, as not the bot's: the stand-in's delay from
``user_says`` queueing the update to writing it in a ``getUpdates`` answer.

Device lookups: a device the ledger does not know yet makes the bot look it up first
(``GET /oves/assignedItems/<id>``). The bot's device sync, 1 s after start and every 6 h, learns
every assigned device, so normally there is none; by default the benchmark waits for that sync.
With ``--cold`` the sandbox fails the sync, so every ``/days`` looks its device up; (1) is always
measured to the daysCode call (so it includes the lookup's round trip), and the lookup's part is
printed on separate lines.

All on one event loop: the servers' own work (uvicorn parsing a request before the app sees it,
the stand-in answering PTB's next long poll) can interleave with the bot's and is then counted in
its time; one update at a time and a zero-latency sandbox keep that small. The gap keeps the bot
under the rate limiter's 29 messages/s, whose throttling is not what is measured here
(``--gap 0`` shows it). The bot's loggers are left unconfigured, so its INFO lines cost nothing.
Takes about 25 s.

With ``--apart`` the bot runs as ``paygbot run`` in a process of its own (its logging on, as deployed), the
stand-ins stay here: the times are the same stamps, with no stand-in's work on the bot's loop, and the CPU is
the bot's process alone, read from /proc over the measured updates (10 ms ticks, so a mean, not
percentiles; the pump's ticks while idle between updates included).

With ``--slow MS`` (one process) each measured update whose own time is over MS is listed with when it came (seconds
after the first measured one), and so is each garbage collection over 3 ms: what the p99 is made of (a manager's
summary drawn in a thread once held four updates for 40-80 ms).

    python bench/chat_days_latency.py [--requests 200] [--warmup 8] [--gap 0.05] [--cold] [--apart] [--slow MS]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("PTB_TIMEDELTA", "true")  # before telegram is imported: PTB 22 warns otherwise

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from starlette.applications import Starlette  # noqa: E402
from starlette.types import ASGIApp, Message, Receive, Scope, Send  # noqa: E402

from bench.common import COMMAND, cpu_seconds, machine_speed, percentile  # noqa: E402
from bench.load_agents import bot_process, seed_ledger  # noqa: E402
from bot.app import running_bot  # noqa: E402
from bot.clock import SystemClock  # noqa: E402
from bot.config import load_settings  # noqa: E402
from bot.standins import erm as erm_sandbox  # noqa: E402
from bot.standins.erm import ErmSandbox  # noqa: E402
from bot.standins.telegram import FakeBotApi, TelegramUser  # noqa: E402
from bot.standins.telegram import server as botapi  # noqa: E402
from storage import ledger  # noqa: E402
from storage.db import Database  # noqa: E402
from storage.models import Role  # noqa: E402

TOKEN = "123456:BENCH-token-for-the-stand-in"
MANAGER = TelegramUser(1001, "Mary", "Otieno", language_code="en")
AGENTS = [TelegramUser(2002 + index, f"Agent{index}", "Kamau", language_code="en") for index in range(8)]
"""The agents taking turns: one chat gets a message every ~0.5 s, under the bot's pace for one chat (five at once,
then four a second; Telegram asks for about one a second), whose waits are not the bot's own time."""
DAYS_CODE = "/otp/daysCode/v2"
LOOKUP = "/oves/assignedItems/"
SYNC = "/oves/assignedItemsList/"
WAIT = 15.0
"""Seconds to wait for a code message, or for the device sync."""
STARTED = 6.0
"""Seconds after the bot's start when its start-up work is over and the measured updates begin: the minute job's
first run at 2 s (on a fresh ledger it keeps the portfolio's last 12 weeks, ~12 ms on the loop) and the reminders'
first run at 5 s. Each is once per start, as the device sync and the menus are, not a cost of a ``/days``."""


# -- timing from the outside -------------------------------------------------------------------


@dataclass
class Exchange:
    """One HTTP request a server handled, as the middleware saw it (times by ``perf_counter``)."""

    path: str
    arrived: float
    """When the app was called: the request line and headers had been read."""
    answered: float | None = None
    """When the answer's last body message had been handed to the server (written to the socket)."""
    body: bytes = b""
    """The answer's body, if the middleware was asked to keep it for this path."""


class Stopwatch:
    """Pure ASGI middleware: appends an :class:`Exchange` per HTTP request to ``log`` on arrival,
    and stamps it when the answer has gone out."""

    def __init__(self, app: ASGIApp, *, log: list[Exchange], keep_body: Callable[[str], bool]) -> None:
        self.app = app
        self.log = log
        self.keep_body = keep_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        exchange = Exchange(scope["path"], time.perf_counter())
        self.log.append(exchange)
        keep = self.keep_body(exchange.path)

        async def timed_send(message: Message) -> None:
            await send(message)
            if message["type"] == "http.response.body":
                if keep:
                    exchange.body += message.get("body", b"")
                if not message.get("more_body", False):
                    exchange.answered = time.perf_counter()

        await self.app(scope, receive, timed_send)


def _is_get_updates(path: str) -> bool:
    return path.lower().endswith("/getupdates")


def handed_out(log: Sequence[Exchange], chat_id: int, message_id: int) -> float:
    """When the stand-in finished writing the ``getUpdates`` answer that carried this message."""
    for exchange in reversed(log):
        if not _is_get_updates(exchange.path) or exchange.answered is None or not exchange.body:
            continue
        for update in json.loads(exchange.body).get("result", []):
            message = update.get("message") or {}
            if message.get("message_id") == message_id and message.get("chat", {}).get("id") == chat_id:
                return exchange.answered
    raise LookupError(f"no getUpdates answer carried message {message_id} of chat {chat_id}")


# -- one update --------------------------------------------------------------------------------


@dataclass
class Sample:
    """The times of one ``/days`` update, by ``perf_counter``."""

    queued: float
    update_in: float
    erm_in: float
    erm_out: float
    message_in: float
    cpu: float = 0.0
    """CPU seconds of the whole process (bot and both stand-ins) from ``user_says`` to the code message."""
    lookups: list[Exchange] = field(default_factory=list)


async def one_days(api: FakeBotApi, sandbox: ErmSandbox, api_log: list[Exchange], erm_log: list[Exchange],
                   device: str, agent: TelegramUser) -> Sample:
    """``agent`` asks for 1 day on ``device``; returns the times once the code message came."""
    api_start, erm_start, after = len(api_log), len(erm_log), api.position
    cpu = time.process_time()
    message = await api.user_says(agent, f"/days {device} 1")
    queued = time.perf_counter()
    reply = await api.wait_for(agent.id, after=after, methods=("sendMessage",), timeout=WAIT)
    cpu = time.process_time() - cpu
    code = sandbox.device(device).codes[-1].keypad
    if code not in (reply.rendered or ""):
        raise RuntimeError(f"/days {device}: the reply does not carry the code {code}: {reply.short()}")
    erm = erm_log[erm_start:]
    [days_code] = [exchange for exchange in erm if exchange.path == DAYS_CODE]
    assert days_code.answered is not None
    message_in = next(exchange.arrived for exchange in api_log[api_start:]
                      if exchange.path.endswith("/sendMessage") and exchange.arrived > days_code.answered)
    return Sample(
        queued=queued,
        update_in=handed_out(api_log, agent.id, message["message_id"]),
        erm_in=days_code.arrived,
        erm_out=days_code.answered,
        message_in=message_in,
        cpu=cpu,
        lookups=[exchange for exchange in erm if exchange.path.startswith(LOOKUP)],
    )


# -- the run -----------------------------------------------------------------------------------


@dataclass
class StandIns:
    """The Bot API stand-in and the ERM sandbox with their stopwatches, as both runs use them."""

    sandbox: ErmSandbox
    api: FakeBotApi
    erm_app: Starlette
    api_app: Starlette
    devices: list[str]
    erm_log: list[Exchange] = field(default_factory=list)
    api_log: list[Exchange] = field(default_factory=list)

    @classmethod
    def make(cls, count: int, warmup: int, cold: bool) -> StandIns:
        sandbox = ErmSandbox(device_count=count + max(warmup, 10))
        api = FakeBotApi(TOKEN)
        stands = cls(sandbox, api, erm_sandbox.build_app(sandbox), botapi.build_app(api),
                     [device.oem_item_id for device in sandbox.devices if device.oem_item_id.startswith("SBX")])
        stands.erm_app.add_middleware(Stopwatch, log=stands.erm_log, keep_body=lambda path: False)
        stands.api_app.add_middleware(Stopwatch, log=stands.api_log, keep_body=_is_get_updates)
        if cold:
            sandbox.fail_next(1, status=503, paths=[SYNC])
        return stands

    async def ready(self, db: Database, cold: bool) -> None:
        """Until the bot's device sync has failed (``cold``) or put every sandbox device in the ledger."""
        if cold:
            await sync_failed(self.erm_log)
        else:
            await devices_synced(db, self.devices[-1])

    async def days(self, first: int, last: int, gap: float) -> list[Sample]:
        """``/days`` for devices ``first`` to ``last`` (excluded) one at a time, the agents taking turns."""
        samples = []
        for index in range(first, last):
            samples.append(await one_days(self.api, self.sandbox, self.api_log, self.erm_log, self.devices[index],
                                          AGENTS[index % len(AGENTS)]))
            await asyncio.sleep(gap)
        return samples


async def devices_synced(db: Database, last_device: str) -> None:
    """Until the bot's device sync has put every sandbox device in the ledger."""
    deadline = time.monotonic() + WAIT
    while True:
        async with db.read() as session:
            if await ledger.find_device(session=session, ref=last_device) is not None:
                return
        if time.monotonic() > deadline:
            raise SystemExit(f"the device sync did not learn {last_device} within {WAIT:g} s")
        await asyncio.sleep(0.05)


async def sync_failed(erm_log: list[Exchange]) -> None:
    """Until the sandbox has answered (failed) the bot's device sync."""
    deadline = time.monotonic() + WAIT
    while not any(exchange.path.startswith(SYNC) and exchange.answered is not None for exchange in erm_log):
        if time.monotonic() > deadline:
            raise SystemExit(f"the bot did not try its device sync within {WAIT:g} s")
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.1)  # the bot logs the failure and is done with it


async def run_apart(count: int, warmup: int, gap: float, cold: bool) -> tuple[list[Sample], float]:
    """The bot as ``paygbot run`` in its own process, the stand-ins in this one; also the bot's CPU seconds per
    measured update (its process's user + system time over the measured updates, from /proc, divided by their
    number: a mean, the pump's idle ticks in between included)."""
    stands = StandIns.make(count, warmup, cold)
    with tempfile.TemporaryDirectory(prefix="paygbot-bench-") as folder:
        url = f"sqlite:///{folder}/ledger.db"
        await seed_ledger(url, AGENTS)
        for person in (MANAGER, *AGENTS):
            stands.api.meet(person)
        async with erm_sandbox.running(stands.sandbox, app=stands.erm_app) as erm_url, \
                botapi.running(stands.api, app=stands.api_app) as base_url:
            env = {"TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_BASE_URL": base_url, "ERM_BASE_URL": erm_url,
                   "ERM_USERNAME": "test@example.com", "ERM_PASSWORD": "test1234", "DATABASE_URL": url,
                   "PAYGBOT_MANAGERS": str(MANAGER.id), "PAYGBOT_HTTP_PORT": "0"}
            async with bot_process([*COMMAND, "run"], env, folder) as pid:
                started = time.monotonic()
                db = Database(url)
                try:
                    await stands.ready(db, cold)
                finally:
                    await db.dispose()
                await stands.days(0, warmup, gap)
                await asyncio.sleep(max(0.0, started + STARTED - time.monotonic()))
                cpu = cpu_seconds(pid)
                samples = await stands.days(warmup, warmup + count, gap)
                cpu = cpu_seconds(pid) - cpu
            if stands.api.errors:
                raise SystemExit(f"the Bot API stand-in failed: {stands.api.errors}")
    return samples, cpu / count


async def run(count: int, warmup: int, gap: float, cold: bool, started: float = STARTED) -> list[Sample]:
    """The measured updates' samples, from ``started`` seconds after the bot's start (see :data:`STARTED`)."""
    stands = StandIns.make(count, warmup, cold)
    if cold:
        logging.getLogger("paygbot.jobs").setLevel(logging.ERROR)  # "device sync failed": wanted here
    with tempfile.TemporaryDirectory(prefix="paygbot-bench-") as folder:
        async with erm_sandbox.running(stands.sandbox, app=stands.erm_app) as erm_url, \
                botapi.running(stands.api, app=stands.api_app) as base_url:
            settings = load_settings(
                _env_file=None, TELEGRAM_BOT_TOKEN=TOKEN, TELEGRAM_BASE_URL=base_url, ERM_BASE_URL=erm_url,
                ERM_USERNAME="test@example.com", ERM_PASSWORD="test1234", DATABASE_URL=f"sqlite:///{folder}/ledger.db",
                PAYGBOT_MANAGERS=str(MANAGER.id), PAYGBOT_HTTP_PORT="0",
            )
            clock = SystemClock()
            stands.api.meet(MANAGER)
            async with running_bot(settings, clock=clock, http_host="127.0.0.1") as bot:
                start = time.monotonic()
                for agent in AGENTS:
                    async with bot.services.db.write() as session:
                        await ledger.put_person(session=session, telegram_id=agent.id, role=Role.AGENT,
                                                name=agent.name, now=clock.now())
                    stands.api.meet(agent)
                await stands.ready(bot.services.db, cold)
                await stands.days(0, warmup, gap)
                await asyncio.sleep(max(0.0, start + started - time.monotonic()))
                samples = await stands.days(warmup, warmup + count, gap)
            if stands.api.errors:
                raise SystemExit(f"the Bot API stand-in failed: {stands.api.errors}")
    return samples


# -- the report --------------------------------------------------------------------------------


def row(label: str, seconds: list[float]) -> None:
    ms = [value * 1000 for value in seconds]
    print(f"  {label:<46} {percentile(ms, 0.5):8.2f} {percentile(ms, 0.99):8.2f} {max(ms):8.2f}")


class Collections:
    """Each garbage collection's generation, start and end (``time.perf_counter``), while it listens."""

    def __init__(self) -> None:
        self.seen: list[tuple[int, float, float]] = []
        self._started = 0.0

    def __enter__(self) -> Collections:
        gc.callbacks.append(self._note)
        return self

    def __exit__(self, *_: object) -> None:
        gc.callbacks.remove(self._note)

    def _note(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.seen.append((info["generation"], self._started, time.perf_counter()))


def slow(samples: list[Sample], over: float, collections: Collections) -> None:
    """The updates over ``over`` seconds of own time, and the collections over 3 ms, by when they came."""
    start = samples[0].update_in
    for generation, began, ended in collections.seen:
        if began >= start and ended - began > 0.003:
            print(f"  collection of generation {generation} at {began - start:6.2f} s: {(ended - began) * 1000:.1f} ms")
    for number, sample in enumerate(samples):
        first, second = sample.erm_in - sample.update_in, sample.message_in - sample.erm_out
        if first + second > over:
            print(f"  update {number} at {sample.update_in - start:6.2f} s: own {(first + second) * 1000:.1f} ms "
                  f"= (1) {first * 1000:.1f} + (2) {second * 1000:.1f}")


def report(samples: list[Sample], warmup: int, gap: float, cold: bool, bot_cpu: float | None) -> None:
    with_lookup = [sample for sample in samples if sample.lookups]
    print(f"/days <device> 1: {len(samples)} updates measured after {warmup} warm-up, {len(AGENTS)} agents in turn, a different device "
          f"each, one at a time, {gap * 1000:g} ms between")
    print(("bot, Bot API stand-in and ERM sandbox (zero latency) in one process, one event loop; " if bot_cpu is None
           else "the bot as `paygbot run` in its own process; Bot API stand-in and ERM sandbox (zero latency) in this one; ")
          + ("device sync failed on purpose (--cold): every device looked up first" if cold
             else "devices known from the bot's device sync"))
    print("update in = the stand-in wrote the getUpdates answer carrying it (not when user_says queued it); "
          "message out = the stand-in received the sendMessage")
    print(f"device lookups (GET {LOOKUP}<id>) in the measured updates: {len(with_lookup)} of {len(samples)}; "
          f"(1) is measured to the daysCode call{', lookup included' if with_lookup else ''}")
    print(f"  {'ms':<46} {'p50':>8} {'p99':>8} {'max':>8}")
    row("(1) update in -> daysCode call in", [s.erm_in - s.update_in for s in samples])
    if with_lookup:
        row("    of which: update in -> lookup call in", [s.lookups[0].arrived - s.update_in for s in with_lookup])
        row("              sandbox's time on the lookup",
            [sum((x.answered or x.arrived) - x.arrived for x in s.lookups) for s in with_lookup])
        row("              lookup answer out -> daysCode in",
            [s.erm_in - (s.lookups[-1].answered or s.lookups[-1].arrived) for s in with_lookup])
    row("(2) daysCode answer out -> sendMessage in", [s.message_in - s.erm_out for s in samples])
    row("(1)+(2) the bot's own time", [(s.erm_in - s.update_in) + (s.message_in - s.erm_out) for s in samples])
    row("end to end: update in -> code message in", [s.message_in - s.update_in for s in samples])
    row("not the bot's: sandbox's time on daysCode", [s.erm_out - s.erm_in for s in samples])
    row("not the bot's: user_says -> update in", [s.update_in - s.queued for s in samples])
    if bot_cpu is None:
        row("CPU per /days (the whole process: bot + stand-ins)", [s.cpu for s in samples])
    else:
        print(f"  {'CPU per /days, the bot alone (mean, from /proc)':<46} {bot_cpu * 1000:8.2f}")
    print(f"count: {len(samples)}")
    print(f"this machine now: a pure-Python loop of a million steps in {machine_speed():.0f} ms (its speed changes "
          "by the hour: compare runs at like figures)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200, help="updates measured (default 200)")
    parser.add_argument("--warmup", type=int, default=len(AGENTS),
                        help=f"updates sent first and not measured (default {len(AGENTS)}: each agent's first, which "
                             "also registers their command menu)")
    parser.add_argument("--gap", type=float, default=0.05, help="seconds between updates (default 0.05)")
    parser.add_argument("--cold", action="store_true", help="fail the device sync: every /days looks its device up")
    parser.add_argument("--slow", type=float, metavar="MS", help="list the updates over MS ms of own time")
    parser.add_argument("--apart", action="store_true",
                        help="the bot as `paygbot run` in a process of its own (its CPU alone, as a mean)")
    arguments = parser.parse_args()
    bot_cpu: float | None = None
    with Collections() as collections:
        if arguments.apart:
            measured, bot_cpu = asyncio.run(run_apart(arguments.requests, arguments.warmup, arguments.gap,
                                                      arguments.cold))
        else:
            measured = asyncio.run(run(arguments.requests, arguments.warmup, arguments.gap, arguments.cold))
    report(measured, arguments.warmup, arguments.gap, arguments.cold, bot_cpu)
    if arguments.slow is not None:
        slow(measured, arguments.slow / 1000, collections)
