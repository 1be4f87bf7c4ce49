"""The dashboard from outside: an HTTP client that opens a session with launch data (signed as Telegram signs
it: :mod:`bot.standins.telegram.launch`) and sends the session's headers, as the page's script does."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx


@dataclass
class Board:
    """One browser's view of the dashboard: its base URL and, once opened, its session."""

    client: httpx.AsyncClient
    token: str = ""
    csrf: str = ""

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
