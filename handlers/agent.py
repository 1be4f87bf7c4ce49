"""Agents (and managers): /days, /device, /history, /customer.

Typed in full, a command acts at once. Sent bare, /days and /customer become a short
dialogue with buttons (recent devices, common day counts) and a confirmation before anything
is issued or changed; /cancel or five minutes of silence end it.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Awaitable, Callable
from typing import Any

from telegram import ReplyKeyboardRemove, Update
from telegram.ext import (
    CallbackQueryHandler,
    CommandHandler,
    ConversationHandler,
    MessageHandler,
    TypeHandler,
    filters,
)
from telegram.warnings import PTBUserWarning

from bot.erm.backend import check_product_id
from bot.erm.errors import ErmAuthError, ErmError, ErmRefused
from bot.issuing import Accepted, Refused
from bot.people import valid_name
from bot.services import BotContext
from handlers.access import only
from handlers.common import (
    arguments,
    buttons,
    cancel,
    reply,
    reply_page,
    reply_qr,
    timed_out,
    too_long,
    update_key,
)
from handlers.roles import STAFF
from storage.models import CodeKind

DIALOGUE_TIMEOUT = 300
COMMON_DAYS = (7, 14, 30)
HISTORY_PAGE = 5
ASK_DEVICE, ASK_DAYS, CONFIRM_DAYS = range(3)
ASK_CUSTOMER_DEVICE, ASK_PHONE, ASK_NAME, CONFIRM_CUSTOMER = range(3, 7)
TEXT = filters.UpdateType.MESSAGE & filters.TEXT & ~filters.COMMAND
PHONE_PART = re.compile(r"^\+?[0-9()-]+$")


def parse_days(text: str) -> int | None:
    text = text.strip()
    if not re.fullmatch(r"[0-9]{1,4}", text):  # not isdigit(): it takes '²' and other scripts' digits
        return None
    days = int(text)
    return days if 1 <= days <= 1095 else None


def valid_device(text: str) -> str | None:
    try:
        check_product_id(text.strip())
    except ValueError:
        return None
    return text.strip()


def _state(context: BotContext, key: str) -> dict[str, Any]:
    assert context.user_data is not None
    return context.user_data.setdefault(key, {})


async def _answer_button(update: Update) -> str:
    query = update.callback_query
    assert query is not None and query.data is not None
    await query.answer()
    await query.edit_message_reply_markup(None)
    return query.data


async def _device_buttons(context: BotContext, key: str) -> Any:
    person = context.who.person
    assert person is not None
    recent = await context.services.people.recent_devices(person)
    _state(context, key)["recent"] = recent
    return buttons([[(ref, f"dev:{index}")] for index, ref in enumerate(recent)]) if recent else None


# -- issuing days codes -----------------------------------------------------------------------


async def issue_days(update: Update, context: BotContext, device: str, days: int) -> None:
    """Ask the engine, then answer at once: the code follows, or why not and what is possible."""
    services = context.services
    person, chat = context.who.person, update.effective_chat
    assert person is not None and chat is not None
    outcome = await services.engine.request(device, CodeKind.DAYS, days, requested_by=person.id, chat_id=chat.id,
                                            key=update_key(update))
    await answer_outcome(update, context, outcome)


NOTE_AFTER = 3.0
"""Seconds before an asker whose code has not come is told it is being asked of the ERM..."""
BUSY_MORNING = 10
"""...unless more than this many others are waiting for theirs too: then only after ``NOTE_AFTER_WHEN_BUSY``."""
NOTE_AFTER_WHEN_BUSY = 20.0


async def answer_outcome(update: Update, context: BotContext, outcome: Accepted | Refused) -> None:
    """A refusal with what is possible; a queue time; or nothing, when the code message itself is on its way."""
    services = context.services
    if isinstance(outcome, Refused):
        await reply(update, context, context.texts.refused(
            outcome.reason.value, outcome.device_ref, fits=outcome.fits, possible_at=outcome.possible_at,
            words=outcome.words, tz=services.settings.tz,
        ))
        return
    if outcome.eta.total_seconds() >= 1:
        await reply(update, context, context.texts.queued(outcome.device_ref, outcome.eta.total_seconds()))
        return
    if await services.engine.wait_told(outcome.request_id, timeout=NOTE_AFTER):
        return
    if services.engine.waiting_told > BUSY_MORNING:
        # Many codes are on their way at once, each as fast as Telegram lets the bot send: a note to each
        # asker would take its share of those messages and hold the codes back. Only a long wait is told.
        if await services.engine.wait_told(outcome.request_id, timeout=NOTE_AFTER_WHEN_BUSY):
            return
    await reply(update, context, context.texts.on_its_way(outcome.device_ref))


async def days_command(update: Update, context: BotContext) -> int:
    """/days device days — or bare /days for the dialogue."""
    args = arguments(context)
    if not args:
        markup = await _device_buttons(context, "days")
        await reply(update, context, context.texts.ask_device, markup)
        return ASK_DEVICE
    if len(args) != 2 or too_long(args):
        await reply(update, context, context.texts.usage("days"))
        return ConversationHandler.END
    device, days = valid_device(args[0]), parse_days(args[1])
    if device is None:
        await reply(update, context, context.texts.bad_device)
    elif days is None:
        await reply(update, context, context.texts.bad_days + "\n" + context.texts.usage("days"))
    else:
        await issue_days(update, context, device, days)
    return ConversationHandler.END


async def _ask_days(update: Update, context: BotContext, device: str) -> int:
    _state(context, "days")["device"] = device
    rows = [[(str(days), f"days:{days}") for days in COMMON_DAYS] + [(context.texts.other, "days:other")]]
    await reply(update, context, context.texts.ask_days(device), buttons(rows))
    return ASK_DAYS


NextStep = Callable[[Update, BotContext, str], Awaitable[int]]


async def _device_typed(update: Update, context: BotContext, again: int, then: NextStep) -> int:
    """A dialogue's device, typed: on to ``then``, or the same question again."""
    assert update.message is not None and update.message.text is not None
    device = valid_device(update.message.text)
    if device is None:
        await reply(update, context, context.texts.bad_device)
        return again
    return await then(update, context, device)


