"""The device page's credit timeline as inline SVG: drawn in the page's own colours (Telegram's theme, by
CSS), sharp at any width, and with no picture to render on the server."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

WIDTH, HEIGHT, PAD = 600, 160, 8


@dataclass(frozen=True)
class Timeline:
    points: str
    """The SVG polyline: at each code, the days of credit it left."""
    most: int
    """The most days of credit at any code (the top of the chart)."""
    first: datetime
    last: datetime


def credit_timeline(codes: list[tuple[datetime, datetime]], now: datetime) -> Timeline | None:
    """``codes`` as (issued at, credit until), oldest first: the credit left after each, falling to now."""
    if not codes:
        return None
    steps: list[tuple[datetime, float]] = []
    for issued, until in codes:
        if steps:  # the credit ran down between two codes
            before = steps[-1]
            left = max(0.0, before[1] - (issued - before[0]).total_seconds() / 86400)
            steps.append((issued, left))
        steps.append((issued, max(0.0, (until - issued).total_seconds() / 86400)))
    last_issued, last_left = steps[-1]
    end = max(now, last_issued)
    steps.append((end, max(0.0, last_left - (end - last_issued).total_seconds() / 86400)))
    first = steps[0][0]
    span = max((end - first).total_seconds(), 1.0)
    most = max(1.0, max(left for _, left in steps))
    points = " ".join(
        f"{PAD + (at - first).total_seconds() / span * (WIDTH - 2 * PAD):.1f},"
        f"{HEIGHT - PAD - left / most * (HEIGHT - 2 * PAD):.1f}" for at, left in steps)
    return Timeline(points, round(most), first, end)
