"""The access gate: runs first for every update, finds who sent it, and stops what they may not do.

Who may send which command is one table, :data:`COMMANDS`; a command missing from it is for staff.
The gate reads the command exactly as PTB's ``CommandHandler`` does (the ``bot_command`` entity at
the start of the text, which Telegram ends at the first character that cannot be in a command name:
``/invite-x`` is ``/invite``), and every privileged handler checks the role again with :func:`only`
— a refusal in two places, never a grant in one.

Also stopped here, before any handler runs:

- edited messages: a command acts on the message as it was sent, once; an edit is not a new order;
- anything outside a private chat: codes and customers' details are never posted into a group;
- a stranger's flood: a stranger is told they are not registered at most once every few minutes, and
  the telling does not hold up the update (it is not awaited).

A refused update touches neither the ERM nor the ledger beyond the one read that tells who the person
is. The gate also sets the language of the update (one chosen with /language, else the person's
Telegram app's) and keeps it in the ledger when it changed, for what they are sent unasked.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import TypeVar

from telegram import Chat, Message, MessageEntity, Update
from telegram.ext import ApplicationHandlerStop, ConversationHandler

from bot.people import Kind
from bot.services import BotContext
from handlers.common import LANGUAGE, LANGUAGE_BUTTON, reply, show_menu

EVERYONE = frozenset(Kind)
PEOPLE = frozenset({Kind.MANAGER, Kind.AGENT, Kind.CUSTOMER})
STAFF = frozenset({Kind.MANAGER, Kind.AGENT})
MANAGERS = frozenset({Kind.MANAGER})

COMMANDS: dict[str, frozenset[Kind]] = {
    "start": EVERYONE, "help": EVERYONE, "language": EVERYONE,
    "cancel": PEOPLE, "balance": PEOPLE, "code": PEOPLE,
    "days": STAFF, "customer": STAFF, "device": STAFF, "history": STAFF, "free": STAFF, "reset": STAFF,
    "pay": STAFF,
    "invite": MANAGERS, "price": MANAGERS, "summary": MANAGERS, "export": MANAGERS, "agents": MANAGERS,
    "revoke": MANAGERS, "assign": MANAGERS,
}
"""Who may send each command. A command not listed here (an unknown one) is for staff, who are told it
is unknown."""

QUIET_FOR = timedelta(minutes=5)
"""A stranger (or a group) is told why nothing happens at most once in this long."""
STRANGER_ANSWERS = 5
"""A stranger's /help, /language and bare /start answered in :data:`QUIET_FOR`; more are let go silently."""
MAX_REMEMBERED = 10_000

Handler = TypeVar("Handler", bound=Callable[..., Awaitable[object]])

def command_of(update: Update) -> str | None:
    """The command of a message as PTB's ``CommandHandler`` reads it: the ``bot_command`` entity at
    offset 0, without the slash and any @botname, lower case; None if the message has none."""
    message = update.effective_message
    if message is None or not message.text or not message.entities:
        return None
    first = message.entities[0]
    if first.type != MessageEntity.BOT_COMMAND or first.offset != 0:
        return None
    return message.text[1:first.length].split("@")[0].lower()


async def gate(update: Update, context: BotContext) -> None:
    """Look up the sender once; refuse, with a plain answer, what their role does not allow."""
    user, chat = update.effective_user, update.effective_chat
    if user is None or chat is None:
        raise ApplicationHandlerStop
    if chat.type != Chat.PRIVATE:
        _tell_once(update, context, chat.id, lambda: context.texts.private_chats_only)
        raise ApplicationHandlerStop
    who = await context.services.people.who(user.id)
    context.who = who
    context.language = who.speaks(user.language_code, (context.user_data or {}).get(LANGUAGE))
    if _edited(update):
        if who.kind is not Kind.STRANGER and _is_command(update.edited_message):
            await reply(update, context, context.texts.edit_not_carried_out)
        raise ApplicationHandlerStop
    if (who.person or who.customer) and not who.language_chosen and who.language != context.language:
        # they chose none: follow their Telegram app, also in what they will be sent unasked, and in the menu
        await context.services.people.keep_language(who, context.language, chosen=False)
        show_menu(context, chat.id, who.kind.value)
    if who.person is not None and not who.person.name and user.full_name:
        await context.services.people.remember_name(who.person, user.full_name)
    if _language_tapped(update):
        return  # anyone may choose their language
    command = command_of(update)
    if who.kind is Kind.STRANGER:
        if _shares_contact(update) or (command == "start" and _has_argument(update)):
            return  # joining: a shared number, an invite link
        if Kind.STRANGER in COMMANDS.get(command or "", STAFF) and _answers_left(context, chat.id):
            return
        _tell_once(update, context, chat.id, lambda: context.texts.stranger_refused)
        raise ApplicationHandlerStop
    if command is None:
        if who.kind is Kind.CUSTOMER and update.callback_query is not None:
            await _refuse(update, context, context.texts.staff_only)  # customers have no buttons of staff's
        return
    allowed = COMMANDS.get(command, STAFF)
    if who.kind not in allowed:
        await _refuse(update, context, _refusal(context, allowed))


