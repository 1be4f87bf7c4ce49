"""Who may do what, tried the way an attacker would: through the chat, against the real bot.

Each test here failed on the bot before the security review (issue 12) and passes after.
"""

from __future__ import annotations

import copy
import re
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlmodel import select
from telegram import Bot, Message, MessageEntity, Update, User
from telegram.ext import CallbackQueryHandler, CommandHandler, ConversationHandler

import handlers
from bot.clock import ManualClock
from bot.standins.erm import ErmSandbox
from bot.standins.telegram import Sent, TelegramUser
from bot.standins.telegram.html import command_entities as _command_entities
from handlers.access import command_of
from handlers.roles import MANAGERS, STAFF, Command
from handlers.table import COMMANDS
from storage import ledger
from storage.models import CodeRequest, Invite, Payment, Role
from tests.support.chat import AGENT, MANAGER, OTHER_AGENT, STRANGER, Chat, chatting

DEVICE = "TEST2503000017"
LINK = re.compile(r"https://t\.me/paygbot_demo_bot\?start=([A-Za-z0-9_-]+)")


pytestmark = pytest.mark.agents(AGENT)  # the ``chat`` fixture (conftest.py) makes AGENT an agent


async def rows(chat: Chat, table: Any) -> list[Any]:
    async with chat.bot.services.db.read() as session:
        return list((await session.exec(select(table))).all())


# -- 1. the gate sees what the handlers see ------------------------------------------------------


async def test_an_agent_cannot_reach_manager_commands_by_punctuation(chat: Chat) -> None:
    await chat.make(OTHER_AGENT, Role.AGENT)
    await chat.say(AGENT, f"/device {DEVICE}")  # the device is known to the ledger
    for sneaky in ("/invite-x manager", "/invite@paygbot_demo_bot, manager", f"/revoke! {OTHER_AGENT.id}",
                   f"/price, {DEVICE} 0.01", "/export.", "/summary;", "/agents?", "/assign- REF1 " + DEVICE):
        refused = await chat.say(AGENT, sneaky)
        assert refused.rendered == "That command is for managers.", sneaky
    assert await rows(chat, Invite) == []
    async with chat.bot.services.db.read() as session:
        other = await ledger.get_person(session=session, telegram_id=OTHER_AGENT.id)
        device = await ledger.find_device(session=session, ref=DEVICE)
    assert other is not None and other.active
    assert device is not None and device.daily_price is None
    assert not [sent for sent in chat.api.sent_to(AGENT.id) if sent.method in ("sendDocument", "sendPhoto")]


COMMAND_TEXT = st.builds(
    lambda name, tail, rest: f"/{name}{tail}{rest}",
    st.sampled_from(sorted(c.name for c in COMMANDS) + ["invitex", "Invite", "PRICE"]),
    st.sampled_from(["", "-x", "!", ",", ".", "@paygbot_demo_bot", "@other_bot", "@paygbot_demo_bot!", "_x", "é",
                     "/", " "]),
    st.text(alphabet=" abc123-!.,", max_size=8),
)


@settings(max_examples=300, deadline=None)
@given(text=COMMAND_TEXT)
def test_the_gate_reads_the_command_exactly_as_ptb_does(text: str) -> None:
    """For any text, the command PTB's CommandHandler would run is the one the gate judged."""
    bot = Bot("123:abc")
    bot._bot_user = User(99, "paygbot", True, username="paygbot_demo_bot")  # what getMe would have told
    entities = [MessageEntity(e["type"], e["offset"], e["length"]) for e in _command_entities(text)]
    message = Message.de_json({"message_id": 1, "date": 0, "chat": {"id": 5, "type": "private"},
                               "from": {"id": 5, "is_bot": False, "first_name": "A"}, "text": text,
                               "entities": [e.to_dict() for e in entities]}, bot)
    update = Update(1, message=message)
    gate_sees = command_of(update)
    for name in (command.name for command in COMMANDS):
        runs = CommandHandler(name, lambda *_: None).check_update(update)
        if runs:
            assert gate_sees == name, (text, gate_sees, name)


