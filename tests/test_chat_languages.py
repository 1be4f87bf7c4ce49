"""Every chat flow in each language: a manager, an agent, a customer and a stranger whose Telegram
speaks English, French or Swahili walk through the whole bot, and every message, button, caption
and CSV header they get must come from their language's catalogue with no English left in it.
Then: people of different languages in one flow each read their own, and /language."""

from __future__ import annotations

import csv
import io
import re
from functools import cache

import pytest
from babel.messages.pofile import read_po
from telegram.ext import CommandHandler

import handlers.agent
from bot import i18n, texts
from bot.clock import ManualClock
from bot.jobs import expire_approvals, push_summary_if_due, send_reminders
from bot.standins.erm import ErmSandbox
from bot.standins.telegram import Sent, TelegramUser
from handlers.menus import commands_of
from handlers.table import COMMANDS
from storage.models import PaymentStatus, Role, Status
from tests.support.chat import AGENT, CUSTOMER, MANAGER, STRANGER, Chat, chatting

DEVICE, OTHER_DEVICE = "TEST2503000017", "01AH2307000009"
SMS = ("QK71ABC123 Confirmed. Ksh250.00 received from JANE W 254712345678 on 22/11/26 at 10:15 AM "
       "New M-PESA balance is Ksh1,250.00. Transaction cost, Ksh0.00.")
TAG_OR_PLACEHOLDER = re.compile(r"<[^>]+>|\{[^{}]*\}|\n")
ENGLISH_WORDS = {"day", "days", "free", "reset", "queued", "refused", "failed", "issued", "delivered", "approved",
                 "rejected", "expired", "payment", "payments", "customer", "device", "credit", "the", "and", "for"}
"""Short English words the sentence check (pieces of 8 letters or more) would miss; none is French or Swahili."""


@cache
def pieces(language: str) -> frozenset[str]:
    """The fixed words of every sentence in ``language``: what is left between placeholders and tags."""
    english = language == i18n.DEFAULT
    path = i18n.LOCALE_DIR / f"{i18n.DOMAIN}.pot" if english else i18n.catalogue_path(language)
    with path.open("rb") as po:
        catalogue = read_po(po)
    found: set[str] = set()
    for message in catalogue:
        if not message.id:
            continue
        strings = message.id if english else message.string
        for string in strings if isinstance(strings, tuple) else (strings,):
            for piece in TAG_OR_PLACEHOLDER.split(string):
                piece = piece.strip(" .,:;!?()—–-•/\u202f\xa0")
                if len(piece) >= 8 and any(ch.isalpha() for ch in piece):
                    found.add(piece)
    return frozenset(found)


def english_only(language: str) -> frozenset[str]:
    return pieces(i18n.DEFAULT) - pieces(language) if language != i18n.DEFAULT else frozenset()


def assert_in_language(sent: Sent, language: str) -> None:
    """The message is built from ``language``'s sentences and holds no English one."""
    text = sent.rendered or ""
    assert any(piece in text for piece in pieces(language)), f"not in {language}: {text!r}"
    leftover = [piece for piece in english_only(language) if piece in text]
    assert leftover == [], f"English in a {language} message: {leftover} in {text!r}"
    if language != i18n.DEFAULT:
        words = set(re.findall(r"[a-z]+", re.sub(r"/\w+|https?://\S+", "", text).lower()))
        assert words & ENGLISH_WORDS == set(), f"English words in a {language} message: {text!r}"
    english_buttons = english_labels() - {label for label in labels(language)}
    assert [b["text"] for b in sent.buttons if b["text"] in english_buttons] == [], sent.buttons


def labels(language: str) -> set[str]:
    t = texts.for_language(language)
    return {t.approve, t.reject, t.confirm, t.cancel, t.other, t.newer, t.older, t.confirm_free,
            t.confirm_my_free, t.confirm_reset, t.record_payment, t.share_my_number}


def english_labels() -> set[str]:
    return labels(i18n.DEFAULT)


