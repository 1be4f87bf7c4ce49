"""The ERM client against the sandbox over real HTTP on loopback: every endpoint and every fault."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest

from bot.clock import ManualClock
from bot.erm import codes
from bot.erm.errors import (
    ErmAuthError,
    ErmInvalidResponse,
    ErmOutcomeUnknown,
    ErmRateLimited,
    ErmRefused,
    ErmUnavailable,
)
from bot.erm.rest import RestErm
from bot.standins.erm import ErmSandbox

USER, PASSWORD = "test@example.com", "test1234"


@pytest.fixture
async def client(erm_url: str) -> AsyncIterator[RestErm]:
    async with RestErm(erm_url, USER, PASSWORD, timeout=5) as erm:
        yield erm


async def test_every_endpoint(client: RestErm, erm_sandbox: ErmSandbox, clock: ManualClock) -> None:
    login = await client.login()
    assert login.user_role == "DISTRIBUTOR"
    days = await client.days_code("TEST2503000017", 5)
    assert codes.matches(days.hex, days.code)
    clock.advance(6)
    free = await client.free_code("SELLER2503000042")
    clock.advance(6)
    reset = await client.reset_code(163)  # the legacy integer id of the same device
    page = await client.code_history("64ba2e1eaa6c7f107d7a8918", 0, 10)
    assert page.count == 3 and [event.code_type for event in page.events] == ["RESETCODE", "FREECODE", "DAYSCODE"]
    assert [event.code_dec_string for event in page.events] == [reset.code, free.code, days.code]
    assert [event.code_days for event in page.events] == [2192, 1096, 5]
    meta = await client.history_metadata()
    assert meta.table_name == "codeHistory"
    avatar = await client.avatar("TEST2503000017")
    assert avatar.cmd and avatar.cmd[0].prop
    items = await client.assigned_items(0, 5)
    assert len(items) == 5 and "TEST2503000017" in items[0].ids
    item = await client.item("SELLER2503000042")
    assert item.erm_id == "64ba2e1eaa6c7f107d7a8918"
    assert erm_sandbox.logins == 1


async def test_the_sandbox_refusals_reach_the_caller_in_its_words(client: RestErm, clock: ManualClock) -> None:
    await client.days_code("TEST2503000017", 5)
    with pytest.raises(ErmRateLimited, match="wait"):
        await client.days_code("TEST2503000017", 5)
    with pytest.raises(ErmRefused, match="not found") as caught:
        await client.days_code("NOSUCHDEVICE1", 5)
    assert caught.value.status == 404
    for _ in range(9):
        clock.advance(6)
        await client.days_code("TEST2503000017", 1)
    clock.advance(6)
    with pytest.raises(ErmRateLimited, match="Daily limit"):
        await client.days_code("TEST2503000017", 1)


async def test_bad_credentials(erm_url: str) -> None:
    async with RestErm(erm_url, USER, "wrong-password", timeout=5) as client:
        with pytest.raises(ErmAuthError) as caught:
            await client.code_history("TEST2503000017")
    assert "wrong-password" not in str(caught.value)


async def test_expired_token_logs_in_again(client: RestErm, erm_sandbox: ErmSandbox, clock: ManualClock) -> None:
    await client.code_history("TEST2503000017")
    clock.advance(hours=25)
    await client.days_code("TEST2503000017", 7)
    assert erm_sandbox.logins == 2 and len(erm_sandbox.device("TEST2503000017").codes) == 1


async def test_concurrent_expiry_causes_one_login(client: RestErm, erm_sandbox: ErmSandbox) -> None:
    await client.login()
    erm_sandbox.expire_tokens()
    await asyncio.gather(*(client.code_history(device.ids[0]) for device in erm_sandbox.devices[:8]))
    assert erm_sandbox.logins == 2


async def test_5xx_and_html_pages(client: RestErm, erm_sandbox: ErmSandbox) -> None:
    await client.login()
    erm_sandbox.fail_next(1, status=503)
    with pytest.raises(ErmUnavailable) as caught:
        await client.days_code("TEST2503000017", 5)
    assert caught.value.status == 503
    erm_sandbox.fail_next(1, status=502, body="<html><title>502 Bad Gateway</title><body>nginx</body></html>")
    with pytest.raises(ErmUnavailable, match="502 Bad Gateway"):
        await client.days_code("TEST2503000017", 5)
    erm_sandbox.fail_next(1, status=200, body="<html><title>Maintenance</title></html>")
    with pytest.raises(ErmInvalidResponse, match="not JSON: Maintenance"):
        await client.days_code("TEST2503000017", 5)
    assert erm_sandbox.device("TEST2503000017").codes == []  # nothing committed, and nothing repeated
    assert erm_sandbox.generations == 3


async def test_late_answer_is_outcome_unknown_and_not_repeated(erm_url: str, erm_sandbox: ErmSandbox) -> None:
    erm_sandbox.late_next(1, delay=2)
    async with RestErm(erm_url, USER, PASSWORD, timeout=0.3) as client:
        with pytest.raises(ErmOutcomeUnknown, match="no answer from the ERM within 0.3 s"):
            await client.days_code("TEST2503000017", 5)
        page = await client.code_history("TEST2503000017")
    assert erm_sandbox.generations == 1
    assert page.count == 1 and page.events[0].code_days == 5  # the code was committed: look, do not ask again


async def test_latency_is_added(erm_url: str, erm_sandbox: ErmSandbox) -> None:
    erm_sandbox.latency = 0.2
    async with RestErm(erm_url, USER, PASSWORD, timeout=0.1) as client:
        with pytest.raises(ErmOutcomeUnknown):
            await client.code_history("TEST2503000017")


async def test_no_secret_in_logs(erm_url: str, erm_sandbox: ErmSandbox, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with RestErm(erm_url, USER, PASSWORD, timeout=5) as client:
        await client.days_code("TEST2503000017", 5)
        tokens = list(erm_sandbox._tokens)
        erm_sandbox.expire_tokens()
        await client.code_history("TEST2503000017")
        tokens += list(erm_sandbox._tokens)
    assert len(tokens) == 2
    assert PASSWORD not in caplog.text
    for token in tokens:
        assert token not in caplog.text
    assert "logged in to the ERM as test@example.com" in caplog.text
