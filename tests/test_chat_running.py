"""The running bot around the chat: reminders, /healthz, the error handler, command lists, and
``paygbot run`` as a process that stops cleanly on SIGTERM without losing what is queued."""

from __future__ import annotations

import asyncio
import gc
import signal
import socket
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlmodel import select
from telegram import Update
from telegram.ext import ApplicationBuilder, CommandHandler

from bot.clock import ManualClock
from bot.http import free_port
from bot.jobs import send_reminders
from bot.standins.erm import ErmSandbox
from bot.standins.erm import running as sandbox_running
from bot.standins.telegram import FakeBotApi, Sent
from bot.standins.telegram.server import running
from handlers.common import on_error
from storage.db import Database
from storage.models import CodeRequest, Role, Status
from tests.support.chat import AGENT, CUSTOMER, MANAGER, REPLIES, TOKEN, Chat, chatting
from tests.support.cli import COMMAND, environment, run

DEVICE = "TEST2503000017"


pytestmark = pytest.mark.agents(AGENT)  # the ``chat`` fixture (conftest.py) makes AGENT an agent


async def test_a_reminder_comes_once_before_credit_ends(chat: Chat) -> None:
    link = await chat.say(AGENT, f"/customer {DEVICE} 0712345678 Jane Wanjiru")
    token = (link.rendered or "").split("start=")[1].split()[0]
    await chat.say(CUSTOMER, f"/start {token}")
    await chat.api.user_says(AGENT, f"/days {DEVICE} 5")
    await chat.next(CUSTOMER)  # the code
    services = chat.bot.services
    assert await send_reminders(services, chat.bot.application.bot) == 0  # 5 days left: too early
    chat.clock.advance(days=3, hours=1)
    assert await send_reminders(services, chat.bot.application.bot) == 1
    reminder = await chat.next(CUSTOMER)
    assert "ends in 2 days" in (reminder.rendered or "") and DEVICE in (reminder.rendered or "")
    assert await send_reminders(services, chat.bot.application.bot) == 0  # once per expiry
    chat.clock.advance(seconds=6)
    await chat.api.user_says(AGENT, f"/days {DEVICE} 1")  # a new expiry date: a new reminder later
    await chat.next(CUSTOMER)
    assert await send_reminders(services, chat.bot.application.bot) == 0  # 3 days left again
    chat.clock.advance(days=1)
    assert await send_reminders(services, chat.bot.application.bot) == 1


async def test_command_lists_per_role(chat: Chat) -> None:
    await chat.say(MANAGER, "/start")
    manager = [c["command"] for c in await chat.menu(MANAGER.id)]
    assert "invite" in manager and "days" in manager
    assert [c["command"] for c in chat.api.commands_for()] == ["start", "help", "language"]


async def test_healthz_reports_the_queue(erm_sandbox: ErmSandbox, erm_url: str, database_url: str,
                                         clock: ManualClock) -> None:
    port = free_port()
    async with chatting(erm_sandbox, erm_url, database_url, clock, PAYGBOT_HTTP_PORT=str(port)) as chat:
        await chat.make(AGENT, Role.AGENT)
        await chat.say(AGENT, f"/days {DEVICE} 1")
        await chat.say(AGENT, f"/days {DEVICE} 1")  # queued for 6 s
        clock.advance(4)
        async with httpx.AsyncClient() as client:
            health = (await client.get(f"http://127.0.0.1:{port}/healthz")).json()
    assert health["status"] == "ok" and health["database"] == "ok" and health["bot"] == "paygbot_demo_bot"
    assert health["queue"] == {"depth": 1, "oldest_seconds": 4.0}


async def test_what_the_start_made_is_left_out_of_full_collections_while_the_bot_runs(
        erm_sandbox: ErmSandbox, erm_url: str, database_url: str, clock: ManualClock) -> None:
    """A full collection that scans every object the imports and the start made holds the whole bot ~0.1 s."""
    async with chatting(erm_sandbox, erm_url, database_url, clock):
        assert gc.get_freeze_count() > 100_000
    assert gc.get_freeze_count() == 0  # let go when it stops (a test's, a restarted bot's garbage is collected)


