"""What managers set on devices: the daily price that turns money into days."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from storage import ledger
from storage.db import Database

MAX_PRICE = Decimal("1000000")
_AMOUNT = re.compile(r"[0-9]{1,9}(?:[.,][0-9]{1,2})?")
"""ASCII digits only: ``\\d`` takes other scripts' digits (``٥٠``, ``５０``), which Decimal reads as money."""
_CURRENCY = re.compile(r"^[A-Za-z]{3}$")


def parse_amount(text: str) -> Decimal | None:
    """A positive amount of money as people type it (``250``, ``250.50``, ``250,5``); None if not one."""
    text = text.strip()
    if not _AMOUNT.fullmatch(text):
        return None
    try:
        amount = Decimal(text.replace(",", "."))
    except InvalidOperation:
        return None
    return amount if Decimal(0) < amount <= MAX_PRICE else None


def parse_currency(text: str) -> str | None:
    return text.upper() if _CURRENCY.match(text.strip()) else None


async def set_price(db: Database, device_id: int, price: Decimal, currency: str | None, *,
                    default_currency: str | None = None) -> None:
    """Set the device's daily price and its currency: the one given, else the device's own, else
    ``default_currency`` (PAYGBOT_CURRENCY). A price always has a currency, so that money in another
    currency is never taken at face value."""
    async with db.write() as session:
        device = await ledger.lock_device(session=session, device_id=device_id)
        device.daily_price = price
        device.currency = currency or device.currency or default_currency
        session.add(device)
