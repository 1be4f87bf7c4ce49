"""The managers' dashboard over HTTP, against the whole running bot: who may open it (launch data checked as
Telegram documents, sessions, roles read again on every request, CSRF), what it shows, and its actions
taken exactly once, beside the chat's."""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta

import httpx
import pytest
from sqlmodel import select

from bot.clock import ManualClock
from bot.http import free_port
from bot.standins.erm import ErmSandbox
from bot.standins.telegram import TelegramUser
from bot.standins.telegram.launch import launch_data
from storage import ledger
from storage.models import Approval, ApprovalStatus, CodeRequest, Payment, PaymentStatus, Role
from tests.support.chat import AGENT, MANAGER, TOKEN, Chat, chatting
from tests.support.dashboard import Board
from tests.support.waiting import eventually

DEVICE = "TEST2503000017"
OTHER_MANAGER = TelegramUser(1002, "Moses", "Were", language_code="fr")


@dataclass
class Dashboard:
    chat: Chat
    board: Board
    url: str

    def launch(self, user: TelegramUser, ago: timedelta = timedelta(0), token: str = TOKEN) -> str:
        return launch_data(user, token, self.chat.clock.now() - ago)

    async def manager(self, user: TelegramUser = MANAGER) -> Board:
        """Another browser (no cookies are kept: only the session's headers tell them apart), its session open as
        ``user``."""
        board = Board(self.board.client)
        answer = await board.open(self.launch(user))
        assert answer.status_code == 200, answer.text
        return board


@pytest.fixture
async def dash(erm_sandbox: ErmSandbox, erm_url: str, database_url: str, clock: ManualClock
               ) -> AsyncIterator[Dashboard]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    async with chatting(erm_sandbox, erm_url, database_url, clock, PAYGBOT_HTTP_PORT=str(port),
                        PAYGBOT_PUBLIC_URL=url) as chat:
        await chat.make(AGENT, Role.AGENT)
        async with httpx.AsyncClient(base_url=url) as client:
            yield Dashboard(chat, Board(client), url)


async def test_dashboard_answers_managers_with_a_button_that_opens_the_mini_app(dash: Dashboard) -> None:
    offer = await dash.chat.say(MANAGER, "/dashboard")
    assert "Your dashboard" in (offer.rendered or "")
    assert [button.get("web_app") for button in offer.buttons] == [{"url": f"{dash.url}/app"}]
    refused = await dash.chat.say(AGENT, "/dashboard")
    assert refused.rendered == "That command is for managers." and not refused.buttons
    shell = await dash.board.client.get("/app")
    assert shell.status_code == 200 and "/app/static/app.js" in shell.text and "/app/static/htmx.min.js" in shell.text
    assert "frame-ancestors" in shell.headers["content-security-policy"]
    for static in ("app.js", "app.css", "htmx.min.js"):
        assert (await dash.board.client.get(f"/app/static/{static}")).status_code == 200


async def test_a_managers_menu_button_opens_the_dashboard(dash: Dashboard) -> None:
    button = await eventually(lambda: dash.chat.api.menu_buttons.get(MANAGER.id), "the manager's menu button")
    assert button == {"type": "web_app", "text": "Dashboard", "web_app": {"url": f"{dash.url}/app"}}
    await dash.chat.say(AGENT, "/help")
    assert AGENT.id not in dash.chat.api.menu_buttons  # an agent keeps the list of commands


async def test_without_an_address_the_dashboard_says_it_is_not_set_up(chat: Chat) -> None:
    answer = await chat.say(MANAGER, "/dashboard")
    assert "PAYGBOT_PUBLIC_URL" in (answer.rendered or "") and not answer.buttons


