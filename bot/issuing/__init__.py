"""A request becomes a code: the issuing engine and the limits it holds every device to.

What it holds, one module per job, behind :class:`IssuingEngine` (``engine``, a thin facade):

- ``outcomes``: what the engine answers and keeps (Accepted, Refused and its Reason, PaymentApplied,
  PaymentHeld, DeviceStatus, the words of ``CodeRequest.reason``);
- ``limits``: the rules as pure functions (pacing, the daily limit in local days, stacking, backoff);
- ``quota``: the same rules over the ledger's figures (a device's load, its next daily slot, what fits);
- ``admission``: requests and payments in (checked, queued or refused and kept), prepaid days released;
- ``devices``: the device directory (resolve any of three ids, sync, the identity checks of devices
  known only by typed ids, a device's figures) and the daily prices managers set;
- ``worker``: the pump (claims what is due and runs it as tasks);
- ``settlement``: one generation and its outcome, exactly once; unknown outcomes settled from the ERM's
  code history;
- ``handover``: outcomes handed on to people through the notifier, at least once, retried.

What it may import: ``bot.erm``, ``storage``, ``bot.clock``, ``bot.config`` (and the standard library).
Not ``handlers``, not ``bot.payments``, nothing of Telegram: people are reached through the notifier the
engine is given.
"""

from bot.issuing.engine import IssuingEngine
from bot.issuing.limits import backoff
from bot.issuing.outcomes import (
    Accepted,
    DeviceStatus,
    HoldReason,
    Notifier,
    PaymentApplied,
    PaymentHeld,
    PlanBalance,
    Reason,
    Refused,
)
from bot.issuing.settlement import GIVE_UP_AFTER

__all__ = [
    "GIVE_UP_AFTER",
    "Accepted",
    "DeviceStatus",
    "HoldReason",
    "IssuingEngine",
    "Notifier",
    "PaymentApplied",
    "PaymentHeld",
    "PlanBalance",
    "Reason",
    "Refused",
    "backoff",
]
