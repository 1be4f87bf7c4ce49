"""Portfolio health end to end on a small portfolio whose every figure is worked out by hand below: six plans
set, paid, paid off and repossessed through the chat over 46 days, then the same figures checked in
``/portfolio``'s text, ``/export portfolio``'s CSV, the chart's data and ``/summary``'s portfolio line — before
and after a late payment, which changes the figures now but none of a past day's.

The business is in Nairobi (UTC+3), so a local day is not a UTC day: one payment is made at 01:00 local time
(22:00 UTC the day before) and counts on its local day. Day n below is 22 November 2026 + n days (local), and
everything happens at 12:00 local time unless said otherwise.

The portfolio (price per day; customer's agent):

======  ==============  =====  =====  =====  ========================================================
plan    device          total  a day  agent  what happens
======  ==============  =====  =====  =====  ========================================================
P1      TEST2503000017  3000   50     Alex   day 0 pays 2500 (50 days), day 38 01:00 pays 100 (2 days
                                             stacked), day 44 pays 250 (5 days stacked): running
P2      01AH2307000009  2000   40     Alex   day 0 pays 400 (10 days), day 30 pays 400 (10 days, credit
                                             ended day 10: from now), day 40 pays 80 (2 days)
P3      SBX00000000001  1500   30     Bea    day 0 pays 300 (10 days), day 20 pays 300 (10 days)
P4      SBX00000000002  1200   20     Bea    day 0 pays 280 (14 days); day 45 19:00 pays 240 (12 days)
P5      SBX00000000003   200   10     Alex   day 0 pays 100, day 5 pays 100: paid off on day 5
P6      SBX00000000004   500   25     Bea    day 0 pays 50 (2 days); repossessed on day 40
======  ==============  =====  =====  =====  ========================================================
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import select

from bot.clock import ManualClock, day_bounds
from bot.portfolio import service
from bot.portfolio.figures import PlanState, figures
from bot.standins.erm import ErmSandbox
from bot.standins.telegram import TelegramUser
from storage import ledger
from storage.models import Plan, PlanStatus, Role, Status
from tests.support.chat import AGENT, MANAGER, OTHER_AGENT
from tests.support.paying import DEVICE, Paying, paying
from tests.test_plans_chat import said, text_of

NAIROBI = ZoneInfo("Africa/Nairobi")
DAY0 = date(2026, 11, 22)
P1, P2, P3, P4, P5, P6 = (DEVICE, "01AH2307000009", "SBX00000000001", "SBX00000000002", "SBX00000000003",
                          "SBX00000000004")
D = Decimal


def day(n: int) -> date:
    return DAY0 + timedelta(days=n)


def moment(n: int, hour: int = 12) -> datetime:
    """Day ``n`` at ``hour`` o'clock, Nairobi time."""
    return datetime(day(n).year, day(n).month, day(n).day, hour, tzinfo=NAIROBI)


def end_of(n: int) -> datetime:
    """The end of day ``n`` (the next local midnight), as the bot reckons it."""
    return day_bounds(day(n), NAIROBI)[1]


@pytest.fixture
async def bot(erm_sandbox: ErmSandbox, erm_url: str, database_url: str, clock: ManualClock) -> AsyncIterator[Paying]:
    """The bot of ``tests/conftest.py`` in Nairobi's time (so that a local day is not a UTC day), with AGENT
    and OTHER_AGENT agents; the clock starts on day 0 at 12:00 local time."""
    assert clock.now() == moment(0)
    async with paying(erm_sandbox, erm_url, database_url, clock, PAYGBOT_TIMEZONE="Africa/Nairobi") as running:
        await running.chat.make(OTHER_AGENT, Role.AGENT)
        yield running


# -- driving the chat ------------------------------------------------------------------------------------


async def codes_of(bot: Paying, device: str) -> int:
    return len([r for r in await bot.requests()
                if r.device_ref == device and r.status in (Status.ISSUED, Status.DELIVERED)])