async def test_launch_data_forged_stale_or_not_a_managers_opens_nothing(dash: Dashboard) -> None:
    board = dash.board
    user_json = '{"id":1001,"first_name":"Mary"}'
    tampered = dash.launch(AGENT).replace("2002", "1001")  # the agent's signed data, turned into the manager's
    cases = {
        "forged": dash.launch(MANAGER, token="654321:ANOTHER-bots-token"),
        "tampered": tampered,
        "unsigned": f"user={user_json}&auth_date={int(dash.chat.clock.now().timestamp())}",
        "bad hash": dash.launch(MANAGER)[:-3] + "zzz",
        "stale": dash.launch(MANAGER, ago=timedelta(hours=1, seconds=1)),
        "agent": dash.launch(AGENT),
        "stranger": dash.launch(TelegramUser(4004, "Sam")),
        "garbage": "%%%&&&===",
        "empty": "",
    }
    for name, data in cases.items():
        answer = await board.open(data)
        assert answer.status_code in (401, 403), name
        assert "token" not in answer.json() and "Traceback" not in answer.text, name
    assert (await board.open(cases["stale"])).json()["message"].startswith("This dashboard was opened more than an hour")
    assert (await board.open(cases["agent"])).json()["message"] == "The dashboard is for managers."
    assert (await board.open(cases["forged"])).json()["message"].startswith("This page was not opened from Telegram")
    malformed = await board.client.post("/app/session", content=b'{"init_data": 1}',
                                        headers={"Content-Type": "application/json"})
    assert malformed.status_code == 401 and "token" not in malformed.json()
    french = await board.open(dash.launch(OTHER_MANAGER, ago=timedelta(hours=2)))
    assert french.json()["message"].startswith("Ce tableau de bord a été ouvert il y a plus d'une heure")
    # just under an hour old is still good
    assert (await board.open(dash.launch(MANAGER, ago=timedelta(minutes=59)))).status_code == 200


async def test_every_page_needs_a_live_session_of_a_manager(dash: Dashboard) -> None:
    board = Board(dash.board.client)
    for path in ("frame", "today", "devices", "device/1", "payments", "approvals", "portfolio", "agents", "exports"):
        answer = await board.view(path)
        assert answer.status_code == 401 and "Your session has ended" in answer.text, path
    board.token = "not-a-token"
    assert (await board.view("devices")).status_code == 401
    assert (await board.client.get("/app/export/plans")).status_code == 401
    mine = await dash.manager()
    assert (await mine.view("devices")).status_code == 200
    dash.chat.clock.advance(minutes=31)  # a session lives 30 minutes; the page then asks again
    assert (await mine.view("devices")).status_code == 401


async def test_a_manager_whose_role_is_taken_away_sees_nothing_more(dash: Dashboard) -> None:
    await dash.chat.make(OTHER_MANAGER, Role.MANAGER)
    theirs = await dash.manager(OTHER_MANAGER)
    page = await theirs.view("agents")
    assert page.status_code == 200 and "Alex Kamau" in page.text
    await dash.chat.bot.services.team.revoke(OTHER_MANAGER.id)
    refused = await theirs.view("agents")
    assert refused.status_code == 403 and "Alex Kamau" not in refused.text
    assert "réservé aux responsables" in refused.text  # in their language


async def test_pages_are_in_the_managers_language(dash: Dashboard) -> None:
    await dash.chat.make(OTHER_MANAGER, Role.MANAGER)
    french = await dash.manager(OTHER_MANAGER)
    frame = await french.view("frame")
    assert "Appareils" in frame.text and "Paiements" in frame.text
    english = await dash.manager()
    assert "Devices" in (await english.view("frame")).text


async def test_devices_are_found_by_any_id_customer_or_phone_and_filtered(dash: Dashboard) -> None:
    chat = dash.chat
    await chat.synced()
    await chat.say(AGENT, f"/customer {DEVICE} 0712345678 Jane Wanjiru")
    board = await dash.manager()
    everything = await board.view("devices")
    assert everything.status_code == 200 and DEVICE in everything.text and 'id="device-filters"' in everything.text
    for search in (DEVICE[-6:], "wanjiru", "0712345678", "+254712345678"):
        found = await board.client.get("/app/view/devices", params={"q": search},
                                       headers={**board.headers(False), "HX-Target": "device-list"})
        assert found.status_code == 200 and DEVICE in found.text and "Jane Wanjiru" in found.text, search
        assert 'id="device-filters"' not in found.text  # only the list: the search box keeps its focus
    nothing = await board.view("devices", q="%_no such device_%")
    assert "No devices match." in nothing.text and DEVICE not in nothing.text
    agent_id = next(person.id for person in await chat.bot.services.people.staff() if person.telegram_id == AGENT.id)
    theirs = await board.view("devices", agent=str(agent_id))
    assert DEVICE in theirs.text and theirs.text.count('class="row"') == 1  # only the customer Alex registered
    for junk in ({"show": "<script>"}, {"page": "-1"}, {"page": "99999999999"}, {"agent": "x"}, {"q": "x" * 500}):
        answer = await board.view("devices", **junk)
        assert answer.status_code == 200 and "<script>" not in answer.text, junk
    past_due = await board.view("devices", show="past_due")
    assert past_due.status_code == 200


