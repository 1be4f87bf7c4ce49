"""Portfolio health from the ledger: the figures now (the plans as they stand), each past day's as it stood
when the day was over (worked out once and kept: ``portfolio_day``), and the collection rates — the same
definitions (:mod:`bot.portfolio.figures`) in the chat, the chart, the summary and the CSV.

Days are the business's (``PAYGBOT_TIMEZONE``). A collection rate over n days to a day counts that day and the
n − 1 before it: for today, what came in so far against today's whole due.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from bot.clock import day_bounds
from bot.portfolio.figures import DAY, Figures, collection_rate, days_past_due, figures, par30, tally_standing
from storage import ledger
from storage.db import Database
from storage.models import PortfolioDay

KEPT_AFTER = timedelta(minutes=10)
"""A day is kept once it has been over this long: a payment stamped in its last moments has been committed by
then (a writer waits at most a minute for the ledger), so the day is whole when kept."""
CHART_WEEKS = 12
ONE_DAY = DAY
CHART_DAYS = timedelta(weeks=CHART_WEEKS - 1, days=7)
"""How far back the chart reads: its first week's end, and the 7 days of that week's collection rate."""


@dataclass(frozen=True)
class Collection:
    """What came in over the days ``first`` to ``last``, what fell due, and their ratio (None: nothing fell due)."""

    first: date
    last: date
    collected: Decimal
    due: Decimal

    @property
    def rate(self) -> Decimal | None:
        return collection_rate(self.collected, self.due)


@dataclass(frozen=True)
class Health:
    """The portfolio now: its figures, per agent, the collection rates of the 7 and 30 days to today, and the
    days before today that the chart reads."""

    at: datetime
    today: date
    figures: Figures
    agents: dict[int | None, Figures]
    week: Collection
    month: Collection
    days: dict[date, PortfolioDay]


@dataclass(frozen=True)
class Week:
    """One point of the chart: PAR30 at the end of ``end`` (now, for today) and the 7 days' collection rate."""

    end: date
    par30: Decimal | None
    collection: Decimal | None


def _each_day(first: date, last: date) -> list[date]:
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


async def kept_days(db: Database, first: date, last: date, tz: ZoneInfo, now: datetime) -> dict[date, PortfolioDay]:
    """The days from ``first`` to ``last`` that are over, as they stood at their end: read where kept, else
    worked out (the plans now, rewound day by day), and kept if they have been over ``KEPT_AFTER``."""
    wanted = [day for day in _each_day(first, last) if day_bounds(day, tz)[1] <= now]
    if not wanted:
        return {}
    async with db.report() as session:
        await ledger.portfolio.one_snapshot(session=session)
        kept = await ledger.portfolio.portfolio_days(session=session, first=wanted[0], last=wanted[-1])
        missing = [day for day in wanted if day not in kept]
        if not missing:
            return kept
        made = await _work_out(session, missing, tz, now)
    keep = [day for day in made if day.ended_at + KEPT_AFTER <= now]
    if keep:
        async with db.write() as session:
            await ledger.portfolio.keep_portfolio_days(session=session, days=keep)
    return kept | {day.day: day for day in made}


async def _work_out(session: ledger.AsyncSession, days: Sequence[date], tz: ZoneInfo,
                    now: datetime) -> list[PortfolioDay]:
    """``days`` as they stood at their end: from the plans now, each step back undoing only the rows stamped
    since the step before (a day just over is a few rows away from now)."""
    plans = await ledger.portfolio.plans_now(session=session)
    since: datetime | None = None
    made = []
    for day in sorted(days, reverse=True):
        start, end = day_bounds(day, tz)
        if not plans:  # none now, none before (plans are never deleted): nothing was collected either
            made.append(_day(day, end, plans, Decimal(0), now))
            continue
        plans = await ledger.portfolio.rewind(session=session, plans=plans, to=end, since=since)
        since = end
        made.append(_day(day, end, plans, await ledger.portfolio.collected(session=session, start=start, end=end),
                         now))
    return made


def _day(day: date, end: datetime, plans: Sequence[ledger.portfolio.PlanAt], collected: Decimal,
         now: datetime) -> PortfolioDay:
    """What is kept of a day: the figures at its end (without the buckets) and the prices per day of the plans
    still active."""
    found = figures(plans, end)
    due_next = sum((plan.daily_price for plan in plans if plan.status == "active"), Decimal(0))
    return PortfolioDay(day=day, ended_at=end, active=found.active, paid_off=found.paid_off,
                        repossessed=found.repossessed, left=found.left, at_risk=found.at_risk, due_next=due_next,
                        collected=collected, made_at=now)