def test_every_command_of_the_table_is_registered_with_its_own_role_check() -> None:
    """Registration is made from the table: each command's handler checks the table's roles itself."""
    from telegram.ext import Application

    application = Application.builder().token("123:abc").build()
    handlers.register(application)
    found: dict[str, Any] = {}
    for handler in application.handlers[handlers.MAIN]:
        inner = ([*handler.entry_points, *handler.fallbacks] if isinstance(handler, ConversationHandler)
                 else [handler])
        for each in inner:
            if isinstance(each, CommandHandler) and each.callback.__name__ != "cancel":
                for name in each.commands:
                    found[name] = each.callback
    assert set(found) == {command.name for command in COMMANDS}
    for command in COMMANDS:
        assert getattr(found[command.name], "allowed", None) == command.allowed, command.name
    buttons = {handler.callback.__name__: handler.callback for handler in application.handlers[handlers.MAIN]
               if isinstance(handler, CallbackQueryHandler)}
    for name in ("approval_tapped", "assign_tapped"):  # buttons that act for managers check it themselves
        assert getattr(buttons[name], "allowed", None) == MANAGERS, name
    for name in ("history_tapped", "confirmation_tapped"):
        assert getattr(buttons[name], "allowed", None) == STAFF, name


async def secret(update: Update, context: Any) -> None:
    await context.bot.send_message(update.effective_chat.id, "the secret")  # type: ignore[union-attr]


async def test_a_new_manager_command_is_refused_to_agents(erm_sandbox: ErmSandbox, erm_url: str, database_url: str,
                                                          clock: ManualClock, monkeypatch: pytest.MonkeyPatch) -> None:
    """Declared once in the table, a new command is the managers' only: the gate and its handler refuse
    agents (an allow-list), and only the managers' menu lists it."""
    monkeypatch.setattr("handlers.table.COMMANDS", [*COMMANDS, Command("secret", secret, MANAGERS)])
    async with chatting(erm_sandbox, erm_url, database_url, clock) as chat:
        await chat.make(AGENT, Role.AGENT)
        assert (await chat.say(MANAGER, "/secret")).rendered == "the secret"
        assert (await chat.say(AGENT, "/secret")).rendered == "That command is for managers."
        assert (await chat.say(AGENT, "/secret!")).rendered == "That command is for managers."
        assert "secret" in [c["command"] for c in await chat.menu(MANAGER.id, until=lambda listed: len(listed) > 10)]
        assert "secret" not in [c["command"] for c in await chat.menu(AGENT.id, until=bool)]


# -- 5. an edit is not a new order ---------------------------------------------------------------


async def edit(chat: Chat, user: TelegramUser, message: dict[str, Any], text: str) -> None:
    """``user`` edits ``message`` to read ``text``, as Telegram sends it: an ``edited_message`` update."""
    edited = copy.deepcopy(message)
    edited["text"], edited["edit_date"] = text, message["date"] + 5
    edited.pop("entities", None)
    if entities := _command_entities(text):
        edited["entities"] = entities
    await chat.api.push_update("edited_message", edited)


def edit_refused(sent: Sent) -> bool:
    return sent.chat_id == AGENT.id and "edited command is not carried out" in (sent.rendered or "")


async def test_editing_a_command_does_not_repeat_it(chat: Chat) -> None:
    await chat.say(MANAGER, f"/price {DEVICE} 10 KES")
    after = chat.api.position
    sent = await chat.api.user_says(AGENT, f"/days {DEVICE} 1")
    await chat.api.wait_for(AGENT.id, after=after)
    after = chat.api.position
    await edit(chat, AGENT, sent, f"/days {DEVICE} 2")
    await chat.api.wait_for(edit_refused, after=after)
    after = chat.api.position
    paid = await chat.api.user_says(AGENT, f"/pay {DEVICE} 50")
    await chat.api.wait_for(AGENT.id, after=after)
    after = chat.api.position
    await edit(chat, AGENT, paid, f"/pay {DEVICE} 500")
    await chat.api.wait_for(edit_refused, after=after)
    assert [r.days for r in await rows(chat, CodeRequest) if r.source.value == "chat"] == [1]
    assert [p.amount for p in await rows(chat, Payment)] == [Decimal(50)]
    assert [r.days for r in await rows(chat, CodeRequest) if r.source.value == "payment"] == [5]  # KES 50 at 10


