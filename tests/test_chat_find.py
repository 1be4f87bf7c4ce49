"""/find: agents and managers find a device by the last digits printed on it, part of another of its ids
or words of its description, among the ledger's devices (those the device sync learned), and open it
with a button."""

from __future__ import annotations

import copy
import re
from datetime import UTC, datetime

from telegram.ext import Application, CallbackQueryHandler

import handlers
from bot.clock import ManualClock
from bot.standins.erm import ErmSandbox
from bot.standins.telegram import Sent, TelegramUser
from handlers.finding import device_tapped
from handlers.roles import STAFF
from storage import ledger
from storage.db import Database
from storage.models import Role
from tests.support.chat import AGENT, CUSTOMER, MANAGER, REPLIES, STRANGER, Chat, chatting
from tests.support.waiting import eventually

LINK = re.compile(r"https://t\.me/paygbot_demo_bot\?start=([A-Za-z0-9_-]+)")


def labels(reply: Sent) -> list[str]:
    return [button["text"] for button in reply.buttons]


async def find(chat: Chat, text: str, user: TelegramUser = AGENT) -> Sent:
    await chat.synced()
    return await chat.say(user, f"/find {text}")


# -- through the chat ----------------------------------------------------------------------------


async def test_the_last_digits_find_the_device_and_its_button_opens_it(agent: Chat) -> None:
    found = await find(agent, "0017")
    assert found.rendered == "2 devices match “0017” — tap one to open it:"
    assert labels(found) == ["SBX00000000017 · Solar home system", "TEST2503000017 · Solar home system"]
    assert all(len(button["callback_data"].encode()) <= 64 for button in found.buttons)
    assert agent.erm_calls() == []  # the ledger's devices: the ERM is not asked
    opened = await agent.tap(AGENT, found, found.button("TEST2503000017")["callback_data"])
    assert opened.text == (await agent.say(AGENT, "/device TEST2503000017")).text
    assert (opened.rendered or "").startswith("TEST2503000017\nSolar home system TEST2503000017\nAlso known as: ")
    assert "SELLER2503000042" in (opened.rendered or "") and "Codes today: 0 of 10" in (opened.rendered or "")
    again = await agent.tap(AGENT, found, found.button("SBX00000000017")["callback_data"])  # the list stays
    assert (again.rendered or "").startswith("SBX00000000017\n")


async def test_part_of_a_seller_id_finds_the_device_and_names_that_id(agent: Chat) -> None:
    found = await find(agent, "seller25")
    assert found.rendered == "1 device matches “seller25” — tap it to open it:"
    assert labels(found) == ["TEST2503000017 (SELLER2503000042) · Solar home system"]
    by_erm_id = await agent.say(AGENT, "/find 2E1EAA6C")
    assert labels(by_erm_id) == ["TEST2503000017 (64ba2e1eaa6c7f107d7a8918) · Solar home system"]


async def test_words_of_the_description_find_devices_whatever_their_case(agent: Chat) -> None:
    found = await find(agent, "HOME system test25")
    assert found.rendered == "1 device matches “HOME system test25” — tap it to open it:"
    assert labels(found) == ["TEST2503000017 · Solar home system"]
    opened = await agent.tap(AGENT, found, found.buttons[0]["callback_data"])
    assert (opened.rendered or "").startswith("TEST2503000017\n")


async def test_like_wildcards_typed_match_only_themselves(agent: Chat) -> None:
    for typed in ("00%17", "000_17", "%%%", "___"):  # as wildcards, each would match devices
        nothing = await find(agent, typed)
        assert nothing.rendered is not None and nothing.rendered.startswith(f"No device's id or description contains "
                                                                          f"“{typed}”"), typed
        assert nothing.buttons == []


