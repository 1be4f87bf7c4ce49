"""Open the ERM interface the settings ask for (``ERM_API``): the real ERM, or the embedded sandbox
on loopback, which speaks both interfaces."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from pydantic import SecretStr

from bot.clock import Clock
from bot.config import Settings
from bot.erm.backend import Api, ErmBackend
from bot.erm.errors import ErmError
from bot.erm.graphql import GraphQLErm
from bot.erm.rest import RestErm

log = logging.getLogger("paygbot.erm")

SANDBOX_USERNAME = "test@example.com"
SANDBOX_PASSWORD = "test1234"  # the documents' own example user, not a secret


def backend(api: Api, rest_url: str, graphql_url: str, username: str, password: str | SecretStr,
            timeout: float) -> ErmBackend:
    """The client of interface ``api``: :class:`RestErm` at ``rest_url`` or :class:`GraphQLErm` at
    ``graphql_url``."""
    if api == "graphql":
        return GraphQLErm(graphql_url, username, password, timeout=timeout)
    return RestErm(rest_url, username, password, timeout=timeout)


async def sign_in_early(client: ErmBackend) -> None:
    """Sign in now, before the first request needs a token (it would wait a round trip more); a failure
    is logged and left to the first request, which signs in again."""
    try:
        await client.login()
    except ErmError as exc:
        log.warning("could not sign in to the ERM at start (%s); will try again when a request needs it",
                    exc.message)


@asynccontextmanager
async def open_erm(settings: Settings, clock: Clock | None = None, *, api: Api | None = None
                   ) -> AsyncIterator[ErmBackend]:
    """An :class:`ErmBackend` speaking ``api`` (default ``ERM_API``); with no ERM credentials, one
    talking to an in-process sandbox.

    The sandbox is served over real HTTP on loopback, so the bot exercises the same code path it uses
    in production; it keeps time by ``clock`` (the demo's scripted day moves it).
    """
    api = api or settings.erm_api
    if not settings.uses_sandbox:
        assert settings.erm_username is not None and settings.erm_password is not None
        client = backend(api, settings.erm_base_url, settings.erm_graphql_url, settings.erm_username,
                         settings.erm_password, settings.erm_timeout_seconds)
        try:
            yield client
        finally:
            await client.aclose()
        return
    from bot.standins.erm import ErmSandbox, running

    async with running(ErmSandbox(clock=clock)) as url:
        log.info("no ERM credentials: using the embedded ERM sandbox at %s (%s)", url, api)
        client = backend(api, url, f"{url}/graphql", SANDBOX_USERNAME, SANDBOX_PASSWORD,
                         settings.erm_timeout_seconds)
        try:
            yield client
        finally:
            await client.aclose()
