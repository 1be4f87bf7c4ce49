"""Portfolio health from the ledger (issue 17, in progress): the figures now and on past days, and the
collection rate of a period — each computed from the plans as they stood then (``ledger.portfolio``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from bot.portfolio.figures import (
    Figures,
    PlanState,
    by_agent,
    collection_rate,
    days_active,
    days_past_due,
    figures,
)
from storage import ledger
from storage.db import Database


@dataclass(frozen=True)
class Collection:
    """What came in over a period, what fell due, and their ratio (None when nothing fell due)."""

    start: datetime
    end: datetime
    collected: Decimal
    due: Decimal

    @property
    def rate(self) -> Decimal | None:
        return collection_rate(self.collected, self.due)


@dataclass(frozen=True)
class Health:
    """The portfolio at a moment: its figures, per agent, and the collection rate of the 7 and 30 days before."""

    at: datetime
    figures: Figures
    agents: dict[int | None, Figures]
    week: Collection
    month: Collection


def _states(plans: list[ledger.portfolio.PlanAt]) -> list[PlanState]:
    return [PlanState(p.plan_id, p.status, p.total, p.daily_price, p.paid, p.started_at, p.credit_until, p.agent_id)
            for p in plans]


async def health(db: Database, at: datetime) -> Health:
    """The figures at ``at``, per agent, and the collection rates of the 7 and 30 days before (one read of the
    plans as they stood at ``at`` serves all of them)."""
    async with db.read() as session:
        plans = await ledger.portfolio.plans_at(session=session, at=at)
        week = await ledger.portfolio.collected(session=session, start=at - timedelta(days=7), end=at)
        month = await ledger.portfolio.collected(session=session, start=at - timedelta(days=30), end=at)
    states = _states(plans)
    return Health(at, figures(states, at), by_agent(states, at), _collection(plans, week, at - timedelta(days=7), at),
                  _collection(plans, month, at - timedelta(days=30), at))


def _collection(plans: list[ledger.portfolio.PlanAt], came_in: Decimal, start: datetime, end: datetime) -> Collection:
    due = sum((plan.daily_price * days_active(plan.started_at, plan.ended_at, start, end) for plan in plans),
              Decimal(0))
    return Collection(start, end, came_in, due)


@dataclass(frozen=True)
class Week:
    """One week of the chart: PAR30 at its end, and its collection rate."""

    end: datetime
    par30: Decimal | None
    collection: Decimal | None


async def weeks(db: Database, now: datetime, count: int = 12) -> list[Week]:
    """The last ``count`` weeks up to ``now``, oldest first, each as the plans stood at its end."""
    found = []
    for back in range(count - 1, -1, -1):
        end = now - timedelta(weeks=back)
        async with db.read() as session:
            plans = await ledger.portfolio.plans_at(session=session, at=end)
            came_in = await ledger.portfolio.collected(session=session, start=end - timedelta(days=7), end=end)
        week = _collection(plans, came_in, end - timedelta(days=7), end)
        found.append(Week(end, figures(_states(plans), end).par30, week.rate))
    return found


async def collection(db: Database, start: datetime, end: datetime) -> Collection:
    """Collected ÷ due over [start, end): due is each plan's price per day × the days of the period it was
    active in (as the plans stood at ``end``)."""
    async with db.read() as session:
        plans = await ledger.portfolio.plans_at(session=session, at=end)
        came_in = await ledger.portfolio.collected(session=session, start=start, end=end)
    return _collection(plans, came_in, start, end)


async def visits(db: Database, now: datetime, *, agent_id: int | None) -> list[ledger.portfolio.Visit]:
    """Customers' devices at least one whole day past due, most days first (``agent_id``'s customers only,
    when given)."""
    async with db.read() as session:
        return await ledger.portfolio.visits(session=session, ended_before=now - timedelta(days=1),
                                             agent_id=agent_id)


@dataclass(frozen=True)
class PlanLine:
    """One plan of ``/export portfolio``: who, where it stands, how late."""

    device: str
    customer: str
    phone: str
    agent: str
    state: PlanState
    days_past_due: int


async def plan_lines(db: Database, at: datetime) -> list[PlanLine]:
    """Every plan started by ``at`` as it stood then, with its device, customer and agent (the same states the
    figures, the summary and the chart are made from)."""
    async with db.read() as session:
        plans = {plan.plan_id: plan for plan in await ledger.portfolio.plans_at(session=session, at=at)}
        rows = await ledger.plan_rows(session=session)
    lines = []
    for row in rows:
        if row.plan.id not in plans:
            continue
        state = _states([plans[row.plan.id]])[0]
        agent = row.agent.name or str(row.agent.telegram_id) if row.agent is not None else ""
        lines.append(PlanLine(row.device.label, row.customer.name if row.customer else "",
                              row.customer.phone if row.customer else "", agent, state,
                              days_past_due(state, at) if state.status == "active" else 0))
    return lines
