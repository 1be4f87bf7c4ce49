"""Telegram's limits shared by every process on one PostgreSQL ledger (bot.telegram_pace): two limiters, as two
replicas, reserve their messages' turns in the ledger, and together keep just under 30 messages a second for
the bot and about one a second per chat (a few at once allowed)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from telegram.error import RetryAfter

from bot.telegram_pace import BOT_BURST, BOT_INTERVAL, CHAT_BURST, CHAT_EDGE, CHAT_INTERVAL, SharedRateLimiter
from storage.db import Database
from tests.support.databases import PostgresqlLedgers

pytestmark = pytest.mark.sqlite_only  # not parametrised: PostgreSQL only (one SQLite process keeps PTB's limiter)


@pytest.fixture
async def two_processes(postgresql_ledgers: PostgresqlLedgers | None) -> AsyncIterator[list[Database]]:
    if postgresql_ledgers is None:
        pytest.skip("no PostgreSQL reachable (PAYGBOT_TEST_POSTGRESQL_URL)")
    url = postgresql_ledgers.new()
    databases = [Database(url), Database(url)]
    yield databases
    for db in databases:
        await db.dispose()
    postgresql_ledgers.drop(url)


async def test_two_processes_keep_the_limits_together(two_processes: list[Database]) -> None:
    chats = [1001 + n for n in range(6)]
    asks = [(two_processes[n % 2], chats[n % len(chats)]) for n in range(90)]
    turns = await asyncio.gather(*(SharedRateLimiter.reserve(db, chat) for db, chat in asks))
    go = sorted(turn for turn, _ in turns)
    # the bot: any 30 messages in a row span at least 29 slots (less the small burst allowed)
    least = timedelta(seconds=29 * BOT_INTERVAL - BOT_BURST)
    assert all(go[n + 29] - go[n] >= least for n in range(len(go) - 29)), "more than 30 messages in a second"
    # each chat: a few at once, then one a second (k + 1 messages in a row span k seconds, less the burst)
    for chat in chats:
        times = sorted(turn for (turn, _), (_, asked) in zip(turns, asks, strict=True) if asked == chat)
        assert len(times) == 15
        assert all(times[n + k] - times[n] >= timedelta(seconds=k * CHAT_INTERVAL - CHAT_BURST)
                   for n in range(len(times)) for k in range(1, len(times) - n))
        # never six in a second, not even on its edge
        assert all(later - earlier >= timedelta(seconds=1 + CHAT_EDGE / 2)
                   for earlier, later in zip(times, times[5:], strict=False))
    assert go[-1] - go[0] >= timedelta(seconds=89 * BOT_INTERVAL - BOT_BURST)  # 90 messages: about 3 seconds


async def test_a_message_goes_at_its_turn_and_a_429_waits_and_tries_again(two_processes: list[Database]) -> None:
    limiter = SharedRateLimiter(max_retries=2)
    limiter.attach(two_processes[0])
    calls: list[datetime] = []

    async def send(**kwargs: Any) -> bool:
        calls.append(datetime.now())
        if len(calls) == 1:
            raise RetryAfter(timedelta(seconds=1))
        return True

    assert await limiter.process_request(send, (), {}, "sendMessage", {"chat_id": 42, "text": "hi"}, None) is True
    assert len(calls) == 2 and calls[1] - calls[0] >= timedelta(seconds=1)  # retry_after honoured
    assert await limiter.process_request(send, (), {}, "getMe", {}, None) is True  # no chat: not paced
