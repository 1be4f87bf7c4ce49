"""Work the scheduler (PTB's JobQueue on APScheduler) runs: the issuing pump, reminders, device
sync, the payments sweep, the portfolio's days, the daily summary and expired approvals.

The jobs only pump the ledger; nothing important lives in a job. The pump ticks often
enough that a request goes out within ``PUMP_INTERVAL`` (well under 0.5 s) of being allowed,
and a new request does not even wait for the tick (:meth:`IssuingEngine.kick`).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

from telegram import Bot
from telegram.ext import CallbackContext, JobQueue

from bot import i18n
from bot.delivery import send_summaries, speak_to
from bot.erm.errors import ErmError
from bot.issuing import IssuingEngine, limits
from bot.portfolio import service as portfolio
from bot.telegram_webhook import KEEP_IDS
from bot.texts import Texts, for_language
from storage import ledger

if TYPE_CHECKING:
    from bot.payments import Payments
    from bot.services import Services

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


REMINDER_JOB = "reminders"
REMINDER_INTERVAL = 30 * 60


async def send_reminders(services: Services, bot: Bot) -> int:
    """Tell customers whose credit ends within ``PAYGBOT_REMINDER_DAYS``, once per expiry date."""
    settings = services.settings
    if settings.reminder_days <= 0:
        return 0
    now = services.clock.now()
    sent = 0
    async with services.db.read() as session:
        due = await ledger.reminders_due(session=session, now=now, horizon=now + timedelta(days=settings.reminder_days))
    for device, customer in due:
        assert device.id is not None and device.credit_until is not None and customer.chat_id is not None
        async with services.db.write() as session:  # marked first: one process reminds, once per expiry
            if not await ledger.mark_reminded(session=session, device_id=device.id, credit_until=device.credit_until):
                continue
        words = partial(Texts.reminder, device=device.label, credit_until=device.credit_until,
                        days_left=limits.days_left(device.credit_until, now), tz=settings.tz)
        await speak_to(bot, services.db, customer.chat_id, words, sandbox=services.sandbox,  # theirs, whoever paid
                       unreachable=f"reminder for {device.label}")
        sent += 1
    return sent


async def _reminders(context: CallbackContext[Any, Any, Any, Any]) -> None:
    assert context.job is not None
    services: Services = context.job.data  # type: ignore[assignment]
    await send_reminders(services, context.bot)


def schedule_reminders(job_queue: JobQueue[Any], services: Services, interval: float = REMINDER_INTERVAL) -> None:
    job_queue.run_repeating(_reminders, interval=interval, first=5, name=REMINDER_JOB, data=services,
                            job_kwargs={"max_instances": 1, "coalesce": True})


SYNC_JOB = "device-sync"
SYNC_INTERVAL = 6 * 3600


async def sync_devices_now(engine: IssuingEngine) -> None:
    """Learn every assigned device with all its ids, so that any id an agent types is one device."""
    try:
        learned = await engine.sync_devices()
    except ErmError as exc:
        log.warning("device sync with the ERM failed (%s); will try again", exc.message)
        return
    log.info("device sync: %s devices known to the ERM", learned)


async def _sync_devices(context: CallbackContext[Any, Any, Any, Any]) -> None:
    assert context.job is not None
    await sync_devices_now(context.job.data)  # type: ignore[arg-type]


def start_device_sync(engine: IssuingEngine) -> asyncio.Task[None]:
    """The start-up sync, begun at once: as soon as the ERM has signed us in, before Telegram is even asked
    for updates, so that the devices of the agents who wrote while the bot was down are known by the time
    their messages come. A device asked for before the sync's page that names it waits for that page
    (:meth:`IssuingEngine.expect_device_sync`) rather than being looked up by itself."""
    engine.expect_device_sync()
    task = asyncio.create_task(sync_devices_now(engine), name="device-sync-at-start")
    task.add_done_callback(_log_failure)
    return task


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.error("the start-up device sync failed; the next one is in %s h", SYNC_INTERVAL // 3600, exc_info=exc)


def schedule_device_sync(job_queue: JobQueue[Any], engine: IssuingEngine, interval: float = SYNC_INTERVAL) -> None:
    """The syncs after the start-up one (:func:`start_device_sync`), every ``interval`` seconds."""
    job_queue.run_repeating(_sync_devices, interval=interval, first=interval, name=SYNC_JOB, data=engine,
                            job_kwargs={"max_instances": 1, "coalesce": True})


SWEEP_JOB = "payments-sweep"
SWEEP_INTERVAL = 5.0


async def _sweep_payments(context: CallbackContext[Any, Any, Any, Any]) -> None:
    assert context.job is not None
    payments: Payments = context.job.data  # type: ignore[assignment]
    await payments.sweep()


def schedule_payment_sweep(job_queue: JobQueue[Any], payments: Payments, interval: float = SWEEP_INTERVAL) -> None:
    """Every few seconds: PENDING payments due for another try, and notices still owed."""
    job_queue.run_repeating(_sweep_payments, interval=interval, first=interval, name=SWEEP_JOB, data=payments,
                            job_kwargs={"max_instances": 1, "coalesce": True})


SUMMARY_JOB = "summary-push"
CHECK_EVERY = 60


async def push_summary_if_due(services: Services, bot: Bot) -> bool:
    """Once a local day, at or after ``PAYGBOT_SUMMARY_TIME``, send every manager the summary.

    The day is claimed in the ledger before anything is sent, so two processes, or a restart
    near the time, never push it twice.
    """
    settings = services.settings
    now = services.clock.now()
    local = now.astimezone(settings.tz)
    if local.time() < settings.summary_time:
        return False
    async with services.db.write() as session:
        if not await ledger.claim_summary_day(session=session, day=local.date(), now=now):
            return False
    readers = [(manager.telegram_id, for_language(i18n.pick(manager.language)))
               for manager in await services.team.managers()]
    await send_summaries(bot, services, readers, local.date())
    log.info("summary for %s pushed", local.date())
    return True


async def expire_approvals(services: Services, bot: Bot) -> int:
    """Approvals nobody decided in 24 hours expire; their requesters are told."""
    expired = await services.approvals.expire()
    for approval in expired:
        device = await services.engine.device(approval.device_id)
        if approval.chat_id is None or device is None:
            continue
        await speak_to(bot, services.db, approval.chat_id, partial(Texts.approval_expired, device=device.label),
                       sandbox=services.sandbox, unreachable=f"expiry of approval {approval.id}")
    return len(expired)


async def keep_portfolio_days(services: Services) -> None:
    """Keep each day of the portfolio's figures as soon as it is over, and the 12 weeks its chart reads on the
    first run after an upgrade — here, not in a manager's first ``/portfolio``."""
    now, tz = services.clock.now(), services.settings.tz
    today = now.astimezone(tz).date()
    await portfolio.kept_days(services.db, today - portfolio.CHART_DAYS, today - timedelta(days=1), tz, now)