async def pay(bot: Paying, user: TelegramUser, device: str, amount: int, reference: str) -> None:
    """Cash recorded by ``user`` through the chat, until its days code is issued: at this very moment of the
    clock, which the device's credit then runs from (the clock moves only once it is)."""
    before = await codes_of(bot, device)
    after = bot.chat.api.position
    await bot.chat.api.user_says(user, f"/pay {device} {amount} {reference}")
    await said(bot, user, "recorded", after)
    await bot.settled(lambda: _more_codes(bot, device, before))


async def _more_codes(bot: Paying, device: str, before: int) -> bool:
    return await codes_of(bot, device) > before


def at(bot: Paying, when: datetime) -> None:
    """Move the clock on to ``when`` (only ever forward)."""
    assert when > bot.chat.clock.now()
    bot.chat.clock.set(when)


async def portfolio(bot: Paying) -> list[str]:
    """``/portfolio``'s lines, once its chart (a PNG) has followed."""
    after = bot.chat.api.position
    text = text_of(await bot.chat.say(MANAGER, "/portfolio"))
    picture = await bot.chat.api.wait_for(lambda s: s.chat_id == MANAGER.id and s.method == "sendPhoto", after=after)
    assert picture.photo is not None and picture.photo.startswith(b"\x89PNG")
    return text.splitlines()


async def exported(bot: Paying) -> dict[str, dict[str, str]]:
    """``/export portfolio``'s rows by device."""
    after = bot.chat.api.position
    await bot.chat.api.user_says(MANAGER, "/export portfolio")
    sent = await bot.chat.api.wait_for(lambda s: s.chat_id == MANAGER.id and s.document is not None, after=after)
    assert sent.document is not None
    return {row["device"]: row for row in csv.DictReader(io.StringIO(sent.document.decode()))}


async def summary_line(bot: Paying, *words: str) -> str:
    """The 📈 line of ``/summary`` (its chart awaited too, so that nothing of it arrives later)."""
    after = bot.chat.api.position
    await bot.chat.api.user_says(MANAGER, " ".join(["/summary", *words]))
    text = text_of(await said(bot, MANAGER, "Summary for", after))
    await bot.chat.api.wait_for(lambda s: s.chat_id == MANAGER.id and s.method == "sendPhoto", after=after)
    [line] = [line for line in text.splitlines() if line.startswith("📈")]
    return line


async def plans(bot: Paying) -> list[Plan]:
    async with bot.services.db.read() as session:
        return list((await session.exec(select(Plan).order_by(Plan.id))).all())  # type: ignore[arg-type]


async def as_it_stood(bot: Paying, when: datetime) -> tuple[D, D, tuple[int, int, int]]:
    """Left to pay, at risk and the counts of the plans rewound afresh to ``when`` (not a kept day)."""
    async with bot.services.db.read() as session:
        then = await ledger.portfolio.plans_at(session=session, at=when)
    found = figures([PlanState(p.plan_id, p.status, p.total, p.daily_price, p.paid, p.started_at, p.credit_until,
                               p.agent_id) for p in then], when)
    return found.left, found.at_risk, (found.active, found.paid_off, found.repossessed)


async def kept(bot: Paying, first: int, last: int) -> dict[date, tuple[object, ...]]:
    """The days kept from day ``first`` to day ``last``: every column."""
    async with bot.services.db.read() as session:
        days = await ledger.portfolio.portfolio_days(session=session, first=day(first), last=day(last))
    return {d: (k.left, k.at_risk, k.due_next, k.collected, k.active, k.paid_off, k.repossessed, k.made_at)
            for d, k in days.items()}


