"""What the managers' dashboard reads of the ledger: devices a page at a time (searched and filtered in SQL,
so 100,000 of them stay fast), one device's story, the payments and approvals waiting for a manager.
Each read is one transaction (:mod:`storage.ledger.dashboard` holds the queries)."""

from __future__ import annotations

from datetime import datetime

from storage import ledger
from storage.db import Database
from storage.ledger.dashboard import DeviceRow, DeviceStory, Waiting
from storage.models import Payment

PAGE = 50
SHOWS = ("all", "ending", "past_due")

__all__ = ["PAGE", "SHOWS", "DeviceRow", "DeviceStory", "Waiting", "devices", "device_story", "kept_payments",
           "waiting_approvals"]


async def devices(db: Database, *, now: datetime, text: str | None = None, phone: str | None = None,
                  show: str = "all", agent_id: int | None = None, page: int = 1) -> tuple[list[DeviceRow], int]:
    """One page (``PAGE`` rows, from 1) of the devices that match, and how many match in all."""
    async with db.report() as session:
        return await ledger.dashboard.device_list(session=session, text=text, phone=phone, show=show, now=now,
                                                  agent_id=agent_id, offset=(page - 1) * PAGE, limit=PAGE)


async def device_story(db: Database, device_id: int) -> DeviceStory | None:
    async with db.report() as session:
        return await ledger.dashboard.device_story(session=session, device_id=device_id)


async def kept_payments(db: Database, page: int = 1) -> tuple[list[Payment], int]:
    async with db.report() as session:
        return await ledger.dashboard.kept_payments(session=session, offset=(page - 1) * PAGE, limit=PAGE)


async def waiting_approvals(db: Database, now: datetime) -> list[Waiting]:
    async with db.report() as session:
        return await ledger.dashboard.waiting_approvals(session=session, now=now)
