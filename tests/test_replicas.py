"""Three ``paygbot run`` replicas on one PostgreSQL ledger are one bot: the Bot API stand-in POSTs its updates
through a round-robin load balancer (webhook mode), 25 agents ask 200 codes for 25 devices at once, some
updates are POSTed twice to two replicas at the same moment, and one replica is killed (``kill -9``) while the
queue is full. Then: every code was generated exactly once and reached its agent, no device was paced too
closely or past its daily limit at the ERM sandbox, the replicas kept Telegram's limits together, and each
manager had one daily summary."""

from __future__ import annotations

import asyncio
import itertools
import signal
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlmodel import select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bot.http import free_port, serving
from bot.standins.erm import running as erm_running
from bot.standins.telegram import FakeBotApi, TelegramUser
from bot.standins.telegram.server import running as telegram_running
from bot.telegram_webhook import SECRET_HEADER
from storage import ledger
from storage.db import Database
from storage.models import CodeRequest, Role, Status
from tests.support.chat import REPLIES, TOKEN
from tests.support.cli import COMMAND, environment
from tests.support.databases import PostgresqlLedgers
from tests.support.waiting import eventually
from tests.test_properties import RecordingSandbox
from tests.test_telegram_webhook import raw_update

pytestmark = pytest.mark.sqlite_only  # not parametrised: several processes need PostgreSQL

REPLICAS, DEVICES, PER_DEVICE = 3, 25, 8
MIN_GAP = 2.0
SECRET = "replicas-share-this-secret"
MANAGERS = [TelegramUser(1001, "Mary"), TelegramUser(1002, "Moses")]
AGENTS = [TelegramUser(5001 + n, f"Agent{n}") for n in range(DEVICES)]
STAND_IN_PER_SECOND = 45
"""The stand-in's flood limit here: Telegram's 30 a second, and room for the stand-in itself. It stamps each
message in this test's process, which shares two cores with the three replicas, the ERM sandbox and the other
test workers: when that process falls behind, a backlog of messages that the replicas sent 1/26 s apart is
stamped at once (at a limit of 33: 17 answers of 429 in one CI run, 4 in another). Replicas that do not share
their pace (each with its own :class:`bot.telegram_pace.LocalRateLimiter`) are answered 429 54 times even at
45; the shared pace itself is held to 30 in any second in :mod:`tests.test_telegram_pace`, by the ledger's
clock."""


@pytest.fixture
def postgresql_url(postgresql_ledgers: PostgresqlLedgers | None) -> Iterator[str]:
    if postgresql_ledgers is None:
        pytest.skip("no PostgreSQL reachable (PAYGBOT_TEST_POSTGRESQL_URL)")
    url = postgresql_ledgers.new()
    yield url
    postgresql_ledgers.drop(url)


@asynccontextmanager
async def load_balancer(ports: list[int]) -> AsyncIterator[tuple[str, Counter[int]]]:
    """``POST /telegram`` to each replica in turn; a replica that does not answer: 502 (Telegram sends again)."""
    turn = itertools.cycle(range(len(ports)))
    served: Counter[int] = Counter()
    async with httpx.AsyncClient(timeout=30) as client:
        async def forward(request: Request) -> Response:
            replica = next(turn)
            try:
                answer = await client.post(f"http://127.0.0.1:{ports[replica]}/telegram", content=await request.body(),
                                           headers={SECRET_HEADER: request.headers.get(SECRET_HEADER, ""),
                                                    "content-type": "application/json"})
            except httpx.HTTPError:
                return Response(status_code=502)
            served[replica] += 1
            return Response(answer.content, status_code=answer.status_code, media_type="application/json")

        async with serving(Starlette(routes=[Route("/telegram", forward, methods=["POST"])]), 0,
                           host="127.0.0.1") as port:
            yield f"http://127.0.0.1:{port}/telegram", served


