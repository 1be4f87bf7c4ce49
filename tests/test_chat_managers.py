"""Managers through the chat: prices, approvals, resets, the summary, exports and the team."""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import io
import multiprocessing
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from sqlmodel import select

from bot import reports
from bot.clock import ManualClock
from bot.jobs import expire_approvals, push_summary_if_due
from bot.standins.telegram import TelegramUser
from bot.texts import for_language
from storage import ledger
from storage.models import Approval, ApprovalStatus, Payment, PaymentStatus, Role
from tests.support.chat import AGENT, MANAGER, Chat

DEVICE = "TEST2503000017"


pytestmark = pytest.mark.agents(AGENT)  # the ``chat`` fixture (conftest.py) makes AGENT an agent


async def device_price(chat: Chat) -> tuple[Decimal | None, str | None]:
    async with chat.bot.services.db.read() as session:
        device = await ledger.find_device(session=session, ref=DEVICE)
    assert device is not None
    return device.daily_price, device.currency


async def test_price_is_set_by_managers_only(chat: Chat) -> None:
    done = await chat.say(MANAGER, f"/price {DEVICE} 49.50 kes")
    assert "daily price of TEST2503000017 is now KES 49.50" in (done.rendered or "")
    assert await device_price(chat) == (Decimal("49.50"), "KES")
    assert (await chat.say(AGENT, f"/price {DEVICE} 10")).rendered == "That command is for managers."
    for bad in (f"/price {DEVICE} -5", f"/price {DEVICE} 0", f"/price {DEVICE} abc", f"/price {DEVICE} 5 shillings",
                f"/price {DEVICE}", "/price"):
        refused = await chat.say(MANAGER, bad)
        assert "Usage: /price" in (refused.rendered or ""), bad
    assert await device_price(chat) == (Decimal("49.50"), "KES")
    view = await chat.say(MANAGER, f"/device {DEVICE}")
    assert "Daily price: KES 49.50" in (view.rendered or "")


OTHER_MANAGER_ID = 1002


async def second_manager(chat: Chat) -> TelegramUser:
    other = TelegramUser(OTHER_MANAGER_ID, "Moses")
    await chat.make(other, Role.MANAGER)
    return other


async def free_calls(chat: Chat) -> int:
    return len([path for path in chat.erm_calls() if "freecode" in path])


async def test_a_free_code_from_an_agent_needs_a_manager(chat: Chat) -> None:
    other = await second_manager(chat)
    await chat.say(AGENT, f"/customer {DEVICE} 0712345678 Jane Wanjiru")
    preview = await chat.say(AGENT, f"/free {DEVICE}")
    text = preview.rendered or ""
    assert "unlocks it for good" in text and "Customer: Jane Wanjiru" in text and "A manager must approve" in text
    after = chat.api.position
    sent = await chat.tap(AGENT, preview, preview.button("Yes")["callback_data"])
    assert "Asked the managers" in (sent.rendered or "")
    ask = await chat.api.wait_for(MANAGER.id, after=after, methods=("sendMessage",))
    ask_other = await chat.api.wait_for(OTHER_MANAGER_ID, after=after, methods=("sendMessage",))
    assert "Alex Kamau asks for a free code for TEST2503000017" in (ask.rendered or "")
    assert [b["text"] for b in ask.buttons] == ["Approve", "Reject"]
    assert await free_calls(chat) == 0  # nothing reaches the ERM before a manager approves
    after = chat.api.position
    await chat.api.user_taps(MANAGER, ask, ask.button("Approve")["callback_data"])
    told = await chat.api.wait_for(AGENT.id, after=after, methods=("sendMessage",))
    assert "Mary Otieno approved the free code" in (told.rendered or "")
    code = await chat.next(AGENT)
    assert "free code: unlocks for good" in (code.rendered or "") and chat.codes()[0] in (code.rendered or "")
    query = await chat.api.user_taps(other, ask_other, ask_other.button("Approve")["callback_data"])
    deadline = asyncio.get_running_loop().time() + 10
    while chat.api.answered(query) is None:
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.02)
    answer = chat.api.answered(query)
    assert answer is not None and "Already approved by Mary Otieno." in (answer.text or "")
    assert await free_calls(chat) == 1 and len(chat.codes()) == 1
    async with chat.bot.services.db.read() as session:
        approval = (await session.exec(select(Approval))).one()
    assert approval.status is ApprovalStatus.APPROVED and approval.decided_at == chat.clock.now()
    assert approval.code_request_id is not None


