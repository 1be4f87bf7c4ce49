"""Managers: /invite agent|manager."""

from __future__ import annotations

from telegram import Update

from bot import texts
from bot.services import BotContext
from handlers.common import arguments, reply, reply_qr


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