async def test_three_replicas_are_one_bot(postgresql_url: str, tmp_path: Path) -> None:
    sandbox = RecordingSandbox(min_gap_seconds=MIN_GAP, device_count=DEVICES + 5)
    devices = [device.oem_item_id for device in sandbox.devices[:DEVICES]]
    db = Database(postgresql_url)
    now = datetime.now(UTC)
    async with db.write() as session:
        for agent in AGENTS:
            await ledger.put_person(session=session, telegram_id=agent.id, role=Role.AGENT, name=agent.name, now=now)
    api = FakeBotApi(TOKEN, messages_per_second=STAND_IN_PER_SECOND)
    for person in (*MANAGERS, *AGENTS):
        api.meet(person)
    ports = [free_port() for _ in range(REPLICAS)]
    summary_at = max(now - timedelta(minutes=1), now.replace(hour=0, minute=0))
    processes: list[asyncio.subprocess.Process] = []
    async with AsyncExitStack() as stack:
        telegram_url = await stack.enter_async_context(telegram_running(api))
        erm_url = await stack.enter_async_context(erm_running(sandbox))
        webhook_url, served = await stack.enter_async_context(load_balancer(ports))
        for port in ports:
            env = environment(tmp_path, TELEGRAM_BOT_TOKEN=TOKEN, TELEGRAM_BASE_URL=telegram_url,
                              DATABASE_URL=postgresql_url, ERM_BASE_URL=erm_url, ERM_USERNAME="test@example.com",
                              ERM_PASSWORD="test1234", ERM_TIMEOUT_SECONDS="3", PAYGBOT_HTTP_PORT=str(port),
                              PAYGBOT_MIN_GAP_SECONDS=str(MIN_GAP), PAYGBOT_MANAGERS=",".join(str(m.id) for m in MANAGERS),
                              PAYGBOT_SUMMARY_TIME=summary_at.strftime("%H:%M"), TELEGRAM_WEBHOOK_URL=webhook_url,
                              TELEGRAM_WEBHOOK_SECRET=SECRET)
            processes.append(await asyncio.create_subprocess_exec(*COMMAND, "run", cwd=tmp_path, env=env,
                                                                  stderr=asyncio.subprocess.DEVNULL))
        try:
            async with httpx.AsyncClient(timeout=60) as client:  # a POST is answered once its update is handled
                async def healthy() -> bool:
                    for port in ports:
                        try:
                            if (await client.get(f"http://127.0.0.1:{port}/healthz")).status_code != 200:
                                return False
                        except httpx.HTTPError:
                            return False
                    return api.webhook is not None
                await eventually(healthy, "three replicas up, the webhook set", timeout=60)

                # 200 codes asked at once: through Telegram (the load balancer spreads them), and a copy of
                # one update per device POSTed to two replicas at the same moment
                asked = []
                for n, (agent, device) in enumerate(zip(AGENTS, devices, strict=True)):
                    for _ in range(PER_DEVICE - 1):
                        asked.append(api.user_says(agent, f"/days {device} 1"))
                    twice = raw_update(800_000 + n, f"/days {device} 1")
                    twice["message"]["chat"]["id"] = twice["message"]["from"]["id"] = agent.id
                    twice["message"]["from"] = agent.to_dict()
                    asked += [client.post(f"http://127.0.0.1:{ports[r]}/telegram", json=twice,
                                          headers={SECRET_HEADER: SECRET}) for r in (1, 2)]
                await asyncio.gather(*asked)

                total = DEVICES * PER_DEVICE
                await eventually(lambda: sum(len(d.codes) for d in sandbox.devices) >= total // 3,
                                 "a third of the codes", timeout=120)
                processes[0].send_signal(signal.SIGKILL)  # mid-queue: claims, deliveries, updates in hand
                await processes[0].wait()

                def codes_told() -> int:
                    return sum(1 for sent in api.sent if sent.method in REPLIES and "Type the code" in (sent.rendered
                                                                                                        or ""))

                await eventually(lambda: codes_told() >= total, "every code told to its agent", timeout=240)

                statuses: Counter[Status] = Counter()

                async def settled() -> bool:
                    async with db.read() as session:
                        statuses.clear()
                        statuses.update((await session.exec(select(CodeRequest.status))).all())
                    return statuses == {Status.DELIVERED: total}
                try:
                    await eventually(settled, "every request delivered, none left in the queue", timeout=60)
                except AssertionError as exc:
                    raise AssertionError(f"{exc}: {dict(statuses)}") from None
                await eventually(lambda: all(any("Summary for" in (sent.rendered or "") for sent in api.sent_to(m))
                                             for m in MANAGERS), "the summary", timeout=90)
        finally:
            for process in processes[1:]:
                if process.returncode is None:
                    process.send_signal(signal.SIGTERM)
            codes = [await asyncio.wait_for(process.wait(), 60) for process in processes[1:]]
        assert codes == [0, 0]
        await db.dispose()

    # exactly once: every request one code, no more, each told once
    for device in sandbox.devices[:DEVICES]:
        assert len(device.codes) == PER_DEVICE, (device.oem_item_id, len(device.codes))
        gaps = [(b.created_at - a.created_at).total_seconds() for a, b in itertools.pairwise(device.codes)]
        assert min(gaps) >= MIN_GAP - 0.01, gaps
    assert sandbox.refusals == []  # the ERM never had to refuse a code for pacing or the daily limit
    for agent, device in zip(AGENTS, sandbox.devices, strict=False):  # every code reached its agent (at least once)
        said = " ".join(sent.rendered or "" for sent in api.sent_to(agent))
        assert all(code.keypad in said for code in device.codes), agent
    for manager in MANAGERS:  # one summary each, whoever's clock came first
        assert sum("Summary for" in (sent.rendered or "") for sent in api.sent_to(manager)) == 1
    assert served[1] and served[2]  # the updates were spread
    assert api.rate_limited <= 2  # together within Telegram's 30 a second (see STAND_IN_PER_SECOND)
    assert api.errors == []
