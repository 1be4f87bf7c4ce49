"""Load: N field agents (default 150) each ask for a code at the same moment; paygbot beside the plainest bot.

Two bots run one after the other under the same stand-ins, each in its own process as people run them:
paygbot (``paygbot run``: its handlers, engine, ledger on SQLite, rate limiter) and the reference bot
(:mod:`bench.reference_bot`: one PTB handler that calls the ERM and replies; no ledger, no pacing). For each:

- the ERM sandbox in its own process, ``--latency`` per answer (default 300 ms), without the route
  ``assignedItems/{id}`` (404, as an ERM that does not offer it; ``assignedItemsList`` is offered);
- the Bot API stand-in here, answering 429 with ``retry_after`` past 30 messages a second in all or past
  ``--chat-limit`` (default 5) a second to one chat;
- every agent known to the bot (paygbot: in the ledger, its menu registered by an earlier run — the measured
  run is a restart; the reference knows no one) and its chat open.

The moment the bot first polls (a busy morning just after a restart: the ledger knows none of the devices,
and the start-up device sync is still to come), every agent says ``/days <own device> 1`` at once; the
clock runs from the moment the updates are offered to the last code message received. Printed per bot: codes delivered and lost,
messages sent, their rate against Telegram's 30/s over that whole time, 429 answers, p50/p95 from request
to code, the bot's CPU seconds (user + system, from /proc) per code, the ERM's codes per device (one each:
no limit broken), then the ratio of paygbot's figures to the reference's.

    python bench/load_agents.py [--agents 150] [--latency 0.3] [--chat-limit 5] [--only paygbot|reference]
                                [--profile PREFIX]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("PTB_TIMEDELTA", "true")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx  # noqa: E402

from bench.common import COMMAND, bot_process, cpu_seconds, percentile, sandbox_process, seed_ledger  # noqa: E402
from bot.standins.telegram import FakeBotApi, TelegramUser  # noqa: E402
from bot.standins.telegram.server import running  # noqa: E402
from bot.standins.telegram.values import WaitTimeout  # noqa: E402

TOKEN = "555000:load-test-token"
TELEGRAM_LIMIT = 30.0
REFERENCE = [sys.executable, str(Path(__file__).resolve().with_name("reference_bot.py"))]


@dataclass
class Row:
    bot: str
    agents: int
    delivered: int
    messages: int
    rate: float
    rate_limited: int
    p50: float
    p95: float
    seconds: float
    first: float
    cpu: float
    erm_codes: int
    erm_most: int

    def show(self) -> str:
        return (f"{self.bot:<10} codes {self.delivered}/{self.agents} (lost {self.agents - self.delivered}), "
                f"{self.messages} messages at {self.rate:.1f}/s = {self.rate / TELEGRAM_LIMIT:.0%} of 30/s, "
                f"429s {self.rate_limited}, request -> code p50 {self.p50:.2f} s p95 {self.p95:.2f} s, "
                f"all in {self.seconds:.2f} s (the first code at {self.first:.2f} s); "
                f"CPU {self.cpu * 1000 / max(1, self.delivered):.1f} ms per code; "
                f"ERM codes {self.erm_codes} (at most {self.erm_most} a device)")


def menus_registered(api: FakeBotApi) -> int:
    """How many chats' command lists the bot has registered (each in every language)."""
    return len({key for key, _ in api.command_lists if '"chat_id"' in key})


async def warm_up(api: FakeBotApi, command: list[str], env: dict[str, str], folder: str, agents: int) -> None:
    """Run paygbot once until it has registered every agent's menu, as on the days before: the measured run is
    a restart, which registers again only the menus that changed. Its ERM holds none of the devices asked for
    later, so they stay new to the ledger."""
    async with sandbox_process(devices=0) as (erm_url, _), bot_process(command, {**env, "ERM_BASE_URL": erm_url},
                                                                      folder):
        deadline = time.perf_counter() + 60 + agents / 5
        while menus_registered(api) < agents:
            if time.perf_counter() > deadline:
                raise RuntimeError(f"paygbot did not register the agents' menus: see {folder}/bot.log")
            await asyncio.sleep(0.2)


