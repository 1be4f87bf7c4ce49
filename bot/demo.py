"""``paygbot demo``: a scripted day, offline, through the real handlers, printed as a chat transcript.

Everything runs in this process: the bot itself (``running_bot``, its payments webhook on a
loopback port), the embedded ERM sandbox (no credentials), the Telegram Bot API stand-in reached
through a PTB transport (:class:`bot.standins.telegram.StandInRequest`: no port, no server), and
a fresh SQLite ledger in a temporary folder that is removed at the end. The day's clock is
scripted (a manual clock shared by the bot and the sandbox), so six-second pacing and the
evening summary take no real time.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime, time
from pathlib import Path
from typing import TYPE_CHECKING, TextIO
from zoneinfo import ZoneInfo

import httpx

from bot import i18n, texts
from bot.app import running_bot
from bot.clock import ManualClock
from bot.config import Settings, load_settings
from bot.http import free_port
from bot.standins.omnimetic import JANE_ACCOUNT
from bot.standins.telegram import FakeBotApi, Sent, StandInRequest, TelegramUser
from bot.standins.telegram.launch import launch_data
from bot.standins.telegram.transport import BASE_URL

if TYPE_CHECKING:
    from bot.services import Services

ZONE = "Africa/Nairobi"
DAY = datetime(2026, 11, 23).date()
TOKEN = "424242:demo-token-for-the-offline-bot-api"
REPLIES = ("sendMessage", "sendPhoto", "sendDocument", "editMessageText")
MAX_LINES = 8

MARY = TelegramUser(1001, "Mary", "Otieno")
ALEX = TelegramUser(2002, "Alex", "Kamau")
JANE = TelegramUser(3003, "Jane", "Wanjiru")
ROLES = {MARY.id: "manager", ALEX.id: "agent", JANE.id: "customer"}
PEOPLE = {person.id: person for person in (MARY, ALEX, JANE)}

DEVICE = "TEST2503000017"
OTHER_DEVICE = "SELLERSBX00000000007"


class DemoFailed(Exception):
    """Something the script expected did not happen."""


class Transcript:
    """Prints the conversation as it happens, one block per step."""

    def __init__(self, api: FakeBotApi, clock: ManualClock, out: TextIO) -> None:
        self.api, self.clock, self.out = api, clock, out
        self.shown = 0
        self.tz = ZoneInfo(ZONE)

    def heading(self, text: str) -> None:
        self.out.write(f"\n── {text} ──\n")

    def person(self, user: TelegramUser, text: str) -> None:
        when = self.clock.now().astimezone(self.tz).strftime("%H:%M")
        self.out.write(f"{when}  {user.first_name} ({ROLES[user.id]}) ▸ {text}\n")

    def event(self, text: str) -> None:
        when = self.clock.now().astimezone(self.tz).strftime("%H:%M")
        self.out.write(f"{when}  {text}\n")

    def flush(self) -> None:
        """Print what the bot sent since the last flush."""
        for sent in self.api.sent[self.shown:]:
            if sent.method not in REPLIES:
                continue
            who = PEOPLE[sent.chat_id].first_name if sent.chat_id in PEOPLE else str(sent.chat_id)
            self.out.write(f"       bot ▸ {who}: {_render(sent)}\n")
        self.shown = len(self.api.sent)
        self.out.flush()


def _render(sent: Sent) -> str:
    text = sent.rendered or ""
    for language in i18n.LANGUAGES:
        text = text.replace(texts.for_language(language).sandbox_note_plain, "")
    text = text.strip()
    if sent.method == "sendPhoto":
        text = f"[picture] {text}"
    if sent.method == "sendDocument":
        text = f"[document {sent.filename}] {text}"
    if sent.method == "editMessageText":
        text = f"(edits its message) {text}"
    labels = [str(button.get("text")) for button in sent.buttons]
    lines = text.splitlines() or [""]
    if len(lines) > MAX_LINES:
        lines = [*lines[: MAX_LINES - 1], f"… ({len(lines) - MAX_LINES + 1} more lines)"]
    body = "\n             ".join(lines)
    return body + ("  " + " ".join(f"[{label}]" for label in labels) if labels else "")


class Script:
    """The people of the demo acting through the stand-in, waiting for what they expect."""

    def __init__(self, api: FakeBotApi, transcript: Transcript) -> None:
        self.api, self.transcript = api, transcript

    async def says(self, user: TelegramUser, text: str, *, expect: Callable[[Sent], bool] | None = None) -> Sent:
        self.transcript.person(user, text)
        after = self.api.position
        await self.api.user_says(user, text)
        return await self._wait(expect or _to(user), after)

    async def _wait(self, expect: Callable[[Sent], bool], after: int | None = None) -> Sent:
        try:
            reply = await self.api.wait_for(expect, after=after, methods=REPLIES, timeout=30)
        except TimeoutError as exc:
            self.transcript.flush()
            raise DemoFailed(f"the bot did not answer as the script expects: {str(exc).splitlines()[0]}") from None
        self.transcript.flush()
        return reply

    async def taps(self, user: TelegramUser, message: Sent, label: str,
                   *, expect: Callable[[Sent], bool] | None = None) -> Sent:
        self.transcript.person(user, f"[taps {label}]")
        after = self.api.position
        try:
            data = message.button(label)["callback_data"]
        except LookupError as exc:
            raise DemoFailed(f"no button {label!r} where the script expects one: {exc}") from None
        await self.api.user_taps(user, message, data)
        return await self._wait(expect or _to(user), after)

    async def then(self, expect: Callable[[Sent], bool], after: int | None = None) -> Sent:
        return await self._wait(expect, after)


def _at(hour: int, minute: int) -> datetime:
    """A time of the demo's day, in its zone."""
    return datetime.combine(DAY, time(hour, minute), tzinfo=ZoneInfo(ZONE))