async def build(bot: Paying) -> None:
    """The portfolio of the module's table, day 0 to day 44, through the chat as people would make it."""
    await bot.customer()  # Jane Wanjiru, registered by AGENT (Alex Kamau) for P1
    for agent, device, phone, name in ((AGENT, P2, "0722100002", "Peter Mwangi"),
                                       (OTHER_AGENT, P3, "0722100003", "Grace Achieng"),
                                       (OTHER_AGENT, P4, "0722100004", "John Otieno"),
                                       (AGENT, P5, "0722100005", "Mercy Chebet"),
                                       (OTHER_AGENT, P6, "0722100006", "David Kiprop")):
        assert f"{name} is the customer of {device}" in text_of(await bot.chat.say(agent, f"/customer {device} "
                                                                                          f"{phone} {name}"))
    for device, total, price in ((P1, 3000, 50), (P2, 2000, 40), (P3, 1500, 30), (P4, 1200, 20), (P5, 200, 10),
                                 (P6, 500, 25)):
        assert "Plan set for" in text_of(await bot.chat.say(MANAGER, f"/plan {device} {total} {price} KES"))
    # day 0, 12:00: collected 2500 + 400 + 300 + 280 + 100 + 50 = 3630
    await pay(bot, AGENT, P1, 2500, "C-1")  # 50 days: credit to day 50, 12:00
    await pay(bot, AGENT, P2, 400, "C-2")  # 10 days: to day 10
    await pay(bot, OTHER_AGENT, P3, 300, "C-3")  # 10 days: to day 10
    await pay(bot, OTHER_AGENT, P4, 280, "C-4")  # 14 days: to day 14
    await pay(bot, AGENT, P5, 100, "C-5")  # 10 days: to day 10
    await pay(bot, OTHER_AGENT, P6, 50, "C-6")  # 2 days: to day 2
    at(bot, moment(5))
    await pay(bot, AGENT, P5, 100, "C-7")  # paid 200 of 200: paid off (the managers asked for its unlock)
    at(bot, moment(20))
    await pay(bot, OTHER_AGENT, P3, 300, "C-8")  # credit ended day 10: 10 days from now, to day 30
    at(bot, moment(30))
    await pay(bot, AGENT, P2, 400, "C-9")  # credit ended day 10: to day 40
    at(bot, moment(38, hour=1))  # 01:00 in Nairobi, 22:00 UTC on day 37: day 38's money
    await pay(bot, AGENT, P1, 100, "C-10")  # 2 days stacked: to day 52
    at(bot, moment(40))
    await pay(bot, AGENT, P2, 80, "C-11")  # credit ends right now: 2 days from now, to day 42
    preview = await bot.chat.say(MANAGER, f"/repossess {P6}")
    done = await bot.chat.tap(MANAGER, preview, preview.button("Repossess")["callback_data"])
    assert f"{P6} repossessed from David Kiprop" in text_of(done)
    at(bot, moment(44))
    await pay(bot, AGENT, P1, 250, "C-12")  # 5 days stacked: to day 57
    statuses = [(p.status, p.paid) for p in await plans(bot)]
    assert statuses == [(PlanStatus.ACTIVE, D(2850)), (PlanStatus.ACTIVE, D(880)), (PlanStatus.ACTIVE, D(600)),
                        (PlanStatus.ACTIVE, D(280)), (PlanStatus.PAID_OFF, D(200)), (PlanStatus.REPOSSESSED, D(50))]


# -- the test ----------------------------------------------------------------------------------------


