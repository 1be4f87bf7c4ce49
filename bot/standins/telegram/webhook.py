"""The stand-in's webhook mode, as Telegram documents ``setWebhook``: while a webhook is set, updates
are POSTed to its URL as JSON (with ``X-Telegram-Bot-Api-Secret-Token`` when a secret was given), at
most ``max_connections`` at once (default 40), and ``getUpdates`` is refused with 409. An update is
forgotten once its POST is answered 2xx; any other answer, or none, and it is sent again later.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

import httpx

from bot.standins.telegram.outbox import Signal

_log = logging.getLogger("paygbot.standins.telegram")

SECRET_HEADER: Final = "X-Telegram-Bot-Api-Secret-Token"
RETRY_SECONDS: Final = 0.5
"""How soon an update whose POST failed is sent again (Telegram waits longer; tests should not)."""


@dataclass
class Webhook:
    """What ``setWebhook`` was given."""

    url: str
    secret: str | None = None
    allowed_updates: list[str] | None = None
    max_connections: int = 40
    delivered: int = 0
    """Updates answered 2xx."""
    failures: list[str] = field(default_factory=list)
    """Why POSTs failed (status or error), oldest first: what ``getWebhookInfo`` calls the last error."""


class _Updates(Protocol):
    """What delivery needs of the stand-in (:class:`~bot.standins.telegram.chats.FakeBotApi`)."""

    updates: deque[dict[str, Any]]
    updates_signal: Signal
    webhook: Webhook | None
    closing: bool


class WebhookDelivery:
    """POSTs the stand-in's queued updates to its webhook, until the webhook is deleted or the stand-in closes."""

    def __init__(self, api: _Updates) -> None:
        self.api = api
        self._task: asyncio.Task[None] | None = None
        self._in_flight: set[int] = set()

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._deliver(), name="standin-webhook")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _deliver(self) -> None:
        api = self.api
        async with httpx.AsyncClient(timeout=10) as client, asyncio.TaskGroup() as posts:
            while api.webhook is not None and not api.closing:
                hook = api.webhook
                ready = [u for u in api.updates if u["update_id"] not in self._in_flight and self._wanted(hook, u)]
                for update in api.updates.copy():  # updates of kinds the bot did not ask for are dropped
                    if not self._wanted(hook, update):
                        api.updates.remove(update)
                room = hook.max_connections - len(self._in_flight)
                for update in ready[:max(0, room)]:
                    self._in_flight.add(update["update_id"])
                    posts.create_task(self._post(client, hook, update))
                await api.updates_signal.wait(1.0)

    @staticmethod
    def _wanted(hook: Webhook, update: dict[str, Any]) -> bool:
        if not hook.allowed_updates:
            return True
        return any(kind in update for kind in hook.allowed_updates)

    async def _post(self, client: httpx.AsyncClient, hook: Webhook, update: dict[str, Any]) -> None:
        headers = {SECRET_HEADER: hook.secret} if hook.secret else {}
        try:
            response = await client.post(hook.url, json=update, headers=headers)
            failed = None if response.is_success else f"Wrong response from the webhook: {response.status_code}"
        except httpx.HTTPError as exc:
            failed = f"Connection failed: {type(exc).__name__}"
        if failed is None:
            hook.delivered += 1
            with contextlib.suppress(ValueError):
                self.api.updates.remove(update)
            self._in_flight.discard(update["update_id"])
            self.api.updates_signal.pulse()
            return
        hook.failures.append(failed)
        _log.info("webhook POST of update %s failed: %s", update["update_id"], failed)
        await asyncio.sleep(RETRY_SECONDS)
        self._in_flight.discard(update["update_id"])
        self.api.updates_signal.pulse()
