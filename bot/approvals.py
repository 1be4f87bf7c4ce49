"""Decisions on risky codes: a free code asked by an agent waits for a manager.

The first decision wins (a compare-and-set in the ledger); a request nobody decides in
24 hours expires. Every decision is kept: who, when, what.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from bot.clock import Clock
from storage import ledger
from storage.db import Database
from storage.models import Approval, ApprovalStatus, CodeKind, Person

APPROVAL_LIFETIME = timedelta(hours=24)


class Verdict(StrEnum):
    DECIDED = "decided"
    ALREADY = "already"
    EXPIRED = "expired"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    approval: Approval | None = None
    decided_by: Person | None = None
    requester: Person | None = None


class Approvals:
    def __init__(self, db: Database, clock: Clock) -> None:
        self.db, self.clock = db, clock

    async def ask(self, *, device_id: int, kind: CodeKind, requester: Person, chat_id: int) -> Approval:
        now = self.clock.now()
        assert requester.id is not None
        async with self.db.write() as session:
            return await ledger.add_approval(session=session, approval=Approval(
                device_id=device_id, kind=kind, requested_by_id=requester.id, chat_id=chat_id,
                created_at=now, expires_at=now + APPROVAL_LIFETIME,
            ))

    async def decide(self, approval_id: int, manager: Person, approve: bool) -> Decision:
        """Approve or reject, if nobody did first and it has not expired."""
        assert manager.id is not None
        now = self.clock.now()
        status = ApprovalStatus.APPROVED if approve else ApprovalStatus.REJECTED
        async with self.db.write() as session:
            done = await ledger.decide_approval(session=session, approval_id=approval_id, status=status,
                                                decided_by_id=manager.id, now=now)
            approval = await ledger.get_approval(session=session, approval_id=approval_id)
            if approval is None:
                return Decision(Verdict.UNKNOWN)
            requester = None  # a plan paid off by a customer without an agent: nobody asked
            if approval.requested_by_id is not None:
                requester = await ledger.get_person_by_id(session=session, person_id=approval.requested_by_id)
            decider = None
            if approval.decided_by_id is not None:
                decider = await ledger.get_person_by_id(session=session, person_id=approval.decided_by_id)
        if done:
            return Decision(Verdict.DECIDED, approval, decider, requester)
        if approval.status is ApprovalStatus.PENDING or approval.status is ApprovalStatus.EXPIRED:
            return Decision(Verdict.EXPIRED, approval, None, requester)
        return Decision(Verdict.ALREADY, approval, decider, requester)

    async def record_request(self, approval_id: int, request_id: int) -> None:
        async with self.db.write() as session:
            approval = await ledger.get_approval(session=session, approval_id=approval_id)
            assert approval is not None
            approval.code_request_id = request_id
            session.add(approval)

    async def expire(self) -> list[Approval]:
        """Mark every pending approval past its time as expired; returns them."""
        async with self.db.write() as session:
            return list(await ledger.expire_approvals(session=session, now=self.clock.now()))

    async def managers(self) -> list[Person]:
        async with self.db.read() as session:
            return list(await ledger.managers(session=session))