# -- 6. strangers do not slow everyone -------------------------------------------------------------


async def test_a_flooding_stranger_is_told_once_and_costs_no_sends(chat: Chat) -> None:
    for number in range(200):
        await chat.api.user_says(STRANGER, f"/days {DEVICE} {number + 1}")
    code = await chat.say(AGENT, f"/days {DEVICE} 3")
    assert "3 days" in (code.rendered or "")
    refusals = [sent for sent in chat.api.sent_to(STRANGER.id) if "not registered" in (sent.rendered or "")]
    assert len(refusals) == 1
    assert [r.days for r in await rows(chat, CodeRequest)] == [3]


async def test_a_stranger_guessing_invites_or_sharing_numbers_gets_a_few_answers(chat: Chat) -> None:
    """Joining is open to strangers, but not without end: five answers in five minutes, then one word."""
    for number in range(30):
        await chat.api.user_says(STRANGER, f"/start AAAAAAAA{number:04d}")
    for _ in range(10):
        await chat.api.user_shares_contact(STRANGER, "+255700000001")
    code = await chat.say(AGENT, f"/days {DEVICE} 2")  # the bot is not held up meanwhile
    assert "2 days" in (code.rendered or "")
    told = chat.api.sent_to(STRANGER.id)
    assert len([sent for sent in told if "invite link is not valid" in (sent.rendered or "")]) <= 5
    assert len(told) <= 6


# -- codes go to private chats only -------------------------------------------------------------------


async def test_nothing_is_done_in_a_group_chat(chat: Chat) -> None:
    group = -100555
    after = chat.api.position
    await chat.api.user_says(AGENT, f"/days {DEVICE} 5", chat=group)
    answer = await chat.api.wait_for(group, after=after)
    assert "only work in private chats" in (answer.rendered or "")
    for text in (f"/days {DEVICE} 6", "/code", f"/device {DEVICE}"):
        await chat.api.user_says(AGENT, text, chat=group)
    assert "Hello Alex" in ((await chat.say(AGENT, "/start")).rendered or "")
    assert await rows(chat, CodeRequest) == [] and chat.codes() == []
    assert len(chat.api.sent_to(group)) == 1


# -- approvals and invites ---------------------------------------------------------------------------


async def test_a_free_code_approved_after_its_agent_was_revoked_goes_to_the_manager(chat: Chat) -> None:
    preview = await chat.say(AGENT, f"/free {DEVICE}")
    after = chat.api.position
    await chat.tap(AGENT, preview, preview.button("Yes")["callback_data"])
    ask = await chat.api.wait_for(MANAGER.id, after=after, methods=("sendMessage",))
    assert "no longer has a role" in ((await chat.say(MANAGER, f"/revoke {AGENT.id}")).rendered or "")
    agent_heard = len(chat.api.sent_to(AGENT.id))
    after = chat.api.position
    await chat.api.user_taps(MANAGER, ask, ask.button("Approve")["callback_data"])
    code = await chat.api.wait_for(lambda sent: sent.chat_id == MANAGER.id and "unlocks for good" in (sent.rendered or ""),
                                   after=after)
    assert chat.codes()[0] in (code.rendered or "")
    assert len(chat.api.sent_to(AGENT.id)) == agent_heard
    [request] = await rows(chat, CodeRequest)
    manager = await chat.bot.services.people.who(MANAGER.id)
    assert manager.person is not None and request.requested_by_id == manager.person.id
    assert request.chat_id == MANAGER.id


async def test_a_manager_who_opens_an_agent_invite_stays_a_manager(chat: Chat) -> None:
    other = TelegramUser(1002, "Moses")
    await chat.make(other, Role.MANAGER)
    invite = await chat.say(MANAGER, "/invite agent")
    match = LINK.search(invite.rendered or "")
    assert match
    refused = await chat.say(other, f"/start {match[1]}")
    assert "You are a manager already" in (refused.rendered or "")
    assert (await chat.bot.services.people.who(other.id)).kind.value == "manager"
    joined = await chat.say(OTHER_AGENT, f"/start {match[1]}")  # the link still works for its agent
    assert "Welcome" in (joined.rendered or "")
    assert (await chat.bot.services.people.who(OTHER_AGENT.id)).kind.value == "agent"