def speaking(user: TelegramUser, language: str) -> TelegramUser:
    return TelegramUser(user.id, user.first_name, user.last_name, language_code=language)


async def code_for(chat: Chat, reader: TelegramUser, words: str, after: int) -> Sent:
    """The code message to ``reader`` that mentions ``words`` (a payment's amount or reference)."""
    return await chat.api.wait_for(lambda s: s.chat_id == reader.id and "🔑" in (s.rendered or "")
                                   and words in (s.rendered or ""), after=after)


def token_in(sent: Sent) -> str:
    return (sent.rendered or "").split("start=")[1].split()[0]


@pytest.mark.parametrize("language", i18n.LANGUAGES)
async def test_every_flow_speaks_the_persons_language(chat: Chat, language: str) -> None:
    manager, agent = speaking(MANAGER, language), speaking(AGENT, language)
    customer, stranger = speaking(CUSTOMER, language), speaking(STRANGER, language)
    t = texts.for_language(language)
    start = chat.api.position

    # a stranger, then an agent invited by the manager
    assert "/language" in ((await chat.say(stranger, "/start")).rendered or "")
    await chat.say(stranger, "/days 5")
    await chat.say(manager, "/help")
    invite = await chat.say(manager, "/invite agent")
    welcome = await chat.say(agent, f"/start {token_in(invite)}")
    assert (welcome.rendered or "").startswith(t.welcome("agent", "Alex").split("!")[0])

    # days: the dialogue (buttons), then typed, queued behind the first
    ask = await chat.say(agent, "/days")
    ask = await chat.say(agent, DEVICE)
    confirm = await chat.tap(agent, ask, "days:30")
    code = await chat.tap(agent, confirm, "ok:yes")
    assert chat.codes()[0] in (code.rendered or "")
    queued = await chat.say(agent, f"/days {DEVICE} 5")
    chat.clock.advance(7)
    second = await chat.next(agent)
    assert chat.codes()[1] in (second.rendered or "") and queued.rendered
    for typed in (f"/device {DEVICE}", f"/history {DEVICE}", "/days BAD!ID 5", f"/days {DEVICE} 5000", "/whatever",
                  "hello", "/cancel", "/summary"):
        await chat.say(agent, typed)

    # a customer: registered by the agent, joins, pays in cash, reads balance and last code
    link = await chat.say(agent, f"/customer {DEVICE} 0712345678 Jane Wanjiru")
    await chat.say(customer, f"/start {token_in(link)}")
    await chat.say(manager, f"/price {DEVICE} 50 KES")
    chat.clock.advance(7)
    after = chat.api.position
    await chat.say(agent, f"/pay {DEVICE} 275")
    await code_for(chat, customer, t.money(275, "KES"), after)
    await code_for(chat, agent, t.money(275, "KES"), after)
    await chat.say(customer, "/balance")
    await chat.say(customer, "/code")
    await chat.say(customer, "/days 5")
    await chat.api.user_shares_contact(stranger, "254799999999")  # a number nobody registered
    await chat.next(stranger)

    # an M-Pesa confirmation pasted by the agent: read back, recorded with its button
    chat.clock.advance(7)
    preview = await chat.say(agent, SMS)
    after = chat.api.position
    await chat.api.user_taps(agent, preview, preview.button(t.record_payment)["callback_data"])
    for reader in (agent, customer):
        await code_for(chat, reader, "QK71ABC123", after)
    # money nobody can place: kept, the managers told, assigned by hand
    preview = await chat.say(manager, SMS.replace("254712345678", "254700000999").replace("QK71ABC123", "QK71ABC999"))
    after = chat.api.position
    await chat.api.user_taps(manager, preview, preview.button(t.record_payment)["callback_data"])
    await chat.api.wait_for(lambda s: s.chat_id == manager.id and "/assign QK71ABC999" in (s.rendered or ""),
                            after=after)
    chat.clock.advance(7)
    after = chat.api.position
    assigned = await chat.say(manager, f"/assign QK71ABC999 {DEVICE}")
    assert "QK71ABC999" in (assigned.rendered or "")
    for reader in (agent, customer, manager):  # the code goes to all three: let it arrive before going on
        await code_for(chat, reader, "QK71ABC999", after)
    await chat.say(manager, f"/assign QK71ABC999 {DEVICE}")  # already went: nothing changes
    history = await chat.say(manager, f"/history {DEVICE}")
    if any(b["callback_data"].startswith("hist:") for b in history.buttons):
        await chat.tap(manager, history, history.buttons[0]["callback_data"])

    # a reset confirmed by buttons, a free code approved by the manager
    preview = await chat.say(agent, f"/reset {OTHER_DEVICE}")
    await chat.tap(agent, preview, preview.button(t.confirm_reset)["callback_data"])
    preview = await chat.say(agent, f"/free {DEVICE}")
    after = chat.api.position
    await chat.tap(agent, preview, preview.button(t.confirm_free)["callback_data"])
    request = await chat.api.wait_for(manager.id, after=after, methods=("sendMessage",))
    after = chat.api.position
    await chat.api.user_taps(manager, request, request.button(t.approve)["callback_data"])
    await chat.api.wait_for(agent.id, after=after, methods=("sendMessage",))  # approved: it follows
    chat.clock.advance(7)
    await chat.api.wait_for(lambda s: s.chat_id == agent.id and "🔑" in (s.rendered or ""), after=after)

    # the manager's day: summary and chart, the ledger as CSV, the team
    await chat.say(manager, "/summary")
    chart = await chat.next(manager)
    assert chart.method == "sendPhoto" and chart.photo
    export = await chat.say(manager, "/export")
    assert export.document is not None
    header, *rows = csv.reader(io.StringIO(export.document.decode("utf-8-sig")))
    assert header == t.export_columns()
    kinds, statuses = ("days", "free", "reset", "payment"), [*Status, *PaymentStatus]
    assert t.export_kind("days") in {row[3] for row in rows} <= {t.export_kind(kind) for kind in kinds}
    assert t.status("delivered") in {row[6] for row in rows} <= {t.status(status.value) for status in statuses}
    await chat.say(manager, "/agents")
    await chat.say(manager, "/revoke 999999")
    await chat.say(manager, "/invite manager")

    mine = (manager.id, agent.id, customer.id, stranger.id)
    said = [sent for sent in chat.api.sent[start:] if sent.chat_id in mine and sent.rendered]
    assert len(said) > 40
    for sent in said:
        assert_in_language(sent, language)
    expected = [{"command": c.command, "description": c.description} for c in commands_of(COMMANDS, "agent", language)]
    for code in ("", *i18n.LANGUAGES):  # whatever their app's language, the menu is in theirs
        assert await chat.menu(agent.id, code) == expected
    manager_menu = await chat.menu(manager.id, until=lambda listed: len(listed) > 10)  # PAYGBOT_MANAGERS: by id
    assert manager_menu[0]["description"] == t.menu_line("days", "manager")


