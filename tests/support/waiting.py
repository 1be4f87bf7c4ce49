"""Waiting in tests: for a condition, with a deadline. A test waits for what it needs to see, never
for a fixed time, so it passes on a busy machine as on an idle one (and as soon as it can)."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")

POLL = 0.01
"""Seconds between two looks, for conditions nothing signals (a database row, another process)."""


async def eventually(check: Callable[[], T | Awaitable[T]], what: str = "", timeout: float = 15) -> T:
    """The first truthy value ``check`` (sync or async) gives; ``AssertionError`` naming ``what``
    (or ``check``) after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value: Any = check()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value  # type: ignore[no-any-return]
        if loop.time() > deadline:
            raise AssertionError(f"not within {timeout:g} s: {what or check}")
        await asyncio.sleep(POLL)