def test_a_free_port_is_one_the_kernel_does_not_hand_to_outgoing_connections() -> None:
    """Else an outgoing connection may take it before the server binds it (parallel tests did)."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    ports = {free_port() for _ in range(20)}
    assert all(1024 < port < low for port in ports) and len(ports) > 1
    for port in ports:
        with socket.socket() as server:
            server.bind(("127.0.0.1", port))


async def test_the_error_handler_logs_and_tells_the_person(caplog: pytest.LogCaptureFixture) -> None:
    api = FakeBotApi(TOKEN)

    async def broken(update: Update, context: object) -> None:
        raise RuntimeError("a bug")

    async with running(api) as base_url:
        application = ApplicationBuilder().token(TOKEN).base_url(base_url).build()
        application.add_handler(CommandHandler("boom", broken))
        application.add_error_handler(on_error)  # type: ignore[arg-type]
        api.meet(AGENT)
        async with application:
            await application.start()
            assert application.updater is not None
            await application.updater.start_polling(poll_interval=0)
            await api.user_says(AGENT, "/boom")
            told = await api.wait_for(AGENT.id, methods=REPLIES)
            await application.updater.stop()
            await application.stop()
    assert told.rendered == "Sorry, something went wrong on our side. Please try again in a minute."
    assert "RuntimeError: a bug" in caplog.text and "Traceback" not in (told.rendered or "")


def test_run_needs_a_token(tmp_path: Path) -> None:
    result = run("run", cwd=tmp_path)
    assert result.code == 1 and "TELEGRAM_BOT_TOKEN is not set" in result.err and "Traceback" not in result.err


async def test_run_against_an_unreachable_telegram(tmp_path: Path) -> None:
    process = await asyncio.create_subprocess_exec(
        *COMMAND, "run", cwd=tmp_path,
        env=environment(tmp_path, TELEGRAM_BOT_TOKEN="1:abc", TELEGRAM_BASE_URL="http://127.0.0.1:9/bot",
                        PAYGBOT_HTTP_PORT="0"),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 1 and "Telegram could not be reached" in err.decode()
    assert "Traceback" not in err.decode() and "1:abc" not in err.decode()


def _agent_and_ledger(tmp_path: Path) -> tuple[FakeBotApi, Path]:
    """A Bot API stand-in that knows AGENT, and a ledger where AGENT is an agent (``paygbot users add``)."""
    api = FakeBotApi(TOKEN)
    database = tmp_path / "ledger.db"
    assert run("users", "add", "--telegram-id", str(AGENT.id), "--role", "agent", cwd=tmp_path,
               env={"DATABASE_URL": f"sqlite:///{database}"}).code == 0
    api.meet(AGENT)
    return api, database


def _run_environment(tmp_path: Path, telegram_url: str, database: Path, **erm: str) -> dict[str, str]:
    """The variables of ``paygbot run`` on the stand-ins, the ERM's as given."""
    return environment(tmp_path, TELEGRAM_BOT_TOKEN=TOKEN, TELEGRAM_BASE_URL=telegram_url,
                       ERM_USERNAME="test@example.com", ERM_PASSWORD="test1234",
                       DATABASE_URL=f"sqlite:///{database}", PAYGBOT_HTTP_PORT="0", **erm)


async def _paygbot_run(tmp_path: Path, env: dict[str, str]) -> asyncio.subprocess.Process:
    """``paygbot run`` as its own process, its stderr kept to read."""
    return await asyncio.create_subprocess_exec(*COMMAND, "run", cwd=tmp_path, env=env, stderr=asyncio.subprocess.PIPE)


async def test_sigterm_stops_cleanly_and_nothing_queued_is_lost(tmp_path: Path) -> None:
    api, database = _agent_and_ledger(tmp_path)
    sandbox = ErmSandbox(min_gap_seconds=2)
    async with running(api) as base_url, sandbox_running(sandbox) as erm_url:
        env = _run_environment(tmp_path, base_url, database, ERM_BASE_URL=erm_url, PAYGBOT_MIN_GAP_SECONDS="2")
        process = await _paygbot_run(tmp_path, env)
        await api.user_says(AGENT, f"/days {DEVICE} 1")
        first = await api.wait_for(AGENT.id, methods=REPLIES, timeout=30)
        assert sandbox.device(DEVICE).codes[0].keypad in (first.rendered or "")
        await api.user_says(AGENT, f"/days {DEVICE} 2")
        queued = await api.wait_for(AGENT.id, methods=REPLIES, timeout=30)
        assert "Queued" in (queued.rendered or "")
        process.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(process.communicate(), 30)
        assert process.returncode == 0, err.decode()
        assert "paygbot stopping" in err.decode() and "Traceback" not in err.decode()
        db = Database(f"sqlite:///{database}")
        async with db.read() as session:
            statuses = [row.status for row in (await session.exec(select(CodeRequest).order_by(CodeRequest.id))).all()]  # type: ignore[arg-type]
        await db.dispose()
        assert statuses[0] in (Status.ISSUED, Status.DELIVERED) and len(statuses) == 2
        def second_code(sent: Sent) -> bool:  # (a restart may first tell the first code again: at least once)
            return sent.chat_id == AGENT.id and "2 days" in (sent.rendered or "")

        if statuses[1] is not Status.DELIVERED:  # stopped before its turn, or before telling it: the next start does
            process = await _paygbot_run(tmp_path, env)
            follow = await api.wait_for(second_code, methods=REPLIES, timeout=30)
            process.send_signal(signal.SIGTERM)
            await asyncio.wait_for(process.communicate(), 30)
        else:
            follow = await api.wait_for(second_code, methods=REPLIES, timeout=30)
        assert "2 days" in (follow.rendered or "") and len(sandbox.device(DEVICE).codes) == 2
    gap = sandbox.device(DEVICE).codes[1].created_at - sandbox.device(DEVICE).codes[0].created_at
    assert gap >= timedelta(seconds=2)


