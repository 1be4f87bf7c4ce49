"""A plan paid off, and its one unlock (free) code.

When paid so far reaches the total, the plan is PAID_OFF and its unlock code is either queued at once
(``PAYGBOT_UNLOCK_WHEN_PAID=auto``) or asked of the managers (an approval, Approve / Reject as for
``/free``). Either happens in the caller's transaction, with the plan row locked, and the plan keeps the
approval's and the request's ids: a plan has at most one unlock code, however many times it is asked.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from bot.issuing.quota import Quota
from storage import ledger
from storage.models import Approval, CodeKind, CodeRequest, Device, Person, Plan, PlanStatus, Source, Status

log = logging.getLogger("paygbot.issuing")

PLAN_APPROVAL_LIFETIME = timedelta(days=3650)
"""A paid-off plan's unlock waits for the managers however long they take (an agent's /free expires in a day)."""


class Ownership:
    """Plans paid off: the unlock code queued once, or asked of the managers once."""

    def __init__(self, *, quota: Quota, at_once: bool) -> None:
        self.quota, self.at_once = quota, at_once

    async def paid_off(self, session: ledger.AsyncSession, plan: Plan, device: Device, now: datetime) -> None:
        """Mark ``plan`` paid off and start its unlock: queued now, or an approval for the managers."""
        plan.status, plan.ended_at = PlanStatus.PAID_OFF, now
        session.add(plan)
        await ledger.add_plan_event(session=session, plan=plan, kind="paid_off", at=now)
        if device.unlocked:  # unlocked for good already (a manager's /free): no second unlock code
            return
        agent = await self.agent_of(session, device)
        if self.at_once:
            await self.queue_unlock(session, plan, device, now, requested_by=agent.id if agent else None,
                                    chat_id=agent.telegram_id if agent else None)
            return
        if plan.unlock_approval_id is not None or plan.unlock_request_id is not None:
            return
        assert device.id is not None and plan.id is not None
        approval = await ledger.add_approval(session=session, approval=Approval(
            device_id=device.id, kind=CodeKind.FREE, requested_by_id=agent.id if agent else None,
            chat_id=agent.telegram_id if agent else None, plan_id=plan.id, created_at=now,
            expires_at=now + PLAN_APPROVAL_LIFETIME,
        ))
        plan.unlock_approval_id = approval.id
        log.info("plan %s of device %s paid off: unlock code asked of the managers (approval %s)", plan.id,
                 device.label, approval.id)

    async def queue_unlock(self, session: ledger.AsyncSession, plan: Plan, device: Device, now: datetime, *,
                           requested_by: int | None, chat_id: int | None) -> int | None:
        """Queue the plan's unlock code, once (past the daily limit: on the next local day, like paid days);
        the request's id, or None when the plan is not paid off (a reversal reopened it)."""
        if plan.status is not PlanStatus.PAID_OFF:
            return None
        if plan.unlock_request_id is not None:
            earlier = await ledger.get_request(session=session, request_id=plan.unlock_request_id)
            if earlier is not None and earlier.status not in (Status.REFUSED, Status.FAILED):
                return plan.unlock_request_id
            # the ERM refused it, or it failed: nothing was made, so it may be asked again (still one code)
        assert device.id is not None
        load = await self.quota.load(session, device.id, now)
        not_before = await self.quota.daily_slot(session, device.id, now, load)
        request = await ledger.add_request(session=session, request=CodeRequest(
            device_id=device.id, device_ref=device.label, kind=CodeKind.FREE, source=Source.PLAN,
            requested_by_id=requested_by, chat_id=chat_id, not_before=not_before, created_at=now,
        ))
        plan.unlock_request_id = request.id
        session.add(plan)
        await ledger.add_plan_event(session=session, plan=plan, kind="unlock", at=now, by_id=requested_by)
        log.info("plan %s of device %s: unlock code queued (request %s)", plan.id, device.label, request.id)
        return request.id

    @staticmethod
    async def agent_of(session: ledger.AsyncSession, device: Device) -> Person | None:
        """The agent who looks after the device's customer (who registered them), if still active."""
        if device.customer_id is None:
            return None
        customer = await ledger.get_customer(session=session, customer_id=device.customer_id)
        if customer is None or customer.registered_by_id is None:
            return None
        agent = await ledger.person_by_id(session=session, person_id=customer.registered_by_id)
        return agent if agent is not None and agent.active else None
