"""The ERM sandbox: the documented ERM REST API and its GraphQL interface in memory (devices,
codes, limits, injectable faults) and served over loopback HTTP, so the bot, the demo and the
tests run with no credentials.

- :mod:`~bot.standins.erm.devices`: a device's ids, its committed codes and the credit they give;
- :mod:`~bot.standins.erm.sandbox`: :class:`ErmSandbox`, the state (users, tokens, limits, faults);
- :mod:`~bot.standins.erm.graphql`: ``POST /graphql`` (documents 002/003), executed with
  graphql-core against ``schema.graphql`` on the same state: the same users and tokens, devices,
  limits and code history as the REST routes;
- :mod:`~bot.standins.erm.server`: the HTTP routes, :func:`running` (in a test's or the bot's
  event loop) and :func:`serve` (``paygbot sandbox``).

It may import :mod:`bot.erm` (models, the code format), :mod:`bot.clock` and :mod:`bot.http`.
"""

from bot.standins.erm.devices import MAX_DAYS, UNLOCK_DAYS, CodeRecord, SandboxDevice
from bot.standins.erm.graphql import GraphQLApi
from bot.standins.erm.sandbox import EXAMPLE_USER, Call, ErmSandbox
from bot.standins.erm.server import build_app, running, serve

__all__ = [
    "EXAMPLE_USER",
    "MAX_DAYS",
    "UNLOCK_DAYS",
    "Call",
    "CodeRecord",
    "ErmSandbox",
    "GraphQLApi",
    "SandboxDevice",
    "build_app",
    "running",
    "serve",
]
