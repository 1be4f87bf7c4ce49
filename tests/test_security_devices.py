"""One device, three ids, on an ERM that will not say which ids are one device (no item lookups):
the ledger must never give a second id its own pacing clock and credit.

Each test here failed on the bot before the security review (issue 12) and passes after.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from sqlmodel import select

from bot.clock import ManualClock
from bot.erm.sandbox import ErmSandbox
from storage import ledger
from storage.models import CodeRequest, Device, Role, Status
from tests.chat import AGENT, MANAGER, OTHER_AGENT, Chat, chatting

DEVICE = "TEST2503000017"


@pytest.fixture
async def chat(erm_sandbox: ErmSandbox, erm_url: str, database_url: str, clock: ManualClock) -> AsyncIterator[Chat]:
    # an ERM without item lookups: only the code history tells which ids are one device
    erm_sandbox.fail_next(1000, 404, paths=["/oves/assignedItems/", "/oves/assignedItemsList/"])
    async with chatting(erm_sandbox, erm_url, database_url, clock) as running_chat:
        await running_chat.make(AGENT, Role.AGENT)
        await running_chat.make(OTHER_AGENT, Role.AGENT)
        yield running_chat


def ids(chat: Chat) -> tuple[str, str, str]:
    device = chat.sandbox.device(DEVICE)
    return device.erm_id, device.oem_item_id, device.seller_item_id


async def ledger_state(chat: Chat) -> tuple[list[Device], list[CodeRequest]]:
    async with chat.bot.services.db.read() as session:
        return (list((await session.exec(select(Device))).all()),
                list((await session.exec(select(CodeRequest).order_by(CodeRequest.id))).all()))  # type: ignore[arg-type]


def generations(chat: Chat) -> int:
    return len([path for path in chat.erm_calls() if "daysCode" in path])


async def until(check: Callable[[], Any], timeout: float = 15) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not (value := (await check()) if asyncio.iscoroutinefunction(check) else check()):
        assert loop.time() < deadline, f"not true within {timeout} s: {check}"
        await asyncio.sleep(0.02)
    return value


async def test_three_ids_asked_at_once_are_one_device_paced_once(chat: Chat) -> None:
    erm_id, oem, seller = ids(chat)
    for user, ref in ((AGENT, erm_id), (OTHER_AGENT, oem), (MANAGER, seller)):
        await chat.api.user_says(user, f"/days {ref} 1")
    await until(lambda: len(chat.codes()) == 1)
    for expected in (2, 3):
        chat.clock.advance(6)
        await until(lambda expected=expected: len(chat.codes()) == expected)  # type: ignore[misc]
    assert generations(chat) == 3  # none refused by the ERM's 6-second rule (a refusal comes before its retry)
    records = chat.sandbox.device(DEVICE).codes
    assert all((b.created_at - a.created_at).total_seconds() >= 6 for a, b in zip(records, records[1:], strict=False))
    devices, requests = await ledger_state(chat)
    assert len(devices) == 1 and {r.device_id for r in requests} == {devices[0].id} and len(requests) == 3
    async with chat.bot.services.db.read() as session:
        assert set(await ledger.device_aliases(session=session, device_id=devices[0].id or 0)) == {erm_id, oem, seller}


async def test_a_second_id_does_not_stack_credit_twice(chat: Chat) -> None:
    _, oem, seller = ids(chat)
    first = await chat.say(AGENT, f"/days {oem} 1000")
    assert "1,000 days" in (first.rendered or "")
    second = await chat.say(OTHER_AGENT, f"/days {seller} 1000")
    assert "stack too much credit" in (second.rendered or "")
    assert len(chat.codes()) == 1
    devices, _ = await ledger_state(chat)
    assert len(devices) == 1


async def test_ids_asked_together_are_merged_and_the_excess_refused(chat: Chat) -> None:
    _, oem, seller = ids(chat)
    await chat.api.user_says(AGENT, f"/days {oem} 1000")
    await chat.api.user_says(OTHER_AGENT, f"/days {seller} 1000")
    await until(lambda: len(chat.codes()) == 1)
    told = await chat.api.wait_for(lambda sent: "stack too much credit" in (sent.rendered or ""))
    first = next(sent for sent in chat.api.sent if "1,000 days" in (sent.rendered or ""))
    assert {told.chat_id, first.chat_id} == {AGENT.id, OTHER_AGENT.id}
    chat.clock.advance(60)

    async def finished() -> bool:
        _, requests = await ledger_state(chat)
        return all(r.delivered_at is not None for r in requests)

    await until(finished)
    assert len(chat.codes()) == 1 and generations(chat) == 1
    devices, requests = await ledger_state(chat)
    assert len(devices) == 1 and len(requests) == 2  # both requests kept, on the one device
    assert sorted(r.status for r in requests) == sorted([Status.DELIVERED, Status.REFUSED])
