"""Energy use (Omnimetic, document 004): a customer's meter — the utility service account tied to them
by an agent's ``/meter`` — and what ``/usage`` shows of it: the figures (:mod:`~bot.energy.figures`),
fetched and kept a few minutes (:mod:`~bot.energy.service`), and the picture (:mod:`~bot.energy.chart`).

May import: ``bot.omnimetic`` (the client), ``storage``, ``bot.clock``. Not the handlers or telegram.
"""

from bot.energy.figures import Usage
from bot.energy.service import CACHE_FOR, Energy, MeterHeld, MeterTied, NoCustomer, NoMeter
from bot.omnimetic.client import check_account_id

__all__ = ["CACHE_FOR", "Energy", "MeterHeld", "MeterTied", "NoCustomer", "NoMeter", "Usage", "check_account_id"]
