"""Telegram's flood limits, kept by pacing every message just under them rather than learning them from 429s.

Both limiters give each message its chat's turn — one a second, a few at once allowed — then a turn of the
bot as a whole. A 429 waits its ``retry_after`` (that message, and its chat's next ones) and is tried again;
the others keep their pace.

- :class:`LocalRateLimiter`: one process (SQLite). The bot's turns are taken one at a time, in the order
  asked: never more than 30 in any second as Telegram counts them (each turn a second after Telegram answered
  the 30th before it: that one reached Telegram before its answer came, this one reaches it after it goes;
  a slow answer is not waited for past ``LOCAL_HELD_UP``), and never two closer than ``LOCAL_BOT_INTERVAL``,
  so never a burst after a pause of the event loop. A moment the loop was late is made up by the next turns
  rather than lost. A person's chat: five at once, then four a second, and never more than five in any second
  (counted as the bot's 30 are). (PTB's ``AIORateLimiter`` lets 30 go at once and then 30 a second, so a
  second can see 60; and its 429 stops every send.)
- :class:`SharedRateLimiter`: every process on one PostgreSQL ledger together. It reserves each message's turn
  in the ledger (one row per scope, its "theoretical arrival time", as in the generic cell rate algorithm):
  the chat's, then a slot of the bot from then on, 26 a second. The database's clock decides, so replicas'
  clocks need not agree.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Coroutine
from datetime import datetime, timedelta
from typing import Any

from telegram.error import RetryAfter
from telegram.ext import BaseRateLimiter

from storage import ledger
from storage.db import Database

log = logging.getLogger("paygbot.telegram")

BOT_INTERVAL = 1 / 26
"""Seconds between two messages of the bot, whichever process sends them: 26 a second, so that 30 in a row
span 1.12 s and a message held up on its way by up to ~100 ms (a busy replica, a busy machine) still keeps
any second within Telegram's 30 (at 27 a second, 74 ms of delay let a third 429 through in the replicas'
test once)."""
BOT_BURST = 0.0
"""How far ahead of its slot a message may go (none: a burst at the start of a second is what Telegram counts)."""
CHAT_INTERVAL = 1.0
"""About one message a second to one chat, as Telegram asks."""
CHAT_BURST = 4.0
"""...with up to five at once (an answer, its code, a notice)."""
CHAT_EDGE = 0.1
"""Shared: seconds from the edge of a chat's second: five at once, then the sixth 1.1 s after the first (a second
apart by the ledger's clock is a second apart at Telegram only give or take the way there)."""
GROUP_INTERVAL = 3.0
"""Groups: 20 messages a minute."""
LOCAL_BOT_INTERVAL = 1 / 100
"""One process: the least seconds between two of the bot's messages, so that a pause of the event loop is never
followed by a burst. Well under Telegram's 1/30, because the 30-in-a-second rule sends each message a second after
the one 30 before, so every second repeats the first one's shape: a second's 30 that span 0.3 s leave the rest of
it to a second whose first messages waited for their codes (or for the loop), and the last second ends 0.3 s after
it starts (150 agents: 93% of 30/s at 1/50, 98–99% at 1/100). At 1/200 and closer, 30 at once queue on their way
and at Telegram past ``LOCAL_HELD_UP``, and 429s come back (2 at 500 agents, 8 at 150 at 1/1000)."""
LOCAL_BOT_PER_SECOND = 30
LOCAL_BOT_SECOND = 1.005
"""One process: at most ``LOCAL_BOT_PER_SECOND`` of the bot's messages in any ``LOCAL_BOT_SECOND`` as Telegram
counts them: the next message goes this long (5 ms for the clocks' rounding) after the 30th before it reached
Telegram, which is at the latest when Telegram answered it (or ``LOCAL_HELD_UP`` after it went)."""
LOCAL_HELD_UP = 0.045
"""One process: seconds after going by which a message is taken to have reached Telegram when its answer takes
longer (a distant Telegram: waiting for every answer would cost a round trip in every second). Near Telegram the
answers come first and the count is exact; far from it, this is the margin for a message held up on its way (one
second and 50 ms from one message to the 30th after it, as when every message was counted from when it went)."""
MAX_RETRIES = 10
LATE = 0.05
"""Seconds a message may go after its turn; later, it takes a new turn."""
MAX_LATE_TURNS = 5


