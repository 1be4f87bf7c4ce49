"""What /usage says, from Omnimetic's rows, checked by hand: the months it picks and the last 7 days in
the reader's zone (PAYGBOT_TIMEZONE), not UTC's."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from bot.energy.figures import month_before, usage
from bot.omnimetic.models import HourUsage, MonthUsage, ServiceAccount

NAIROBI = ZoneInfo("Africa/Nairobi")  # UTC+3
ACCOUNT = ServiceAccount(id="acc1", legal_names=["Jane"])


def month(name: str, year: int, wh: float, cents: int = 100) -> MonthUsage:
    return MonthUsage(month=name, year=year, energy_consumption_in_watts=wh, on_peak_usage_in_watts=wh / 4,
                      off_peak_usage_in_watts=wh * 3 / 4, amount_in_cents=cents)


def hour(when: datetime, on: float, off: float) -> HourUsage:
    return HourUsage(date=when, hour=f"{when:%H:%M}", on_peak_usage=on, off_peak_usage=off, total_usage=on + off)


def test_months_picked_across_a_new_year() -> None:
    rows = [month("January", 2026, 31_000, 7750), month("December", 2025, 40_000), month("January", 2025, 25_000),
            month("Smarch", 2025, 1)]
    now = datetime(2026, 1, 10, 12, tzinfo=UTC)
    figures = usage(ACCOUNT, rows, [], now, NAIROBI)
    assert figures.this_month is rows[0] and figures.this_month.energy_kwh == 31.0
    assert str(figures.this_month.amount) == "77.50"
    assert figures.last_month is rows[1] and figures.year_ago is rows[2]
    # the 12 months up to this one: February 2025 to January 2026 (January 2025 is the 13th back)
    assert [(row.year, row.month_number) for row in figures.months] == [(2025, 12), (2026, 1)]
    assert month_before(2026, 1) == (2025, 12) and month_before(2026, 3, 12) == (2025, 3)


def test_the_last_seven_days_are_the_readers_days() -> None:
    # 21:30 UTC on 1 Dec is 00:30 on 2 Dec in Nairobi: today there is 2 Dec
    now = datetime(2026, 12, 1, 21, 30, tzinfo=UTC)
    start = datetime(2026, 11, 24, 0, tzinfo=UTC)
    hours = [hour(start + timedelta(hours=n), 0.1, 0.2) for n in range(7 * 24 + 21)]  # up to 20:00 UTC
    figures = usage(ACCOUNT, [], hours, now, NAIROBI)
    assert figures.today == date(2026, 12, 2)
    assert [day for day, _ in figures.days] == [date(2026, 11, 26) + timedelta(days=n) for n in range(7)]
    kwh = dict(figures.days)
    assert round(kwh[date(2026, 11, 26)], 6) == round(24 * 0.3, 6)  # a whole local day: 21:00 UTC to 21:00 UTC
    assert round(kwh[date(2026, 12, 2)], 6) == 0.0  # Nairobi's 2 Dec has had no whole UTC hour of figures yet
    assert round(figures.week_kwh, 6) == round(6 * 24 * 0.3, 6)
    assert all(start.tzinfo == NAIROBI for start, _, _, _ in figures.hours)
    assert figures.hours[0][0] == datetime(2026, 11, 26, 0, tzinfo=NAIROBI)
    assert not figures.empty


def test_no_rows_is_empty() -> None:
    figures = usage(ACCOUNT, [], [], datetime(2026, 12, 1, tzinfo=UTC), NAIROBI)
    assert figures.empty and figures.this_month is None and figures.week_kwh == 0


def test_a_total_omnimetic_did_not_split_still_counts() -> None:
    """The document's own month: 0 on-peak, 0 off-peak, 677270.4 Wh in all; an hour with only a total."""
    august = MonthUsage(month="August", year=2023, on_peak_usage_in_watts=0, off_peak_usage_in_watts=0,
                        energy_consumption_in_watts=677270.4, amount_in_cents=1128)
    now = datetime(2023, 8, 20, 12, tzinfo=UTC)
    only_total = HourUsage(date=datetime(2023, 8, 19, 10, tzinfo=UTC), hour="10:00", total_usage=1.5)
    figures = usage(ACCOUNT, [august], [only_total], now, ZoneInfo("UTC"))
    assert figures.this_month is august and round(august.energy_kwh, 4) == 677.2704 and str(august.amount) == "11.28"
    assert figures.week_kwh == 1.5 and figures.hours[0][1:] == (0, 0, 1.5)
    from bot.energy.chart import chart
    from bot.texts import for_language

    assert chart(figures, for_language("sw")).startswith(b"\x89PNG")  # the unsplit part drawn, in Swahili
