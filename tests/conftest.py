"""Shared fixtures: a clock tests move by hand, and the ERM sandbox served on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bot.clock import ManualClock
from bot.erm.sandbox import ErmSandbox, running


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