async def test_run_speaks_graphql_when_told(tmp_path: Path) -> None:
    """``paygbot run`` as a process with ``ERM_API=graphql``: the agent's code comes over GraphQL, and the
    device sync over GraphQL lets /find find a device by its last digits."""
    api, database = _agent_and_ledger(tmp_path)
    sandbox = ErmSandbox()
    async with running(api) as base_url, sandbox_running(sandbox) as erm_url:
        env = _run_environment(tmp_path, base_url, database, ERM_API="graphql", ERM_GRAPHQL_URL=f"{erm_url}/graphql",
                               ERM_BASE_URL="http://127.0.0.1:9")
        process = await _paygbot_run(tmp_path, env)
        try:
            await api.user_says(AGENT, f"/days {DEVICE} 3")
            code = await api.wait_for(AGENT.id, methods=REPLIES, timeout=30)
            assert sandbox.device(DEVICE).codes[0].keypad in (code.rendered or "")
            deadline = asyncio.get_running_loop().time() + 30
            while True:  # the device sync runs a second after the start
                await api.user_says(AGENT, "/find 00000048")
                found = await api.wait_for(AGENT.id, methods=REPLIES, timeout=30)
                if "SBX00000000048" in str(found.buttons) or asyncio.get_running_loop().time() > deadline:
                    break
                await asyncio.sleep(0.2)
            assert [button["text"].split()[0] for button in found.buttons] == ["SBX00000000048"]
        finally:
            process.send_signal(signal.SIGTERM)
            _, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, err.decode()
    assert {call.path for call in sandbox.calls} == {"/graphql"}


async def test_a_second_run_on_the_same_sqlite_ledger_refuses_to_start(tmp_path: Path) -> None:
    """One process per SQLite ledger: a second ``paygbot run`` says so in one line and changes nothing; the
    first goes on answering."""
    api, database = _agent_and_ledger(tmp_path)
    sandbox = ErmSandbox()
    async with running(api) as base_url, sandbox_running(sandbox) as erm_url:
        env = _run_environment(tmp_path, base_url, database, ERM_BASE_URL=erm_url)
        first = await _paygbot_run(tmp_path, env)
        try:
            await api.user_says(AGENT, f"/days {DEVICE} 1")
            code = await api.wait_for(AGENT.id, methods=REPLIES, timeout=30)
            assert sandbox.device(DEVICE).codes[0].keypad in (code.rendered or "")
            second = await _paygbot_run(tmp_path, env)
            _, err = await asyncio.wait_for(second.communicate(), 60)
            lines = err.decode().strip().splitlines()
            assert second.returncode == 1, err.decode()
            assert lines[-1].startswith(f"paygbot: Another paygbot run (process {first.pid}) is using the ledger ")
            assert "Traceback" not in err.decode() and TOKEN not in err.decode()
            await api.user_says(AGENT, f"/device {DEVICE}")
            assert DEVICE in ((await api.wait_for(AGENT.id, methods=REPLIES, timeout=30)).rendered or "")
        finally:
            first.send_signal(signal.SIGTERM)
            _, err = await asyncio.wait_for(first.communicate(), 30)
            print(err.decode())  # shown if the test fails: /device once failed here in CI, its cause not in sight
        third = await _paygbot_run(tmp_path, env)  # the first gone: free again
        try:
            await api.user_says(AGENT, f"/device {DEVICE}")
            assert DEVICE in ((await api.wait_for(AGENT.id, methods=REPLIES, timeout=30)).rendered or "")
        finally:
            third.send_signal(signal.SIGTERM)
            _, err = await asyncio.wait_for(third.communicate(), 30)
        assert third.returncode == 0, err.decode()
