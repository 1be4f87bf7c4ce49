"""One contract, both ERM interfaces: every test runs against the sandbox over REST and over GraphQL
(real HTTP on loopback) and expects the same answers and the same typed failures."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest

from bot.clock import ManualClock
from bot.erm import codes
from bot.erm.backend import Api, ErmBackend
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
from tests.support import erm as erm_support
from tests.support.erm import PASSWORD, ErmPaths

DEVICE = "TEST2503000017"
SELLER_ID, ERM_ID, LEGACY_ID = "SELLER2503000042", "64ba2e1eaa6c7f107d7a8918", 163


@pytest.fixture
async def client(erm: ErmBackend) -> ErmBackend:
    return erm


async def test_codes_by_any_id_and_their_history(client: ErmBackend, erm_sandbox: ErmSandbox,
                                                 clock: ManualClock) -> None:
    login = await client.login()
    assert login.access_token and login.access_token in erm_sandbox._tokens
    days = await client.days_code(DEVICE, 5)
    assert codes.matches(days.hex, days.code)
    clock.advance(6)
    free = await client.free_code(SELLER_ID)
    clock.advance(6)
    reset = await client.reset_code(LEGACY_ID)  # the legacy integer id of the same device
    page = await client.code_history(ERM_ID, 0, 10)
    assert page.count == 3 and [event.code_type for event in page.events] == ["RESETCODE", "FREECODE", "DAYSCODE"]
    assert [event.code_dec_string for event in page.events] == [reset.code, free.code, days.code]
    assert [event.code_days for event in page.events] == [2192, 1096, 5]
    assert [event.code_number for event in page.events] == [3, 2, 1]
    second = await client.code_history(DEVICE, 1, 1)
    assert second.count == 3 and second.has_next_page and [e.code_number for e in second.events] == [2]
    last = await client.code_history(DEVICE, 2, 5)
    assert not last.has_next_page and [e.code_number for e in last.events] == [1]
    assert erm_sandbox.logins == 1 and erm_sandbox.generations == 3


async def test_refusals_reach_the_caller_in_the_erms_words(client: ErmBackend, erm_sandbox: ErmSandbox,
                                                           clock: ManualClock) -> None:
    await client.days_code(DEVICE, 5)
    with pytest.raises(ErmRateLimited, match="wait 6 seconds"):
        await client.days_code(DEVICE, 5)
    with pytest.raises(ErmRefused, match="not found") as caught:
        await client.days_code("NOSUCHDEVICE1", 5)
    assert caught.value.status == 404 and not isinstance(caught.value, ErmOutcomeUnknown)
    for _ in range(9):
        clock.advance(6)
        await client.days_code(DEVICE, 1)
    clock.advance(6)
    with pytest.raises(ErmRateLimited, match="Daily limit"):
        await client.days_code(DEVICE, 1)
    with pytest.raises(ValueError, match="1 to 1095"):
        await client.days_code(DEVICE, 1096)  # refused before anything is sent
    assert len(erm_sandbox.device(DEVICE).codes) == 10


async def test_bad_credentials(erm_url: str, erm_api: Api) -> None:
    async with erm_support.client(erm_api, erm_url, password="wrong-password") as client:
        with pytest.raises(ErmAuthError) as caught:
            await client.code_history(DEVICE)
    assert "wrong-password" not in str(caught.value)


async def test_expired_token_signs_in_again(client: ErmBackend, erm_sandbox: ErmSandbox, clock: ManualClock) -> None:
    await client.code_history(DEVICE)
    clock.advance(hours=25)
    await client.days_code(DEVICE, 7)
    assert erm_sandbox.logins == 2 and len(erm_sandbox.device(DEVICE).codes) == 1  # refused, then made once


async def test_concurrent_expiry_causes_one_sign_in(client: ErmBackend, erm_sandbox: ErmSandbox) -> None:
    await client.login()
    erm_sandbox.expire_tokens()
    await asyncio.gather(*(client.code_history(device.erm_id) for device in erm_sandbox.devices[:8]))
    assert erm_sandbox.logins == 2


async def test_5xx_and_html_pages(client: ErmBackend, erm_sandbox: ErmSandbox,
                                                erm_paths: ErmPaths) -> None:
    await client.login()
    erm_sandbox.fail_next(1, status=503, paths=erm_paths.days)
    with pytest.raises(ErmUnavailable) as caught:
        await client.days_code(DEVICE, 5)
    assert caught.value.status == 503
    erm_sandbox.fail_next(1, status=502, body="<html><title>502 Bad Gateway</title><body>nginx</body></html>",
                          paths=erm_paths.days)
    with pytest.raises(ErmOutcomeUnknown, match="502 Bad Gateway"):  # a gateway may fail after the code was made
        await client.days_code(DEVICE, 5)
    erm_sandbox.fail_next(1, status=200, body="<html><title>Maintenance</title></html>", paths=erm_paths.days)
    with pytest.raises(ErmInvalidResponse, match="not JSON: Maintenance"):
        await client.days_code(DEVICE, 5)
    assert erm_sandbox.device(DEVICE).codes == []  # nothing committed, and nothing repeated
    assert erm_sandbox.generations == 3


async def test_a_lost_answer_is_outcome_unknown_and_the_history_settles_it(
    erm_url: str, erm_sandbox: ErmSandbox, erm_api: Api
) -> None:
    erm_sandbox.late_next(1, delay=2)
    async with erm_support.client(erm_api, erm_url, timeout=0.3) as client:
        await client.login()
        with pytest.raises(ErmOutcomeUnknown, match="no answer from the ERM within 0.3 s"):
            await client.days_code(DEVICE, 5)
        page = await client.code_history(DEVICE)
    assert erm_sandbox.generations == 1
    assert page.count == 1 and page.events[0].code_days == 5  # the code was committed: look, do not ask again


async def test_a_code_made_over_one_interface_is_in_the_others_history(
    erm_url: str, erm_sandbox: ErmSandbox, clock: ManualClock
) -> None:
    async with erm_support.client("rest", erm_url) as rest, erm_support.client("graphql", erm_url) as graph:
        over_rest = await rest.days_code(DEVICE, 3)
        clock.advance(5)
        with pytest.raises(ErmRateLimited):  # one device, one pacing, whichever interface asks
            await graph.days_code(SELLER_ID, 3)
        clock.advance(1)
        over_graph = await graph.days_code(SELLER_ID, 4)
        seen_by_graph = await graph.code_history(DEVICE)
        seen_by_rest = await rest.code_history(DEVICE)
    expected = [over_graph.hex, over_rest.hex]
    assert [event.code_hex_string for event in seen_by_graph.events] == expected
    assert [event.code_hex_string for event in seen_by_rest.events] == expected


async def test_every_item_walked_page_by_page(client: ErmBackend, erm_sandbox: ErmSandbox) -> None:
    pages = [page async for page in client.items(page_size=20)]
    items = [item for page in pages for item in page]
    assert [len(page) for page in pages][:2] == [20, 20] and len(items) == len(erm_sandbox.devices) == 50
    assert sorted(item.erm_id or "" for item in items) == sorted(device.erm_id for device in erm_sandbox.devices)
    first = next(item for item in items if item.oem_item_id == DEVICE)
    assert set(first.ids) >= {ERM_ID, DEVICE, SELLER_ID, str(LEGACY_ID)}
    assert first.description == erm_sandbox.device(DEVICE).name and first.life_cycle


async def test_one_item_by_any_id_and_a_search(client: ErmBackend) -> None:
    for ref in (DEVICE, SELLER_ID, ERM_ID):
        item = await client.item(ref)
        assert (item.erm_id, item.oem_item_id, item.seller_item_id) == (ERM_ID, DEVICE, SELLER_ID)
    with pytest.raises(ErmRefused, match="not found"):
        await client.item("NOSUCHDEVICE1")
    found = [item async for page in client.items(search="sbx0000000004") for item in page]
    assert sorted(item.oem_item_id or "" for item in found) == [f"SBX0000000004{n}" for n in range(9)]


async def test_no_secret_in_logs(erm_url: str, erm_sandbox: ErmSandbox, erm_api: Api,
                                 caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with erm_support.client(erm_api, erm_url) as client:
        await client.days_code(DEVICE, 5)
        tokens = list(erm_sandbox._tokens)
        erm_sandbox.expire_tokens()
        await client.code_history(DEVICE)
        tokens += list(erm_sandbox._tokens)
    assert len(tokens) == 2
    assert PASSWORD not in caplog.text
    for token in tokens:
        assert token not in caplog.text
    assert "logged in to the ERM as test@example.com" in caplog.text


# -- REST only: the endpoints the GraphQL documents do not have ------------------------------------


@pytest.fixture
async def rest(erm_url: str) -> AsyncIterator[RestErm]:
    async with RestErm(erm_url, "test@example.com", PASSWORD, timeout=5) as client:
        yield client


async def test_rest_metadata_avatar_and_assigned_items(rest: RestErm) -> None:
    meta = await rest.history_metadata()
    assert meta.table_name == "codeHistory"
    avatar = await rest.avatar(DEVICE)
    assert avatar.cmd and avatar.cmd[0].prop
    items = await rest.assigned_items(0, 5)
    assert len(items) == 5 and DEVICE in items[0].ids
    item = await rest.item(SELLER_ID)
    assert item.erm_id == ERM_ID


async def test_rest_latency_is_added(erm_url: str, erm_sandbox: ErmSandbox) -> None:
    erm_sandbox.latency = 0.2
    async with RestErm(erm_url, "test@example.com", PASSWORD, timeout=0.1) as client:
        with pytest.raises(ErmOutcomeUnknown):
            await client.code_history(DEVICE)
