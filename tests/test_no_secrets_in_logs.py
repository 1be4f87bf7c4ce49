"""The logs of a whole working day never hold a secret, and say one event per line.

The bot runs as ``paygbot run`` sets it up (``bot.logs.configure_logging`` with the settings), with
every logger turned up to DEBUG — httpx included, whose request lines carry the bot token in the
URL — while a chat plays out: joining by invite, codes issued and queued, the ERM forgetting its
tokens (a new login), an ERM 503, an ERM answer too late, /device, /history, and payment webhooks.
The captured log must not contain the bot token, the ERM password, any ERM access token the
sandbox handed out, the webhook secret, or the secret path of the M-Pesa confirmations.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import io
import json
import logging
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import httpx
import pytest
from sqlmodel import select

import bot.logs
from bot.clock import ManualClock
from bot.http import free_port
from bot.logs import configure_logging
from bot.standins.erm import ErmSandbox
from storage.models import CodeRequest, Status
from tests.support.chat import AGENT, CUSTOMER, MANAGER, Chat, chatting
from tests.support.settings import make_settings

BOT_TOKEN = "777777:SECRET-bot-token-abcdef"
ERM_USER, ERM_PASSWORD = "distributor@example.com", "SECRET-erm-password-123"
WEBHOOK_SECRET = "SECRET-webhook-key-xyz"
MPESA_PATH = "SECRET-mpesa-path-0123"
DEVICE = "TEST2503000017"
LINK = re.compile(r"\?start=([A-Za-z0-9_-]+)")
TIMEOUT = 1.0  # ERM_TIMEOUT_SECONDS: an answer held back longer than this is a timeout


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@dataclass
class Captured:
    stream: io.StringIO
    records: _Records
    erm_tokens: set[str] = field(default_factory=set)

    @property
    def text(self) -> str:
        return self.stream.getvalue()


@pytest.fixture
def captured() -> Iterator[Captured]:
    """The project's own log handler (secrets filter and format), writing to a buffer, everything at DEBUG."""
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    saved_levels = {name: logging.getLogger(name).level for name in logging.root.manager.loggerDict}
    saved_secrets = set(bot.logs._secrets)
    bot.logs._secrets.clear()  # only what this run registers may hide its secrets
    configure_logging(
        make_settings(TELEGRAM_BOT_TOKEN=BOT_TOKEN, ERM_USERNAME=ERM_USER, ERM_PASSWORD=ERM_PASSWORD,
                      PAYGBOT_WEBHOOK_SECRET=WEBHOOK_SECRET, PAYGBOT_MPESA_PATH=MPESA_PATH),
        level=logging.DEBUG,
    )
    [handler] = root.handlers
    assert isinstance(handler, logging.StreamHandler)
    stream = io.StringIO()
    handler.setStream(stream)
    records = _Records()
    root.addHandler(records)  # after the project's handler: it sees each record as that one left it
    for name in ("httpx", "httpcore", "apscheduler", "telegram", "telegram.ext.Updater", "alembic", "uvicorn"):
        logging.getLogger(name).setLevel(logging.DEBUG)  # louder than production, on purpose
    try:
        yield Captured(stream, records)
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved_handlers:
            root.addHandler(handler)
        root.setLevel(saved_level)
        for name, level in saved_levels.items():
            logging.getLogger(name).setLevel(level)
        bot.logs._secrets.clear()
        bot.logs._secrets.update(saved_secrets)


async def _until(condition: Callable[[], bool], what: str, seconds: float = 20) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, f"waited {seconds} s for {what}"
        await asyncio.sleep(0.01)


async def _code_reaches_the_agent(chat: Chat, count: int, advance: float = 0) -> str:
    """Move the clock by ``advance``, then wait for the device's ``count``-th code to reach the agent."""
    chat.clock.advance(advance)
    await _until(lambda: len(chat.codes()) >= count, f"code {count}")
    code = chat.codes()[count - 1]
    await chat.api.wait_for(lambda sent: sent.chat_id == AGENT.id and code in (sent.rendered or ""), timeout=20)
    return code


