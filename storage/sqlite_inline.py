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

import asyncio
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterable
from typing import Any

log = logging.getLogger("paygbot.storage")

CHECKPOINT_EVERY = 50
"""Write transactions between two checkpoints (a ``/days`` writes about ten pages: SQLite's own default of a
checkpoint per 1000 pages comes about as often)."""
WRITER_CHECKPOINT_PAGES = 10_000
"""The writer's own checkpoint (in its commit, on the loop's thread) only past a WAL of this many pages (40 MB): a
checkpoint beside the writer leaves the WAL to be reused only when it catches up between two commits, which
ceaseless writing would never let it do."""


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

    def begin(self, statement: str) -> None:
        """``BEGIN`` (or ``BEGIN IMMEDIATE``) at once, without a cursor of SQLAlchemy's."""
        self._conn.execute(statement)

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


class Checkpoints:
    """Copies the WAL into the database file on a thread of its own, every :data:`CHECKPOINT_EVERY` write
    transactions. A checkpoint ends in an fsync of a few milliseconds; left to SQLite, it runs inside the commit
    that filled the WAL, on the event loop's thread, and holds every chat meanwhile. The writer's connections are
    opened with a ``wal_autocheckpoint`` of :data:`WRITER_CHECKPOINT_PAGES`; ``sqlite3`` lets the GIL go while
    SQLite works, so the loop goes on."""

    def __init__(self, path: str, every: int = CHECKPOINT_EVERY) -> None:
        self.path, self.every = path, every
        self._writes = 0
        self._running: asyncio.Future[None] | None = None
        self._connection: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def written(self) -> None:
        """A write transaction was committed; start a checkpoint when it is time and none is under way."""
        self._writes += 1
        if self._writes < self.every or (self._running is not None and not self._running.done()):
            return
        self._writes = 0
        self._running = asyncio.get_running_loop().run_in_executor(None, self._checkpoint)

    def _checkpoint(self) -> None:
        """PASSIVE: copies what no reader still needs, never waits for a reader or the writer."""
        with self._lock:
            try:
                if self._connection is None:
                    self._connection = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
                self._connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            except sqlite3.Error as exc:  # the next one tries again; meanwhile the WAL only grows a little
                log.warning("WAL checkpoint failed: %s", exc)

    async def close(self) -> None:
        """Wait for a checkpoint under way, then close its connection."""
        if self._running is not None:
            await self._running
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None
