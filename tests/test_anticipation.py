"""How early a device's gap may start (bot.issuing.anticipation): never before the request, never more than half the
ERM's quickest round trip of late nor than its steadiness allows, nothing on too few round trips, nothing for a while
after the ERM said "not yet"."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from bot.issuing.anticipation import KNOWN, MARGIN, NEWEST, PAUSE, Anticipation

NOW = datetime(2026, 11, 22, 9, 30, tzinfo=UTC)
MS = timedelta(milliseconds=1)
STEADY = [0.2] * KNOWN


def answer(anticipation: Anticipation, round_trip: timedelta, recent: list[float], at: datetime = NOW) -> timedelta:
    return anticipation.answered(at - round_trip, at, round_trip.total_seconds(), recent)


def test_a_steady_erm_is_trusted_with_half_its_shortest_round_trip() -> None:
    assert answer(Anticipation(), 200 * MS, STEADY) == 100 * MS - MARGIN
    assert answer(Anticipation(), 200 * MS, [0.2, 0.21, 0.205, 0.3]) == 100 * MS - MARGIN  # it varies less than that
    assert answer(Anticipation(), 250 * MS, STEADY) == 100 * MS - MARGIN  # the shortest: this one's or another's


def test_an_erm_that_varies_is_trusted_with_less() -> None:
    assert answer(Anticipation(), 200 * MS, [0.2, 0.2, 0.2, 0.35]) == 50 * MS - MARGIN  # 200 less 150
    assert answer(Anticipation(), 200 * MS, [0.2, 0.2, 0.2, 0.9]) == timedelta(0)  # a slow one among them
    assert answer(Anticipation(), 200 * MS, [0.2, 0.2, 0.2, 0.01]) == timedelta(0)  # a quick one: its half is 5 ms


def test_the_erms_quickest_of_late_is_its_pace_not_its_newest() -> None:
    """An ERM slower of late may be quick again when the next code goes: half its quickest, and nothing in a burst."""
    assert answer(Anticipation(), 120 * MS, [0.1] * 50 + [0.12] * NEWEST) == 50 * MS - MARGIN  # not 60
    assert answer(Anticipation(), 400 * MS, [0.1] * 50 + [0.4] * NEWEST) == timedelta(0)
    slow_long_ago = [0.9] + [0.2] * NEWEST  # a slow one no longer among the newest holds nothing down
    assert answer(Anticipation(), 200 * MS, slow_long_ago) == 100 * MS - MARGIN


def test_nothing_is_anticipated_on_too_few_round_trips_nor_of_an_answer_with_no_time_between() -> None:
    assert answer(Anticipation(), 200 * MS, [0.2] * (KNOWN - 1)) == timedelta(0)
    assert answer(Anticipation(), timedelta(0), STEADY) == timedelta(0)  # a test's clock that does not move
    assert Anticipation().answered(NOW, NOW, 0.2, STEADY) == timedelta(0)
    assert Anticipation().answered(NOW - 200 * MS, NOW, None, STEADY) == timedelta(0)  # not measured
    assert answer(Anticipation(), 8 * MS, [0.008] * KNOWN) == timedelta(0)  # half of it within the margin


def test_a_sign_in_before_the_exchange_is_not_the_erms_time() -> None:
    assert Anticipation().answered(NOW - 400 * MS, NOW, 0.2, STEADY) == 100 * MS - MARGIN


def test_after_the_erm_says_not_yet_the_gap_counts_from_answers_until_the_pause_ends() -> None:
    anticipation = Anticipation()
    assert answer(anticipation, 200 * MS, STEADY) > timedelta(0)
    anticipation.refused(NOW)
    assert answer(anticipation, 200 * MS, STEADY, NOW + PAUSE - MS) == timedelta(0)
    assert answer(anticipation, 200 * MS, STEADY, NOW + PAUSE) == 100 * MS - MARGIN


@given(st.integers(min_value=0, max_value=5000),
       st.lists(st.integers(min_value=0, max_value=5000), min_size=KNOWN, max_size=16))
def test_the_gap_never_starts_before_the_request_nor_earlier_than_the_steadiest_time_allows(
        this_ms: int, recent_ms: list[int]) -> None:
    early = answer(Anticipation(), this_ms * MS, [ms / 1000 for ms in recent_ms])
    shortest, longest = min(this_ms, *recent_ms), max(this_ms, *recent_ms)
    assert timedelta(0) <= early <= this_ms * MS
    assert early <= shortest * MS / 2
    assert early <= (2 * shortest - longest) * MS or early == timedelta(0)
