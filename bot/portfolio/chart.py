"""The portfolio's picture: PAR30 and the collection rate over the last 12 weeks, and the buckets now, as a PNG."""

from __future__ import annotations

import io
from datetime import date
from typing import Protocol

from bot.drawing import Words, drawn
from bot.portfolio.figures import Figures
from bot.portfolio.service import Week

CEILING = 200.0
"""Per cent: the top of the trend panel when a collection rate goes past it."""


class ChartWords(Protocol):
    """The chart's words in the reader's language (``bot.texts.Texts`` has them)."""

    def portfolio_chart_labels(self) -> dict[str, str]: ...

    def short_date(self, day: date) -> str: ...


async def picture(weeks: list[Week], now: Figures, words: ChartWords) -> bytes:
    """:func:`chart`, drawn in the drawing process (:mod:`bot.drawing`)."""
    return await drawn(chart, weeks, now, Words.said(words, "portfolio_chart_labels", dates=[w.end for w in weeks]))


def chart(weeks: list[Week], now: Figures, words: ChartWords) -> bytes:
    """Two panels: PAR30 and the 7-day collection rate at each week's end (%), and the plans past due by bucket
    (amount left to pay)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    labels = words.portfolio_chart_labels()
    figure = Figure(figsize=(8, 6), dpi=100)
    trend, buckets = figure.subplots(2, 1)
    positions = list(range(len(weeks)))
    par = [float(w.par30 * 100) if w.par30 is not None else float("nan") for w in weeks]
    collected = [float(w.collection * 100) if w.collection is not None else float("nan") for w in weeks]
    # a week whose payments came before anything fell due (a new portfolio) can collect many times its due:
    # such a point is drawn at the top, with its figure, so that it does not flatten the rest
    ceiling = CEILING if max((v for v in collected if v == v), default=0) > CEILING else None
    trend.plot(positions, par, marker="o", color="#e76f51", label=labels["par30"])
    trend.plot(positions, [min(v, ceiling) if ceiling else v for v in collected], marker="s", color="#2a9d8f",
               label=labels["collection"])
    if ceiling:
        trend.set_ylim(0, ceiling * 1.08)
        for position, value in zip(positions, collected, strict=True):
            if value > ceiling:
                trend.annotate(f"{value:.0f}%", (position, ceiling), textcoords="offset points", xytext=(0, 5),
                               ha="center", fontsize=7, color="#2a9d8f")
    trend.set_xticks(list(positions), [words.short_date(w.end) for w in weeks], rotation=45, ha="right",
                     fontsize=8)
    trend.set_ylabel("%")
    trend.set_title(labels["weeks"])
    trend.legend(loc="upper left", fontsize=8)
    names = [f"{b.low}–{b.high}" if b.high is not None else f">{b.low - 1}" for b in now.buckets]
    buckets.bar(names, [float(b.amount) for b in now.buckets], color="#e9c46a")
    for index, bucket in enumerate(now.buckets):
        buckets.annotate(str(bucket.count), (index, float(bucket.amount)), ha="center", va="bottom", fontsize=8)
    buckets.set_ylim(bottom=0)
    buckets.set_title(labels["buckets"])
    figure.subplots_adjust(left=0.08, right=0.98, top=0.95, bottom=0.07, hspace=0.45)  # tight_layout: 150 ms more
    picture = io.BytesIO()
    figure.savefig(picture, format="png")  # a Figure of its own, not pyplot's global state
    return picture.getvalue()