def collection(days: dict[date, PortfolioDay], last: date, count: int,
               today_so_far: Decimal | None = None) -> Collection:
    """The ``count`` days to ``last``: collected in them (``today_so_far`` for ``last`` when it is today) ÷ due
    in them, a day's due being the prices per day of the plans active when it began."""
    first = last - timedelta(days=count - 1)
    collected = sum((days[day].collected for day in _each_day(first, last) if day in days), Decimal(0))
    due = sum((days[day - ONE_DAY].due_next for day in _each_day(first, last) if day - ONE_DAY in days),
              Decimal(0))
    return Collection(first, last, collected + (today_so_far or Decimal(0)), due)


def day_par30(day: PortfolioDay | None) -> Decimal | None:
    return par30(day.at_risk, day.left) if day is not None else None


async def health(db: Database, now: datetime, tz: ZoneInfo) -> Health:
    """The plans as they stand now, per agent, and the collection rates of the 7 and 30 days to today."""
    today = now.astimezone(tz).date()
    days = await kept_days(db, today - CHART_DAYS, today - ONE_DAY, tz, now)
    async with db.report() as session:
        await ledger.portfolio.one_snapshot(session=session)
        active, ended = await ledger.portfolio.standing_now(session=session)
        so_far = await ledger.portfolio.collected(session=session, start=day_bounds(today, tz)[0])  # as standing
    everyone, agents = tally_standing(active, ended, now)
    return Health(now, today, everyone, agents, collection(days, today, 7, so_far), collection(days, today, 30, so_far),
                  days)


def weeks(health: Health) -> list[Week]:
    """The chart's points, oldest first: the end of each of the 11 weeks before today as it stood, then now."""
    today, days = health.today, health.days
    points = [Week(end, day_par30(days.get(end)), collection(days, end, 7).rate)
              for end in (today - timedelta(weeks=back) for back in range(CHART_WEEKS - 1, 0, -1))]
    return [*points, Week(today, health.figures.par30, health.week.rate)]


@dataclass(frozen=True)
class Line:
    """The summary's line: PAR30 and the 7-day collection rate of a day, and of the day before."""

    par30: Decimal | None
    par30_before: Decimal | None
    collection: Decimal | None
    collection_before: Decimal | None


async def summary_line(db: Database, day: date, tz: ZoneInfo, now: datetime) -> Line | None:
    """``day`` as it stood at its end (as it stands now, while it runs) against the day before; None when the
    ledger has no plan."""
    before = day - ONE_DAY
    if day_bounds(day, tz)[1] <= now:
        days = await kept_days(db, day - timedelta(days=8), day, tz, now)
        this = days.get(day)
        if this is None or not (this.active or this.paid_off or this.repossessed):
            return None
        return Line(day_par30(this), day_par30(days.get(before)), collection(days, day, 7).rate,
                    collection(days, before, 7).rate)
    current = await health(db, now, tz)
    if not (current.figures.active or current.figures.paid_off or current.figures.repossessed):
        return None
    days = await kept_days(db, before - timedelta(days=7), before, tz, now)
    return Line(current.figures.par30, day_par30(days.get(before)), current.week.rate,
                collection(days, before, 7).rate)


async def visits(db: Database, now: datetime, *, agent_id: int | None) -> list[ledger.portfolio.Visit]:
    """Customers' devices at least one whole day past due, most days first (``agent_id``'s customers only,
    when given)."""
    async with db.report() as session:
        return await ledger.portfolio.visits(session=session, ended_before=now - ONE_DAY, agent_id=agent_id)


@dataclass(frozen=True)
class PlanLine:
    """One plan of ``/export portfolio``: who, where it stands, how late."""

    device: str
    customer: str
    phone: str
    agent: str
    state: ledger.portfolio.PlanAt
    days_past_due: int


async def plan_lines(db: Database, now: datetime) -> list[PlanLine]:
    """Every plan as it stands, with its device, customer and agent (the same states the figures are made
    from)."""
    async with db.report() as session:
        plans = {plan.plan_id: plan for plan in await ledger.portfolio.plans_now(session=session)}
        rows = await ledger.plan_rows(session=session)
    lines = []
    for row in rows:
        if row.plan.id not in plans:
            continue
        state = plans[row.plan.id]
        agent = row.agent.name or str(row.agent.telegram_id) if row.agent is not None else ""
        lines.append(PlanLine(row.device.label, row.customer.name if row.customer else "",
                              row.customer.phone if row.customer else "", agent, state,
                              days_past_due(state, now) if state.status == "active" else 0))
    return lines
