"""Managers through the chat: prices, approvals, resets, the summary, exports and the team."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import pytest

from bot.clock import ManualClock
from bot.erm.sandbox import ErmSandbox
from storage import ledger
from storage.models import Role
from tests.chat import AGENT, MANAGER, Chat, chatting

DEVICE = "TEST2503000017"


@pytest.fixture
async def chat(erm_sandbox: ErmSandbox, erm_url: str, database_url: str, clock: ManualClock) -> AsyncIterator[Chat]:
    async with chatting(erm_sandbox, erm_url, database_url, clock) as running_chat:
        await running_chat.make(AGENT, Role.AGENT)
        yield running_chat


async def device_price(chat: Chat) -> tuple[Decimal | None, str | None]:
    async with chat.bot.services.db.read() as session:
        device = await ledger.find_device(session=session, ref=DEVICE)
    assert device is not None
    return device.daily_price, device.currency


async def test_price_is_set_by_managers_only(chat: Chat) -> None:
    done = await chat.say(MANAGER, f"/price {DEVICE} 49.50 kes")
    assert "daily price of TEST2503000017 is now 49.50 KES" in (done.rendered or "")
    assert await device_price(chat) == (Decimal("49.50"), "KES")
    assert (await chat.say(AGENT, f"/price {DEVICE} 10")).rendered == "That command is for managers."
    for bad in (f"/price {DEVICE} -5", f"/price {DEVICE} 0", f"/price {DEVICE} abc", f"/price {DEVICE} 5 shillings",
                f"/price {DEVICE}", "/price"):
        refused = await chat.say(MANAGER, bad)
        assert "Usage: /price" in (refused.rendered or ""), bad
    assert await device_price(chat) == (Decimal("49.50"), "KES")
    view = await chat.say(MANAGER, f"/device {DEVICE}")
    assert "Daily price: 49.50 KES" in (view.rendered or "")
