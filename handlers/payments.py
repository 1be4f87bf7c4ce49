"""Money through the chat: cash recorded with /pay, M-Pesa confirmations pasted or forwarded by
agents (shown back, recorded on confirmation), and managers assigning money kept for them (/assign,
or the buttons of the notice). Every one of them takes the webhook's path (:mod:`bot.payments`)."""

from __future__ import annotations

import dataclasses
import re
import secrets
from typing import Any

from telegram import Message, Update
from telegram.ext import filters

from bot.issuing import PaymentApplied, PaymentHeld, Reason, Refused, devices
from bot.payments import Incoming, NotMatched, Outcome, Payments, Pending, Provider, new_cash_reference, sms
from bot.people import Kind
from bot.services import BotContext
from handlers.access import only
from handlers.agent import known_device, valid_device
from handlers.common import arguments, buttons, reply, too_long
from handlers.roles import MANAGERS, STAFF
from storage.models import Payment, PaymentStatus

REFERENCE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,63}$")
PENDING_KEY = "pasted_payments"
MAX_PENDING_PASTES = 20


def _payments(context: BotContext) -> Payments:
    return context.services.payments


async def answer_outcome(update: Update, context: BotContext, payment: Payment, outcome: Outcome | None,
                         device: str | None = None) -> None:
    """What a recorded (or assigned) payment became, to the person who recorded it."""
    services = context.services
    assert payment.id is not None
    payment = await _payments(context).get(payment.id) or payment  # as it is now (the currency filled in)
    common = {"reference": payment.reference, "amount": payment.amount, "currency": payment.currency}
    if outcome is None:
        await reply(update, context, await _already(context, payment))
        return
    if isinstance(outcome, PaymentApplied):
        status = await services.engine.status(outcome.device_id)
        if outcome.duplicate:
            await reply(update, context, context.texts.payment_already_applied(
                payment.reference, status.device.label, outcome.days))
            return
        await reply(update, context, context.texts.payment_applied(
            **common, device=status.device.label, days=outcome.days, days_now=outcome.days_now,
            prepaid=outcome.prepaid_days, credit_left=outcome.credit_left, price=status.device.daily_price,
            waits_until=outcome.not_before if outcome.not_before and outcome.not_before > services.clock.now()
            else None, customer=status.customer is not None, tz=services.settings.tz,
            balance=outcome.plan, owed_paid=outcome.owed_paid, at_once=services.settings.unlock_when_paid == "auto",
        ))
    elif isinstance(outcome, PaymentHeld):
        status = await services.engine.status(outcome.device_id)
        await reply(update, context, context.texts.payment_held(
            **common, device=status.device.label, reason=outcome.reason.value,
            device_currency=status.device.currency, assigning=context.who.kind is Kind.MANAGER,
        ))
    elif isinstance(outcome, NotMatched):
        await reply(update, context, context.texts.payment_not_matched(**common, account=device or payment.account,
                                                               reason=outcome.reason.value))
    else:
        assert isinstance(outcome, Pending)
        await reply(update, context, context.texts.payment_pending(**common, account=device or payment.account))


async def _already(context: BotContext, payment: Payment) -> str:
    """A reference seen before: what became of it, and whether M-Pesa itself confirmed it (where Daraja's
    confirmations arrive, a pasted one is the agent's word until then)."""
    label = None
    if payment.device_id is not None:
        device = await context.services.engine.device(payment.device_id)
        label = device.label if device is not None else None
    settings = context.services.settings
    confirmed: bool | None = None
    if payment.provider == Provider.MPESA:
        confirmed = True
    elif payment.provider == Provider.MPESA_PASTED and (payment.confirmed_at or settings.mpesa_path is not None):
        confirmed = payment.confirmed_at is not None
    return context.texts.payment_duplicate(
        payment.reference, payment.amount, payment.currency, payment.received_at, payment.status.value,
        label, payment.days, settings.tz, confirmed=confirmed, confirmed_at=payment.confirmed_at,
    )


# -- /pay: cash ---------------------------------------------------------------------------------


async def pay_command(update: Update, context: BotContext) -> None:
    """/pay device amount [reference]: record cash; the days go to the device at its daily price."""
    args = arguments(context)
    if len(args) not in (2, 3) or too_long(args):
        await reply(update, context, context.texts.usage("pay"))
        return
    device, amount = valid_device(args[0]), devices.parse_amount(args[1])
    reference = args[2] if len(args) == 3 else None
    if device is None:
        await reply(update, context, context.texts.bad_device)
        return
    if amount is None:
        await reply(update, context, context.texts.bad_amount + "\n" + context.texts.usage("pay"))
        return
    if reference is not None and not REFERENCE.match(reference):
        await reply(update, context, context.texts.bad_reference + "\n" + context.texts.usage("pay"))
        return
    if reference is not None and sms.is_transaction_code(reference):
        # M-Pesa's money comes with M-Pesa's confirmation: cash must not take (and swallow) its reference
        await reply(update, context, context.texts.mpesa_code_as_cash_reference(reference))
        return
    services = context.services
    known = await services.engine.resolve_device(device)
    if isinstance(known, Refused) and known.reason is not Reason.ERM_UNAVAILABLE:
        # A typing mistake: nothing is recorded, so the cash is not counted twice when typed again.
        await reply(update, context, context.texts.refused(known.reason.value, device, words=known.words,
                                                   tz=services.settings.tz) + "\n" + context.texts.cash_not_recorded)
        return
    person, chat = context.who.person, update.effective_chat
    assert person is not None and chat is not None
    received = await _payments(context).receive(Incoming(
        provider=Provider.CASH, reference=reference or new_cash_reference(services.clock.now()), amount=amount,
        account=device, recorded_by=person.id, chat_id=chat.id,
    ))
    await answer_outcome(update, context, received.payment, received.outcome if received.new else None, device)


