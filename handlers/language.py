"""/language: anyone picks English, French or Swahili; the choice is kept in the ledger.

A stranger has no row yet, so their choice waits in ``user_data`` and is kept when they join.
"""

from __future__ import annotations

from telegram import Update

from bot import i18n
from bot.people import Kind
from bot.services import BotContext
from handlers.common import LANGUAGE, LANGUAGE_BUTTON, arguments, buttons, reply
from handlers.menus import show_menu

PATTERN = rf"^{LANGUAGE_BUTTON}({'|'.join(i18n.LANGUAGES)})$"


async def language_command(update: Update, context: BotContext) -> None:
    """/language shows one button per language; /language fr chooses at once."""
    args = arguments(context)
    if not args:
        rows = [[(i18n.NAMES[language], f"{LANGUAGE_BUTTON}{language}") for language in i18n.LANGUAGES]]
        await reply(update, context, context.texts.choose_language, buttons(rows))
        return
    choice = args[0].lower()
    if len(args) != 1 or choice not in i18n.LANGUAGES:
        await reply(update, context, context.texts.usage("language"))
        return
    await _choose(update, context, choice)


async def language_tapped(update: Update, context: BotContext) -> None:
    query = update.callback_query
    assert query is not None and query.data is not None
    await query.answer()
    await query.edit_message_reply_markup(None)
    await _choose(update, context, query.data.removeprefix(LANGUAGE_BUTTON))


async def _choose(update: Update, context: BotContext, language: str) -> None:
    """Keep the choice, show the menu in it, and answer in it."""
    who, chat = context.who, update.effective_chat
    assert chat is not None
    context.language = language
    if who.kind is Kind.STRANGER:
        if context.user_data is not None:
            context.user_data[LANGUAGE] = language
    else:
        await context.services.people.keep_language(who, language, chosen=True)
        show_menu(context, chat.id, who.kind.value)  # in the background: the answer is not held up
    await reply(update, context, context.texts.language_set() + "\n\n" + context.texts.help_for(who.kind.value))
