"""The pump on PTB's real JobQueue, with the real clock: queued requests go out by themselves.

What is checked is what happens, never how fast: on a busy machine a tick may take longer than the
pump's interval (APScheduler then skips the next one and says so), which is the design — a slow
tick is skipped, never stacked.
"""

from __future__ import annotations

from datetime import timedelta

from telegram.ext import ApplicationBuilder

from bot.clock import SystemClock
from bot.erm.rest import RestErm
from bot.issuing import Accepted, IssuingEngine
from bot.jobs import PUMP_JOB, schedule_pump
from bot.standins.erm import ErmSandbox, running
from storage.db import Database
from storage.models import CodeKind
from tests.support.settings import make_settings
from tests.support.waiting import eventually


async def test_the_job_queue_pumps_requests_to_the_erm(db: Database) -> None:
    sandbox = ErmSandbox(min_gap_seconds=0.5)
    settings = make_settings(PAYGBOT_MIN_GAP_SECONDS=0.5)
    application = ApplicationBuilder().token("123:TEST").build()
    assert application.job_queue is not None
    async with running(sandbox) as url, RestErm(url, "test@example.com", "test1234") as erm:
        engine = IssuingEngine(db=db, erm=erm, settings=settings, clock=SystemClock())
        engine.kick = lambda: None  # type: ignore[method-assign]  # only the scheduled job may pump here
        ticks = {"running": 0, "most at once": 0}
        pump = engine.pump

        async def counted_pump() -> None:
            ticks["running"] += 1
            ticks["most at once"] = max(ticks["most at once"], ticks["running"])
            try:
                await pump()
            finally:
                ticks["running"] -= 1

        engine.pump = counted_pump  # type: ignore[method-assign]
        devices = ["TEST2503000017", "TEST2503000017", "TEST2503000017", sandbox.devices[3].ids[1]]
        for device in devices:
            assert isinstance(await engine.request(device, CodeKind.DAYS, 1), Accepted)
        schedule_pump(application.job_queue, engine)
        await application.job_queue.start()
        try:
            assert [job.name for job in application.job_queue.jobs()] == [PUMP_JOB]
            await eventually(lambda: sum(len(sandbox.device(d).codes) for d in set(devices)) == 4,
                             "the pump to issue every request", timeout=20)
        finally:
            await application.job_queue.stop(wait=True)
            await engine.close()
    times = [record.created_at for record in sandbox.device("TEST2503000017").codes]
    assert all(later - earlier >= timedelta(seconds=0.5) for earlier, later in zip(times, times[1:], strict=False))
    assert sandbox.generations == 4  # none refused by the ERM for pacing
    assert ticks["most at once"] == 1  # never two ticks at once, however slow one was
