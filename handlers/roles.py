"""Who may do what: the role sets and a command's declaration (:class:`Command`).

Imports nothing of the handlers, so that every handler module may use it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from telegram import Update

from bot.people import Kind
from bot.services import BotContext

EVERYONE = frozenset(Kind)
PEOPLE = frozenset({Kind.MANAGER, Kind.AGENT, Kind.CUSTOMER})
STAFF = frozenset({Kind.MANAGER, Kind.AGENT})
MANAGERS = frozenset({Kind.MANAGER})
CUSTOMERS = frozenset({Kind.CUSTOMER})
STRANGERS = frozenset({Kind.STRANGER})

Callback = Callable[[Update, BotContext], Awaitable[Any]]


@dataclass(frozen=True)
class Command:
    """A chat command, declared once: registration, the access gate and the menus are made from it.

    ``allowed``: who may send it (everyone else is refused, at the gate and by the handler itself);
    ``listed``: whose menu shows it (default: ``allowed``); ``dialogue``: makes the dialogue it opens
    when sent bare (its entry is ``callback``)."""

    name: str
    callback: Callback
    allowed: frozenset[Kind]
    listed: frozenset[Kind] | None = None
    dialogue: Callable[[Callback], Any] | None = field(default=None, compare=False)

    @property
    def menu_for(self) -> frozenset[Kind]:
        return self.allowed if self.listed is None else self.listed
