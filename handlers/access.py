"""The access gate: runs first for every update, finds who sent it, and stops what they may not do.

Who may send which command is the command table (:mod:`handlers.table`), an allow-list: a command is
refused to every role it does not name. The gate reads the command exactly as PTB's ``CommandHandler`` does (the ``bot_command`` entity at
the start of the text, which Telegram ends at the first character that cannot be in a command name:
``/invite-x`` is ``/invite``), and every privileged handler checks the role again
(:func:`handlers.roles.only`) — a refusal in two places, never a grant in one. A command that is not
ours at all reaches staff and customers as "unknown command"; strangers are refused.

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
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import TypeVar

from telegram import Chat, MessageEntity, Update
from telegram.ext import ApplicationHandlerStop, ConversationHandler

from bot.people import Kind
from bot.services import BotContext
from handlers.common import LANGUAGE, LANGUAGE_BUTTON, reply
from handlers.menus import show_menu
from handlers.roles import MANAGERS, Command

QUIET_FOR = timedelta(minutes=5)
"""A stranger (or a group) is told why nothing happens at most once in this long."""
STRANGER_ANSWERS = 5
"""What a stranger may do (/start with or without an invite, /help, /language and its buttons, sharing their
number) is answered this many times in :data:`QUIET_FOR`; more are let go silently."""
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


def gate_for(table: Sequence[Command]) -> Callable[[Update, BotContext], Awaitable[None]]:
    """The gate of a command table: who may send each command is read from it."""
    allowed = {command.name: command.allowed for command in table}

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
            if who.kind is not Kind.STRANGER and command_of(update) is not None:
                await reply(update, context, context.texts.edit_not_carried_out)
            raise ApplicationHandlerStop
        if (who.person or who.customer) and not who.language_chosen and who.language != context.language:
            # they chose none: follow their Telegram app, also in what they will be sent unasked, and in the menu
            await context.services.people.keep_language(who, context.language, chosen=False)
            show_menu(context, chat.id, who.kind.value)
        if who.person is not None and not who.person.name and user.full_name:
            await context.services.people.remember_name(who.person, user.full_name)
        command = command_of(update)
        may = allowed.get(command or "")
        if who.kind is Kind.STRANGER:
            # what a stranger may do (join, ask for help, choose a language) is answered a few times in
            # a while; the rest, and a flood of anything, costs one word in a while, then silence
            joining = _shares_contact(update) or (command == "start" and _has_argument(update))
            if (joining or _language_tapped(update) or (may is not None and Kind.STRANGER in may)) \
                    and _answers_left(context, chat.id):
                return
            _tell_once(update, context, chat.id, lambda: context.texts.stranger_refused)
            raise ApplicationHandlerStop
        if _language_tapped(update):
            return  # anyone may choose their language
        if command is None:
            if who.kind is Kind.CUSTOMER and update.callback_query is not None:
                await refuse(update, context, context.texts.staff_only)  # customers have no buttons of staff's
            return
        if may is None:
            if who.kind is Kind.CUSTOMER:
                await refuse(update, context, context.texts.staff_only)
            return  # not a command of ours: answered as unknown
        if who.kind not in may:
            await refuse(update, context, refusal(context, may))

    return gate


def _edited(update: Update) -> bool:
    return update.edited_message is not None or update.edited_channel_post is not None


def _tell_once(update: Update, context: BotContext, chat_id: int, words: Callable[[], str]) -> None:
    """Say why nothing happens, at most once in :data:`QUIET_FOR` per chat, without waiting for the
    send: a flood of messages costs neither sends (Telegram's 30 a second are everyone's) nor time."""
    if not _within(context, "paygbot.told", chat_id, 1):
        return
    if update.callback_query is not None:
        context.application.create_task(update.callback_query.answer(words()[:190], show_alert=True), update=update)
    else:
        context.application.create_task(reply(update, context, words()), update=update)


def _has_argument(update: Update) -> bool:
    message = update.effective_message
    return message is not None and len((message.text or "").split()) > 1


def _answers_left(context: BotContext, chat_id: int) -> bool:
    """Whether a stranger's public command is answered: :data:`STRANGER_ANSWERS` in :data:`QUIET_FOR`."""
    return _within(context, "paygbot.stranger_answers", chat_id, STRANGER_ANSWERS)


def _within(context: BotContext, budget: str, chat_id: int, allowance: int) -> bool:
    """Count one more for ``chat_id`` in ``budget`` if it has used fewer than ``allowance`` in the
    :data:`QUIET_FOR` since its first; False (nothing counted) once it has. At most
    :data:`MAX_REMEMBERED` chats are counted at once: in a storm of strangers, silence is the safe answer."""
    counts: dict[int, tuple[datetime, int]] = context.bot_data.setdefault(budget, {})
    now = context.services.clock.now()
    since, count = counts.get(chat_id, (now, 0))
    if now - since >= QUIET_FOR:
        since, count = now, 0
    if count >= allowance:
        return False
    if chat_id not in counts and len(counts) >= MAX_REMEMBERED:
        for stale in [key for key, (when, _) in counts.items() if now - when >= QUIET_FOR]:
            del counts[stale]
        if len(counts) >= MAX_REMEMBERED:
            return False
    counts[chat_id] = (since, count + 1)
    return True


def _language_tapped(update: Update) -> bool:
    query = update.callback_query
    return query is not None and (query.data or "").startswith(LANGUAGE_BUTTON)


def _shares_contact(update: Update) -> bool:
    message = update.effective_message
    return message is not None and message.contact is not None


def only(allowed: frozenset[Kind]) -> Callable[[Handler], Handler]:
    """A handler's own check of the sender's role: anyone else is refused and nothing happens.
    A dialogue's entry refused ends the dialogue before it starts."""

    def wrap(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def checked(update: Update, context: BotContext) -> object:
            if context.who.kind not in allowed:
                await refuse(update, context, refusal(context, allowed), stop=False)
                return ConversationHandler.END
            return await handler(update, context)

        checked.allowed = allowed  # type: ignore[attr-defined]
        return checked  # type: ignore[return-value]

    return wrap


def refusal(context: BotContext, allowed: frozenset[Kind]) -> str:
    """Why the sender may not: a stranger is not registered; others lack the role."""
    if context.who.kind is Kind.STRANGER:
        return context.texts.stranger_refused
    return context.texts.managers_only if allowed == MANAGERS else context.texts.staff_only


async def refuse(update: Update, context: BotContext, text: str, *, stop: bool = True) -> None:
    """Say no (a button gets an alert); ``stop``: no other handler runs for this update."""
    if update.callback_query is not None:
        await update.callback_query.answer(text[:190], show_alert=True)
    else:
        await reply(update, context, text)
    if stop:
        raise ApplicationHandlerStop
