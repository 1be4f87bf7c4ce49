"""Shared fixtures: a clock tests move by hand, the ERM sandbox on loopback, the ledger, the engine."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.clock import ManualClock
from bot.config import Settings, load_settings
from bot.erm.client import ErmClient
from bot.erm.sandbox import ErmSandbox, running
from bot.issuing import IssuingEngine
from storage.db import Database
from storage.migrate import upgrade

os.environ.setdefault("PTB_TIMEDELTA", "true")  # PTB 22 warns on every RetryAfter without it


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def erm_sandbox(clock: ManualClock) -> ErmSandbox:
    return ErmSandbox(clock=clock)


@pytest.fixture
async def erm_url(erm_sandbox: ErmSandbox) -> AsyncIterator[str]:
    """The sandbox over real HTTP on an ephemeral loopback port."""
    async with running(erm_sandbox) as url:
        yield url


# -- the ledger and the engine ------------------------------------------------------------------


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ledger file with every migration applied, made once per test run and copied per test."""
    path = tmp_path_factory.mktemp("template") / "ledger.db"
    asyncio.run(upgrade(f"sqlite:///{path}"))
    return path


@pytest.fixture
def database_url(tmp_path: Path, migrated_template: Path) -> str:
    path = tmp_path / "ledger.db"
    shutil.copyfile(migrated_template, path)
    return f"sqlite:///{path}"


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    yield database
    await database.dispose()


def make_settings(**values: object) -> Settings:
    """Settings from keyword values named as the environment variables, ignoring any .env."""
    return load_settings(_env_file=None, **values)


@pytest.fixture
def settings() -> Settings:
    return make_settings(ERM_TIMEOUT_SECONDS=2)


@pytest.fixture
async def erm(erm_url: str, settings: Settings) -> AsyncIterator[ErmClient]:
    async with ErmClient(erm_url, "test@example.com", "test1234", timeout=settings.erm_timeout_seconds) as client:
        yield client


@pytest.fixture
async def engine(db: Database, erm: ErmClient, settings: Settings, clock: ManualClock) -> AsyncIterator[IssuingEngine]:
    issuing = IssuingEngine(db=db, erm=erm, settings=settings, clock=clock)
    yield issuing
    await issuing.close()
