"""Every handler of the bot, in the order PTB tries them: the access gate first, then the commands of
the command table (:mod:`handlers.table`, each wrapped in its own role check), the buttons and the
messages that are not commands.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from telegram import Update
from telegram.ext import Application, BaseHandler, CallbackQueryHandler, CommandHandler, MessageHandler, TypeHandler
from telegram.ext import filters as ptb_filters

from handlers import access, agent, common, customer, finding, language, menus, payments, plans, special, table, visits
from handlers.access import only
from handlers.roles import Command

GATE, MAIN = -1, 0
NEW = ptb_filters.UpdateType.MESSAGE
"""Commands and messages act when sent, never when edited (the gate stops edits too)."""


def register(application: Application[Any, Any, Any, Any, Any, Any],
             commands: Sequence[Command] | None = None) -> None:
    """Add every handler. Group -1 (the access gate) runs first for every update and may stop it."""
    commands = list(table.COMMANDS if commands is None else commands)
    application.bot_data[menus.TABLE] = commands
    application.add_handler(TypeHandler(Update, access.gate_for(commands)), group=GATE)
    # dialogues first: while one is open, its typed answers and buttons belong to it
    dialogues: list[BaseHandler[Any, Any, Any]] = [
        command.dialogue(only(command.allowed)(command.callback)) for command in commands if command.dialogue]
    plain: list[BaseHandler[Any, Any, Any]] = [
        CommandHandler(command.name, only(command.allowed)(command.callback), filters=NEW)
        for command in commands if command.dialogue is None]
    application.add_handlers(
        [
            *dialogues,
            *plain,
            CallbackQueryHandler(language.language_tapped, pattern=language.PATTERN),
            CallbackQueryHandler(agent.history_tapped, pattern=r"^hist:[0-9]+:[0-9]+$"),
            CallbackQueryHandler(finding.device_tapped, pattern=finding.DEVICE_BUTTON_PATTERN),
            CallbackQueryHandler(special.confirmation_tapped, pattern=r"^c[fx]:[\w-]+$"),
            CallbackQueryHandler(special.approval_tapped, pattern=r"^ap:[0-9]+:[yn]$"),
            CallbackQueryHandler(plans.repossess_tapped, pattern=r"^r[px]:[\w-]+$"),
            CallbackQueryHandler(visits.visits_tapped, pattern=r"^vis:[0-9]{1,7}$"),
            CallbackQueryHandler(payments.confirmation_tapped, pattern=r"^sms:(ok|no):[0-9a-f]+$"),
            CallbackQueryHandler(payments.assign_tapped, pattern=r"^pay:asg:[0-9]+:[0-9]+$"),
            MessageHandler(NEW & ptb_filters.CONTACT, customer.contact_shared),
            # a pasted or forwarded M-Pesa confirmation (other text falls through to the end)
            MessageHandler(NEW & ptb_filters.TEXT & payments.CONFIRMATION, payments.confirmation_pasted),
            # last: whatever nothing above understood
            MessageHandler(NEW & ptb_filters.COMMAND, common.unknown_command),
            CallbackQueryHandler(common.stale_button),
            MessageHandler(NEW, common.other_text),
        ],
        group=MAIN,
    )
    application.add_error_handler(common.on_error)  # type: ignore[arg-type]
