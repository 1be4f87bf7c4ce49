"""Payments in: how many ``POST /payments`` the bot accepts per second, and how long a payment takes
to become the code message in the customer's chat.

The bot runs as it is deployed, ``paygbot run`` in its own process (PTB long polling, the HTTP side
on its event loop, the engine, the payment sweep, a fresh SQLite ledger), against the ERM sandbox
in another process (``paygbot sandbox --latency 0.2``: every ERM call takes 200 ms) and the Bot API
stand-in (:class:`bot.standins.telegram.FakeBotApi`) served from this process, which is also the payment
provider: it signs each body with ``PAYGBOT_WEBHOOK_SECRET`` and posts it over keep-alive
connections. Before the bot starts, the ledger gets every sandbox device with a daily price and a
customer whose chat is known, so each payment is matched at once (no ERM lookup).

1. **Payment to code message** (the bot otherwise idle): one payment at a time, each for another
   device, the next once the previous code message came; from the moment the request is written to
   the moment the stand-in receives the ``sendMessage`` to the customer's chat carrying the code the
   sandbox generated. Of that, one ERM call (200 ms) is the sandbox's.
2. **Accepted per second**: ``--payments`` payments for as many devices, ``--concurrency`` at a
   time; the rate is payments over the time from the first request to the last 2xx (every answer
   must be 2xx; it is sent once the payment is committed to the ledger). Matching, issuing and
   delivering go on in the same process meanwhile. Then: when the last of them was issued (the
   ledger), and how many code messages reached the customers (Telegram's 30 messages/s holds that
   back; the stand-in enforces it).

Takes about a minute with the defaults.

    python bench/payments_webhook.py [--payments 1000] [--concurrency 32] [--samples 40] [--latency 0.2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

os.environ.setdefault("PTB_TIMEDELTA", "true")

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx  # noqa: E402
from sqlmodel import col, func, select  # noqa: E402

from bench.common import COMMAND, cpu_seconds, percentile, sandbox_process  # noqa: E402
from bot.clock import SystemClock  # noqa: E402
from bot.http import free_port  # noqa: E402
from bot.payments import sign  # noqa: E402
from bot.standins.telegram import FakeBotApi, TelegramUser  # noqa: E402
from bot.standins.telegram.server import running  # noqa: E402
from storage import ledger  # noqa: E402
from storage.db import Database  # noqa: E402
from storage.migrate import upgrade  # noqa: E402
from storage.models import CodeRequest, DeviceAlias, Status  # noqa: E402

TOKEN = "123456:BENCH-token-for-the-stand-in"
SECRET = "bench-webhook-secret-0001"
PRICE = Decimal(10)
FIRST_CHAT = 5_000_000


async def prepare(db: Database, ids: list[str], api: FakeBotApi) -> dict[str, int]:
    """Every device with a daily price and a customer in Telegram: device id -> the customer's chat."""
    chats: dict[str, int] = {}
    now = SystemClock().now()
    async with db.write() as session:
        for n, ref in enumerate(ids):
            device, _ = await ledger.add_device(session=session, ids=[ref], now=now, label=ref)
            device.daily_price, device.currency = PRICE, "KES"
            customer = await ledger.put_customer(session=session, device=device, phone=f"2547{n:08d}",
                                                 name=f"Customer {n}", registered_by_id=None, now=now)
            chat = FIRST_CHAT + n
            await ledger.link_customer_chat(session=session, customer=customer, telegram_user_id=chat, chat_id=chat,
                                            language=None)
            api.meet(TelegramUser(chat, f"Customer{n}"))
            chats[ref] = chat
    return chats


def body(reference: str, device: str, days: int) -> bytes:
    return json.dumps({"reference": reference, "amount": str(PRICE * days), "currency": "KES",
                       "account": device}).encode()


