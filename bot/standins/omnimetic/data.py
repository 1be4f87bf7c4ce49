"""The sandbox's figures: what a small solar-home-system household's meter would have recorded, hour
by hour, from the day its account was linked up to the clock's now — deterministic (the same account
and hour always give the same figure), plausible, and consistent (a month's sums are its hours' sums).

Scale: every hour is 0.05 to 0.6 kWh, in steps of 0.01 kWh (10 Wh, so sums are exact): a low night
(~0.06 kWh), a morning rise (~0.15), a quiet day (~0.09, busier at weekends) and an evening peak
(~0.4–0.5, 18:00–22:00 local time, the **on-peak** hours; every other hour is off peak); about
3–4 kWh a day, 100–120 kWh a month, KES 2,500–3,000 a month at :data:`TARIFF_CENTS_PER_KWH`. The
daily shape follows the household's local time (``utc_offset``); hours and months are reported in
UTC, as Omnimetic does.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime, timedelta
from typing import NamedTuple

HOUR = timedelta(hours=1)
ON_PEAK_HOURS = range(18, 22)
"""Local hours (18:00 to 22:00) counted on peak."""
TARIFF_CENTS_PER_KWH = 2500
"""What ``amountInCents`` charges: KES 25 a kWh (one tariff for every sandbox account)."""
MIN_WH, MAX_WH, STEP_WH = 50, 600, 10

# kWh by local hour of day, before the household's scale, the season and the hour's own noise
_SHAPE = (0.06, 0.06, 0.06, 0.06, 0.06, 0.08, 0.15, 0.18, 0.12, 0.09, 0.09, 0.09,
          0.09, 0.09, 0.09, 0.09, 0.09, 0.16, 0.38, 0.50, 0.48, 0.36, 0.18, 0.09)
# by month: a little more light and television in the long rains and the cooler, darker months
_SEASON = (0.95, 0.95, 1.0, 1.08, 1.1, 1.05, 1.05, 1.0, 0.95, 0.95, 1.0, 1.0)


class HourFigure(NamedTuple):
    """One complete hour: its start (UTC) and its energy (Wh), on or off peak."""

    start: datetime
    on_wh: int
    off_wh: int

    @property
    def total_wh(self) -> int:
        return self.on_wh + self.off_wh


class MonthFigure(NamedTuple):
    """One UTC calendar month's sums (Wh) and what they cost (cents)."""

    year: int
    month: int
    on_wh: int
    off_wh: int
    hours: int

    @property
    def total_wh(self) -> int:
        return self.on_wh + self.off_wh

    @property
    def amount_cents(self) -> int:
        return self.total_wh * TARIFF_CENTS_PER_KWH // 1000  # exact: totals are whole 10 Wh


def floor_hour(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def month_start(year: int, month: int) -> datetime:
    return datetime(year, month, 1, tzinfo=UTC)


def next_month(year: int, month: int) -> tuple[int, int]:
    return (year + 1, 1) if month == 12 else (year, month + 1)


def hex24(*parts: object) -> str:
    """A stable id in Omnimetic's style (24 lowercase hex digits) from ``parts``."""
    return hashlib.sha256(":".join(str(part) for part in parts).encode()).hexdigest()[:24]


class Meter:
    """The figures of one utility service account: every complete hour from the first full hour
    after ``linked_date`` (none at all when ``has_data`` is false) up to the asked-for now."""

    def __init__(self, account_id: str, linked_date: datetime, utc_offset: timedelta, has_data: bool = True) -> None:
        self.account_id = account_id
        self.utc_offset = utc_offset
        linked = floor_hour(linked_date)
        self.first_hour: datetime | None = None
        if has_data:
            self.first_hour = linked if linked == linked_date.astimezone(UTC) else linked + HOUR
        digest = hashlib.sha256(f"household:{account_id}".encode()).digest()
        self.scale = 0.8 + 0.35 * digest[0] / 255
        """How much this household uses compared with the shape (0.8 to 1.15)."""
        self._months: dict[tuple[int, int], MonthFigure | None] = {}

    def _noise(self, day: date) -> bytes:
        """Two bytes of noise for each UTC hour of ``day``, seeded by the account and the day."""
        return hashlib.blake2b(f"{self.account_id}:{day.isoformat()}".encode(), digest_size=48).digest()

    def _figure(self, start: datetime, noise: bytes) -> HourFigure:
        local = start + self.utc_offset
        kwh = _SHAPE[local.hour] * self.scale * _SEASON[local.month - 1]
        if local.weekday() >= 5 and 9 <= local.hour < 17:
            kwh *= 1.3  # at home at the weekend
        kwh *= 0.75 + 0.5 * int.from_bytes(noise[2 * start.hour: 2 * start.hour + 2], "big") / 0xFFFF
        wh = min(max(round(kwh * 1000 / STEP_WH) * STEP_WH, MIN_WH), MAX_WH)
        if local.hour in ON_PEAK_HOURS:
            return HourFigure(start, wh, 0)
        return HourFigure(start, 0, wh)

    def hours(self, start: datetime, end: datetime, now: datetime) -> list[HourFigure]:
        """The complete hours that start in ``[start, end)`` (both on the hour, UTC) by ``now``."""
        if self.first_hour is None:
            return []
        moment = max(floor_hour(start), self.first_hour)
        stop = min(floor_hour(end), floor_hour(now))
        figures: list[HourFigure] = []
        noise_day: date | None = None
        noise = b""
        while moment < stop:
            if moment.date() != noise_day:
                noise_day = moment.date()
                noise = self._noise(noise_day)
            figures.append(self._figure(moment, noise))
            moment += HOUR
        return figures

    def month(self, year: int, month: int, now: datetime) -> MonthFigure | None:
        """The month's sums by ``now`` (``None`` without a single hour); a finished month is kept."""
        end = month_start(*next_month(year, month))
        finished = end <= floor_hour(now)
        if finished and (year, month) in self._months:
            return self._months[(year, month)]
        hours = self.hours(month_start(year, month), end, now)
        figure = None
        if hours:
            figure = MonthFigure(year, month, sum(hour.on_wh for hour in hours), sum(hour.off_wh for hour in hours),
                                 len(hours))
        if finished:
            self._months[(year, month)] = figure
        return figure

    def months(self, year: int, now: datetime) -> list[MonthFigure]:
        """The months of ``year`` with figures by ``now``, January first."""
        if self.first_hour is None or year < self.first_hour.year or year > now.astimezone(UTC).year:
            return []
        figures = (self.month(year, month, now) for month in range(1, 13))
        return [figure for figure in figures if figure is not None]

    def last_months(self, count: int, now: datetime) -> list[MonthFigure]:
        """The last ``count`` months up to ``now``'s own (oldest first) that have figures."""
        year, month = now.astimezone(UTC).year, now.astimezone(UTC).month
        index = year * 12 + month - 1
        figures = (self.month(i // 12, i % 12 + 1, now) for i in range(index - count + 1, index + 1))
        return [figure for figure in figures if figure is not None]
