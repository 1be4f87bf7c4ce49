"""Every handler of the bot, in one visible list, in the order PTB tries them."""

from __future__ import annotations

from typing import Any

from telegram import Update
from telegram.ext import Application, CallbackQueryHandler, CommandHandler, MessageHandler, TypeHandler, filters

from handlers import access, agent, common, customer, language, manager, payments, special

GATE, MAIN = -1, 0


def register(application: Application[Any, Any, Any, Any, Any, Any]) -> None:
    """Add every handler. Group -1 (the access gate) runs first for every update and may stop it."""
    application.add_handler(TypeHandler(Update, access.gate), group=GATE)
    application.add_handlers(
        [
            # dialogues first: while one is open, its typed answers and buttons belong to it
            agent.days_dialogue(),
            agent.customer_dialogue(),
            CommandHandler("start", common.start),
            CommandHandler("help", common.help_command),
            CommandHandler("cancel", common.cancel_outside),
            CommandHandler("language", language.language_command),
            CallbackQueryHandler(language.language_tapped, pattern=language.PATTERN),
            CommandHandler("device", agent.device_command),
            CommandHandler("history", agent.history_command),
            CallbackQueryHandler(agent.history_tapped, pattern=r"^hist:\d+:\d+$"),
            CommandHandler("free", special.free_command),
            CommandHandler("reset", special.reset_command),
            CallbackQueryHandler(special.confirmation_tapped, pattern=r"^c[fx]:[\w-]+$"),
            CallbackQueryHandler(special.approval_tapped, pattern=r"^ap:\d+:[yn]$"),
            CommandHandler("invite", manager.invite),
            CommandHandler("price", manager.price),
            CommandHandler("summary", manager.summary),
            CommandHandler("export", manager.export),
            CommandHandler("agents", manager.agents),
            CommandHandler("revoke", manager.revoke),
            CommandHandler("pay", payments.pay_command),
            CommandHandler("assign", payments.assign_command),
            CallbackQueryHandler(payments.confirmation_tapped, pattern=r"^sms:(ok|no):[0-9a-f]+$"),
            CallbackQueryHandler(payments.assign_tapped, pattern=r"^pay:asg:\d+:\d+$"),
            CommandHandler("balance", customer.balance),
            CommandHandler("code", customer.last_code),
            MessageHandler(filters.CONTACT, customer.contact_shared),
            # a pasted or forwarded M-Pesa confirmation (other text falls through to the end)
            MessageHandler(filters.TEXT & payments.CONFIRMATION, payments.confirmation_pasted),
            # last: whatever nothing above understood
            MessageHandler(filters.COMMAND, common.unknown_command),
            CallbackQueryHandler(common.stale_button),
            MessageHandler(filters.ALL, common.other_text),
        ],
        group=MAIN,
    )
    application.add_error_handler(common.on_error)  # type: ignore[arg-type]
