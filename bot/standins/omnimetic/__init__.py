"""The Omnimetic sandbox: the API of ``004_0aabc865ae6a65f3.txt`` in memory (one Omnimetic account,
its API client, a few households' utility service accounts with deterministic hourly figures,
injectable faults) and served over loopback HTTP, so ``/meter`` and ``/usage`` work with no keys.

- :mod:`~bot.standins.omnimetic.data`: the figures (a meter's hours and months; their scale);
- :mod:`~bot.standins.omnimetic.sandbox`: :class:`OmnimeticSandbox`, the state (clients, tokens,
  households, faults) and the ids to know (:data:`ACCOUNT_ID`, :data:`DOC_ACCOUNT`, …);
- :mod:`~bot.standins.omnimetic.xlsx`: ``download-data``'s spreadsheet (openpyxl);
- :mod:`~bot.standins.omnimetic.server`: the HTTP routes and :func:`running`; ``paygbot sandbox``
  mounts :func:`build_app` at :data:`MOUNT` beside the ERM sandbox.

It may import :mod:`bot.omnimetic.models`, :mod:`bot.clock` and :mod:`bot.http`.
"""

from bot.standins.omnimetic.data import ON_PEAK_HOURS, TARIFF_CENTS_PER_KWH, HourFigure, Meter, MonthFigure
from bot.standins.omnimetic.sandbox import (
    ACCOUNT_ID,
    DOC_ACCOUNT,
    EMPTY_ACCOUNT,
    EXAMPLE_CLIENT,
    GENERATED_ACCOUNTS,
    JANE_ACCOUNT,
    Call,
    Household,
    OmnimeticSandbox,
)
from bot.standins.omnimetic.server import MAX_INTERVAL_DAYS, build_app, running

MOUNT = "/omnimetic/api"
"""Where ``paygbot sandbox`` serves the Omnimetic sandbox, beside the ERM sandbox on the same port."""

__all__ = [
    "ACCOUNT_ID",
    "DOC_ACCOUNT",
    "EMPTY_ACCOUNT",
    "EXAMPLE_CLIENT",
    "GENERATED_ACCOUNTS",
    "JANE_ACCOUNT",
    "MAX_INTERVAL_DAYS",
    "MOUNT",
    "ON_PEAK_HOURS",
    "TARIFF_CENTS_PER_KWH",
    "Call",
    "HourFigure",
    "Household",
    "Meter",
    "MonthFigure",
    "OmnimeticSandbox",
    "build_app",
    "running",
]
