"""Rows in the session without the ORM's per-statement cost: chosen columns of one written without its flush, and
rows read by Core statements made the session's objects."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, TypeVar, cast

from sqlalchemy import Update, bindparam, inspect, update
from sqlalchemy.orm import Mapper, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import table_of
from storage.prepared import prepared

M = TypeVar("M", bound=SQLModel)


@functools.cache
def _update(model: type[SQLModel], names: tuple[str, ...]) -> Update:
    """``UPDATE <table> SET <names> WHERE id = ?``, built once for each table and set of columns."""
    table = table_of(model)
    return prepared(update(table).where(table.c.id == bindparam("row_id")).values(
        {name: bindparam(f"v_{name}", type_=table.c[name].type) for name in names}))


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


def row_columns(model: type[SQLModel]) -> tuple[Any, ...]:
    """The columns of ``model``'s table, in the order :func:`loaded` takes their values."""
    return tuple(table_of(model).columns)


@functools.cache
def _loading(model: type[SQLModel]) -> tuple[Mapper[Any], tuple[str, ...], int]:
    mapper = inspect(model)
    keys = tuple(column.key for column in row_columns(model))
    (primary_key,) = table_of(model).primary_key.columns
    return mapper, keys, keys.index(primary_key.key)


def loaded(session: AsyncSession, model: type[M], values: Sequence[Any], *, refresh: bool) -> M:
    """The session's object for a row of ``model`` read by a Core statement (its columns first, in
    :func:`row_columns`' order): what the ORM's load of it would give, without the ORM's per-statement cost. The
    object the session holds for that row already, else a new one in the session (persistent: a change to it is
    written at commit, as to any object read through the ORM). ``refresh``: a held object takes the values read
    (the ORM's ``populate_existing``, as for a row locked to be changed); otherwise it is returned as held."""
    mapper, keys, at = _loading(model)
    sync = session.sync_session
    held = sync.identity_map.get(mapper.identity_key_from_primary_key([values[at]]))
    if held is not None:
        if refresh:
            for key, value in zip(keys, values, strict=False):
                set_committed_value(held, key, value)
        return cast(M, held)
    row = mapper.class_manager.new_instance()
    row.__dict__.update(zip(keys, values, strict=False))
    make_transient_to_detached(row)
    sync.add(row)
    return cast(M, row)


async def first_loaded(session: AsyncSession, model: type[M], statement: Any, params: dict[str, Any], *,
                       refresh: bool) -> M | None:
    """The first row of ``statement`` (a Core select of ``model``'s :func:`row_columns`) as the session's object
    (:func:`loaded`), or None when there is none."""
    row = (await session.exec(statement, params=params)).first()
    return None if row is None else loaded(session, model, row, refresh=refresh)
