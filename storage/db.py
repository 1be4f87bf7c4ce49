"""Engines and sessions.

On SQLite every write transaction starts with ``BEGIN IMMEDIATE`` on a single writer
connection, so a transaction that reads then writes can never be refused half-way with
"database is locked"; readers use their own connections and, in WAL mode, never wait.

The ledger's transactions are a few indexed statements each, microseconds of SQLite: on a file they
run on the event loop's thread, in SQLAlchemy's sync session (:mod:`storage.sqlite_inline`), which costs
less than a hop to a driver thread per statement did. A read over much of the ledger (reports, the portfolio, the
dashboard) uses ``report()``, on aiosqlite's thread, so that it never holds the loop. PostgreSQL is
reached through asyncpg and never blocks the loop.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

from storage import sqlite_inline

BUSY_TIMEOUT_MS = 10_000
_ASYNC_DRIVERS = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg"}


def async_url(url: str) -> URL:
    """``sqlite:///x.db`` -> ``sqlite+aiosqlite:///x.db`` (and asyncpg for PostgreSQL)."""
    parsed = make_url(url)
    driver = _ASYNC_DRIVERS.get(parsed.drivername)
    return parsed.set(drivername=driver) if driver else parsed


def sync_engine(engine: AsyncEngine | Engine) -> Engine:
    """The engine whose events are listened for (an async engine's sync one)."""
    return engine.sync_engine if isinstance(engine, AsyncEngine) else engine


def is_sqlite(url: str | URL) -> bool:
    return make_url(str(url) if isinstance(url, URL) else url).get_backend_name() == "sqlite"


def _sqlite_pragmas(engine: AsyncEngine | Engine, *, immediate: bool, checkpoints: bool = True) -> None:
    @event.listens_for(sync_engine(engine), "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves, below
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        if not checkpoints:  # storage.sqlite_inline.Checkpoints does them, off the loop
            cursor.execute(f"PRAGMA wal_autocheckpoint={sqlite_inline.WRITER_CHECKPOINT_PAGES}")
        cursor.close()

    @event.listens_for(sync_engine(engine), "begin")
    def _begin(connection: Any) -> None:
        statement = "BEGIN IMMEDIATE" if immediate else "BEGIN"
        driver = connection.connection.driver_connection
        if not isinstance(driver, sqlite3.Connection):  # (aiosqlite's)
            connection.exec_driver_sql(statement)
            return
        # Straight to SQLite: through SQLAlchemy's execution (events, a cursor, a result) the BEGIN cost ~150 µs,
        # a third of a one-statement transaction.
        sqlite_inline.driver_execute(driver, statement)


def _inline_engine(target: URL, **options: Any) -> Engine | None:
    """A sync engine whose connections run SQLite on the loop's thread (:mod:`storage.sqlite_inline`), for a file
    (None for a database in memory, or one opened with URL options)."""
    path = target.database
    if not path or path == ":memory:" or target.query:
        return None

    def connect() -> sqlite3.Connection:
        return sqlite3.connect(path, check_same_thread=False)

    return create_engine(target.set(drivername="sqlite"), creator=connect, pool_reset_on_return=None, **options)


class Database:
    """The ledger's connections: ``write()`` and ``read()`` give one transaction each."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        target = async_url(url)
        self._inline_writes: sqlite_inline.HeldSessions | None = None
        self._inline_reads: sqlite_inline.HeldSessions | None = None
        self._write_lock = asyncio.Lock()  # (inline: for the one writer connection, without blocking the loop)
        if is_sqlite(target):
            # No rollback when a connection goes back to the pool: the session has ended its transaction
            # already (a call less per transaction). Inline, readers are as many as read at once (four kept) and
            # never waited for: a sync pool that ran out would block the loop.
            writer = _inline_engine(target, echo=echo, pool_size=1, max_overflow=0)
            reader = _inline_engine(target, echo=echo, pool_size=4, max_overflow=-1)
            if writer is not None and reader is not None:
                self.writer: AsyncEngine | Engine = writer
                self.reader: AsyncEngine | Engine = reader
                self._inline_writes = sqlite_inline.HeldSessions(writer)
                self._inline_reads = sqlite_inline.HeldSessions(reader)
            else:
                self.writer = create_async_engine(target, echo=echo, pool_size=1, max_overflow=0, pool_timeout=60,
                                                  pool_reset_on_return=None)
                self.reader = create_async_engine(target, echo=echo, pool_size=4, max_overflow=4,
                                                  pool_reset_on_return=None)
            self.reporter = create_async_engine(target, echo=echo, pool_size=2, max_overflow=2,
                                                pool_reset_on_return=None)
            inline = writer is not None
            self._checkpoints = sqlite_inline.Checkpoints(target.database or "") if inline else None
            _sqlite_pragmas(self.writer, immediate=True, checkpoints=not inline)
            _sqlite_pragmas(self.reader, immediate=False)
            _sqlite_pragmas(self.reporter, immediate=False)
        else:
            # No ping before each use (a round trip, ~1 ms of every transaction): a connection the server
            # dropped fails its one transaction, which is retried as any failure is, and SQLAlchemy then
            # replaces the whole pool.
            self.writer = self.reader = self.reporter = create_async_engine(target, echo=echo, pool_recycle=1800)
            self._checkpoints = None
        if isinstance(self.writer, AsyncEngine) and isinstance(self.reader, AsyncEngine):
            self._write_sessions = async_sessionmaker(self.writer, class_=AsyncSession, expire_on_commit=False)
            self._read_sessions = async_sessionmaker(self.reader, class_=AsyncSession, expire_on_commit=False)
        self._report_sessions = async_sessionmaker(self.reporter, class_=AsyncSession, expire_on_commit=False)

    @property
    def holds_the_loop(self) -> bool:
        """Transactions run on the event loop's thread without giving it up (SQLite on a file): a caller that
        has many to do gives the loop a turn between them."""
        return self._inline_writes is not None

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        """One write transaction: committed on success, rolled back on any exception."""
        if self._inline_writes is None:
            async with self._write_sessions() as session, session.begin():
                yield session
            return
        async with self._write_lock:
            with self._inline_writes.session() as sync_session, sync_session.begin():
                yield sqlite_inline.InlineSession(sync_session)  # type: ignore[misc]
        assert self._checkpoints is not None
        self._checkpoints.written()

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """One read-only transaction over a consistent snapshot (rolled back when closed)."""
        if self._inline_reads is None:
            async with self._read_sessions() as session:
                yield session
            return
        with self._inline_reads.session() as sync_session:
            yield sqlite_inline.InlineSession(sync_session)  # type: ignore[misc]

    @asynccontextmanager
    async def report(self) -> AsyncIterator[AsyncSession]:
        """As :meth:`read`, for a read over much of the ledger: on SQLite it runs on a driver thread, so that
        the loop goes on with the chats meanwhile."""
        async with self._report_sessions() as session:
            yield session

    async def dispose(self) -> None:
        if self._checkpoints is not None:
            await self._checkpoints.close()
        for held in (self._inline_writes, self._inline_reads):
            if held is not None:
                held.close()
        for engine in {id(e): e for e in (self.writer, self.reader, self.reporter)}.values():
            if isinstance(engine, AsyncEngine):
                await engine.dispose()
            else:
                engine.dispose()
