"""Every handler of the bot, in one visible list, in the order PTB tries them. Who may send each
command is :data:`handlers.access.COMMANDS`."""

from __future__ import annotations

from typing import Any

from telegram import Update
from telegram.ext import Application, CallbackQueryHandler, CommandHandler, MessageHandler, TypeHandler, filters

from handlers import access, agent, common, customer, language, manager, payments, special

GATE, MAIN = -1, 0
NEW = filters.UpdateType.MESSAGE
"""Commands and messages act when sent, never when edited (the gate stops edits too)."""


def command(name: str, callback: Any) -> CommandHandler[Any, Any]:
    return CommandHandler(name, callback, filters=NEW)


def register(application: Application[Any, Any, Any, Any, Any, Any]) -> None:
    """Add every handler. Group -1 (the access gate) runs first for every update and may stop it."""
    application.add_handler(TypeHandler(Update, access.gate), group=GATE)
    application.add_handlers(
        [
            # dialogues first: while one is open, its typed answers and buttons belong to it
            agent.days_dialogue(),
            agent.customer_dialogue(),
            command("start", common.start),
            command("help", common.help_command),
            command("cancel", common.cancel_outside),
            command("language", language.language_command),
            CallbackQueryHandler(language.language_tapped, pattern=language.PATTERN),
            command("device", agent.device_command),
            command("history", agent.history_command),
            CallbackQueryHandler(agent.history_tapped, pattern=r"^hist:[0-9]+:[0-9]+$"),
            command("free", special.free_command),
            command("reset", special.reset_command),
            CallbackQueryHandler(special.confirmation_tapped, pattern=r"^c[fx]:[\w-]+$"),
            CallbackQueryHandler(special.approval_tapped, pattern=r"^ap:[0-9]+:[yn]$"),
            command("invite", manager.invite),
            command("price", manager.price),
            command("summary", manager.summary),
            command("export", manager.export),
            command("agents", manager.agents),
            command("revoke", manager.revoke),
            command("pay", payments.pay_command),
            command("assign", payments.assign_command),
            CallbackQueryHandler(payments.confirmation_tapped, pattern=r"^sms:(ok|no):[0-9a-f]+$"),
            CallbackQueryHandler(payments.assign_tapped, pattern=r"^pay:asg:[0-9]+:[0-9]+$"),
            command("balance", customer.balance),
            command("code", customer.last_code),
            MessageHandler(NEW & filters.CONTACT, customer.contact_shared),
            # a pasted or forwarded M-Pesa confirmation (other text falls through to the end)
            MessageHandler(NEW & filters.TEXT & payments.CONFIRMATION, payments.confirmation_pasted),
            # last: whatever nothing above understood
            MessageHandler(NEW & filters.COMMAND, common.unknown_command),
            CallbackQueryHandler(common.stale_button),
            MessageHandler(NEW, common.other_text),
        ],
        group=MAIN,
    )
    application.add_error_handler(common.on_error)  # type: ignore[arg-type]
