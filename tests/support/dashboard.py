"""The dashboard from outside: launch data signed as Telegram signs it, and an HTTP client that opens a
session with it and sends the session's headers, as the page's script does."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx

from bot.standins.telegram import TelegramUser
from dashboard.launch import sign


def launch_data(user: TelegramUser, token: str, at: datetime, **extra: str) -> str:
    """``initData`` as Telegram hands it to a Mini App opened by ``user`` at ``at``."""
    fields = {"query_id": "AAHdF6IQAAAAAN0XohDhrOrc", "user": json.dumps(user.to_dict(), separators=(",", ":")),
              "auth_date": str(int(at.timestamp())), **extra}
    return sign(fields, token)


@dataclass
class Board:
    """One browser's view of the dashboard: its base URL and, once opened, its session."""

    client: httpx.AsyncClient
    token: str = ""
    csrf: str = ""
    answers: list[httpx.Response] = field(default_factory=list)

    async def open(self, init_data: str) -> httpx.Response:
        answer = await self.client.post("/app/session", data={"init_data": init_data})
        if answer.status_code == 200:
            self.token, self.csrf = answer.json()["token"], answer.json()["csrf"]
        return answer

    def headers(self, csrf: bool = True) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        if csrf:
            headers["X-CSRF-Token"] = self.csrf
        return headers

    async def view(self, path: str, **params: Any) -> httpx.Response:
        return await self.client.get(f"/app/view/{path}", params=params, headers=self.headers(csrf=False))

    async def act(self, path: str, data: dict[str, str], *, csrf: bool = True,
                  headers: dict[str, str] | None = None) -> httpx.Response:
        return await self.client.post(f"/app/act/{path}", data=data, headers={**self.headers(csrf), **(headers or {})})
