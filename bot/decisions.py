"""A manager's decision on a free or unlock code, carried out: the same steps whether it was taken with
the chat's Approve / Reject buttons (:mod:`handlers.special`) or in the dashboard (:mod:`dashboard`).

The decision itself is one compare-and-set in the ledger (:meth:`bot.approvals.Approvals.decide`: the
first wins); what follows here happens once, for the one decision that won: the requester is told, the
code is queued. Each caller only shows the manager what became of their tap.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from telegram import Bot

from bot.approvals import Verdict
from bot.delivery import speak_to
from bot.issuing import Refused
from bot.services import Services
from bot.texts import Texts
from storage.models import Approval, ApprovalStatus, CodeKind, Person, Role


class Carried(StrEnum):
    """What became of a manager's decision, for the one who took it."""

    UNKNOWN = "unknown"
    """No such approval (a stale button, a forged id)."""
    EXPIRED = "expired"
    """Nobody decided in time; it is closed."""
    NOT_NEEDED = "not_needed"
    """Its reason went away before anyone decided (a paid-off plan's payment was reversed)."""
    ALREADY = "already"
    """Someone decided first; ``status`` and ``decider`` say what and who."""
    DECIDED = "decided"
    """This decision won, and was carried out."""


@dataclass(frozen=True)
class Outcome:
    carried: Carried
    approval: Approval | None = None
    device: str = "?"
    decider: str | None = None
    """The name of the manager whose decision stands (None: unnamed, or nobody)."""


async def decide(bot: Bot, services: Services, manager: Person, approval_id: int, approve: bool) -> Outcome:
    """Approve or reject ``approval_id`` as ``manager`` and carry it out: the requester (checked again now) is
    told, and an approved code is queued — to the requester, or to the manager when the requester's role was
    taken away meanwhile. An approved unlock whose queueing failed earlier is queued now, once."""
    assert manager.id is not None
    decision = await services.approvals.decide(approval_id, manager, approve=approve)
    if decision.verdict is Verdict.UNKNOWN or decision.approval is None:
        return Outcome(Carried.UNKNOWN)
    approval = decision.approval
    device = await services.engine.device(approval.device_id)
    device_name = device.label if device else "?"
    if decision.verdict is Verdict.EXPIRED:
        return Outcome(Carried.EXPIRED, approval, device_name)
    decider = decision.decided_by.name if decision.decided_by and decision.decided_by.name else None
    if approval.status is ApprovalStatus.CANCELLED:
        return Outcome(Carried.NOT_NEEDED, approval, device_name, decider)
    if decision.verdict is Verdict.ALREADY:
        if approval.plan_id is not None and approval.status is ApprovalStatus.APPROVED:
            await services.engine.unlock_plan(approval.plan_id, requested_by=manager.id,
                                              chat_id=manager.telegram_id, approval_id=approval.id)
        return Outcome(Carried.ALREADY, approval, device_name, decider)

    async def tell(chat_id: int, words: Callable[[Texts], str]) -> None:
        await speak_to(bot, services.db, chat_id, words, sandbox=services.sandbox)

    requester = decision.requester
    still_staff = requester is not None and requester.active and requester.role in (Role.AGENT, Role.MANAGER)
    code_chat = approval.chat_id if still_staff else manager.telegram_id
    asker = requester.id if still_staff and requester else manager.id
    if still_staff and approval.chat_id is not None:
        await tell(approval.chat_id, lambda t: t.approval_requester_told(approve, decider, device_name))
    if not approve and approval.plan_id is not None:
        await tell(manager.telegram_id, lambda t: t.unlock_rejected(device_name))
    if approve and device is not None:
        if approval.plan_id is not None:  # a plan paid off: its one unlock code
            request_id = await services.engine.unlock_plan(approval.plan_id, requested_by=asker, chat_id=code_chat,
                                                           approval_id=approval.id)
            if request_id is None:
                await tell(manager.telegram_id, lambda t: t.unlock_not_needed(device_name))
            else:
                await services.approvals.record_request(approval.id or 0, request_id)
        else:
            outcome = await services.engine.request(device_name, CodeKind.FREE, requested_by=asker, chat_id=code_chat)
            if isinstance(outcome, Refused):
                refused = outcome
                for chat_id in {code_chat, manager.telegram_id} - {None}:
                    assert chat_id is not None
                    await tell(chat_id, lambda t: t.refused(refused.reason.value, device_name, fits=refused.fits,
                                                            possible_at=refused.possible_at, words=refused.words,
                                                            tz=services.settings.tz))
            else:
                await services.approvals.record_request(approval.id or 0, outcome.request_id)
    return Outcome(Carried.DECIDED, approval, device_name, decider)