async def _device_tapped(update: Update, context: BotContext, key: str, again: int, then: NextStep) -> int:
    """A dialogue's device, chosen among the recent ones offered as buttons."""
    data = await _answer_button(update)
    recent = _state(context, key).get("recent", [])
    index = int(data.split(":")[1])
    if index >= len(recent):
        await reply(update, context, context.texts.ask_device)
        return again
    return await then(update, context, recent[index])


async def days_device_typed(update: Update, context: BotContext) -> int:
    return await _device_typed(update, context, ASK_DEVICE, _ask_days)


async def days_device_tapped(update: Update, context: BotContext) -> int:
    return await _device_tapped(update, context, "days", ASK_DEVICE, _ask_days)


async def _confirm_days(update: Update, context: BotContext, days: int) -> int:
    state = _state(context, "days")
    state["days"] = days
    await reply(update, context, context.texts.confirm_days(state["device"], days),
                buttons([[(context.texts.confirm, "ok:yes"), (context.texts.cancel, "ok:no")]]))
    return CONFIRM_DAYS


async def days_tapped(update: Update, context: BotContext) -> int:
    data = await _answer_button(update)
    if data == "days:other":
        await reply(update, context, context.texts.ask_other_days)
        return ASK_DAYS
    days = parse_days(data.split(":")[1])
    if days is None:  # not a button of ours
        await reply(update, context, context.texts.bad_days)
        return ASK_DAYS
    return await _confirm_days(update, context, days)


async def days_typed(update: Update, context: BotContext) -> int:
    assert update.message is not None and update.message.text is not None
    days = parse_days(update.message.text)
    if days is None:
        await reply(update, context, context.texts.bad_days)
        return ASK_DAYS
    return await _confirm_days(update, context, days)


async def days_confirmed(update: Update, context: BotContext) -> int:
    data = await _answer_button(update)
    state = _state(context, "days")
    assert context.user_data is not None
    context.user_data.pop("days", None)
    if data != "ok:yes":
        await reply(update, context, context.texts.cancelled)
        return ConversationHandler.END
    await issue_days(update, context, state["device"], state["days"])
    return ConversationHandler.END


# -- /device and /history ------------------------------------------------------------------------


async def known_device(update: Update, context: BotContext, ref: str) -> int | None:
    """The ledger's device for ``ref``, or a reply saying why there is none."""
    outcome = await context.services.engine.resolve_device(ref)
    if isinstance(outcome, Refused):
        await reply(update, context, context.texts.refused(outcome.reason.value, ref, words=outcome.words,
                                                   tz=context.services.settings.tz))
        return None
    return outcome


