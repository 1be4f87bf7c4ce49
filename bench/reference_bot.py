"""The plainest bot that does paygbot's main job, for :mod:`bench.load_agents` to measure beside it.

One PTB handler: ``/days <device> <days>`` calls the ERM (``POST /otp/daysCode/v2``, signed in once) and
replies with the code. Updates are handled at once (PTB's ``concurrent_updates``); nothing is paced, kept or
counted: no ledger, no limits of the ERM, no rate limiter. A 429 is waited out (``retry_after``) and the
reply sent again, or it would be lost. Not part of the product.

    TELEGRAM_BOT_TOKEN=… TELEGRAM_BASE_URL=… ERM_BASE_URL=… ERM_USERNAME=… ERM_PASSWORD=… \\
        python bench/reference_bot.py
"""

from __future__ import annotations

import asyncio
import os

os.environ.setdefault("PTB_TIMEDELTA", "true")  # before telegram is imported: PTB 22 warns otherwise

import httpx  # noqa: E402
from telegram import Update  # noqa: E402
from telegram.error import RetryAfter  # noqa: E402
from telegram.ext import ApplicationBuilder, CommandHandler, ContextTypes  # noqa: E402


class Erm:
    """Just enough of the ERM's REST interface: sign in, generate a days code."""

    def __init__(self, url: str, username: str, password: str) -> None:
        self.http = httpx.AsyncClient(base_url=url.rstrip("/"), timeout=30)
        self.username, self.password = username, password
        self.token: str | None = None
        self._signing_in = asyncio.Lock()

    async def days_code(self, device: str, days: int) -> str:
        async with self._signing_in:
            if self.token is None:
                answer = await self.http.post("/user/login", json={"username": self.username,
                                                                   "password": self.password})
                self.token = answer.json()["accessToken"]
        answer = await self.http.post("/otp/daysCode/v2", json={"productId": device, "days": days},
                                      headers={"Authorization": self.token})
        answer.raise_for_status()
        return str(answer.json()["code"])


async def days(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    assert update.effective_message is not None and context.args is not None
    erm: Erm = context.bot_data["erm"]
    device, count = context.args[0], int(context.args[1])
    code = await erm.days_code(device, count)
    while True:
        try:
            await update.effective_message.reply_text(f"🔑 {device}: {code} ({count} days)")
            return
        except RetryAfter as exc:
            await asyncio.sleep(exc.retry_after.total_seconds())  # type: ignore[union-attr]


def main() -> None:
    application = (ApplicationBuilder().token(os.environ["TELEGRAM_BOT_TOKEN"])
                   .base_url(os.environ["TELEGRAM_BASE_URL"]).concurrent_updates(True).build())
    application.bot_data["erm"] = Erm(os.environ["ERM_BASE_URL"], os.environ["ERM_USERNAME"],
                                      os.environ["ERM_PASSWORD"])
    application.add_handler(CommandHandler("days", days))
    application.run_polling(poll_interval=0.0, allowed_updates=[Update.MESSAGE])


if __name__ == "__main__":
    main()