async def test_a_devices_page_tells_its_story(dash: Dashboard) -> None:
    chat = dash.chat
    await chat.say(AGENT, f"/customer {DEVICE} 0712345678 Jane Wanjiru")
    await chat.say(AGENT, f"/days {DEVICE} 30")  # the page below waits until its code is issued
    async with chat.bot.services.db.read() as session:
        device = await ledger.find_device(session=session, ref=DEVICE)
    assert device is not None and device.id is not None
    board = await dash.manager()

    async def issued() -> httpx.Response | None:
        page = await board.view(f"device/{device.id}")
        return page if chat.codes() and chat.codes()[0] in page.text else None

    page = await eventually(issued, "the code on the device's page")
    assert "Jane Wanjiru" in page.text and "<polyline" in page.text and "30 days" in page.text
    missing = await board.view("device/999999")
    assert missing.status_code == 404 and "Not found." in missing.text


async def kept_payment(chat: Chat) -> Payment:
    """Cash for a device with no daily price: kept for a manager."""
    held = await chat.say(AGENT, f"/pay {DEVICE} 500 CASH-1")
    assert "cannot become days yet" in (held.rendered or "")
    async with chat.bot.services.db.read() as session:
        payment = (await session.exec(select(Payment).where(Payment.reference == "CASH-1"))).one()
    assert payment.status is PaymentStatus.UNMATCHED
    return payment


async def test_a_kept_payment_is_assigned_once_however_often_it_is_sent(dash: Dashboard) -> None:
    chat = dash.chat
    payment = await kept_payment(chat)
    board = await dash.manager()
    listed = await board.view("payments")
    assert "CASH-1" in listed.text and "has no daily price yet" in listed.text
    await chat.say(MANAGER, f"/price {DEVICE} 50")
    form = {"payment_id": str(payment.id), "device": DEVICE}
    # without the session's CSRF token, or from another site: refused, nothing done
    assert (await board.act("assign", form, csrf=False)).status_code == 403
    other_site = await board.act("assign", form, headers={"Origin": "https://evil.example"})
    assert other_site.status_code == 403 and "nothing was done" in other_site.text
    async with chat.bot.services.db.read() as session:
        assert (await ledger.get_payment(session=session, payment_id=payment.id or 0)).status is PaymentStatus.UNMATCHED
    first, second = await asyncio.gather(board.act("assign", form), board.act("assign", form))
    texts = first.text + second.text
    assert first.status_code == second.status_code == 200
    assert texts.count("now gives") == 1 and texts.count("no longer waiting") == 1, texts
    async with chat.bot.services.db.read() as session:
        stored = await ledger.get_payment(session=session, payment_id=payment.id or 0)
        requests = (await session.exec(select(CodeRequest).where(CodeRequest.payment_id == payment.id))).all()
    assert stored is not None and stored.status is PaymentStatus.MATCHED and stored.days == 10 and len(requests) == 1
    assert "CASH-1" not in (await board.view("payments")).text
    bad = await board.act("assign", {"payment_id": str(payment.id), "device": "not a device!"})
    assert bad.status_code == 200 and "A device id is 1 to 64 letters" in bad.text


async def test_an_approval_in_the_dashboard_is_the_chats_approval(dash: Dashboard) -> None:
    chat = dash.chat
    preview = await chat.say(AGENT, f"/free {DEVICE}")
    after = chat.api.position
    await chat.tap(AGENT, preview, preview.button("Yes")["callback_data"])
    ask = await chat.api.wait_for(MANAGER.id, after=after, methods=("sendMessage",))
    board = await dash.manager()
    waiting = await board.view("approvals")
    assert DEVICE in waiting.text and "Alex Kamau" in waiting.text
    async with chat.bot.services.db.read() as session:
        approval = (await session.exec(select(Approval))).one()
    decide = {"approval_id": str(approval.id), "approve": "yes"}
    assert (await board.act("decide", decide, csrf=False)).status_code == 403
    after = chat.api.position
    done = await board.act("decide", decide)
    assert done.status_code == 200 and "Approved by" in done.text and "is being issued" in done.text
    assert "No code is waiting for approval." in done.text
    told = await chat.api.wait_for(AGENT.id, after=after, methods=("sendMessage",))
    assert "approved the free code for TEST2503000017" in (told.rendered or "")
    code = await chat.next(AGENT)
    assert chat.codes() and chat.codes()[0] in (code.rendered or "")
    again = await board.act("decide", {**decide, "approve": "no"})
    assert "Already approved" in again.text
    query = await chat.api.user_taps(MANAGER, ask, ask.button("Reject")["callback_data"])
    answer = await eventually(lambda: chat.api.answered(query), "the chat's answer to the late Reject")
    assert "Already approved" in (answer.text or "")
    async with chat.bot.services.db.read() as session:
        approval = (await session.exec(select(Approval))).one()
    assert approval.status is ApprovalStatus.APPROVED and len(chat.codes()) == 1
    junk = await board.act("decide", {"approval_id": "abc", "approve": "maybe"})
    assert junk.status_code == 200 and "Traceback" not in junk.text


