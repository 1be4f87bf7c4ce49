"""How early a device's gap may start: before the ERM's answer, by part of the time the ERM surely spent before
committing.

The ERM allows 6 s between two committed codes of a device. The bot knows when it asked and when the answer came,
not when between them the ERM committed. Counting the gap from the answer is always safe, but two codes are then
6 s plus a whole round trip apart (6.2 s with the ERM at 200 ms), when the ERM's own time before its commit (the way
in, its work) comes again on the next request and need not be waited twice.

So the gap counts from the answer less an *anticipation*: half the ERM's quickest round trip of late (the shortest of
its last 256 exchanged with success, of any kind: what the ERM takes when nothing holds it up), and no more than that
less how much slower the newest 16 were, less 5 ms. Two codes are then at least 6 s apart at the ERM as long as the
next request's time up to its commit, plus this answer's way back, is not under that. Its quickest, not its newest:
an ERM slowed by a burst is quick again 6 s later, and a guess from the burst would send the next code too soon. A
steady ERM at 200 ms gives 6.11 s.

The round trips are the ERM client's (:attr:`bot.erm.backend.ErmBackend.round_trips`): a sign-in before a
generation is the bot's time, not the ERM's. This generation's is never taken for more than the whole call by the
engine's clock (a test's clock that does not move anticipates nothing). Nothing is anticipated until a few round
trips are known, nor for a while after the ERM says "not yet" to a generation: it disagreed with the estimate. A
refused generation costs a retry, never a code.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import datetime, timedelta

KNOWN = 3
"""Round trips known before anything is anticipated: one alone cannot tell how much they vary."""
SHARE = 0.5
"""The most of the quickest round trip anticipated."""
NEWEST = 16
"""The newest round trips, whose slowest holds the anticipation down."""
MARGIN = timedelta(milliseconds=5)
PAUSE = timedelta(minutes=10)
"""How long nothing is anticipated after the ERM refused a generation as too soon."""


class Anticipation:
    """What the ERM's round trips allow, and whether the ERM has lately said "not yet" (one process's)."""

    def __init__(self) -> None:
        self._paused_until: datetime | None = None

    def answered(self, sent: datetime, answered: datetime, exchange: float | None,
                 recent: Sequence[float]) -> timedelta:
        """How long before ``answered`` the device's gap may count from (between zero and this round trip), for a
        generation asked at ``sent`` and answered at ``answered`` (by the engine's clock), whose answering exchange
        took ``exchange`` seconds (by the ERM client's; None when not measured); ``recent``: the ERM's newest
        round trips, seconds, the newest last."""
        if exchange is None or len(recent) < KNOWN:
            return timedelta(0)
        if self._paused_until is not None and answered < self._paused_until:
            return timedelta(0)
        this = min(answered - sent, timedelta(seconds=exchange))
        quickest = min(this, timedelta(seconds=min(recent)))
        slowest = max(this, timedelta(seconds=max(itertools.islice(reversed(recent), NEWEST))))
        return max(timedelta(0), min(quickest * SHARE, quickest - (slowest - quickest)) - MARGIN)

    def refused(self, now: datetime) -> None:
        """The ERM said "not yet" to a generation: count from answers alone for a while."""
        self._paused_until = now + PAUSE
