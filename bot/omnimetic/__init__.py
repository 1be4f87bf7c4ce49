"""Omnimetic (document ``004_0aabc865ae6a65f3.txt``): the utility-account data API behind ``/meter``
and ``/usage`` — a customer's linked utility service account, its monthly history, its hourly
interval data and Omnimetic's own spreadsheet.

- :mod:`~bot.omnimetic.client`: :class:`~bot.omnimetic.client.OmnimeticClient`, the only place that
  speaks HTTP to Omnimetic (httpx, the access token and its renewal, typed failures);
- :mod:`~bot.omnimetic.models`: the documented answers, typed (energy in Wh on the wire, kWh here);
- :mod:`~bot.omnimetic.errors`: what can go wrong, typed;
- :mod:`~bot.omnimetic.connect`: :func:`~bot.omnimetic.connect.open_omnimetic`, the client the
  settings ask for, or one talking to the embedded sandbox when no keys are set.

May import :mod:`bot.clock`, :mod:`bot.logs`, :mod:`bot.config` (``connect`` only), pydantic and
httpx — and, lazily in ``connect`` with no keys, the sandbox :mod:`bot.standins.omnimetic`. Never
``storage``, ``handlers`` or ``telegram``: what Omnimetic says is for :mod:`bot.energy` to keep and
for the handlers to show.
"""
