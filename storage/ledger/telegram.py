"""Telegram's side of the ledger: each update id the webhook received (held by the process handling it, then
kept as handled for a while), each person's chat state between two updates, and the messages' pace shared by
every process."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from enum import StrEnum

from sqlalchemy import bindparam, delete, literal, text, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.ledger.rows import loaded, row_columns
from storage.models import ChatMenu, ChatState, Person, SendPace, TelegramUpdate, table_of
from storage.prepared import prepared


class Delivery(StrEnum):
    """What to do with an update Telegram POSTed (:func:`take_update`)."""

    HANDLE = "handle"
    """Ours to handle: new, or its first handler died (its hold ran out)."""
    DONE = "done"
    """Handled already: a copy."""
    BUSY = "busy"
    """Another process is handling it now: Telegram should send it again later."""


async def take_update(*, session: AsyncSession, update_id: int, now: datetime, hold: datetime) -> Delivery:
    """Take ``update_id`` to handle until ``hold`` — unless it was handled, or another process holds it (the
    insert of a copy arriving at this moment waits for that process's transaction, then finds its row)."""
    connection = await session.connection()
    insert = postgresql_insert if connection.dialect.name == "postgresql" else sqlite_insert
    result = await connection.execute(
        insert(TelegramUpdate).values(update_id=update_id, received_at=now, held_until=hold)
        .on_conflict_do_nothing(index_elements=["update_id"]))
    if result.rowcount == 1:
        return Delivery.HANDLE
    taken = await connection.execute(
        update(TelegramUpdate)
        .where(col(TelegramUpdate.update_id) == update_id, col(TelegramUpdate.done_at).is_(None),
               col(TelegramUpdate.held_until) <= now)
        .values(held_until=hold))
    if taken.rowcount == 1:
        return Delivery.HANDLE
    done = (await connection.execute(select(TelegramUpdate.done_at).where(
        col(TelegramUpdate.update_id) == update_id))).scalar()
    return Delivery.DONE if done is not None else Delivery.BUSY


async def update_done(*, session: AsyncSession, update_id: int, now: datetime) -> None:
    await session.exec(update(TelegramUpdate).where(col(TelegramUpdate.update_id) == update_id)  # type: ignore[call-overload]
                       .values(done_at=now))


async def forget_deliveries(*, session: AsyncSession, before: datetime) -> int:
    """Forget the update ids received before ``before`` (Telegram stops sending an update after a day)."""
    result = await session.exec(delete(TelegramUpdate).where(col(TelegramUpdate.received_at) < before))  # type: ignore[call-overload]
    return int(result.rowcount or 0)


_CHAT_STATES = table_of(ChatState)
_CHAT_STATE = select(_CHAT_STATES.c.data).where(_CHAT_STATES.c.user_id == bindparam("user_id"))


async def chat_state(*, session: AsyncSession, user_id: int) -> str | None:
    """The person's chat state as kept (JSON), or None."""
    return (await session.exec(_CHAT_STATE, params={"user_id": user_id})).first()  # type: ignore[call-overload]


_PERSONS = table_of(Person)
_PERSON_AND_CHAT_STATE = prepared(
    select(*row_columns(Person), _CHAT_STATE.scalar_subquery())
    .select_from(select(literal(1).label("one")).subquery())
    .outerjoin(_PERSONS, _PERSONS.c.telegram_id == bindparam("user_id"))
)
"""One row whether or not either is there: the person (all None, an outer join's empty side), and the state."""
_PERSON_ID = [column.key for column in row_columns(Person)].index("id")


async def person_and_chat_state(*, session: AsyncSession, user_id: int) -> tuple[Person | None, str | None]:
    """The person of Telegram user ``user_id`` (None if not one), and their chat state as kept (JSON, or None):
    one statement, as every update starts with both."""
    row = (await session.exec(_PERSON_AND_CHAT_STATE, params={"user_id": user_id})).one()  # type: ignore[call-overload]
    person = None if row[_PERSON_ID] is None else loaded(session, Person, row[:-1], refresh=False)
    return person, row[-1]


async def keep_chat_state(*, session: AsyncSession, user_id: int, data: str | None, now: datetime) -> None:
    """Keep the person's chat state (None: nothing to keep; the row goes)."""
    if data is None:
        await (await session.connection()).execute(delete(ChatState).where(col(ChatState.user_id) == user_id))
        return
    await _upsert(session, ChatState, "user_id", {"user_id": user_id, "data": data, "updated_at": now})


async def _upsert(session: AsyncSession, model: type[SQLModel], key: str, values: dict[str, object]) -> None:
    """Insert the row, or set these values on the one with its ``key`` (one statement, safe when two writers
    race; in each dialect's words)."""
    connection = await session.connection()
    insert = postgresql_insert if connection.dialect.name == "postgresql" else sqlite_insert
    statement = insert(model).values(**values)
    await connection.execute(statement.on_conflict_do_update(
        index_elements=[key], set_={name: statement.excluded[name] for name in values if name != key}))


async def take_send_slot(*, session: AsyncSession, scope: str, interval: float, not_before: datetime | None = None
                         ) -> tuple[datetime, datetime]:
    """Reserve the next message slot of ``scope``, ``interval`` seconds after the last one reserved (and not
    before ``not_before``): returns the slot and the database's clock now, so that every process waits by one
    clock. PostgreSQL only (one process on SQLite keeps its limits in memory)."""
    now_utc = "(clock_timestamp() AT TIME ZONE 'UTC')"  # the column holds naive UTC, as every time in the ledger
    query = text(
        f"INSERT INTO send_pace (scope, tat) VALUES (:scope, GREATEST({now_utc}, :floor) + :step) "
        f"ON CONFLICT (scope) DO UPDATE SET tat = GREATEST(send_pace.tat, {now_utc}, :floor) + :step "
        f"RETURNING tat - :step, {now_utc}"
    ).bindparams(scope=scope, floor=(not_before or datetime(1970, 1, 1, tzinfo=UTC)).astimezone(UTC).replace(tzinfo=None),
                 step=timedelta(seconds=interval))
    slot, now = (await session.exec(query)).one()  # type: ignore[call-overload]
    return _aware(slot), _aware(now)


async def hold_send_pace(*, session: AsyncSession, scope: str) -> tuple[datetime | None, datetime]:
    """Lock ``scope``'s pace row for this transaction (made if new) and return its time (None: never used)
    and the database's clock now. PostgreSQL only, as :func:`take_send_slot`."""
    await session.exec(text("INSERT INTO send_pace (scope, tat) VALUES (:scope, '1970-01-01') "  # type: ignore[call-overload]
                            "ON CONFLICT (scope) DO NOTHING").bindparams(scope=scope))
    tat, now = (await session.exec(text(  # type: ignore[call-overload]
        "SELECT tat, (clock_timestamp() AT TIME ZONE 'UTC') FROM send_pace WHERE scope = :scope FOR UPDATE"
    ).bindparams(scope=scope))).one()
    held = _aware(tat)
    return (None if held.year == 1970 else held), _aware(now)


async def set_send_pace(*, session: AsyncSession, scope: str, tat: datetime) -> None:
    await session.exec(update(SendPace).where(col(SendPace.scope) == scope).values(tat=tat))  # type: ignore[call-overload]


async def forget_send_slots(*, session: AsyncSession, before: datetime) -> None:
    """Chats' slots long past (a chat's row is needed only while its messages are close together)."""
    await session.exec(delete(SendPace).where(col(SendPace.tat) < before, col(SendPace.scope) != "bot"))  # type: ignore[call-overload]


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


async def menu_fingerprints(*, session: AsyncSession) -> dict[int, str]:
    """Every chat's registered menu fingerprint."""
    rows = (await session.exec(select(ChatMenu.chat_id, ChatMenu.fingerprint))).all()
    return dict(rows)


async def keep_menu_fingerprint(*, session: AsyncSession, chat_id: int, fingerprint: str, now: datetime) -> None:
    """The chat's menu was registered as ``fingerprint`` (made or replaced; an upsert, since two processes, or
    a restart's registration and a new person's, may keep the same chat's at once)."""
    await _upsert(session, ChatMenu, "chat_id", {"chat_id": chat_id, "fingerprint": fingerprint, "registered_at": now})