class Connection:
    """One keep-alive HTTP/1.1 connection, written by hand: a load generator that costs far less than
    the server it measures (httpx tops out near 300 requests/s on this machine, any server)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def post(self, raw: bytes) -> tuple[int, bytes]:
        """POST /payments, signed; (status, body)."""
        self.writer.write(
            b"POST /payments HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"X-Paygbot-Signature: " + sign(SECRET, raw).encode() + b"\r\nContent-Length: "
            + str(len(raw)).encode() + b"\r\n\r\n" + raw
        )
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        length = next(int(line.split(b":", 1)[1]) for line in lines if line.lower().startswith(b"content-length:"))
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        self.writer.close()


async def wait_healthy(client: httpx.AsyncClient, process: asyncio.subprocess.Process) -> None:
    deadline = time.monotonic() + 60
    while True:
        if process.returncode is not None:
            raise RuntimeError("paygbot run exited")
        try:
            if (await client.get("/healthz")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("the bot's HTTP side did not come up")
        await asyncio.sleep(0.1)


async def settled_start(db: Database, api: FakeBotApi, devices: int, timeout: float = 120) -> None:
    """Until the bot's start-up work is done: every customer's command list set, the device sync through."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        async with db.read() as session:
            aliases = int((await session.exec(select(func.count()).select_from(DeviceAlias))).one())
        if aliases >= 3 * devices and len(api.all_commands) > devices:
            break
        await asyncio.sleep(0.2)
    await asyncio.sleep(1)


async def code_message(api: FakeBotApi, chat: int, after: int, timeout: float = 30) -> float:
    """perf_counter when the stand-in got the code message for ``chat`` (a ``<code>`` in it)."""
    sent = await api.wait_for(lambda s: s.chat_id == chat and "<code>" in (s.text or ""), after=after,
                              timeout=timeout, methods=("sendMessage",))
    return time.perf_counter() - (time.time() - sent.at.timestamp())


async def latency_phase(port: int, api: FakeBotApi, devices: list[str], chats: dict[str, int]
                        ) -> tuple[list[float], list[float]]:
    answered, delivered = [], []
    connection = await Connection.open(port)
    try:
        for n, device in enumerate(devices):
            after = api.position
            start = time.perf_counter()
            status, answer = await connection.post(body(f"LAT-{n:05d}", device, 3))
            answered.append(time.perf_counter() - start)
            assert status == 200, answer
            delivered.append(await code_message(api, chats[device], after) - start)
            await asyncio.sleep(0.05)
    finally:
        connection.close()
    return answered, delivered


async def throughput_phase(port: int, devices: list[str], concurrency: int) -> tuple[float, list[float], float]:
    raws = [body(f"TPUT-{n:06d}", device, 1 + n % 30) for n, device in enumerate(devices)]
    times: list[float] = []
    queue = iter(raws)
    connections = [await Connection.open(port) for _ in range(concurrency)]

    async def worker(connection: Connection) -> None:
        for raw in queue:
            start = time.perf_counter()
            status, answer = await connection.post(raw)
            times.append(time.perf_counter() - start)
            if status != 200:
                raise RuntimeError(f"{status}: {answer!r}")

    began = time.perf_counter()
    try:
        await asyncio.gather(*(worker(connection) for connection in connections))
    finally:
        for connection in connections:
            connection.close()
    elapsed = time.perf_counter() - began
    return elapsed, times, began


async def issued_count(db: Database, prefix: str) -> tuple[int, float | None]:
    async with db.read() as session:
        query = select(func.count(), func.max(CodeRequest.issued_at)).where(
            col(CodeRequest.status).in_((Status.ISSUED, Status.DELIVERED)),
            col(CodeRequest.payment_reference).startswith(prefix),
        )
        count, last = (await session.exec(query)).one()
    return int(count), last.timestamp() if last else None


