"""Driving the whole bot through a chat: the real Application against the Bot API stand-in and the
ERM sandbox, a clock moved by hand."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from bot.app import RunningBot, running_bot
from bot.botapi import FakeBotApi, Sent, TelegramUser, running
from bot.clock import ManualClock
from bot.erm.sandbox import ErmSandbox
from storage import ledger
from storage.models import Role
from tests.conftest import make_settings

TOKEN = "123456:TEST-token-for-the-stand-in"
REPLIES = ("sendMessage", "sendPhoto", "sendDocument")

MANAGER = TelegramUser(1001, "Mary", "Otieno", language_code="en")
AGENT = TelegramUser(2002, "Alex", "Kamau", language_code="en")
OTHER_AGENT = TelegramUser(2003, "Bea", "Njeri")
CUSTOMER = TelegramUser(3003, "Jane", "Wanjiru")
STRANGER = TelegramUser(4004, "Sam")


@dataclass
class Chat:
    api: FakeBotApi
    bot: RunningBot
    sandbox: ErmSandbox
    clock: ManualClock

    async def say(self, user: TelegramUser, text: str, timeout: float = 10) -> Sent:
        """``user`` sends ``text``; returns the bot's next reply in their chat."""
        after = self.api.position
        await self.api.user_says(user, text)
        return await self.api.wait_for(user.id, after=after, methods=REPLIES, timeout=timeout)

    async def tap(self, user: TelegramUser, message: Sent, data: str) -> Sent:
        after = self.api.position
        await self.api.user_taps(user, message, data)
        return await self.api.wait_for(user.id, after=after, methods=REPLIES)

    async def next(self, user: TelegramUser, timeout: float = 10) -> Sent:
        """The bot's next message to ``user`` (after whatever was already awaited)."""
        return await self.api.wait_for(user.id, methods=REPLIES, timeout=timeout)

    async def make(self, user: TelegramUser, role: Role) -> None:
        """Give ``user`` a role directly (what ``paygbot users add`` does)."""
        services = self.bot.services
        async with services.db.write() as session:
            await ledger.put_person(session=session, telegram_id=user.id, role=role, name=user.name,
                                    now=self.clock.now())
        self.api.meet(user)

    async def menu(self, chat_id: int | None = None, language_code: str = "",
                   until: Callable[[list[dict[str, str]]], bool] = bool, timeout: float = 10) -> list[dict[str, str]]:
        """The command list set for a chat (or, with no chat, for everyone), once ``until`` holds for it:
        the bot registers lists in the background, without holding up its replies."""
        scope = {"type": "chat", "chat_id": chat_id} if chat_id is not None else None
        deadline = asyncio.get_running_loop().time() + timeout
        while not until(listed := self.api.commands_for(scope, language_code)):
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"the command list of {scope} ({language_code!r}) is still {listed}")
            await asyncio.sleep(0.02)
        return listed

    def erm_calls(self) -> list[str]:
        """ERM paths asked about particular devices (not logins, not the background device sync)."""
        return [call.path for call in self.sandbox.calls
                if call.path != "/user/login" and not call.path.startswith("/oves/assignedItemsList")]

    def codes(self, device: str = "TEST2503000017") -> list[str]:
        return [record.keypad for record in self.sandbox.device(device).codes]


@asynccontextmanager
async def chatting(sandbox: ErmSandbox, erm_url: str, database_url: str, clock: ManualClock,
                   *, token: str = TOKEN, **settings: Any) -> AsyncIterator[Chat]:
    api = FakeBotApi(token)
    async with running(api) as base_url:
        values: dict[str, Any] = {
            "TELEGRAM_BOT_TOKEN": token, "TELEGRAM_BASE_URL": base_url, "ERM_BASE_URL": erm_url,
            "ERM_USERNAME": "test@example.com", "ERM_PASSWORD": "test1234", "DATABASE_URL": database_url,
            "PAYGBOT_MANAGERS": str(MANAGER.id), "PAYGBOT_HTTP_PORT": "0", "ERM_TIMEOUT_SECONDS": "5",
        }
        values.update(settings)
        if values.get("ERM_USERNAME") is None:
            values.pop("ERM_USERNAME"), values.pop("ERM_PASSWORD"), values.pop("ERM_BASE_URL")
        api.meet(MANAGER)
        async with running_bot(make_settings(**values), clock=clock, http_host="127.0.0.1") as bot:
            yield Chat(api, bot, sandbox, clock)
        assert api.errors == [], f"the Bot API stand-in failed: {api.errors}"