# -- confirmations pasted or forwarded ----------------------------------------------------------


class _Confirmation(filters.MessageFilter):
    """Text (typed, pasted or forwarded) that reads as a mobile-money confirmation."""

    def filter(self, message: Message) -> bool:
        text = message.text
        return text is not None and not text.startswith("/") and sms.parse(text, sms.UTC_ZONE) is not None


CONFIRMATION = _Confirmation(name="paygbot.confirmation")


async def confirmation_pasted(update: Update, context: BotContext) -> None:
    """An M-Pesa confirmation in the chat: shown back as read, recorded only on confirmation."""
    message = update.effective_message
    assert message is not None and message.text is not None
    who = context.who
    if not who.is_staff:
        await reply(update, context, context.texts.confirmation_from_customer)
        return
    services = context.services
    confirmation = sms.parse(message.text, services.settings.tz)
    assert confirmation is not None
    payments = _payments(context)
    existing = await payments.repeated(_pasted(confirmation, None, None))
    if existing is not None:
        await reply(update, context, await _already(context, existing))
        return
    if confirmation.target is None:
        await reply(update, context, context.texts.confirmation_without_account(confirmation.reference, confirmation.amount))
        return
    target = await payments.target(confirmation.target)
    assert context.user_data is not None
    pasted: dict[str, Any] = context.user_data.setdefault(PENDING_KEY, {})
    while len(pasted) >= MAX_PENDING_PASTES:
        pasted.pop(next(iter(pasted)))
    token = secrets.token_hex(4)
    pasted[token] = dataclasses.asdict(confirmation)  # plain values: the chat state is kept in the ledger
    await reply(update, context, context.texts.confirmation_preview(
        reference=confirmation.reference, amount=confirmation.amount, currency=confirmation.currency,
        party=confirmation.party, phone=confirmation.phone, account=confirmation.target,
        paid_at=confirmation.paid_at, device=target[0].label if target else None,
        customer=target[1].name if target and target[1] else None, tz=services.settings.tz,
    ), buttons([[(context.texts.record_payment, f"sms:ok:{token}"), (context.texts.cancel, f"sms:no:{token}")]]))


@only(STAFF)
async def confirmation_tapped(update: Update, context: BotContext) -> None:
    """Record it (once, however often the button is tapped), or drop it."""
    query = update.callback_query
    assert query is not None and query.data is not None
    _, choice, token = query.data.split(":")
    assert context.user_data is not None
    kept = context.user_data.get(PENDING_KEY, {}).pop(token, None)
    if kept is None:
        await query.answer(context.texts.stale_button)
        return
    confirmation = sms.Confirmation(**kept)
    await query.answer()
    await query.edit_message_reply_markup(None)
    if choice != "ok":
        await reply(update, context, context.texts.confirmation_dropped)
        return
    person, chat = context.who.person, update.effective_chat
    assert person is not None and chat is not None and isinstance(confirmation, sms.Confirmation)
    assert confirmation.target is not None
    received = await _payments(context).receive(_pasted(confirmation, person.id, chat.id))
    await answer_outcome(update, context, received.payment, received.outcome if received.new else None)


def _pasted(confirmation: sms.Confirmation, recorded_by: int | None, chat_id: int | None) -> Incoming:
    """A pasted confirmation as a payment: the agent's word (``mpesa_pasted``), not Safaricom's."""
    return Incoming(
        provider=Provider.MPESA_PASTED, reference=confirmation.reference, amount=confirmation.amount,
        account=confirmation.target or "", currency=confirmation.currency, phone=confirmation.phone,
        payer=confirmation.party or None, paid_at=confirmation.paid_at, recorded_by=recorded_by, chat_id=chat_id,
    )


# -- managers assign money kept for them ----------------------------------------------------------


async def assign_command(update: Update, context: BotContext) -> None:
    """/assign reference device: the kept payment becomes days for that device."""
    args = arguments(context)
    if len(args) != 2 or too_long(args):
        await reply(update, context, context.texts.usage("assign"))
        return
    device = valid_device(args[1])
    if device is None:
        await reply(update, context, context.texts.bad_device)
        return
    payment = await _payments(context).find(args[0])
    if payment is None:
        await reply(update, context, context.texts.no_such_payment(args[0]))
        return
    device_id = await known_device(update, context, device)
    if device_id is None:
        return
    await _assign(update, context, payment, device_id)


@only(MANAGERS)
async def assign_tapped(update: Update, context: BotContext) -> None:
    """A button of a kept-payment notice: assign it to that device."""
    query = update.callback_query
    assert query is not None and query.data is not None
    if context.who.kind is not Kind.MANAGER:
        await query.answer(context.texts.managers_only, show_alert=True)
        return
    _, _, payment_id, device_id = query.data.split(":")
    await query.answer()
    payment = await _payments(context).get(int(payment_id))
    if payment is None:
        await reply(update, context, context.texts.stale_button)
        return
    await _assign(update, context, payment, int(device_id))


async def _assign(update: Update, context: BotContext, payment: Payment, device_id: int) -> None:
    if payment.status is PaymentStatus.MATCHED:
        await reply(update, context, await _already(context, payment))
        return
    person, chat = context.who.person, update.effective_chat
    assert person is not None and chat is not None and payment.id is not None
    outcome = await _payments(context).assign(payment.id, device_id, manager=person, chat_id=chat.id)
    await answer_outcome(update, context, payment, outcome)