async def test_each_person_reads_their_own_language_whoever_acts(chat: Chat) -> None:
    """An English agent's code reaches a Swahili customer in Swahili, a French manager's approval
    request is French, reminders and the pushed summary follow each reader's language."""
    agent, customer = speaking(AGENT, "en"), speaking(CUSTOMER, "sw")
    french_manager = TelegramUser(1009, "Fanta", "Diallo", language_code="fr")
    await chat.make(agent, Role.AGENT)
    await chat.make(french_manager, Role.MANAGER)
    await chat.say(french_manager, "/help")  # joined by id: the language is learnt from Telegram on first word
    link = await chat.say(agent, f"/customer {DEVICE} 0712345678 Jane Wanjiru")
    assert_in_language(link, "en")
    assert_in_language(await chat.say(customer, f"/start {token_in(link)}"), "sw")

    after = chat.api.position
    await chat.api.user_says(agent, f"/days {DEVICE} 3")
    to_customer = await chat.api.wait_for(customer.id, after=after, methods=("sendMessage",))
    to_agent = await chat.api.wait_for(agent.id, after=after, methods=("sendMessage",))
    assert_in_language(to_customer, "sw")
    assert_in_language(to_agent, "en")

    chat.clock.advance(7)
    after = chat.api.position
    preview = await chat.say(agent, f"/free {OTHER_DEVICE}")
    await chat.tap(agent, preview, preview.button("Yes, ask for the free code")["callback_data"])
    asked = await chat.api.wait_for(french_manager.id, after=after, methods=("sendMessage",))
    assert_in_language(asked, "fr")
    english = await chat.api.wait_for(MANAGER.id, after=after, methods=("sendMessage",))
    assert_in_language(english, "en")

    chat.clock.advance(days=2)
    after = chat.api.position
    assert await send_reminders(chat.bot.services, chat.bot.application.bot) == 1
    assert_in_language(await chat.api.wait_for(customer.id, after=after), "sw")

    chat.clock.set(chat.clock.now().replace(hour=19, minute=5))
    after = chat.api.position
    assert await push_summary_if_due(chat.bot.services, chat.bot.application.bot)
    assert_in_language(await chat.api.wait_for(french_manager.id, after=after, methods=("sendMessage",)), "fr")
    assert_in_language(await chat.api.wait_for(MANAGER.id, after=after, methods=("sendMessage",)), "en")


