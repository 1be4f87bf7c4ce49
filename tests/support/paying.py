"""Driving payments from the outside: the whole bot with its HTTP side on a loopback port, a client
that signs like a payment provider, and the chat (:mod:`tests.support.chat`) to see who is told what."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
from sqlmodel import select

from bot.clock import ManualClock
from bot.http import free_port
from bot.issuing import Refused, devices
from bot.payments import sign
from bot.standins.erm import ErmSandbox
from storage.models import CodeRequest, Device, Payment, Role, Status
from tests.support.chat import AGENT, CUSTOMER, Chat, chatting
from tests.support.waiting import eventually

SECRET = "whsec-test-5f2a9c0d"
MPESA_PATH = "c2b-Xq7mP2vLk9sT4wZr"
DEVICE = "TEST2503000017"
PHONE = "0712345678"


@dataclass
class Paying:
    chat: Chat
    http: httpx.AsyncClient

    @property
    def services(self) -> Any:
        return self.chat.bot.services

    async def pay(self, body: dict[str, Any] | bytes, *, secret: str | None = SECRET,
                  signature: str | bytes | None = None) -> httpx.Response:
        """POST /payments as a provider would: the raw body signed with ``secret``."""
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers: dict[str, str | bytes] = {"Content-Type": "application/json"}
        if signature is not None:
            headers["X-Paygbot-Signature"] = signature
        elif secret is not None:
            headers["X-Paygbot-Signature"] = sign(secret, raw)
        return await self.http.post("/payments", content=raw, headers=headers)

    async def daraja(self, body: dict[str, Any] | bytes, path: str = MPESA_PATH) -> httpx.Response:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        return await self.http.post(f"/payments/mpesa/{path}", content=raw,
                                    headers={"Content-Type": "application/json"})

    async def payments(self) -> list[Payment]:
        async with self.services.db.read() as session:
            return list((await session.exec(select(Payment).order_by(Payment.id))).all())  # type: ignore[arg-type]

    async def requests(self) -> list[CodeRequest]:
        async with self.services.db.read() as session:
            return list((await session.exec(select(CodeRequest).order_by(CodeRequest.id))).all())  # type: ignore[arg-type]

    async def device(self, ref: str = DEVICE) -> Device:
        device_id = await self.services.engine.resolve_device(ref)
        assert not isinstance(device_id, Refused)
        found = await self.services.engine.device(device_id)
        assert found is not None
        return found  # type: ignore[no-any-return]

    async def price(self, ref: str, amount: str, currency: str | None = "KES") -> None:
        """Set a device's daily price directly (what /price does)."""
        device = await self.device(ref)
        assert device.id is not None
        await devices.set_price(self.services.db, device.id, Decimal(amount), currency)

    async def customer(self, ref: str = DEVICE, phone: str = PHONE) -> None:
        """AGENT registers CUSTOMER for the device and CUSTOMER joins with the link."""
        link = await self.chat.say(AGENT, f"/customer {ref} {phone} Jane Wanjiru")
        token = (link.rendered or "").split("start=")[1].split()[0]
        joined = await self.chat.say(CUSTOMER, f"/start {token}")
        assert "Welcome" in (joined.rendered or "")

    async def settled(self, check: Callable[[], Any], timeout: float = 15) -> Any:
        """Poll ``check`` (sync or async) until it gives something truthy."""
        return await eventually(check, f"settled: {check}", timeout)

    async def issued(self, count: int, timeout: float = 15) -> list[CodeRequest]:
        """Wait until ``count`` requests have their code (issued or delivered)."""
        async def done() -> list[CodeRequest] | None:
            rows = [r for r in await self.requests() if r.status in (Status.ISSUED, Status.DELIVERED)]
            return rows if len(rows) >= count else None

        return await self.settled(done, timeout)  # type: ignore[no-any-return]


@asynccontextmanager
async def paying(sandbox: ErmSandbox, erm_url: str, database_url: str, clock: ManualClock,
                 **settings: Any) -> AsyncIterator[Paying]:
    """The bot with its HTTP side on a free loopback port, the webhook secret and M-Pesa path set
    (pass ``PAYGBOT_WEBHOOK_SECRET=None`` and the like to leave one out), AGENT an agent."""
    port = free_port()
    values: dict[str, Any] = {"PAYGBOT_HTTP_PORT": str(port), "PAYGBOT_WEBHOOK_SECRET": SECRET,
                              "PAYGBOT_MPESA_PATH": MPESA_PATH}
    values.update(settings)
    values = {key: value for key, value in values.items() if value is not None}
    async with chatting(sandbox, erm_url, database_url, clock, **values) as chat:
        await chat.make(AGENT, Role.AGENT)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            yield Paying(chat, client)
