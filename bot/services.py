"""What the handlers reach through ``context``: one object made at start, complete when made
(every part is built before it, in :func:`bot.app.running_bot`), closed at stop."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from telegram.ext import Application, CallbackContext, ExtBot

from bot import i18n
from bot.approvals import Approvals
from bot.clock import Clock
from bot.config import Settings
from bot.energy import Energy
from bot.erm.backend import ErmBackend
from bot.issuing import IssuingEngine
from bot.payments import Payments
from bot.people import People, Team, Who
from bot.plans.service import Plans
from bot.texts import Texts, for_language
from storage.db import Database

SERVICES = "services"


@dataclass(frozen=True)
class Services:
    settings: Settings
    clock: Clock
    db: Database
    erm: ErmBackend
    engine: IssuingEngine
    payments: Payments
    """Money in (:mod:`bot.payments`)."""
    people: People
    approvals: Approvals
    team: Team
    energy: Energy
    """Meters and energy use (:mod:`bot.energy`, Omnimetic)."""
    plans: Plans
    """Payment plans to ownership (:mod:`bot.plans`)."""
    bot_username: str
    sandbox: bool

    def start_link(self, token: str) -> str:
        """The deep link that opens the bot with ``/start <token>``."""
        return f"https://t.me/{self.bot_username}?start={token}"


class BotContext(CallbackContext[ExtBot[None], dict[Any, Any], dict[Any, Any], dict[Any, Any]]):
    """PTB's context, carrying who sent the update and their language (set once by the access gate)."""

    who: Who
    language: str = i18n.DEFAULT

    @property
    def texts(self) -> Texts:
        """The sentences in the language of whoever sent the update."""
        return for_language(self.language)

    def __init__(self, application: Application[Any, Any, Any, Any, Any, Any], chat_id: int | None = None,
                 user_id: int | None = None) -> None:
        super().__init__(application=application, chat_id=chat_id, user_id=user_id)

    @property
    def services(self) -> Services:
        services: Services = self.application.bot_data[SERVICES]
        return services
