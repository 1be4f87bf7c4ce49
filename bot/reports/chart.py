"""The summary's picture: codes and payments per day, for the last ``CHART_DAYS`` days, as a PNG."""

from __future__ import annotations

import io
from collections import Counter
from datetime import date, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

from bot.drawing import Words, drawn
from bot.reports.summary import day_bounds
from storage import ledger
from storage.db import Database

CHART_DAYS = 14


class ChartWords(Protocol):
    """The chart's words in the reader's language (``bot.texts.Texts`` has them; reports do not import it)."""

    def chart_labels(self) -> dict[str, str]: ...

    def short_date(self, day: date) -> str: ...


async def chart(db: Database, last_day: date, tz: ZoneInfo, words: ChartWords) -> bytes:
    """A PNG bar chart of codes and payments per day, for the ``CHART_DAYS`` days up to ``last_day``, drawn in
    the drawing process (:mod:`bot.drawing`)."""
    first_day = last_day - timedelta(days=CHART_DAYS - 1)
    start, _ = day_bounds(first_day, tz)
    _, end = day_bounds(last_day, tz)
    async with db.report() as session:
        codes = Counter(when.astimezone(tz).date() for when in await ledger.generated_times(session=session,
                                                                                          start=start, end=end))
        paid = Counter(when.astimezone(tz).date() for when in await ledger.payment_times(session=session,
                                                                                       start=start, end=end))
    days = [first_day + timedelta(days=offset) for offset in range(CHART_DAYS)]
    return await drawn(_draw, days, codes, paid, Words.said(words, "chart_labels", dates=days))


def _draw(days: list[date], codes: Counter[date], paid: Counter[date], words: ChartWords) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    labels = words.chart_labels()
    figure = Figure(figsize=(8, 3.6), dpi=100)
    axes = figure.subplots()
    positions = range(len(days))
    axes.bar([p - 0.2 for p in positions], [codes[d] for d in days], width=0.4, label=labels["codes"], color="#2a9d8f")
    axes.bar([p + 0.2 for p in positions], [paid[d] for d in days], width=0.4, label=labels["payments"],
             color="#e9c46a")
    axes.set_xticks(list(positions), [words.short_date(d) for d in days], rotation=45, ha="right", fontsize=8)
    axes.set_title(labels["title"])
    axes.legend(loc="upper left", fontsize=8)
    axes.yaxis.get_major_locator().set_params(integer=True)
    figure.tight_layout()
    picture = io.BytesIO()
    figure.savefig(picture, format="png")  # a Figure of its own, not pyplot's global state
    return picture.getvalue()
