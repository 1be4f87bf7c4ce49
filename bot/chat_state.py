"""A person's chat state in the ledger, not in one process's memory.

PTB keeps a person's ``user_data`` and the state of each ``ConversationHandler`` in the application's memory,
and its persistence classes load them once, at start: fine for one process, wrong for several replicas
behind a webhook, where the next update of a dialogue may reach another process. :class:`SharedChatState`
is the application's update processor: around each update it loads the person's state from the ledger into
the application (their ``user_data``, and their place in each named dialogue) and keeps it again afterwards
if it changed. Updates of one person are taken one at a time in a process (as a person types).

Dialogues end after ``conversation_timeout`` of silence: a dialogue kept longer ago than that is not loaded,
and a timeout job of the process that last served it speaks only if the ledger agrees
(:meth:`SharedChatState.timed_out_here`).

Values are JSON; ``Decimal``, ``datetime`` and ``date`` keep their type. The dialogues' keys and states are
read through ``ConversationHandler``'s own ``_get_key`` and ``_conversations`` (PTB is pinned below 23).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from telegram import Update
from telegram.ext import Application, BaseUpdateProcessor, ConversationHandler

from bot.clock import Clock
from bot.people import People
from storage import ledger
from storage.db import Database

log = logging.getLogger("paygbot.chat")

_TAGS = {"$decimal": Decimal, "$datetime": datetime.fromisoformat, "$date": date.fromisoformat}


def _tagged(value: Any) -> Any:
    if isinstance(value, Decimal):
        return {"$decimal": str(value)}
    if isinstance(value, datetime):
        return {"$datetime": value.isoformat()}
    if isinstance(value, date):
        return {"$date": value.isoformat()}
    raise TypeError(f"{type(value).__name__} cannot be kept in the chat state")


def _untagged(value: dict[str, Any]) -> Any:
    if len(value) == 1:
        [(key, raw)] = value.items()
        if key in _TAGS:
            return _TAGS[key](raw)
    return value


def dumps(state: dict[str, Any]) -> str:
    return json.dumps(state, default=_tagged, sort_keys=True, separators=(",", ":"))


def loads(data: str) -> dict[str, Any]:
    loaded = json.loads(data, object_hook=_untagged)
    return loaded if isinstance(loaded, dict) else {}


class _Turn:
    """One person's updates, one at a time: the lock, and how many updates hold or wait for it."""

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.waiting = 0


class SharedChatState(BaseUpdateProcessor):
    """Runs each update between a load and a keep of its person's chat state (see the module)."""

    def __init__(self, max_concurrent_updates: int = 256) -> None:
        super().__init__(max_concurrent_updates)
        self.application: Application[Any, Any, Any, Any, Any, Any] | None = None
        self.db: Database | None = None
        self.clock: Clock | None = None
        self.people: People | None = None
        self._people: dict[int, _Turn] = {}
        self._kept: dict[int, str] = {}
        """Each person's state as this process last read or kept it."""

    def attach(self, application: Application[Any, Any, Any, Any, Any, Any], db: Database, clock: Clock,
               people: People | None = None) -> None:
        """From now on, state lives in ``db`` (before this, in memory only: PTB's own behaviour). With ``people``,
        the read that loads a person's state also finds who they are, for the access gate
        (:meth:`bot.people.People.read_ahead`)."""
        self.application, self.db, self.clock, self.people = application, db, clock, people

    async def initialize(self) -> None:
        pass

    async def shutdown(self) -> None:
        pass

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        user = update.effective_user if isinstance(update, Update) else None
        if user is None or self.application is None:
            await coroutine
            return
        turn = self._people.get(user.id) or self._people.setdefault(user.id, _Turn())
        turn.waiting += 1
        try:
            async with turn.lock:
                before = await self._load(user.id, update)
                try:
                    await coroutine
                finally:
                    await self._keep(user.id, update, before)
        finally:
            turn.waiting -= 1
            if turn.waiting == 0:
                del self._people[user.id]

    def _dialogues(self) -> list[ConversationHandler[Any]]:
        assert self.application is not None
        return [handler for group in self.application.handlers.values() for handler in group
                if isinstance(handler, ConversationHandler) and handler.name]

    async def _load(self, user_id: int, update: Update) -> str | None:
        assert self.application is not None and self.db is not None and self.clock is not None
        async with self.db.read() as session:
            person, data = await ledger.person_and_chat_state(session=session, user_id=user_id)
            if self.people is not None:
                await self.people.read_ahead(session, user_id, person)
        state = loads(data) if data else {}
        user_data = self.application.user_data[user_id]  # (created on first use, as PTB does)
        user_data.clear()
        user_data.update(state.get("user_data", {}))
        now = self.clock.now()
        dialogues = state.get("dialogues", {})
        for handler in self._dialogues():
            key = _key(handler, update)
            if key is None:
                continue
            kept = dialogues.get(handler.name)
            if kept is not None and not _expired(handler, kept, now):
                handler._conversations[key] = kept["state"]
            else:
                handler._conversations.pop(key, None)
        return data

    async def _keep(self, user_id: int, update: Update, before: str | None) -> None:
        assert self.application is not None and self.db is not None and self.clock is not None
        now = self.clock.now()
        dialogues: dict[str, Any] = {}
        for handler in self._dialogues():
            key = _key(handler, update)
            current = handler._conversations.get(key) if key is not None else None
            if isinstance(current, int | str):  # (its timeout restarts with any update of the person)
                dialogues[handler.name] = {"state": current, "at": now}
        user_data = dict(self.application.user_data.get(user_id, {}))
        state = {key: value for key, value in (("user_data", user_data), ("dialogues", dialogues)) if value}
        try:
            data = dumps(state) if state else None
        except TypeError as exc:
            log.error("the chat state of %s was not kept: %s", user_id, exc)
            return
        if data != before:
            async with self.db.write() as session:
                await ledger.keep_chat_state(session=session, user_id=user_id, data=data, now=now)
        self._remember(user_id, data)

    def _remember(self, user_id: int, data: str | None) -> None:
        if data is None:
            self._kept.pop(user_id, None)
        else:
            self._kept[user_id] = data

    async def timed_out_here(self, user_id: int) -> bool:
        """Whether this process's dialogue timeout for the person is real — nothing of theirs happened since in
        another process (their state is as this process kept it, a dialogue open) — and if so, the dialogue
        ends in the ledger too."""
        assert self.db is not None and self.clock is not None
        async with self.db.write() as session:
            data = await ledger.chat_state(session=session, user_id=user_id)
            if data is None or data != self._kept.get(user_id):
                return False
            state = loads(data)
            if not state.pop("dialogues", None):
                return False
            left = dumps(state) if state else None
            await ledger.keep_chat_state(session=session, user_id=user_id, data=left, now=self.clock.now())
        self._remember(user_id, left)
        return True


def _key(handler: ConversationHandler[Any], update: Update) -> Any:
    try:
        return handler._get_key(update)
    except RuntimeError:  # an update this dialogue cannot key (no chat): not part of it
        return None


def _expired(handler: ConversationHandler[Any], kept: dict[str, Any], now: datetime) -> bool:
    timeout = handler.conversation_timeout
    if timeout is None:
        return False
    seconds = timeout.total_seconds() if isinstance(timeout, timedelta) else float(timeout)
    at = kept.get("at")
    return not isinstance(at, datetime) or now - at >= timedelta(seconds=seconds)
