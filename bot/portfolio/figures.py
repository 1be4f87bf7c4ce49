"""The portfolio's figures, from plans as they stood at one moment: pure, exact (``Decimal``) and
history-true by construction (they read only what they are given).

Definitions (SunCulture's published PAYG metrics; PaygOps' portfolio-at-risk buckets):

- *days past due* (DPD) of a plan: whole days since its device's credit ended, 0 while it runs; a plan whose
  device never had credit is past due from the day it started;
- *PAR30*: left to pay on active plans more than 30 days past due ÷ left to pay on all active plans — by
  balance, not by count (None when nothing is left to pay);
- *buckets*: active plans 1–7, 8–30, 31–90 and over 90 days past due, by count and by amount left to pay;
- *collection rate* over a period of days: collected ÷ due, where due is each plan's price per day for every
  day of the period it was active at the start of (a plan paid off or repossessed counts only while it was
  active; :func:`bot.portfolio.service.collection` adds it up from the days kept).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import NamedTuple, Protocol

ZERO = Decimal(0)
DAY = timedelta(days=1)
BUCKETS: tuple[tuple[int, int | None], ...] = ((1, 7), (8, 30), (31, 90), (91, None))
AT_RISK_AFTER = 30


class Standing(Protocol):
    """What the figures read of a plan at a moment (:class:`PlanState`, or the ledger's own rows)."""

    @property
    def status(self) -> str: ...
    @property
    def total(self) -> Decimal: ...
    @property
    def paid(self) -> Decimal: ...
    @property
    def started_at(self) -> datetime: ...
    @property
    def credit_until(self) -> datetime | None: ...
    @property
    def agent_id(self) -> int | None: ...


class PlanState(NamedTuple):
    """A plan as it stood at a moment: its status then, its terms then, paid so far then, its device's credit
    then, and the agent who looked after its customer."""

    plan_id: int
    status: str
    """``active``, ``paid_off`` or ``repossessed``."""
    total: Decimal
    daily_price: Decimal
    paid: Decimal
    started_at: datetime
    credit_until: datetime | None
    agent_id: int | None = None

    @property
    def left(self) -> Decimal:
        return max(ZERO, self.total - self.paid)


def overdue(credit_until: datetime | None, started_at: datetime | None, at: datetime) -> int:
    """Days past due: whole days since the credit ended (since the plan started, if its device never had
    credit); 0 while it runs, and for a device with neither."""
    ended = credit_until if credit_until is not None else started_at
    return 0 if ended is None or ended > at else (at - ended) // DAY


def days_past_due(state: Standing, at: datetime) -> int:
    return overdue(state.credit_until, state.started_at, at)


@dataclass(frozen=True)
class Bucket:
    low: int
    high: int | None
    count: int
    amount: Decimal


@dataclass
class Figures:
    """Where a set of plans stood at a moment."""

    active: int = 0
    paid_off: int = 0
    repossessed: int = 0
    left: Decimal = ZERO
    """Left to pay on active plans."""
    at_risk: Decimal = ZERO
    """Left to pay on active plans more than 30 days past due."""
    buckets: list[Bucket] = field(default_factory=list)

    @property
    def par30(self) -> Decimal | None:
        return par30(self.at_risk, self.left)


def par30(at_risk: Decimal, left: Decimal) -> Decimal | None:
    """Left to pay more than 30 days past due ÷ left to pay (None when nothing is left to pay)."""
    return at_risk / left if left else None


class _Tally:
    """Figures being added up, plan by plan."""

    __slots__ = ("counts", "left", "at_risk", "bucket_counts", "bucket_amounts")

    def __init__(self) -> None:
        self.counts = {"active": 0, "paid_off": 0, "repossessed": 0}
        self.left = self.at_risk = ZERO
        self.bucket_counts = [0] * len(BUCKETS)
        self.bucket_amounts = [ZERO] * len(BUCKETS)

    def add(self, other: _Tally) -> None:
        for status, count in other.counts.items():
            self.counts[status] += count
        self.left += other.left
        self.at_risk += other.at_risk
        for index, (count, amount) in enumerate(zip(other.bucket_counts, other.bucket_amounts, strict=True)):
            self.bucket_counts[index] += count
            self.bucket_amounts[index] += amount

    def figures(self) -> Figures:
        return Figures(self.counts["active"], self.counts["paid_off"], self.counts["repossessed"], self.left,
                       self.at_risk, [Bucket(low, high, count, amount) for (low, high), count, amount
                                      in zip(BUCKETS, self.bucket_counts, self.bucket_amounts, strict=True)])


def tally(states: Iterable[Standing], at: datetime) -> tuple[Figures, dict[int | None, Figures]]:
    """Counts by status, left to pay, PAR30 and the buckets of ``states`` at ``at``, for all of them and for
    each agent's customers'."""
    active: list[tuple[int | None, Decimal, Decimal, datetime]] = []
    ended: Counter[tuple[int | None, str]] = Counter()
    for state in states:
        if state.status == "active":
            active.append((state.agent_id, state.total, state.paid,
                           state.credit_until if state.credit_until is not None else state.started_at))
        else:
            ended[(state.agent_id, state.status)] += 1
    return tally_standing(active, [(agent, status, n) for (agent, status), n in ended.items()], at)


def tally_standing(active: Iterable[tuple[int | None, Decimal, Decimal, datetime]],
                   ended: Iterable[tuple[int | None, str, int]],
                   at: datetime) -> tuple[Figures, dict[int | None, Figures]]:
    """:func:`tally` from what the figures need and no more (a portfolio has 100,000 plans): the active plans
    as (agent, total, paid, when their credit ended or, without credit, when they started), and how many
    plans each agent has paid off and repossessed — in one pass, per agent, then added up."""
    # whole days past due compared as moments: late >= n  <=>  the credit ended at or before at - n days
    edges = [at - low * DAY for low, _ in BUCKETS]
    first_edge, last_index = edges[0], len(edges) - 1
    risky = at - (AT_RISK_AFTER + 1) * DAY
    agents: dict[int | None, _Tally] = {}
    for agent_id, status, count in ended:
        own = agents.get(agent_id) or agents.setdefault(agent_id, _Tally())
        own.counts[status] += count
    for agent_id, total, paid, ended_at in active:
        own = agents.get(agent_id) or agents.setdefault(agent_id, _Tally())
        own.counts["active"] += 1
        left = total - paid
        if left < 0:
            left = ZERO
        own.left += left
        if ended_at > first_edge:
            continue  # running, or less than a whole day past due
        if ended_at <= risky:
            own.at_risk += left
        index = last_index
        while ended_at > edges[index]:
            index -= 1
        own.bucket_counts[index] += 1
        own.bucket_amounts[index] += left
    everyone = _Tally()
    for own in agents.values():
        everyone.add(own)
    return everyone.figures(), {agent: found.figures() for agent, found in agents.items()}


def figures(states: Iterable[Standing], at: datetime) -> Figures:
    """Counts by status, left to pay, PAR30 and the buckets of ``states`` at ``at``."""
    return tally(states, at)[0]


def collection_rate(collected: Decimal, due: Decimal) -> Decimal | None:
    """Collected ÷ due (None when nothing fell due)."""
    return collected / due if due else None
