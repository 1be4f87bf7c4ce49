"""Telegram's updates as the webhook receives them: each update id kept once, for a while."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import TelegramUpdate


async def first_delivery(*, session: AsyncSession, update_id: int, now: datetime) -> bool:
    """Keep ``update_id``: True the first time, False for a copy (also one kept at this moment by another
    replica: the insert waits for its transaction, then finds the row)."""
    connection = await session.connection()
    insert = postgresql_insert if connection.dialect.name == "postgresql" else sqlite_insert
    result = await connection.execute(
        insert(TelegramUpdate).values(update_id=update_id, received_at=now)
        .on_conflict_do_nothing(index_elements=["update_id"]))
    return bool(result.rowcount == 1)


async def forget_deliveries(*, session: AsyncSession, before: datetime) -> int:
    """Forget the update ids received before ``before`` (Telegram stops sending an update after a day)."""
    result = await session.exec(delete(TelegramUpdate).where(col(TelegramUpdate.received_at) < before))  # type: ignore[call-overload]
    return int(result.rowcount or 0)
