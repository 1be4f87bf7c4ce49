"""Work the scheduler (PTB's JobQueue on APScheduler) runs: the issuing pump.

The jobs only pump the ledger; nothing important lives in a job. The pump ticks often
enough that a request goes out within ``PUMP_INTERVAL`` (well under 0.5 s) of being allowed,
and a new request does not even wait for the tick (:meth:`IssuingEngine.kick`).
"""

from __future__ import annotations

import logging
from typing import Any

from telegram.ext import CallbackContext, JobQueue

from bot.issuing import IssuingEngine

log = logging.getLogger("paygbot.jobs")

PUMP_INTERVAL = 0.2
PUMP_JOB = "issuing-pump"


async def _pump(context: CallbackContext[Any, Any, Any, Any]) -> None:
    """One tick of the issuing pump."""
    assert context.job is not None
    engine: IssuingEngine = context.job.data  # type: ignore[assignment]
    await engine.pump()


def schedule_pump(job_queue: JobQueue[Any], engine: IssuingEngine, interval: float = PUMP_INTERVAL) -> None:
    """Run the pump every ``interval`` seconds; a slow tick is skipped, never stacked."""
    job_queue.run_repeating(
        _pump, interval=interval, first=0, name=PUMP_JOB, data=engine,
        job_kwargs={"max_instances": 1, "coalesce": True, "misfire_grace_time": None},
    )
