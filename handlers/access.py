"""The access gate: runs first for every update, finds who sent it, and stops what they may not do.

Strangers may only /start, /help and /language (and share their own number); customers their own
commands; managers-only commands are refused to agents. A refused update touches neither
the ERM nor the ledger beyond the one read that tells who the person is. The gate also sets the
language of the update (one chosen with /language, else the person's Telegram app's) and keeps it
in the ledger when it changed, for what they are sent unasked.
"""

from __future__ import annotations

from telegram import Update
from telegram.ext import ApplicationHandlerStop

from bot.people import Kind
from bot.services import BotContext
from handlers.common import LANGUAGE, LANGUAGE_BUTTON, reply, show_menu

PUBLIC = {"start", "help", "language"}
CUSTOMER = {*PUBLIC, "balance", "code", "cancel"}
MANAGERS_ONLY = {"invite", "agents", "revoke", "price", "summary", "export", "assign"}


def command_of(update: Update) -> str | None:
    """The command a message starts with, without the slash and any @botname."""
    message = update.effective_message
    if message is None or not message.text or not message.text.startswith("/"):
        return None
    return message.text.split()[0][1:].split("@")[0].lower()


async def gate(update: Update, context: BotContext) -> None:
    """Look up the sender once; refuse, with a plain answer, what their role does not allow."""
    user = update.effective_user
    if user is None or update.effective_chat is None:
        raise ApplicationHandlerStop
    who = await context.services.people.who(user.id)
    context.who = who
    context.language = who.speaks(user.language_code, (context.user_data or {}).get(LANGUAGE))
    if (who.person or who.customer) and not who.language_chosen and who.language != context.language:
        # they chose none: follow their Telegram app, also in what they will be sent unasked, and in the menu
        await context.services.people.keep_language(who, context.language, chosen=False)
        show_menu(context, update.effective_chat.id, who.kind.value)
    if who.person is not None and not who.person.name and user.full_name:
        await context.services.people.remember_name(who.person, user.full_name)
    command = command_of(update)
    if _language_tapped(update):
        return  # anyone may choose their language
    if who.kind is Kind.STRANGER:
        if command in PUBLIC or _shares_contact(update):
            return
        await _refuse(update, context, context.texts.stranger_refused)
    if who.kind is Kind.CUSTOMER:
        if command is None and update.callback_query is None:
            return
        if command in CUSTOMER:
            return
        await _refuse(update, context, context.texts.staff_only)
    if who.kind is Kind.AGENT and command in MANAGERS_ONLY:
        await _refuse(update, context, context.texts.managers_only)


def _language_tapped(update: Update) -> bool:
    query = update.callback_query
    return query is not None and (query.data or "").startswith(LANGUAGE_BUTTON)


def _shares_contact(update: Update) -> bool:
    message = update.effective_message
    return message is not None and message.contact is not None


async def _refuse(update: Update, context: BotContext, text: str) -> None:
    if update.callback_query is not None:
        await update.callback_query.answer(text[:190], show_alert=True)
    else:
        await reply(update, context, text)
    raise ApplicationHandlerStop
