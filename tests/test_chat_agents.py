"""Agents and managers through the chat: joining, /days, /device, /history, /customer, bad input."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import event
from sqlmodel import select

import handlers.agent
from bot.clock import ManualClock
from bot.erm.models import CodeType
from bot.standins.erm import ErmSandbox
from storage.db import sync_engine
from storage.models import CodeRequest, Role
from tests.support.chat import AGENT, CUSTOMER, MANAGER, OTHER_AGENT, STRANGER, Chat, chatting

DEVICE = "TEST2503000017"
LINK = re.compile(r"https://t\.me/paygbot_demo_bot\?start=([A-Za-z0-9_-]+)")


async def ledger_rows(chat: Chat) -> list[CodeRequest]:
    async with chat.bot.services.db.read() as session:
        return list((await session.exec(select(CodeRequest))).all())


async def test_a_manager_invites_an_agent_who_joins_once(chat: Chat) -> None:
    invite = await chat.say(MANAGER, "/invite agent")
    assert invite.method == "sendPhoto" and invite.photo and invite.photo.startswith(b"\x89PNG")
    match = LINK.search(invite.rendered or "")
    assert match, invite.rendered
    welcome = await chat.say(AGENT, f"/start {match.group(1)}")
    assert "You are an agent" in (welcome.rendered or "")
    assert [c["command"] for c in await chat.menu(AGENT.id)][:2] == ["days", "free"]
    again = await chat.say(OTHER_AGENT, f"/start {match.group(1)}")
    assert "already been used" in (again.rendered or "")
    refused = await chat.say(OTHER_AGENT, "/days TEST2503000017 5")
    assert "not registered" in (refused.rendered or "")
    code = await chat.say(AGENT, f"/days {DEVICE} 5")
    assert chat.codes() and chat.codes()[0] in (code.rendered or "")


async def test_invites_are_refused_when_made_up_or_expired(chat: Chat) -> None:
    made_up = await chat.say(STRANGER, "/start not-a-real-token-123")
    assert "not valid" in (made_up.rendered or "")
    invite = await chat.say(MANAGER, "/invite manager")
    token = LINK.search(invite.rendered or "")
    assert token
    chat.clock.advance(hours=24, seconds=1)
    expired = await chat.say(STRANGER, f"/start {token.group(1)}")
    assert "expired" in (expired.rendered or "")
    assert "not registered" in ((await chat.say(STRANGER, "/device TEST2503000017")).rendered or "")


async def test_invite_is_for_managers(agent: Chat) -> None:
    assert (await agent.say(AGENT, "/invite agent")).rendered == "That command is for managers."
    usage = await agent.say(MANAGER, "/invite boss")
    assert "Usage: /invite agent" in (usage.rendered or "")


async def test_strangers_get_start_and_help_only(chat: Chat) -> None:
    start = await chat.say(STRANGER, "/start")
    assert "not registered yet" in (start.rendered or "")
    assert start.reply_markup and start.reply_markup["keyboard"][0][0]["request_contact"] is True
    assert "not registered yet" in ((await chat.say(STRANGER, "/help")).rendered or "")
    refused = await chat.say(STRANGER, "/days TEST2503000017 5")
    assert "Sorry, you are not registered" in (refused.rendered or "")
    for command in ("/device TEST2503000017", "/history TEST2503000017", "/customer TEST2503000017 0712345678 Jane",
                    "/invite agent", "/balance", "/whatever", "hello"):
        await chat.api.user_says(STRANGER, command)  # refused without a word: told once is enough
    assert "not registered yet" in ((await chat.say(STRANGER, "/help")).rendered or "")
    chat.clock.advance(minutes=5)
    assert "Sorry, you are not registered" in ((await chat.say(STRANGER, "/balance")).rendered or "")
    assert len(chat.api.sent_to(STRANGER.id)) == 5
    assert chat.erm_calls() == [] and await ledger_rows(chat) == []
    assert [c["command"] for c in chat.api.commands_for()] == ["start", "help", "language"]


async def test_days_answers_with_the_code_in_monospace(agent: Chat) -> None:
    reply = await agent.say(AGENT, f"/days {DEVICE} 30")
    [record] = agent.sandbox.device(DEVICE).codes
    assert reply.text is not None and f"<code>{record.keypad}</code>" in reply.text
    assert any(entity["type"] == "code" for entity in reply.entities)
    until = (agent.clock.now() + timedelta(days=30)).strftime("%d %b %Y")
    assert DEVICE in (reply.rendered or "") and "30 days" in (reply.rendered or "") and until in (reply.rendered or "")
    assert "sandbox" not in (reply.rendered or "")


async def test_a_second_code_is_queued_and_follows(agent: Chat) -> None:
    await agent.say(AGENT, f"/days {DEVICE} 1")
    queued = await agent.say(AGENT, f"/days {DEVICE} 2")
    assert "Queued" in (queued.rendered or "") and "about 6 secs" in (queued.rendered or "")
    agent.clock.advance(6)
    follow = await agent.next(AGENT)
    assert agent.codes()[1] in (follow.rendered or "") and "2 days" in (follow.rendered or "")


async def test_refusals_say_what_is_possible(agent: Chat) -> None:
    await agent.say(AGENT, f"/days {DEVICE} 1000")
    stacking = await agent.say(AGENT, f"/days {DEVICE} 200")
    assert "At most 94 days fit now" in (stacking.rendered or "") or "At most 95 days fit now" in (stacking.rendered or "")
    unknown = await agent.say(AGENT, "/days NOSUCH00001 5")
    assert "does not know device NOSUCH00001" in (unknown.rendered or "")
    assert len(agent.codes()) == 1


async def test_daily_limit_refusal_names_the_time(erm_sandbox: ErmSandbox, erm_url: str, database_url: str,
                                                  clock: ManualClock) -> None:
    async with chatting(erm_sandbox, erm_url, database_url, clock, PAYGBOT_DAILY_CODE_LIMIT="1",
                        PAYGBOT_TIMEZONE="Africa/Nairobi") as chat:
        await chat.make(AGENT, Role.AGENT)
        await chat.say(AGENT, f"/days {DEVICE} 1")
        refused = await chat.say(AGENT, f"/days {DEVICE} 1")
        assert "all its codes for today" in (refused.rendered or "") and "23 Nov 2026 00:00" in (refused.rendered or "")


async def test_the_erm_own_refusal_reaches_the_agent(agent: Chat) -> None:
    await agent.say(AGENT, f"/days {DEVICE} 1")
    agent.sandbox.fail_next(1, status=403, body={"message": "Product is suspended"}, paths=["/otp/daysCode"])
    agent.clock.advance(6)
    await agent.api.user_says(AGENT, f"/days {DEVICE} 1")
    refused = await agent.api.wait_for(lambda s: s.chat_id == AGENT.id and "suspended" in (s.rendered or ""))
    assert "The ERM refused the code" in (refused.rendered or "")


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("/days", None),  # the dialogue, tested below
        (f"/days {DEVICE}", "Usage: /days"),
        (f"/days {DEVICE} 5 6", "Usage: /days"),
        (f"/days {DEVICE} abc", "Days must be a whole number from 1 to 1095"),
        (f"/days {DEVICE} 0", "Days must be a whole number"),
        (f"/days {DEVICE} -5", "Days must be a whole number"),
        (f"/days {DEVICE} 1096", "Days must be a whole number"),
        ("/days " + "X" * 500 + " 5", "Usage: /days"),
        ("/days '; DROP TABLE device;-- 5", "Usage: /days"),
        ("/days \"TEST\" 5", "A device id is 1 to 64"),
        ("/days TEST'OR'1=1 5", "A device id is 1 to 64"),
        ("/device", "Usage: /device"),
        ("/device a b", "Usage: /device"),
        ("/history", "Usage: /history"),
        ("/customer TEST2503000017 0712", "Usage: /customer"),
        ("/customer TEST2503000017 notaphone Jane", "does not look like a phone number"),
        ("/customer TEST2503000017 0712345678 <b>", "name of 1 to 100"),
    ],
)
async def test_bad_input_changes_nothing(agent: Chat, text: str, words: str | None) -> None:
    if words is None:
        return
    reply = await agent.say(AGENT, text)
    assert words in (reply.rendered or ""), reply.rendered
    assert agent.sandbox.generations == 0 and await ledger_rows(agent) == []
    assert not [call for call in agent.sandbox.calls if "daysCode" in call.path]


async def test_days_dialogue_with_buttons(agent: Chat) -> None:
    await agent.say(AGENT, f"/days {DEVICE} 1")  # a recent device to offer
    agent.clock.advance(6)
    ask = await agent.say(AGENT, "/days")
    assert ask.rendered == "Which device? Tap one or type its id." and ask.button(DEVICE)
    days = await agent.tap(AGENT, ask, ask.button(DEVICE)["callback_data"])
    assert [b["text"] for b in days.buttons] == ["7", "14", "30", "Other"]
    confirm = await agent.tap(AGENT, days, "days:14")
    assert "Issue a code of 14 days for TEST2503000017?" in (confirm.rendered or "")
    assert len(agent.codes()) == 1  # nothing before the confirmation
    code = await agent.tap(AGENT, confirm, "ok:yes")
    assert len(agent.codes()) == 2 and agent.codes()[1] in (code.rendered or "")


async def test_days_dialogue_typed_other_and_cancel(agent: Chat) -> None:
    ask = await agent.say(AGENT, "/days")
    assert ask.buttons == []  # no recent devices yet
    days = await agent.say(AGENT, DEVICE)
    other = await agent.tap(AGENT, days, "days:other")
    assert "Type the number of days" in (other.rendered or "")
    again = await agent.say(AGENT, "abc")
    assert "Days must be a whole number" in (again.rendered or "")
    confirm = await agent.say(AGENT, "45")
    assert "45 days" in (confirm.rendered or "")
    cancelled = await agent.say(AGENT, "/cancel")
    assert cancelled.rendered == "Cancelled. Nothing was issued or changed."
    assert agent.codes() == [] and await ledger_rows(agent) == []
    assert (await agent.say(AGENT, "/cancel")).rendered == "There is nothing to cancel."


async def test_silence_ends_a_dialogue(erm_sandbox: ErmSandbox, erm_url: str, database_url: str,
                                       clock: ManualClock, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(handlers.agent, "DIALOGUE_TIMEOUT", 0.5)
    async with chatting(erm_sandbox, erm_url, database_url, clock) as chat:
        await chat.make(AGENT, Role.AGENT)
        await chat.say(AGENT, "/days")
        ended = await chat.next(AGENT)
        assert "No answer for 5 minutes" in (ended.rendered or "")
        reply = await chat.say(AGENT, DEVICE)  # no longer an answer to the dialogue
        assert "did not understand" in (reply.rendered or "")


async def test_device_view(agent: Chat) -> None:
    await agent.say(AGENT, f"/days {DEVICE} 30")
    view = await agent.say(AGENT, "/device SELLER2503000042")
    text = view.rendered or ""
    assert "64ba2e1eaa6c7f107d7a8918" in text and "TEST2503000017" in text
    assert text.startswith("TEST2503000017\nSolar home system TEST2503000017\n")  # the ERM's description
    assert "Codes today: 1 of 10" in text and "(30 days left)" in text and agent.codes()[0] in text
    assert "Next code can go out: 22 Nov 2026 09:00" in text and "Daily price: not set" in text


async def test_history_is_paged_with_buttons(agent: Chat) -> None:
    for days in range(1, 8):
        agent.sandbox.generate(DEVICE, CodeType.DAYS, days)
        agent.clock.advance(6)
    first = await agent.say(AGENT, f"/history {DEVICE}")
    assert "codes 1–5 of 7" in (first.rendered or "") and [b["text"] for b in first.buttons] == ["Older ▶"]
    after = agent.api.position
    await agent.api.user_taps(AGENT, first, first.button("Older")["callback_data"])
    older = await agent.api.wait_for(AGENT.id, after=after, methods=("editMessageText",))
    assert "codes 6–7 of 7" in (older.rendered or "") and [b["text"] for b in older.buttons] == ["◀ Newer"]
    assert "#1 " in (older.rendered or "")


async def test_customer_registration_link_and_codes_reach_the_customer(agent: Chat) -> None:
    registered = await agent.say(AGENT, f"/customer {DEVICE} +254 712 345678 Jane Wanjiru")
    assert registered.method == "sendPhoto" and registered.photo and registered.photo.startswith(b"\x89PNG")
    token = LINK.search(registered.rendered or "")
    assert token and "Jane Wanjiru is the customer of TEST2503000017" in (registered.rendered or "")
    welcome = await agent.say(CUSTOMER, f"/start {token.group(1)}")
    assert "Your device codes will arrive here" in (welcome.rendered or "")
    await agent.api.user_says(AGENT, f"/days {DEVICE} 7")
    to_customer = await agent.next(CUSTOMER)
    assert agent.codes()[0] in (to_customer.rendered or "") and "Your new code" in (to_customer.rendered or "")
    balance = await agent.say(CUSTOMER, "/balance")
    assert "7 days left" in (balance.rendered or "")
    again = await agent.say(CUSTOMER, "/code")
    assert agent.codes()[0] in (again.rendered or "") and agent.sandbox.generations == 1
    refused = await agent.say(CUSTOMER, f"/days {DEVICE} 5")
    assert "for agents and managers" in (refused.rendered or "") and agent.sandbox.generations == 1


async def test_a_codes_readers_are_read_in_the_transaction_that_records_it(agent: Chat) -> None:
    """Between the ERM's answer and the messages no read of its own: the device's customer (and the asker's
    language) come from the transaction that records the code. Both still get it."""
    registered = await agent.say(AGENT, f"/customer {DEVICE} +254 712 345678 Jane Wanjiru")
    token = LINK.search(registered.rendered or "")
    assert token
    await agent.say(CUSTOMER, f"/start {token.group(1)}")
    db = agent.bot.services.db
    customer_reads: list[str] = []  # "read" or "write": the statements that read the customer, by where they ran

    def on(kind: str) -> Callable[..., None]:
        def statement(_connection: object, _cursor: object, sql: str, *_: object) -> None:
            if "customer" in sql.replace(",", " ").split() and sql.lstrip().upper().startswith("SELECT"):
                customer_reads.append(kind)
        return statement

    listens = [(sync_engine(db.reader), "before_cursor_execute", on("read")),
               (sync_engine(db.writer), "before_cursor_execute", on("write"))]
    for listen in listens:
        event.listen(*listen)
    try:
        after = agent.api.position
        await agent.api.user_says(AGENT, f"/days {DEVICE} 7")
        to_customer = await agent.api.wait_for(CUSTOMER.id, after=after)
        to_agent = await agent.api.wait_for(AGENT.id, after=after, methods=("sendMessage",))
    finally:
        for listen in listens:
            event.remove(*listen)
    assert agent.codes()[0] in (to_customer.rendered or "") and agent.codes()[0] in (to_agent.rendered or "")
    if db.writer is not db.reader:  # (on PostgreSQL one engine does both: no telling them apart here)
        assert customer_reads and set(customer_reads) == {"write"}


async def test_customer_dialogue_with_an_attached_contact(agent: Chat) -> None:
    await agent.say(AGENT, "/customer")
    await agent.say(AGENT, DEVICE)
    after = agent.api.position
    await agent.api.user_shares_contact(AGENT, "+254712000111", None, first_name="Peter", last_name="Mwangi")
    confirm = await agent.api.wait_for(AGENT.id, after=after, methods=("sendMessage",))
    assert "Register Peter Mwangi, phone +254712000111" in (confirm.rendered or "")  # kept as E.164
    done = await agent.tap(AGENT, confirm, "ok:yes")
    assert done.method == "sendPhoto" and LINK.search(done.rendered or "")


async def test_customer_joins_by_sharing_their_own_number(agent: Chat) -> None:
    await agent.say(AGENT, f"/customer {DEVICE} 0712345678 Jane Wanjiru")
    after = agent.api.position
    await agent.api.user_shares_contact(CUSTOMER, "+254712345678", 999)  # someone else's contact
    not_own = await agent.api.wait_for(CUSTOMER.id, after=after, methods=("sendMessage",))
    assert "your own number" in (not_own.rendered or "")
    after = agent.api.position
    await agent.api.user_shares_contact(CUSTOMER, "+254712345678")
    linked = await agent.api.wait_for(CUSTOMER.id, after=after, methods=("sendMessage",))
    assert "Your device codes will arrive here" in (linked.rendered or "")
    assert "No code has been issued" in ((await agent.say(CUSTOMER, "/code")).rendered or "")


async def test_a_429_from_telegram_delays_a_message_but_never_drops_it(agent: Chat) -> None:
    agent.api.fail_next(1, retry_after=1)
    reply = await agent.say(AGENT, f"/days {DEVICE} 3")
    assert agent.codes()[0] in (reply.rendered or "")
    assert agent.api.rate_limited == 1
    assert len([s for s in agent.api.sent_to(AGENT) if agent.codes()[0] in (s.rendered or "")]) == 1


async def test_sandbox_mode_says_so_in_every_reply(erm_sandbox: ErmSandbox, erm_url: str, database_url: str,
                                                   clock: ManualClock) -> None:
    async with chatting(erm_sandbox, erm_url, database_url, clock, ERM_USERNAME=None) as chat:
        await chat.make(AGENT, Role.AGENT)
        for text in ("/help", f"/days {DEVICE} 3", "/start"):
            reply = await chat.say(AGENT, text)
            assert "ERM sandbox: these are test codes" in (reply.rendered or ""), text