def only(allowed: frozenset[Kind]) -> Callable[[Handler], Handler]:
    """A handler's own check of the sender's role (the gate checked it already; this is the second
    lock): anyone else is refused and nothing happens. Dialogue entries end the dialogue."""

    def wrap(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def checked(update: Update, context: BotContext) -> object:
            if context.who.kind not in allowed:
                await _refuse(update, context, _refusal(context, allowed), stop=False)
                return ConversationHandler.END
            return await handler(update, context)

        checked.allowed = allowed  # type: ignore[attr-defined]
        return checked  # type: ignore[return-value]

    return wrap


def _refusal(context: BotContext, allowed: frozenset[Kind]) -> str:
    if context.who.kind is Kind.STRANGER:
        return context.texts.stranger_refused
    return context.texts.managers_only if allowed == MANAGERS else context.texts.staff_only


def _edited(update: Update) -> bool:
    return update.edited_message is not None or update.edited_channel_post is not None


def _is_command(message: Message | None) -> bool:
    return bool(message and message.entities and message.entities[0].type == MessageEntity.BOT_COMMAND
                and message.entities[0].offset == 0)


def _tell_once(update: Update, context: BotContext, chat_id: int, words: Callable[[], str]) -> None:
    """Say why nothing happens, at most once in :data:`QUIET_FOR` per chat, without waiting for the
    send: a flood of messages costs neither sends (Telegram's 30 a second are everyone's) nor time."""
    told: dict[int, datetime] = context.bot_data.setdefault("paygbot.told", {})
    now = context.services.clock.now()
    last = told.get(chat_id)
    if last is not None and now - last < QUIET_FOR:
        return
    if len(told) >= MAX_REMEMBERED:
        for stale in [key for key, when in told.items() if now - when >= QUIET_FOR]:
            del told[stale]
        if len(told) >= MAX_REMEMBERED:
            return  # a storm of strangers: silence is the safe answer
    told[chat_id] = now
    if update.callback_query is not None:
        context.application.create_task(update.callback_query.answer(words()[:190], show_alert=True), update=update)
    else:
        context.application.create_task(reply(update, context, words()), update=update)


def _has_argument(update: Update) -> bool:
    message = update.effective_message
    return message is not None and len((message.text or "").split()) > 1


def _answers_left(context: BotContext, chat_id: int) -> bool:
    """Whether a stranger's public command is answered: :data:`STRANGER_ANSWERS` in :data:`QUIET_FOR`."""
    counts: dict[int, tuple[datetime, int]] = context.bot_data.setdefault("paygbot.stranger_answers", {})
    now = context.services.clock.now()
    since, count = counts.get(chat_id, (now, 0))
    if now - since >= QUIET_FOR:
        since, count = now, 0
    if count >= STRANGER_ANSWERS:
        return False
    if len(counts) >= MAX_REMEMBERED:
        for stale in [key for key, (when, _) in counts.items() if now - when >= QUIET_FOR]:
            del counts[stale]
    counts[chat_id] = (since, count + 1)
    return True


def _language_tapped(update: Update) -> bool:
    query = update.callback_query
    return query is not None and (query.data or "").startswith(LANGUAGE_BUTTON)


def _shares_contact(update: Update) -> bool:
    message = update.effective_message
    return message is not None and message.contact is not None


async def _refuse(update: Update, context: BotContext, text: str, *, stop: bool = True) -> None:
    if update.callback_query is not None:
        await update.callback_query.answer(text[:190], show_alert=True)
    else:
        await reply(update, context, text)
    if stop:
        raise ApplicationHandlerStop
