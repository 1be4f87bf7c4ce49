"""Statements run straight on SQLite's driver (``storage.prepared``): the same rows and values as SQLAlchemy's
execution of them, the session's objects for the rows they read, SQLAlchemy's errors. On PostgreSQL the same
statements go through SQLAlchemy, and the same tests hold."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import bindparam, inspect, literal, text
from sqlalchemy.dialects import sqlite
from sqlalchemy.exc import IntegrityError, InvalidRequestError
from sqlmodel import select

from storage import ledger
from storage.db import Database
from storage.models import CodeKind, CodeRequest, Device, Status, table_of
from storage.prepared import compiled, prepared
from tests.support.databases import statements

NOW = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)


def _request(device_id: int, key: str) -> CodeRequest:
    return CodeRequest(device_id=device_id, device_ref="P1", kind=CodeKind.DAYS, days=5, chat_id=42,
                       status=Status.QUEUED, not_before=NOW, created_at=NOW, request_key=key,
                       credit_until=NOW + timedelta(days=5), payment_reference=None)


async def test_a_prepared_write_stores_what_the_orms_would(db: Database) -> None:
    """One request inserted by the prepared insert, one by the ORM's flush, from equal objects: the ledger holds
    the same text in every column (enums by name, times as naive UTC, NULLs)."""
    async with db.write() as session:
        device, _ = await ledger.add_device(session=session, ids=["P1"], now=NOW)
        assert device.id is not None
        with statements(db) as ran:
            await ledger.add_request(session=session, request=_request(device.id, "prepared"))
        assert ran == ["INSERT"]
        session.add(_request(device.id, "orm"))
    async with db.read() as session:
        rows = (await session.exec(text("SELECT * FROM code_request ORDER BY id"))).all()  # type: ignore[call-overload]
    by_prepared, by_orm = ({**row._mapping} for row in rows)
    assert by_prepared.pop("request_key") == "prepared" and by_orm.pop("request_key") == "orm"
    assert by_prepared.pop("id") != by_orm.pop("id")
    assert by_prepared == by_orm and by_prepared["status"] == "QUEUED"


async def test_a_prepared_read_gives_what_the_orms_read_gives(db: Database) -> None:
    """A device read by the prepared statement and by an ORM select: equal in every field, with the same types
    (Decimal money, aware UTC times, None)."""
    async with db.write() as session:
        device, _ = await ledger.add_device(session=session, ids=["P2"], now=NOW, label="two")
        assert device.id is not None
        await ledger.update_row(session=session, row=device, daily_price=Decimal("33.50"), currency="KES",
                                credit_until=NOW + timedelta(days=3), unlocked=False)
    async with db.read() as session:
        fast = await ledger.get_device(session=session, device_id=device.id)
    async with db.read() as session:
        orm = (await session.exec(select(Device).where(Device.id == device.id))).one()
    assert fast is not None and fast is not orm
    assert fast.model_dump() == orm.model_dump()
    assert {name: type(value) for name, value in fast.model_dump().items()} == {
        name: type(value) for name, value in orm.model_dump().items()}
    assert fast.daily_price == Decimal("33.50") and fast.credit_until == NOW + timedelta(days=3)
    assert fast.credit_until is not None and fast.credit_until.tzinfo is UTC and fast.customer_id is None


async def test_a_row_read_by_a_prepared_statement_is_the_sessions_object(db: Database) -> None:
    """What the ORM's load would give: the one object the session holds for the row (a change to it flushed before
    the statement, as SQLAlchemy's autoflush does; a locking read refreshes it, a plain one leaves it as it is),
    persistent, so that a change to it is written at commit."""
    async with db.write() as session:
        device, _ = await ledger.add_device(session=session, ids=["P3"], now=NOW, label="before")
        assert device.id is not None
    async with db.write() as session:
        found = await ledger.find_device(session=session, ref="P3")
        assert found is not None and inspect(found).persistent and found.label == "before"
        found.label = "changed"
        assert await ledger.lock_device(session=session, device_id=device.id) is found
        assert found.label == "changed"  # (flushed before the statement, so the locking read's refresh keeps it)
        await session.exec(text("UPDATE device SET label = 'behind its back'"))  # type: ignore[call-overload]
        assert await ledger.find_device(session=session, ref="P3") is found
        assert found.label == "changed"  # (a plain read leaves the held object as it is)
        locked = await ledger.lock_device(session=session, device_id=device.id)
        assert locked is found and found.label == "behind its back"  # (a locking read refreshes it)
        found.label = "after"
    async with db.read() as session:
        again = await ledger.get_device(session=session, device_id=device.id)
    assert again is not None and again.label == "after"


async def test_a_prepared_statement_that_breaks_a_rule_raises_sqlalchemys_error(db: Database) -> None:
    """The callers catch SQLAlchemy's errors: a prepared statement raises them too, and its transaction is
    rolled back."""
    with pytest.raises(IntegrityError):
        async with db.write() as session:
            await ledger.add_request(session=session, request=_request(987654, "no such device"))
    async with db.read() as session:
        assert (await session.exec(text("SELECT count(*) FROM code_request"))).one()[0] == 0  # type: ignore[call-overload]


def test_what_cannot_be_prepared_is_refused() -> None:
    """A statement that loads or writes a model must go through the session (its identity map); a parameter of no
    known type would reach SQLite unconverted (a time in the driver's form, not the ledger's)."""
    with pytest.raises(ValueError, match="ORM statement"):
        prepared(select(Device))
    untyped = prepared(select(table_of(CodeRequest).c.id).where(bindparam("anything") == bindparam("other")))
    with pytest.raises(ValueError, match="needs a type"):
        compiled(untyped, sqlite.dialect())


def test_a_prepared_statements_values_are_sqlalchemys() -> None:
    """Each ``?`` gets the value given for its parameter, converted by its type as SQLAlchemy converts it (an aware
    time to naive UTC text, an enum to its name), else its own (a literal, a default); one with neither is an
    error, not a NULL."""
    requests = table_of(CodeRequest)
    statement = prepared(select(requests.c.id).where(
        requests.c.created_at >= bindparam("since", type_=requests.c.created_at.type),
        requests.c.status == literal(Status.SENDING, type_=requests.c.status.type),
        requests.c.days == bindparam("days", value=7)))
    done = compiled(statement, sqlite.dialect())
    assert done.values({"since": NOW}) == ("2026-12-06 09:00:00.000000", "SENDING", 7)
    assert done.values({"since": NOW, "days": 3})[2] == 3
    with pytest.raises(InvalidRequestError, match="since"):
        done.values({})
    assert compiled(statement, sqlite.dialect()) is done  # (compiled once)