async def _latest_request_is(chat: Chat, status: Status, what: str) -> None:
    """Wait until the newest request is ``status`` with a reason: the engine has recorded the ERM's failure
    (and reads its clock for when to go on: the test moves the clock only after that)."""

    async def latest() -> CodeRequest | None:
        async with chat.bot.services.db.read() as session:
            return (await session.exec(select(CodeRequest).order_by(CodeRequest.id.desc()))).first()  # type: ignore[union-attr]

    deadline = asyncio.get_running_loop().time() + 20
    while (row := await latest()) is None or row.status is not status or row.reason is None:
        assert asyncio.get_running_loop().time() < deadline, f"waited 20 s for {what}"
        await asyncio.sleep(0.01)


def _signed(body: bytes, key: str) -> str:
    return "sha256=" + hmac.new(key.encode(), body, hashlib.sha256).hexdigest()


async def test_a_working_day_logs_no_secret(erm_sandbox: ErmSandbox, erm_url: str, database_url: str,
                                            clock: ManualClock, captured: Captured) -> None:
    erm_sandbox.add_user(ERM_USER, ERM_PASSWORD)
    # over HTTP: httpx's request lines, which carry the bot token, are part of what is checked
    async with chatting(erm_sandbox, erm_url, database_url, clock, token=BOT_TOKEN, over_http=True,
                        ERM_USERNAME=ERM_USER, ERM_PASSWORD=ERM_PASSWORD, PAYGBOT_WEBHOOK_SECRET=WEBHOOK_SECRET,
                        PAYGBOT_MPESA_PATH=MPESA_PATH, PAYGBOT_HTTP_PORT=str(free_port()), ERM_TIMEOUT_SECONDS=str(TIMEOUT)) as chat:
        await _a_working_day(chat, erm_sandbox, captured)
    _the_log_holds_no_secret(captured)  # the stop included


async def _a_working_day(chat: Chat, erm_sandbox: ErmSandbox, captured: Captured) -> None:
    def collect_tokens() -> None:
        captured.erm_tokens.update(erm_sandbox._tokens)

    await chat.synced()  # the ERM calls counted below are the chat's, not the device sync's
    # joining: a manager invites an agent; the agent registers a customer, who joins by the link
    invite = await chat.say(MANAGER, "/invite agent")
    token = LINK.search(invite.rendered or "")
    assert token, invite.rendered
    assert "You are an agent" in ((await chat.say(AGENT, f"/start {token.group(1)}")).rendered or "")
    registered = await chat.say(AGENT, f"/customer {DEVICE} 0712345678 Jane Wanjiru")
    link = LINK.search(registered.rendered or "")
    assert link, registered.rendered
    await chat.say(CUSTOMER, f"/start {link.group(1)}")

    # /days: issued at once, then one queued behind the device's pacing
    first = await chat.say(AGENT, f"/days {DEVICE} 5")
    assert chat.codes()[0] in (first.rendered or "")
    queued = await chat.say(AGENT, f"/days {DEVICE} 2")
    assert "Queued" in (queued.rendered or "")
    await _code_reaches_the_agent(chat, 2, advance=6)
    collect_tokens()

    # the ERM forgets every token: the next call is refused (401) and the client logs in again
    logins = erm_sandbox.logins
    erm_sandbox.expire_tokens()
    await chat.api.user_says(AGENT, f"/days {DEVICE} 1")
    await _code_reaches_the_agent(chat, 3, advance=6)
    assert erm_sandbox.logins == logins + 1
    collect_tokens()

    # an ERM 503: nothing committed, retried after a backoff
    erm_sandbox.fail_next(1, status=503, paths=["/otp/daysCode"])
    chat.clock.advance(6)
    await chat.api.user_says(AGENT, f"/days {DEVICE} 1")
    await _latest_request_is(chat, Status.QUEUED, "the ERM's 503 to be recorded")
    await _code_reaches_the_agent(chat, 4, advance=6)  # past the backoff
    collect_tokens()

    # a timeout: the ERM commits but answers too late; the code is found in its history
    erm_sandbox.late_next(1, delay=TIMEOUT + 0.5)
    chat.clock.advance(6)
    await chat.api.user_says(AGENT, f"/days {DEVICE} 1")
    await _until(lambda: len(chat.codes()) >= 5, "the late code")
    code = chat.codes()[4]
    await _latest_request_is(chat, Status.SENDING, "the client to give up")
    chat.clock.advance(TIMEOUT + 6)  # the time limit and the grace period: settled from the history
    await chat.api.wait_for(lambda sent: sent.chat_id == AGENT.id and code in (sent.rendered or ""), timeout=20)
    assert len(chat.codes()) == 5 and erm_sandbox.generations == 7  # and the 401 and the 503: none asked twice
    collect_tokens()

    # looking things up
    view = await chat.say(AGENT, f"/device {DEVICE}")
    assert DEVICE in (view.rendered or "")
    history = await chat.say(AGENT, f"/history {DEVICE}")
    assert code in (history.rendered or "")
    collect_tokens()

    # payment webhooks: one signed right, one whose sender put the key itself in the signature;
    # an M-Pesa confirmation on the secret path, and one on a path that only starts with it
    port = chat.bot.http_port
    assert port
    body = json.dumps({"reference": "PAY-QX1", "amount": "100", "currency": "KES", "account": DEVICE}).encode()
    confirmation = {"TransactionType": "Pay Bill", "TransID": "RKTQDM7W6S", "TransTime": "20261122101500",
                    "TransAmount": "100.00", "BusinessShortCode": "600638", "BillRefNumber": DEVICE,
                    "MSISDN": "254712345678", "FirstName": "JANE", "LastName": "WANJIRU"}
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        signed = await client.post("/payments", content=body, headers={"X-Paygbot-Signature": _signed(body, WEBHOOK_SECRET)})
        leaked = await client.post("/payments", content=body, headers={"X-Paygbot-Signature": f"sha256={WEBHOOK_SECRET}"})
        mpesa = await client.post(f"/payments/mpesa/{MPESA_PATH}", json=confirmation)
        wrong = await client.post(f"/payments/mpesa/{MPESA_PATH}0", json={**confirmation, "TransID": "RKTQDM7W6T"})
        health = await client.get("/healthz")
    assert health.status_code == 200 and signed.status_code < 300 and leaked.status_code == 401
    assert mpesa.status_code == 200 and mpesa.json()["ResultCode"] == 0 and wrong.status_code >= 400
    collect_tokens()


