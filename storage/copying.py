"""``paygbot db copy``: a SQLite ledger into an empty PostgreSQL database, when one machine is no longer enough.

The target gets its tables from the migrations (so it is at the same revision, with PostgreSQL's own types,
indexes and constraints), then every row, table by table in foreign-key order, read in one read transaction
of the source (a consistent moment, also while a bot writes) and written in one transaction of the target:
a failed copy leaves the target as empty as it was. Rows go through the models' column types, so money stays
exact text and times UTC. PostgreSQL's id sequences are then moved past the copied ids.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Integer, Table, func, inspect, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from sqlmodel import SQLModel

import storage.models  # noqa: F401  (registers the tables on SQLModel.metadata)
from storage.db import Database, async_url, is_sqlite
from storage.migrate import current_revision, head_revision, upgrade

BATCH = 1_000


class CopyRefused(Exception):
    """Nothing was copied: ``reason`` (a key of ``cli_texts``' sentences) and ``detail``."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(reason, detail)
        self.reason, self.detail = reason, detail


@dataclass(frozen=True)
class Copied:
    tables: int
    rows: int
    revision: str | None


def _where(url: str) -> str:
    """The target named without its password (it appears in messages)."""
    return make_url(url).render_as_string(hide_password=True)


async def copy_ledger(source: str, target: str) -> Copied:
    """Copy the SQLite ledger at ``source`` into the empty PostgreSQL database at ``target``."""
    if not is_sqlite(source):
        raise CopyRefused("source_not_sqlite")
    if make_url(target).get_backend_name() != "postgresql":
        raise CopyRefused("target_not_postgresql")
    revision = await current_revision(source)
    if revision is None:
        raise CopyRefused("no_source")
    if revision != head_revision():
        raise CopyRefused("source_behind", revision)
    try:
        if await _tables(target):
            raise CopyRefused("target_not_empty", _where(target))
        await upgrade(target)
        ledger = Database(source)  # its reporter: WAL, a real BEGIN (every table read at one moment), off the loop
        writer = create_async_engine(async_url(target))
        try:
            async with ledger.reporter.connect() as read, read.begin(), writer.begin() as write:
                rows = 0
                for table in SQLModel.metadata.sorted_tables:
                    rows += await _copy_table(read, write, table)
                await _move_sequences(write)
        finally:
            await ledger.dispose()
            await writer.dispose()
    except CopyRefused:
        raise
    except (OSError, SQLAlchemyError) as exc:
        raise CopyRefused("failed", f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}") from None
    return Copied(len(SQLModel.metadata.sorted_tables), rows, revision)


async def _tables(url: str) -> list[str]:
    engine = create_async_engine(async_url(url))
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(lambda sync: inspect(sync).get_table_names())
    finally:
        await engine.dispose()


async def _copy_table(read: AsyncConnection, write: AsyncConnection, table: Table) -> int:
    copied = 0
    result = await read.stream(select(table).order_by(*table.primary_key.columns))
    async for batch in result.mappings().partitions(BATCH):
        await write.execute(table.insert(), [dict(row) for row in batch])
        copied += len(batch)
    return copied


async def _move_sequences(write: AsyncConnection) -> None:
    """Each id sequence past the largest id copied (inserted ids do not move it)."""
    for table in SQLModel.metadata.sorted_tables:
        keys = list(table.primary_key.columns)
        if len(keys) != 1 or not isinstance(keys[0].type, Integer) or keys[0].autoincrement is False:
            continue
        sequence = (await write.execute(text("SELECT pg_get_serial_sequence(:table, :column)"),
                                        {"table": table.name, "column": keys[0].name})).scalar()
        if sequence is None:
            continue
        largest = (await write.execute(select(func.max(keys[0])))).scalar()
        if largest is not None:
            await write.execute(text("SELECT setval(:sequence, :value)"), {"sequence": sequence, "value": largest})
