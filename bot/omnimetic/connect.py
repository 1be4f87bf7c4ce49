"""Open the Omnimetic client the settings ask for: the real Omnimetic (``OMNIMETIC_CLIENT_ID`` and
``OMNIMETIC_SECRET`` set), or the embedded Omnimetic sandbox on loopback when either is unset."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from bot.clock import Clock
from bot.config import Settings
from bot.omnimetic.client import OmnimeticClient

log = logging.getLogger("paygbot.omnimetic")

SANDBOX_CLIENT = ("paygbot-sandbox", "omnimetic-sandbox-key")  # the embedded sandbox's own client, not a secret


@asynccontextmanager
async def open_omnimetic(settings: Settings, clock: Clock | None = None) -> AsyncIterator[OmnimeticClient]:
    """An :class:`OmnimeticClient`; with no Omnimetic keys, one talking to an in-process sandbox.

    The sandbox is served over real HTTP on loopback, so the bot exercises the code path it uses in
    production; it keeps time by ``clock`` (the demo's scripted day moves it), which the client's
    token renewal reads too.
    """
    timeout = settings.erm_timeout_seconds
    if not settings.uses_omnimetic_sandbox:
        assert settings.omnimetic_client_id is not None and settings.omnimetic_secret is not None
        client = OmnimeticClient(settings.omnimetic_base_url, settings.omnimetic_client_id,
                                 settings.omnimetic_secret, timeout=timeout, clock=clock)
        try:
            yield client
        finally:
            await client.aclose()
        return
    from bot.standins.omnimetic import OmnimeticSandbox, running

    sandbox = OmnimeticSandbox(clock=clock)
    # not the document's example client, whose id is its secret: the log would hide the id as a secret
    sandbox.add_client(*SANDBOX_CLIENT)
    async with running(sandbox) as url:
        log.info("no Omnimetic keys: using the embedded Omnimetic sandbox at %s", url)
        client_id, secret = SANDBOX_CLIENT
        client = OmnimeticClient(url, client_id, secret, timeout=timeout, clock=clock)
        try:
            yield client
        finally:
            await client.aclose()
