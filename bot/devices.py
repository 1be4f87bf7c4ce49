"""What managers set on devices: the daily price that turns money into days."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from storage import ledger
from storage.db import Database

MAX_PRICE = Decimal("1000000")
_AMOUNT = re.compile(r"^\d{1,9}([.,]\d{1,2})?$")
_CURRENCY = re.compile(r"^[A-Za-z]{3}$")


def parse_amount(text: str) -> Decimal | None:
    """A positive amount of money as people type it (``250``, ``250.50``, ``250,5``); None if not one."""
    text = text.strip()
    if not _AMOUNT.match(text):
        return None
    try:
        amount = Decimal(text.replace(",", "."))
    except InvalidOperation:
        return None
    return amount if Decimal(0) < amount <= MAX_PRICE else None


def parse_currency(text: str) -> str | None:
    return text.upper() if _CURRENCY.match(text.strip()) else None


async def set_price(db: Database, device_id: int, price: Decimal, currency: str | None) -> None:
    """Set the device's daily price (and currency, when given)."""
    async with db.write() as session:
        device = await ledger.lock_device(session=session, device_id=device_id)
        device.daily_price = price
        if currency:
            device.currency = currency
        session.add(device)