async def test_language_is_chosen_with_buttons_and_kept(chat: Chat) -> None:
    agent = speaking(AGENT, "fr")
    await chat.make(agent, Role.AGENT)
    menu = await chat.say(agent, "/language")
    assert_in_language(menu, "fr")
    assert [b["text"] for b in menu.buttons] == ["English", "Français", "Kiswahili"]
    chosen = await chat.tap(agent, menu, "lang:sw")
    assert_in_language(chosen, "sw")
    assert_in_language(await chat.say(agent, "/days BAD!ID 5"), "sw")  # Telegram still says fr: the choice wins
    who = await chat.bot.services.people.who(agent.id)
    assert who.person is not None and who.person.language == "sw"
    swahili = texts.for_language("sw").menu_line("days", "agent")
    await chat.menu(agent.id, "fr", until=lambda listed: bool(listed) and listed[0]["description"] == swahili)
    assert_in_language(await chat.say(agent, "/language en"), "en")
    assert_in_language(await chat.say(agent, "/language de"), "en")  # not one of ours: usage, nothing changed
    assert (await chat.bot.services.people.who(agent.id)).person.language == "en"  # type: ignore[union-attr]


async def test_a_stranger_chooses_before_joining_and_keeps_it(chat: Chat) -> None:
    stranger = speaking(STRANGER, "en")
    menu = await chat.say(stranger, "/language")
    assert_in_language(await chat.tap(stranger, menu, "lang:fr"), "fr")
    assert_in_language(await chat.say(stranger, "/start"), "fr")
    invite = await chat.say(MANAGER, "/invite agent")
    assert_in_language(await chat.say(stranger, f"/start {token_in(invite)}"), "fr")
    assert (await chat.bot.services.people.who(stranger.id)).person.language == "fr"  # type: ignore[union-attr]


@pytest.mark.parametrize("language", ["fr", "sw"])
async def test_the_strangers_menu_is_registered_per_language_code(chat: Chat, language: str) -> None:
    menu = await chat.menu(language_code=language)
    assert [c["command"] for c in menu] == ["start", "help", "language"]
    assert menu[0]["description"] == texts.for_language(language).menu_line("start", "stranger")
    assert menu[0]["description"] != chat.api.commands_for()[0]["description"]


