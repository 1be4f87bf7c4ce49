"""Webhook mode: Telegram POSTs updates to ``POST /telegram`` on the bot's HTTP side (PTB's custom-webhook
pattern: no updater; each update is put on the application's queue, and the handlers take it from there).

Telegram signs nothing, but echoes the secret given to ``setWebhook`` in ``X-Telegram-Bot-Api-Secret-Token``:
without it, or with another, the answer is 403 and nothing is read. Telegram sends an update again when
its POST was not answered in time, and behind a load balancer the copies may reach different replicas:
the ledger keeps each update id once (:func:`storage.ledger.first_delivery`), so only the first is handled.
"""

from __future__ import annotations

import hmac
import json
import logging
from datetime import timedelta
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from telegram import Update
from telegram.ext import Application

from bot import logs
from bot.clock import Clock
from storage import ledger
from storage.db import Database

log = logging.getLogger("paygbot.telegram")

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
PATH = "/telegram"
MAX_BODY = 1024 * 1024
KEEP_IDS = timedelta(days=2)
"""How long an update id is remembered: Telegram stops sending an update again after 24 hours."""
HOLD = timedelta(seconds=30)
"""How long a process may take to handle an update before a copy is handled by another."""


def telegram_routes(application: Application[Any, Any, Any, Any, Any, Any], db: Database, clock: Clock,
                    secret: str) -> list[Route]:
    """``POST /telegram``: updates from Telegram, checked for ``secret``, each handled once."""
    logs.register_secret(secret)
    expected = secret.encode()

    async def receive(request: Request) -> JSONResponse:
        given = request.headers.get(SECRET_HEADER, "").encode()
        if not hmac.compare_digest(given, expected):
            log.warning("POST %s from %s refused: missing or wrong secret token", PATH,
                        request.client.host if request.client else "?")
            return JSONResponse({"error": "forbidden"}, status_code=403)
        body = await request.body()
        if len(body) > MAX_BODY:
            return JSONResponse({"error": "the body is too large"}, status_code=413)
        try:
            data = json.loads(body)
            update = Update.de_json(data, application.bot) if isinstance(data, dict) else None
        except (ValueError, TypeError, KeyError):
            update = None
        if update is None or not isinstance(update.update_id, int):
            return JSONResponse({"error": "not a Telegram update"}, status_code=400)
        if not application.running:
            return JSONResponse({"error": "starting"}, status_code=503)
        now = clock.now()
        try:
            async with db.write() as session:
                taken = await ledger.take_update(session=session, update_id=update.update_id, now=now, hold=now + HOLD)
        except SQLAlchemyError as exc:
            log.error("update %s could not be recorded (%s); Telegram will send it again", update.update_id,
                      type(exc).__name__)
            return JSONResponse({"error": "try again"}, status_code=503)
        if taken is ledger.Delivery.DONE:
            log.info("update %s came again; handled once already", update.update_id)
            return JSONResponse({"status": "duplicate"})
        if taken is ledger.Delivery.BUSY:
            return JSONResponse({"status": "in hand elsewhere"}, status_code=503)
        await application.update_processor.process_update(update, application.process_update(update))
        try:
            async with db.write() as session:
                await ledger.update_done(session=session, update_id=update.update_id, now=clock.now())
        except SQLAlchemyError as exc:  # handled: a copy after the hold would be handled again, rarely
            log.error("update %s handled but not marked so (%s)", update.update_id, type(exc).__name__)
        return JSONResponse({"status": "ok"})

    return [Route(PATH, receive, methods=["POST"])]
