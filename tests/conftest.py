"""Shared fixtures: a clock tests move by hand, the ERM sandbox on loopback, the ledger, the engine,
and the whole bot in a chat (``chat``, ``agent``) or paid from outside (``bot``).

Mark a test (or a module, with ``pytestmark``) ``@pytest.mark.agents(AGENT, ...)`` to have those
people made agents in the ``chat`` before it starts; the harness itself is in ``tests/support/``."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from bot.clock import ManualClock
from bot.config import Settings
from bot.erm.backend import Api, ErmBackend
from bot.issuing import IssuingEngine
from bot.standins.erm import ErmSandbox, running
from storage.db import Database
from storage.migrate import upgrade
from storage.models import Role
from tests.support import databases
from tests.support import erm as erm_support
from tests.support.chat import AGENT, Chat, chatting
from tests.support.databases import Ledgers, PostgresqlLedgers, SqliteLedgers
from tests.support.paying import DEVICE, Paying, paying
from tests.support.settings import make_settings

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


@pytest.fixture(scope="session")
def postgresql_ledgers() -> Iterator[PostgresqlLedgers | None]:
    """This test process's PostgreSQL databases (None where no server is reachable: SQLite only)."""
    if not databases.postgresql_reachable():
        yield None
        return
    ledgers = PostgresqlLedgers(databases.postgresql_url() or "")
    ledgers.make_template()
    yield ledgers
    ledgers.drop_all()


def pytest_report_header(config: pytest.Config) -> str:
    if databases.postgresql_reachable():
        return f"ledgers: SQLite and PostgreSQL ({databases.VARIABLE})"
    return f"ledgers: SQLite only ({databases.VARIABLE} {'unreachable' if databases.postgresql_url() else 'not set'})"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every test on a ledger runs on SQLite, and again on PostgreSQL where one is reachable."""
    if "ledger_kind" in metafunc.fixturenames:
        both = databases.postgresql_reachable() and metafunc.definition.get_closest_marker("sqlite_only") is None
        kinds = ["sqlite", "postgresql"] if both else ["sqlite"]
        metafunc.parametrize("ledger_kind", kinds, scope="session")


@pytest.fixture(scope="session")
def ledgers(ledger_kind: str, migrated_template: Path, postgresql_ledgers: PostgresqlLedgers | None,
            tmp_path_factory: pytest.TempPathFactory) -> Ledgers:
    """Where a test makes ledgers of its own on ``ledger_kind`` (the property tests make one per example)."""
    if ledger_kind == "postgresql":
        assert postgresql_ledgers is not None
        return postgresql_ledgers
    return SqliteLedgers(migrated_template, tmp_path_factory.mktemp("ledgers"))


@pytest.fixture
def database_url(ledger_kind: str, ledgers: Ledgers, tmp_path: Path, migrated_template: Path) -> Iterator[str]:
    """A migrated ledger of its own for this test, on ``ledger_kind``."""
    if ledger_kind == "postgresql":
        url = ledgers.new()
        yield url
        ledgers.drop(url)
        return
    path = tmp_path / "ledger.db"
    shutil.copyfile(migrated_template, path)
    yield f"sqlite:///{path}"


@pytest.fixture
def empty_database_url(ledger_kind: str, postgresql_ledgers: PostgresqlLedgers | None, tmp_path: Path) -> Iterator[str]:
    """A database with nothing in it yet, on ``ledger_kind`` (SQLite: a file not made yet, in a new folder)."""
    if ledger_kind == "postgresql":
        assert postgresql_ledgers is not None
        url = postgresql_ledgers.empty()
        yield url
        postgresql_ledgers.drop(url)
        return
    yield f"sqlite:///{tmp_path}/new/ledger.db"


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    yield database
    await database.dispose()


@pytest.fixture
def settings() -> Settings:
    return make_settings(ERM_TIMEOUT_SECONDS=2)


@pytest.fixture(params=erm_support.APIS)
def erm_api(request: pytest.FixtureRequest) -> Api:
    """Each ERM interface in turn: a test that uses ``erm`` (or ``engine``) runs over REST and GraphQL."""
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def erm_paths(erm_api: Api) -> erm_support.ErmPaths:
    """The sandbox paths of each kind of request over ``erm_api``, to inject faults by."""
    return erm_support.PATHS[erm_api]


@pytest.fixture
async def erm(erm_url: str, settings: Settings, erm_api: Api) -> AsyncIterator[ErmBackend]:
    async with erm_support.client(erm_api, erm_url, timeout=settings.erm_timeout_seconds) as client:
        yield client


@pytest.fixture
async def engine(db: Database, erm: ErmBackend, settings: Settings, clock: ManualClock) -> AsyncIterator[IssuingEngine]:
    issuing = IssuingEngine(db=db, erm=erm, settings=settings, clock=clock)
    yield issuing
    await issuing.close()


# -- the whole bot ------------------------------------------------------------------------------


LONG_TESTS = {
    "tests/test_properties.py::test_any_sequence_keeps_the_rules",
    "tests/test_plans_properties.py::test_any_sequence_keeps_the_plan_books",
    "tests/test_crash.py::test_a_killed_worker_loses_nothing_and_issues_nothing_twice",
    "tests/test_security_access.py::test_the_gate_reads_the_command_exactly_as_ptb_does",
    "tests/test_chat_languages.py::test_every_flow_speaks_the_persons_language",
    "tests/test_portfolio_known.py::test_a_known_portfolio_reads_the_same_in_the_chat_the_csv_the_chart_and_the_summary",
}
"""Tests of tens of seconds (--durations shows them): started first, so that the suite's end does not wait
for one of them begun late."""
LAST_TESTS = {"tests/test_replicas.py::test_three_replicas_are_one_bot"}
"""Started last, when the other workers are done or nearly: it counts Telegram's 429s across three bots and
their stand-in, and with four workers' CPU on two cores a starved process's messages bunched into 7 and 13 of
them (two CI runs)."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> tuple[int, bool]:
        name = item.nodeid.split("[")[0]
        place = 0 if name in LONG_TESTS else 2 if name in LAST_TESTS else 1
        return place, place == 0 and "postgresql" not in item.nodeid  # (PostgreSQL's long ones are the longer)

    items.sort(key=rank)  # stable: the rest keep their order


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "agents(*people): the chat fixture makes these people agents first")
    config.addinivalue_line("markers", "sqlite_only: about SQLite itself (its file, its settings): not run on PostgreSQL")
    config.addinivalue_line("markers", "customer(price=None): the bot fixture registers CUSTOMER for DEVICE "
                                       "(and sets its daily price in KES) first")


