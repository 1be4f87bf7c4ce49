"""Managers: /invite, /price, /dashboard, /summary, /export, /portfolio, /agents, /revoke."""

from __future__ import annotations

import re

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update, WebAppInfo

from bot import exports
from bot.delivery import send_summary
from bot.issuing import devices, limits
from bot.portfolio.chart import picture as portfolio_picture
from bot.portfolio.service import health as portfolio_health
from bot.portfolio.service import weeks as portfolio_weeks
from bot.services import BotContext
from handlers.agent import known_device, valid_device
from handlers.common import arguments, reply, reply_qr, too_long
from handlers.plans import export_plans, export_portfolio


async def invite(update: Update, context: BotContext) -> None:
    """/invite agent|manager: a single-use link, valid 24 hours, and its QR picture."""
    args = arguments(context)
    if len(args) != 1 or args[0].lower() not in ("agent", "manager"):
        await reply(update, context, context.texts.usage("invite"))
        return
    role = args[0].lower()
    services = context.services
    created = await services.people.invite(role, context.who.person)
    link = services.start_link(created.token)
    await reply_qr(update, context, link, context.texts.invite_created(role, link))


async def price(update: Update, context: BotContext) -> None:
    """/price device amount [currency]: the daily price that turns payments into days."""
    args = arguments(context)
    if len(args) not in (2, 3) or too_long(args):
        await reply(update, context, context.texts.usage("price"))
        return
    device = valid_device(args[0])
    amount = devices.parse_amount(args[1])
    currency = devices.parse_currency(args[2]) if len(args) == 3 else None
    if device is None:
        await reply(update, context, context.texts.bad_device)
        return
    if amount is None or (len(args) == 3 and currency is None):
        await reply(update, context, context.texts.bad_price + "\n" + context.texts.usage("price"))
        return
    services = context.services
    device_id = await known_device(update, context, device)
    if device_id is None:
        return
    refused = await services.plans.set_price(device_id, amount, currency, default_currency=services.settings.currency,
                                             by=context.who.person)
    if refused is not None:
        await reply(update, context, context.texts.plan_refused(refused.value, device))
        return
    status = await services.engine.status(device_id)
    await reply(update, context, context.texts.price_set(device, amount, status.device.currency))


async def summary(update: Update, context: BotContext) -> None:
    """/summary [YYYY-MM-DD]: the day's figures and a chart of the last 14 days."""
    args = arguments(context)
    services = context.services
    if len(args) > 1:
        await reply(update, context, context.texts.usage("summary"))
        return
    day = exports.parse_day(args[0]) if args else services.clock.now().astimezone(services.settings.tz).date()
    if day is None:
        await reply(update, context, context.texts.bad_date + "\n" + context.texts.usage("summary"))
        return
    chat = update.effective_chat
    assert chat is not None
    await send_summary(context.bot, services, chat.id, day, context.texts)


async def export(update: Update, context: BotContext) -> None:
    """/export [from] [to]: the ledger of that period as a CSV document (default: today); /export plans:
    the payment plans."""
    args = arguments(context)
    services = context.services
    if len(args) == 1 and args[0].lower() == "plans":
        await export_plans(update, context)
        return
    if len(args) == 1 and args[0].lower() == "portfolio":
        await export_portfolio(update, context)
        return
    if len(args) > 2:
        await reply(update, context, context.texts.usage("export"))
        return
    today = services.clock.now().astimezone(services.settings.tz).date()
    days = [exports.parse_day(arg) for arg in args]
    if any(day is None for day in days):
        await reply(update, context, context.texts.bad_date + "\n" + context.texts.usage("export"))
        return
    first = days[0] if days else today
    last = days[1] if len(days) == 2 else first
    assert first is not None and last is not None
    refused = exports.ledger_refused(first, last)
    if refused is not None:
        await reply(update, context, getattr(context.texts, refused))
        return
    name, document = await exports.ledger(services, first, last, context.texts)
    chat = update.effective_chat
    assert chat is not None
    await context.bot.send_document(
        chat.id, document, filename=name,
        caption=context.texts.with_sandbox_note(context.texts.export_caption(first, last), services.sandbox),
    )


async def portfolio(update: Update, context: BotContext) -> None:
    """/portfolio: the plans' health now — counts, left to pay, PAR30, days past due, collections, per agent."""
    services = context.services
    now = services.clock.now()
    health = await portfolio_health(services.db, now, services.settings.tz)
    await reply(update, context, context.texts.portfolio_text(health, services.settings.currency,
                                                              await services.team.names()))
    picture = await portfolio_picture(portfolio_weeks(health), health.figures, context.texts)
    chat = update.effective_chat
    assert chat is not None
    await context.bot.send_photo(chat.id, picture, caption=context.texts.portfolio_chart_labels()["weeks"])


async def agents(update: Update, context: BotContext) -> None:
    """/agents: the team, with the codes each asked today."""
    services = context.services
    start, end = limits.local_day(services.clock.now(), services.settings.tz)
    rows = [(person.name or "—", person.telegram_id, person.role.value, codes)
            for person, codes in await services.team.with_codes(start, end)]
    await reply(update, context, context.texts.agents_list(rows))


async def dashboard(update: Update, context: BotContext) -> None:
    """/dashboard: a button that opens the managers' dashboard (a Telegram Mini App) inside the chat."""
    url = context.services.settings.dashboard_url
    if url is None:
        await reply(update, context, context.texts.dashboard_not_set_up)
        return
    words = context.texts
    await reply(update, context, words.dashboard_offer,
                InlineKeyboardMarkup([[InlineKeyboardButton(words.open_dashboard, web_app=WebAppInfo(url))]]))


async def revoke(update: Update, context: BotContext) -> None:
    """/revoke telegram-id: the person's next command is refused."""
    args = arguments(context)
    if len(args) != 1 or not re.fullmatch(r"[0-9]{1,20}", args[0]):
        await reply(update, context, context.texts.usage("revoke"))
        return
    telegram_id = int(args[0])
    me = context.who.person
    if me is not None and me.telegram_id == telegram_id:
        await reply(update, context, context.texts.revoke_self)
        return
    person = await context.services.team.revoke(telegram_id)
    if person is None:
        await reply(update, context, context.texts.revoke_unknown(telegram_id))
        return
    await reply(update, context, context.texts.revoked(person.name or str(telegram_id), telegram_id))