async def test_a_known_portfolio_reads_the_same_in_the_chat_the_csv_the_chart_and_the_summary(bot: Paying) -> None:
    """Each figure is worked out by hand from the definitions (README, "Portfolio health"), not from the bot's
    code: the four places that show it must agree with the hand and so with each other, and a payment that
    arrives later must move today's figures only."""
    await build(bot)
    db, tz = bot.services.db, bot.services.settings.tz
    assert tz == NAIROBI

    # ---- day 45 at 18:00: where the plans stand ----
    # P1: paid 2500 + 100 + 250 = 2850, left 150; credit to day 57: running, 0 DPD
    # P2: paid 400 + 400 + 80 = 880, left 1120; credit ended day 42 12:00: 3 d 6 h ago → 3 DPD (1–7)
    # P3: paid 300 + 300 = 600, left 900; credit ended day 30 12:00: 15 d 6 h → 15 DPD (8–30)
    # P4: paid 280, left 920; credit ended day 14 12:00: 31 d 6 h → 31 DPD (31–90, more than 30: at risk)
    # P5 paid off, P6 repossessed: counted, but neither left to pay nor at risk
    # left = 150 + 1120 + 900 + 920 = 3090; at risk 920; PAR30 = 920 / 3090 = 29.77…% → 29.8%
    # Alex (P1, P2): 2 plans, 150 + 1120 = 1270 left, nothing at risk → 0%
    # Bea (P3, P4): 2 plans, 900 + 920 = 1820 left, 920 at risk → 920 / 1820 = 50.55…% → 50.5%
    #
    # Due on a day: the prices of the plans active when it began; P6 (25) was active at the start of days 16–40
    # (repossessed during day 40), P5 only until day 5; P1–P4 together 50 + 40 + 30 + 20 = 140 every day.
    # 7 days to day 45 (days 39–45): due 7 × 140 + 2 × 25 (days 39, 40) = 1030;
    #   collected 80 (day 40) + 250 (day 44) + 0 so far today = 330 → 330 / 1030 = 32.03…% → 32%
    # 30 days to day 45 (days 16–45): due 30 × 140 + 25 × 25 (days 16–40) = 4200 + 625 = 4825;
    #   collected 300 (day 20) + 400 (day 30) + 100 (day 38) + 80 (day 40) + 250 (day 44) = 1130
    #   → 1130 / 4825 = 23.41…% → 23.4%
    at(bot, moment(45, hour=18))
    lines = await portfolio(bot)
    assert lines == [
        "📈 Portfolio",
        "Plans: 4 being paid, 1 paid off, 1 repossessed",
        "Left to pay: KES 3,090.00",
        "PAR30: 29.8% (left to pay more than 30 days past due: KES 920.00)",
        "Collection rate: 32% over 7 days, 23.4% over 30 days",
        "Days past due",
        "• 1–7 days: 1 plan, KES 1,120.00",
        "• 8–30 days: 1 plan, KES 900.00",
        "• 31–90 days: 1 plan, KES 920.00",
        "• over 90 days: 0 plans, KES 0.00",
        "Per agent",
        "• Alex Kamau: 2 plans, KES 1,270.00 left, PAR30 0%",
        "• Bea Njeri: 2 plans, KES 1,820.00 left, PAR30 50.5%",
    ]

    # ---- the CSV: the same plans, each with its days past due ----
    rows = await exported(bot)
    assert {device: (row["status"], D(row["paid"]), D(row["left"]), row["credit_until"], row["days_past_due"],
                     row["at_risk"], row["agent"]) for device, row in rows.items()} == {
        # credit_until is the last local day the credit covers: credit to day 57 12:00 covers 18 January
        P1: ("active", D(2850), D(150), "2027-01-18", "0", "no", "Alex Kamau"),
        P2: ("active", D(880), D(1120), "2027-01-03", "3", "no", "Alex Kamau"),  # to day 42
        P3: ("active", D(600), D(900), "2026-12-22", "15", "no", "Bea Njeri"),  # to day 30
        P4: ("active", D(280), D(920), "2026-12-06", "31", "yes", "Bea Njeri"),  # to day 14
        # paid off and repossessed: nothing left, never past due; P5's 10 + 10 days ran to day 20 (12 December)
        P5: ("paid_off", D(200), D(0), "2026-12-12", "0", "no", "Alex Kamau"),
        P6: ("repossessed", D(50), D(0), "2026-11-24", "0", "no", "Bea Njeri"),  # 2 days: to day 2
    }
    assert sum(D(row["left"]) for row in rows.values()) == D(3090)  # the chat's "Left to pay"
    assert sum(D(row["left"]) for row in rows.values() if row["at_risk"] == "yes") == D(920)  # its at-risk amount

    # ---- the chart's data: PAR30 at the end of each of the 11 weeks before, and the 7 days' rate to it ----
    # Each point is a past day as it stood at its end (the next local midnight):
    # - day −32 … −4: no plan yet → no PAR30, nothing due → no rate
    # - day 3: all six active, nobody more than 30 DPD → 0%; days −3…3: collected 3630 (day 0), due only on
    #   days 1–3 (the plans began during day 0): 3 × (140 + 10 + 25) = 525 → 3630 / 525
    # - day 10: P6 8 DPD (credit ended day 2 12:00; 8 d 12 h) → 0%; days 4–10: collected 100 (day 5); due
    #   175 (days 4, 5: P5 active at their start) × 2 + 165 × 5 = 1175 → 100 / 1175
    # - day 17: P6 15 DPD → 0%; days 11–17: nothing collected, due 7 × 165 = 1155 → 0
    # - day 24: P6 22 DPD → 0%; days 18–24: 300 (day 20) / 1155
    # - day 31: P6 29 DPD (29 d 12 h: not yet more than 30) → 0%; days 25–31: 400 (day 30) / 1155
    # - day 38: P6 36 DPD → at risk, 500 − 50 = 450 left; left: P1 3000 − 2600 = 400, P2 2000 − 800 = 1200,
    #   P3 900, P4 920 (24 DPD), P6 450 = 3870 → 450 / 3870 = 11.6%; days 32–38: 100 (day 38, paid at 01:00
    #   local) / 1155
    # - day 45 (now): the chat's 920 / 3090 and 330 / 1030
    health = await service.health(db, bot.chat.clock.now(), tz)
    points = service.weeks(health)
    expected_weeks = [(day(n), None, None) for n in (-32, -25, -18, -11, -4)] + [
        (day(3), D(0), D(3630) / D(525)),
        (day(10), D(0), D(100) / D(1175)),
        (day(17), D(0), D(0)),
        (day(24), D(0), D(300) / D(1155)),
        (day(31), D(0), D(400) / D(1155)),
        (day(38), D(450) / D(3870), D(100) / D(1155)),
        (day(45), D(920) / D(3090), D(330) / D(1030)),
    ]
    assert [(p.end, p.par30, p.collection) for p in points] == expected_weeks
    assert [(b.count, b.amount) for b in health.figures.buckets] == [(1, D(1120)), (1, D(900)), (1, D(920)),
                                                                      (0, D(0))]  # the chart's bars
    assert (health.figures.par30, health.week.rate, health.month.rate) == (D(920) / D(3090), D(330) / D(1030),
                                                                           D(1130) / D(4825))
    assert (health.week.collected, health.week.due, health.month.collected, health.month.due) == (
        D(330), D(1030), D(1130), D(4825))

    # ---- the summary's line: today so far against day 44 as it ended ----
    # day 44 at its end: P4 30 DPD (30 d 12 h) — not yet at risk — so PAR30 0% → +29.8 pts
    # 7 days to day 44 (days 38–44): due 7 × 140 + 3 × 25 (days 38–40) = 1055; collected 100 + 80 + 250 = 430
    #   → 40.76%; today's 32.04% − 40.76% = −8.72 pts → −8.7 pts (from the ratios, not the rounded percents)
    assert await summary_line(bot) == ("📈 PAR30 29.8% (+29.8 pts since the day before); "
                                       "collection rate over 7 days 32% (−8.7 pts)")
    # what day 44 and day 38 were, kept: left, at risk, due the next day (prices of the plans active at the
    # end), collected, counts (active, paid off, repossessed)
    before = await kept(bot, 37, 44)
    assert before[day(44)][:7] == (D(3090), D(0), D(140), D(250), 4, 1, 1)
    assert before[day(38)][:7] == (D(3870), D(450), D(165), D(100), 5, 1, 0)
    assert before[day(37)][3] == D(0)  # day 38's payment at 01:00 local (22:00 UTC on day 37) is not day 37's

    # ---- a late payment: P4 pays 240 at 19:00 (12 days, from now: credit to day 57 19:00) ----
    # P4: paid 280 + 240 = 520, left 680, 0 DPD. left = 150 + 1120 + 900 + 680 = 2850; nothing at risk → 0%
    # Bea: 900 + 680 = 1580 left, 0%. 7 days: (330 + 240) / 1030 = 55.34…% → 55.3%;
    # 30 days: (1130 + 240) / 4825 = 28.39…% → 28.4%
    at(bot, moment(45, hour=19))
    await pay(bot, OTHER_AGENT, P4, 240, "C-13")
    # asked at the very moment the payment was stamped: counted in left to pay and in today's collections alike
    lines = await portfolio(bot)
    assert lines == [
        "📈 Portfolio",
        "Plans: 4 being paid, 1 paid off, 1 repossessed",
        "Left to pay: KES 2,850.00",
        "PAR30: 0% (left to pay more than 30 days past due: KES 0.00)",
        "Collection rate: 55.3% over 7 days, 28.4% over 30 days",
        "Days past due",
        "• 1–7 days: 1 plan, KES 1,120.00",
        "• 8–30 days: 1 plan, KES 900.00",
        "• 31–90 days: 0 plans, KES 0.00",
        "• over 90 days: 0 plans, KES 0.00",
        "Per agent",
        "• Alex Kamau: 2 plans, KES 1,270.00 left, PAR30 0%",
        "• Bea Njeri: 2 plans, KES 1,580.00 left, PAR30 0%",
    ]
    row = (await exported(bot))[P4]
    assert (D(row["paid"]), D(row["left"]), row["credit_until"], row["days_past_due"], row["at_risk"]) == (
        D(520), D(680), "2027-01-18", "0", "no")
    # today's summary: PAR30 0% against day 44's 0%; 55.34% − 40.76% = +14.58 → +14.6 pts
    assert await summary_line(bot) == ("📈 PAR30 0% (no change since the day before); "
                                       "collection rate over 7 days 55.3% (+14.6 pts)")

    # ---- history-true: the past days are as they were, kept and worked out afresh; only now moved ----
    assert await kept(bot, 37, 44) == before
    assert await as_it_stood(bot, end_of(44)) == (D(3090), D(0), (4, 1, 1))
    assert await as_it_stood(bot, end_of(38)) == (D(3870), D(450), (5, 1, 0))
    assert await as_it_stood(bot, end_of(31)) == (D(3970), D(0), (5, 1, 0))  # P1 500 + P2 1200 + 900 + 920 + 450
    health = await service.health(db, bot.chat.clock.now(), tz)
    points_after = service.weeks(health)
    assert [(p.end, p.par30, p.collection) for p in points_after] == [
        *expected_weeks[:-1], (day(45), D(0), D(570) / D(1030))]

    # ---- the next day, 01:00 local (22:00 UTC on day 45): day 45 is over and kept ----
    # day 45 at its end: nothing at risk (P4 paid) → 0%, as day 44 → no change; days 39–45: 570 / 1030 = 55.3%
    at(bot, moment(46, hour=1))
    assert await summary_line(bot, day(45).isoformat()) == ("📈 PAR30 0% (no change since the day before); "
                                                            "collection rate over 7 days 55.3% (+14.6 pts)")
    # today is day 46 here (still day 45 in UTC): days 40–46, due 165 (day 40) + 6 × 140 = 1005, collected
    # 80 + 250 + 240 = 570 → 56.72%; against day 45's 55.34%: +1.38 → +1.4 pts
    assert await summary_line(bot) == ("📈 PAR30 0% (no change since the day before); "
                                       "collection rate over 7 days 56.7% (+1.4 pts)")
    assert (await kept(bot, 45, 45))[day(45)][:7] == (D(2850), D(0), D(140), D(240), 4, 1, 1)
