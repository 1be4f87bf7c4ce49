"""What every handler shares: replying (with the sandbox note), reading arguments, /start, /help,
/cancel, unknown commands, and the error handler."""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Callable

import segno
from telegram import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
    Update,
)
from telegram.ext import ConversationHandler

from bot import i18n
from bot.chat_state import SharedChatState
from bot.delivery import send_text, speak_to
from bot.people import InviteProblem, Kind
from bot.services import BotContext
from bot.texts import Texts, for_language
from handlers.menus import show_menu

log = logging.getLogger("paygbot.handlers")

MAX_ARGUMENT = 64
LANGUAGE = "language"
"""Where a stranger's /language choice waits in ``user_data`` until they join (then the ledger keeps it)."""
LANGUAGE_BUTTON = "lang:"
Markup = InlineKeyboardMarkup | ReplyKeyboardMarkup | ReplyKeyboardRemove | None


def update_key(update: Update) -> str:
    """What names the update that asks for a code (handled again after a replica died with it: one request)."""
    return f"tg:{update.update_id}"


async def reply(update: Update, context: BotContext, text: str, markup: Markup = None) -> None:
    """Answer in the update's chat; in sandbox mode every reply says so. A text Telegram cannot parse
    goes again as plain text (:func:`bot.delivery.send_text`)."""
    chat = update.effective_chat
    assert chat is not None
    await send_text(
        context.bot, chat.id, context.texts.with_sandbox_note(text, context.services.sandbox), reply_markup=markup,
        disable_web_page_preview=True,
    )


async def reply_qr(update: Update, context: BotContext, link: str, caption: str) -> None:
    """The link as a QR picture to scan from the other person's phone, with the link in the caption."""
    chat = update.effective_chat
    assert chat is not None
    picture = io.BytesIO()
    segno.make(link, error="m").save(picture, kind="png", scale=8, border=2)
    await context.bot.send_photo(
        chat.id, picture.getvalue(), caption=context.texts.with_sandbox_note(caption, context.services.sandbox),
    )


async def tell(context: BotContext, chat_id: int, words: Callable[[Texts], str],
               markup: Callable[[Texts], Markup] | None = None) -> None:
    """Write to someone other than the sender of the update, in their own language."""
    await speak_to(context.bot, context.services.db, chat_id, words, sandbox=context.services.sandbox,
                   markup=markup)


async def send_csv(update: Update, context: BotContext, header: list[str], rows: list[list[object]], filename: str,
                   caption: str) -> None:
    """A CSV document (a header row, then ``rows``) to the update's chat; in sandbox mode its caption says so."""
    document = io.StringIO()
    writer = csv.writer(document)
    writer.writerow(header)
    writer.writerows(rows)
    chat = update.effective_chat
    assert chat is not None
    await context.bot.send_document(chat.id, document.getvalue().encode("utf-8"), filename=filename,
                                    caption=context.texts.with_sandbox_note(caption, context.services.sandbox))


async def reply_page(update: Update, context: BotContext, text: str, prefix: str, offset: int, shown: int,
                     total: int, size: int, *, edit: bool) -> None:
    """One page of a list, with Newer / Older buttons (``<prefix><offset>``); a tapped button edits the page in
    place."""
    row = []
    if offset > 0:
        row.append((context.texts.newer, f"{prefix}{max(0, offset - size)}"))
    if offset + shown < total:
        row.append((context.texts.older, f"{prefix}{offset + size}"))
    markup = buttons([row]) if row else None
    if edit and update.callback_query is not None:
        await update.callback_query.edit_message_text(
            context.texts.with_sandbox_note(text, context.services.sandbox), reply_markup=markup)
    else:
        await reply(update, context, text, markup)


def buttons(rows: list[list[tuple[str, str]]]) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup([[InlineKeyboardButton(label, callback_data=data) for label, data in row]
                                 for row in rows])


def arguments(context: BotContext) -> list[str]:
    return list(context.args or [])


def too_long(values: list[str]) -> bool:
    return any(len(value) > MAX_ARGUMENT for value in values)


# -- /start, /help, /cancel -------------------------------------------------------------------


