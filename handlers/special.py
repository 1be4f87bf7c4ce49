"""Free and reset codes: shown with what they do and confirmed with a button first; a free code
from an agent goes to the managers for approval (first decision wins, 24 hours to decide).

Confirmation buttons carry a one-time nonce kept in the person's chat data: pressed twice, or
after a day, or after a restart, they do nothing but say so.
"""

from __future__ import annotations

import logging

from telegram import Update
from telegram.error import TelegramError

from bot import decisions
from bot.decisions import Carried
from bot.people import Kind
from bot.services import BotContext
from handlers import confirming
from handlers.access import only
from handlers.agent import answer_outcome, one_device
from handlers.common import buttons, reply, tell, update_key
from handlers.roles import MANAGERS, STAFF
from storage.models import CodeKind

log = logging.getLogger("paygbot.handlers")

CONFIRMATIONS = "confirmations"


async def _preview(update: Update, context: BotContext, kind: CodeKind) -> None:
    found = await one_device(update, context, kind.value)
    if found is None:
        return
    device, device_id = found
    services = context.services
    status = await services.engine.status(device_id)
    nonce = confirming.remember(context, CONFIRMATIONS, {"kind": kind.value, "device": device,
                                                         "device_id": device_id})
    from_agent = context.who.kind is Kind.AGENT
    if kind is CodeKind.FREE:
        customer = status.customer.name if status.customer else None
        text = context.texts.free_preview(device, customer, from_agent)
        label = context.texts.confirm_free if from_agent else context.texts.confirm_my_free
    else:
        text, label = context.texts.reset_preview(device, status.days_left), context.texts.confirm_reset
    await reply(update, context, text, buttons([[(label, f"cf:{nonce}"), (context.texts.cancel, f"cx:{nonce}")]]))


async def free_command(update: Update, context: BotContext) -> None:
    """/free device: what it does, then a confirmation; from an agent, an approval request."""
    await _preview(update, context, CodeKind.FREE)


async def reset_command(update: Update, context: BotContext) -> None:
    """/reset device: what it does, then a confirmation."""
    await _preview(update, context, CodeKind.RESET)


@only(STAFF)
async def confirmation_tapped(update: Update, context: BotContext) -> None:
    """The confirm or cancel button of a free or reset preview: acts once, and only within a day."""
    confirmed = await confirming.tapped(update, context, CONFIRMATIONS)
    if confirmed is None:
        return
    action, pending = confirmed
    services = context.services
    if action == "cx":
        await reply(update, context, context.texts.cancelled)
        return
    kind, device = CodeKind(pending["kind"]), pending["device"]
    person, chat = context.who.person, update.effective_chat
    assert person is not None and chat is not None
    if kind is CodeKind.FREE and context.who.kind is Kind.AGENT:
        await _ask_managers(update, context, pending["device_id"], device)
        return
    outcome = await services.engine.request(device, kind, requested_by=person.id, chat_id=chat.id,
                                            key=update_key(update))
    await answer_outcome(update, context, outcome)


async def _ask_managers(update: Update, context: BotContext, device_id: int, device: str) -> None:
    services = context.services
    person, chat = context.who.person, update.effective_chat
    assert person is not None and chat is not None
    approval = await services.approvals.ask(device_id=device_id, kind=CodeKind.FREE, requester=person, chat_id=chat.id)
    await reply(update, context, context.texts.approval_sent(device))
    status = await services.engine.status(device_id)
    customer = status.customer.name if status.customer else None
    requester = person.name or str(person.telegram_id)
    for manager in await services.approvals.managers():
        try:
            await tell(context, manager.telegram_id, lambda t: t.approval_request(requester, device, customer),
                       lambda t: buttons([[(t.approve, f"ap:{approval.id}:y"), (t.reject, f"ap:{approval.id}:n")]]))
        except TelegramError as exc:
            log.warning("approval %s: manager %s not reachable (%s)", approval.id, manager.telegram_id, exc.message)


@only(MANAGERS)
async def approval_tapped(update: Update, context: BotContext) -> None:
    """A manager's Approve or Reject: the first decision wins; the requester is told
    (:func:`bot.decisions.decide`, as in the dashboard)."""
    query = update.callback_query
    assert query is not None and query.data is not None
    _, approval_id, choice = query.data.split(":")
    manager = context.who.person
    if context.who.kind is not Kind.MANAGER or manager is None:
        await query.answer(context.texts.managers_only, show_alert=True)
        return
    services = context.services
    approved = choice == "y"
    outcome = await decisions.decide(context.bot, services, manager, int(approval_id), approved)
    approval = outcome.approval
    if outcome.carried is Carried.UNKNOWN or approval is None:
        await query.answer(context.texts.stale_button)
    elif outcome.carried is Carried.EXPIRED:
        await query.answer(context.texts.approval_too_late, show_alert=True)
    elif outcome.carried is Carried.NOT_NEEDED:
        await query.answer()
        await tell(context, manager.telegram_id, lambda t: t.unlock_not_needed(outcome.device))
    elif outcome.carried is Carried.ALREADY:
        await query.answer(context.texts.approval_already(outcome.decider, approval.status.value), show_alert=True)
    else:
        await query.answer()
        await query.edit_message_text(context.texts.with_sandbox_note(
            context.texts.approval_decided(approved, outcome.decider, outcome.device), services.sandbox))
