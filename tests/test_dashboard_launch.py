"""The dashboard's proof of who opened it: launch data checked as Telegram documents it (signed here by the
Telegram stand-in, :mod:`bot.standins.telegram.launch`, written apart from the check), and the sessions that
follow."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, urlencode

from hypothesis import given
from hypothesis import strategies as st

from bot.clock import ManualClock
from bot.standins.telegram import TelegramUser
from bot.standins.telegram.launch import launch_data
from dashboard import launch
from dashboard.sessions import Sessions

TOKEN = "123456:TEST-token-for-the-stand-in"
NOW = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
MARY = TelegramUser(1001, "Mary", "Otieno", language_code="sw")


def fields(data: str) -> dict[str, str]:
    return dict(parse_qsl(data, keep_blank_values=True))


def test_launch_data_signed_by_telegram_names_its_user() -> None:
    checked = launch.check(launch_data(MARY, TOKEN, NOW), TOKEN, NOW)
    assert checked == launch.Launch(1001, "Mary", "sw", NOW)


def test_any_field_changed_or_another_bots_signature_is_forged() -> None:
    data = launch_data(MARY, TOKEN, NOW)
    assert launch.check(data, "654321:another-bot", NOW) is launch.Refusal.FORGED
    changed = {**fields(data), "user": '{"id":2002,"first_name":"Alex"}'}
    assert launch.check(urlencode(changed), TOKEN, NOW) is launch.Refusal.FORGED
    later = {**fields(data), "auth_date": str(int((NOW + timedelta(minutes=1)).timestamp()))}
    assert launch.check(urlencode(later), TOKEN, NOW) is launch.Refusal.FORGED
    unsigned = {key: value for key, value in fields(data).items() if key != "hash"}
    assert launch.check(urlencode(unsigned), TOKEN, NOW) is launch.Refusal.FORGED
    assert launch.check(urlencode({**fields(data), "hash": "é" * 64}), TOKEN, NOW) is launch.Refusal.FORGED


def test_launch_data_older_than_an_hour_is_stale() -> None:
    assert isinstance(launch.check(launch_data(MARY, TOKEN, NOW - timedelta(minutes=59)), TOKEN, NOW), launch.Launch)
    assert launch.check(launch_data(MARY, TOKEN, NOW - timedelta(hours=1, seconds=1)), TOKEN, NOW) \
        is launch.Refusal.STALE
    assert launch.check(launch_data(MARY, TOKEN, NOW + timedelta(hours=1)), TOKEN, NOW) is launch.Refusal.STALE


def test_a_third_party_signature_field_is_part_of_what_was_signed() -> None:
    data = launch_data(MARY, TOKEN, NOW, signature="c2lnbmF0dXJl")
    assert isinstance(launch.check(data, TOKEN, NOW), launch.Launch)


def test_malformed_launch_data_is_refused() -> None:
    twice = launch_data(MARY, TOKEN, NOW) + "&user=%7B%7D"
    for data in ("", "x" * 9000, twice, "%%%"):
        assert launch.check(data, TOKEN, NOW) in (launch.Refusal.MALFORMED, launch.Refusal.FORGED), data
    no_user = launch_data(MARY, TOKEN, NOW)
    signed_without_user = {key: value for key, value in fields(no_user).items() if key not in ("user", "hash")}
    assert launch.check(urlencode(signed_without_user), TOKEN, NOW) is launch.Refusal.FORGED


def test_a_refusal_speaks_the_language_the_launch_data_names() -> None:
    assert launch.language_of(launch_data(MARY, TOKEN, NOW)) == "sw"
    for data in ("", "user=%7Bnot%20json", "user=%5B1%5D", "%%%"):
        assert launch.language_of(data) is None, data


@given(st.text(max_size=300))
def test_no_text_passes_for_launch_data(text: str) -> None:
    assert isinstance(launch.check(text, TOKEN, NOW), launch.Refusal)


def test_a_session_lives_thirty_minutes_and_only_as_signed() -> None:
    clock = ManualClock(NOW)
    sessions = Sessions(TOKEN, clock)
    token, session = sessions.issue(1001, "fr")
    assert sessions.read(token) == session and session.user_id == 1001 and session.language_code == "fr"
    assert Sessions("654321:another-bot", clock).read(token) is None
    assert sessions.read(token[:-2] + ("AA" if not token.endswith("AA") else "BB")) is None
    assert sessions.read("") is None and sessions.read("not.a.token") is None
    clock.advance(minutes=30)
    assert sessions.read(token) == session
    clock.advance(seconds=1)
    assert sessions.read(token) is None
    other_token, other = sessions.issue(1001, None)
    assert other.csrf != session.csrf and other_token != token


def test_a_download_ticket_is_for_one_path_and_one_minute() -> None:
    clock = ManualClock(NOW)
    sessions = Sessions(TOKEN, clock)
    ticket = sessions.ticket(1001, "/app/export/plans")
    assert sessions.ticket_holder(ticket, "/app/export/plans") == 1001
    assert sessions.ticket_holder(ticket, "/app/export/portfolio") is None
    assert Sessions("654321:another-bot", clock).ticket_holder(ticket, "/app/export/plans") is None
    token, _ = sessions.issue(1001, None)
    assert sessions.ticket_holder(token, "/app/export/plans") is None  # a session is no ticket
    assert sessions.read(ticket) is None  # and a ticket no session
    clock.advance(seconds=61)
    assert sessions.ticket_holder(ticket, "/app/export/plans") is None
