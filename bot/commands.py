"""The command lists Telegram shows in the menu: one for strangers (per language), one per person.

Command names are the same in every language (they are what agents learn); their descriptions
come from :mod:`bot.texts` in the person's language.
"""

from __future__ import annotations

import logging

from telegram import Bot, BotCommand, BotCommandScopeChat, BotCommandScopeDefault
from telegram.error import TelegramError

from bot import i18n
from bot.people import People
from bot.texts import for_language

log = logging.getLogger("paygbot.commands")

def commands_of(role: str, language: str) -> list[BotCommand]:
    return [BotCommand(name, description) for name, description in for_language(language).command_descriptions(role)]


async def register_for(bot: Bot, chat_id: int, role: str, language: str) -> None:
    """Show this chat the commands of its role described in its person's language, whatever language
    their Telegram app is set to (the plain list, and the same list for each language code).
    Best effort: a chat Telegram will not serve is logged and left."""
    listed, scope = commands_of(role, language), BotCommandScopeChat(chat_id)
    try:
        for code in (None, *i18n.LANGUAGES):
            await bot.set_my_commands(listed, scope=scope, language_code=code)
    except TelegramError as exc:
        log.warning("chat %s: its command list was not registered (%s)", chat_id, exc.message)


async def register_all(bot: Bot, people: People) -> None:
    """The strangers' list in each language (Telegram picks it by the user's language_code; English is
    the fallback), and each known person's own list (best effort, at start)."""
    try:
        for language in i18n.LANGUAGES:
            for code in (None, language) if language == i18n.DEFAULT else (language,):
                await bot.set_my_commands(commands_of("stranger", language), scope=BotCommandScopeDefault(),
                                          language_code=code)
    except TelegramError as exc:
        log.warning("could not register the strangers' command list with Telegram (%s)", exc.message)
    for person in await people.staff():
        await register_for(bot, person.telegram_id, person.role.value, i18n.pick(person.language))
    for customer in await people.customers_with_chat():
        assert customer.chat_id is not None
        await register_for(bot, customer.chat_id, "customer", i18n.pick(customer.language))
