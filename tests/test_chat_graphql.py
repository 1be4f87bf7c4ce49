"""Every chat command over the ERM's GraphQL interface (``ERM_API=graphql``): the whole bot against the
sandbox's ``POST /graphql``, each flow checked by what the person reads, what the sandbox committed and
which GraphQL fields the bot asked for — never a REST path."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from sqlmodel import select

from bot.clock import ManualClock
from bot.erm.models import CodeType
from bot.standins.erm import ErmSandbox
from bot.standins.erm.graphql import PATH, GraphQLApi
from storage.models import CodeRequest, Role, Status
from tests.support.chat import AGENT, CUSTOMER, MANAGER, Chat, chatting
from tests.support.paying import DEVICE, paying
from tests.support.waiting import eventually
from tests.test_chat_agents import ledger_rows
from tests.test_chat_find import find, labels
from tests.test_payments_webhook import payment

FORBIDDEN = {"errors": [{"message": "Product is not assigned to you", "extensions": {"code": "FORBIDDEN"}}],
             "data": None}


def over_graphql(erm_url: str) -> dict[str, str]:
    return {"ERM_API": "graphql", "ERM_GRAPHQL_URL": f"{erm_url}{PATH}"}


@asynccontextmanager
async def graphql_chatting(sandbox: ErmSandbox, erm_url: str, database_url: str, clock: ManualClock,
                           **settings: Any) -> AsyncIterator[Chat]:
    """The whole bot speaking GraphQL to the sandbox, AGENT an agent."""
    async with chatting(sandbox, erm_url, database_url, clock, **over_graphql(erm_url), **settings) as chat:
        await chat.make(AGENT, Role.AGENT)
        yield chat


@pytest.fixture
async def graphql_chat(erm_sandbox: ErmSandbox, erm_url: str, database_url: str,
                       clock: ManualClock) -> AsyncIterator[Chat]:
    async with graphql_chatting(erm_sandbox, erm_url, database_url, clock) as chat:
        yield chat


def asked(sandbox: ErmSandbox) -> list[str]:
    """The first root field of every ERM request so far, in order; each request must have been a
    ``POST /graphql`` (not one REST path)."""
    assert [(call.method, call.path) for call in sandbox.calls if (call.method, call.path) != ("POST", PATH)] == []
    api = GraphQLApi(sandbox)
    return [api.traits(call.body).path.removeprefix(f"{PATH}/") for call in sandbox.calls]


def delivered(chat: Chat, code: str) -> list[str]:
    """What AGENT read that holds ``code``."""
    return [sent.rendered or "" for sent in chat.api.sent_to(AGENT) if code in (sent.rendered or "")]


async def requests(chat: Chat) -> list[CodeRequest]:
    async with chat.bot.services.db.read() as session:
        return list((await session.exec(select(CodeRequest).order_by(CodeRequest.id))).all())  # type: ignore[arg-type]


# -- /days -------------------------------------------------------------------------------------


async def test_days_code_arrives_and_the_next_one_waits_six_seconds(graphql_chat: Chat) -> None:
    chat = graphql_chat
    reply = await chat.say(AGENT, f"/days {DEVICE} 30")
    [record] = chat.sandbox.device(DEVICE).codes
    assert (record.code_type, record.code_days) == (CodeType.DAYS, 30)
    assert reply.text is not None and f"<code>{record.keypad}</code>" in reply.text
    assert "30 days" in (reply.rendered or "") and DEVICE in (reply.rendered or "")
    queued = await chat.say(AGENT, f"/days {DEVICE} 2")
    assert "Queued" in (queued.rendered or "") and "about 6 secs" in (queued.rendered or "")
    assert len(chat.codes()) == 1  # not before the ERM's 6 seconds
    chat.clock.advance(6)
    follow = await chat.next(AGENT)
    [_, second] = chat.sandbox.device(DEVICE).codes
    assert second.code_days == 2 and second.keypad in (follow.rendered or "") and "2 days" in (follow.rendered or "")
    fields = asked(chat.sandbox)
    assert fields.count("generateDaysCode") == 2 and "signInClient" in fields


@pytest.mark.parametrize("days", ["0", "1096", "-5", "abc"])
async def test_days_out_of_range_are_refused_and_nothing_is_asked(graphql_chat: Chat, days: str) -> None:
    await graphql_chat.synced()  # what the bot asks the ERM anyway: its device sync
    reply = await graphql_chat.say(AGENT, f"/days {DEVICE} {days}")
    assert "Days must be a whole number from 1 to 1095" in (reply.rendered or "")
    assert graphql_chat.codes() == [] and graphql_chat.sandbox.generations == 0
    assert await ledger_rows(graphql_chat) == [] and asked(graphql_chat.sandbox) == ["signInClient", "getAllClientItems"]


async def test_the_daily_limit_refusal_names_the_time(erm_sandbox: ErmSandbox, erm_url: str, database_url: str,
                                                      clock: ManualClock) -> None:
    async with graphql_chatting(erm_sandbox, erm_url, database_url, clock, PAYGBOT_DAILY_CODE_LIMIT="1",
                                PAYGBOT_TIMEZONE="Africa/Nairobi") as chat:
        first = await chat.say(AGENT, f"/days {DEVICE} 1")
        assert chat.codes()[0] in (first.rendered or "")
        refused = await chat.say(AGENT, f"/days {DEVICE} 1")
        assert "all its codes for today" in (refused.rendered or "") and "23 Nov 2026 00:00" in (refused.rendered or "")
        assert len(chat.codes()) == 1 and asked(chat.sandbox).count("generateDaysCode") == 1


async def test_a_seller_id_then_the_oem_id_are_one_device(graphql_chat: Chat) -> None:
    chat = graphql_chat
    await chat.synced()
    device = chat.sandbox.add_device("TEST2503999999")  # assigned since the sync: its seller id is looked up
    chat.sandbox.calls.clear()
    first = await chat.say(AGENT, f"/days {device.seller_item_id} 1")
    assert chat.codes(device.oem_item_id)[0] in (first.rendered or "")
    searched = [call.body["variables"].get("search") for call in chat.sandbox.calls
                if "getAllClientItems" in call.body["query"]]
    assert searched == [device.seller_item_id]  # one item lookup, by the id typed
    queued = await chat.say(AGENT, f"/days {device.oem_item_id} 2")
    assert "Queued" in (queued.rendered or "") and "about 6 secs" in (queued.rendered or "")  # one pacing
    chat.clock.advance(6)
    follow = await chat.next(AGENT)
    assert len(chat.codes(device.oem_item_id)) == 2 and chat.codes(device.oem_item_id)[1] in (follow.rendered or "")
    rows = await requests(chat)
    assert len(rows) == 2 and len({row.device_id for row in rows}) == 1  # one ledger device for both ids
    assert asked(chat.sandbox).count("getAllClientItems") == 1


# -- when the ERM misbehaves --------------------------------------------------------------------


async def test_a_lost_answer_is_settled_from_the_graphql_history(erm_sandbox: ErmSandbox, erm_url: str,
                                                                 database_url: str, clock: ManualClock) -> None:
    async with graphql_chatting(erm_sandbox, erm_url, database_url, clock, ERM_TIMEOUT_SECONDS="0.3") as chat:
        await chat.synced()
        erm_sandbox.late_next(1, delay=1.0)  # committed, but answered after the bot gave up
        await chat.api.user_says(AGENT, f"/days {DEVICE} 3")
        [code] = await eventually(chat.codes, "the ERM to commit the code")

        async def gave_up() -> bool:
            [row] = await requests(chat)
            return row.status is Status.SENDING and row.reason is not None

        await eventually(gave_up, "the bot to give up on the answer")
        assert delivered(chat, code) == []
        before = len(asked(erm_sandbox))
        chat.clock.advance(0.3 + 6)  # the time limit and the grace period: settled from the history
        await chat.api.wait_for(lambda sent: sent.chat_id == AGENT.id and code in (sent.rendered or ""), timeout=20)

        async def done() -> bool:
            return [row.status for row in await requests(chat)] == [Status.DELIVERED]

        await eventually(done, "the request delivered")
        assert chat.codes() == [code] and erm_sandbox.generations == 1
        assert len(delivered(chat, code)) == 1 and "3 days" in delivered(chat, code)[0]
        fields = asked(erm_sandbox)
        assert fields.count("generateDaysCode") == 1 and "getItemsForDownloadById" in fields[before:]


async def test_an_expired_token_signs_in_again_and_the_code_arrives(graphql_chat: Chat) -> None:
    chat = graphql_chat
    await chat.synced()  # the device sync signed in, and asks nothing more in between
    before, logins = len(asked(chat.sandbox)), chat.sandbox.logins
    chat.sandbox.expire_tokens()
    reply = await chat.say(AGENT, f"/days {DEVICE} 4")
    [code] = chat.codes()
    assert code in (reply.rendered or "") and "4 days" in (reply.rendered or "")
    assert asked(chat.sandbox)[before:] == ["generateDaysCode", "signInClient", "generateDaysCode"]
    assert chat.sandbox.logins == logins + 1


async def test_sign_in_falls_back_to_sign_in_user(erm_sandbox: ErmSandbox, erm_url: str, database_url: str,
                                                 clock: ManualClock) -> None:
    erm_sandbox.graphql_sign_in = ("signInUser",)  # a schema without signInClient
    async with graphql_chatting(erm_sandbox, erm_url, database_url, clock) as chat:
        await chat.synced()
        reply = await chat.say(AGENT, f"/days {DEVICE} 5")
        assert chat.codes()[0] in (reply.rendered or "")
        fields = asked(erm_sandbox)
        assert fields[:2] == ["signInClient", "signInUser"] and fields.count("signInClient") == 1
        before = len(fields)
        erm_sandbox.expire_tokens()
        chat.clock.advance(6)
        again = await chat.say(AGENT, f"/days {DEVICE} 1")
        assert len(chat.codes()) == 2 and chat.codes()[1] in (again.rendered or "")
        assert asked(erm_sandbox)[before:] == ["generateDaysCode", "signInUser", "generateDaysCode"]  # remembered


# -- managers' approvals and resets ---------------------------------------------------------------


async def test_a_free_code_approved_by_a_manager(graphql_chat: Chat) -> None:
    chat = graphql_chat
    preview = await chat.say(AGENT, f"/free {DEVICE}")
    assert "A manager must approve" in (preview.rendered or "")
    after = chat.api.position
    await chat.tap(AGENT, preview, preview.button("Yes")["callback_data"])
    ask = await chat.api.wait_for(MANAGER.id, after=after, methods=("sendMessage",))
    assert "Alex Kamau asks for a free code for TEST2503000017" in (ask.rendered or "")
    assert "generateFreeCode" not in asked(chat.sandbox) and chat.codes() == []
    after = chat.api.position
    await chat.api.user_taps(MANAGER, ask, ask.button("Approve")["callback_data"])
    told = await chat.api.wait_for(AGENT.id, after=after, methods=("sendMessage",))
    assert "Mary Otieno approved the free code" in (told.rendered or "")
    code = await chat.next(AGENT)
    [record] = chat.sandbox.device(DEVICE).codes
    assert record.code_type is CodeType.FREE
    assert "free code: unlocks for good" in (code.rendered or "") and record.keypad in (code.rendered or "")
    assert asked(chat.sandbox).count("generateFreeCode") == 1


async def test_a_reset_code_after_a_days_code(graphql_chat: Chat) -> None:
    chat = graphql_chat
    await chat.say(AGENT, f"/days {DEVICE} 30")
    chat.clock.advance(6)
    preview = await chat.say(AGENT, f"/reset {DEVICE}")
    assert "sets TEST2503000017 to 0 days and locks it (it has 30 days left now)" in (preview.rendered or "")
    code = await chat.tap(AGENT, preview, preview.button("Yes")["callback_data"])
    [_, record] = chat.sandbox.device(DEVICE).codes
    assert record.code_type is CodeType.RESET
    assert "reset code" in (code.rendered or "") and record.keypad in (code.rendered or "")
    fields = asked(chat.sandbox)
    assert fields.count("generateResetCode") == 1 and fields.count("generateDaysCode") == 1


# -- payments --------------------------------------------------------------------------------------


async def test_a_webhook_payment_becomes_the_customers_code(erm_sandbox: ErmSandbox, erm_url: str,
                                                            database_url: str, clock: ManualClock) -> None:
    async with paying(erm_sandbox, erm_url, database_url, clock, **over_graphql(erm_url)) as bot:
        await bot.customer()
        await bot.price(DEVICE, "50")
        response = await bot.pay(payment("PAY-1", "260.00", DEVICE))
        assert response.status_code == 200 and response.json() == {"status": "accepted", "reference": "PAY-1"}
        to_customer = await bot.chat.next(CUSTOMER)
        [record] = erm_sandbox.device(DEVICE).codes
        assert record.code_days == 5
        text = to_customer.rendered or ""
        assert record.keypad in text and "Your payment of KES 260.00" in text and "5 days" in text
        assert asked(erm_sandbox).count("generateDaysCode") == 1


# -- looking things up -----------------------------------------------------------------------------


async def test_device_and_history_show_the_codes(graphql_chat: Chat) -> None:
    chat = graphql_chat
    await chat.say(AGENT, f"/days {DEVICE} 30")
    for days in range(1, 7):  # codes made elsewhere: only the ERM's history knows them
        chat.clock.advance(6)
        chat.sandbox.generate(DEVICE, CodeType.DAYS, days)
    codes = chat.codes()
    view = await chat.say(AGENT, "/device SELLER2503000042")
    assert "64ba2e1eaa6c7f107d7a8918" in (view.rendered or "") and codes[0] in (view.rendered or "")
    before = len(asked(chat.sandbox))
    first = await chat.say(AGENT, f"/history {DEVICE}")
    text = first.rendered or ""
    assert "codes 1–5 of 7, newest first" in text and [b["text"] for b in first.buttons] == ["Older ▶"]
    assert [code in text for code in codes] == [False, False, True, True, True, True, True]
    assert text.index(codes[6]) < text.index(codes[2])  # newest first
    after = chat.api.position
    await chat.api.user_taps(AGENT, first, first.button("Older")["callback_data"])
    older = await chat.api.wait_for(AGENT.id, after=after, methods=("editMessageText",))
    assert "codes 6–7 of 7" in (older.rendered or "") and [b["text"] for b in older.buttons] == ["◀ Newer"]
    assert "#1 " in (older.rendered or "") and codes[0] in (older.rendered or "") and "30 days" in (older.rendered or "")
    assert "getItemsForDownloadById" in asked(chat.sandbox)[before:]


async def test_find_a_synced_device_and_the_erms_refusal_in_its_words(graphql_chat: Chat) -> None:
    chat = graphql_chat
    found = await find(chat, "0017")
    assert labels(found) == ["SBX00000000017 · Solar home system", "TEST2503000017 · Solar home system"]
    assert "getAllClientItems" in asked(chat.sandbox)  # learned by the device sync, over GraphQL
    opened = await chat.tap(AGENT, found, found.button("TEST2503000017")["callback_data"])
    assert (opened.rendered or "").startswith("TEST2503000017\nSolar home system TEST2503000017\nAlso known as: ")
    assert "SELLER2503000042" in (opened.rendered or "")
    chat.sandbox.fail_next(1, status=200, body=FORBIDDEN, paths=["/graphql/generateDaysCode"])
    await chat.api.user_says(AGENT, f"/days {DEVICE} 1")
    refused = await chat.api.wait_for(lambda s: s.chat_id == AGENT.id and "not assigned" in (s.rendered or ""))
    assert "The ERM refused the code" in (refused.rendered or "")
    assert "Product is not assigned to you" in (refused.rendered or "")
    assert chat.codes() == [] and asked(chat.sandbox).count("generateDaysCode") == 1
    assert [row.status for row in await requests(chat)] == [Status.REFUSED]
