"""What ``/usage`` says, from Omnimetic's rows: this month so far, last month, the same month a year
ago, the last 7 days, and the 12 months and 7 days × 24 hours the picture shows. Pure functions of the
rows and the moment, so that the tests can check every figure by hand."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from bot.omnimetic.models import HourUsage, MonthUsage, ServiceAccount

WEEK_DAYS = 7
YEAR_MONTHS = 12


@dataclass(frozen=True)
class Usage:
    """A customer's energy use as ``/usage`` shows it."""

    account: ServiceAccount
    today: date
    """The reader's today (``PAYGBOT_TIMEZONE``)."""
    this_month: MonthUsage | None
    last_month: MonthUsage | None
    year_ago: MonthUsage | None
    months: list[MonthUsage]
    """The last 12 months up to this one, oldest first; a month without a row is left out."""
    days: list[tuple[date, float]]
    """Each of the last 7 days (oldest first) and its energy in kWh."""
    hours: list[tuple[datetime, float, float, float]]
    """Each hour of the last 7 days that has a row: its start (local time), on-peak, off-peak and unsplit kWh."""

    @property
    def week_kwh(self) -> float:
        return sum(kwh for _, kwh in self.days)

    @property
    def empty(self) -> bool:
        """Omnimetic holds no figure at all for the account (newly linked, or nothing measured)."""
        return not self.months and not self.hours


def unsplit(total: float, on_peak: float, off_peak: float) -> float:
    """The part of a total that Omnimetic did not split into on- and off-peak (the document's own month
    has a total and 0 for both)."""
    return max(0.0, total - on_peak - off_peak)


def month_before(year: int, month: int, count: int = 1) -> tuple[int, int]:
    index = year * 12 + (month - 1) - count
    return index // 12, index % 12 + 1


def usage(account: ServiceAccount, rows: list[MonthUsage], hours: list[HourUsage], now: datetime,
          tz: ZoneInfo) -> Usage:
    """The figures of ``/usage`` at ``now`` from the monthly ``rows`` (this year and last) and the hourly
    ``hours`` (at least the last 7 local days)."""
    today = now.astimezone(tz).date()
    by_month: dict[tuple[int, int], MonthUsage] = {}
    for row in rows:
        try:
            by_month[(row.year, row.month_number)] = row
        except ValueError:
            continue  # not an English month name: not a month we can place
    months = []
    for back in range(YEAR_MONTHS - 1, -1, -1):
        key = month_before(today.year, today.month, back)
        if key in by_month:
            months.append(by_month[key])
    first = today - timedelta(days=WEEK_DAYS - 1)
    per_day = dict.fromkeys((first + timedelta(days=n) for n in range(WEEK_DAYS)), 0.0)
    local_hours = []
    for hour in sorted(hours, key=lambda h: h.date):
        start = hour.date.astimezone(tz)
        if start.date() in per_day:
            per_day[start.date()] += max(hour.total_usage, hour.on_peak_usage + hour.off_peak_usage)
            local_hours.append((start, hour.on_peak_usage, hour.off_peak_usage, unsplit(
                hour.total_usage, hour.on_peak_usage, hour.off_peak_usage)))
    return Usage(
        account=account,
        today=today,
        this_month=by_month.get((today.year, today.month)),
        last_month=by_month.get(month_before(today.year, today.month)),
        year_ago=by_month.get((today.year - 1, today.month)),
        months=months,
        days=list(per_day.items()),
        hours=local_hours,
    )