def _to(user: TelegramUser, containing: str = "") -> Callable[[Sent], bool]:
    return lambda sent: sent.chat_id == user.id and containing in (sent.rendered or "")


def _link_token(sent: Sent) -> str:
    text = sent.rendered or ""
    return text.split("?start=", 1)[1].split()[0]


async def run_demo(out: TextIO = sys.stdout, *, erm_api: str = "rest") -> None:
    """Play the day, the bot speaking ``erm_api`` (``rest`` or ``graphql``) to the ERM sandbox; raises
    :class:`DemoFailed` if anything the script expects does not happen."""
    api_name = {"rest": "REST", "graphql": "GraphQL"}[erm_api]
    with tempfile.TemporaryDirectory(prefix="paygbot-demo-") as folder:
        api = FakeBotApi(TOKEN)
        clock = ManualClock(_at(8, 0))
        webhook_secret = secrets.token_hex(16)
        port = free_port()
        settings = _settings(Path(folder), port, webhook_secret, erm_api)
        for person in PEOPLE.values():
            api.meet(person)
        async with running_bot(settings, clock=clock, http_host="127.0.0.1",
                               telegram=lambda: StandInRequest(api)) as running:
            script = Script(api, Transcript(api, clock, out))
            await _play(script, clock, port, webhook_secret, out, api_name,
                        lambda: _import_old_portfolio(script.transcript, running.services, Path(folder)))


def _settings(folder: Path, port: int, webhook_secret: str, api: str) -> Settings:
    # Every variable is given, so the demo runs on embedded defaults whatever this machine's
    # environment or .env say (no real ERM, no real Telegram, no ledger of yours).
    values = {
        "TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_BASE_URL": BASE_URL, "ERM_BASE_URL": "http://127.0.0.1:9",
        "ERM_USERNAME": "", "ERM_PASSWORD": "", "ERM_TIMEOUT_SECONDS": "30",
        "ERM_API": api, "ERM_GRAPHQL_URL": "http://127.0.0.1:9/graphql",
        "OMNIMETIC_BASE_URL": "http://127.0.0.1:9/omnimetic/api", "OMNIMETIC_CLIENT_ID": "", "OMNIMETIC_SECRET": "",
        "DATABASE_URL": f"sqlite:///{folder / 'ledger.db'}", "PAYGBOT_MANAGERS": str(MARY.id),
        "PAYGBOT_TIMEZONE": ZONE, "PAYGBOT_SUMMARY_TIME": "23:30", "PAYGBOT_REMINDER_DAYS": "2",
        "PAYGBOT_MIN_GAP_SECONDS": "6", "PAYGBOT_DAILY_CODE_LIMIT": "10", "PAYGBOT_MAX_STACKED_DAYS": "1095",
        "PAYGBOT_HTTP_PORT": str(port), "PAYGBOT_WEBHOOK_SECRET": webhook_secret, "PAYGBOT_MPESA_PATH": "",
        "PAYGBOT_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "PAYGBOT_CURRENCY": "KES", "PAYGBOT_PHONE_REGION": "KE", "PAYGBOT_UNLOCK_WHEN_PAID": "approve",
        "TELEGRAM_WEBHOOK_URL": "", "TELEGRAM_WEBHOOK_SECRET": "",  # long polling, on the stand-in
    }
    settings = load_settings(_env_file=None, **values)
    missing = {alias for field in type(settings).model_fields.values()
               for alias in getattr(field.validation_alias, "choices", [])} - set(values)
    if missing:
        raise DemoFailed(f"the demo does not set {', '.join(sorted(missing))}")
    return settings