async def one_device(update: Update, context: BotContext, command: str) -> tuple[str, int] | None:
    """The single device argument of ``command``, checked and known to the ERM: (as typed, ledger id);
    or None once the person has been told what is wrong (usage, a bad id, an unknown device)."""
    args = arguments(context)
    if len(args) != 1 or too_long(args):
        await reply(update, context, context.texts.usage(command))
        return None
    device = valid_device(args[0])
    if device is None:
        await reply(update, context, context.texts.bad_device)
        return None
    device_id = await known_device(update, context, device)
    return None if device_id is None else (device, device_id)


async def device_command(update: Update, context: BotContext) -> None:
    """/device device: customer, price, credit, today's codes, next possible code, last codes."""
    found = await one_device(update, context, "device")
    if found is None:
        return
    _, device_id = found
    services = context.services
    status = await services.engine.status(device_id)
    plan = await services.plans.view(device_id)
    await reply(update, context, context.texts.device_view(status, services.settings.tz, services.clock.now(), plan))


async def history_command(update: Update, context: BotContext) -> None:
    """/history device: the ERM's committed codes, newest first, paged with buttons."""
    found = await one_device(update, context, "history")
    if found is not None:
        device, device_id = found
        await _history_page(update, context, device_id, device, 0, edit=False)


@only(STAFF)
async def history_tapped(update: Update, context: BotContext) -> None:
    query = update.callback_query
    assert query is not None and query.data is not None
    _, device_id, offset = query.data.split(":")
    device = await context.services.engine.device(int(device_id))
    await query.answer()
    if device is None:
        return
    await _history_page(update, context, int(device_id), device.label, int(offset), edit=True)


async def _history_page(update: Update, context: BotContext, device_id: int, ref: str, offset: int, *,
                        edit: bool) -> None:
    services = context.services
    try:
        page = await services.erm.code_history(ref, offset, HISTORY_PAGE)
    except ErmAuthError:  # our login, not the device: nothing the agent can act on
        await reply(update, context, context.texts.erm_unavailable())
        return
    except ErmRefused as exc:
        await reply(update, context, context.texts.refused("erm_refused", ref, words=exc.message, tz=services.settings.tz))
        return
    except ErmError:
        await reply(update, context, context.texts.erm_unavailable())
        return
    text = context.texts.history_page(ref, page.events, page.count, offset, services.settings.tz)
    await reply_page(update, context, text, f"hist:{device_id}:", offset, len(page.events), page.count, HISTORY_PAGE,
                     edit=edit)


# -- /customer --------------------------------------------------------------------------------


async def register_customer(update: Update, context: BotContext, device: str, phone: str, name: str) -> None:
    """Register or update the device's customer, then give their invite link and its QR picture."""
    services = context.services
    device_id = await known_device(update, context, device)
    if device_id is None:
        return
    customer, _ = await services.people.register_customer(device_id=device_id, phone=phone, name=name,
                                                          agent=context.who.person)
    invite = await services.people.invite("customer", context.who.person, customer)
    link = services.start_link(invite.token)
    await reply_qr(update, context, link, context.texts.customer_registered(name, device, link))


async def customer_command(update: Update, context: BotContext) -> int:
    """/customer device phone name… — or bare /customer for the dialogue."""
    args = arguments(context)
    if not args:
        markup = await _device_buttons(context, "customer")
        await reply(update, context, context.texts.ask_device, markup)
        return ASK_CUSTOMER_DEVICE
    phone_parts = _phone_parts(args[1:])
    if len(args) < 3 or not phone_parts or len(args) == 1 + len(phone_parts) or too_long(args[:1]):
        await reply(update, context, context.texts.usage("customer"))
        return ConversationHandler.END
    device = valid_device(args[0])
    phone = context.services.people.phone(" ".join(phone_parts))
    name = valid_name(" ".join(args[1 + len(phone_parts):]))
    if device is None:
        await reply(update, context, context.texts.bad_device)
    elif phone is None:
        await reply(update, context, context.texts.bad_phone)
    elif name is None:
        await reply(update, context, context.texts.bad_name)
    else:
        await register_customer(update, context, device, phone, name)
    return ConversationHandler.END


def _phone_parts(words: list[str]) -> list[str]:
    """The leading words that belong to a phone number typed with spaces (+254 712 345678)."""
    parts = []
    for word in words:
        if not PHONE_PART.match(word):
            break
        parts.append(word)
    return parts or words[:1]


async def _ask_phone(update: Update, context: BotContext, device: str) -> int:
    _state(context, "customer")["device"] = device
    await reply(update, context, context.texts.ask_phone)
    return ASK_PHONE


async def customer_device_typed(update: Update, context: BotContext) -> int:
    return await _device_typed(update, context, ASK_CUSTOMER_DEVICE, _ask_phone)


