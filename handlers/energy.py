"""Energy use (Omnimetic): agents' and managers' /meter ties a customer's utility account; /usage shows
the energy use — customers their own, agents and managers a device's customer's, managers also
Omnimetic's spreadsheet. Omnimetic failing is said in one sentence and touches nothing else."""

from __future__ import annotations

import logging

from telegram import Update

from bot.energy import MeterHeld, NoCustomer, NoMeter, Usage, check_account_id
from bot.energy.chart import picture as chart_picture
from bot.omnimetic.errors import OmnimeticAuthError, OmnimeticError, OmnimeticNotFound, OmnimeticRefused
from bot.people import Kind
from bot.services import BotContext
from bot.texts import Texts
from handlers.agent import known_device, valid_device
from handlers.common import arguments, reply, too_long

log = logging.getLogger("paygbot.handlers")

OFF = "off"
XLSX = "xlsx"


async def meter_command(update: Update, context: BotContext) -> None:
    """/meter device account — tie the device's customer to their utility account; /meter device off."""
    args = arguments(context)
    texts = context.texts
    if len(args) != 2 or too_long(args):
        await reply(update, context, texts.usage("meter"))
        return
    device = valid_device(args[0])
    if device is None:
        await reply(update, context, texts.bad_device)
        return
    account = args[1]
    if account.lower() != OFF:
        try:
            check_account_id(account)
        except ValueError:
            await reply(update, context, texts.bad_meter_account)
            return
    device_id = await known_device(update, context, device)
    if device_id is None:
        return
    energy = context.services.energy
    if account.lower() == OFF:
        untied = await energy.untie(device_id)
        if isinstance(untied, NoCustomer):
            await reply(update, context, texts.meter_no_customer(device))
            return
        customer, was = untied
        await reply(update, context, texts.meter_untied(customer.name, was))
        return
    try:
        tied = await energy.tie(device_id, account)
    except OmnimeticNotFound:
        await reply(update, context, texts.meter_unknown(account))
        return
    except OmnimeticError as exc:
        await reply(update, context, _failure(context, exc))
        return
    if isinstance(tied, NoCustomer):
        await reply(update, context, texts.meter_no_customer(device))
    elif isinstance(tied, MeterHeld):
        await reply(update, context, texts.meter_held(account))
    else:
        await reply(update, context, texts.meter_tied(device, tied.customer.name, tied.account,
                                                      context.services.settings.tz))


async def usage_command(update: Update, context: BotContext) -> None:
    """/usage (customers: their own), /usage device (agents, managers), /usage device xlsx (managers)."""
    who, texts, energy = context.who, context.texts, context.services.energy
    args = arguments(context)
    try:
        if who.kind is Kind.CUSTOMER:  # their own account, whatever they typed after the command
            assert who.customer is not None
            found: Usage | NoMeter | NoCustomer = await energy.usage_of_customer(who.customer)
            if isinstance(found, NoMeter):
                await reply(update, context, texts.usage_no_meter_yours)
                return
            device = None
        else:
            if not 1 <= len(args) <= 2 or too_long(args) or (len(args) == 2 and args[1].lower() != XLSX):
                await reply(update, context, texts.usage("usage"))
                return
            device = valid_device(args[0])
            if device is None:
                await reply(update, context, texts.bad_device)
                return
            if len(args) == 2 and who.kind is not Kind.MANAGER:
                await reply(update, context, texts.usage_spreadsheet_managers_only)
                return
            device_id = await known_device(update, context, device)
            if device_id is None:
                return
            if len(args) == 2:
                await _spreadsheet(update, context, device, device_id)
                return
            found = await energy.usage_of_device(device_id)
            if (missing := _missing(texts, device, found)) is not None:
                await reply(update, context, missing)
                return
    except OmnimeticError as exc:
        await reply(update, context, _failure(context, exc))
        return
    await _show(update, context, found)


async def _show(update: Update, context: BotContext, usage: Usage) -> None:
    """The figures as text, then (when there are any) the picture."""
    services, texts = context.services, context.texts
    currency = services.settings.currency
    await reply(update, context, texts.usage_report(usage, currency, services.energy.sandbox))
    if usage.empty:
        return
    chat = update.effective_chat
    assert chat is not None
    picture = await chart_picture(usage, texts)
    await context.bot.send_photo(chat.id, picture, caption=texts.energy_chart_labels()["months"])


async def _spreadsheet(update: Update, context: BotContext, device: str, device_id: int) -> None:
    texts, energy = context.texts, context.services.energy
    found = await energy.spreadsheet(device_id)
    if (missing := _missing(texts, device, found)) is not None:
        await reply(update, context, missing)
        return
    assert not isinstance(found, NoCustomer | NoMeter)
    account, content = found
    chat = update.effective_chat
    assert chat is not None
    caption = texts.with_omnimetic_note(texts.usage_spreadsheet(device, account), energy.sandbox)
    await context.bot.send_document(chat.id, content, filename=f"usage-{account}.xlsx", caption=caption)


def _missing(texts: Texts, device: str, found: object) -> str | None:
    """What to say when the device has no customer, or its customer no meter (None: it has both)."""
    if isinstance(found, NoCustomer):
        return texts.meter_no_customer(device)
    if isinstance(found, NoMeter):
        return texts.usage_no_meter(device)
    return None


def _failure(context: BotContext, exc: OmnimeticError) -> str:
    """One plain sentence: Omnimetic refused a request (in its words, to staff), or cannot be reached —
    which is also what our keys being refused looks like from the chat (the log says which)."""
    if isinstance(exc, OmnimeticRefused) and not isinstance(exc, OmnimeticAuthError) and context.who.is_staff:
        return context.texts.omnimetic_refused(exc.message)
    if isinstance(exc, OmnimeticAuthError):
        log.error("Omnimetic refused our keys (check OMNIMETIC_CLIENT_ID and OMNIMETIC_SECRET): %s", exc.message)
    else:
        log.warning("Omnimetic failed: %s", exc.message)
    return context.texts.omnimetic_down