def _the_log_holds_no_secret(captured: Captured) -> None:
    records, logged = captured.records.records, captured.text
    assert captured.erm_tokens, "the sandbox issued no token: the scenario did not run"
    secrets = {"the bot token": BOT_TOKEN, "the bot token's secret half": BOT_TOKEN.partition(":")[2],
               "the ERM password": ERM_PASSWORD, "the webhook secret": WEBHOOK_SECRET, "the M-Pesa path": MPESA_PATH}
    secrets |= {f"ERM access token {n}": token for n, token in enumerate(sorted(captured.erm_tokens), 1)}
    leaks = {what: [line for line in logged.splitlines() if value in line][:3]
             for what, value in secrets.items() if value in logged}
    assert leaks == {}, "secrets in the log"

    # it did log the day, one event per line
    assert len(records) > 20 and logged.count("\n") >= len(records)
    assert bot.logs.REDACTED in logged  # the filter had secrets to remove (httpx's URLs hold the token)
    ours = [record for record in records if record.name.startswith("paygbot")]
    assert ours, "the bot logged nothing of its own"
    for record in records:
        assert "\n" not in record.getMessage(), f"{record.name}: a message over several lines: {record.getMessage()!r}"
    for line in logged.splitlines():  # each line starts a record, unless it belongs to a traceback
        assert re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) ", line) \
            or line.startswith(("Traceback", "  ", "During handling", "The above exception")) \
            or re.match(r"^[\w.]+(Error|Exception|Exit|Interrupt|Cancelled|Timeout)\b", line), line



def test_secrets_are_removed_from_messages_tracebacks_and_stacks(capsys: pytest.CaptureFixture[str]) -> None:
    secret = "sk-live-0123456789abcdef"
    bot.logs.register_secret(secret)
    logger = logging.getLogger("paygbot.test-redaction")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.addFilter(bot.logs.RedactSecrets())
    logger.addHandler(handler)
    try:
        logger.warning("token %s", secret)
        try:
            raise RuntimeError(f"the ERM said no to {secret}")
        except RuntimeError:
            logger.exception("failed")
        logger.warning("where from", stack_info=True)  # a stack shows source lines: sk-live-0123456789abcdef
    finally:
        logger.removeHandler(handler)
    written = capsys.readouterr().err
    assert "Stack (most recent call last)" in written and "where from" in written
    assert secret not in written and written.count(bot.logs.REDACTED) == 3
