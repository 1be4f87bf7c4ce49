"""Managers: /invite agent|manager, /price."""

from __future__ import annotations

from telegram import Update

from bot import devices, texts
from bot.issuing import Refused
from bot.services import BotContext
from handlers.agent import valid_device
from handlers.common import arguments, reply, reply_qr, too_long


async def invite(update: Update, context: BotContext) -> None:
    """/invite agent|manager: a single-use link, valid 24 hours, and its QR picture."""
    args = arguments(context)
    if len(args) != 1 or args[0].lower() not in ("agent", "manager"):
        await reply(update, context, texts.usage("invite"))
        return
    role = args[0].lower()
    services = context.services
    created = await services.people.invite(role, context.who.person)
    link = services.start_link(created.token)
    await reply_qr(update, context, link, texts.invite_created(role, link))


async def price(update: Update, context: BotContext) -> None:
    """/price device amount [currency]: the daily price that turns payments into days."""
    args = arguments(context)
    if len(args) not in (2, 3) or too_long(args):
        await reply(update, context, texts.usage("price"))
        return
    device = valid_device(args[0])
    amount = devices.parse_amount(args[1])
    currency = devices.parse_currency(args[2]) if len(args) == 3 else None
    if device is None:
        await reply(update, context, texts.BAD_DEVICE)
        return
    if amount is None or (len(args) == 3 and currency is None):
        await reply(update, context, texts.BAD_PRICE + "\n" + texts.usage("price"))
        return
    services = context.services
    outcome = await services.engine.resolve_device(device)
    if isinstance(outcome, Refused):
        await reply(update, context, texts.refused(outcome.reason.value, device, words=outcome.words,
                                                   tz=services.settings.tz))
        return
    await devices.set_price(services.db, outcome, amount, currency)
    status = await services.engine.status(outcome)
    await reply(update, context, texts.price_set(device, amount, status.device.currency))
