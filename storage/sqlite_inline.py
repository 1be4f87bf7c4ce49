"""SQLite on the event loop's own thread: a sync SQLAlchemy session behind the ``AsyncSession`` calls the ledger makes.

Through aiosqlite every statement is about four hops to a thread of its own and back (cursor, execute, fetch,
close), each a wake-up of the event loop and two hand-overs of the GIL. The ledger's transactions are a few
indexed statements of microseconds each, so on a busy morning the hops cost more than SQLite does, and a write
transaction held the single writer for as many loop turns as it had statements. Here a transaction runs from
``BEGIN`` to ``COMMIT`` on the calling thread without giving the loop away; and as nothing in it ever waits, it
runs in SQLAlchemy's sync ``Session`` (:class:`InlineSession`): the asyncio layer (a greenlet per call, an
adapted cursor per statement) cost ~6% of a ``/days`` and bought nothing here.

What that asks of the callers (see :class:`storage.db.Database`): only short transactions (reports over the
whole ledger keep aiosqlite's thread), and one writer connection per process, taken under an ``asyncio.Lock``,
so that a ``BEGIN IMMEDIATE`` here can wait only for another process (``busy_timeout``), never for a
transaction of this loop that cannot go on while the loop waits.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import SessionTransaction
from sqlmodel import Session

from storage import prepared

log = logging.getLogger("paygbot.storage")

CHECKPOINT_EVERY = 50
"""Write transactions between two checkpoints (a ``/days`` writes about ten pages: SQLite's own default of a
checkpoint per 1000 pages comes about as often)."""
WRITER_CHECKPOINT_PAGES = 10_000
"""The writer's own checkpoint (in its commit, on the loop's thread) only past a WAL of this many pages (40 MB): a
checkpoint beside the writer leaves the WAL to be reused only when it catches up between two commits, which
ceaseless writing would never let it do."""


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


def driver_execute(driver: sqlite3.Connection, sql: str, values: Sequence[Any] = ()) -> sqlite3.Cursor:
    """``sql`` straight on SQLite's driver, its error raised as SQLAlchemy's execution would raise it (callers catch
    SQLAlchemy's errors)."""
    try:
        return driver.execute(sql, values)
    except sqlite3.Error as error:
        raise DBAPIError.instance(sql, values or None, error, sqlite3.Error) from error


class HeldSessions:
    """Sessions over connections kept out of the engine's pool between transactions: a session bound to a
    connection in hand skips the pool's checkout and return, a quarter of a one-statement transaction's cost. As
    many are kept idle as the engine's pool holds (its ``pool_size``); a connection is opened when none is idle (a
    reader never waits for another: see :class:`storage.db.Database`). One that a failed rollback left in a
    transaction, or that SQLAlchemy invalidated, goes back to the engine, closed."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.keep: int = engine.pool.size()  # type: ignore[attr-defined]
        self._idle: list[Connection] = []

    @contextmanager
    def session(self) -> Iterator[Session]:
        connection = self._idle.pop() if self._idle else self.engine.connect()
        try:
            with Session(bind=connection, expire_on_commit=False) as session:
                yield session
        finally:
            if connection.invalidated or connection.in_transaction() or len(self._idle) >= self.keep:
                connection.close()
            else:
                self._idle.append(connection)

    def close(self) -> None:
        while self._idle:
            self._idle.pop().close()


class InlineConnection:
    """The calls the ledger makes on ``await session.connection()``, over the session's sync connection."""

    def __init__(self, connection: Connection) -> None:
        self.sync_connection = connection
        self.dialect = connection.dialect

    async def execute(self, statement: Any, *args: Any, **kwargs: Any) -> Any:
        return self.sync_connection.execute(statement, *args, **kwargs)


class _Savepoint:
    """``async with session.begin_nested():`` over the sync session's savepoint."""

    def __init__(self, session: Session) -> None:
        self._session = session
        self._savepoint: SessionTransaction | None = None

    async def __aenter__(self) -> SessionTransaction:
        self._savepoint = self._session.begin_nested()
        return self._savepoint.__enter__()

    async def __aexit__(self, *exc: Any) -> None:
        assert self._savepoint is not None
        self._savepoint.__exit__(*exc)


class InlineSession:
    """The calls the ledger makes on SQLModel's ``AsyncSession``, each done at once on a sync ``Session`` (which
    the write or read it belongs to opens and closes). A call the ledger does not make is not here: using one
    fails at once, in every SQLite test, rather than quietly."""

    def __init__(self, session: Session) -> None:
        self.sync_session = session

    @property
    def bind(self) -> Any:
        return self.sync_session.bind

    def add(self, instance: Any) -> None:
        self.sync_session.add(instance)

    def add_all(self, instances: Iterable[Any]) -> None:
        self.sync_session.add_all(instances)

    async def exec(self, statement: Any, **kwargs: Any) -> Any:
        if prepared.is_prepared(statement):
            return self._run_prepared(statement, kwargs.get("params") or {})
        return self.sync_session.exec(statement, **kwargs)

    def _run_prepared(self, statement: Any, params: dict[str, Any]) -> prepared.Rows:
        """A :func:`storage.prepared.prepared` statement, straight on the driver in the session's transaction,
        after the session's autoflush (as SQLAlchemy does before any statement). Whoever listens for the engine's
        statements (the tests that count them) still hears of it."""
        session = self.sync_session
        if session.autoflush:
            session.flush()  # (nothing to do, at once, when nothing changed)
        connection = session.connection()
        done = prepared.compiled(statement, connection.dialect)
        values = done.values(params)
        for listener in connection.dispatch.before_cursor_execute:
            listener(connection, None, done.sql, values, None, False)
        cursor = driver_execute(connection.connection.driver_connection, done.sql, values)  # type: ignore[arg-type]
        return prepared.Rows(done.rows(cursor.fetchall() if cursor.description else []), cursor.rowcount)

    async def get(self, entity: Any, ident: Any, **kwargs: Any) -> Any:
        return self.sync_session.get(entity, ident, **kwargs)

    async def flush(self) -> None:
        self.sync_session.flush()

    async def delete(self, instance: Any) -> None:
        self.sync_session.delete(instance)

    async def connection(self, **kwargs: Any) -> InlineConnection:
        return InlineConnection(self.sync_session.connection(**kwargs))

    def begin_nested(self) -> _Savepoint:
        return _Savepoint(self.sync_session)