async def test_a_rejected_free_code_is_never_issued(chat: Chat) -> None:
    preview = await chat.say(AGENT, f"/free {DEVICE}")
    after = chat.api.position
    await chat.tap(AGENT, preview, preview.button("Yes")["callback_data"])
    ask = await chat.api.wait_for(MANAGER.id, after=after, methods=("sendMessage",))
    after = chat.api.position
    await chat.api.user_taps(MANAGER, ask, ask.button("Reject")["callback_data"])
    told = await chat.api.wait_for(AGENT.id, after=after, methods=("sendMessage",))
    assert "rejected the free code" in (told.rendered or "") and await free_calls(chat) == 0


async def test_approvals_expire_after_a_day(chat: Chat) -> None:
    preview = await chat.say(AGENT, f"/free {DEVICE}")
    after = chat.api.position
    await chat.tap(AGENT, preview, preview.button("Yes")["callback_data"])
    ask = await chat.api.wait_for(MANAGER.id, after=after, methods=("sendMessage",))
    chat.clock.advance(hours=24, seconds=1)
    query = await chat.api.user_taps(MANAGER, ask, ask.button("Approve")["callback_data"])
    deadline = asyncio.get_running_loop().time() + 10
    while chat.api.answered(query) is None:
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.02)
    assert "expired" in (chat.api.answered(query).text or "")  # type: ignore[union-attr]
    after = chat.api.position
    assert await expire_approvals(chat.bot.services, chat.bot.application.bot) == 1
    told = await chat.api.wait_for(AGENT.id, after=after, methods=("sendMessage",))
    assert "expired: no manager decided within 24 hours" in (told.rendered or "") and await free_calls(chat) == 0


async def test_a_managers_own_free_code_needs_only_their_confirmation(chat: Chat) -> None:
    preview = await chat.say(MANAGER, f"/free {DEVICE}")
    assert "Nothing is issued before you confirm" in (preview.rendered or "")
    code = await chat.tap(MANAGER, preview, preview.button("Yes")["callback_data"])
    assert chat.codes()[0] in (code.rendered or "")


async def test_reset_is_confirmed_and_stale_buttons_do_nothing(chat: Chat) -> None:
    await chat.say(AGENT, f"/days {DEVICE} 30")
    chat.clock.advance(6)
    preview = await chat.say(AGENT, f"/reset {DEVICE}")
    assert "sets TEST2503000017 to 0 days and locks it (it has 30 days left now)" in (preview.rendered or "")
    assert len(chat.codes()) == 1
    data = preview.button("Yes")["callback_data"]
    code = await chat.tap(AGENT, preview, data)
    assert "reset code" in (code.rendered or "") and len(chat.codes()) == 2
    again = await chat.tap(AGENT, preview, data)  # pressed twice
    assert again.rendered == "That button is no longer active." and len(chat.codes()) == 2
    old = await chat.say(AGENT, f"/reset {DEVICE}")
    chat.clock.advance(days=1, seconds=1)
    late = await chat.tap(AGENT, old, old.button("Yes")["callback_data"])
    assert "more than a day old" in (late.rendered or "") and len(chat.codes()) == 2
    cancel = await chat.say(AGENT, f"/reset {DEVICE}")
    cancelled = await chat.tap(AGENT, cancel, cancel.button("Cancel")["callback_data"])
    assert cancelled.rendered == "Cancelled. Nothing was issued or changed." and len(chat.codes()) == 2


