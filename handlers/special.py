"""Free and reset codes: shown with what they do and confirmed with a button first; a free code
from an agent goes to the managers for approval (first decision wins, 24 hours to decide).

Confirmation buttons carry a one-time nonce kept in the person's chat data: pressed twice, or
after a day, or after a restart, they do nothing but say so.
"""

from __future__ import annotations

import logging

from telegram import Update
from telegram.error import TelegramError

from bot.approvals import Verdict
from bot.issuing import Refused
from bot.people import Kind
from bot.services import BotContext
from handlers import confirming
from handlers.access import only
from handlers.agent import answer_outcome, one_device
from handlers.common import buttons, reply, tell, update_key
from handlers.roles import MANAGERS, STAFF
from storage.models import ApprovalStatus, CodeKind, Role

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
    """A manager's Approve or Reject: the first decision wins; the requester is told."""
    query = update.callback_query
    assert query is not None and query.data is not None
    _, approval_id, choice = query.data.split(":")
    manager = context.who.person
    if context.who.kind is not Kind.MANAGER or manager is None:
        await query.answer(context.texts.managers_only, show_alert=True)
        return
    services = context.services
    decision = await services.approvals.decide(int(approval_id), manager, approve=choice == "y")
    if decision.verdict is Verdict.UNKNOWN or decision.approval is None:
        await query.answer(context.texts.stale_button)
        return
    approval = decision.approval
    device = await services.engine.device(approval.device_id)
    device_name = device.label if device else "?"
    if decision.verdict is Verdict.EXPIRED:
        await query.answer(context.texts.approval_too_late, show_alert=True)
        return
    decider = decision.decided_by.name if decision.decided_by and decision.decided_by.name else None
    if approval.status is ApprovalStatus.CANCELLED:  # a plan no longer paid off: a payment was reversed
        await query.answer()
        await tell(context, manager.telegram_id, lambda t: t.unlock_not_needed(device_name))
        return
    if decision.verdict is Verdict.ALREADY and approval.plan_id is not None \
            and approval.status is ApprovalStatus.APPROVED:
        # approved, but its unlock code may not have been queued (the queueing failed): queued now, once
        await services.engine.unlock_plan(approval.plan_id, requested_by=manager.id, chat_id=manager.telegram_id,
                                          approval_id=approval.id)
    if decision.verdict is Verdict.ALREADY:
        await query.answer(context.texts.approval_already(decider, approval.status.value), show_alert=True)
        return
    await query.answer()
    approved = choice == "y"
    await query.edit_message_text(context.texts.with_sandbox_note(
        context.texts.approval_decided(approved, decider, device_name), services.sandbox))
    # The requester is checked again now: one whose role was taken away meanwhile gets neither word nor
    # code; the code then goes to the approving manager (and, as always, to the customer).
    requester = decision.requester
    still_staff = requester is not None and requester.active and requester.role in (Role.AGENT, Role.MANAGER)
    code_chat = approval.chat_id if still_staff else manager.telegram_id
    if still_staff and approval.chat_id is not None:
        await tell(context, approval.chat_id, lambda t: t.approval_requester_told(approved, decider, device_name))
    if not approved and approval.plan_id is not None:
        await tell(context, manager.telegram_id, lambda t: t.unlock_rejected(device_name))
    if not approved or device is None:
        return
    if approval.plan_id is not None:  # a plan paid off: its one unlock code
        request_id = await services.engine.unlock_plan(
            approval.plan_id, requested_by=requester.id if still_staff and requester else manager.id, chat_id=code_chat,
            approval_id=approval.id)
        if request_id is None:
            await tell(context, manager.telegram_id, lambda t: t.unlock_not_needed(device_name))
            return
        await services.approvals.record_request(approval.id or 0, request_id)
        return
    outcome = await services.engine.request(device_name, CodeKind.FREE,
                                            requested_by=requester.id if still_staff and requester else manager.id,
                                            chat_id=code_chat)
    if isinstance(outcome, Refused):
        refused = outcome
        for chat_id in {code_chat, manager.telegram_id} - {None}:
            assert chat_id is not None
            await tell(context, chat_id, lambda t: t.refused(refused.reason.value, device_name, fits=refused.fits,
                                                             possible_at=refused.possible_at, words=refused.words,
                                                             tz=services.settings.tz))
        return
    await services.approvals.record_request(approval.id or 0, outcome.request_id)