async def forget_old_updates(services: Services) -> int:
    """The webhook's update ids older than Telegram would send again (:mod:`bot.telegram_webhook`), and chats'
    message slots as old (:mod:`bot.telegram_pace`)."""
    async with services.db.write() as session:
        await ledger.forget_send_slots(session=session, before=services.clock.now() - KEEP_IDS)
        return await ledger.forget_deliveries(session=session, before=services.clock.now() - KEEP_IDS)


async def _managers_jobs(context: CallbackContext[Any, Any, Any, Any]) -> None:
    assert context.job is not None
    services: Services = context.job.data  # type: ignore[assignment]
    await push_summary_if_due(services, context.bot)
    await expire_approvals(services, context.bot)
    await forget_old_updates(services)
    try:  # last, and alone: a day not kept now is kept at the next minute
        await keep_portfolio_days(services)
    except Exception:
        log.exception("the portfolio's days were not kept")


def schedule_managers_jobs(job_queue: JobQueue[Any], services: Services, interval: float = CHECK_EVERY) -> None:
    """Every minute: the portfolio's days kept, the daily summary when its time has come, expired
    approvals, and the webhook's old update ids forgotten."""
    job_queue.run_repeating(_managers_jobs, interval=interval, first=2, name=SUMMARY_JOB, data=services,
                            job_kwargs={"max_instances": 1, "coalesce": True})
