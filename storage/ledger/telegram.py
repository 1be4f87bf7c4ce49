"""Telegram's side of the ledger: each update id the webhook received, kept once for a while, and each
person's chat state between two updates."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import ChatState, TelegramUpdate


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


async def chat_state(*, session: AsyncSession, user_id: int) -> str | None:
    """The person's chat state as kept (JSON), or None."""
    return (await session.exec(select(ChatState.data).where(ChatState.user_id == user_id))).first()


async def keep_chat_state(*, session: AsyncSession, user_id: int, data: str | None, now: datetime) -> None:
    """Keep the person's chat state (None: nothing to keep; the row goes)."""
    connection = await session.connection()
    if data is None:
        await connection.execute(delete(ChatState).where(col(ChatState.user_id) == user_id))
        return
    insert = postgresql_insert if connection.dialect.name == "postgresql" else sqlite_insert
    statement = insert(ChatState).values(user_id=user_id, data=data, updated_at=now)
    await connection.execute(statement.on_conflict_do_update(
        index_elements=["user_id"], set_={"data": statement.excluded.data, "updated_at": statement.excluded.updated_at}))
