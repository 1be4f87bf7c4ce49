"""Finding a device by part of one of its ids or of its description (``/find``): what a field agent can
read off a device — the last digits printed on it — rather than the 24 characters of its ERM id.

Searched in the ledger's devices (those the device sync learned from the ERM, over either of its
interfaces, and those people typed), never at the ERM.
"""

from __future__ import annotations

from storage import ledger
from storage.db import Database

MIN_LENGTH = 3
"""Fewer characters would match most devices: the search is not made."""
LIMIT = 10
"""At most this many devices are shown; more digits narrow the search."""


def search_text(words: list[str]) -> str:
    """What was typed after the command, spaces inside kept single, around it trimmed."""
    return " ".join(words).strip()


async def find_devices(db: Database, text: str, limit: int = LIMIT) -> ledger.DeviceSearch:
    """The first ``limit`` devices whose ids or description hold ``text`` (see
    :func:`storage.ledger.search_devices`), and how many there are."""
    async with db.read() as session:
        return await ledger.search_devices(session=session, text=text, limit=limit)
