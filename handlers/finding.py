"""Agents (and managers): /find — the devices whose ids or description hold what they typed (the last
digits printed on a device will do), as buttons that open each one's /device view."""

from __future__ import annotations

from telegram import Update

from bot import finding
from bot.services import BotContext
from handlers.access import only
from handlers.common import MAX_ARGUMENT, arguments, buttons, reply
from handlers.roles import STAFF

DEVICE_BUTTON = "device:"
"""A button that opens /device for the ledger's device whose id follows (see :func:`device_tapped`)."""
DEVICE_BUTTON_PATTERN = r"^device:[0-9]{1,18}$"


async def find_command(update: Update, context: BotContext) -> None:
    """/find text: the ledger's devices whose ids or description hold the text, as buttons that open them."""
    args = arguments(context)
    text = finding.search_text(args)
    texts = context.texts
    if not args or len(text) > MAX_ARGUMENT:
        await reply(update, context, texts.usage("find"))
        return
    if len(text) < finding.MIN_LENGTH:
        await reply(update, context, texts.find_too_short(finding.MIN_LENGTH))
        return
    found = await finding.find_devices(context.services.db, text)
    if not found.matches:
        await reply(update, context, texts.find_nothing(text))
        return
    rows = [[(texts.find_button(text, match.label, match.alias, match.description),
              f"{DEVICE_BUTTON}{match.device_id}")] for match in found.matches]
    await reply(update, context, texts.find_found(text, found.total, len(found.matches)), buttons(rows))


@only(STAFF)
async def device_tapped(update: Update, context: BotContext) -> None:
    """A button that opens a device: its /device view in a new message (the list stays, to tap another)."""
    query = update.callback_query
    assert query is not None and query.data is not None
    services = context.services
    device = await services.engine.device(int(query.data.removeprefix(DEVICE_BUTTON)))
    if device is None or device.id is None:  # merged into another row since the button was made
        await query.answer(context.texts.stale_button)
        return
    await query.answer()
    status = await services.engine.status(device.id)
    await reply(update, context, context.texts.device_view(status, services.settings.tz, services.clock.now()))