LOCAL_CHAT_PER_SECOND = 5
"""One process: at most this many messages to one chat in any ``LOCAL_BOT_SECOND`` as Telegram counts them (each a
second after the 5th before it reached Telegram), whatever the pace below lets through."""
LOCAL_CHAT_INTERVAL = 0.25
"""One process: seconds between two messages to one person past the few at once: Telegram asks for about one
a second but lets short bursts through, and a 429 there holds back only that chat (the agent who asked for
five codes in a row gets them within two seconds). The sixth of a burst still waits a second after the first
(``LOCAL_CHAT_PER_SECOND``)."""


def _chat_limits(chat_id: object, person: float = CHAT_INTERVAL) -> tuple[float, float]:
    """(interval, burst) of a chat: a group's (negative ids, @usernames) or a person's (``person`` apart)."""
    group = isinstance(chat_id, str)
    with contextlib.suppress(TypeError, ValueError):
        group = group or int(chat_id) < 0  # type: ignore[call-overload]
    return (GROUP_INTERVAL, 0.0) if group else (person, CHAT_BURST * person / CHAT_INTERVAL)  # five at once


def _seconds(retry_after: timedelta | float) -> float:
    return retry_after.total_seconds() if isinstance(retry_after, timedelta) else float(retry_after)


class _PacedRateLimiter(BaseRateLimiter[int]):
    """PTB's rate limiter interface: each message to a chat waits its turn (:meth:`_wait_turn`); a 429 is
    waited out (:meth:`_wait_out`) and the message tried again, up to ``max_retries`` times."""

    max_retries: int

    async def initialize(self) -> None:
        pass

    async def shutdown(self) -> None:
        pass

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, bool | dict[str, Any] | list[dict[str, Any]]]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: int | None,
    ) -> bool | dict[str, Any] | list[dict[str, Any]]:
        chat_id = data.get("chat_id")
        retries = rate_limit_args or self.max_retries
        for attempt in range(retries + 1):
            sent = None if chat_id is None else await self._wait_turn(chat_id)
            try:
                try:
                    return await callback(*args, **kwargs)
                finally:
                    if sent is not None:
                        sent.answered()
            except RetryAfter as exc:
                if attempt == retries:
                    raise
                pause = _seconds(exc.retry_after)
                log.info("Telegram asks to wait %.1f s (%s); trying again then", pause, endpoint)
                await self._wait_out(chat_id, pause + 0.1)
        raise AssertionError("unreachable")

    async def _wait_turn(self, chat_id: object) -> _Sent | None:
        """Sleep until a message to ``chat_id`` may go; what to tell when Telegram has answered it, if anything."""
        raise NotImplementedError

    async def _wait_out(self, chat_id: object, pause: float) -> None:
        """After a 429: wait ``pause`` seconds before the message is tried again."""
        await asyncio.sleep(pause)


class _Sent:
    """One of the bot's messages on its way: when it went, and when Telegram answered it (loop seconds)."""

    __slots__ = ("_answer", "_gone", "at", "went")

    def __init__(self) -> None:
        self.went: float | None = None
        self.at: float | None = None
        self._gone, self._answer = asyncio.Event(), asyncio.Event()

    def going(self) -> None:
        self.went = asyncio.get_running_loop().time()
        self._gone.set()

    def answered(self) -> None:
        self.at = asyncio.get_running_loop().time()
        self._answer.set()

    async def reached_by(self, held_up: float) -> float:
        """When it reached Telegram, at the latest: its answer, or ``held_up`` after it went if that comes first
        (it is awaited until it has gone, and its answer until then)."""
        await self._gone.wait()
        assert self.went is not None
        deadline = self.went + held_up
        if self.at is None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._answer.wait(), max(0.0, deadline - asyncio.get_running_loop().time()))
        return deadline if self.at is None else min(self.at, deadline)


