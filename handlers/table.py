"""Every chat command, declared once: its name, its handler, who may send it, whose menu lists it.

:func:`handlers.register` registers the handlers from this table (each wrapped in its own role check),
the access gate (:mod:`handlers.access`) refuses from it, and the menus Telegram shows each role
(:mod:`handlers.menus`) are read from it, in this order; the menu lines are sentences of
:meth:`bot.texts.Texts.menu_line`. To add a command: write its handler, add it here, add its menu line
and usage to bot/texts.py.
"""

from __future__ import annotations

from handlers import agent, common, customer, energy, finding, language, manager, payments, plans, special, visits
from handlers.roles import CUSTOMERS, EVERYONE, MANAGERS, PEOPLE, STAFF, STRANGERS, Command

COMMANDS: list[Command] = [
    # agents and managers
    Command("days", agent.days_command, STAFF, dialogue=agent.days_dialogue),
    Command("free", special.free_command, STAFF),
    Command("reset", special.reset_command, STAFF),
    Command("device", agent.device_command, STAFF),
    Command("find", finding.find_command, STAFF),
    Command("history", agent.history_command, STAFF),
    Command("customer", agent.customer_command, STAFF, dialogue=agent.customer_dialogue),
    Command("pay", payments.pay_command, STAFF),
    Command("meter", energy.meter_command, STAFF),
    Command("visits", visits.visits_command, STAFF),
    # managers
    Command("dashboard", manager.dashboard, MANAGERS),
    Command("summary", manager.summary, MANAGERS),
    Command("export", manager.export, MANAGERS),
    Command("portfolio", manager.portfolio, MANAGERS),
    Command("move", visits.move_command, MANAGERS),
    Command("price", manager.price, MANAGERS),
    Command("plan", plans.plan_command, MANAGERS, dialogue=plans.plan_dialogue),
    Command("reverse", plans.reverse_command, MANAGERS),
    Command("repossess", plans.repossess_command, MANAGERS),
    Command("assign", payments.assign_command, MANAGERS),
    Command("agents", manager.agents, MANAGERS),
    Command("revoke", manager.revoke, MANAGERS),
    Command("invite", manager.invite, MANAGERS),
    # customers (staff who send these are shown their help)
    Command("balance", customer.balance, PEOPLE, listed=CUSTOMERS),
    Command("code", customer.last_code, PEOPLE, listed=CUSTOMERS),
    Command("usage", energy.usage_command, PEOPLE),
    # everyone
    Command("start", common.start, EVERYONE, listed=STRANGERS),
    Command("cancel", common.cancel_outside, PEOPLE, listed=STAFF),
    Command("help", common.help_command, EVERYONE),
    Command("language", language.language_command, EVERYONE),
]