async def test_more_than_ten_show_the_first_ten_and_ask_for_more_digits(agent: Chat) -> None:
    found = await find(agent, "SBX000")
    assert found.rendered == "The first 10 of 48 devices matching “SBX000” — type more digits to narrow it:"
    assert labels(found) == [f"SBX{n:011d} · Solar home system" for n in range(1, 11)]
    narrower = await agent.say(AGENT, "/find SBX0000000004")
    assert narrower.rendered == "9 devices match “SBX0000000004” — tap one to open it:"
    assert len(narrower.buttons) == 9


async def test_too_short_nothing_found_and_bare(agent: Chat) -> None:
    await agent.synced()
    for typed in ("17", "  7  ", "ab"):
        short = await agent.say(AGENT, f"/find {typed}")
        assert short.rendered == ("Type at least 3 characters of the device's id or description — for example "
                                  "/find 0017 for the last digits printed on it."), typed
    nothing = await agent.say(AGENT, "/find ZZZ9")
    assert nothing.rendered == ("No device's id or description contains “ZZZ9”. Check the digits on the device.\n"
                                "A new device appears here once the bot has learned it from the ERM (every few "
                                "hours); /device with its full id works at once.")
    escaped = await agent.say(AGENT, "/find <b>x&y")
    assert escaped.rendered is not None and "“<b>x&y”" in escaped.rendered
    usage = await agent.say(AGENT, "/find")
    assert usage.rendered == ("Usage: /find text — part of a device's id or description, for example /find 0017 "
                              "for the last digits printed on it")
    assert (await agent.say(AGENT, "/find " + "7" * 65)).rendered == usage.rendered
    assert agent.erm_calls() == []


async def test_a_manager_finds_too(chat: Chat) -> None:
    found = await find(chat, "0009", user=MANAGER)
    assert labels(found) == ["01AH2307000009 · Solar home system", "SBX00000000009 · Solar home system"]
    opened = await chat.tap(MANAGER, found, found.button("01AH2307000009")["callback_data"])
    assert (opened.rendered or "").startswith("01AH2307000009\n")
    assert "find" in [c["command"] for c in await chat.menu(MANAGER.id, until=lambda listed: len(listed) > 10)]


async def test_customers_and_strangers_are_refused_and_cannot_press_the_buttons(agent: Chat) -> None:
    registered = await agent.say(AGENT, "/customer TEST2503000017 0712345678 Jane Wanjiru")
    token = LINK.search(registered.rendered or "")
    assert token
    await agent.say(CUSTOMER, f"/start {token.group(1)}")
    assert "for agents and managers" in ((await find(agent, "0017", user=CUSTOMER)).rendered or "")
    assert "not registered" in ((await agent.say(STRANGER, "/find 0017")).rendered or "")
    found = await agent.say(AGENT, "/find 0017")
    after = agent.api.position
    for person, refusal in ((CUSTOMER, "for agents and managers"), (STRANGER, "not registered")):
        query = await agent.api.user_taps(person, found, found.buttons[0]["callback_data"])  # a forged tap
        answer = await eventually(lambda q=query: agent.api.answered(q), "the refusal")
        assert answer.show_alert and refusal in (answer.text or ""), person
    assert [sent for sent in agent.api.sent[after:] if sent.method in REPLIES] == []
    assert "find" in [c["command"] for c in await agent.menu(AGENT.id, until=lambda listed: "find" in str(listed))]


async def test_a_button_of_a_device_gone_since_says_so(agent: Chat) -> None:
    found = await find(agent, "0017")
    forged = copy.deepcopy(found.message)
    forged["reply_markup"] = {"inline_keyboard": [[{"text": "gone", "callback_data": "device:99999"}]]}
    after = agent.api.position
    query = await agent.api.user_taps(AGENT, forged, "device:99999")
    answer = await eventually(lambda: agent.api.answered(query), "the answer")
    assert answer.text == "That button is no longer active."
    assert agent.api.sent[after:] == []


def test_the_button_checks_the_role_itself() -> None:
    application = Application.builder().token("123:abc").build()
    handlers.register(application)
    tapped = [handler.callback for handler in application.handlers[handlers.MAIN]
              if isinstance(handler, CallbackQueryHandler) and handler.callback.__name__ == "device_tapped"]
    assert tapped == [device_tapped] and getattr(device_tapped, "allowed", None) == STAFF


