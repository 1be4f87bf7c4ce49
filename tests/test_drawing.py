"""Charts are drawn in a process of their own (:mod:`bot.drawing`): not the bot's, kept for the next chart,
replaced when it dies, ended when idle, and gone when the bot's process is killed."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from datetime import date
from pathlib import Path

import pytest

from bot import drawing
from bot.drawing import Words, drawn
from bot.texts import for_language
from tests.support.waiting import eventually


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


def _gone(pid: int) -> bool:
    """No such process, or only its exit status left for its new parent to read."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "\nState:\tZ" in status


async def test_the_drawing_process_ends_when_the_bots_process_is_killed(tmp_path: Path) -> None:
    told = tmp_path / "drawer"
    script = ("import asyncio, os, sys, time\nfrom pathlib import Path\nfrom bot.drawing import drawn\n"
              "async def main():\n    Path(sys.argv[1]).write_text(str(await drawn(os.getpid)))\n    time.sleep(120)\n"
              "asyncio.run(main())\n")
    bot = await asyncio.create_subprocess_exec(sys.executable, "-c", script, str(told),
                                               stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    try:
        drawer = int(await eventually(lambda: told.exists() and told.read_text(), "the drawing process started",
                                      timeout=60))
        assert not _gone(drawer)
    finally:
        bot.send_signal(signal.SIGKILL)
        await bot.wait()
    await eventually(lambda: _gone(drawer), "the drawing process gone after its bot", timeout=10)


async def test_the_drawing_process_ends_when_idle_and_a_new_one_draws_the_next_chart(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(drawing, "IDLE_AFTER", 0.2)
    first = await drawn(os.getpid)
    await eventually(lambda: _gone(first), "the idle drawing process gone", timeout=10)
    second = await drawn(os.getpid)
    assert second not in (first, os.getpid())
