"""Charts are drawn in a process of their own, never in the bot's.

matplotlib's first import and a drawing take 0.1-0.5 s of CPU. On the event loop that holds every chat; in a
worker thread it still holds the loop, because the two share the GIL (a manager's daily summary, drawn in a
thread, made four agents' ``/days`` 40-80 ms slower). One worker process, started at the first chart and kept
for the next ones, draws them: only the plain values to draw cross to it, and the PNG comes back. It ends after
``IDLE_AFTER`` without a drawing (most charts are a daily summary's: ~125 MB need not wait a day for it).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import date
from typing import Any, TypeVar

T = TypeVar("T")

IDLE_AFTER = 600.0
"""Seconds without a drawing after which the drawing process ends (the next chart starts another, in ~1 s)."""
PARENT_CHECK = 1.0
"""Seconds between the drawing process's looks at whether the bot's process is still there."""

_drawer: ProcessPoolExecutor | None = None
_drawing = 0
"""Drawings asked for and not yet back."""
_idle: threading.Timer | None = None
_lock = threading.Lock()


async def drawn(draw: Callable[..., T], *args: Any) -> T:
    """``draw(*args)`` in the drawing process (``draw`` a module's function, ``args`` plain values); a worker
    that died (killed, out of memory) is replaced once."""
    global _drawing
    loop = asyncio.get_running_loop()
    with _lock:
        _drawing += 1
    try:
        pool = _pool()
        try:
            return await loop.run_in_executor(pool, draw, *args)
        except BrokenProcessPool:
            _let_go(pool)
            return await loop.run_in_executor(_pool(), draw, *args)
    finally:
        with _lock:
            _drawing -= 1
            _end_when_idle()


def _pool() -> ProcessPoolExecutor:
    """The one drawing process, started when first needed (most runs draw nothing): spawned, not forked, since
    the bot's process has threads (the ledger's, the scheduler's) that a fork would copy mid-step. Python joins
    it at exit."""
    global _drawer
    with _lock:
        if _drawer is None:
            _drawer = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                                          initializer=_leave_with, initargs=(os.getpid(),))
        return _drawer


def _end_when_idle() -> None:
    """(Under ``_lock``.) The drawing process ends ``IDLE_AFTER`` from now unless another drawing comes first."""
    global _idle
    if _idle is not None:
        _idle.cancel()
    _idle = threading.Timer(IDLE_AFTER, _let_go, args=(_drawer,), kwargs={"unless_drawing": True})
    _idle.daemon = True
    _idle.start()


def _let_go(pool: ProcessPoolExecutor | None, *, unless_drawing: bool = False) -> None:
    """End ``pool`` if it is still the drawing process (one that broke, or one idle when ``unless_drawing``), in
    the same hold of ``_lock`` that checks it, so that a drawing that begins after starts a new one; a pool
    replaced meanwhile (two drawings that both found it broken) is not the one to end."""
    global _drawer
    with _lock:
        if pool is None or pool is not _drawer or (unless_drawing and _drawing):
            return
        _drawer = None
    pool.shutdown(wait=False, cancel_futures=True)


def _leave_with(parent: int) -> None:
    """In the drawing process: end when the bot's process is gone. The pool's queue never tells a worker whose
    parent was killed (``kill -9``, a crash): it would wait for drawings forever."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_CHECK)
        os._exit(0)

    threading.Thread(target=watch, name="paygbot-drawing-parent", daemon=True).start()


@dataclass(frozen=True)
class Words:
    """A chart's words, said beforehand in the reader's language: plain values that cross to the drawing
    process (a ``Texts`` holds its translations and does not). Answers as ``Texts`` does, for what was said."""

    labels: dict[str, dict[str, str]] = field(default_factory=dict)
    dates: dict[date, str] = field(default_factory=dict)
    months: dict[tuple[int, int], str] = field(default_factory=dict)

    @classmethod
    def said(cls, texts: Any, labels: str, dates: Iterable[date] = (),
             months: Iterable[tuple[int, int]] = ()) -> Words:
        """``texts``' ``labels`` (the name of its method), and its short form of each of ``dates`` and ``months``."""
        return cls(labels={labels: getattr(texts, labels)()}, dates={day: texts.short_date(day) for day in dates},
                   months={month: texts.short_month(*month) for month in months})

    def chart_labels(self) -> dict[str, str]:
        return self.labels["chart_labels"]

    def energy_chart_labels(self) -> dict[str, str]:
        return self.labels["energy_chart_labels"]

    def portfolio_chart_labels(self) -> dict[str, str]:
        return self.labels["portfolio_chart_labels"]

    def short_date(self, day: date) -> str:
        return self.dates[day]

    def short_month(self, year: int, month: int) -> str:
        return self.months[year, month]