async def start(update: Update, context: BotContext) -> None:
    """/start [token]: join with an invite, or be greeted for who you are."""
    user, chat = update.effective_user, update.effective_chat
    assert user is not None and chat is not None
    args = arguments(context)
    who = context.who
    if args:
        linked_before = await context.services.people.chat_of_invited(args[0])
        joined = await context.services.people.redeem(
            args[0], telegram_id=user.id, chat_id=chat.id, name=user.full_name, language=context.language,
            language_chosen=LANGUAGE in (context.user_data or {}),
        )
        if isinstance(joined, InviteProblem):
            await reply(update, context, context.texts.invite_problem(joined.value),
                        None if who.kind is not Kind.STRANGER else share_number_keyboard(context.texts))
            return
        await welcome(update, context, joined.role)
        if joined.customer is not None and linked_before is not None and linked_before != chat.id:
            # the agent's invite moved the customer's codes here: the chat that had them is told (best effort)
            await speak_to(context.bot, context.services.db, linked_before, lambda t: t.codes_moved_elsewhere(),
                           sandbox=context.services.sandbox, unreachable="moved customer chat notice")
        return
    if who.kind is Kind.STRANGER:
        await reply(update, context, context.texts.help_for("stranger"), share_number_keyboard(context.texts))
        return
    await reply(update, context, context.texts.welcome_back(who.kind.value, user.first_name))


async def welcome(update: Update, context: BotContext, role: str) -> None:
    """Someone just got a role or linked their chat: greet them in the language now kept for them
    (a choice made before, when invited again, wins) and show them their menu."""
    user, chat = update.effective_user, update.effective_chat
    assert user is not None and chat is not None
    context.who = await context.services.people.who(user.id)
    context.language = context.who.speaks(user.language_code)
    if context.user_data is not None:
        context.user_data.pop(LANGUAGE, None)
    await reply(update, context, context.texts.welcome(role, user.first_name), ReplyKeyboardRemove())
    show_menu(context, chat.id, role)


def share_number_keyboard(texts: Texts) -> ReplyKeyboardMarkup:
    return ReplyKeyboardMarkup([[KeyboardButton(texts.share_my_number, request_contact=True)]],
                               resize_keyboard=True, one_time_keyboard=True)


async def help_command(update: Update, context: BotContext) -> None:
    """/help: what this person can do."""
    who = context.who
    markup = share_number_keyboard(context.texts) if who.kind is Kind.STRANGER else None
    await reply(update, context, context.texts.help_for(who.kind.value), markup)


async def cancel_outside(update: Update, context: BotContext) -> None:
    """/cancel when no dialogue is open."""
    await reply(update, context, context.texts.nothing_to_cancel, ReplyKeyboardRemove())


async def cancel(update: Update, context: BotContext) -> int:
    """/cancel inside a dialogue: nothing was done."""
    if context.user_data is not None:
        context.user_data.clear()
    await reply(update, context, context.texts.cancelled, ReplyKeyboardRemove())
    return ConversationHandler.END


async def timed_out(update: Update, context: BotContext) -> None:
    """Five minutes of silence end a dialogue (PTB calls this from a job: the gate did not run). Said only
    if the ledger agrees: the dialogue may have gone on, or ended, in another process meanwhile."""
    user, processor = update.effective_user, context.application.update_processor
    if user is not None and isinstance(processor, SharedChatState) and not await processor.timed_out_here(user.id):
        return
    if update.effective_chat is not None:
        context.language = await language_found_again(update, context)
        await reply(update, context, context.texts.timed_out, ReplyKeyboardRemove())


async def unknown_command(update: Update, context: BotContext) -> None:
    await reply(update, context, context.texts.unknown_command)


async def other_text(update: Update, context: BotContext) -> None:
    await reply(update, context, context.texts.not_understood)


async def stale_button(update: Update, context: BotContext) -> None:
    """A button from a finished dialogue or an old message."""
    query = update.callback_query
    if query is not None:
        await query.answer(context.texts.stale_button)


async def on_error(update: object, context: BotContext) -> None:
    """Log the problem first, then tell the person in one plain sentence."""
    log.error("update %s failed", getattr(update, "update_id", "?"), exc_info=context.error)
    if isinstance(update, Update) and update.effective_chat is not None:
        try:
            words = for_language(await language_found_again(update, context))
            await context.bot.send_message(update.effective_chat.id, words.something_went_wrong)
        except Exception as exc:  # the error handler must not raise: PTB would only log it again
            log.warning("could not tell chat %s about the error (%s)", update.effective_chat.id, type(exc).__name__)


async def language_found_again(update: Update, context: BotContext) -> str:
    """The person's language where the gate did not run: PTB gives the error handler, and a
    dialogue's timeout, a fresh context."""
    user = update.effective_user
    code = user.language_code if user is not None else None
    if user is None:
        return i18n.DEFAULT
    try:
        return (await context.services.people.who(user.id)).speaks(code)
    except Exception:  # the ledger may be what failed: Telegram's word is good enough here
        return i18n.pick(code)
