"""What can go wrong when talking to the ERM, typed so that callers can act on it.

::

    ErmError
     ├── ErmRefused           the ERM answered 4xx; ``message`` holds its own words
     │    ├── ErmAuthError    the credentials were refused (login)
     │    └── ErmRateLimited  a 429: the ERM's own pacing or daily limit; try again later
     ├── ErmUnavailable       nothing was sent, or a 5xx came back: safe to try again later
     └── ErmOutcomeUnknown    the request was sent but no usable answer came: a code may
          │                   have been committed, so a generation must not simply be repeated
          └── ErmInvalidResponse  an answer came, but not in the documented shape

No message or attribute of these ever holds a password or an access token.
"""

from __future__ import annotations


class ErmError(Exception):
    """Base of every ERM failure."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class ErmRefused(ErmError):
    """The ERM understood the request and said no (a 4xx); ``message`` is the ERM's reason."""


class ErmAuthError(ErmRefused):
    """The ERM refused the username or password."""


class ErmRateLimited(ErmRefused):
    """The ERM said "too soon" or "too many today" (429): nothing was committed."""


class ErmUnavailable(ErmError):
    """The ERM could not be reached, or answered 5xx: nothing was done, try again later."""


class ErmOutcomeUnknown(ErmError):
    """The request reached the ERM but no answer came in time: look in the code history."""


class ErmInvalidResponse(ErmOutcomeUnknown):
    """The ERM answered 2xx with a body that is not what its documents describe."""
