"""The portfolio's figures, from plans as they stood at one moment: pure, exact (``Decimal``) and
history-true by construction (they read only what they are given).

Definitions (SunCulture's published PAYG metrics; PaygOps' portfolio-at-risk buckets):

- *days past due* (DPD) of a plan: whole days since its device's credit ended, 0 while it runs; a plan whose
  device never had credit is past due from the day it started;
- *PAR30*: left to pay on active plans more than 30 days past due ÷ left to pay on all active plans — by
  balance, not by count (None when nothing is left to pay);
- *buckets*: active plans 1–7, 8–30, 31–90 and over 90 days past due, by count and by amount left to pay;
- *collection rate* over a period: collected ÷ due, where due is the price per day × the days of the period
  in which each plan was active (a plan paid off or repossessed counts only while it was active).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

ZERO = Decimal(0)
DAY = timedelta(days=1)
BUCKETS: tuple[tuple[int, int | None], ...] = ((1, 7), (8, 30), (31, 90), (91, None))
AT_RISK_AFTER = 30


@dataclass(frozen=True)
class PlanState:
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


def days_past_due(state: PlanState, at: datetime) -> int:
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


def figures(states: Iterable[PlanState], at: datetime) -> Figures:
    """Counts by status, left to pay, PAR30 and the buckets of ``states`` at ``at``."""
    found = Figures()
    counts = [0] * len(BUCKETS)
    amounts = [ZERO] * len(BUCKETS)
    for state in states:
        if state.status == "paid_off":
            found.paid_off += 1
            continue
        if state.status == "repossessed":
            found.repossessed += 1
            continue
        found.active += 1
        found.left += state.left
        late = days_past_due(state, at)
        if late > AT_RISK_AFTER:
            found.at_risk += state.left
        for index, (low, high) in enumerate(BUCKETS):
            if late >= low and (high is None or late <= high):
                counts[index] += 1
                amounts[index] += state.left
    found.buckets = [Bucket(low, high, count, amount)
                     for (low, high), count, amount in zip(BUCKETS, counts, amounts, strict=True)]
    return found


def by_agent(states: Iterable[PlanState], at: datetime) -> dict[int | None, Figures]:
    """:func:`figures` for each agent's customers' plans."""
    grouped: dict[int | None, list[PlanState]] = {}
    for state in states:
        grouped.setdefault(state.agent_id, []).append(state)
    return {agent: figures(group, at) for agent, group in grouped.items()}


def collection_rate(collected: Decimal, due: Decimal) -> Decimal | None:
    """Collected ÷ due (None when nothing fell due)."""
    return collected / due if due else None
