"""What can go wrong when talking to Omnimetic, typed so that callers can act on it.

::

    OmnimeticError
     ├── OmnimeticRefused       a 4xx; ``message`` holds Omnimetic's own words
     │    ├── OmnimeticAuthError  the client id or secret was refused (or a fresh token was)
     │    └── OmnimeticNotFound   a 404: no such utility service account (or not ours)
     └── OmnimeticUnavailable   not reached, no answer in time, a 5xx, or an answer not in the
                                documented shape: try again later

Nothing is written at Omnimetic, so an unknown outcome is simply unavailable. No message or
attribute of these ever holds the secret or a token.
"""

from __future__ import annotations


class OmnimeticError(Exception):
    """Base of every Omnimetic failure."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class OmnimeticRefused(OmnimeticError):
    """Omnimetic understood the request and said no (a 4xx)."""


class OmnimeticAuthError(OmnimeticRefused):
    """The client id and secret were refused."""


class OmnimeticNotFound(OmnimeticRefused):
    """No such utility service account (a 404)."""


class OmnimeticUnavailable(OmnimeticError):
    """Omnimetic could not be reached, answered 5xx, or answered something we cannot read."""
