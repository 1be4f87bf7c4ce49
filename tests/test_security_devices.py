"""One device, three ids, on an ERM that will not say which ids are one device (no item lookups):
the ledger must never give a second id its own pacing clock and credit.

Each test here failed on the bot before the security review (issue 12) and passes after.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from sqlmodel import select

from bot.standins.erm import ErmSandbox
from storage import ledger
from storage.models import CodeRequest, Device, Status
from tests.support.chat import AGENT, MANAGER, OTHER_AGENT, Chat

DEVICE = "TEST2503000017"


pytestmark = pytest.mark.agents(AGENT, OTHER_AGENT)  # made agents by the ``chat`` fixture (conftest.py)


@pytest.fixture
def erm_sandbox(erm_sandbox: ErmSandbox) -> ErmSandbox:
    """An ERM without item lookups: only the code history tells which ids are one device."""
    erm_sandbox.fail_next(1000, 404, paths=["/oves/assignedItems/", "/oves/assignedItemsList/"])
    return erm_sandbox


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


async def code_sent(chat: Chat, number: int) -> None:
    """Until the device's ``number``-th code has gone out in a message: the bot has recorded it, and
    with it the time the next 6 seconds count from. (That the ERM committed it is not enough: the
    clock moved before the bot hears the answer would start those 6 seconds late, and the next code
    would wait for time the test never gives.)"""
    await chat.api.wait_for(lambda sent: len(codes := chat.codes()) >= number and codes[number - 1] in (sent.rendered or ""),
                            after=0, timeout=15)


async def test_three_ids_asked_at_once_are_one_device_paced_once(chat: Chat) -> None:
    erm_id, oem, seller = ids(chat)
    for user, ref in ((AGENT, erm_id), (OTHER_AGENT, oem), (MANAGER, seller)):
        await chat.api.user_says(user, f"/days {ref} 1")
    await code_sent(chat, 1)
    for expected in (2, 3):
        chat.clock.advance(6)
        await code_sent(chat, expected)
    assert len(chat.codes()) == 3
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


async def test_an_id_whose_history_cannot_be_read_gets_no_code_until_it_can(chat: Chat) -> None:
    """Unsure is not sure: while the history that would tell two ids apart cannot be read, the second id's
    request waits; once it can, the two are one device and the excess is refused."""
    _, oem, seller = ids(chat)
    chat.sandbox.late_next(1, 1.0)  # the first code's answer takes a second: both rows exist meanwhile
    await chat.api.user_says(AGENT, f"/days {oem} 1000")
    await chat.api.user_says(OTHER_AGENT, f"/days {seller} 1000")

    async def both_asked_one_at_the_erm() -> bool:
        # the first id's code was asked (after its own history was compared: a failure injected before
        # that would hold it on the manual clock), and the second id's request is in the ledger
        _, requests = await ledger_state(chat)
        return len(requests) == 2 and generations(chat) == 1

    await until(both_asked_one_at_the_erm)
    chat.sandbox.fail_next(3, 503, paths=["/oves/v2/codeHistoryList/"])
    await until(lambda: len(chat.codes()) == 1)

    async def refused() -> bool:
        _, requests = await ledger_state(chat)
        return any(r.status is Status.REFUSED for r in requests)

    for _ in range(10):  # each try waits out its backoff on the clock
        chat.clock.advance(60)
        try:
            await until(refused, timeout=1)
            break
        except AssertionError:
            continue
    assert await refused()
    assert len(chat.codes()) == 1 and generations(chat) == 1
    devices, _ = await ledger_state(chat)
    assert len(devices) == 1
