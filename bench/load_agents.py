"""Load: N field agents (default 150) each ask for a code at the same moment.

The stand-in Bot API enforces Telegram's published flood limit (about 30 messages a second in
all, answering 429 with ``retry_after`` past it; Telegram tolerates short bursts in one chat, so
no per-chat limit is set) and the ERM sandbox takes 300 ms per answer in its own process; the
bot runs here, with its real handlers, engine,
rate limiter and ledger (SQLite in a temporary folder). Every agent asks ``/days <own device> 1``;
the run ends when every code has reached its agent. It prints: codes delivered and lost, the
bot's send rate against the 30/s limit, 429s received, p50/p95 time from request to code
message, and the process's peak memory.

    python bench/load_agents.py [--agents 150] [--latency 0.3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("PTB_TIMEDELTA", "true")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import percentile, sandbox_process  # noqa: E402
from bot.app import running_bot  # noqa: E402
from bot.config import load_settings  # noqa: E402
from bot.standins.telegram import FakeBotApi, Sent, TelegramUser  # noqa: E402
from bot.standins.telegram.server import running  # noqa: E402
from storage import ledger  # noqa: E402
from storage.models import Role  # noqa: E402

TOKEN = "555000:load-test-token"
TELEGRAM_LIMIT = 30.0


async def main(agents: int, latency: float) -> None:
    api = FakeBotApi(TOKEN, messages_per_second=TELEGRAM_LIMIT)
    people = [TelegramUser(10_000 + n, f"Agent{n}") for n in range(agents)]
    with tempfile.TemporaryDirectory(prefix="paygbot-load-") as folder:
        async with sandbox_process(devices=agents + 10, latency=latency) as (erm_url, devices), \
                running(api) as base_url:
            settings = load_settings(
                _env_file=None, TELEGRAM_BOT_TOKEN=TOKEN, TELEGRAM_BASE_URL=base_url, ERM_BASE_URL=erm_url,
                ERM_USERNAME="test@example.com", ERM_PASSWORD="test1234", ERM_TIMEOUT_SECONDS="10",
                DATABASE_URL=f"sqlite:///{folder}/ledger.db", PAYGBOT_HTTP_PORT="0",
            )
            async with running_bot(settings) as bot:
                async with bot.services.db.write() as session:
                    for person in people:
                        await ledger.put_person(session=session, telegram_id=person.id, role=Role.AGENT,
                                                name=person.first_name, now=bot.services.clock.now())
                        api.meet(person)
                await bot.services.engine.sync_devices()  # every device known, as after the start-up sync
                start_position = api.position
                asked: dict[int, float] = {}
                started = time.perf_counter()
                for person, device in zip(people, devices, strict=False):
                    asked[person.id] = time.perf_counter()
                    await api.user_says(person, f"/days {device} 1")
                arrived: dict[int, float] = {}
                first_send: float | None = None
                deadline = time.perf_counter() + 300
                while len(arrived) < agents and time.perf_counter() < deadline:
                    sent: Sent = await api.wait_for(
                        lambda s: s.method == "sendMessage" and "🔑" in (s.rendered or "") and s.chat_id not in arrived,
                        after=start_position, timeout=max(1.0, deadline - time.perf_counter()))
                    now = time.perf_counter()
                    first_send = first_send or now
                    arrived[sent.chat_id] = now
                finished = time.perf_counter()
                messages = [s for s in api.sent[start_position:] if s.method in ("sendMessage", "sendPhoto")]
    latencies = [arrived[chat] - asked[chat] for chat in arrived]
    window = finished - (first_send or finished)
    rate = (len(messages) - 1) / window if window > 0 else float("nan")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"agents: {agents}, each /days for its own device at once; ERM latency {latency * 1000:.0f} ms "
          f"(sandbox in its own process); Bot API stand-in limit: {TELEGRAM_LIMIT:.0f} msg/s overall")
    print(f"codes delivered: {len(arrived)} of {agents} (lost: {agents - len(arrived)}); "
          f"messages sent: {len(messages)}; 429 answers: {api.rate_limited}")
    print(f"send rate: {rate:.1f} msg/s between the first and the last code message "
          f"= {rate / TELEGRAM_LIMIT:.0%} of Telegram's 30/s")
    print(f"request -> code message: p50 {percentile(latencies, 0.5):.2f} s  p95 {percentile(latencies, 0.95):.2f} s  "
          f"max {max(latencies):.2f} s; all {agents} done in {finished - started:.2f} s")
    print(f"memory: peak RSS of the bot's process {peak_mb:.0f} MB")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=150)
    parser.add_argument("--latency", type=float, default=0.3)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.agents, arguments.latency))
