"""Ledgers for tests: a SQLite file always, and a PostgreSQL database where one is reachable.

``PAYGBOT_TEST_POSTGRESQL_URL`` (for example ``postgresql://postgres@127.0.0.1:5432/test``) names a
server and a database to connect to for administration; every test gets a database of its own there,
made from a template migrated once per test process (``CREATE DATABASE … TEMPLATE``: a few
milliseconds, where migrating takes a second). Unset, or the server unreachable: SQLite only.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import uuid
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any, Protocol

import asyncpg
from sqlalchemy import event
from sqlalchemy.engine import make_url

from storage.db import Database, sync_engine
from storage.migrate import upgrade

VARIABLE = "PAYGBOT_TEST_POSTGRESQL_URL"
_names = itertools.count()


@contextmanager
def statements(db: Database) -> Iterator[list[str]]:
    """The first word of each statement ``db``'s writer runs meanwhile (``SELECT``, ``UPDATE``, …), in order."""
    seen: list[str] = []

    def executed(_connection: object, _cursor: object, sql: str, *_: object) -> None:
        seen.append(sql.split()[0])

    engine = sync_engine(db.writer)
    event.listen(engine, "before_cursor_execute", executed)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", executed)


def postgresql_url() -> str | None:
    """The administration URL from the environment, or None (not set)."""
    return os.environ.get(VARIABLE) or None


@cache
def postgresql_reachable() -> bool:
    url = postgresql_url()
    if url is None:
        return False
    try:
        asyncio.run(_execute(url, "SELECT 1"))
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return False
    return True


def _run(work: Coroutine[Any, Any, None]) -> None:
    """``work`` to its end, also from a test whose event loop is running (in a thread of its own then)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(work)
        return
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, work).result()


def _plain(url: str) -> str:
    """asyncpg takes ``postgresql://`` only (no SQLAlchemy driver name)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _database(url: str, name: str) -> str:
    return make_url(url).set(database=name).render_as_string(hide_password=False)


async def _execute(url: str, *statements: str) -> None:
    connection = await asyncpg.connect(_plain(url), timeout=5)
    try:
        for statement in statements:
            await connection.execute(statement)
    finally:
        await connection.close()


class Ledgers(Protocol):
    """Where a test makes ledgers of its own, of one kind."""

    kind: str

    def new(self, like: str | None = None) -> str:
        """A new ledger's URL: a copy of ``like`` (a ledger of this kind, closed), or of the migrated template."""
        ...

    def drop(self, url: str) -> None: ...


class SqliteLedgers:
    """Files in ``workdir``, copied from a migrated ``template`` file."""

    kind = "sqlite"

    def __init__(self, template: Path, workdir: Path) -> None:
        self.template, self.workdir = template, workdir

    def new(self, like: str | None = None) -> str:
        source = Path(like.removeprefix("sqlite:///")) if like else self.template
        path = self.workdir / f"ledger-{next(_names)}.db"
        for suffix in ("", "-wal"):  # a ledger closed cleanly has no WAL left; copied if it had
            if Path(f"{source}{suffix}").exists():
                shutil.copyfile(f"{source}{suffix}", f"{path}{suffix}")
        return f"sqlite:///{path}"

    def drop(self, url: str) -> None:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{url.removeprefix('sqlite:///')}{suffix}").unlink(missing_ok=True)


class PostgresqlLedgers:
    """One test process's databases on the server at ``admin_url``."""

    kind = "postgresql"

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.prefix = f"paygbot_{uuid.uuid4().hex[:10]}"
        self.template = f"{self.prefix}_template"

    def make_template(self) -> None:
        _run(_execute(self.admin_url, f'CREATE DATABASE "{self.template}"'))
        _run(upgrade(_database(self.admin_url, self.template)))

    def new(self, like: str | None = None) -> str:
        """A new database's URL: a copy of ``like`` (no one connected to it), or of the migrated template."""
        name = f"{self.prefix}_{next(_names)}"
        source = make_url(like).database if like else self.template
        _run(_execute(self.admin_url, f'CREATE DATABASE "{name}" TEMPLATE "{source}"'))
        return _database(self.admin_url, name)

    def empty(self) -> str:
        """A new database with nothing in it (what ``paygbot db upgrade`` starts from)."""
        name = f"{self.prefix}_{next(_names)}"
        _run(_execute(self.admin_url, f'CREATE DATABASE "{name}"'))
        return _database(self.admin_url, name)

    def drop(self, url: str) -> None:
        name = make_url(url).database
        _run(_execute(self.admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    def drop_all(self) -> None:
        """Every database this process made, the template last."""
        _run(self._drop_all())

    async def _drop_all(self) -> None:
        connection = await asyncpg.connect(_plain(self.admin_url), timeout=5)
        try:
            names = [row[0] for row in await connection.fetch(
                "SELECT datname FROM pg_database WHERE datname LIKE $1 ORDER BY datname = $2",
                f"{self.prefix}%", self.template)]
            for name in names:
                await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await connection.close()
