"""A person's chat state lives in the ledger: a dialogue half done and a button waiting for its tap go on in
another process — here, the bot started again on the same ledger and chats, with nothing else carried over."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import event

from bot.clock import ManualClock
from bot.standins.erm import ErmSandbox
from bot.standins.telegram import FakeBotApi
from storage import ledger
from storage.db import Database, sync_engine
from storage.models import Role
from tests.support.chat import AGENT, CUSTOMER, MANAGER, STRANGER, TOKEN, chatting
from tests.support.waiting import eventually

DEVICE = "TEST2503000017"


async def test_a_dialogue_and_a_waiting_button_go_on_in_another_process(
    erm_sandbox: ErmSandbox, erm_url: str, database_url: str, clock: ManualClock
) -> None:
    api = FakeBotApi(TOKEN)
    async with chatting(erm_sandbox, erm_url, database_url, clock, api=api) as first:
        await first.make(AGENT, Role.AGENT)
        await first.say(AGENT, f"/days {DEVICE} 30")
        clock.advance(6)
        ask = await first.say(AGENT, "/days")
        assert ask.rendered == "Which device? Tap one or type its id."
        preview = await first.say(MANAGER, f"/reset {DEVICE}")
        assert "sets TEST2503000017 to 0 days" in (preview.rendered or "")
        db = first.bot.services.db

        async def kept(user_id: int) -> str | None:
            async with db.read() as session:
                return await ledger.chat_state(session=session, user_id=user_id)

        # kept in the ledger (just after each answer), not only in this process
        assert '"days"' in await eventually(lambda: kept(AGENT.id), "the agent's dialogue kept")
        assert "reset" in await eventually(lambda: kept(MANAGER.id), "the manager's button kept")

    clock.advance(60)
    async with chatting(erm_sandbox, erm_url, database_url, clock, api=api) as second:
        days = await second.tap(AGENT, ask, ask.button(DEVICE)["callback_data"])  # the dialogue's next step
        assert [b["text"] for b in days.buttons] == ["7", "14", "30", "Other"]
        confirm = await second.tap(AGENT, days, "days:14")
        assert "Issue a code of 14 days for TEST2503000017?" in (confirm.rendered or "")
        code = await second.tap(AGENT, confirm, "ok:yes")
        assert len(second.codes()) == 2 and second.codes()[1] in (code.rendered or "")
        clock.advance(6)
        reset = await second.tap(MANAGER, preview, preview.button("Yes")["callback_data"])
        assert "reset code" in (reset.rendered or "") and len(second.codes()) == 3
        again = await second.tap(MANAGER, preview, preview.button("Yes")["callback_data"])
        assert again.rendered == "That button is no longer active." and len(second.codes()) == 3
        async with second.bot.services.db.read() as session:  # nothing left waiting: nothing kept
            assert await ledger.chat_state(session=session, user_id=AGENT.id) is None


async def test_who_sent_an_update_is_read_with_their_chat_state_and_a_role_taken_shows_at_once(
    erm_sandbox: ErmSandbox, erm_url: str, database_url: str, clock: ManualClock
) -> None:
    """The read that loads a person's chat state also finds who they are, for the access gate: one statement
    per update, not two transactions. It is read again for each update, so a role taken away counts from the very next one."""
    async with chatting(erm_sandbox, erm_url, database_url, clock) as chat:
        await chat.make(AGENT, Role.AGENT)
        await chat.say(AGENT, "/help")  # (a first update also registers the agent's menu)
        db = chat.bot.services.db
        begun: dict[object, int] = {}  # connection -> the number of its transaction
        read_in: list[int] = []  # the transaction of each statement that reads a chat state or a person

        def began(connection: object) -> None:
            begun[connection] = len(begun) + 1

        def statement(connection: object, _cursor: object, sql: str, *_: object) -> None:
            words = sql.split()
            if any(table in words for table in ("chat_state", "person")) and "FROM" in words:
                read_in.append(begun.get(connection, 0))

        listens = [(sync_engine(db.reader), "begin", began), (sync_engine(db.reader), "before_cursor_execute", statement)]
        for listen in listens:
            event.listen(*listen)
        try:
            helped = await chat.say(AGENT, "/help")
        finally:
            for listen in listens:
                event.remove(*listen)
        assert "/days" in (helped.rendered or "")
        assert len(read_in) == 1  # one statement (on PostgreSQL the shared pacing of Telegram's limits writes beside it)
        async with db.write() as session:
            await ledger.deactivate(session=session, telegram_id=AGENT.id)
        refused = await chat.say(AGENT, f"/days {DEVICE} 3")
        assert "/days" not in (refused.rendered or "") and chat.codes() == []


async def test_a_person_and_a_chat_state_are_read_together_whether_or_not_either_is_kept(db: Database) -> None:
    now = datetime(2026, 12, 6, 9, tzinfo=UTC)
    async with db.write() as session:
        await ledger.put_person(session=session, telegram_id=AGENT.id, role=Role.AGENT, name="Alex", now=now)
        await ledger.put_person(session=session, telegram_id=MANAGER.id, role=Role.MANAGER, name="Mary", now=now)
        await ledger.keep_chat_state(session=session, user_id=AGENT.id, data='{"user_data":{"a":1}}', now=now)
        await ledger.keep_chat_state(session=session, user_id=CUSTOMER.id, data='{"user_data":{"c":1}}', now=now)
    async with db.read() as session:
        read = {user.id: await ledger.person_and_chat_state(session=session, user_id=user.id)
                for user in (AGENT, MANAGER, CUSTOMER, STRANGER)}
    assert [(person.name if person else None, data) for person, data in read.values()] == [
        ("Alex", '{"user_data":{"a":1}}'), ("Mary", None), (None, '{"user_data":{"c":1}}'), (None, None)]