async def _a_day_of_business(chat: Chat) -> None:
    await chat.say(AGENT, f"/customer {DEVICE} 0712345678 Jane Wanjiru")
    await chat.say(AGENT, f"/days {DEVICE} 2")
    await chat.say(AGENT, f"/days {DEVICE} 5000")  # refused: days out of range, never stored
    await chat.say(AGENT, f"/days {DEVICE} 1094")  # refused: stacking
    chat.clock.advance(6)
    await chat.say(MANAGER, "/days SELLERSBX00000000003 30")
    async with chat.bot.services.db.write() as session:
        device = await ledger.find_device(session=session, ref=DEVICE)
        assert device is not None
        for reference, amount, currency in (("R1", "250.00", "KES"), ("R2", "100.50", "KES"), ("R3", "3", "USD")):
            await ledger.add_payment(session=session, payment=Payment(
                provider="webhook", reference=reference, amount=Decimal(amount), currency=currency, account=DEVICE,
                received_at=chat.clock.now(), device_id=device.id, status=PaymentStatus.MATCHED))


async def test_summary_of_the_day_with_a_chart(chat: Chat) -> None:
    await _a_day_of_business(chat)
    after = chat.api.position
    text = await chat.say(MANAGER, "/summary")
    picture = await chat.api.wait_for(MANAGER.id, after=after + 1, methods=("sendPhoto",))
    body = text.rendered or ""
    assert "Summary for Sun, 22 Nov 2026" in body
    assert "Codes: 2 — days 2, free 0, reset 0; 32 days issued" in body
    assert "Payments: KES 350.50 in 2 payments; USD 3.00 in 1 payment" in body
    assert "• Alex Kamau: 1 code, 2 days" in body and "• Mary Otieno: 1 code, 30 days" in body
    assert "Refused or failed: 1" in body and "refused — too much credit (at most 1,093 days fitted)" in body
    assert "Queue: 0 waiting" in body
    assert "TEST2503000017 (Jane Wanjiru, +254712345678)" in body  # credit ends in 2 days; the number as kept
    assert picture.photo is not None and picture.photo.startswith(b"\x89PNG") and len(picture.photo) > 5000
    yesterday = await chat.say(MANAGER, "/summary 2026-11-21")
    assert "Codes: 0" in (yesterday.rendered or "")


async def test_the_summarys_chart_is_drawn_in_the_drawing_process(chat: Chat) -> None:
    """matplotlib takes a fifth of a second or more: on the loop, or in a thread (the GIL), every chat would wait
    for a manager's summary."""
    await _a_day_of_business(chat)
    picture = await reports.chart(chat.bot.services.db, date(2026, 11, 22), chat.bot.services.settings.tz,
                                  for_language("en"))
    assert picture.startswith(b"\x89PNG")
    # drawn by a child of this process (tests/test_drawing.py: that it is another process, and kept)
    assert [child for child in multiprocessing.active_children() if child.name.startswith("SpawnProcess")]


@pytest.mark.parametrize(("text", "words"), [
    ("/summary 2026-02-30", "That is not a date"), ("/summary yesterday", "That is not a date"),
    ("/summary 2026-11-21 2026-11-22", "Usage: /summary"),
    ("/export 2026-11-22 2026-11-01", "The first date is after the second one"),
    ("/export 2026-13-01", "That is not a date"), ("/export 2024-01-01 2026-01-01", "At most 366 days"),
    ("/revoke", "Usage: /revoke"), ("/revoke abc", "Usage: /revoke"), ("/revoke 999999", "Nobody with Telegram id"),
    (f"/revoke {MANAGER.id}", "You cannot revoke yourself"),
])
async def test_bad_manager_input_changes_nothing(chat: Chat, text: str, words: str) -> None:
    reply = await chat.say(MANAGER, text)
    assert words in (reply.rendered or ""), reply.rendered
    assert await chat.bot.services.people.who(AGENT.id) is not None
    assert (await chat.bot.services.people.who(AGENT.id)).kind.value == "agent"