async def test_exports_download_the_chats_files(dash: Dashboard) -> None:
    board = await dash.manager()
    plans = await board.client.get("/app/export/plans", headers=board.headers(False))
    assert plans.status_code == 200 and plans.headers["content-type"].startswith("text/csv")
    assert 'filename="paygbot-plans-' in plans.headers["content-disposition"]
    assert next(csv.reader(io.StringIO(plans.text)))[:3] == ["device", "name", "phone"]
    ledger_csv = await board.client.get("/app/export/ledger", headers=board.headers(False))
    assert ledger_csv.status_code == 200 and ledger_csv.text.startswith("\ufeff") or ledger_csv.text
    for params, why in (({"from": "2026-02-30"}, "YYYY-MM-DD"), ({"from": "2026-03-02", "to": "2026-03-01"}, ""),
                        ({"from": "2020-01-01", "to": "2026-01-01"}, "")):
        refused = await board.client.get("/app/export/ledger", params=params, headers=board.headers(False))
        assert refused.status_code == 400 and "Traceback" not in refused.text and why in refused.text, params
    assert (await board.client.get("/app/export/nothing", headers=board.headers(False))).status_code == 404


async def test_today_portfolio_agents_and_exports_pages_show(dash: Dashboard) -> None:
    board = await dash.manager()
    today = await board.view("today")
    assert today.status_code == 200 and "data:image/png;base64," in today.text
    portfolio = await board.view("portfolio")
    assert portfolio.status_code == 200 and "Portfolio" in portfolio.text and "data:image/png;base64," in portfolio.text
    agents = await board.view("agents")
    assert "Alex Kamau" in agents.text and "Their devices" in agents.text
    exports = await board.view("exports")
    assert 'data-export="/app/export/ledger"' in exports.text


async def test_telegrams_own_download_gets_a_one_minute_ticket_for_one_file(dash: Dashboard) -> None:
    await dash.chat.make(OTHER_MANAGER, Role.MANAGER)
    board = await dash.manager(OTHER_MANAGER)
    assert (await board.act("ticket", {"kind": "plans"}, csrf=False)).status_code == 403
    given = await board.act("ticket", {"kind": "plans"})
    assert given.status_code == 200 and given.json()["file_name"].startswith("paygbot-plans-")
    url = given.json()["url"]
    assert url.startswith(f"{dash.url}/app/export/plans?ticket=")
    plain = httpx.AsyncClient()  # Telegram's app: no session, no header
    try:
        fetched = await plain.get(url)
        assert fetched.status_code == 200 and fetched.text.startswith("device,name,phone")
        assert (await plain.get(url.replace("/plans?", "/portfolio?"))).status_code == 401  # another file
        assert (await plain.get(url[:-4] + "AAAA")).status_code == 401
        ledger_ticket = (await board.act("ticket", {"kind": "ledger", "from": "2026-11-01", "to": "2026-11-02"})).json()
        assert ledger_ticket["file_name"] == "paygbot-2026-11-01-to-2026-11-02.csv"
        assert (await plain.get(ledger_ticket["url"])).status_code == 200
        assert (await plain.get(ledger_ticket["url"].replace("2026-11-02", "2026-11-30"))).status_code == 401
        bad = await board.act("ticket", {"kind": "ledger", "from": "2026-13-01"})
        assert bad.status_code == 400 and "Traceback" not in bad.text
        assert (await board.act("ticket", {"kind": "secrets"})).status_code == 404
        await dash.chat.bot.services.team.revoke(OTHER_MANAGER.id)
        assert (await plain.get(url)).status_code == 403  # the role is read again
        dash.chat.clock.advance(seconds=61)
        assert (await plain.get(url)).status_code == 401
    finally:
        await plain.aclose()