@pytest.fixture
async def chat(request: pytest.FixtureRequest, erm_sandbox: ErmSandbox, erm_url: str, database_url: str,
               clock: ManualClock) -> AsyncIterator[Chat]:
    """The whole bot in a chat (``tests/support/chat.py``): MANAGER a manager, and the people of
    any ``@pytest.mark.agents(...)`` agents."""
    async with chatting(erm_sandbox, erm_url, database_url, clock) as running_chat:
        for marker in request.node.iter_markers("agents"):
            for person in marker.args:
                await running_chat.make(person, Role.AGENT)
        yield running_chat


@pytest.fixture
async def agent(chat: Chat) -> Chat:
    """The chat, with AGENT an agent."""
    await chat.make(AGENT, Role.AGENT)
    return chat


@pytest.fixture
async def bot(request: pytest.FixtureRequest, erm_sandbox: ErmSandbox, erm_url: str, database_url: str,
              clock: ManualClock) -> AsyncIterator[Paying]:
    """The bot with its payments webhook on a loopback port (``tests/support/paying.py``), AGENT an
    agent; ``@pytest.mark.customer(price=...)`` registers CUSTOMER for DEVICE (at that price) first."""
    async with paying(erm_sandbox, erm_url, database_url, clock) as running_bot:
        if (marker := request.node.get_closest_marker("customer")) is not None:
            await running_bot.customer()
            if (price := marker.kwargs.get("price")) is not None:
                await running_bot.price(DEVICE, price)
        yield running_bot
