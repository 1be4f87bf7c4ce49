"""Schema migrations (Alembic), applied at start and by ``paygbot db upgrade``."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from storage.db import async_url, is_sqlite

MIGRATIONS = Path(__file__).with_name("migrations")
_MIGRATION_LOCK = 0x6D696772  # "migr"


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def _sqlite_file(url: str) -> Path | None:
    database = async_url(url).database
    if is_sqlite(url) and database and database != ":memory:":
        return Path(database).expanduser()
    return None


def _ensure_directory(url: str) -> None:
    """SQLite creates the file but not its folder."""
    path = _sqlite_file(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)


async def upgrade(url: str, revision: str = "head", *, currency: str = "KES", phone_region: str = "KE") -> None:
    """Bring the database at ``url`` to ``revision``. ``currency`` and ``phone_region`` fill in what old
    rows lack (``PAYGBOT_CURRENCY``, ``PAYGBOT_PHONE_REGION``)."""
    _ensure_directory(url)
    engine = create_async_engine(async_url(url))
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_upgrade, revision, {"currency": currency, "phone_region": phone_region})
        if engine.dialect.name == "sqlite":
            # WAL from the start (it stays with the file): switched later, by the bot's first connection, it
            # needs the file to itself, and a writer already at work makes that switch fail at once.
            async with engine.connect() as connection:
                await connection.exec_driver_sql("PRAGMA journal_mode=WAL")
    finally:
        await engine.dispose()


def _upgrade(connection: Connection, revision: str, defaults: dict[str, str]) -> None:
    if connection.dialect.name == "postgresql":  # replicas starting together migrate one after the other
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
    config = alembic_config()
    config.attributes["connection"] = connection
    config.attributes.update(defaults)
    command.upgrade(config, revision)


async def current_revision(url: str) -> str | None:
    """The revision the database is at (None for an empty or missing database)."""
    path = _sqlite_file(url)
    if path is not None and not path.exists():
        return None
    engine = create_async_engine(async_url(url))
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(lambda sync: MigrationContext.configure(sync).get_current_revision())
    finally:
        await engine.dispose()


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()
