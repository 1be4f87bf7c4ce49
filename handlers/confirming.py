"""Confirmation buttons (free, reset, repossess): what a preview remembers, and the tap that acts on it.

Each button carries a one-time nonce kept in the person's chat data: pressed twice, after a day, or after a
restart, it does nothing but say so.
"""

from __future__ import annotations

import logging
import secrets
from datetime import datetime, timedelta
from typing import Any

from telegram import Update
from telegram.error import TelegramError

from bot.services import BotContext
from handlers.common import reply

log = logging.getLogger("paygbot.handlers")

CONFIRMATION_LIFETIME = timedelta(days=1)


def remember(context: BotContext, key: str, values: dict[str, Any]) -> str:
    """Keep what a preview is about under a new nonce (for its buttons' data); returns the nonce."""
    assert context.user_data is not None
    nonce = secrets.token_urlsafe(8)
    context.user_data.setdefault(key, {})[nonce] = {**values, "at": context.services.clock.now().isoformat()}
    return nonce


async def tapped(update: Update, context: BotContext, key: str) -> tuple[str, dict[str, Any]] | None:
    """A confirmation button's (action, what its preview remembered), once and within a day; or None once the
    person has been told why not (pressed before, too old). The buttons are taken off the message."""
    query = update.callback_query
    assert query is not None and query.data is not None and context.user_data is not None
    action, nonce = query.data.split(":", 1)
    pending = context.user_data.setdefault(key, {}).pop(nonce, None)
    await query.answer()
    if pending is None:
        await reply(update, context, context.texts.stale_button)
        return None
    await remove_buttons(update)
    if context.services.clock.now() - datetime.fromisoformat(pending["at"]) > CONFIRMATION_LIFETIME:
        await reply(update, context, context.texts.confirmation_expired)
        return None
    return action, pending


async def remove_buttons(update: Update) -> None:
    query = update.callback_query
    if query is not None and query.message is not None:
        try:
            await query.edit_message_reply_markup(None)
        except TelegramError as exc:  # already without buttons: nothing to undo
            log.debug("buttons not removed (%s)", exc.message)