async def test_the_summary_is_pushed_once_at_its_time(chat: Chat) -> None:
    other = await second_manager(chat)
    services = chat.bot.services
    bot = chat.bot.application.bot
    chat.clock.set(datetime(2026, 11, 22, 18, 59, tzinfo=UTC))
    assert not await push_summary_if_due(services, bot)
    chat.clock.set(datetime(2026, 11, 22, 19, 0, tzinfo=UTC))
    after = chat.api.position
    assert await push_summary_if_due(services, bot)
    for manager in (MANAGER.id, other.id):
        pushed = await chat.api.wait_for(manager, after=after, methods=("sendMessage",))
        assert "Summary for Sun, 22 Nov 2026" in (pushed.rendered or "")
    # every manager's text first, then the charts: no text waits for a picture (a process may die drawing)
    for manager in (MANAGER.id, other.id):
        await chat.api.wait_for(manager, after=after, methods=("sendPhoto",))
    pushed = [sent.method for sent in chat.api.sent[after:] if sent.chat_id in (MANAGER.id, other.id)]
    assert pushed == ["sendMessage", "sendMessage", "sendPhoto", "sendPhoto"], pushed
    assert not await push_summary_if_due(services, bot)  # once
    restarted = dataclasses.replace(services, clock=ManualClock(datetime(2026, 11, 22, 19, 5, tzinfo=UTC)))
    assert not await push_summary_if_due(restarted, bot)  # also across a restart near that time
    chat.clock.set(datetime(2026, 11, 23, 19, 0, tzinfo=UTC))
    assert await push_summary_if_due(services, bot)  # the next day's


async def test_export_is_a_csv_that_reads_back(chat: Chat) -> None:
    await _a_day_of_business(chat)
    document = await chat.say(MANAGER, "/export")
    assert document.method == "sendDocument" and document.filename == "paygbot-2026-11-22.csv"
    assert document.document is not None and document.document.startswith("\ufeff".encode())
    rows = list(csv.DictReader(io.StringIO(document.document.decode("utf-8-sig"))))
    assert list(rows[0]) == ["time", "device", "customer", "type", "days", "code", "status", "reason", "asked by",
                             "payment reference", "amount", "currency"]
    codes = [row for row in rows if row["type"] == "days"]
    assert [(row["device"], row["days"], row["status"]) for row in codes] == [
        (DEVICE, "2", "delivered"), (DEVICE, "1094", "refused"), ("SELLERSBX00000000003", "30", "delivered")]
    assert codes[0]["customer"] == "Jane Wanjiru" and codes[0]["asked by"] == "Alex Kamau"
    assert codes[0]["code"] == chat.codes()[0] and codes[0]["time"] == "2026-11-22 09:00:00"
    assert codes[1]["reason"] == "too much credit (at most 1,093 days fitted)"
    payments = [row for row in rows if row["type"] == "payment"]
    assert sorted(row["payment reference"] for row in payments) == ["R1", "R2", "R3"]
    empty = await chat.say(MANAGER, "/export 2026-11-01 2026-11-21")
    assert document.document and empty.filename == "paygbot-2026-11-01-to-2026-11-21.csv"
    assert empty.document is not None and len(list(csv.reader(io.StringIO(empty.document.decode("utf-8-sig"))))) == 1


async def test_agents_and_revoke(chat: Chat) -> None:
    await chat.say(AGENT, f"/days {DEVICE} 1")
    team = await chat.say(MANAGER, "/agents")
    assert f"Alex Kamau — agent, Telegram id {AGENT.id}: 1" in (team.rendered or "")
    revoked = await chat.say(MANAGER, f"/revoke {AGENT.id}")
    assert "no longer has a role" in (revoked.rendered or "")
    refused = await chat.say(AGENT, f"/days {DEVICE} 1")
    assert "not registered" in (refused.rendered or "") and len(chat.codes()) == 1


@pytest.mark.parametrize("command", ["/summary", "/export", "/agents", f"/revoke {MANAGER.id}", "/invite agent",
                                     f"/price {DEVICE} 10"])
async def test_managers_only_commands(chat: Chat, command: str) -> None:
    assert (await chat.say(AGENT, command)).rendered == "That command is for managers."
