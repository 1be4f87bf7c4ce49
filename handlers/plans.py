"""Managers and payment plans: /plan (set, change, show; a short dialogue when sent bare), /reverse,
/repossess (with a confirmation button), and /export plans.

The plans themselves live in :mod:`bot.plans`; these handlers parse, answer and tell people.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

from telegram import Update
from telegram.error import TelegramError
from telegram.ext import CallbackQueryHandler, CommandHandler, ConversationHandler, MessageHandler, filters

from bot import exports
from bot.issuing import PlanBalance
from bot.plans import reversals
from bot.plans.reversals import NotReversed, Unreversed
from bot.plans.service import Bad, PlanView, Terms, parse_currency, parse_money
from bot.services import BotContext
from handlers import confirming
from handlers.access import only
from handlers.agent import (
    TEXT,
    _answer_button,
    _device_buttons,
    _device_tapped,
    _device_typed,
    _dialogue,
    _state,
    known_device,
    one_device,
    valid_device,
)
from handlers.common import arguments, buttons, reply, send_csv, tell
from handlers.roles import MANAGERS

log = logging.getLogger("paygbot.handlers")

ASK_PLAN_DEVICE, ASK_PLAN_TERMS, CONFIRM_PLAN = range(20, 23)
REPOSSESSIONS = "repossessions"
MAX_REASON = 200


def parse_terms(words: list[str]) -> Terms | None:
    """``total price-per-day currency [deposit]`` as typed, or None."""
    if len(words) not in (3, 4):
        return None
    total, price, currency = parse_money(words[0]), parse_money(words[1]), parse_currency(words[2])
    deposit = parse_money(words[3], zero=True) if len(words) == 4 else Decimal(0)
    if total is None or price is None or currency is None or deposit is None:
        return None
    return Terms(total, price, currency, deposit)


# -- /plan --------------------------------------------------------------------------------------


async def plan_command(update: Update, context: BotContext) -> int:
    """/plan device total price-per-day currency [deposit] — /plan device shows it; bare /plan asks."""
    args = arguments(context)
    if not args:
        markup = await _device_buttons(context, "plan")
        await reply(update, context, context.texts.ask_device, markup)
        return ASK_PLAN_DEVICE
    device = valid_device(args[0])
    if device is None or any(len(arg) > 64 for arg in args):
        await reply(update, context, context.texts.bad_device if device is None else context.texts.usage("plan"))
        return ConversationHandler.END
    if len(args) == 1:
        await _show(update, context, device)
        return ConversationHandler.END
    terms = parse_terms(args[1:])
    if terms is None:
        await reply(update, context, context.texts.bad_plan_terms + "\n" + context.texts.usage("plan"))
        return ConversationHandler.END
    await _set(update, context, device, terms)
    return ConversationHandler.END


async def _show(update: Update, context: BotContext, device: str) -> None:
    device_id = await known_device(update, context, device)
    if device_id is None:
        return
    view = await context.services.plans.view(device_id)
    if view is None:
        await reply(update, context, context.texts.no_plan(device))
        return
    await reply(update, context, context.texts.plan_view(view, context.services.settings.tz))


async def _set(update: Update, context: BotContext, device: str, terms: Terms) -> None:
    device_id = await known_device(update, context, device)
    if device_id is None:
        return
    services = context.services
    done = await services.plans.set(device_id, terms, by=context.who.person)
    if isinstance(done, Bad):
        await reply(update, context, context.texts.plan_refused(done.value, device))
        return
    await reply(update, context, context.texts.plan_set(done.view, done.created, done.changed, done.paid_off,
                                                        services.settings.tz))
    if done.paid_off:
        await _ask_unlock(context, done.view)


async def _ask_unlock(context: BotContext, view: PlanView) -> None:
    """A plan paid off by its new terms (not by a payment): the customer and their agent are told, and the
    managers asked as for a payment (best effort: the plan's Approve / Reject also work from /plan)."""
    plan = view.plan
    at_once = context.services.settings.unlock_when_paid == "auto"
    balance = PlanBalance(plan.paid, plan.total, plan.currency, Decimal(0), True, Decimal(0))
    agent = await context.services.plans.agent_of(view.device)
    for chat_id, for_customer in ((view.customer.chat_id if view.customer else None, True),
                                  (agent.telegram_id if agent else None, False)):
        if chat_id is not None:
            try:
                await tell(context, chat_id, lambda t, c=for_customer: t.paid_off_by_new_terms(
                    balance, view.device.label, for_customer=c, at_once=at_once))
            except TelegramError as exc:
                log.warning("plan %s: chat %s not told it is paid off (%s)", plan.id, chat_id, exc.message)
    if plan.unlock_approval_id is None:
        return
    customer = view.customer.name if view.customer else None
    for manager in await context.services.approvals.managers():
        try:
            await tell(context, manager.telegram_id, lambda t: t.paid_off_managers(
                device=view.device.label, customer=customer, reference=None, paid=plan.paid, total=plan.total,
                currency=plan.currency, excess=Decimal(0), at_once=False, ask=True),
                lambda t: buttons([[(t.approve, f"ap:{plan.unlock_approval_id}:y"),
                                    (t.reject, f"ap:{plan.unlock_approval_id}:n")]]))
        except TelegramError as exc:
            log.warning("plan %s: manager %s not reachable (%s)", plan.id, manager.telegram_id, exc.message)


async def _ask_terms(update: Update, context: BotContext, device: str) -> int:
    _state(context, "plan")["device"] = device
    await reply(update, context, context.texts.ask_plan_terms(device))
    return ASK_PLAN_TERMS


async def plan_device_typed(update: Update, context: BotContext) -> int:
    return await _device_typed(update, context, ASK_PLAN_DEVICE, _ask_terms)


async def plan_device_tapped(update: Update, context: BotContext) -> int:
    return await _device_tapped(update, context, "plan", ASK_PLAN_DEVICE, _ask_terms)


async def plan_terms_typed(update: Update, context: BotContext) -> int:
    assert update.message is not None and update.message.text is not None
    terms = parse_terms(update.message.text.split())
    if terms is None:
        await reply(update, context, context.texts.bad_plan_terms)
        return ASK_PLAN_TERMS
    state = _state(context, "plan")
    state["terms"] = [str(terms.total), str(terms.daily_price), terms.currency, str(terms.deposit)]
    await reply(update, context, context.texts.confirm_plan(state["device"], terms.total, terms.daily_price,
                                                            terms.currency, terms.deposit),
                buttons([[(context.texts.confirm, "ok:yes"), (context.texts.cancel, "ok:no")]]))
    return CONFIRM_PLAN


async def plan_confirmed(update: Update, context: BotContext) -> int:
    data = await _answer_button(update)
    assert context.user_data is not None
    state = context.user_data.pop("plan", {})
    if data != "ok:yes" or "terms" not in state:
        await reply(update, context, context.texts.cancelled)
        return ConversationHandler.END
    terms = parse_terms(state["terms"])
    assert terms is not None
    await _set(update, context, state["device"], terms)
    return ConversationHandler.END


def plan_dialogue(entry: Any) -> ConversationHandler[Any]:
    """/plan: ``entry`` is :func:`plan_command` with its role check (see handlers.table)."""
    return _dialogue("plan", CommandHandler("plan", entry, filters=filters.UpdateType.MESSAGE), {
        ASK_PLAN_DEVICE: [MessageHandler(TEXT, plan_device_typed),
                          CallbackQueryHandler(plan_device_tapped, "^dev:[0-9]{1,2}$")],
        ASK_PLAN_TERMS: [MessageHandler(TEXT, plan_terms_typed)],
        CONFIRM_PLAN: [CallbackQueryHandler(plan_confirmed, "^ok:")],
    })


# -- /reverse -----------------------------------------------------------------------------------


async def reverse_command(update: Update, context: BotContext) -> None:
    """/reverse reference [reason]: a payment taken back by its provider."""
    args = arguments(context)
    if not args or len(args[0]) > 100:
        await reply(update, context, context.texts.usage("reverse"))
        return
    reference, reason = args[0], " ".join(args[1:])[:MAX_REASON] or None
    services = context.services
    person = context.who.person
    done = await reversals.reverse(services.db, services.clock, reference, reason=reason,
                                   by=person.id if person else None)
    if isinstance(done, NotReversed):
        if done.why is Unreversed.UNKNOWN:
            await reply(update, context, context.texts.reversal_unknown(reference))
        else:
            when = done.reversal.at if done.reversal else None
            await reply(update, context, context.texts.reversal_already(reference, when, services.settings.tz))
        return
    assert done.payment.id is not None
    await reply(update, context, context.texts.reversed_text(**reversal_words(done)))
    await services.payments.tell(done.payment.id)  # the other managers and the agent


def reversal_words(done: reversals.Reversed) -> dict[str, Any]:
    payment, reversal = done.payment, done.reversal
    return dict(reference=payment.reference, amount=payment.amount, currency=payment.currency,
                device=done.device.label if done.device else None, applied=done.device is not None,
                cancelled_days=reversal.cancelled_days, owed=reversal.owed, reason=reversal.reason,
                plan_paid=done.plan.paid if done.plan else None, plan_total=done.plan.total if done.plan else None,
                reopened=done.reopened)


# -- /repossess ---------------------------------------------------------------------------------


async def repossess_command(update: Update, context: BotContext) -> None:
    """/repossess device: what it does, then a confirmation button."""
    found = await one_device(update, context, "repossess")
    if found is None:
        return
    device, device_id = found
    services = context.services
    view = await services.plans.view(device_id)
    if view is None or view.plan.status != "active":
        await reply(update, context, context.texts.plan_refused("no_plan" if view is None else "paid_off", device))
        return
    nonce = confirming.remember(context, REPOSSESSIONS, {"device_id": device_id, "device": device,
                                                         "plan_id": view.plan.id})
    await reply(update, context, context.texts.repossess_preview(view),
                buttons([[(context.texts.confirm_repossess, f"rp:{nonce}"), (context.texts.cancel, f"rx:{nonce}")]]))


@only(MANAGERS)
async def repossess_tapped(update: Update, context: BotContext) -> None:
    """The Repossess or Cancel button: acts once, within a day, on the plan it was shown for."""
    confirmed = await confirming.tapped(update, context, REPOSSESSIONS)
    if confirmed is None:
        return
    action, pending = confirmed
    services = context.services
    if action == "rx":
        await reply(update, context, context.texts.cancelled)
        return
    view = await services.plans.view(pending["device_id"])
    if view is None or view.plan.id != pending["plan_id"]:  # ended or replaced meanwhile
        await reply(update, context, context.texts.plan_refused("no_plan", pending["device"]))
        return
    done = await services.plans.repossess(pending["device_id"], by=context.who.person)
    if isinstance(done, Bad):
        await reply(update, context, context.texts.plan_refused(done.value, pending["device"]))
        return
    plan = done.view.plan
    await reply(update, context, context.texts.repossessed(done.view.device.label,
                                                           done.customer.name if done.customer else None,
                                                           plan.paid, plan.total, plan.currency))


# -- /export plans ---------------------------------------------------------------------------


async def export_plans(update: Update, context: BotContext) -> None:
    """Every plan as a CSV document (its columns import back with ``paygbot plans import``)."""
    table = await exports.plans(context.services)
    await send_csv(update, context, table.header, table.rows, table.filename,
                   context.texts.plans_export_caption(len(table.rows)))


async def export_portfolio(update: Update, context: BotContext) -> None:
    """Every plan as it stands now, with its days past due: the rows the /portfolio figures add up."""
    table = await exports.portfolio(context.services)
    await send_csv(update, context, table.header, table.rows, table.filename,
                   context.texts.plans_export_caption(len(table.rows)))