async def main(payments: int, concurrency: int, samples: int, latency: float) -> None:
    api = FakeBotApi(TOKEN, messages_per_second=30, per_chat_per_second=1)
    with tempfile.TemporaryDirectory() as tmp:
        database_url = f"sqlite:///{tmp}/ledger.db"
        await upgrade(database_url)
        db = Database(database_url)
        async with sandbox_process(devices=payments + samples, latency=latency) as (erm_url, ids), \
                running(api) as base_url:
            chats = await prepare(db, ids, api)
            port = free_port()
            env = {key: value for key, value in os.environ.items()
                   if not key.startswith(("TELEGRAM_", "ERM_", "DATABASE_URL", "PAYGBOT_"))}
            env.update(TELEGRAM_BOT_TOKEN=TOKEN, TELEGRAM_BASE_URL=base_url, ERM_BASE_URL=erm_url,
                       ERM_USERNAME="test@example.com", ERM_PASSWORD="test1234", DATABASE_URL=database_url,
                       PAYGBOT_HTTP_PORT=str(port), PAYGBOT_WEBHOOK_SECRET=SECRET)
            process = await asyncio.create_subprocess_exec(*COMMAND, "run", cwd=tmp, env=env,
                                                           stderr=asyncio.subprocess.DEVNULL)
            try:
                async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
                    await wait_healthy(client, process)
                    await settled_start(db, api, len(ids))
                    answered, delivered = await latency_phase(port, api, ids[payments:payments + samples], chats)
                    sent_before = api.position
                    cpu_before = cpu_seconds(process.pid)
                    elapsed, times, began = await throughput_phase(port, ids[:payments], concurrency)
                    accepting_cpu = cpu_seconds(process.pid) - cpu_before
                    wall_began = time.time() - (time.perf_counter() - began)
                    deadline = time.monotonic() + 300
                    while (done := await issued_count(db, "TPUT-"))[0] < payments and time.monotonic() < deadline:
                        await asyncio.sleep(0.2)
                    codes_to_customers = sum(1 for s in api.sent[sent_before:] if "<code>" in (s.text or ""))
                    sent_for = time.time() - wall_began
            finally:
                process.send_signal(signal.SIGINT)
                await process.wait()
        await db.dispose()

    print(f"payments webhook: the bot as `paygbot run`, ERM sandbox at {latency * 1000:.0f} ms per call, "
          f"Bot API stand-in at 30 messages/s")
    print(f"1. payment to code message, one at a time ({samples} payments, one device each):")
    print(f"   2xx answer      median {percentile(answered, 0.5) * 1000:6.1f} ms   "
          f"p99 {percentile(answered, 0.99) * 1000:6.1f} ms")
    print(f"   code message    median {percentile(delivered, 0.5) * 1000:6.1f} ms   "
          f"p90 {percentile(delivered, 0.9) * 1000:6.1f} ms   p99 {percentile(delivered, 0.99) * 1000:6.1f} ms   "
          f"max {max(delivered) * 1000:6.1f} ms   (of which the ERM call: {latency * 1000:.0f} ms)")
    print(f"2. accepted: {payments} payments for {payments} devices, {concurrency} at a time:")
    print(f"   the bot's CPU meanwhile: {accepting_cpu:.2f} s in {elapsed:.2f} s "
          f"({accepting_cpu / elapsed:.0%} of a core; matching and issuing go on beside)")
    print(f"   {payments / elapsed:8.1f} payments/s accepted (all 2xx) in {elapsed:.2f} s; "
          f"answer median {percentile(times, 0.5) * 1000:.1f} ms, p99 {percentile(times, 0.99) * 1000:.1f} ms")
    issued, last = done
    if last is not None:
        print(f"   codes issued: {issued} of {payments}, the last {last - wall_began:.1f} s after the first payment")
    print(f"   code messages delivered by then: {codes_to_customers} ({sent_for:.1f} s; Telegram allows 30/s)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--payments", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--samples", type=int, default=40)
    parser.add_argument("--latency", type=float, default=0.2)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.payments, arguments.concurrency, arguments.samples, arguments.latency))
