"""The states and kinds the ledger's rows take (roles, code kinds, request, payment, approval and plan states):
enums stored by name, kept apart from the tables (:mod:`storage.models`, which re-exports them)."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    MANAGER = "manager"
    AGENT = "agent"


class CodeKind(StrEnum):
    DAYS = "days"
    FREE = "free"
    RESET = "reset"


class Status(StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    ISSUED = "issued"
    DELIVERED = "delivered"
    REFUSED = "refused"
    FAILED = "failed"


OPEN_STATUSES = (Status.QUEUED, Status.SENDING)
GENERATED_STATUSES = (Status.ISSUED, Status.DELIVERED)


class Source(StrEnum):
    """Who or what asked for a code."""

    CHAT = "chat"
    PAYMENT = "payment"
    PREPAID = "prepaid"
    CLI = "cli"
    PLAN = "plan"
    """The unlock (free) code of a plan paid off."""


class ApprovalStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    """Its reason went away before anyone decided (a paid-off plan's payment was reversed)."""


class PaymentStatus(StrEnum):
    """PENDING: stored, not matched yet (the ERM could not be asked; tried again later);
    MATCHED: turned into days for ``device_id`` (days may be 0: kept as the device's money credit);
    UNMATCHED: kept for a manager to assign (no device or customer, no daily price, …; see ``reason``)."""

    MATCHED = "matched"
    UNMATCHED = "unmatched"
    PENDING = "pending"


class PaymentNotice(StrEnum):
    """Who is still owed a word about a payment (sent at least once, then ``notified_at`` is set)."""

    MANAGERS = "managers"
    """Unmatched money: every manager, with the reference, amount and account."""
    RECEIVED = "received"
    """The customer (and agent): no code at once — it waits for tomorrow, days kept as prepaid, or credit."""
    PAID_OFF = "paid_off"
    """It paid its plan off: the customer and agent are told, the managers asked for the unlock code (or told
    it is on its way), and of any money beyond the total."""
    REVERSED = "reversed"
    """The provider took it back: the agent and the managers are told what that undid, and what is owed."""


class PlanStatus(StrEnum):
    ACTIVE = "active"
    PAID_OFF = "paid_off"
    REPOSSESSED = "repossessed"


CONFIRMATION_COPY = "confirmation"
"""The ``reason`` of a copy (``duplicate_of``, MATCHED, no days): the provider's own confirmation of money an
agent pasted first. It is never money of its own, so totals, charts and exports leave it out."""
