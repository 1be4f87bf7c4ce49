"""``/usage``'s picture: 12 months of energy as bars (on-peak and off-peak stacked) above the last 7 days
hour by hour, as a PNG."""

from __future__ import annotations

import io
from datetime import date
from typing import Protocol

from bot.drawing import Words, drawn
from bot.energy.figures import Usage, unsplit

ON_PEAK, OFF_PEAK, UNSPLIT = "#e76f51", "#2a9d8f", "#adb5bd"


class EnergyWords(Protocol):
    """The chart's words in the reader's language (``bot.texts.Texts`` has them)."""

    def energy_chart_labels(self) -> dict[str, str]: ...

    def short_month(self, year: int, month: int) -> str: ...

    def short_date(self, day: date) -> str: ...


async def picture(usage: Usage, words: EnergyWords) -> bytes:
    """:func:`chart`, drawn in the drawing process (:mod:`bot.drawing`)."""
    return await drawn(chart, usage, Words.said(words, "energy_chart_labels",
                                                dates=[start.date() for start, *_ in usage.hours if start.hour == 0],
                                                months=[(row.year, row.month_number) for row in usage.months]))


def chart(usage: Usage, words: EnergyWords) -> bytes:
    """The PNG of ``usage``: months above, the week's hours below."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    labels = words.energy_chart_labels()
    figure = Figure(figsize=(8, 6), dpi=100)
    months, hours = figure.subplots(2, 1)

    positions = list(range(len(usage.months)))
    on = [row.on_peak_kwh for row in usage.months]
    off = [row.off_peak_kwh for row in usage.months]
    rest = [unsplit(row.energy_kwh, row.on_peak_kwh, row.off_peak_kwh) for row in usage.months]
    months.bar(positions, off, color=OFF_PEAK, label=labels["off_peak"])
    months.bar(positions, on, bottom=off, color=ON_PEAK, label=labels["on_peak"])
    if any(rest):
        months.bar(positions, rest, bottom=[a + b for a, b in zip(off, on, strict=True)], color=UNSPLIT,
                   label=labels["unsplit"])
    months.set_xticks(positions, [words.short_month(row.year, row.month_number) for row in usage.months],
                      rotation=45, ha="right", fontsize=8)
    months.set_title(labels["months"])
    months.set_ylabel(labels["kwh"])
    months.legend(loc="upper left", fontsize=8)

    steps = list(range(len(usage.hours)))
    hour_off = [off_kwh for _, _, off_kwh, _ in usage.hours]
    hour_on = [on_kwh for _, on_kwh, _, _ in usage.hours]
    hour_rest = [rest_kwh for _, _, _, rest_kwh in usage.hours]
    hours.bar(steps, hour_off, width=1.0, color=OFF_PEAK, label=labels["off_peak"])
    hours.bar(steps, hour_on, width=1.0, bottom=hour_off, color=ON_PEAK, label=labels["on_peak"])
    if any(hour_rest):
        hours.bar(steps, hour_rest, width=1.0, bottom=[a + b for a, b in zip(hour_off, hour_on, strict=True)],
                  color=UNSPLIT, label=labels["unsplit"])
    midnights = [n for n, (start, _, _, _) in enumerate(usage.hours) if start.hour == 0]
    hours.set_xticks(midnights, [words.short_date(usage.hours[n][0].date()) for n in midnights], fontsize=8)
    hours.set_title(labels["hours"])
    hours.set_ylabel(labels["kwh"])

    figure.tight_layout()
    picture = io.BytesIO()
    figure.savefig(picture, format="png")  # a Figure of its own, not pyplot's global state
    return picture.getvalue()
