"""Writing chosen columns of a row already in the session, without the ORM's flush."""

from __future__ import annotations

import functools
from typing import Any

from sqlalchemy import Update, bindparam, update
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import table_of


@functools.cache
def _update(model: type[SQLModel], names: tuple[str, ...]) -> Update:
    """``UPDATE <table> SET <names> WHERE id = ?``, built once for each table and set of columns."""
    table = table_of(model)
    return update(table).where(table.c.id == bindparam("row_id")).values(
        {name: bindparam(f"v_{name}", type_=table.c[name].type) for name in names})


async def update_row(*, session: AsyncSession, row: SQLModel, **values: Any) -> None:
    """Write ``values`` to these columns of ``row`` (read in this transaction, locked where it must be) in one
    statement, and set them on the object as the ledger now holds them, leaving nothing for a flush to write.
    On the way of every code: the ORM's flush of a device and its request cost about as much as the rest of
    the transaction that records the code."""
    names = tuple(values)
    params = {f"v_{name}": value for name, value in values.items()}
    await session.exec(_update(type(row), names), params={"row_id": row.id, **params})  # type: ignore[call-overload, attr-defined]
    for name, value in values.items():
        set_committed_value(row, name, value)
