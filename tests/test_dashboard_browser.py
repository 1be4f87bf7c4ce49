"""The dashboard in a real browser: Debian's headless Chromium, driven by Playwright, opens the Mini App as
Telegram opens it (launch data and theme in the URL fragment) at a phone's width, and clicks through search,
a device's page, an approval, an assignment and an export; forged, stale and agents' launch data see nothing.
Screenshots of the main pages are kept in ``test-artefacts/dashboard/`` (``PAYGBOT_TEST_ARTEFACTS`` moves it).

The browser is the system's (``/usr/bin/chromium``, or ``PAYGBOT_CHROMIUM``): Playwright downloads none. The
README's test set-up installs it."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect
from sqlmodel import select

from bot.clock import ManualClock
from bot.http import free_port
from bot.standins.erm import ErmSandbox
from bot.standins.telegram import TelegramUser
from bot.standins.telegram.launch import DARK_THEME, launch_data, mini_app_url
from storage.models import Approval, ApprovalStatus, Payment, PaymentStatus, Role
from tests.support.chat import AGENT, MANAGER, TOKEN, Chat, chatting

DEVICE = "TEST2503000017"
ROOT = Path(__file__).resolve().parent.parent
ARTEFACTS = Path(os.environ.get("PAYGBOT_TEST_ARTEFACTS", ROOT / "test-artefacts")) / "dashboard"
PHONE = {"width": 390, "height": 844}
# As the machine's notes advise: no background connections (the network is closed), no sandbox as root.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = pytest.mark.sqlite_only  # one ledger is enough: the ledgers are tested without a browser


def chromium() -> str:
    found = os.environ.get("PAYGBOT_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.fail("no chromium: install Debian's (apt-get install chromium), as the README's test set-up does")
    return found


@pytest.fixture(scope="module")
def artefacts() -> Path:
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    return ARTEFACTS


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=chromium(), args=FLAGS)
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
async def bot(erm_sandbox: ErmSandbox, erm_url: str, database_url: str, clock: ManualClock
              ) -> AsyncIterator[tuple[Chat, str]]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    async with chatting(erm_sandbox, erm_url, database_url, clock, PAYGBOT_HTTP_PORT=str(port),
                        PAYGBOT_PUBLIC_URL=url) as chat:
        await chat.make(AGENT, Role.AGENT)
        yield chat, url


async def opened(browser: Browser, url: str, chat: Chat, user: TelegramUser, *, ago: timedelta = timedelta(0),
                 token: str = TOKEN) -> Page:
    """A phone-sized page opened as Telegram opens a Mini App: ``#tgWebAppData=…&tgWebAppThemeParams=…``."""
    context = await browser.new_context(viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True,
                                        accept_downloads=True)
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" and
            "401" not in message.text and "403" not in message.text else None)
    data = launch_data(user, token, chat.clock.now() - ago)
    await page.goto(mini_app_url(f"{url}/app", data, theme=DARK_THEME))
    page.errors = errors  # type: ignore[attr-defined]
    return page


async def settled(page: Page) -> None:
    """Until htmx has no request, swap or settle under way: what it swapped in has its controls bound."""
    await page.wait_for_function(
        "() => !document.querySelector('.htmx-request, .htmx-swapping, .htmx-settling, .htmx-added')")