async def _play(script: Script, clock: ManualClock, port: int, webhook_secret: str, out: TextIO,
                api_name: str, import_old_portfolio: Callable[[], Awaitable[None]]) -> None:
    transcript = script.transcript
    out.write(f"paygbot demo — one day of a PAYG distributor, offline: the ERM sandbox over {api_name} (test\n"
              "codes), a local Telegram stand-in, a temporary ledger. Mary is a manager, Alex a field agent,\n"
              "Jane a customer.\n")

    transcript.heading("The manager invites an agent")
    await script.says(MARY, "/start")
    invite = await script.says(MARY, "/invite agent", expect=_to(MARY, "?start="))
    await script.says(ALEX, f"/start {_link_token(invite)}")

    transcript.heading("The distributor moves its old system's plans in; Alex looks after those customers")
    clock.set(_at(8, 30))
    await import_old_portfolio()

    transcript.heading("The agent registers a customer, who joins by the link")
    clock.set(_at(9, 10))
    link = await script.says(ALEX, f"/customer {DEVICE} 0712 345 678 Jane Wanjiru", expect=_to(ALEX, "?start="))
    await script.says(JANE, f"/start {_link_token(link)}")
    await script.says(MARY, f"/price {DEVICE} 50 KES")
    await script.says(MARY, f"/plan {DEVICE} 1500 50 KES", expect=_to(MARY, "Plan set"))

    transcript.heading("The agent finds a device by the last digits on its sticker")
    found = await script.says(ALEX, "/find 3000017", expect=_to(ALEX, "3000017"))
    await script.taps(ALEX, found, DEVICE, expect=_to(ALEX, "Codes today"))

    transcript.heading("The agent asks for a days code")
    clock.set(_at(9, 30))
    await script.says(ALEX, f"/days {DEVICE} 30", expect=_to(ALEX, "🔑"))
    await script.then(_to(JANE, "🔑"))
    await script.says(ALEX, f"/days {DEVICE} 7", expect=_to(ALEX, "Queued"))
    clock.advance(6)
    transcript.event("(six seconds later: the ERM allows the next code of this device)")
    await script.then(_to(ALEX, "7 days"))
    await script.then(_to(JANE, "7 days"))

    transcript.heading("The agent ties Jane's electricity meter; Jane sees her energy use")
    clock.set(_at(10, 0))
    await script.says(ALEX, f"/meter {DEVICE} {JANE_ACCOUNT}", expect=_to(ALEX, JANE_ACCOUNT))
    await script.says(JANE, "/usage", expect=_to(JANE, "kWh"))
    await script.then(lambda sent: sent.chat_id == JANE.id and sent.method == "sendPhoto")

    transcript.heading("Jane would rather read Swahili")
    await script.says(JANE, "/language sw")

    transcript.heading("Jane pays by mobile money; the payment arrives on the webhook")
    clock.set(_at(12, 5))
    await _pay(transcript, port, webhook_secret, "QK71ABC123", "250.00")
    await script.then(_to(JANE, "QK71ABC123"))
    await script.then(_to(ALEX, "QK71ABC123"))

    transcript.heading("A free code, approved by the manager")
    clock.set(_at(15, 45))
    preview = await script.says(ALEX, f"/free {OTHER_DEVICE}", expect=_to(ALEX, "free code"))
    ask = await script.taps(ALEX, preview, texts.ENGLISH.confirm_free, expect=_to(MARY, "asks for a free code"))
    await script.taps(MARY, ask, texts.ENGLISH.approve, expect=_to(ALEX, "🔑"))

    transcript.heading("Jane pays off her device: the last payment, the approval, the unlock code")
    clock.set(_at(17, 30))
    paying = script.api.position
    await _pay(transcript, port, webhook_secret, "QK71ABD456", "1250.00")
    await script.then(_to(JANE, "🔑"), paying)  # the days the last payment buys, until the unlock code
    ask = await script.then(_to(MARY, "Plan paid off"), paying)
    await script.taps(MARY, ask, texts.ENGLISH.approve, expect=_to(ALEX, "approved"))
    after = script.api.position
    clock.advance(6)
    transcript.event("(six seconds after the last code of this device, its unlock code goes out)")
    await script.then(_to(JANE, "🔑"), after)
    await script.says(JANE, "/balance", expect=_to(JANE, "🎉"))

    transcript.heading("Evening: the manager reads the summary")
    clock.set(_at(19, 0))
    await script.says(MARY, "/summary", expect=lambda sent: sent.chat_id == MARY.id and sent.method == "sendPhoto")

    transcript.heading("The portfolio's health, and who to visit")
    await script.says(MARY, "/portfolio", expect=lambda sent: sent.chat_id == MARY.id and sent.method == "sendPhoto")
    await script.says(ALEX, "/visits")

    transcript.heading("The manager's dashboard, opened inside Telegram")
    await script.says(MARY, "/dashboard", expect=_to(MARY, "dashboard"))
    await _open_dashboard(transcript, port, clock)
    out.write("\nThe demo is over: the ledger and everything else it made are removed.\n")


