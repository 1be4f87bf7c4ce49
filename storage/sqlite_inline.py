"""SQLite on the event loop's own thread, behind aiosqlite's interface, for SQLAlchemy's aiosqlite dialect.

aiosqlite runs every call on a thread of its own: each statement is about four hops there and back (cursor,
execute, fetch, close), each a wake-up of the event loop and two hand-overs of the GIL. The ledger's
transactions are a few indexed statements of microseconds each, so on a busy morning the hops cost
more than SQLite does, and a write transaction held the single writer for as many loop turns as it
had statements. Here each call runs at once, on the calling thread; a transaction then runs from
``BEGIN`` to ``COMMIT`` without giving the loop away.

What that asks of the callers (see :class:`storage.db.Database`): only short transactions (reports
over the whole ledger keep aiosqlite's thread), and one writer connection per process, so that a
``BEGIN IMMEDIATE`` here can wait only for another process (``busy_timeout``), never for a transaction
of this loop that cannot go on while the loop waits.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable
from typing import Any


class Cursor:
    """aiosqlite's ``Cursor``, each coroutine done before it is awaited."""

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor

    async def __aenter__(self) -> Cursor:
        return self

    async def __aexit__(self, *_: object) -> None:
        self._cursor.close()

    async def execute(self, sql: str, parameters: Iterable[Any] = ()) -> Cursor:
        self._cursor.execute(sql, parameters)  # type: ignore[arg-type]
        return self

    async def executemany(self, sql: str, parameters: Iterable[Iterable[Any]]) -> Cursor:
        self._cursor.executemany(sql, parameters)  # type: ignore[arg-type]
        return self

    async def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        return self._cursor.fetchmany(size if size is not None else self._cursor.arraysize)

    async def close(self) -> None:
        self._cursor.close()

    @property
    def description(self) -> Any:
        return self._cursor.description

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    @property
    def arraysize(self) -> int:
        return self._cursor.arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._cursor.arraysize = value


class _Now:
    """Stands for aiosqlite's queue to its thread, which SQLAlchemy uses to set ``isolation_level``: the
    function runs at once and its future is resolved."""

    @staticmethod
    def put_nowait(item: tuple[Any, Callable[[], Any]]) -> None:
        future, function = item
        try:
            future.set_result(function())
        except Exception as error:  # noqa: BLE001 - handed to the awaiting caller, as aiosqlite does
            future.set_exception(error)


class Connection:
    """aiosqlite's ``Connection`` over one ``sqlite3`` connection used on the event loop's thread."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._conn = connection
        self._tx = _Now()
        self._closed = False

    @property
    def _connection(self) -> sqlite3.Connection | None:
        """None once closed, as aiosqlite's (SQLAlchemy then skips a commit or rollback)."""
        return None if self._closed else self._conn

    @property
    def isolation_level(self) -> str | None:
        return self._conn.isolation_level

    @isolation_level.setter
    def isolation_level(self, value: str | None) -> None:
        self._conn.isolation_level = value

    def cursor(self) -> Cursor:
        """As aiosqlite's, entered with ``async with`` (as SQLAlchemy does)."""
        return Cursor(self._conn.cursor())

    async def execute(self, sql: str, parameters: Iterable[Any] = ()) -> Cursor:
        return Cursor(self._conn.execute(sql, parameters))  # type: ignore[arg-type]

    async def commit(self) -> None:
        self._conn.commit()

    async def rollback(self) -> None:
        self._conn.rollback()

    async def close(self) -> None:
        self._closed = True
        self._conn.close()

    async def create_function(self, *args: Any, **kwargs: Any) -> None:
        self._conn.create_function(*args, **kwargs)

    def stop(self) -> None:
        self._closed = True
        self._conn.close()


def connector(path: str) -> Callable[[], Any]:
    """``create_async_engine(async_creator=connector(path))``: a new connection to the file at ``path``."""

    async def connect() -> Connection:
        return Connection(sqlite3.connect(path, check_same_thread=False))

    return connect
