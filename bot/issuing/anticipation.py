"""How early a device's gap may start: before the ERM's answer, by the time the ERM surely spent before committing.

The ERM allows 6 s between two committed codes of a device. The bot knows when it asked and when the answer came,
not when between them the ERM committed. Counting the gap from the answer is always safe, but two codes are then
6 s plus a whole round trip apart (6.2 s with the ERM at 200 ms), when the ERM's own time before its commit (the way
in, its work) comes again on the next request and need not be waited twice.

So the gap counts from the answer less an *anticipation*: the smallest of the ERM's recent generation round trips,
less how much they vary (never trusted to vary by less than a quarter of the smallest; half, until four are known),
less 5 ms. Two codes are then at least 6 s apart at the ERM as long as the next request's time up to its commit,
plus this answer's way back, is not smaller than that; a steady ERM gives about 6.06 s at 200 ms (6.11 s for the
first codes after a start).

A round trip is the exchange that answered, as the ERM client measured it (a sign-in before it is the bot's time,
not the ERM's), and never more than the whole call by the engine's clock (a test's clock that does not move
anticipates nothing). Nothing is anticipated for a while after the ERM says "not yet" to a generation: it disagreed
with the estimate. A refused generation costs a retry, never a code.
"""

from __future__ import annotations

from collections import deque
from datetime import datetime, timedelta

WINDOW = 16
"""Generation round trips remembered (the newest): one slow answer among them holds the anticipation down."""
TRUSTED_SPREAD = 0.25
"""The least the ERM's round trips are assumed to vary, as a share of the smallest..."""
FIRST_SPREAD, FIRST_ROUND_TRIPS = 0.5, 4
"""...and while fewer than this many are known (how much they vary is hardly measured yet)."""
MARGIN = timedelta(milliseconds=5)
PAUSE = timedelta(minutes=10)
"""How long nothing is anticipated after the ERM refused a generation as too soon."""


class Anticipation:
    """The ERM's recent generation round trips (one process's, by the engine's clock), and what they allow."""

    def __init__(self) -> None:
        self._round_trips: deque[timedelta] = deque(maxlen=WINDOW)
        self._paused_until: datetime | None = None

    def answered(self, sent: datetime, answered: datetime, exchange: float | None) -> timedelta:
        """Remember a generation asked at ``sent`` and answered at ``answered`` (by the engine's clock), whose
        answering exchange took ``exchange`` seconds (by the ERM client's: without the sign-in or the refused token
        before it; None when not measured); how long before ``answered`` its device's gap may count from (between
        zero and this round trip)."""
        if exchange is None:
            return timedelta(0)
        self._round_trips.append(min(answered - sent, timedelta(seconds=exchange)))
        if self._paused_until is not None and answered < self._paused_until:
            return timedelta(0)
        shortest, longest = min(self._round_trips), max(self._round_trips)
        least = TRUSTED_SPREAD if len(self._round_trips) >= FIRST_ROUND_TRIPS else FIRST_SPREAD
        spread = max(longest - shortest, shortest * least)
        return max(timedelta(0), shortest - spread - MARGIN)

    def refused(self, now: datetime) -> None:
        """The ERM said "not yet" to a generation: count from answers alone for a while, and measure afresh."""
        self._round_trips.clear()
        self._paused_until = now + PAUSE
