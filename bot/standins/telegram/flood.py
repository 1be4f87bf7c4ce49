"""Telegram's flood limits on new messages (about 30 a second in all, about 1 a second to one
chat): past them a message is answered ``429`` with ``retry_after`` and not delivered. Also the
429s a test forces on the next requests."""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Iterable
from typing import Final

from bot.standins.telegram.values import too_many_requests

SEND_METHODS: Final = frozenset({"sendMessage", "sendPhoto", "sendDocument"})
"""The methods that post a new message: the flood limits and :meth:`FloodControl.fail_next` apply to these."""


class _Window:
    """A sliding-window flood limit: ``capacity`` messages per ``seconds``."""

    def __init__(self, per_second: float) -> None:
        if per_second <= 0:
            raise ValueError("a rate limit must be positive")
        self.seconds = max(1.0, 1.0 / per_second)
        self.capacity = max(1, int(per_second * self.seconds + 1e-9))
        self.times: deque[float] = deque()

    def retry_after(self, now: float) -> int | None:
        """Whole seconds to wait (>= 1) if one more message now would break the limit."""
        while self.times and self.times[0] <= now - self.seconds:
            self.times.popleft()
        if len(self.times) < self.capacity:
            return None
        return max(1, math.ceil(self.times[0] + self.seconds - now))

    def add(self, now: float) -> None:
        self.times.append(now)


class FloodControl:
    """The limits of one bot; ``None`` switches a limit off (the default: no flood control)."""

    def __init__(self, messages_per_second: float | None, per_chat_per_second: float | None) -> None:
        self._overall = _Window(messages_per_second) if messages_per_second else None
        self._per_chat_per_second = per_chat_per_second
        self._chats: dict[int, _Window] = {}
        self._forced: deque[tuple[int, frozenset[str]]] = deque()

    def fail_next(self, n: int, retry_after: int, methods: Iterable[str]) -> None:
        """The next ``n`` requests to one of ``methods`` answer 429 ``retry_after``."""
        if retry_after < 1:
            raise ValueError("Telegram's retry_after is a whole number of seconds, at least 1")
        self._forced.extend([(int(retry_after), frozenset(methods))] * n)

    def play_forced(self, method: str) -> None:
        """Raise the next forced 429 that applies to ``method``, if any."""
        for forced in self._forced:
            retry_after, methods = forced
            if method in methods:
                self._forced.remove(forced)
                raise too_many_requests(retry_after)

    def admit(self, chat_id: int) -> None:
        """Refuse (429) a new message to ``chat_id`` that the limits do not allow yet, else count it."""
        now = time.monotonic()
        windows = [self._overall] if self._overall is not None else []
        if self._per_chat_per_second:
            windows.append(self._chats.setdefault(chat_id, _Window(self._per_chat_per_second)))
        waits = [wait for window in windows if (wait := window.retry_after(now)) is not None]
        if waits:
            raise too_many_requests(max(waits))
        for window in windows:
            window.add(now)
