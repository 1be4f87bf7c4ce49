"""Customers: joining by sharing their own number, /balance and /code (no new ERM call)."""

from __future__ import annotations

import logging

from telegram import ReplyKeyboardRemove, Update

from bot.delivery import speak_to
from bot.people import Kind, LinkedElsewhere
from bot.services import BotContext
from handlers.common import LANGUAGE, reply, welcome

log = logging.getLogger("paygbot.handlers")


async def contact_shared(update: Update, context: BotContext) -> None:
    """A stranger or customer shares their own number: link the chat when the number is on file."""
    message, user, chat = update.effective_message, update.effective_user, update.effective_chat
    assert message is not None and message.contact is not None and user is not None and chat is not None
    if context.who.kind not in (Kind.STRANGER, Kind.CUSTOMER):
        await reply(update, context, context.texts.not_understood)
        return
    if message.contact.user_id != user.id:
        await reply(update, context, context.texts.contact_not_own())
        return
    customer = await context.services.people.link_by_contact(
        phone=message.contact.phone_number, telegram_id=user.id, chat_id=chat.id, language=context.language,
        language_chosen=LANGUAGE in (context.user_data or {}),
    )
    if customer is None:
        await reply(update, context, context.texts.contact_unknown(), ReplyKeyboardRemove())
        return
    if isinstance(customer, LinkedElsewhere):  # only the agent's invite moves a customer's chat
        log.warning("customer %s: Telegram user %s shared their number, but chat %s has it; nothing linked",
                    customer.customer.id, user.id, customer.chat_id)
        await reply(update, context, context.texts.contact_linked_elsewhere(), ReplyKeyboardRemove())
        if customer.chat_id is not None:  # best effort: a blocked chat must not fail the sharer's update
            await speak_to(context.bot, context.services.db, customer.chat_id, lambda t: t.someone_shared_your_number(),
                           sandbox=context.services.sandbox, unreachable="shared number warning")
        return
    await welcome(update, context, "customer")


async def balance(update: Update, context: BotContext) -> None:
    """/balance: days left and credit-until of each of the customer's devices, and where each plan stands."""
    customer = context.who.customer
    if customer is None or customer.id is None:
        await reply(update, context, context.texts.help_for(context.who.kind.value))
        return
    services = context.services
    view = await services.engine.customer_view(customer.id)
    rows = [(device.label, device.credit_until, device.unlocked, left) for device, left, _ in view]
    plans = await services.plans.views_of_customer(customer.id)
    by_label = {plan.device.label: plan for plan in plans.values()}
    await reply(update, context, context.texts.balance(rows, services.settings.tz, by_label))


async def last_code(update: Update, context: BotContext) -> None:
    """/code: the last code of each of the customer's devices again, from the ledger."""
    customer = context.who.customer
    if customer is None or customer.id is None:
        await reply(update, context, context.texts.help_for(context.who.kind.value))
        return
    services = context.services
    view = await services.engine.customer_view(customer.id)
    shown = [
        context.texts.last_code(request.device_ref, request.code, request.issued_at, request.kind.value, request.days,
                        services.settings.tz)
        for _, _, request in view
        if request is not None and request.code and request.issued_at
    ]
    await reply(update, context, "\n\n".join(shown) if shown else context.texts.no_code_yet())