OLD_PORTFOLIO = f"""device,phone,name,total,per_day,currency,deposit,paid,credit_until,agent
SBX00000000001,0722 111 222,Peter Otieno,3000,40,KES,,1200,2026-11-28,{ALEX.id}
SBX00000000002,0733 222 333,Grace Achieng,2400,30,KES,,900,2026-11-11,{ALEX.id}
SBX00000000003,0744 333 444,Tom Mwangi,2000,25,KES,,500,2026-10-09,{ALEX.id}
"""
"""Three customers of the old system: Peter's credit runs, Grace's ended 11 days ago, Tom's 44 (at risk)."""


async def _import_old_portfolio(transcript: Transcript, services: Services, folder: Path) -> None:
    """``paygbot plans import`` of the old system's file, on the bot's own ledger and ERM."""
    from bot import cli_texts
    from bot.plans.importing import DeviceLookup, import_plans
    from bot.plans.plan_file import read_plans

    path = folder / "old-system-plans.csv"
    path.write_text(OLD_PORTFOLIO, encoding="utf-8")
    transcript.event(f"$ paygbot plans import {path.name}")

    @asynccontextmanager
    async def lookup() -> AsyncIterator[DeviceLookup]:
        yield services.engine

    outcome = await import_plans(read_plans(path, settings=services.settings, clock=services.clock),
                                 db=services.db, clock=services.clock, lookup=lookup)
    if not outcome.applied:
        raise DemoFailed(f"the old portfolio was not imported: {[error.line for error in outcome.errors]}")
    transcript.event(cli_texts.import_done(outcome))


async def _pay(transcript: Transcript, port: int, webhook_secret: str, reference: str, amount: str) -> None:
    """Jane's mobile money, as her provider posts it to the payments webhook (signed)."""
    body = json.dumps({"reference": reference, "amount": amount, "currency": "KES",
                       "account": "0712345678", "phone": "254712345678"}).encode()
    signature = hmac.new(webhook_secret.encode(), body, hashlib.sha256).hexdigest()
    transcript.event(f"POST /payments  {{reference {reference}, KES {amount}, account 0712345678}} (signed)")
    async with httpx.AsyncClient() as client:
        answer = await client.post(f"http://127.0.0.1:{port}/payments", content=body,
                                   headers={"Content-Type": "application/json",
                                            "X-Paygbot-Signature": f"sha256={signature}"})
    transcript.event(f"webhook answered {answer.status_code}")
    if answer.status_code >= 300:
        raise DemoFailed(f"the payments webhook refused the demo's payment ({answer.status_code})")


async def _open_dashboard(transcript: Transcript, port: int, clock: ManualClock) -> None:
    """Telegram opens the dashboard's page with Mary's signed launch data (the demo plays the page's part:
    its session, then a search); an agent's launch data opens nothing."""
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        opened = await client.post("/app/session", data={"init_data": launch_data(MARY, TOKEN, clock.now())})
        if opened.status_code != 200:
            raise DemoFailed(f"the dashboard refused Mary's launch data ({opened.status_code})")
        transcript.event("Telegram opens /app with Mary's signed launch data: a session for a manager")
        headers = {"Authorization": f"Bearer {opened.json()['token']}", "HX-Target": "device-list"}
        found = await client.get("/app/view/devices", params={"q": "Wanjiru"}, headers=headers)
        devices = re.findall(r'data-device="([^"]+)"', found.text)
        if DEVICE not in devices:
            raise DemoFailed(f"the dashboard's search did not find Jane's device ({found.status_code})")
        transcript.event(f"GET /app/view/devices?q=Wanjiru: {', '.join(devices)}")
        refused = await client.post("/app/session", data={"init_data": launch_data(ALEX, TOKEN, clock.now())})
        transcript.event(f"Alex's launch data: {refused.status_code}, {refused.json().get('message')}")


async def main() -> None:
    os.environ.setdefault("PTB_TIMEDELTA", "true")
    await run_demo()
