"""/visits: the customers to visit today — their devices past due, most days first, paged with buttons; and
/move, a manager giving a customer to another agent.

Agents see the customers they look after (registered, or given by an import); managers see everyone's,
grouped by agent.
"""

from __future__ import annotations

from telegram import Update

from bot.people import Kind
from bot.portfolio.service import visits as past_due
from bot.services import BotContext
from handlers.access import only
from handlers.agent import one_device
from handlers.common import arguments, reply, reply_page
from handlers.roles import STAFF

PAGE = 10


async def visits_command(update: Update, context: BotContext) -> None:
    """/visits: the first page."""
    await _page(update, context, 0, edit=False)


@only(STAFF)
async def visits_tapped(update: Update, context: BotContext) -> None:
    """Newer / older of the visit list: ``vis:<offset>``."""
    query = update.callback_query
    assert query is not None and query.data is not None
    await query.answer()
    await _page(update, context, max(0, int(query.data.split(":")[1])), edit=True)


async def _page(update: Update, context: BotContext, offset: int, *, edit: bool) -> None:
    services = context.services
    person = context.who.person
    assert person is not None
    everyone = context.who.kind is Kind.MANAGER
    now = services.clock.now()
    rows = await past_due(services.db, now, agent_id=None if everyone else person.id)
    if everyone:  # grouped by agent, then most days first
        names = await services.team.names()
        rows.sort(key=lambda visit: (names.get(visit.agent_id, "~"), visit.agent_id or 0))
    else:
        names = {}
    shown = rows[offset:offset + PAGE]
    text = context.texts.visits_page(shown, offset, len(rows), names if everyone else None, now)
    await reply_page(update, context, text, "vis:", offset, len(shown), len(rows), PAGE, edit=edit)


async def move_command(update: Update, context: BotContext) -> None:
    """/move device telegram-id: the device's customer is looked after by that agent from now on."""
    args = arguments(context)
    if len(args) != 2 or not args[1].isascii() or not args[1].isdigit() or len(args[1]) > 20:
        await reply(update, context, context.texts.usage("move"))
        return
    context.args = args[:1]  # the device, checked as every one-device command checks it
    found = await one_device(update, context, "move")
    if found is None:
        return
    device, device_id = found
    moved = await context.services.team.move_customer(device_id, int(args[1]))
    if isinstance(moved, str):
        await reply(update, context, context.texts.move_refused(moved, device, args[1]))
        return
    customer, agent = moved
    await reply(update, context, context.texts.moved(customer.name, device, agent.name or str(agent.telegram_id)))
