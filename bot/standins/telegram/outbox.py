"""What the bot sent, in order, and waiting for the next of it: the half of the chat state a test
reads (:class:`bot.standins.telegram.chats.FakeBotApi` adds the chats and updates)."""

from __future__ import annotations

import asyncio
import contextlib
import copy
from collections.abc import Callable, Iterable
from typing import Any

from bot.standins.telegram.values import CallbackAnswer, Sent, TelegramUser, WaitTimeout


class Signal:
    """Wakes every waiter when :meth:`pulse` is called.

    Waiters check their condition and then wait with no ``await`` in between, so a pulse is
    never lost (one event loop, one thread). Bound lazily to the running loop.
    """

    def __init__(self) -> None:
        self._event: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def event(self) -> asyncio.Event:
        loop = asyncio.get_running_loop()
        if self._event is None or self._loop is not loop:
            self._event, self._loop = asyncio.Event(), loop
        return self._event

    def pulse(self) -> None:
        if self._event is not None:
            self._event.set()
            self._event = None

    async def wait(self, timeout: float) -> None:
        """Until the next pulse or ``timeout`` seconds."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.event().wait(), timeout)


class Outbox:
    """Every message the bot posted or edited, every callback answer, and waits for them."""

    def __init__(self) -> None:
        self.sent: list[Sent] = []
        """Every message the bot posted or edited, in order."""
        self.answers: list[CallbackAnswer] = []
        """Every ``answerCallbackQuery``."""
        self._sent_signal = Signal()
        self._mark = 0
        self._cursors: dict[int, int] = {}

    # -- writing (the Bot API methods) ------------------------------------------------------

    def record(
        self,
        method: str,
        message: dict[str, Any],
        params: dict[str, Any],
        *,
        text: str | None,
        rendered: str | None,
        entities: list[dict[str, Any]],
        markup: dict[str, Any] | None,
        photo: bytes | None = None,
        document: bytes | None = None,
        filename: str | None = None,
        mime_type: str | None = None,
    ) -> Sent:
        """Keep what the bot just posted or edited, and wake whoever waits for it."""
        sent = Sent(
            index=len(self.sent),
            method=method,
            chat_id=message["chat"]["id"],
            message_id=message["message_id"],
            text=text,
            parse_mode=params.get("parse_mode") or None,
            rendered=rendered,
            entities=entities,
            reply_markup=markup,
            message=copy.deepcopy(message),
            photo=photo,
            document=document,
            filename=filename,
            mime_type=mime_type,
        )
        self.sent.append(sent)
        self._sent_signal.pulse()
        return sent

    def record_answer(self, answer: CallbackAnswer) -> None:
        self.answers.append(answer)
        self._sent_signal.pulse()

    def mark(self) -> None:
        """The people's side just acted: a wait with no ``after`` looks from here on."""
        self._mark = len(self.sent)

    # -- reading ----------------------------------------------------------------------------

    def sent_to(self, chat: int | TelegramUser) -> list[Sent]:
        """Everything the bot posted or edited in ``chat``, in order."""
        chat_id = chat.id if isinstance(chat, TelegramUser) else chat
        return [sent for sent in self.sent if sent.chat_id == chat_id]

    def answered(self, query: dict[str, Any] | str) -> CallbackAnswer | None:
        """The bot's answer to a callback query (as ``user_taps`` returned it), if any yet."""
        query_id = query if isinstance(query, str) else query["id"]
        return next((answer for answer in self.answers if answer.callback_query_id == query_id), None)

    @property
    def position(self) -> int:
        """``len(sent)``: pass it as ``after`` to wait only for what comes next."""
        return len(self.sent)

    async def wait_for(
        self,
        target: int | TelegramUser | Callable[[Sent], bool] | None = None,
        *,
        after: int | None = None,
        timeout: float = 10.0,
        methods: Iterable[str] | None = None,
    ) -> Sent:
        """The first :class:`Sent` at or after position ``after`` to the chat ``target`` (a chat id
        or a person), or matching ``target`` (a predicate), or any (``None``); waits for it up
        to ``timeout`` seconds.

        ``after`` defaults to the position when the people's side last acted (``user_says`` and
        friends), i.e. "the bot's answer to what was just done", or, if later, just past what
        ``wait_for`` last returned for that chat: so two waits in a row give two messages.
        Raises :class:`WaitTimeout` naming what was awaited and listing what was sent.
        """
        wanted_methods = frozenset(methods) if methods is not None else None
        chat_id: int | None = None
        if isinstance(target, TelegramUser):
            chat_id = target.id
        elif isinstance(target, int) and not isinstance(target, bool):
            chat_id = target
        predicate: Callable[[Sent], bool] | None = target if callable(target) else None  # type: ignore[assignment]

        def matches(sent: Sent) -> bool:
            if wanted_methods is not None and sent.method not in wanted_methods:
                return False
            if chat_id is not None and sent.chat_id != chat_id:
                return False
            return predicate is None or bool(predicate(sent))

        if after is not None:
            start = after
        elif chat_id is not None:
            start = max(self._mark, self._cursors.get(chat_id, 0))
        else:
            start = self._mark
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            for sent in self.sent[start:]:
                if matches(sent):
                    self._cursors[sent.chat_id] = max(self._cursors.get(sent.chat_id, 0), sent.index + 1)
                    return sent
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise WaitTimeout(self._describe_wait(target, chat_id, start, timeout, wanted_methods))
            await self._sent_signal.wait(remaining)

    def _describe_wait(
        self, target: object, chat_id: int | None, start: int, timeout: float, methods: frozenset[str] | None
    ) -> str:
        if chat_id is not None:
            what = f"message to chat {chat_id}"
            seen = self.sent_to(chat_id)
            seen_label = f"sent to chat {chat_id}"
        elif target is None:
            what, seen, seen_label = "message", self.sent, "sent"
        else:
            what = f"message matching {getattr(target, '__name__', repr(target))}"
            seen, seen_label = self.sent, "sent"
        if methods is not None:
            what += f" ({', '.join(sorted(methods))})"
        lines = [f"no {what} from position #{start} within {timeout:g} s."]
        if seen:
            lines.append(f"What was {seen_label} ({len(seen)}, last 20):")
            lines += [f"  {sent.short()}" for sent in seen[-20:]]
        else:
            lines.append(f"Nothing was {seen_label}.")
        return "\n".join(lines + self._wait_notes())

    def _wait_notes(self) -> list[str]:
        """More lines for a failed wait's message (what else may explain it)."""
        return []
