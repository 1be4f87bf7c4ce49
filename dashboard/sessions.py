"""The dashboard's short-lived sessions: after the launch data is checked once, every request carries a
signed token (``Authorization: Bearer …``) naming the Telegram user, and actions also a CSRF token bound to
that session (``X-CSRF-Token``).

Tokens, not cookies: Telegram's web client shows a Mini App in a third-party frame, where browsers drop
cookies; and a header is never sent by another site's form. Signed (itsdangerous) with a key derived from
the bot token, its age read on the bot's clock (tests move it), so every replica of the bot accepts the others' sessions and none is stored.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from itsdangerous import BadData, URLSafeTimedSerializer

from bot.clock import Clock

LIFETIME = timedelta(minutes=30)
"""Past this the page asks again with its launch data (good for an hour), then the manager reopens it."""
TICKET_LIFETIME = timedelta(seconds=60)
"""A download ticket is for the file asked for now (Telegram's app fetches it at once)."""


@dataclass(frozen=True)
class Session:
    user_id: int
    csrf: str
    language_code: str | None


class Sessions:
    def __init__(self, bot_token: str, clock: Clock, lifetime: timedelta = LIFETIME) -> None:
        key = hmac.new(bot_token.encode(), b"paygbot dashboard sessions", hashlib.sha256).digest()
        self._signer = URLSafeTimedSerializer(key, salt="paygbot.dashboard")
        self._tickets = URLSafeTimedSerializer(key, salt="paygbot.dashboard.download")
        self.clock, self.lifetime = clock, lifetime

    def issue(self, user_id: int, language_code: str | None) -> tuple[str, Session]:
        """A new session for a launch just checked: its token and what it holds."""
        session = Session(user_id, secrets.token_urlsafe(24), language_code)
        token = self._signer.dumps({"u": user_id, "c": session.csrf, "l": language_code,
                                    "t": int(self.clock.now().timestamp())})
        return token, session

    def read(self, token: str) -> Session | None:
        """The session a token carries, if this bot signed it and it is not older than its lifetime."""
        try:
            data = self._signer.loads(token)
            issued = int(data["t"])
            session = Session(int(data["u"]), str(data["c"]), data["l"] if isinstance(data["l"], str) else None)
        except (BadData, KeyError, TypeError, ValueError):
            return None
        age = self.clock.now().timestamp() - issued
        return session if 0 <= age <= self.lifetime.total_seconds() else None

    def ticket(self, user_id: int, path: str) -> str:
        """A download ticket: ``path`` (with its query) for ``user_id``, for a minute. Telegram's own download
        (``downloadFile``) fetches a plain URL, with no header to carry the session."""
        return self._tickets.dumps({"u": user_id, "p": path, "t": int(self.clock.now().timestamp())})

    def ticket_holder(self, ticket: str, path: str) -> int | None:
        """Whose ticket it is, if this bot signed it for ``path`` less than a minute ago."""
        try:
            data = self._tickets.loads(ticket)
            user_id, signed_path, issued = int(data["u"]), str(data["p"]), int(data["t"])
        except (BadData, KeyError, TypeError, ValueError):
            return None
        age = self.clock.now().timestamp() - issued
        fresh = 0 <= age <= TICKET_LIFETIME.total_seconds()
        return user_id if fresh and hmac.compare_digest(signed_path.encode(), path.encode()) else None
