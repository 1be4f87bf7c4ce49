"""Money in: the signed ``POST /payments`` webhook, Safaricom's M-Pesa (Daraja) C2B confirmations,
cash recorded by agents and confirmations pasted into the chat — one path for all of them: stored
first, then matched to a device and turned into days by the engine, or kept for a manager.

- ``values``: providers, an incoming payment, what it can become (plain values).
- ``storing``: one payment per provider and reference, never dropped (repeats, Daraja's copies, conflicts).
- ``matching``: which device an account names, as the ledger says; keeping for the managers what matches none.
- ``service``: :class:`Payments` — store (group commit), match, apply, assign, tell, the sweep's work.
- ``parsing``: the webhook's JSON and HMAC signature, Daraja's confirmation; ``sms``: a pasted M-Pesa message.
- ``routes``: the Starlette routes (mounted by :mod:`bot.http`); ``notices``: the chat notices and Assign buttons.

The sweep job is scheduled with the other jobs (:func:`bot.jobs.schedule_payment_sweep`).

May import: ``storage``, the engine (``bot.issuing``), ``bot.erm`` (a device id's shape), ``bot.phones``,
``bot.clock``, ``bot.config``, ``bot.logs``; for the notices only, ``bot.delivery`` and ``bot.texts``.
Not ``handlers``, not ``bot.services``, not ``bot.jobs`` or ``bot.app`` (they import this).
"""

from bot.payments.notices import ChatNotices, assign_buttons
from bot.payments.parsing import BadPayment, parse_daraja, parse_webhook, sign, signature_ok
from bot.payments.routes import SIGNATURE_HEADER, payment_routes
from bot.payments.service import Payments
from bot.payments.storing import new_cash_reference
from bot.payments.values import (
    MPESA_FAMILY,
    Incoming,
    Notifier,
    NotMatched,
    Outcome,
    Pending,
    Provider,
    Received,
    Unmatched,
)

__all__ = [
    "MPESA_FAMILY", "SIGNATURE_HEADER", "BadPayment", "ChatNotices", "Incoming", "NotMatched", "Notifier", "Outcome",
    "Payments", "Pending", "Provider", "Received", "Unmatched", "assign_buttons", "new_cash_reference",
    "parse_daraja", "parse_webhook", "payment_routes", "sign", "signature_ok",
]
