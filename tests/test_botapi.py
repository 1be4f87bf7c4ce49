"""The Telegram Bot API stand-in (``bot.standins.telegram``) with real python-telegram-bot against it,
reached both ways — in this process (``StandInRequest``) and over loopback HTTP (``server.running``):
long polling, handlers, the AIORateLimiter, uploads, refusals; the wire format, checked with plain
httpx; and the same bytes either way."""

from __future__ import annotations

import asyncio
import html
import json
import struct
import zlib
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from telegram import (
    Bot,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    MenuButtonCommands,
    MenuButtonDefault,
    MenuButtonWebApp,
    Message,
    Update,
    WebAppInfo,
)
from telegram.constants import ParseMode
from telegram.error import BadRequest, Forbidden, InvalidToken, RetryAfter
from telegram.ext import (
    AIORateLimiter,
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    Defaults,
    MessageHandler,
    filters,
)
from telegram.request import RequestData
from telegram.request._requestparameter import RequestParameter

from bot.http import serving
from bot.standins.telegram import FakeBotApi, HtmlError, StandInRequest, TelegramUser, WaitTimeout, parse_html
from bot.standins.telegram.server import running
from bot.standins.telegram.transport import BASE_URL
from bot.telegram_http import AiohttpRequest
from tests.support.waiting import eventually

App = Application[Any, Any, Any, Any, Any, Any]
TOKEN = "123456789:AAH-test-token"
AMINA = TelegramUser(42, "Amina", "Otieno", username="amina_o", language_code="en")
BARAKA = TelegramUser(43, "Baraka")
GROUP = -1001234567890
TRANSPORTS = ["in-process", "http", "http-aiohttp"]
"""How PTB reaches the stand-in: in this process; over loopback HTTP with PTB's own transport (httpx); and with
the bot's (:class:`bot.telegram_http.AiohttpRequest`)."""


@dataclass(frozen=True)
class Way:
    """One of :data:`TRANSPORTS`: the HTTP form's base URL (None: in this process), and which transport."""

    url: str | None
    aiohttp: bool = False


def png(width: int, height: int) -> bytes:
    """A real PNG picture (red), made without Pillow."""
    rows = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


PICTURE = png(40, 30)
# Every byte value, CRLFs and something that looks like a multipart boundary.
PAYLOAD = bytes(range(256)) * 3 + b"\r\n\r\n--boundary\r\nContent-Disposition: x\r\n\r\n" + "é,ü\n".encode()


def keyboard(data: str, label: str = "x") -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup([[InlineKeyboardButton(label, callback_data=data)]])


# -- the bot under test ----------------------------------------------------------------------


async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    assert update.effective_message and update.effective_user
    keyboard = InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton("Approve", callback_data="approve:7"),
                InlineKeyboardButton("Reject", callback_data="reject:7"),
            ]
        ]
    )
    name = html.escape(update.effective_user.first_name)
    await update.effective_message.reply_text(
        f"Welcome, <b>{name}</b>! args={' '.join(context.args or [])}", reply_markup=keyboard
    )