async def customer_device_tapped(update: Update, context: BotContext) -> int:
    return await _device_tapped(update, context, "customer", ASK_CUSTOMER_DEVICE, _ask_phone)


async def customer_phone(update: Update, context: BotContext) -> int:
    message = update.message
    assert message is not None
    state = _state(context, "customer")
    if message.contact is not None:
        phone = context.services.people.phone(message.contact.phone_number)
        contact_name = " ".join(filter(None, [message.contact.first_name, message.contact.last_name]))
        state["suggested_name"] = valid_name(contact_name) if contact_name else None
    else:
        phone = context.services.people.phone(message.text or "")
    if phone is None:
        await reply(update, context, context.texts.bad_phone)
        return ASK_PHONE
    state["phone"] = phone
    suggested = state.get("suggested_name")
    if suggested:
        state["name"] = suggested
        return await _confirm_customer(update, context)
    await reply(update, context, context.texts.ask_name)
    return ASK_NAME


async def customer_name(update: Update, context: BotContext) -> int:
    assert update.message is not None
    name = valid_name(update.message.text or "")
    if name is None:
        await reply(update, context, context.texts.bad_name)
        return ASK_NAME
    _state(context, "customer")["name"] = name
    return await _confirm_customer(update, context)


async def _confirm_customer(update: Update, context: BotContext) -> int:
    state = _state(context, "customer")
    await reply(update, context, context.texts.confirm_customer(state["device"], state["phone"], state["name"]),
                buttons([[(context.texts.confirm, "ok:yes"), (context.texts.cancel, "ok:no")]]))
    return CONFIRM_CUSTOMER


async def customer_confirmed(update: Update, context: BotContext) -> int:
    data = await _answer_button(update)
    assert context.user_data is not None
    state = context.user_data.pop("customer", {})
    if data != "ok:yes":
        await reply(update, context, context.texts.cancelled, ReplyKeyboardRemove())
        return ConversationHandler.END
    await register_customer(update, context, state["device"], state["phone"], state["name"])
    return ConversationHandler.END


# -- the handlers, for handlers.register ---------------------------------------------------------


def _dialogue(name: str, entry: CommandHandler[Any, Any], states: dict[object, list[Any]]) -> ConversationHandler[Any]:
    with warnings.catch_warnings():
        # Our dialogues mix buttons and typed answers on purpose; PTB warns about that combination.
        warnings.filterwarnings("ignore", message="If 'per_message=False'", category=PTBUserWarning)
        return ConversationHandler(
            entry_points=[entry],
            states={**states, ConversationHandler.TIMEOUT: [TypeHandler(Update, timed_out)]},
            fallbacks=[CommandHandler("cancel", cancel, filters=filters.UpdateType.MESSAGE)],
            conversation_timeout=DIALOGUE_TIMEOUT,
            name=name,
            allow_reentry=True,
        )


def days_dialogue(entry: Callable[[Update, BotContext], Awaitable[Any]]) -> ConversationHandler[Any]:
    """/days: ``entry`` is :func:`days_command` with its role check (see handlers.table)."""
    return _dialogue("days", CommandHandler("days", entry, filters=filters.UpdateType.MESSAGE), {
        ASK_DEVICE: [MessageHandler(TEXT, days_device_typed),
                     CallbackQueryHandler(days_device_tapped, "^dev:[0-9]{1,2}$")],
        ASK_DAYS: [MessageHandler(TEXT, days_typed), CallbackQueryHandler(days_tapped, "^days:([0-9]{1,4}|other)$")],
        CONFIRM_DAYS: [CallbackQueryHandler(days_confirmed, "^ok:")],
    })


def customer_dialogue(entry: Callable[[Update, BotContext], Awaitable[Any]]) -> ConversationHandler[Any]:
    """/customer: ``entry`` is :func:`customer_command` with its role check (see handlers.table)."""
    return _dialogue("customer", CommandHandler("customer", entry, filters=filters.UpdateType.MESSAGE), {
        ASK_CUSTOMER_DEVICE: [MessageHandler(TEXT, customer_device_typed),
                              CallbackQueryHandler(customer_device_tapped, "^dev:[0-9]{1,2}$")],
        ASK_PHONE: [MessageHandler(TEXT | (filters.UpdateType.MESSAGE & filters.CONTACT), customer_phone)],
        ASK_NAME: [MessageHandler(TEXT, customer_name)],
        CONFIRM_CUSTOMER: [CallbackQueryHandler(customer_confirmed, "^ok:")],
    })
