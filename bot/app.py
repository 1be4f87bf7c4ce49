"""The composition root: the PTB Application, its handlers, the engine, the jobs and the HTTP side.

``running_bot(settings)`` starts everything in order and stops it in reverse: polling stops
first, the update in hand finishes, then the jobs, the HTTP side and the engine (which lets
what is in flight finish; the ledger keeps everything else for the next start).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

from telegram import Update
from telegram.constants import ParseMode
from telegram.ext import Application, ApplicationBuilder, ContextTypes, Defaults
from telegram.request import BaseRequest

import handlers
from bot import cli_texts, i18n, texts
from bot.approvals import Approvals
from bot.chat_state import SharedChatState
from bot.clock import Clock, SystemClock
from bot.config import Settings
from bot.delivery import Delivery
from bot.energy import Energy
from bot.erm.connect import open_erm, sign_in_early
from bot.http import build_http_app, serving
from bot.issuing import IssuingEngine
from bot.jobs import (
    schedule_device_sync,
    schedule_managers_jobs,
    schedule_payment_sweep,
    schedule_pump,
    schedule_reminders,
    start_device_sync,
)
from bot.omnimetic.connect import open_omnimetic
from bot.payments import ChatNotices, Payments, payment_routes
from bot.people import People, Team
from bot.plans.service import Plans
from bot.services import SERVICES, BotContext, Services
from bot.telegram_http import AiohttpRequest
from bot.telegram_pace import LocalRateLimiter, SharedRateLimiter
from bot.telegram_webhook import telegram_routes
from dashboard import dashboard_routes
from handlers import menus
from storage.db import Database, is_sqlite
from storage.migrate import upgrade

log = logging.getLogger("paygbot.app")

# PTB 22 warns on every flood-control answer until durations are opted in as timedelta.
os.environ.setdefault("PTB_TIMEDELTA", "true")

RATE_LIMIT_RETRIES = 10
"""A 429 from Telegram delays a message (by its retry_after), it never drops it."""

HANDLED_UPDATES = (Update.MESSAGE, Update.EDITED_MESSAGE, Update.CALLBACK_QUERY)
"""The update types the handlers read (an edited command is answered that edits are not carried out);
Telegram sends no others, by long polling or to the webhook."""


class MissingToken(Exception):
    """``paygbot run`` needs TELEGRAM_BOT_TOKEN."""


def build_application(
    settings: Settings, telegram: Callable[[], BaseRequest] | None = None
) -> Application[Any, Any, Any, Any, Any, Any]:
    """The PTB Application with every handler registered, not yet started. ``telegram`` makes its
    transports to the Bot API (default: :class:`bot.telegram_http.AiohttpRequest` to ``TELEGRAM_BASE_URL``; the demo and the chat
    tests give the stand-in's, in-process)."""
    if settings.telegram_bot_token is None:
        raise MissingToken(cli_texts.NO_TOKEN)
    builder = (
        ApplicationBuilder()
        .token(settings.telegram_bot_token.get_secret_value())
        .base_url(settings.telegram_base_url)
        .context_types(ContextTypes(context=BotContext))
        .defaults(Defaults(parse_mode=ParseMode.HTML, tzinfo=settings.tz))
        .rate_limiter(LocalRateLimiter(max_retries=RATE_LIMIT_RETRIES) if is_sqlite(settings.database_url)
                      else SharedRateLimiter(max_retries=RATE_LIMIT_RETRIES))  # several processes: in the ledger
        .concurrent_updates(SharedChatState())  # updates at once, each person's state kept in the ledger
    )
    if settings.webhook_mode:
        builder = builder.updater(None)  # updates come in at POST /telegram (bot.telegram_webhook)
    transport = telegram or AiohttpRequest
    builder = builder.request(transport())
    if not settings.webhook_mode:
        builder = builder.get_updates_request(transport())
    application = builder.build()
    handlers.register(application)
    return application


@dataclass
class RunningBot:
    application: Application[Any, Any, Any, Any, Any, Any]
    services: Services
    http_port: int | None


async def _stopped(task: asyncio.Task[None]) -> None:
    """``task`` ended: cancelled if it still runs (its failure was logged when it failed)."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task


@asynccontextmanager
async def running_bot(
    settings: Settings, *, clock: Clock | None = None, poll_interval: float = 0.0, http_host: str = "0.0.0.0",  # noqa: S104
    telegram: Callable[[], BaseRequest] | None = None,
) -> AsyncIterator[RunningBot]:
    """The whole bot, long polling or taking updates at its webhook, for the duration of the block
    (``telegram``: see :func:`build_application`)."""
    clock = clock or SystemClock()
    application = build_application(settings, telegram)
    for language in i18n.LANGUAGES:  # a broken catalogue stops the start here, not a person's chat later
        texts.for_language(language).number(1000)  # (and Babel's locale data is loaded now, not in the first code)
    async with AsyncExitStack() as stack:
        await upgrade(settings.database_url, currency=settings.currency, phone_region=settings.phone_region)
        db = Database(settings.database_url)
        stack.push_async_callback(db.dispose)
        erm = await stack.enter_async_context(open_erm(settings, clock))
        await sign_in_early(erm)
        engine = IssuingEngine(db=db, erm=erm, settings=settings, clock=clock,
                               notify=Delivery(application.bot, db, settings))
        stack.push_async_callback(engine.close)
        # stopped first: a start that fails further on (Telegram unreachable) says so at once, and a sync cut
        # short is only done again at the next start
        stack.push_async_callback(_stopped, start_device_sync(engine))
        omnimetic = await stack.enter_async_context(open_omnimetic(settings, clock))
        await stack.enter_async_context(application)  # initialize (getMe) ... shutdown
        people = People(db, clock, settings.phone_region)
        await people.ensure_managers(settings.managers)
        payments = Payments(db=db, engine=engine, clock=clock, phone_region=settings.phone_region,
                            notify=ChatNotices(application.bot, db, settings, clock))
        stack.push_async_callback(payments.close)  # before the engine's: it may still queue codes
        services = Services(settings=settings, clock=clock, db=db, erm=erm, engine=engine, payments=payments,
                            people=people, approvals=Approvals(db, clock), team=Team(db),
                            energy=Energy(db=db, client=omnimetic, clock=clock, tz=settings.tz,
                                          sandbox=settings.uses_omnimetic_sandbox),
                            plans=Plans(db=db, engine=engine, clock=clock),
                            bot_username=application.bot.username, sandbox=settings.uses_sandbox)
        application.bot_data[SERVICES] = services
        processor = application.update_processor
        assert isinstance(processor, SharedChatState)
        processor.attach(application, db, clock, people)
        if isinstance(limiter := application.bot.rate_limiter, SharedRateLimiter):
            limiter.attach(db)
        http_port = None
        if settings.http_port:
            routes = payment_routes(payments, settings) + dashboard_routes(services, application.bot)
            if settings.telegram_webhook_secret is not None:
                routes += telegram_routes(application, db, clock, settings.telegram_webhook_secret.get_secret_value())
            http_port = await stack.enter_async_context(serving(build_http_app(services, routes), settings.http_port,
                                                                host=http_host))
        assert application.job_queue is not None
        schedule_pump(application.job_queue, engine)
        schedule_reminders(application.job_queue, services)
        schedule_device_sync(application.job_queue, engine)
        schedule_payment_sweep(application.job_queue, payments)
        schedule_managers_jobs(application.job_queue, services)
        await application.start()
        stack.push_async_callback(application.stop)
        # before stopping: no job starts now, to be cancelled half done (a summary claimed, never sent)
        stack.callback(application.job_queue.scheduler.pause)
        if settings.telegram_webhook_url is not None and settings.telegram_webhook_secret is not None:
            # Set at every start (other replicas may share it): Telegram keeps what waits meanwhile.
            await application.bot.set_webhook(settings.telegram_webhook_url, allowed_updates=list(HANDLED_UPDATES),
                                              secret_token=settings.telegram_webhook_secret.get_secret_value(),
                                              drop_pending_updates=False)
        else:
            assert application.updater is not None
            await application.updater.start_polling(poll_interval=poll_interval, allowed_updates=list(HANDLED_UPDATES),
                                                    drop_pending_updates=False)
            stack.push_async_callback(application.updater.stop)
        application.create_task(menus.register_all(application.bot, application.bot_data[menus.TABLE], people,
                                                   settings.dashboard_url),
                                name="register-commands")
        log.info("paygbot started as @%s%s; HTTP on %s; updates by %s", services.bot_username,
                 " on the ERM sandbox" if services.sandbox else "", http_port or "off",
                 "webhook" if settings.webhook_mode else "long polling")
        gc.freeze()  # what the start made lives as long as the bot: no full collection scans it again
        try:
            yield RunningBot(application, services, http_port)
        finally:
            gc.unfreeze()
        log.info("paygbot stopping")
