"""Who opened the Mini App, proven: Telegram's launch data (``initData``) checked with the bot token, as
Telegram documents it ("Validating data received via the Mini App", core.telegram.org/bots/webapps).

The data-check-string is every received field but ``hash``, as ``key=value``, sorted by key, joined by
``\\n``; the secret key is HMAC-SHA-256 of the bot token keyed with ``"WebAppData"``; the hash is the hex
HMAC-SHA-256 of the data-check-string under that key. Launch data older than :data:`MAX_AGE` is refused:
whoever copied it from a page once cannot come back with it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from urllib.parse import parse_qsl

MAX_AGE = timedelta(hours=1)
MAX_LENGTH = 8192
"""Telegram's launch data is well under this; anything longer is not launch data."""


class Refusal(StrEnum):
    MALFORMED = "malformed"
    FORGED = "forged"
    STALE = "stale"


@dataclass(frozen=True)
class Launch:
    """The Telegram user the launch data names, as Telegram signed it."""

    user_id: int
    first_name: str
    language_code: str | None
    auth_date: datetime


def _hash(fields: dict[str, str], bot_token: str) -> str:
    check = "\n".join(f"{key}={fields[key]}" for key in sorted(fields))
    secret = hmac.new(b"WebAppData", bot_token.encode(), hashlib.sha256).digest()
    return hmac.new(secret, check.encode(), hashlib.sha256).hexdigest()


def check(init_data: str, bot_token: str, now: datetime) -> Launch | Refusal:
    """The launch's user if Telegram signed ``init_data`` for this bot within the last hour; else why not."""
    if not init_data or len(init_data) > MAX_LENGTH:
        return Refusal.MALFORMED
    try:
        pairs = parse_qsl(init_data, keep_blank_values=True, strict_parsing=True)
    except ValueError:
        return Refusal.MALFORMED
    fields = dict(pairs)
    if len(fields) != len(pairs):
        return Refusal.MALFORMED  # a field twice: which one was signed?
    given = fields.pop("hash", "").lower()
    if not re.fullmatch(r"[0-9a-f]{64}", given) or not _signed(fields, given, bot_token):
        return Refusal.FORGED
    try:
        auth_date = datetime.fromtimestamp(int(fields["auth_date"]), UTC)
        user = json.loads(fields["user"])
        user_id = int(user["id"])
    except (KeyError, ValueError, TypeError, OverflowError, OSError):
        return Refusal.MALFORMED
    if not now - MAX_AGE <= auth_date <= now + timedelta(minutes=5):  # a few minutes of clock drift allowed
        return Refusal.STALE
    language = user.get("language_code")
    return Launch(user_id, str(user.get("first_name") or ""), language if isinstance(language, str) else None,
                  auth_date)


def language_of(init_data: str) -> str | None:
    """The language the launch data names, signed or not: only to choose the words of a refusal."""
    try:
        user = json.loads(dict(parse_qsl(init_data[:MAX_LENGTH])).get("user", "{}"))
        language = user.get("language_code") if isinstance(user, dict) else None
    except ValueError:
        return None
    return language if isinstance(language, str) else None


def _signed(fields: dict[str, str], given: str, bot_token: str) -> bool:
    """The hash over every field but ``hash``; launch data that also carries Telegram's third-party Ed25519
    ``signature`` is accepted with the hash computed with or without it (clients have sent both)."""
    if hmac.compare_digest(_hash(fields, bot_token), given):
        return True
    if "signature" in fields:
        rest = {key: value for key, value in fields.items() if key != "signature"}
        return hmac.compare_digest(_hash(rest, bot_token), given)
    return False
