"""Driving the whole bot through a chat: the real Application against the Bot API stand-in and the
ERM sandbox, a clock moved by hand.

The bot reaches the stand-in in this process (:class:`bot.standins.telegram.StandInRequest`: the
same parameters, uploads and answer bytes as over HTTP, no port); ``over_http=True`` puts a real
loopback socket between them instead, for a test about what crosses it (httpx's own log lines).

Time is the test's: the bot's clock is a :class:`ManualClock`, and the jobs that act on it by the
wall clock — the reminders, the daily summary and the expiry of approvals, every minute — are taken
off the job queue; a test runs them (``send_reminders``, ``push_summary_if_due``,
``expire_approvals``) when it has moved the clock, so no job of the bot's races it. The pump, the
device sync and the payments sweep go on as in production.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

from bot.app import RunningBot, running_bot
from bot.clock import ManualClock
from bot.jobs import REMINDER_JOB, SUMMARY_JOB
from bot.standins.erm import ErmSandbox
from bot.standins.telegram import FakeBotApi, Sent, StandInRequest, TelegramUser
from bot.standins.telegram.server import running
from bot.standins.telegram.transport import BASE_URL
from storage import ledger
from storage.models import Role
from tests.support.settings import make_settings
from tests.support.waiting import eventually

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

        def listed() -> list[dict[str, str]] | None:
            commands = self.api.commands_for(scope, language_code)
            return commands if until(commands) else None

        return await eventually(listed, f"the command list of {scope} ({language_code!r})", timeout)

    async def synced(self, timeout: float = 15) -> None:
        """Until the bot's device sync (a job a second after the start, on the wall clock) has learned
        every sandbox device: a test that counts the ERM's calls waits for it, so that it cannot come
        in between."""
        last = self.sandbox.devices[-1].oem_item_id

        async def known() -> bool:
            async with self.bot.services.db.read() as session:
                return await ledger.find_device(session=session, ref=last) is not None

        await eventually(known, "the bot's device sync", timeout)

    def erm_calls(self) -> list[str]:
        """ERM paths asked about particular devices (not logins, not the background device sync)."""
        return [call.path for call in self.sandbox.calls
                if call.path != "/user/login" and not call.path.startswith("/oves/assignedItemsList")]

    def codes(self, device: str = "TEST2503000017") -> list[str]:
        return [record.keypad for record in self.sandbox.device(device).codes]


@asynccontextmanager
async def chatting(sandbox: ErmSandbox, erm_url: str, database_url: str, clock: ManualClock,
                   *, token: str = TOKEN, over_http: bool = False, api: FakeBotApi | None = None,
                   **settings: Any) -> AsyncIterator[Chat]:
    """The whole bot, polling the stand-in, with MANAGER a manager; settings by their variables'
    names (``ERM_USERNAME=None`` runs it on its embedded ERM sandbox instead of ``sandbox``). ``api``: the
    stand-in of an earlier bot (a restart, or another process, on the same chats)."""
    api = api or FakeBotApi(token)
    async with AsyncExitStack() as stack:
        base_url = await stack.enter_async_context(running(api)) if over_http else BASE_URL
        values: dict[str, Any] = {
            "TELEGRAM_BOT_TOKEN": token, "TELEGRAM_BASE_URL": base_url, "ERM_BASE_URL": erm_url,
            "ERM_USERNAME": "test@example.com", "ERM_PASSWORD": "test1234", "DATABASE_URL": database_url,
            "PAYGBOT_MANAGERS": str(MANAGER.id), "PAYGBOT_HTTP_PORT": "0", "ERM_TIMEOUT_SECONDS": "5",
        }
        values.update(settings)
        if values.get("ERM_USERNAME") is None:
            values.pop("ERM_USERNAME"), values.pop("ERM_PASSWORD"), values.pop("ERM_BASE_URL")
        api.meet(MANAGER)
        transport = None if over_http else (lambda: StandInRequest(api))
        async with running_bot(make_settings(**values), clock=clock, http_host="127.0.0.1", telegram=transport) as bot:
            job_queue = bot.application.job_queue
            assert job_queue is not None
            for job in (*job_queue.get_jobs_by_name(REMINDER_JOB), *job_queue.get_jobs_by_name(SUMMARY_JOB)):
                job.schedule_removal()  # the test runs them when its clock says (see the module's docstring)
            try:
                yield Chat(api, bot, sandbox, clock)
            finally:
                # Nothing new starts while the bot stops: PTB waits for the jobs that run, but would
                # cancel one started in between, and leave its database connection open.
                job_queue.scheduler.pause()
    assert api.errors == [], f"the Bot API stand-in failed: {api.errors}"