async def measure(bot: str, agents: int, latency: float, chat_limit: float, profile: str | None = None) -> Row:
    api = FakeBotApi(TOKEN, messages_per_second=TELEGRAM_LIMIT, per_chat_per_second=chat_limit)
    people = [TelegramUser(10_000 + n, f"Agent{n}", language_code="en") for n in range(agents)]
    for person in people:
        api.meet(person)
    with tempfile.TemporaryDirectory(prefix="paygbot-load-") as folder:
        async with sandbox_process(devices=agents + 10, latency=latency, offers_item_lookup=False) as (erm_url, devices), \
                running(api) as base_url:
            env = {"TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_BASE_URL": base_url, "ERM_BASE_URL": erm_url,
                   "ERM_USERNAME": "test@example.com", "ERM_PASSWORD": "test1234", "ERM_TIMEOUT_SECONDS": "10",
                   "PAYGBOT_HTTP_PORT": "0", "DATABASE_URL": f"sqlite:///{folder}/ledger.db"}
            if bot == "paygbot":
                await seed_ledger(env["DATABASE_URL"], people)
                command = [*COMMAND, "run"]
                await warm_up(api, command, env, folder, agents)
            else:
                command = REFERENCE
            async with bot_process(command, env, folder) as pid:
                spy = None
                if profile:  # py-spy samples the bot's process from its start (attached before it polls: the measured
                    # run is unchanged, its devices still new to the ledger)
                    spy = await asyncio.create_subprocess_exec(
                        str(Path(sys.executable).with_name("py-spy")), "record", "--pid", str(pid), "--format",
                        "raw", "--output", f"{profile}-{bot}.txt", "--rate", "250", "--nonblocking",
                        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
                deadline = time.perf_counter() + 60
                while not api.waiting_polls:
                    if time.perf_counter() > deadline:
                        raise RuntimeError(f"{bot} did not start: see its output in {folder}/bot.log")
                    await asyncio.sleep(0.05)
                start_position, cpu_before = api.position, cpu_seconds(pid)
                asked: dict[int, float] = {}
                started = time.perf_counter()
                for person, device in zip(people, devices, strict=False):
                    asked[person.id] = time.perf_counter()
                    await api.user_says(person, f"/days {device} 1")
                arrived: dict[int, float] = {}
                deadline = time.perf_counter() + 60 + agents
                while len(arrived) < agents and time.perf_counter() < deadline:
                    try:
                        sent = await api.wait_for(
                            lambda s: s.method == "sendMessage" and "🔑" in (s.rendered or "")
                            and s.chat_id not in arrived, after=start_position,
                            timeout=max(1.0, deadline - time.perf_counter()))
                    except WaitTimeout:
                        log = (Path(folder) / "bot.log").read_text(errors="replace")
                        print(f"{bot}: {agents - len(arrived)} codes never came; the end of its output:\n"
                              f"{log[-3000:]}", file=sys.stderr)
                        break
                    arrived[sent.chat_id] = time.perf_counter()
                finished = time.perf_counter()
                cpu = cpu_seconds(pid) - cpu_before
                if spy is not None:
                    spy.send_signal(signal.SIGINT)
                    await spy.wait()
                messages = [s for s in api.sent[start_position:] if s.method in ("sendMessage", "sendPhoto")]
                if os.environ.get("LOAD_DUMP"):
                    Path(os.environ["LOAD_DUMP"]).write_text("\n".join(str(m.at.timestamp()) for m in messages))
            if os.environ.get("LOAD_KEEP_LOG"):
                Path(os.environ["LOAD_KEEP_LOG"]).write_bytes((Path(folder) / "bot.log").read_bytes())
            async with httpx.AsyncClient(base_url=erm_url) as probe:
                state = (await probe.get("/_sandbox/state")).json()
    counts = [device["codeCount"] for device in state["devices"]]
    latencies = [arrived[chat] - asked[chat] for chat in arrived]
    window = finished - started
    return Row(bot, agents, len(arrived), len(messages), len(messages) / window, api.rate_limited,
               percentile(latencies, 0.5), percentile(latencies, 0.95), window,
               min(arrived.values(), default=finished) - started, cpu, sum(counts), max(counts))


async def main(agents: int, latency: float, chat_limit: float, only: str | None, profile: str | None) -> None:
    print(f"{agents} agents, each /days for its own device (new to the ledger) at once; ERM latency "
          f"{latency * 1000:.0f} ms without assignedItems; Bot API stand-in: 429 past {TELEGRAM_LIMIT:.0f} msg/s "
          f"in all or {chat_limit:g}/s to one chat; timed from the updates offered to the last code received",
          flush=True)
    rows = {}
    for bot in ("paygbot", "reference"):
        if only in (None, bot):
            rows[bot] = await measure(bot, agents, latency, chat_limit, profile)
            print(rows[bot].show(), flush=True)
    if len(rows) == 2:
        ours, plain = rows["paygbot"], rows["reference"]
        print(f"paygbot / reference: send rate {ours.rate / plain.rate:.2f}x, p95 {ours.p95 / plain.p95:.2f}x "
              f"(lower is better), CPU per code {ours.cpu / max(plain.cpu, 1e-9):.2f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=150)
    parser.add_argument("--latency", type=float, default=0.3)
    parser.add_argument("--chat-limit", type=float, default=5.0)
    parser.add_argument("--only", choices=["paygbot", "reference"])
    parser.add_argument("--profile", metavar="PREFIX",
                        help="sample each bot with py-spy during the load: PREFIX-<bot>.txt (collapsed stacks)")
    arguments = parser.parse_args()
    asyncio.run(main(arguments.agents, arguments.latency, arguments.chat_limit, arguments.only, arguments.profile))
