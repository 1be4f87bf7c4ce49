"""How early a device's gap may start (bot.issuing.anticipation): never before the request, never more than the
ERM's steadiest time allows, nothing for a while after the ERM said "not yet"."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from bot.issuing.anticipation import FIRST_ROUND_TRIPS, MARGIN, PAUSE, WINDOW, Anticipation

NOW = datetime(2026, 11, 22, 9, 30, tzinfo=UTC)
MS = timedelta(milliseconds=1)


def answer(anticipation: Anticipation, round_trip: timedelta, at: datetime = NOW) -> timedelta:
    return anticipation.answered(at - round_trip, at, round_trip.total_seconds())


def test_a_steady_erm_is_trusted_with_half_its_round_trip_then_three_quarters() -> None:
    anticipation = Anticipation()
    assert answer(anticipation, 200 * MS) == 100 * MS - MARGIN  # how much it varies is not known yet
    for _ in range(FIRST_ROUND_TRIPS - 2):
        assert answer(anticipation, 201 * MS) == 100 * MS - MARGIN
    for _ in range(5):
        assert answer(anticipation, 201 * MS) == 150 * MS - MARGIN  # the smallest less a quarter of it: it varies less


def warmed(round_trip: timedelta = 200 * MS) -> Anticipation:
    """Past its first round trips, all ``round_trip``."""
    anticipation = Anticipation()
    for _ in range(FIRST_ROUND_TRIPS):
        answer(anticipation, round_trip)
    return anticipation


def test_an_erm_that_varies_is_trusted_with_less_and_a_slow_answer_counts_until_it_leaves_the_window() -> None:
    anticipation = warmed()
    assert answer(anticipation, 260 * MS) == 200 * MS - 60 * MS - MARGIN
    assert answer(anticipation, 900 * MS) == timedelta(0)  # a slow one (a busy ERM): counted from the answer
    for _ in range(WINDOW - 1):
        early = answer(anticipation, 200 * MS)
    assert early == timedelta(0)  # the slow one is still among the last WINDOW
    assert answer(anticipation, 200 * MS) == 150 * MS - MARGIN


def test_nothing_is_anticipated_of_an_answer_with_no_time_between() -> None:
    """A test's clock that does not move, or an ERM answering within the margin."""
    anticipation = Anticipation()
    assert answer(anticipation, timedelta(0)) == timedelta(0)
    assert answer(Anticipation(), 4 * MS) == timedelta(0)


def test_a_sign_in_before_the_exchange_is_not_the_erms_time_nor_is_an_exchange_a_still_clock_did_not_see() -> None:
    assert Anticipation().answered(NOW - 600 * MS, NOW, 0.2) == 100 * MS - MARGIN  # a sign-in, then the exchange
    assert Anticipation().answered(NOW, NOW, 0.2) == timedelta(0)  # a test's clock
    assert Anticipation().answered(NOW - 200 * MS, NOW, None) == timedelta(0)  # not measured


def test_after_the_erm_says_not_yet_the_gap_counts_from_answers_until_the_pause_ends() -> None:
    anticipation = warmed(400 * MS)
    assert answer(anticipation, 400 * MS) > timedelta(0)
    anticipation.refused(NOW)
    assert answer(anticipation, 200 * MS, NOW + PAUSE - MS) == timedelta(0)
    # measured afresh: the round trips before the refusal are forgotten
    assert answer(anticipation, 200 * MS, NOW + PAUSE) == 100 * MS - MARGIN


@given(st.lists(st.integers(min_value=0, max_value=5000), min_size=1, max_size=40))
def test_the_gap_never_starts_before_the_request_nor_earlier_than_the_steadiest_time_allows(
        round_trips_ms: list[int]) -> None:
    anticipation = Anticipation()
    for n, ms in enumerate(round_trips_ms):
        early = answer(anticipation, ms * MS)
        recent = round_trips_ms[max(0, n + 1 - WINDOW):n + 1]
        assert timedelta(0) <= early <= ms * MS
        assert early <= min(recent) * MS * 3 / 4
        assert early <= (2 * min(recent) - max(recent)) * MS or early == timedelta(0)