async def tapped(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    query = update.callback_query
    assert query and query.data and query.message
    await query.answer(f"Noted: {query.data}")
    chosen = html.escape(query.data)
    await query.edit_message_text(f"You chose <code>{chosen}</code> on message {query.message.message_id}")


async def contact(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message = update.effective_message
    assert message and message.contact and update.effective_user
    own = message.contact.user_id == update.effective_user.id
    await message.reply_text(f"Thanks, {message.contact.phone_number} ({'yours' if own else 'not yours'})")


async def forwarded(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message = update.effective_message
    assert message and message.forward_origin
    origin = getattr(message.forward_origin, "sender_user", None)
    who = origin.first_name if origin else "?"
    await message.reply_text(f"Forwarded from {who}: {html.escape(message.text or '')}")


async def photo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    assert update.effective_message
    await update.effective_message.reply_photo(PICTURE, caption="<b>QR</b> for you", filename="qr.png")


async def export(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    assert update.effective_message
    await update.effective_message.reply_document(PAYLOAD, filename="ledger.csv", caption="The ledger")


def builder(api: FakeBotApi, way: Way) -> ApplicationBuilder[Any, Any, Any, Any, Any, Any]:
    """PTB reaching ``api`` the ``way`` given."""
    made = ApplicationBuilder().token(TOKEN)
    if way.url is None:
        return made.request(StandInRequest(api)).get_updates_request(StandInRequest(api))
    if way.aiohttp:
        made = made.request(AiohttpRequest()).get_updates_request(AiohttpRequest())
    return made.base_url(way.url)


def build(api: FakeBotApi, way: Way) -> App:
    application = (
        builder(api, way)
        .rate_limiter(AIORateLimiter(max_retries=3))
        .defaults(Defaults(parse_mode=ParseMode.HTML))
        .build()
    )
    application.add_handler(CommandHandler("start", start))
    application.add_handler(CommandHandler("photo", photo))
    application.add_handler(CommandHandler("export", export))
    application.add_handler(CallbackQueryHandler(tapped))
    application.add_handler(MessageHandler(filters.CONTACT, contact))
    application.add_handler(MessageHandler(filters.FORWARDED & filters.TEXT, forwarded))
    return application


def plain_bot(api: FakeBotApi, way: Way, token: str = TOKEN) -> Bot:
    """A plain PTB Bot (no rate limiter, no polling) for direct calls."""
    if way.url is None:
        return Bot(token, request=StandInRequest(api), get_updates_request=StandInRequest(api))
    if way.aiohttp:
        return Bot(token, base_url=way.url, request=AiohttpRequest(), get_updates_request=AiohttpRequest())
    return Bot(token, base_url=way.url)


@pytest.fixture(autouse=True)
def ptb_timedelta(monkeypatch: pytest.MonkeyPatch) -> None:
    """PTB 22 warns (PTBDeprecationWarning, an error here) each time it builds a RetryAfter, unless
    ``PTB_TIMEDELTA`` opts in to ``retry_after`` being a ``timedelta``."""
    monkeypatch.setenv("PTB_TIMEDELTA", "1")


@pytest.fixture
async def api() -> AsyncIterator[FakeBotApi]:
    fake = FakeBotApi(TOKEN)
    yield fake
    assert fake.errors == [], "the stand-in itself failed"


@pytest.fixture(params=TRANSPORTS)
async def url(request: pytest.FixtureRequest, api: FakeBotApi) -> AsyncIterator[Way]:
    """How PTB reaches the stand-in (one of :data:`TRANSPORTS`)."""
    if request.param == "in-process":
        yield Way(None)
        return
    async with running(api) as base_url:
        yield Way(base_url, aiohttp=request.param == "http-aiohttp")


@pytest.fixture
async def http_url(api: FakeBotApi) -> AsyncIterator[str]:
    async with running(api) as base_url:
        yield base_url


@pytest.fixture
async def app(api: FakeBotApi, url: Way) -> AsyncIterator[App]:
    """The bot, long polling the stand-in."""
    application = build(api, url)
    async with application:
        await application.start()
        assert application.updater
        await application.updater.start_polling(poll_interval=0, timeout=1)
        try:
            yield application
        finally:
            await application.updater.stop()
            await application.stop()


@pytest.fixture
async def http(http_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=http_url.removesuffix("/bot")) as client:
        yield client


@pytest.fixture
async def bot(api: FakeBotApi, url: Way) -> AsyncIterator[Bot]:
    async with plain_bot(api, url) as plain:
        yield plain


# -- round trips through real PTB, both ways -------------------------------------------------


async def test_command_round_trip(api: FakeBotApi, app: App) -> None:
    said = await api.user_says(AMINA, "/start tok123")
    assert said["entities"] == [{"offset": 0, "length": 6, "type": "bot_command"}]

    reply = await api.wait_for(AMINA)
    assert reply.method == "sendMessage"
    assert reply.chat_id == AMINA.id
    assert reply.text == "Welcome, <b>Amina</b>! args=tok123"
    assert reply.rendered == "Welcome, Amina! args=tok123"
    assert reply.entities == [{"offset": 9, "length": 5, "type": "bold"}]
    assert [b["callback_data"] for b in reply.buttons] == ["approve:7", "reject:7"]
    bot_user = {"id": 123456789, "is_bot": True, "first_name": "PAYG Bot", "username": "paygbot_demo_bot"}
    assert reply.message["from"] == bot_user
    assert reply.message["message_id"] == said["message_id"] + 1
    assert app.bot.username == "paygbot_demo_bot"  # getMe answered


async def test_command_addressed_to_the_bot_in_a_group(api: FakeBotApi, app: App) -> None:
    said = await api.user_says(BARAKA, "/start@paygbot_demo_bot", chat=GROUP)
    assert said["chat"]["type"] == "supergroup"
    assert said["entities"][0]["length"] == len("/start@paygbot_demo_bot")
    reply = await api.wait_for(GROUP)
    assert reply.rendered == "Welcome, Baraka! args="


async def test_button_tap_round_trip(api: FakeBotApi, app: App) -> None:
    await api.user_says(AMINA, "/start")
    menu = await api.wait_for(AMINA)

    query = await api.user_taps(AMINA, menu, "Reject")  # by label: sends that button's callback_data
    assert query["data"] == "reject:7"
    edited = await api.wait_for(AMINA, methods={"editMessageText"})
    assert edited.message_id == menu.message_id
    assert edited.rendered == f"You chose reject:7 on message {menu.message_id}"
    assert edited.entities == [{"offset": 10, "length": 8, "type": "code"}]
    # Editing the text without reply_markup takes the keyboard away, as Telegram does.
    assert edited.buttons == [] and "reply_markup" not in edited.message
    answer = api.answered(query)
    assert answer is not None and answer.text == "Noted: reject:7" and not answer.show_alert

    with pytest.raises(ValueError, match="no button"):
        await api.user_taps(AMINA, menu, "maybe")


async def test_contact_shared(api: FakeBotApi, app: App) -> None:
    message = await api.user_shares_contact(AMINA, "254712345678")
    assert message["contact"] == {
        "phone_number": "254712345678",
        "first_name": "Amina",
        "last_name": "Otieno",
        "user_id": AMINA.id,
    }
    assert (await api.wait_for(AMINA)).rendered == "Thanks, 254712345678 (yours)"

    await api.user_shares_contact(AMINA, "+254700000000", BARAKA.id, first_name="Baraka")
    assert (await api.wait_for(AMINA)).rendered == "Thanks, +254700000000 (not yours)"
    await eventually(lambda: api.pending_updates == 0, "the bot to confirm what it fetched")


async def test_forwarded_text(api: FakeBotApi, app: App) -> None:
    await api.user_forwards(AMINA, "*024 413 975#", origin=BARAKA)
    assert (await api.wait_for(AMINA)).rendered == "Forwarded from Baraka: *024 413 975#"


async def test_photo_bytes_arrive_intact(api: FakeBotApi, app: App) -> None:
    await api.user_says(AMINA, "/photo")
    sent = await api.wait_for(AMINA)
    assert sent.method == "sendPhoto"
    assert sent.photo == PICTURE
    assert sent.filename == "qr.png"
    assert sent.rendered == "QR for you" and sent.entities == [{"offset": 0, "length": 2, "type": "bold"}]
    sizes = sent.message["photo"]
    assert (sizes[-1]["width"], sizes[-1]["height"]) == (40, 30)
    assert sizes[-1]["file_size"] == len(PICTURE)
    # PTB reads it back as a Message.
    message = Message.de_json(sent.message, app.bot)
    assert message.caption == "QR for you" and message.photo[-1].width == 40


async def test_document(api: FakeBotApi, app: App) -> None:
    await api.user_says(AMINA, "/export")
    sent = await api.wait_for(AMINA)
    assert sent.method == "sendDocument"
    assert sent.document == PAYLOAD
    assert (sent.filename, sent.mime_type, sent.rendered) == ("ledger.csv", "text/csv", "The ledger")
    document = sent.message["document"]
    assert document["file_name"] == "ledger.csv"
    assert (document["mime_type"], document["file_size"]) == ("text/csv", len(PAYLOAD))


async def test_bad_html_is_refused_and_not_delivered(api: FakeBotApi, app: App) -> None:
    api.meet(AMINA)
    unbalanced = r"(?i)can't parse entities: can't find end tag corresponding to start tag \"b\""
    with pytest.raises(BadRequest, match=unbalanced):
        await app.bot.send_message(AMINA.id, "<b>code *024#")
    with pytest.raises(BadRequest, match=r'(?i)unsupported start tag "br" at byte offset 4'):
        await app.bot.send_message(AMINA.id, "line<br>next")
    with pytest.raises(BadRequest, match=r'(?i)character "&" must be escaped'):
        await app.bot.send_message(AMINA.id, "Kamau & Sons")
    assert api.sent == []
    # Escaped, it goes through; without parse_mode nothing is parsed at all.
    ok = await app.bot.send_message(AMINA.id, html.escape("Kamau & Sons <ltd>"))
    assert ok.text == "Kamau & Sons <ltd>"
    plain = await app.bot.send_message(AMINA.id, "<b>as typed</b>", parse_mode=None)
    assert plain.text == "<b>as typed</b>" and not plain.entities


async def test_429_is_retried_by_the_aioratelimiter(api: FakeBotApi, app: App) -> None:
    api.meet(AMINA)
    api.fail_next(1, retry_after=1)
    message = await app.bot.send_message(AMINA.id, "your code: <code>*024 413 975#</code>")
    assert message.text == "your code: *024 413 975#"
    assert [sent.rendered for sent in api.sent_to(AMINA)] == ["your code: *024 413 975#"]
    assert api.rate_limited == 1


async def test_polling_stops_cleanly_and_confirms_updates(api: FakeBotApi, url: Way) -> None:
    loop = asyncio.get_running_loop()
    application = build(api, url)
    async with application:
        await application.start()
        assert application.updater
        await application.updater.start_polling(poll_interval=0, timeout=30)
        await api.user_says(AMINA, "/start")
        await api.wait_for(AMINA)
        await eventually(lambda: api.waiting_polls == 1, "the next long poll")
        started = loop.time()
        await application.updater.stop()
        await application.stop()
    assert api.pending_updates == 0  # the last getUpdates confirmed what was fetched
    # A 30 s long poll did not hold up the updater.
    assert loop.time() - started < 5


# -- what Telegram refuses, through PTB ------------------------------------------------------


async def test_validation(api: FakeBotApi, bot: Bot) -> None:
    with pytest.raises(BadRequest, match="Chat not found"):
        await bot.send_message(999, "hello")
    api.meet(AMINA)
    with pytest.raises(BadRequest, match="Message text is empty"):
        await bot.send_message(AMINA.id, "  ")
    with pytest.raises(BadRequest, match="Message text is empty"):
        await bot.send_message(AMINA.id, "<b></b>", parse_mode=ParseMode.HTML)
    with pytest.raises(BadRequest, match="Message is too long"):
        await bot.send_message(AMINA.id, "x" * 4097)
    with pytest.raises(BadRequest, match="Message caption is too long"):
        await bot.send_photo(AMINA.id, PICTURE, caption="x" * 1025)
    with pytest.raises(BadRequest, match="(?i)button_data_invalid"):
        await bot.send_message(AMINA.id, "pick", reply_markup=keyboard("d" * 65))
    with pytest.raises(BadRequest, match="(?i)image_process_failed"):
        await bot.send_photo(AMINA.id, b"not a picture")
    assert api.sent == []

    # At the limits it is fine: 4096 characters (after parsing), 64 bytes of callback_data.
    await bot.send_message(AMINA.id, "<i>" + "é" * 4096 + "</i>", parse_mode=ParseMode.HTML)
    await bot.send_message(AMINA.id, "pick", reply_markup=keyboard("d" * 64))
    assert len(api.sent) == 2

    api.block(AMINA)
    with pytest.raises(Forbidden, match="blocked by the user"):
        await bot.send_message(AMINA.id, "hello")


async def test_edits_and_answers(api: FakeBotApi, bot: Bot) -> None:
    api.meet(AMINA)
    yes = keyboard("yes", "Yes")
    sent = await bot.send_message(AMINA.id, "Approve?", reply_markup=yes)
    with pytest.raises(BadRequest, match="Message is not modified"):
        await bot.edit_message_text("Approve?", AMINA.id, sent.message_id, reply_markup=yes)
    edited = await bot.edit_message_reply_markup(AMINA.id, sent.message_id, reply_markup=None)
    assert isinstance(edited, Message) and edited.reply_markup is None and edited.text == "Approve?"
    with pytest.raises(BadRequest, match="Message is not modified"):
        await bot.edit_message_reply_markup(AMINA.id, sent.message_id, reply_markup=None)
    with pytest.raises(BadRequest, match="Message to edit not found"):
        await bot.edit_message_text("gone", AMINA.id, sent.message_id + 100)

    user_message = await api.user_says(AMINA, "hi")
    with pytest.raises(BadRequest, match="Message can't be edited"):
        await bot.edit_message_text("changed", AMINA.id, user_message["message_id"])

    query = await api.user_taps(AMINA, api.sent[0], "yes")  # as she saw it, before the keyboard went
    assert await bot.answer_callback_query(query["id"], "Done", show_alert=True)
    with pytest.raises(BadRequest, match="Query is too old"):
        await bot.answer_callback_query(query["id"])
    assert api.answered(query) is not None and api.answered(query).show_alert  # type: ignore[union-attr]


async def test_commands(api: FakeBotApi, bot: Bot) -> None:
    from telegram import BotCommand, BotCommandScopeAllPrivateChats, BotCommandScopeChat

    assert await bot.set_my_commands([BotCommand("days", "A days code"), BotCommand("help", "Help")])
    private = BotCommandScopeAllPrivateChats()
    assert await bot.set_my_commands([BotCommand("balance", "Days left")], scope=private, language_code="sw")
    assert api.commands_for() == [
        {"command": "days", "description": "A days code"},
        {"command": "help", "description": "Help"},
    ]
    assert api.commands_for({"type": "all_private_chats"}, "sw") == [{"command": "balance", "description": "Days left"}]
    with pytest.raises(BadRequest, match="(?i)bot_command_invalid"):
        await bot.set_my_commands([BotCommand("Days-Code", "bad name")])
    # A scope naming a chat that never talked to the bot is refused, as Telegram does.
    with pytest.raises(BadRequest, match="Chat not found"):
        await bot.set_my_commands([BotCommand("days", "A days code")], scope=BotCommandScopeChat(AMINA.id))
    api.meet(AMINA)
    assert await bot.set_my_commands([BotCommand("days", "A days code")], scope=BotCommandScopeChat(AMINA.id))
    assert [c["command"] for c in api.commands_for({"type": "chat", "chat_id": AMINA.id})] == ["days"]
    assert await bot.set_my_commands([])  # an empty list removes the default scope's
    assert api.commands_for() == []


def web_app_keyboard(url: str, label: str = "Dashboard") -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup([[InlineKeyboardButton(label, web_app=WebAppInfo(url))]])


async def test_web_app_buttons(api: FakeBotApi, bot: Bot) -> None:
    """An inline button that opens a Mini App: an HTTPS URL (plain HTTP only for this project's local
    hosts), in a private chat only; the message shows it back as Telegram stores it."""
    api.meet(AMINA)
    url = "https://dash.example.com/app?v=2"
    sent = await bot.send_message(AMINA.id, "Managers' dashboard", reply_markup=web_app_keyboard(url))
    button = sent.reply_markup.inline_keyboard[0][0] if sent.reply_markup else None
    assert button is not None and button.web_app is not None and button.web_app.url == url
    echoed = {"inline_keyboard": [[{"text": "Dashboard", "web_app": {"url": url}}]]}
    assert api.sent[-1].message["reply_markup"] == echoed == api.messages[(AMINA.id, sent.message_id)]["reply_markup"]
    # Local hosts over plain HTTP; scheme and host lower-cased and an empty path made "/", as Telegram does.
    local = await bot.send_message(AMINA.id, "local", reply_markup=web_app_keyboard("http://127.0.0.1:8080/dashboard"))
    assert local.reply_markup and local.reply_markup.inline_keyboard[0][0].web_app
    assert local.reply_markup.inline_keyboard[0][0].web_app.url == "http://127.0.0.1:8080/dashboard"
    named = await bot.send_message(AMINA.id, "named", reply_markup=web_app_keyboard("http://LocalHost:5173"))
    assert api.sent[-1].message["reply_markup"]["inline_keyboard"][0][0]["web_app"] == {"url": "http://localhost:5173/"}
    assert api.sent[-1].reply_markup == web_app_keyboard("http://LocalHost:5173").to_dict()  # as the bot sent it
    assert named.message_id == local.message_id + 1
    assert len(api.sent) == 3

    with pytest.raises(BadRequest, match=r"(?i)^inline keyboard button web app url 'http://dash\.example\.com/app' "
                                         r"is invalid: only https links are allowed$"):
        await bot.send_message(AMINA.id, "plain http", reply_markup=web_app_keyboard("http://dash.example.com/app"))
    with pytest.raises(BadRequest, match=r"(?i)web app url 'https://dashboard/' is invalid: wrong http url"):
        await bot.send_message(AMINA.id, "no dot", reply_markup=web_app_keyboard("https://dashboard/"))
    with pytest.raises(BadRequest, match=r"(?i)web app url '' is invalid: url host is empty"):
        await bot.send_message(AMINA.id, "empty", reply_markup=web_app_keyboard(""))
    # Only in private chats: Telegram refuses the button type in a group, sent or edited in.
    await api.user_says(BARAKA, "hello", chat=GROUP)
    with pytest.raises(BadRequest, match="(?i)^button_type_invalid$"):
        await bot.send_message(GROUP, "Managers' dashboard", reply_markup=web_app_keyboard(url))
    in_group = await bot.send_message(GROUP, "pick", reply_markup=keyboard("a"))
    with pytest.raises(BadRequest, match="(?i)^button_type_invalid$"):
        await bot.edit_message_reply_markup(GROUP, in_group.message_id, reply_markup=web_app_keyboard(url))
    assert [sent.rendered for sent in api.sent[3:]] == ["pick"]
    assert api.messages[(GROUP, in_group.message_id)]["reply_markup"] == keyboard("a").to_dict()


async def test_menu_button(api: FakeBotApi, bot: Bot) -> None:
    """``setChatMenuButton`` / ``getChatMenuButton``: the bot's own button, one chat's, and going back."""
    dashboard = MenuButtonWebApp("Dashboard", WebAppInfo("https://dash.example.com/app"))
    # A bot that set nothing: its button opens the commands list (Telegram never answers "default" here).
    assert isinstance(await bot.get_chat_menu_button(), MenuButtonCommands)
    api.meet(AMINA)
    api.meet(BARAKA)
    assert await bot.set_chat_menu_button(AMINA.id, dashboard)
    assert await bot.get_chat_menu_button(AMINA.id) == dashboard
    assert api.menu_buttons == {AMINA.id: {"type": "web_app", "text": "Dashboard",
                                           "web_app": {"url": "https://dash.example.com/app"}}}  # fmt: skip
    assert isinstance(await bot.get_chat_menu_button(BARAKA.id), MenuButtonDefault)  # nothing chosen for him
    assert api.menu_button_shown(BARAKA) == {"type": "commands"}

    # The bot's own button, for every chat without one of its own.
    everyone = MenuButtonWebApp("Open", WebAppInfo("https://Dash.example.com"))
    assert await bot.set_chat_menu_button(menu_button=everyone)
    assert await bot.get_chat_menu_button() == MenuButtonWebApp("Open", WebAppInfo("https://dash.example.com/"))
    assert api.menu_button() == api.menu_buttons[None] == api.menu_button_shown(BARAKA)
    assert api.menu_button_shown(AMINA)["text"] == "Dashboard"
    # "default" for a chat drops its own choice; for the bot it changes nothing, as at Telegram.
    assert await bot.set_chat_menu_button(AMINA.id, MenuButtonDefault())
    assert isinstance(await bot.get_chat_menu_button(AMINA.id), MenuButtonDefault)
    assert api.menu_button_shown(AMINA)["text"] == "Open"
    assert await bot.set_chat_menu_button()
    assert api.menu_button()["text"] == "Open"
    assert await bot.set_chat_menu_button(menu_button=MenuButtonCommands())
    assert isinstance(await bot.get_chat_menu_button(), MenuButtonCommands)
    assert api.menu_buttons == {None: {"type": "commands"}}

    # A chat must be a person the bot has met, named by id.
    with pytest.raises(BadRequest, match="User not found"):
        await bot.set_chat_menu_button(999, dashboard)
    with pytest.raises(BadRequest, match="User not found"):
        await bot.get_chat_menu_button(999)
    await api.user_says(TelegramUser(44, "Chebet"), "hello", chat=GROUP)  # met in a group: known
    assert await bot.set_chat_menu_button(44, dashboard)
    with pytest.raises(BadRequest, match="Invalid chat_id specified"):
        await bot.set_chat_menu_button(GROUP, dashboard)
    assert set(api.menu_buttons) == {None, 44}


@pytest.mark.parametrize(
    ("menu_button", "description"),
    [
        ('{"type": "web_app", "text": "Go", "web_app": {"url": "http://dash.example.com/"}}',
         "menu button Web App URL 'http://dash.example.com/' is invalid: Only HTTPS links are allowed"),
        ('{"type": "web_app", "text": "Go", "web_app": {"url": "ftp://dash.example.com/"}}',
         "menu button Web App URL 'ftp://dash.example.com/' is invalid: Unsupported URL protocol"),
        ('{"type": "web_app", "text": "", "web_app": {"url": "https://dash.example.com/"}}',
         "menu button text must be non-empty"),
        ('{"type": "web_app", "text": "' + "x" * 65 + '", "web_app": {"url": "https://dash.example.com/"}}',
         "BUTTON_TEXT_INVALID"),
        ('{"type": "web_app", "text": "Go"}', "can't parse menu button: Can't find field \"web_app\""),
        ('{"type": "web_app", "text": "Go", "web_app": "https://dash.example.com/"}',
         "can't parse menu button: Field \"web_app\" must be of type Object"),
        ('{"type": "web_app", "text": "Go", "web_app": {}}', "can't parse menu button: Can't find field \"url\""),
        ('{"type": "dashboard"}', "can't parse menu button: MenuButton has unsupported type"),
        ('{"text": "Go"}', "can't parse menu button: Can't find field \"type\""),
        ('["web_app"]', "can't parse menu button: MenuButton must be an Object"),
        ("{type: web_app}", "can't parse menu button JSON object"),
    ],
)  # fmt: skip
async def test_menu_button_refused(
    api: FakeBotApi, http: httpx.AsyncClient, menu_button: str, description: str
) -> None:
    api.meet(AMINA)
    for chat in ({}, {"chat_id": str(AMINA.id)}):
        response = await http.post(f"/bot{TOKEN}/setChatMenuButton", data={"menu_button": menu_button, **chat})
        assert (response.status_code, response.json()) == (
            400, {"ok": False, "error_code": 400, "description": f"Bad Request: {description}"})  # fmt: skip
    assert api.menu_buttons == {}
    # At the limit it is fine: 64 characters.
    text = "x" * 64
    fine = {"type": "web_app", "text": text, "web_app": {"url": "https://dash.example.com/"}}
    assert (await http.post(f"/bot{TOKEN}/setChatMenuButton", json={"menu_button": fine})).json()["result"] is True
    assert api.menu_button() == fine


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_flood_limits(transport: str) -> None:
    api = FakeBotApi(TOKEN, per_chat_per_second=1, messages_per_second=2)
    async with AsyncExitStack() as stack:
        base_url = await stack.enter_async_context(running(api)) if transport != "in-process" else None
        plain = await stack.enter_async_context(plain_bot(api, Way(base_url, aiohttp=transport == "http-aiohttp")))
        api.meet(AMINA)
        api.meet(BARAKA)
        await plain.send_message(AMINA.id, "one")
        with pytest.raises(RetryAfter) as refused:
            await plain.send_message(AMINA.id, "two, too soon for this chat")
        assert refused.value.retry_after.total_seconds() == 1
        await plain.send_message(BARAKA.id, "another chat is fine")
        with pytest.raises(RetryAfter):
            api.meet(TelegramUser(44, "Chebet"))
            await plain.send_message(44, "third in a second: over the global limit")
    assert [sent.rendered for sent in api.sent] == ["one", "another chat is fine"]
    assert api.rate_limited == 2


async def test_wait_for_says_what_was_sent(api: FakeBotApi, bot: Bot) -> None:
    api.meet(AMINA)
    await bot.send_message(AMINA.id, "first")
    with pytest.raises(WaitTimeout, match=r"(?s)no message to chat 42 from position #1 .*#0 sendMessage -> 42 .*first"):
        await api.wait_for(AMINA, after=1, timeout=0.05)
    with pytest.raises(AssertionError, match="Nothing was sent to chat 43"):
        await api.wait_for(BARAKA.id, timeout=0.01)
    assert (await api.wait_for(lambda sent: sent.rendered == "first", after=0)).index == 0


async def test_waits_in_a_row_give_the_next_messages(api: FakeBotApi, bot: Bot) -> None:
    await api.user_says(AMINA, "/pay")
    await bot.send_message(AMINA.id, "queued, about 6 s")
    await bot.send_message(AMINA.id, "your code")
    assert (await api.wait_for(AMINA)).rendered == "queued, about 6 s"
    assert (await api.wait_for(AMINA)).rendered == "your code"
    await api.user_says(AMINA, "/code")  # a new action: waits start after it
    with pytest.raises(WaitTimeout):
        await api.wait_for(AMINA, timeout=0.01)


# -- the wire format: the HTTP form with plain httpx, and the same bytes in this process -----


async def test_wrong_token_and_unknown_method(api: FakeBotApi, http_url: str, http: httpx.AsyncClient) -> None:
    response = await http.post("/bot123:wrong/getMe")
    assert response.status_code == 401
    assert response.json() == {"ok": False, "error_code": 401, "description": "Unauthorized"}
    response = await http.post(f"/bot{TOKEN}/sendTelepathy")
    assert response.status_code == 404
    assert response.json() == {"ok": False, "error_code": 404, "description": "Not Found: method not found"}
    response = await http.get(f"/bot{TOKEN}/GETME")  # method names are case-insensitive
    assert response.json()["result"]["username"] == "paygbot_demo_bot"

    for way in (Way(http_url), Way(http_url, aiohttp=True), Way(None)):
        with pytest.raises(InvalidToken, match="rejected by the server"):
            async with plain_bot(api, way, token="123:wrong"):
                pass


async def test_get_updates_offset_semantics(api: FakeBotApi, http: httpx.AsyncClient) -> None:
    async def get_updates(**params: Any) -> list[dict[str, Any]]:
        response = await http.post(f"/bot{TOKEN}/getUpdates", data={k: json.dumps(v) for k, v in params.items()})
        body = response.json()
        assert body["ok"], body
        return body["result"]

    await api.user_says(AMINA, "one")
    await api.user_says(AMINA, "two")
    await api.user_says(AMINA, "three")
    updates = await get_updates()
    first, second, third = (update["update_id"] for update in updates)
    assert (second, third) == (first + 1, first + 2)
    assert [u["message"]["text"] for u in updates] == ["one", "two", "three"]

    assert [u["update_id"] for u in await get_updates(offset=second, limit=1)] == [second]
    assert api.pending_updates == 2  # the first one is confirmed and gone
    assert [u["update_id"] for u in await get_updates(offset=first)] == [second, third]
    assert [u["update_id"] for u in await get_updates(offset=-1)] == [third]
    assert await get_updates(offset=third + 1) == []
    assert api.pending_updates == 0


async def test_long_poll_waits_and_wakes(api: FakeBotApi, http: httpx.AsyncClient) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert (await http.post(f"/bot{TOKEN}/getUpdates", data={"timeout": "0"})).json()["result"] == []

    poll = asyncio.create_task(http.post(f"/bot{TOKEN}/getUpdates", data={"timeout": "20"}, timeout=30))
    await eventually(lambda: api.waiting_polls == 1, "the long poll to wait")
    assert not poll.done()
    await api.user_says(AMINA, "wake up")
    response = await asyncio.wait_for(poll, 5)
    assert [u["message"]["text"] for u in response.json()["result"]] == ["wake up"]
    assert loop.time() - started < 5  # it answered when the update came, not after 20 s

    # A second getUpdates ends the first with 409, as Telegram does.
    params = {"offset": "999", "timeout": "20"}
    first = asyncio.create_task(http.post(f"/bot{TOKEN}/getUpdates", data=params, timeout=30))
    await eventually(lambda: api.waiting_polls == 1, "the first long poll")
    second = await http.post(f"/bot{TOKEN}/getUpdates", data={"offset": "999", "timeout": "0"})
    assert second.json() == {"ok": True, "result": []}
    conflict = await asyncio.wait_for(first, 5)
    assert conflict.status_code == 409
    assert conflict.json()["description"].startswith("Conflict: terminated by other getUpdates request")

    # A client that goes away ends its long poll: nothing is left waiting.
    gone = asyncio.create_task(http.post(f"/bot{TOKEN}/getUpdates", data={"offset": "999", "timeout": "20"}))
    await eventually(lambda: api.waiting_polls == 1, "the third long poll")
    gone.cancel()
    await eventually(lambda: api.waiting_polls == 0, "the abandoned long poll to end")


async def test_parameter_encodings(api: FakeBotApi, http: httpx.AsyncClient) -> None:
    api.meet(AMINA)
    markup = {"inline_keyboard": [[{"text": "Go", "callback_data": "go"}]]}
    # form-urlencoded, non-string values JSON-encoded; a text that looks like JSON stays text
    form = await http.post(
        f"/bot{TOKEN}/sendMessage", data={"chat_id": "42", "text": "123", "reply_markup": json.dumps(markup)}
    )
    assert form.json()["result"]["text"] == "123"
    assert form.json()["result"]["reply_markup"] == markup
    assert api.sent[-1].reply_markup == markup
    # a JSON body
    body = await http.post(f"/bot{TOKEN}/sendMessage", json={"chat_id": 42, "text": "true", "parse_mode": "HTML"})
    assert body.json()["result"]["text"] == "true"
    # query string parameters, GET
    query = await http.get(f"/bot{TOKEN}/sendMessage", params={"chat_id": "42", "text": "via GET"})
    assert query.json()["result"]["text"] == "via GET"
    # multipart: a file part plus fields
    upload = await http.post(
        f"/bot{TOKEN}/sendDocument",
        data={"chat_id": "42", "caption": 'a "quoted" caption'},
        files={"document": ('name "with" quotes.bin', PAYLOAD, "application/octet-stream")},
    )
    result = upload.json()["result"]
    assert result["caption"] == 'a "quoted" caption'
    assert result["document"]["file_name"] == 'name "with" quotes.bin'
    assert api.sent[-1].document == PAYLOAD
    assert [sent.message_id for sent in api.sent] == [1, 2, 3, 4]  # one sequence per chat


async def test_both_transports_answer_the_same_bytes(api: FakeBotApi, http: httpx.AsyncClient) -> None:
    """What PTB would put on the wire, sent both ways, gets the same status and the same bytes:
    a refusal, a flood answer with ``retry_after``, and an upload (the answer's file ids aside)."""
    api.meet(AMINA)
    in_process = StandInRequest(api)

    def request(**values: Any) -> RequestData:
        return RequestData([RequestParameter.from_input(name, value) for name, value in values.items()])

    async def both(method: str, data: RequestData) -> tuple[tuple[int, bytes], tuple[int, bytes]]:
        direct = await in_process.do_request(f"{BASE_URL}{TOKEN}/{method}", "POST", data)
        files = data.multipart_data or None
        over_http = await http.post(f"/bot{TOKEN}/{method}", data=data.json_parameters, files=files)
        return direct, (over_http.status_code, over_http.content)

    refusal = request(chat_id=AMINA.id, text="<b>unclosed", parse_mode="HTML")
    direct, over_http = await both("sendMessage", refusal)
    assert direct == over_http and direct[0] == 400

    api.fail_next(2, retry_after=7)
    direct, over_http = await both("sendMessage", request(chat_id=AMINA.id, text="hello"))
    assert direct == over_http
    assert json.loads(direct[1]) == {"ok": False, "error_code": 429, "description": "Too Many Requests: retry after 7",
                                     "parameters": {"retry_after": 7}}

    from telegram import InputFile

    upload = request(chat_id=AMINA.id, document=InputFile(PAYLOAD, filename="ledger.csv"), caption="The ledger")
    direct, over_http = await both("sendDocument", upload)
    first, second = (json.loads(body)["result"] for _, body in (direct, over_http))
    for result in (first, second):
        result.pop("date"), result["document"].pop("file_id"), result.pop("message_id")
    assert direct[0] == over_http[0] == 200 and first == second
    assert api.sent[-1].document == api.sent[-2].document == PAYLOAD


async def test_shapes_parse_in_ptb_without_leftovers(api: FakeBotApi, bot: Bot) -> None:
    """PTB puts fields it does not know into ``api_kwargs``: none there means the shapes are right."""
    api.meet(AMINA)
    sent = await bot.send_message(AMINA.id, "pick", reply_markup=keyboard("a"))
    await api.user_says(AMINA, "/start x")
    await api.user_taps(AMINA, api.sent[0], "a")
    await api.user_shares_contact(AMINA, "254700000001")
    await api.user_forwards(AMINA, "hello", origin="Someone")
    updates = await bot.get_updates(timeout=0)
    assert len(updates) == 4

    def leftovers(obj: Any) -> list[str]:
        """Unknown fields of ``obj`` and of every Telegram object inside it."""
        found = [f"{type(obj).__name__}: {sorted(obj.api_kwargs)}"] if obj.api_kwargs else []
        slots = {slot for cls in type(obj).__mro__ for slot in getattr(cls, "__slots__", ())}
        for slot in slots - {"api_kwargs", "_bot", "_frozen", "_id_attrs"}:
            value = getattr(obj, slot, None)
            for item in value if isinstance(value, tuple) else (value,):
                if hasattr(item, "api_kwargs"):
                    found += leftovers(item)
        return found

    for update in updates:
        assert leftovers(update) == [], update.to_dict()
    command, tap, shared, forward = updates
    assert command.message and command.message.text == "/start x"
    assert tap.callback_query and tap.callback_query.message
    assert tap.callback_query.message.message_id == sent.message_id
    assert shared.message and shared.message.contact and shared.message.contact.user_id == AMINA.id
    assert forward.message and forward.message.forward_origin and forward.message.forward_origin.type == "hidden_user"
    assert leftovers(sent) == []


# -- HTML as Telegram parses it --------------------------------------------------------------


def test_parse_html_entities_use_utf16_offsets() -> None:
    text, entities = parse_html(
        '☀️ <b>Code</b> 🔋 <code>*024#</code> <a href="https://t.me/x?a=1&amp;b=2">link</a>'
    )
    assert text == "☀️ Code 🔋 *024# link"
    assert entities == [
        {"offset": 3, "length": 4, "type": "bold"},
        {"offset": 11, "length": 5, "type": "code"},  # 🔋 is two UTF-16 units
        {"offset": 17, "length": 4, "type": "text_link", "url": "https://t.me/x?a=1&b=2"},
    ]


def test_parse_html_supported_tags() -> None:
    text, entities = parse_html(
        '<pre><code class="language-python">x = 1</code></pre><span class="tg-spoiler">s</span>'
        "<tg-spoiler>t</tg-spoiler><blockquote>q</blockquote><i><u>iu</u></i>&lt;&gt;&quot;&#x27;&#39;"
    )
    assert text == "x = 1stqiu<>\"''"
    assert {"offset": 0, "length": 5, "type": "pre", "language": "python"} in entities
    assert [e["type"] for e in entities] == ["pre", "spoiler", "spoiler", "blockquote", "italic", "underline"]


@pytest.mark.parametrize(
    ("markup", "error"),
    [
        ("<b>open", 'Can\'t find end tag corresponding to start tag "b"'),
        ("<b><i>x</b></i>", 'Unmatched end tag at byte offset 7, expected "</i>", found "</b>"'),
        ("x</b>", "Unexpected end tag at byte offset 1"),
        ("a < b", 'Unsupported start tag "" at byte offset 2'),
        ("<p>para</p>", 'Unsupported start tag "p" at byte offset 0'),
        ("é<div>", 'Unsupported start tag "div" at byte offset 2'),
        ("<b", "Unclosed start tag at byte offset 0"),
        ('<span class="red">x</span>', 'Tag "span" must have class "tg-spoiler" at byte offset 0'),
        ("<a href=x y>t</a>", 'Expected equal sign in declaration of an attribute of the tag "a" at byte offset 0'),
        ("1 > 0", 'Character ">" must be escaped'),
        ("R&D", 'Character "&" must be escaped'),
    ],
)
def test_parse_html_refuses_what_telegram_refuses(markup: str, error: str) -> None:
    with pytest.raises(HtmlError) as refused:
        parse_html(markup)
    assert str(refused.value).startswith(error)


def test_parse_html_lenient_mode_lets_through_what_telegram_lets_through() -> None:
    assert parse_html("R&D 1 > 0 &nbsp;", strict=False) == ("R&D 1 > 0 &nbsp;", [])
    with pytest.raises(HtmlError):
        parse_html("1 < 2", strict=False)


async def test_webhook_mode_posts_updates_with_the_secret_and_refuses_long_polling(api: FakeBotApi) -> None:
    """``setWebhook``: updates are POSTed (a failed POST is sent again), ``getUpdates`` answers 409 until
    ``deleteWebhook``; ``getWebhookInfo`` says what is set."""
    received: list[tuple[dict[str, Any], str | None]] = []
    answers = iter([500, 200, 200])

    async def hook(scope: Any, receive: Any, send: Any) -> None:  # a bot's POST /telegram, first answering 500
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = dict(scope["headers"])
        received.append((json.loads(body), headers.get(b"x-telegram-bot-api-secret-token", b"").decode() or None))
        await send({"type": "http.response.start", "status": next(answers), "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async with serving(hook, 0, host="127.0.0.1") as port, running(api) as base_url, httpx.AsyncClient() as client:
        bot_api = f"{base_url}{api.token}"
        set_hook = await client.post(f"{bot_api}/setWebhook", json={
            "url": f"http://127.0.0.1:{port}/telegram", "secret_token": "s3cret", "allowed_updates": ["message"]})
        assert set_hook.json() == {"ok": True, "result": True}
        polled = await client.post(f"{bot_api}/getUpdates")
        assert polled.status_code == 409 and "webhook is active" in polled.json()["description"]
        api.meet(AMINA)
        await api.user_says(AMINA, "/start")
        await eventually(lambda: len(received) == 2 and not api.updates, timeout=10)
        assert received[0] == received[1] and received[0][1] == "s3cret"  # the 500 was followed by a second POST
        assert received[0][0]["message"]["text"] == "/start"
        info = (await client.post(f"{bot_api}/getWebhookInfo")).json()["result"]
        assert info["url"] == f"http://127.0.0.1:{port}/telegram" and info["pending_update_count"] == 0
        assert info["allowed_updates"] == ["message"] and "500" in info["last_error_message"]
        assert (await client.post(f"{bot_api}/deleteWebhook")).json()["result"] is True
        assert (await client.post(f"{bot_api}/getUpdates")).status_code == 200
        bad = await client.post(f"{bot_api}/setWebhook", json={"url": "http://x/telegram", "secret_token": "no spaces"})
        assert bad.status_code == 400 and api.webhook is None
