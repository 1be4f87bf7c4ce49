"""Charts are drawn in a process of their own (:mod:`bot.drawing`): not the bot's, kept for the next chart, and
replaced when it dies."""

from __future__ import annotations

import os
import signal
from datetime import date

from bot.drawing import Words, drawn
from bot.texts import for_language


async def test_a_drawing_runs_in_another_process_kept_for_the_next_one() -> None:
    drawer = await drawn(os.getpid)
    assert drawer != os.getpid()
    assert await drawn(os.getpid) == drawer


async def test_a_drawing_process_that_died_is_replaced() -> None:
    os.kill(await drawn(os.getpid), signal.SIGKILL)
    again = await drawn(os.getpid)
    assert again != os.getpid() and await drawn(os.getpid) == again


def test_a_charts_words_are_said_beforehand_in_the_readers_language() -> None:
    day = date(2026, 11, 22)
    words = Words.said(for_language("sw"), "chart_labels", dates=[day], months=[(2026, 11)])
    texts = for_language("sw")
    assert words.chart_labels() == texts.chart_labels() and words.short_date(day) == texts.short_date(day)
    assert words.short_month(2026, 11) == texts.short_month(2026, 11)
