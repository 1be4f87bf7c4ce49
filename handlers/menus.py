"""The command lists Telegram shows in the menu: one for strangers (per language), one per person, made
from the command table (:mod:`handlers.table`), which registration keeps in ``bot_data``.

Command names are the same in every language (they are what agents learn); their descriptions
come from :mod:`bot.texts` in the person's language.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence

from telegram import (
    Bot,
    BotCommand,
    BotCommandScopeChat,
    BotCommandScopeDefault,
    MenuButtonWebApp,
    WebAppInfo,
)
from telegram.error import TelegramError

from bot import i18n
from bot.people import Kind, People
from bot.services import BotContext
from bot.texts import for_language
from handlers.roles import Command

log = logging.getLogger("paygbot.commands")

TABLE = "paygbot.commands"
"""Where :func:`handlers.register` keeps the command table in ``bot_data`` for the menus."""


def commands_of(table: Sequence[Command], role: str, language: str) -> list[BotCommand]:
    """The menu of a role, in the table's order, described in ``language``."""
    words, kind = for_language(language), Kind(role)
    return [BotCommand(command.name, words.menu_line(command.name, role)) for command in table
            if kind in command.menu_for]


def show_menu(context: BotContext, chat_id: int, role: str) -> None:
    """Register the chat's command list in its person's language, without holding up the answer."""
    table = context.bot_data[TABLE]
    context.application.create_task(register_for(context.bot, table, chat_id, role, context.language,
                                                 context.services.settings.dashboard_url, context.services.people))


class _Menu:
    """A chat's menu: its command list and, for a manager with a dashboard, the menu button opening it."""

    def __init__(self, table: Sequence[Command], role: str, language: str, dashboard_url: str | None) -> None:
        self.listed = commands_of(table, role, language)
        self.button = (MenuButtonWebApp(for_language(language).open_dashboard, WebAppInfo(dashboard_url))
                       if role == Kind.MANAGER.value and dashboard_url is not None else None)

    @property
    def fingerprint(self) -> str:
        shown = [[command.command, command.description] for command in self.listed]
        if self.button is not None:
            shown.append([self.button.text, self.button.web_app.url])
        return hashlib.sha256(json.dumps(shown, ensure_ascii=False).encode()).hexdigest()


async def register_for(bot: Bot, table: Sequence[Command], chat_id: int, role: str, language: str,
                       dashboard_url: str | None = None, people: People | None = None,
                       registered: str | None = None) -> None:
    """Show this chat the commands of its role described in its person's language, whatever language
    their Telegram app is set to (the plain list, and the same list for each language code); a manager's
    menu button opens the dashboard (when it has an address; one whose role is taken away is refused there).
    With ``people``, the menu's fingerprint is kept, and a menu already ``registered`` as it is now is not
    sent again. Best effort: a chat Telegram will not serve is logged and left."""
    menu, scope = _Menu(table, role, language, dashboard_url), BotCommandScopeChat(chat_id)
    fingerprint = menu.fingerprint
    if registered == fingerprint:
        return
    try:
        for code in (None, *i18n.LANGUAGES):
            await bot.set_my_commands(menu.listed, scope=scope, language_code=code)
        if menu.button is not None:
            await bot.set_chat_menu_button(chat_id, menu.button)
    except TelegramError as exc:
        log.warning("chat %s: its command list was not registered (%s)", chat_id, exc.message)
        return
    if people is not None:
        await people.keep_menu(chat_id, fingerprint)


async def register_all(bot: Bot, table: Sequence[Command], people: People, dashboard_url: str | None = None) -> None:
    """The strangers' list in each language (Telegram picks it by the user's language_code; English is
    the fallback), and each known person's own list (best effort, at start: only the lists that changed
    since they were last registered)."""
    try:
        for language in i18n.LANGUAGES:
            for code in (None, language) if language == i18n.DEFAULT else (language,):
                await bot.set_my_commands(commands_of(table, "stranger", language), scope=BotCommandScopeDefault(),
                                          language_code=code)
    except TelegramError as exc:
        log.warning("could not register the strangers' command list with Telegram (%s)", exc.message)
    registered = await people.menus()
    for person in await people.staff():
        await register_for(bot, table, person.telegram_id, person.role.value, i18n.pick(person.language),
                           dashboard_url, people, registered.get(person.telegram_id))
    for customer in await people.customers_with_chat():
        assert customer.chat_id is not None
        await register_for(bot, table, customer.chat_id, "customer", i18n.pick(customer.language), None, people,
                           registered.get(customer.chat_id))