async def test_without_a_choice_the_telegram_app_is_followed_and_kept_for_what_comes_unasked(chat: Chat) -> None:
    agent = speaking(AGENT, "en")
    await chat.make(agent, Role.AGENT)
    assert_in_language(await chat.say(agent, "/help"), "en")
    agent = speaking(AGENT, "fr")  # they switch their phone to French
    assert_in_language(await chat.say(agent, "/help"), "fr")
    assert (await chat.bot.services.people.who(agent.id)).person.language == "fr"  # type: ignore[union-attr]
    french = texts.for_language("fr").menu_line("days", "agent")
    await chat.menu(agent.id, until=lambda listed: bool(listed) and listed[0]["description"] == french)
    after = chat.api.position
    preview = await chat.say(agent, f"/free {DEVICE}")
    await chat.tap(agent, preview, preview.button(texts.for_language("fr").confirm_free)["callback_data"])
    chat.clock.advance(hours=24, seconds=1)
    assert await expire_approvals(chat.bot.services, chat.bot.application.bot) == 1
    told = await chat.api.wait_for(lambda s: s.chat_id == agent.id and "24" in (s.rendered or ""), after=after + 2)
    assert_in_language(told, "fr")  # sent by a job, unasked: in the language last seen


async def test_a_person_invited_again_keeps_the_language_they_chose(chat: Chat) -> None:
    agent = speaking(AGENT, "en")
    await chat.make(agent, Role.AGENT)
    await chat.say(agent, "/language fr")
    await chat.say(MANAGER, f"/revoke {agent.id}")
    invite = await chat.say(MANAGER, "/invite agent")
    agent = speaking(AGENT, "sw")
    assert_in_language(await chat.say(agent, f"/start {token_in(invite)}"), "fr")
    assert_in_language(await chat.say(agent, "/help"), "fr")


async def test_an_error_is_told_in_the_persons_language(chat: Chat, caplog: pytest.LogCaptureFixture) -> None:
    async def broken(update: object, context: object) -> None:
        raise RuntimeError("a bug")

    chat.bot.application.add_handler(CommandHandler("days", broken), group=1)  # after the real /days
    agent = speaking(AGENT, "sw")
    await chat.make(agent, Role.AGENT)
    after = chat.api.position
    await chat.api.user_says(agent, "/days")
    sorry = texts.for_language("sw").something_went_wrong
    assert_in_language(await chat.api.wait_for(lambda s: s.chat_id == agent.id and s.rendered == sorry,
                                               after=after), "sw")
    caplog.clear()  # the error was logged, as it should be


async def test_silence_ends_a_dialogue_in_the_persons_language(erm_sandbox: ErmSandbox, erm_url: str,
                                                               database_url: str, clock: ManualClock,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(handlers.agent, "DIALOGUE_TIMEOUT", 0.5)  # PTB ends it from a job: no gate runs
    async with chatting(erm_sandbox, erm_url, database_url, clock) as chat:
        agent = speaking(AGENT, "fr")
        await chat.make(agent, Role.AGENT)
        await chat.say(agent, "/days")
        ended = await chat.next(agent)
        assert ended.rendered == texts.for_language("fr").timed_out


async def test_a_day_without_the_erm_saying_is_told_to_each_reader_in_theirs(
    erm_sandbox: ErmSandbox, erm_url: str, database_url: str, clock: ManualClock
) -> None:
    async with chatting(erm_sandbox, erm_url, database_url, clock, ERM_TIMEOUT_SECONDS="0.3") as chat:
        agent = speaking(AGENT, "fr")
        await chat.make(agent, Role.AGENT)
        erm_sandbox.late_next(1, delay=1.0)  # the ERM makes the code but the answer never comes in time
        erm_sandbox.fail_next(10_000, status=404, body={"message": "Product not found"},
                              paths=["/oves/v2/codeHistoryList"])
        await chat.say(agent, f"/days {DEVICE} 3")
        chat.clock.advance(hours=24, seconds=30)
        after = chat.api.position
        to_agent = await chat.api.wait_for(lambda s: s.chat_id == agent.id and "⚠️" in (s.rendered or ""),
                                           after=after)
        to_manager = await chat.api.wait_for(lambda s: s.chat_id == MANAGER.id and "⚠️" in (s.rendered or ""),
                                             after=after)
        assert_in_language(to_agent, "fr")
        assert_in_language(to_manager, "en")
        assert erm_sandbox.generations == 1  # asked once, never again
