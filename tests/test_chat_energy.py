"""Energy use in chat, end to end: an agent ties a customer's utility meter (/meter), the customer reads
their energy use (/usage: text and picture), staff read a device's, managers download Omnimetic's
spreadsheet — against the Omnimetic sandbox over loopback, in the reader's language."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from bot.clock import ManualClock
from bot.energy import CACHE_FOR
from bot.omnimetic.client import OmnimeticClient
from bot.standins.erm import ErmSandbox
from bot.standins.omnimetic import (
    DOC_ACCOUNT,
    EMPTY_ACCOUNT,
    EXAMPLE_CLIENT,
    JANE_ACCOUNT,
    OmnimeticSandbox,
    running,
)
from bot.standins.telegram import TelegramUser
from bot.texts import for_language
from storage import ledger
from storage.models import Role
from tests.support.chat import AGENT, CUSTOMER, MANAGER, Chat, chatting

DEVICE, OTHER_DEVICE = "TEST2503000017", "SBX00000000001"
NEIGHBOUR = TelegramUser(3004, "Peter", "Mwangi")
LINK = re.compile(r"\?start=([A-Za-z0-9_-]+)")
CLIENT_ID, SECRET = EXAMPLE_CLIENT


@pytest.fixture
def omnimetic(clock: ManualClock) -> OmnimeticSandbox:
    return OmnimeticSandbox(clock=clock)


@asynccontextmanager
async def energy_chat(erm_sandbox: ErmSandbox, erm_url: str, database_url: str, clock: ManualClock,
                      omnimetic: OmnimeticSandbox, **settings: Any) -> AsyncIterator[Chat]:
    async with running(omnimetic) as url, chatting(
        erm_sandbox, erm_url, database_url, clock, OMNIMETIC_BASE_URL=url, OMNIMETIC_CLIENT_ID=CLIENT_ID,
        OMNIMETIC_SECRET=SECRET, **settings,
    ) as chat:
        await chat.make(AGENT, Role.AGENT)
        yield chat


@pytest.fixture
async def chat(erm_sandbox: ErmSandbox, erm_url: str, database_url: str, clock: ManualClock,
               omnimetic: OmnimeticSandbox) -> AsyncIterator[Chat]:
    async with energy_chat(erm_sandbox, erm_url, database_url, clock, omnimetic) as running_chat:
        yield running_chat


async def register(chat: Chat, person: TelegramUser = CUSTOMER, device: str = DEVICE,
                   phone: str = "+254712345678") -> None:
    """The agent registers ``person`` as the customer of ``device``, and they join by the link."""
    registered = await chat.say(AGENT, f"/customer {device} {phone} {person.first_name} {person.last_name}")
    token = LINK.search(registered.rendered or "")
    assert token, registered.rendered
    await chat.say(person, f"/start {token.group(1)}")


async def usage(chat: Chat, person: TelegramUser, text: str = "/usage", *, picture: bool = False
                ) -> tuple[str, bytes | None]:
    """The text /usage answers with, and (``picture``: waited for) the picture that follows it; without
    ``picture``, none has come with the text (updates run concurrently: a later one proves nothing)."""
    after = chat.api.position
    reply = await chat.say(person, text)
    if picture:
        photo = await chat.api.wait_for(lambda sent: sent.chat_id == person.id and sent.method == "sendPhoto",
                                        after=after)
        return reply.rendered or "", photo.photo
    assert not [sent for sent in chat.api.sent[after:] if sent.chat_id == person.id and sent.photo]
    return reply.rendered or "", None


def omnimetic_calls(omnimetic: OmnimeticSandbox) -> int:
    return len([call for call in omnimetic.calls if call.path != "/access-token"])


async def tied_account(chat: Chat, phone: str = "+254712345678") -> str | None:
    async with chat.bot.services.db.read() as session:
        customer = await ledger.customer_by_phone(session=session, phone=phone)
    assert customer is not None
    return customer.utility_account


async def test_a_tied_meter_shows_the_customer_their_energy_use(chat: Chat, omnimetic: OmnimeticSandbox,
                                                               clock: ManualClock) -> None:
    await register(chat)
    tied = await chat.say(AGENT, f"/meter {DEVICE} {JANE_ACCOUNT}")
    household = omnimetic.household(JANE_ACCOUNT)
    assert household is not None
    text = tied.rendered or ""
    assert f"Utility account {JANE_ACCOUNT} is tied to Jane Wanjiru ({DEVICE})" in text
    assert household.legal_names[0] in text and household.address["city"] in text
    assert await tied_account(chat) == JANE_ACCOUNT

    report, picture = await usage(chat, CUSTOMER, picture=True)
    async with OmnimeticClient(chat.bot.services.settings.omnimetic_base_url, CLIENT_ID, SECRET) as client:
        rows = await client.history(JANE_ACCOUNT, clock.now().year)
    english = for_language("en")
    this_month = next(row for row in rows if row.month_number == clock.now().month)
    assert f"This month so far: {english.kwh(this_month.energy_kwh)}" in report
    assert english.money(this_month.amount, "KES") in report
    assert "October 2026" in report and "November 2025" in report and "Last 7 days (16 Nov – 22 Nov)" in report
    assert picture is not None and picture.startswith(b"\x89PNG")
    assert "sandbox" not in report  # Omnimetic keys are set: these are real figures


async def test_ten_taps_are_not_ten_calls(chat: Chat, omnimetic: OmnimeticSandbox, clock: ManualClock) -> None:
    await register(chat)
    await chat.say(AGENT, f"/meter {DEVICE} {JANE_ACCOUNT}")
    await usage(chat, CUSTOMER, picture=True)
    asked = omnimetic_calls(omnimetic)
    for _ in range(3):
        await usage(chat, CUSTOMER, picture=True)
        await usage(chat, AGENT, f"/usage {DEVICE}", picture=True)
    assert omnimetic_calls(omnimetic) == asked  # kept a few minutes
    clock.advance(CACHE_FOR.total_seconds() + 1)
    await usage(chat, CUSTOMER, picture=True)
    assert omnimetic_calls(omnimetic) > asked


async def test_an_unknown_account_is_refused_and_nothing_is_tied(chat: Chat) -> None:
    await register(chat)
    unknown = await chat.say(AGENT, f"/meter {DEVICE} 0123456789abcdef01234567")
    assert "Omnimetic does not know utility account 0123456789abcdef01234567" in (unknown.rendered or "")
    bad = await chat.say(AGENT, f"/meter {DEVICE} <script>")
    assert "not a utility account id" in (bad.rendered or "")
    assert await tied_account(chat) is None
    report, picture = await usage(chat, CUSTOMER)
    assert "No meter is tied to you yet" in report and picture is None


async def test_an_account_without_figures_says_so(chat: Chat) -> None:
    await register(chat)
    await chat.say(AGENT, f"/meter {DEVICE} {EMPTY_ACCOUNT}")
    report, picture = await usage(chat, CUSTOMER)
    assert "Omnimetic has no figures for this account yet" in report and picture is None


async def test_omnimetic_down_is_one_sentence_and_nothing_else_breaks(chat: Chat, omnimetic: OmnimeticSandbox) -> None:
    await register(chat)
    await chat.say(AGENT, f"/meter {DEVICE} {JANE_ACCOUNT}")
    omnimetic.fail_next(1000, status=500)
    report, picture = await usage(chat, CUSTOMER)
    assert report == for_language("en").omnimetic_down and picture is None
    down = await chat.say(AGENT, f"/meter {DEVICE} {DOC_ACCOUNT}")
    assert "Omnimetic cannot be reached" in (down.rendered or "")
    assert await tied_account(chat) == JANE_ACCOUNT  # nothing changed
    balance = await chat.say(CUSTOMER, "/balance")
    assert DEVICE in (balance.rendered or "")
    code = await chat.say(AGENT, f"/days {DEVICE} 3")
    assert chat.codes()[0] in (code.rendered or "")


async def test_a_customer_never_sees_another_customers_account(chat: Chat) -> None:
    await register(chat)
    await register(chat, NEIGHBOUR, OTHER_DEVICE, "+254722000111")
    await chat.say(AGENT, f"/meter {DEVICE} {JANE_ACCOUNT}")
    held = await chat.say(AGENT, f"/meter {OTHER_DEVICE} {JANE_ACCOUNT}")
    assert f"{JANE_ACCOUNT} is already tied to another customer" in (held.rendered or "")
    assert await tied_account(chat, "+254722000111") is None
    theirs, _ = await usage(chat, NEIGHBOUR, f"/usage {DEVICE}")  # a device id typed by a customer changes nothing
    assert "No meter is tied to you yet" in theirs
    jane, _ = await usage(chat, CUSTOMER, picture=True)
    assert "This month so far" in jane


async def test_untying_and_staff_views(chat: Chat) -> None:
    await register(chat)
    await chat.make(MANAGER, Role.MANAGER)
    await chat.say(AGENT, f"/meter {DEVICE} {JANE_ACCOUNT}")
    staff, picture = await usage(chat, AGENT, f"/usage {DEVICE}", picture=True)
    assert "This month so far" in staff and picture is not None
    refused = await chat.say(AGENT, f"/usage {DEVICE} xlsx")
    assert "Only managers can download the spreadsheet" in (refused.rendered or "")
    sheet = await chat.say(MANAGER, f"/usage {DEVICE} xlsx")
    assert sheet.method == "sendDocument" and sheet.document and sheet.document.startswith(b"PK")
    assert JANE_ACCOUNT in (sheet.rendered or "")
    untied = await chat.say(AGENT, f"/meter {DEVICE} off")
    assert f"Utility account {JANE_ACCOUNT} is no longer tied to Jane Wanjiru" in (untied.rendered or "")
    assert await tied_account(chat) is None
    none = await chat.say(AGENT, f"/usage {DEVICE}")
    assert f"No meter is tied to the customer of {DEVICE}" in (none.rendered or "")
    nobody = await chat.say(AGENT, f"/meter {OTHER_DEVICE} {JANE_ACCOUNT}")
    assert f"{OTHER_DEVICE} has no customer registered" in (nobody.rendered or "")
    for wrong in ("/meter", f"/meter {DEVICE}", f"/usage {DEVICE} pdf", "/usage"):
        answer = await chat.say(AGENT, wrong)
        assert "Usage: /" in (answer.rendered or ""), wrong


@pytest.mark.parametrize("language", ["fr", "sw"])
async def test_usage_in_the_customers_language(chat: Chat, language: str) -> None:
    await register(chat)
    await chat.say(AGENT, f"/meter {DEVICE} {JANE_ACCOUNT}")
    await chat.say(CUSTOMER, f"/language {language}")
    report, picture = await usage(chat, CUSTOMER, picture=True)
    texts = for_language(language)
    assert texts._("This month so far") in report and texts._("This month so far") != "This month so far"
    assert texts.month_name(2026, 10) in report and picture is not None


async def test_the_embedded_sandbox_says_its_figures_are_made_up(
    erm_sandbox: ErmSandbox, erm_url: str, database_url: str, clock: ManualClock
) -> None:
    async with chatting(erm_sandbox, erm_url, database_url, clock) as chat:
        await chat.make(AGENT, Role.AGENT)
        await register(chat)
        await chat.say(AGENT, f"/meter {DEVICE} {JANE_ACCOUNT}")
        report, _ = await usage(chat, CUSTOMER, picture=True)
    assert "Omnimetic sandbox: these figures are made up" in report


async def test_the_secret_is_in_no_log_line(erm_sandbox: ErmSandbox, erm_url: str, database_url: str,
                                            clock: ManualClock, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    secret = "omni-Secret-5f0b9a"
    omnimetic = OmnimeticSandbox(clock=clock)
    omnimetic.add_client("client-7", secret)
    async with running(omnimetic) as url, chatting(
        erm_sandbox, erm_url, database_url, clock, OMNIMETIC_BASE_URL=url, OMNIMETIC_CLIENT_ID="client-7",
        OMNIMETIC_SECRET=secret,
    ) as chat:
        await chat.make(AGENT, Role.AGENT)
        await register(chat)
        await chat.say(AGENT, f"/meter {DEVICE} {JANE_ACCOUNT}")
        omnimetic.expire_tokens()
        report, _ = await usage(chat, CUSTOMER, picture=True)
    assert "This month so far" in report and omnimetic.logins == 2
    assert secret not in caplog.text and "logged in to Omnimetic as client client-7" in caplog.text
