"""The command lists Telegram shows in the menu: one for strangers, one per role (per chat)."""

from __future__ import annotations

import logging

from telegram import Bot, BotCommand, BotCommandScopeChat, BotCommandScopeDefault
from telegram.error import TelegramError

from bot.people import People

log = logging.getLogger("paygbot.commands")

STRANGER = [("start", "Join with your invite link"), ("help", "How to get access")]
CUSTOMER = [("balance", "Days left on your devices"), ("code", "Your last code again"), ("help", "What you can do")]
AGENT = [
    ("days", "A days code: /days device days"),
    ("free", "A free code (needs a manager's approval)"),
    ("reset", "A reset code (0 days, locked)"),
    ("device", "A device's credit and codes"),
    ("history", "The ERM's code history"),
    ("customer", "Register a customer"),
    ("pay", "Record a cash payment"),
    ("cancel", "Stop what you started"),
    ("help", "What you can do"),
]
MANAGER = [
    *AGENT[:-2],
    ("summary", "The day's summary and chart"),
    ("export", "The ledger as a spreadsheet (CSV)"),
    ("price", "Set a device's daily price"),
    ("assign", "Assign a payment kept for review"),
    ("agents", "The team"),
    ("revoke", "Take a person's role away"),
    ("invite", "Invite an agent or a manager"),
    *AGENT[-2:],
]
BY_ROLE = {"customer": CUSTOMER, "agent": AGENT, "manager": MANAGER}


def _commands(pairs: list[tuple[str, str]]) -> list[BotCommand]:
    return [BotCommand(name, description) for name, description in pairs]


async def register_for(bot: Bot, chat_id: int, role: str) -> None:
    """Show this chat the commands of its role."""
    await bot.set_my_commands(_commands(BY_ROLE[role]), scope=BotCommandScopeChat(chat_id))


async def register_all(bot: Bot, people: People) -> None:
    """The default list for strangers, and each known person's own list (best effort, at start)."""
    try:
        await bot.set_my_commands(_commands(STRANGER), scope=BotCommandScopeDefault())
        for person in await people.staff():
            await register_for(bot, person.telegram_id, person.role.value)
        for customer in await people.customers_with_chat():
            assert customer.chat_id is not None
            await register_for(bot, customer.chat_id, "customer")
    except TelegramError as exc:
        log.warning("could not register the command lists with Telegram (%s)", exc.message)