async def test_a_manager_clicks_through_the_dashboard(browser: Browser, bot: tuple[Chat, str],
                                                     artefacts: Path) -> None:
    chat, url = bot
    await chat.say(AGENT, f"/customer {DEVICE} 0712345678 Jane Wanjiru")
    held = await chat.say(AGENT, f"/pay {DEVICE} 500 CASH-9")
    assert "cannot become days yet" in (held.rendered or "")
    preview = await chat.say(AGENT, f"/free {DEVICE}")
    await chat.tap(AGENT, preview, preview.button("Yes")["callback_data"])

    page = await opened(browser, url, chat, MANAGER)
    await expect(page.locator("#page-today.ready")).to_be_visible()
    await expect(page.locator("#page-today img")).to_be_visible()
    background = await page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(23, 33, 43)"  # DARK_THEME's bg_color, from tgWebAppThemeParams
    await page.screenshot(path=artefacts / "today.png", full_page=True)

    await page.locator("#tab-devices").click()
    await expect(page.locator("#page-devices.ready")).to_be_visible()
    await page.locator("#q").fill("wanjiru")
    row = page.locator(f'#device-list .row[data-device="{DEVICE}"]')
    await expect(row).to_be_visible()
    await expect(page.locator("#device-list .row")).to_have_count(1)
    await page.screenshot(path=artefacts / "devices.png", full_page=True)
    await page.locator("#show").select_option("ending")  # a filter applies as soon as it is chosen
    await expect(page.locator("#no-devices")).to_be_visible()
    await page.locator("#show").select_option("all")
    await expect(page.locator("#device-list .row")).to_have_count(1)  # the search still holds
    await settled(page)
    await row.click()
    await expect(page.locator("#device-title")).to_have_text(DEVICE)
    await expect(page.locator("#page-device")).to_contain_text("Jane Wanjiru")
    await page.screenshot(path=artefacts / "device.png", full_page=True)

    await chat.say(MANAGER, f"/price {DEVICE} 50")
    await page.locator("#tab-payments").click()
    await expect(page.locator("#page-payments.ready")).to_be_visible()
    kept = page.locator('.payments .card[data-reference="CASH-9"]')
    await expect(kept).to_be_visible()
    await page.screenshot(path=artefacts / "payments.png", full_page=True)
    await kept.locator('input[name="device"]').fill(DEVICE)
    await kept.locator("button").click()
    await expect(page.locator("#note")).to_contain_text("now gives")
    async with chat.bot.services.db.read() as session:
        payment = (await session.exec(select(Payment).where(Payment.reference == "CASH-9"))).one()
    assert payment.status is PaymentStatus.MATCHED and payment.days == 10

    await page.locator("#tab-approvals").click()
    await expect(page.locator("#page-approvals.ready")).to_be_visible()
    card = page.locator(f'.approvals .card[data-device="{DEVICE}"]')
    await expect(card).to_be_visible()
    await page.screenshot(path=artefacts / "approvals.png", full_page=True)
    await card.locator("button.yes").click()
    await expect(page.locator("#note")).to_contain_text("is being issued")
    await expect(page.locator("#nothing-waiting")).to_be_visible()
    async with chat.bot.services.db.read() as session:
        assert (await session.exec(select(Approval))).one().status is ApprovalStatus.APPROVED
    # (a free code unlocks for good: that is why the payment was assigned first)

    await page.locator("#tab-portfolio").click()
    await expect(page.locator("#page-portfolio.ready")).to_be_visible()
    await expect(page.locator("#page-portfolio img")).to_be_visible()
    await page.screenshot(path=artefacts / "portfolio.png", full_page=True)

    await page.locator("#tab-exports").click()
    await expect(page.locator("#page-exports.ready")).to_be_visible()
    async with page.expect_download() as waiting:
        await page.locator("#export-plans button").click()
    download = await waiting.value
    assert download.suggested_filename.startswith("paygbot-plans-")
    saved = artefacts / download.suggested_filename
    await download.save_as(saved)
    assert saved.read_text().startswith("device,name,phone")
    await page.screenshot(path=artefacts / "exports.png", full_page=True)
    await page.set_viewport_size({"width": 1024, "height": 768})  # the desktop app's window
    await page.locator("#tab-devices").click()
    await expect(page.locator("#page-devices.ready")).to_be_visible()
    await expect(page.locator("#device-list .row").first).to_be_visible()
    await page.screenshot(path=artefacts / "devices-desktop.png")
    assert page.errors == [], page.errors  # type: ignore[attr-defined]


@pytest.mark.parametrize("who", ["forged", "stale", "agent"])
async def test_forged_stale_and_agents_launch_data_see_nothing(browser: Browser, bot: tuple[Chat, str],
                                                              artefacts: Path, who: str) -> None:
    chat, url = bot
    user, ago, token = MANAGER, timedelta(0), TOKEN
    if who == "forged":
        token = "654321:ANOTHER-bots-token"
    elif who == "stale":
        ago = timedelta(hours=1, minutes=1)
    else:
        user = AGENT
    page = await opened(browser, url, chat, user, ago=ago, token=token)
    await expect(page.locator("#refused")).to_be_visible()
    expected = {"forged": "not opened from Telegram", "stale": "more than an hour ago",
                "agent": "The dashboard is for managers."}[who]
    await expect(page.locator("#refused")).to_contain_text(expected)
    await expect(page.locator(".tabs")).to_have_count(0)
    assert DEVICE not in await page.content()
    await page.screenshot(path=artefacts / f"refused-{who}.png")


async def test_inside_telegram_an_export_is_handed_to_telegrams_own_download(browser: Browser, bot: tuple[Chat, str],
                                                                             artefacts: Path) -> None:
    chat, url = bot
    context = await browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    # Telegram's Android app gives the page TelegramWebviewProxy.postEvent: the page's events are kept here
    await context.add_init_script(
        "window.telegramEvents = [];"
        "window.TelegramWebviewProxy = {postEvent: function (type, data) {"
        " window.telegramEvents.push([type, JSON.parse(data)]); }};")
    page = await context.new_page()
    await page.goto(mini_app_url(f"{url}/app", launch_data(MANAGER, TOKEN, chat.clock.now()), theme=DARK_THEME))
    await expect(page.locator("#page-today.ready")).to_be_visible()
    await page.locator("#tab-exports").click()
    await expect(page.locator("#page-exports.ready")).to_be_visible()
    await page.locator("#export-portfolio button").click()
    event = await page.wait_for_function(
        "() => window.telegramEvents.find(e => e[0] === 'web_app_request_file_download')")
    asked = (await event.json_value())[1]
    assert asked["file_name"].startswith("paygbot-portfolio-") and "ticket=" in asked["url"]
    events = [name for name, _ in await page.evaluate("window.telegramEvents")]
    assert events[:2] == ["web_app_ready", "web_app_expand"]
    fetched = await context.request.get(asked["url"])  # as Telegram's app fetches it: no session header
    assert fetched.status == 200 and (await fetched.text()).startswith("device,name,phone")
    await context.close()
