"""Webhook mode, as ``paygbot run`` runs it: the bot sets its webhook (with the secret and the update types it
handles) and takes updates at ``POST /telegram`` from the Bot API stand-in, which POSTs them as Telegram does;
a missing or wrong secret is 403 and nothing is handled; an update sent twice is handled once; a body that is
no update is 400."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.app import HANDLED_UPDATES
from bot.http import free_port
from bot.standins.telegram import FakeBotApi
from bot.standins.telegram.html import command_entities
from bot.standins.telegram.server import running
from bot.telegram_webhook import SECRET_HEADER
from storage import ledger
from storage.db import Database
from tests.support.chat import MANAGER, REPLIES, TOKEN
from tests.support.cli import COMMAND, environment
from tests.support.waiting import eventually

SECRET = "s3cret-Telegram-echoes_this"


@asynccontextmanager
async def webhook_bot(tmp_path: Path, database_url: str, erm_url: str) -> AsyncIterator[tuple[FakeBotApi, str]]:
    """``paygbot run`` in webhook mode on the stand-ins; yields the stand-in and the bot's ``/telegram`` URL
    once the webhook is set."""
    api = FakeBotApi(TOKEN)
    api.meet(MANAGER)
    port = free_port()
    url = f"http://127.0.0.1:{port}/telegram"
    async with running(api) as base_url:
        env = environment(tmp_path, TELEGRAM_BOT_TOKEN=TOKEN, TELEGRAM_BASE_URL=base_url, DATABASE_URL=database_url,
                          ERM_BASE_URL=erm_url, ERM_USERNAME="test@example.com", ERM_PASSWORD="test1234",
                          PAYGBOT_HTTP_PORT=str(port), PAYGBOT_MANAGERS=str(MANAGER.id),
                          TELEGRAM_WEBHOOK_URL=url, TELEGRAM_WEBHOOK_SECRET=SECRET)
        process = await asyncio.create_subprocess_exec(*COMMAND, "run", cwd=tmp_path, env=env,
                                                       stderr=asyncio.subprocess.PIPE)
        try:
            deadline = time.monotonic() + 60
            while api.webhook is None:
                assert process.returncode is None, "paygbot run ended before setting its webhook"
                assert time.monotonic() < deadline, "no setWebhook within 60 s"
                await asyncio.sleep(0.05)
            yield api, url
        finally:
            process.send_signal(signal.SIGTERM)
            _, err = await asyncio.wait_for(process.communicate(), 30)
        assert process.returncode == 0, err.decode()
        assert "Traceback" not in err.decode() and SECRET not in err.decode() and TOKEN not in err.decode()


def raw_update(update_id: int, text: str) -> dict[str, Any]:
    """A message update from MANAGER, as Telegram would POST it."""
    return {"update_id": update_id, "message": {
        "message_id": update_id, "date": int(time.time()), "text": text, "entities": command_entities(text),
        "chat": {"id": MANAGER.id, "type": "private", "first_name": MANAGER.first_name},
        "from": MANAGER.to_dict()}}


async def test_the_webhook_is_set_and_updates_come_through_it(tmp_path: Path, database_url: str, erm_url: str) -> None:
    async with webhook_bot(tmp_path, database_url, erm_url) as (api, url):
        assert api.webhook is not None
        assert api.webhook.url == url and api.webhook.secret == SECRET
        assert api.webhook.allowed_updates == list(HANDLED_UPDATES)
        await api.user_says(MANAGER, "/help")
        reply = await api.wait_for(MANAGER.id, methods=REPLIES, timeout=30)
        assert "/invite" in (reply.rendered or "")
        hook = api.webhook
        await eventually(lambda: hook.delivered == 1, "the POST answered (after the update was handled)")
        assert not hook.failures
        assert api.poll_generation == 1  # setWebhook ended polling once, and no getUpdates came after


async def test_a_forged_update_is_refused_and_a_repeated_one_handled_once(
    tmp_path: Path, database_url: str, erm_url: str
) -> None:
    async with webhook_bot(tmp_path, database_url, erm_url) as (api, url), httpx.AsyncClient() as client:
        forged = raw_update(900_001, "/help")
        for headers in ({}, {SECRET_HEADER: "guessed"}, {SECRET_HEADER: SECRET[:-1]}):
            answer = await client.post(url, json=forged, headers=headers)
            assert answer.status_code == 403 and SECRET not in answer.text
        for body in (b"{not json", b"[1, 2]", b'{"no": "update id"}'):
            answer = await client.post(url, content=body, headers={SECRET_HEADER: SECRET})
            assert answer.status_code == 400, body

        twice = raw_update(900_002, "/start")
        answers = await asyncio.gather(*(client.post(url, json=twice, headers={SECRET_HEADER: SECRET})
                                         for _ in range(2)))  # at once: one handles it, the other waits or knows
        assert [a.json()["status"] for a in answers].count("ok") == 1
        assert all(a.json()["status"] in ("ok", "duplicate") or a.status_code == 503 for a in answers)
        later = await client.post(url, json=twice, headers={SECRET_HEADER: SECRET})  # as Telegram sends it again
        assert later.status_code == 200 and later.json()["status"] == "duplicate"
        await api.wait_for(MANAGER.id, methods=REPLIES, timeout=30)
        # a later update through Telegram: once its answer is in, anything owed to the others is in too
        await api.user_says(MANAGER, "/help")
        await api.wait_for(lambda sent: "/invite" in (sent.rendered or ""), methods=REPLIES, timeout=30)
        to_manager = [sent for sent in api.sent if sent.chat_id == MANAGER.id and sent.method in REPLIES]
        assert len(to_manager) == 2, [sent.rendered for sent in to_manager]  # /start once, /help once; nothing forged

    db = Database(database_url)
    try:
        async with db.write() as session:  # the ids handled: the repeated one once, the forged one never
            now = datetime.now(UTC)
            assert await ledger.take_update(session=session, update_id=900_002, now=now, hold=now) is ledger.Delivery.DONE
            assert await ledger.take_update(session=session, update_id=900_001, now=now, hold=now) is ledger.Delivery.HANDLE
    finally:
        await db.dispose()


@pytest.mark.parametrize(("variables", "named"), [
    ({"TELEGRAM_WEBHOOK_URL": "https://bot.example.com/telegram"}, "TELEGRAM_WEBHOOK_SECRET"),
    ({"TELEGRAM_WEBHOOK_URL": "https://bot.example.com/telegram", "TELEGRAM_WEBHOOK_SECRET": "has spaces"},
     "TELEGRAM_WEBHOOK_SECRET"),
    ({"TELEGRAM_WEBHOOK_URL": "ftp://bot.example.com/telegram", "TELEGRAM_WEBHOOK_SECRET": SECRET},
     "TELEGRAM_WEBHOOK_URL"),
    ({"TELEGRAM_WEBHOOK_URL": "https://bot.example.com/updates", "TELEGRAM_WEBHOOK_SECRET": SECRET},
     "TELEGRAM_WEBHOOK_URL"),
    ({"TELEGRAM_WEBHOOK_URL": "https://bot.example.com/telegram", "TELEGRAM_WEBHOOK_SECRET": SECRET,
      "PAYGBOT_HTTP_PORT": "0"}, "PAYGBOT_HTTP_PORT"),
])
def test_webhook_settings_that_cannot_work_are_named(variables: dict[str, str], named: str, tmp_path: Path) -> None:
    from tests.support.cli import run

    result = run("run", cwd=tmp_path, env={"TELEGRAM_BOT_TOKEN": TOKEN, **variables})
    assert result.code == 2 and named in result.err, result.err
    assert "Traceback" not in result.err and SECRET not in result.err and len(result.err.strip().splitlines()) == 1