class LocalRateLimiter(_PacedRateLimiter):
    """PTB's rate limiter interface, paced in this process's memory (see the module). Requests without a chat
    (``getUpdates``, ``setMyCommands``, ``answerCallbackQuery``) are not paced."""

    def __init__(self, *, max_retries: int = MAX_RETRIES, interval: float = LOCAL_BOT_INTERVAL,
                 per_second: int = LOCAL_BOT_PER_SECOND, second: float = LOCAL_BOT_SECOND,
                 held_up: float = LOCAL_HELD_UP) -> None:
        self.max_retries, self.interval, self.second, self.held_up = max_retries, interval, second, held_up
        self._went: deque[_Sent] = deque(maxlen=per_second)
        """The bot's last ``per_second`` messages."""
        self._chat_went: dict[object, deque[_Sent]] = {}
        """Each chat's last ``LOCAL_CHAT_PER_SECOND`` messages, gone or waiting for the bot's turn."""
        self._chats: dict[object, float] = {}
        """Each chat's theoretical arrival time (loop seconds): its next turn, ``burst`` early at most."""
        self._held: dict[object, float] = {}
        """Chats Telegram answered 429: nothing goes to them before this (loop seconds)."""
        self._turns = asyncio.Lock()  # FIFO: the bot's turns go in the order they were asked

    async def _wait_out(self, chat_id: object, pause: float) -> None:
        if chat_id is None:
            await asyncio.sleep(pause)
        else:  # the chat's next messages wait too, not the whole bot's
            self._held[chat_id] = asyncio.get_running_loop().time() + pause

    async def _wait_turn(self, chat_id: object) -> _Sent:
        loop = asyncio.get_running_loop()
        interval, burst = _chat_limits(chat_id, LOCAL_CHAT_INTERVAL)
        now = loop.time()
        tat = self._chats.get(chat_id, now)
        go = max(now, tat - burst, self._held.get(chat_id, now))
        self._chats[chat_id] = max(tat, go) + interval
        if len(self._chats) > 10_000:  # forget chats whose turns are long past
            self._chats = {chat: due for chat, due in self._chats.items() if due > now}
            self._held = {chat: due for chat, due in self._held.items() if due > now}
            self._chat_went = {chat: went for chat, went in self._chat_went.items()
                               if chat in self._chats or went[-1].went is None or went[-1].went > now - 2}
        sent = _Sent()
        chat_went = self._chat_went.setdefault(chat_id, deque(maxlen=LOCAL_CHAT_PER_SECOND))
        before = chat_went[0] if len(chat_went) == chat_went.maxlen else None  # the chat's 5th message before
        chat_went.append(sent)
        try:
            if go > now:
                await asyncio.sleep(go - now)
            if before is not None:
                wait = await before.reached_by(self.held_up) + self.second - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
            async with self._turns:
                last = self._went[-1].went if self._went else None
                go = float("-inf") if last is None else last + self.interval
                if len(self._went) == self._went.maxlen:
                    go = max(go, await self._went[0].reached_by(self.held_up) + self.second)
                wait = go - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                sent.going()
                self._went.append(sent)
                return sent
        except BaseException:  # (cancelled) it never goes: the chat's next messages do not wait for it
            if sent.went is None:
                sent.going()
                sent.answered()
            raise


class SharedRateLimiter(_PacedRateLimiter):
    """PTB's rate limiter interface, with the limits in the ledger (see the module)."""

    def __init__(self, *, max_retries: int = MAX_RETRIES) -> None:
        self.db: Database | None = None
        self.max_retries = max_retries

    def attach(self, db: Database) -> None:
        """The ledger to keep the limits in (the application is built before the ledger is opened)."""
        self.db = db

    async def _wait_turn(self, chat_id: object) -> None:
        if self.db is not None:
            await self._wait_turn_in(self.db, chat_id)
        return None

    async def _wait_turn_in(self, db: Database, chat_id: object) -> None:
        """Sleep until this message's turn comes. A turn missed by more than ``LATE`` (this process was held up:
        a busy CPU, a pause) is given up and a new one taken, so that late messages never go out together."""
        loop = asyncio.get_running_loop()
        for _ in range(MAX_LATE_TURNS):
            go, now = await self.reserve(db, chat_id)
            due = loop.time() + max(0.0, (go - now).total_seconds())
            await asyncio.sleep(max(0.0, due - loop.time()))
            if loop.time() - due <= LATE:
                return
            log.debug("message to %s missed its turn by %.0f ms; taking another", chat_id,
                      (loop.time() - due) * 1000)

    @staticmethod
    async def reserve(db: Database, chat_id: object) -> tuple[datetime, datetime]:
        """When a message to ``chat_id`` may go, and the database's clock now: its chat's turn (the generic
        cell rate algorithm: ``interval`` apart, up to ``burst`` early), then the bot's first slot from then
        on; the chat's turn moves on from when the message really goes. One transaction, the chat's row
        locked throughout."""
        interval, burst = _chat_limits(chat_id)
        scope = f"chat:{chat_id}"[:40]
        async with db.write() as session:
            tat, now = await ledger.hold_send_pace(session=session, scope=scope)
            earliest = now if tat is None else max(now, tat - timedelta(seconds=max(0.0, burst - CHAT_EDGE)))
            slot, now = await ledger.take_send_slot(session=session, scope="bot", interval=BOT_INTERVAL,
                                                    not_before=earliest)
            go = max(earliest, slot - timedelta(seconds=BOT_BURST))
            await ledger.set_send_pace(session=session, scope=scope,
                                       tat=max(tat or go, go) + timedelta(seconds=interval))
        return go, now
