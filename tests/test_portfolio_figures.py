"""The portfolio's definitions on a small portfolio whose answers are worked out by hand."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace
from typing import TYPE_CHECKING, cast
from zoneinfo import ZoneInfo

from bot.clock import ManualClock
from bot.jobs import keep_portfolio_days
from bot.portfolio import service
from bot.portfolio.figures import PlanState, collection_rate, days_past_due, figures, tally
from storage import ledger
from storage.db import Database
from storage.models import (
    CodeKind,
    CodeRequest,
    Payment,
    PaymentStatus,
    Plan,
    PlanEvent,
    PlanStatus,
    PortfolioDay,
    Reversal,
    Role,
    Status,
)

if TYPE_CHECKING:
    from bot.services import Services

AT = datetime(2026, 12, 1, tzinfo=UTC)
DAY = timedelta(days=1)


def plan(plan_id: int, *, status: str = "active", total: int = 1000, paid: int = 0, credit_days: int | None,
         agent: int | None = 1, started_days_ago: int = 200) -> PlanState:
    """``credit_days``: the credit ends that many days after AT (negative: it ended that long ago)."""
    credit = AT + credit_days * DAY if credit_days is not None else None
    return PlanState(plan_id, status, Decimal(total), Decimal(10), Decimal(paid), AT - started_days_ago * DAY,
                     credit, agent)


PORTFOLIO = [
    plan(1, paid=400, credit_days=5),                  # running: 0 DPD, 600 left
    plan(2, paid=100, credit_days=-3),                 # 3 DPD (1–7), 900 left
    plan(3, paid=700, credit_days=-30),                # 30 DPD (8–30): not yet at risk, 300 left
    plan(4, paid=200, credit_days=-31, agent=2),       # 31 DPD (31–90): at risk, 800 left
    plan(5, paid=950, credit_days=-120, agent=2),      # 120 DPD (over 90): at risk, 50 left
    plan(6, paid=0, credit_days=None, started_days_ago=10, agent=2),  # never had credit: 10 DPD, 1000 left
    plan(7, status="paid_off", paid=1000, credit_days=-400),
    plan(8, status="repossessed", paid=300, credit_days=-200),
]


def test_days_past_due_are_whole_days_since_the_credit_ended() -> None:
    assert days_past_due(PORTFOLIO[0], AT) == 0
    assert days_past_due(PORTFOLIO[1], AT) == 3
    assert days_past_due(PORTFOLIO[1], AT - 2 * DAY - timedelta(hours=1)) == 0  # 23 h after the end: still 0
    assert days_past_due(PORTFOLIO[5], AT) == 10


def test_par30_and_buckets_by_hand() -> None:
    found = figures(PORTFOLIO, AT)
    assert (found.active, found.paid_off, found.repossessed) == (6, 1, 1)
    assert found.left == Decimal(600 + 900 + 300 + 800 + 50 + 1000) == Decimal(3650)
    assert found.at_risk == Decimal(850)  # plans 4 and 5: more than 30 DPD
    assert found.par30 == Decimal(850) / Decimal(3650)  # by balance (2 of 6 plans by count would be 33%)
    assert [(b.low, b.high, b.count, b.amount) for b in found.buckets] == [
        (1, 7, 1, Decimal(900)), (8, 30, 2, Decimal(1300)), (31, 90, 1, Decimal(800)), (91, None, 1, Decimal(50))]
    agents = tally(PORTFOLIO, AT)[1]
    assert (agents[1].left, agents[1].at_risk) == (Decimal(1800), Decimal(0))
    assert (agents[2].left, agents[2].at_risk, agents[2].par30) == (Decimal(1850), Decimal(850),
                                                                    Decimal(850) / Decimal(1850))


def test_nothing_left_to_pay_has_no_par30() -> None:
    assert figures([plan(1, status="paid_off", paid=1000, credit_days=3)], AT).par30 is None


def test_collection_rate_counts_each_plan_only_on_the_days_it_was_active_when_they_began() -> None:
    """Days 1–7; plan A (10 a day) all week, plan B (20 a day) started during day 2, plan C (5 a day) paid off
    during day 4. A day's due is what the plans active when it began owe for it; the day before day 1 ended
    with A and C active."""
    first = date(2026, 11, 24)
    kept: dict[date, PortfolioDay] = {}
    for n in range(8):  # day 0 (the day before day 1) to day 7
        day = first + timedelta(days=n - 1)
        due_next = Decimal(10) + (20 if n >= 2 else 0) + (5 if n < 4 else 0)  # B from day 3, C until day 4
        kept[day] = PortfolioDay(day=day, ended_at=AT, active=1, paid_off=0, repossessed=0, left=Decimal(0),
                                 at_risk=Decimal(0), due_next=due_next, collected=Decimal(20 if n else 999),
                                 made_at=AT)
    week = service.collection(kept, first + timedelta(days=6), 7)
    # due: A 10 × 7 + B 20 × 5 (days 3–7) + C 5 × 4 (days 1–4) = 190; collected 20 × 7 (day 0's 999 is outside)
    assert (week.first, week.collected, week.due) == (first, Decimal(140), Decimal(190))
    assert week.rate == Decimal(140) / Decimal(190)
    today = service.collection({d: k for d, k in kept.items() if d < first + timedelta(days=6)},
                               first + timedelta(days=6), 7, today_so_far=Decimal(5))
    assert (today.collected, today.due) == (Decimal(125), Decimal(190))  # today: what came in so far, its whole due
    assert collection_rate(Decimal(0), Decimal(0)) is None


async def test_plans_as_they_stood_are_read_from_the_ledger_and_later_rows_change_nothing(db: Database) -> None:
    start = AT - 40 * DAY
    async with db.write() as session:
        device, _ = await ledger.add_device(session=session, ids=["PF1"], now=start)
        assert device.id is not None
        plan_row = await ledger.add_plan(session=session, plan=Plan(
            device_id=device.id, total=Decimal(1000), daily_price=Decimal(10), currency="KES", started_at=start))
        await ledger.add_plan_event(session=session, plan=plan_row, kind="created", at=start)
        # as the bot does it: each row beside the plan's and the device's columns it changes
        paid_once = await _paid(session, device.id, plan_row.id, "P-1", 300, start + DAY)
        await _code(session, device.id, start + DAY, start + 31 * DAY)  # 30 days from day 1
        await _paid(session, device.id, plan_row.id, "P-2", 100, start + 20 * DAY)
        session.add(Reversal(payment_id=paid_once, plan_id=plan_row.id, amount=Decimal(300), at=start + 25 * DAY))
        plan_row.total, plan_row.paid, device.credit_until = Decimal(1200), Decimal(100), start + 31 * DAY
        await ledger.add_plan_event(session=session, plan=plan_row, kind="changed", at=start + 30 * DAY)
        session.add_all([plan_row, device])
    day_10 = start + 10 * DAY
    day_39 = start + 39 * DAY
    async with db.read() as session:
        [then] = await ledger.portfolio.plans_at(session=session, at=day_10)
        [now] = await ledger.portfolio.plans_at(session=session, at=day_39)
        [day_0] = await ledger.portfolio.plans_at(session=session, at=start + timedelta(hours=1))
        assert await ledger.portfolio.plans_at(session=session, at=start - DAY) == []
    assert (then.total, then.paid, then.credit_until, then.status) == (Decimal(1000), Decimal(300), start + 31 * DAY,
                                                                       "active")
    assert (day_0.paid, day_0.credit_until) == (Decimal(0), None)  # before the first payment and code
    assert (now.total, now.paid) == (Decimal(1200), Decimal(100))  # 300 + 100 − the reversed 300; the new total
    state = PlanState(now.plan_id, now.status, now.total, now.daily_price, now.paid, now.started_at,
                      now.credit_until, now.agent_id)
    assert days_past_due(state, day_39) == 8 and figures([state], day_39).left == Decimal(1100)
    tz = ZoneInfo("UTC")
    health = await service.health(db, day_39, tz)
    assert (health.figures.active, health.figures.left, health.figures.at_risk) == (1, Decimal(1100), Decimal(0))
    assert (health.week.collected, health.week.due, health.week.rate) == (Decimal(0), Decimal(70), Decimal(0))
    kept = await service.kept_days(db, start.date() - DAY, (start + 38 * DAY).date(), tz, day_39)
    assert sorted(kept) == [(start + n * DAY).date() for n in range(-1, 39)]
    around_p2 = service.collection(kept, (start + 20 * DAY).date(), 2)  # days 19 and 20: P-2 came in on day 20
    assert (around_p2.collected, around_p2.due, around_p2.rate) == (Decimal(100), Decimal(20), Decimal(5))
    assert service.collection(kept, (start + 25 * DAY).date(), 1).collected == Decimal(-300)  # the reversal
    before_start = service.collection(kept, (start - DAY).date(), 7)
    assert (before_start.due, before_start.rate) == (Decimal(0), None)
    day_ten = kept[(start + 10 * DAY).date()]
    assert (day_ten.active, day_ten.left, day_ten.at_risk, day_ten.due_next) == (1, Decimal(700), Decimal(0),
                                                                                 Decimal(10))
    # a payment arriving later changes neither how day 10 stood nor the day kept
    async with db.write() as session:
        await _paid(session, device.id, plan_row.id, "P-3", 500, start + 39 * DAY + timedelta(hours=1))
        plan_row.paid = Decimal(600)
        session.add(plan_row)
    async with db.read() as session:
        [again] = await ledger.portfolio.plans_at(session=session, at=day_10)
    assert again == then
    again_kept = await service.kept_days(db, (start + 10 * DAY).date(), (start + 10 * DAY).date(), tz,
                                         start + 40 * DAY)
    assert again_kept[(start + 10 * DAY).date()].left == day_ten.left


async def _paid(session: ledger.AsyncSession, device_id: int, plan_id: int | None, reference: str, amount: int,
                when: datetime) -> int:
    payment, _ = await ledger.add_payment(session=session, payment=Payment(
        provider="cash", reference=reference, amount=Decimal(amount), currency="KES", account="PF1",
        received_at=when, matched_at=when, device_id=device_id, plan_id=plan_id, status=PaymentStatus.MATCHED))
    assert payment.id is not None
    return payment.id


async def _code(session: ledger.AsyncSession, device_id: int, when: datetime, until: datetime) -> None:
    await ledger.add_request(session=session, request=CodeRequest(
        device_id=device_id, device_ref="PF1", kind=CodeKind.DAYS, days=30, status=Status.ISSUED, code="*1#",
        issued_at=when, credit_until=until, not_before=when, created_at=when))


async def test_visits_leave_out_devices_paid_off_or_running(db: Database) -> None:
    async with db.write() as session:
        agent = await ledger.put_person(session=session, telegram_id=4242, role=Role.AGENT, name="Ann", now=AT)
        for n, (credit_days, status) in enumerate([(-10, PlanStatus.ACTIVE), (-20, PlanStatus.PAID_OFF),
                                                  (5, PlanStatus.ACTIVE), (-3, None)]):
            device, _ = await ledger.add_device(session=session, ids=[f"VIS{n}"], now=AT)
            device.credit_until, device.daily_price, device.currency = AT + credit_days * DAY, Decimal(10), "KES"
            await ledger.put_customer(session=session, device=device, phone=f"+2547000000{n}", name=f"C{n}",
                                      registered_by_id=agent.id, now=AT)
            session.add(device)
            if status is not None:
                assert device.id is not None
                await ledger.add_plan(session=session, plan=Plan(
                    device_id=device.id, total=Decimal(500), daily_price=Decimal(10), currency="KES", status=status,
                    paid=Decimal(100), started_at=AT - 100 * DAY))
    found = await service.visits(db, AT, agent_id=agent.id)
    assert [(v.device, v.left) for v in found] == [("VIS0", Decimal(400)), ("VIS3", None)]  # most days first
    assert await service.visits(db, AT, agent_id=(agent.id or 0) + 1) == []


def test_a_kept_day_adds_up_as_the_figures_do() -> None:
    """What a day keeps, from the ledger's own rows, is :func:`figures`' counts, left and at risk on the
    hand-computed portfolio, on every day around its 30-days-past-due edges."""
    plans = [ledger.portfolio.PlanAt(p.plan_id, p.plan_id, p.status, p.total, p.daily_price, p.paid, p.started_at,
                                     None, p.credit_until, p.agent_id) for p in PORTFOLIO]
    for back in range(-3, 5):
        end = AT + back * DAY
        kept = service._day(end.date(), end, plans, Decimal(0), end)
        found = figures(PORTFOLIO, end)
        assert (kept.active, kept.paid_off, kept.repossessed, kept.left, kept.at_risk) == (
            found.active, found.paid_off, found.repossessed, found.left, found.at_risk), back
        assert kept.due_next == Decimal(10) * 6  # the six active plans' prices per day


async def test_the_minute_job_keeps_each_day_once_it_is_over(db: Database) -> None:
    """The managers' minute job keeps the 12 weeks the chart reads, then each day as it ends; a day kept is
    never rewritten."""
    clock = ManualClock(AT + timedelta(hours=10))
    services = cast("Services", SimpleNamespace(db=db, clock=clock, settings=SimpleNamespace(tz=ZoneInfo("UTC"))))
    async with db.write() as session:
        device, _ = await ledger.add_device(session=session, ids=["PF2"], now=AT - 100 * DAY)
        assert device.id is not None
        plan_row = await ledger.add_plan(session=session, plan=Plan(
            device_id=device.id, total=Decimal(1000), daily_price=Decimal(10), currency="KES",
            started_at=AT - 100 * DAY))
        await ledger.add_plan_event(session=session, plan=plan_row, kind="created", at=AT - 100 * DAY)
    await keep_portfolio_days(services)
    async with db.read() as session:
        first = await ledger.portfolio.portfolio_days(session=session, first=date(2000, 1, 1), last=AT.date())
    assert sorted(first) == [(AT - n * DAY).date() for n in range(84, 0, -1)]  # 11 weeks, and 7 days before
    assert first[(AT - DAY).date()].at_risk == Decimal(1000)  # never had credit: past due since it started
    clock.advance(days=1)  # 10:00 the next day: one more day over (for more than ten minutes: kept)
    await keep_portfolio_days(services)
    async with db.read() as session:
        second = await ledger.portfolio.portfolio_days(session=session, first=date(2000, 1, 1), last=AT.date())
    assert set(second) - set(first) == {AT.date()}
    assert all(second[day].made_at == first[day].made_at for day in first)  # kept once, never rewritten


async def test_credit_an_import_set_is_the_past_until_a_code_changes_it(db: Database) -> None:
    """An import sets a device's credit with no code: a day worked out after the device's next code still reads
    the credit the import left (here ended 44 days before), not "never had credit" nor the code's."""
    imported_at = AT - 10 * DAY
    credit_then = imported_at - 44 * DAY
    async with db.write() as session:
        device, _ = await ledger.add_device(session=session, ids=["PF3"], now=imported_at)
        assert device.id is not None
        plan_row = await ledger.add_plan(session=session, plan=Plan(
            device_id=device.id, total=Decimal(2000), daily_price=Decimal(25), currency="KES", paid=Decimal(500),
            opening_paid=Decimal(500), started_at=imported_at))
        assert plan_row.id is not None
        session.add(PlanEvent(plan_id=plan_row.id, at=imported_at, kind="imported", total=Decimal(2000),
                              daily_price=Decimal(25), currency="KES", paid=Decimal(500), credit_until=credit_then))
        # three days later the customer pays: 10 days from then (the old credit had ended: nothing stacked)
        await _paid(session, device.id, plan_row.id, "P-9", 250, imported_at + 3 * DAY)
        await _code(session, device.id, imported_at + 3 * DAY, imported_at + 13 * DAY)
        plan_row.paid, device.credit_until = Decimal(750), imported_at + 13 * DAY
        session.add_all([plan_row, device])
    async with db.read() as session:
        [then] = await ledger.portfolio.plans_at(session=session, at=imported_at + 2 * DAY)
        [later] = await ledger.portfolio.plans_at(session=session, at=imported_at + 5 * DAY)
    assert (then.credit_until, then.paid) == (credit_then, Decimal(500))  # 46 days past due: at risk
    assert figures([then], imported_at + 2 * DAY).at_risk == Decimal(1500)
    assert (later.credit_until, later.paid) == (imported_at + 13 * DAY, Decimal(750))
