"""The limit rules as pure functions: local days (with DST), credit left, headroom, credit after a code."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from bot.issuing import limits
from storage.models import CodeKind

NOW = datetime(2026, 11, 22, 9, 30, tzinfo=UTC)


def test_local_day_in_nairobi() -> None:
    start, end = limits.local_day(datetime(2026, 11, 22, 22, 0, tzinfo=UTC), ZoneInfo("Africa/Nairobi"))
    # 22:00 UTC is already 01:00 on the 23rd in Nairobi (UTC+3)
    assert start == datetime(2026, 11, 22, 21, 0, tzinfo=UTC) and end == datetime(2026, 11, 23, 21, 0, tzinfo=UTC)


def test_local_day_across_a_dst_change() -> None:
    start, end = limits.local_day(datetime(2026, 3, 29, 12, 0, tzinfo=UTC), ZoneInfo("Europe/London"))
    assert end - start == timedelta(hours=23)  # the spring-forward day is 23 hours long
    assert start == datetime(2026, 3, 29, 0, 0, tzinfo=UTC) and end == datetime(2026, 3, 29, 23, 0, tzinfo=UTC)


@given(st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2035, 1, 1), timezones=st.just(UTC)),
       st.sampled_from(["UTC", "Africa/Nairobi", "Africa/Lagos", "Europe/London", "America/New_York", "Asia/Kathmandu"]))
def test_local_day_contains_now(now: datetime, zone: str) -> None:
    start, end = limits.local_day(now, ZoneInfo(zone))
    assert start <= now < end
    assert timedelta(hours=23) <= end - start <= timedelta(hours=25)


def test_days_left_counts_a_started_day_in_full() -> None:
    assert limits.days_left(None, NOW) == 0
    assert limits.days_left(NOW - timedelta(days=3), NOW) == 0
    assert limits.days_left(NOW + timedelta(hours=1), NOW) == 1
    assert limits.days_left(NOW + timedelta(days=30), NOW) == 30
    assert limits.days_left(NOW + timedelta(days=30, seconds=1), NOW) == 31


def test_headroom_counts_queued_days() -> None:
    assert limits.headroom(None, 0, NOW, 1095) == 1095
    assert limits.headroom(NOW + timedelta(days=1000), 0, NOW, 1095) == 95
    assert limits.headroom(NOW + timedelta(days=1000), 90, NOW, 1095) == 5
    assert limits.headroom(NOW + timedelta(days=1000), 200, NOW, 1095) == 0


def test_pacing() -> None:
    gap = timedelta(seconds=6)
    assert limits.pacing_ready_at(None, gap, NOW) == NOW
    assert limits.pacing_ready_at(NOW - timedelta(seconds=2), gap, NOW) == NOW + timedelta(seconds=4)
    assert limits.pacing_ready_at(NOW - timedelta(seconds=60), gap, NOW) == NOW


def test_credit_after_each_kind() -> None:
    later = NOW + timedelta(days=10)
    assert limits.credit_after(CodeKind.DAYS, 5, None, NOW) == NOW + timedelta(days=5)
    assert limits.credit_after(CodeKind.DAYS, 5, NOW - timedelta(days=2), NOW) == NOW + timedelta(days=5)
    assert limits.credit_after(CodeKind.DAYS, 5, later, NOW) == later + timedelta(days=5)
    assert limits.credit_after(CodeKind.RESET, None, later, NOW) == NOW
    assert limits.credit_after(CodeKind.FREE, None, later, NOW) is None


@given(st.integers(min_value=0, max_value=1095), st.integers(min_value=0, max_value=2000),
       st.integers(min_value=0, max_value=3 * 24 * 3600))
def test_what_fits_never_stacks_past_the_limit(left_days: int, pending: int, seconds: int) -> None:
    credit = NOW + timedelta(days=left_days, seconds=seconds)
    fits = limits.headroom(credit, pending, NOW, 1095)
    after = limits.credit_after(CodeKind.DAYS, fits, credit, NOW) if fits else credit
    assert after is not None
    assert (after - NOW) <= timedelta(days=1095 - pending) or fits == 0


def test_valid_days() -> None:
    assert [limits.valid_days(value) for value in (1, 1095, 0, 1096, -5, True)] == [True, True, False, False, False, False]
