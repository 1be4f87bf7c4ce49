"""The figures of a day, as plain values: what the summary's queries find and the sentences render.

Nothing here reads the ledger or knows a sentence, so the texts may take a :class:`Summary` typed
without importing the queries (``bot.reports.summary``), and the queries without importing the texts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal


@dataclass
class AgentLine:
    """One person's day: the codes they asked for and the money they recorded."""

    name: str
    codes: int = 0
    days: int = 0
    cash: dict[str, Decimal] = field(default_factory=dict)
    """Money recorded, per currency."""
    cash_payments: int = 0


@dataclass(frozen=True)
class EndedBadly:
    """A request refused or failed: its device, status and reason, with a refusal's details."""

    device: str
    status: str
    reason: str | None
    fits: int | None = None
    """Refused for stacking: how many days fitted then."""
    until: datetime | None = None
    """Refused for the daily limit: when the device's next code could go out."""


@dataclass(frozen=True)
class Unconfirmed:
    """A pasted M-Pesa message that M-Pesa's own confirmation (Daraja) has not matched (yet)."""

    reference: str
    amount: Decimal
    currency: str


@dataclass(frozen=True)
class Expiring:
    """A device whose credit ends soon, with its customer's name and phone if it has one."""

    device: str
    credit_until: datetime
    customer: str | None = None
    phone: str | None = None


@dataclass(frozen=True)
class PortfolioLine:
    """The summary's portfolio line: PAR30 and the 7-day collection rate, and what they were a day before."""

    par30: Decimal | None
    par30_before: Decimal | None
    collection: Decimal | None
    collection_before: Decimal | None


@dataclass
class Summary:
    """One local day at a glance."""

    day: date
    codes: dict[str, int]
    """Codes generated, per kind (``days``, ``free``, ``reset``)."""
    days_issued: int
    payments: dict[str, tuple[int, Decimal]]
    """Per currency: how many payments, and their total."""
    unmatched_payments: int
    agents: list[AgentLine]
    bad_total: int
    bad: list[EndedBadly]
    """The latest refusals and failures, newest first."""
    queued: int
    oldest_queued: datetime | None
    expiring: list[Expiring]
    unconfirmed: list[Unconfirmed] = field(default_factory=list)
    """M-Pesa messages pasted by agents that M-Pesa's own confirmation (Daraja) has not matched (yet)."""
    portfolio: PortfolioLine | None = None
    """PAR30 and the 7-day collection rate at the day's end, and a day before (None: no plans)."""
    reversed: dict[str, tuple[int, Decimal]] = field(default_factory=dict)
    """Per currency: how many payments were taken back (reversed) that day, and their total. A payment counts
    on the day it was received, its reversal on the day it was made: a past day's figures never change."""
