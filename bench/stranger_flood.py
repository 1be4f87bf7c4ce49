"""One stranger floods the bot; how long does an agent wait for a code meanwhile?

The real bot (:func:`bot.app.running_bot`: PTB long polling, its rate limiter, the gate, the
engine, a fresh SQLite ledger) runs against the Bot API stand-in with Telegram's flood limits
switched on (30 messages a second overall, ``--per-chat`` a second to one chat: past them, 429
with ``retry_after``) and ``paygbot sandbox`` in its own process (``--latency`` per ERM call). A stranger
sends ``--flood`` messages as fast as the stand-in takes them; right after, an agent sends
``/days <device> 1``. Printed: the agent's wait from sending to the code message arriving (median
and worst of ``--rounds`` rounds, each with a fresh bot), how many messages the bot sent the
stranger, and how many 429 answers it got.

    python bench/stranger_flood.py [--flood 500] [--rounds 3] [--latency 0.3] [--per-chat 1]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("PTB_TIMEDELTA", "true")  # before telegram is imported: PTB 22 warns otherwise

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import sandbox_process  # noqa: E402
from bot.app import running_bot  # noqa: E402
from bot.config import load_settings  # noqa: E402
from bot.standins import telegram as botapi  # noqa: E402
from bot.standins.telegram.server import running  # noqa: E402
from storage.db import Database  # noqa: E402
from storage.ledger import put_person  # noqa: E402
from storage.migrate import upgrade  # noqa: E402
from storage.models import Role  # noqa: E402

TOKEN = "123456:BENCH-token"
AGENT = botapi.TelegramUser(2002, "Alex", "Kamau", language_code="en")
STRANGER = botapi.TelegramUser(4004, "Sam")


async def one_round(flood: int, erm_url: str, device: str, folder: Path, per_chat: float) -> tuple[float, int, int]:
    api = botapi.FakeBotApi(TOKEN, messages_per_second=30, per_chat_per_second=per_chat)
    url = f"sqlite:///{folder / 'ledger.db'}"
    await upgrade(url)
    db = Database(url)
    from bot.clock import SystemClock

    async with db.write() as session:
        await put_person(session=session, telegram_id=AGENT.id, role=Role.AGENT, name="Alex", now=SystemClock().now())
    await db.dispose()
    api.meet(AGENT)
    async with running(api) as base_url:
        settings = load_settings(
            _env_file=None, TELEGRAM_BOT_TOKEN=TOKEN, TELEGRAM_BASE_URL=base_url, ERM_BASE_URL=erm_url,
            ERM_USERNAME="test@example.com", ERM_PASSWORD="test1234", DATABASE_URL=url, PAYGBOT_HTTP_PORT="0",
        )
        async with running_bot(settings, http_host="127.0.0.1"):
            await asyncio.sleep(2)  # the device sync learns the sandbox's devices
            for number in range(flood):
                await api.user_says(STRANGER, f"/days {device} {number % 30 + 1}")
            started = time.perf_counter()
            after = api.position
            await api.user_says(AGENT, f"/days {device} 1")
            await api.wait_for(lambda sent: sent.chat_id == AGENT.id and "1 day" in (sent.rendered or ""),
                               after=after, timeout=1200)
            waited = time.perf_counter() - started
            stranger = len(api.sent_to(STRANGER.id))
            return waited, stranger, api.rate_limited


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flood", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--latency", type=float, default=0.3)
    parser.add_argument("--per-chat", type=float, default=1.0, help="the stand-in's messages a second to one chat")
    args = parser.parse_args()
    waits, told, refused = [], [], []
    async with sandbox_process(devices=8, latency=args.latency) as (erm_url, devices):
        for round_number in range(args.rounds):
            with tempfile.TemporaryDirectory() as folder:
                waited, stranger, too_many = await one_round(args.flood, erm_url, devices[round_number], Path(folder),
                                                               args.per_chat)
            waits.append(waited)
            told.append(stranger)
            refused.append(too_many)
    print(f"stranger flood: {args.flood} messages, ERM latency {args.latency * 1000:.0f} ms, flood limits 30/s and "
          f"{args.per_chat:g}/s to one chat, {args.rounds} rounds")
    print(f"  agent's /days -> code: median {statistics.median(waits):.2f} s, worst {max(waits):.2f} s")
    print(f"  messages sent to the stranger: {told}; 429 answers from the stand-in: {refused}")


if __name__ == "__main__":
    asyncio.run(main())