# -- the ledger's query --------------------------------------------------------------------------

NOW = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)


async def devices(db: Database) -> None:
    made = [
        (["64ba2e1eaa6c7f107d7a8918", "TEST2503000017", "SELLER2503000042", "163"], "Solar home system TEST2503000017"),
        (["aaaa00000000000000000001", "AB_C100", "SELLERAB_C100"], "100% solar lantern"),
        (["aaaa00000000000000000002", "ABXC100"], "Solar Lantern"),
        (["aaaa00000000000000000003", "SBX00000000163"], None),
        (["aaaa00000000000000000004", "163000"], None),
    ]
    async with db.write() as session:
        for ids, description in made:
            await ledger.add_device(session=session, ids=ids, now=NOW, label=ids[1], description=description)


async def search(db: Database, text: str, limit: int = 10) -> tuple[list[tuple[str, str | None]], int]:
    async with db.read() as session:
        found = await ledger.search_devices(session=session, text=text, limit=limit)
    return [(match.label, match.alias) for match in found.matches], found.total


async def test_the_ledger_finds_by_any_id_or_the_description(db: Database) -> None:
    await devices(db)
    # an exact id first, then ids ending with the text, then ids holding it; by label within each
    assert await search(db, "163") == ([("TEST2503000017", "163"), ("SBX00000000163", "SBX00000000163"),
                                        ("163000", "163000")], 3)
    assert await search(db, "seller25") == ([("TEST2503000017", "SELLER2503000042")], 1)
    assert await search(db, "2E1EAA") == ([("TEST2503000017", "64ba2e1eaa6c7f107d7a8918")], 1)
    # the description, whatever its case; a device found by its ids and its description is there once
    assert await search(db, "SOLAR LANTERN") == ([("ABXC100", None), ("AB_C100", None)], 2)
    assert await search(db, "TEST2503") == ([("TEST2503000017", "TEST2503000017")], 1)
    # each device once, however many of its ids hold the text
    assert await search(db, "00") == ([("163000", "163000"), ("ABXC100", "ABXC100"), ("AB_C100", "AB_C100"),
                                       ("SBX00000000163", "SBX00000000163"), ("TEST2503000017", "TEST2503000017")], 5)
    assert await search(db, "00", limit=2) == ([("163000", "163000"), ("ABXC100", "ABXC100")], 5)
    assert await search(db, "nothing like it") == ([], 0)


async def test_like_wildcards_are_plain_characters(db: Database) -> None:
    await devices(db)
    assert await search(db, "B_C") == ([("AB_C100", "AB_C100")], 1)  # not ABXC100
    assert await search(db, "0%") == ([("AB_C100", None)], 1)  # its description says 100%
    assert await search(db, "%") == ([("AB_C100", None)], 1)
    assert await search(db, "_") == ([("AB_C100", "AB_C100")], 1)
    assert await search(db, "\\") == ([], 0)


async def test_over_graphql_the_synced_devices_are_found(erm_sandbox: ErmSandbox, erm_url: str, database_url: str,
                                                         clock: ManualClock) -> None:
    async with chatting(erm_sandbox, erm_url, database_url, clock, ERM_API="graphql",
                        ERM_GRAPHQL_URL=f"{erm_url}/graphql") as chat:
        await chat.make(AGENT, Role.AGENT)
        found = await find(chat, "seller25")
        assert labels(found) == ["TEST2503000017 (SELLER2503000042) · Solar home system"]
        opened = await chat.tap(AGENT, found, found.buttons[0]["callback_data"])
        assert (opened.rendered or "").startswith("TEST2503000017\n")
        paths = {call.path for call in erm_sandbox.calls}
        assert "/graphql" in paths and not any(path.startswith("/oves/assignedItemsList") for path in paths)
