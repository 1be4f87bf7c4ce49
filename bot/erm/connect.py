"""Open the ERM client the settings ask for: the real ERM, or the embedded sandbox on loopback."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from bot.clock import Clock
from bot.config import Settings
from bot.erm.client import ErmClient

log = logging.getLogger("paygbot.erm")

SANDBOX_USERNAME = "test@example.com"
SANDBOX_PASSWORD = "test1234"  # the documents' own example user, not a secret


@asynccontextmanager
async def open_erm(settings: Settings, clock: Clock | None = None) -> AsyncIterator[ErmClient]:
    """An :class:`ErmClient`; with no ERM credentials, one talking to an in-process sandbox.

    The sandbox is served over real HTTP on loopback, so the bot exercises the same code path
    it uses in production; it keeps time by ``clock`` (the demo's scripted day moves it).
    """
    if not settings.uses_sandbox:
        assert settings.erm_username is not None and settings.erm_password is not None
        async with ErmClient(
            settings.erm_base_url, settings.erm_username, settings.erm_password, timeout=settings.erm_timeout_seconds
        ) as client:
            yield client
        return
    from bot.standins.erm import ErmSandbox, running

    async with running(ErmSandbox(clock=clock)) as url:
        log.info("no ERM credentials: using the embedded ERM sandbox at %s", url)
        async with ErmClient(url, SANDBOX_USERNAME, SANDBOX_PASSWORD, timeout=settings.erm_timeout_seconds) as client:
            yield client
