"""Amounts, dates and counts as each language writes them, and never a misstated amount."""

from __future__ import annotations

import gettext
import re
from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot import i18n, texts

NAIROBI = ZoneInfo("Africa/Nairobi")


def read_back(shown: str, language: str) -> Decimal:
    """The number in a formatted amount, whatever the language's separators."""
    number = re.sub(r"[^\d.,]", "", shown)
    if language == "fr":
        number = number.replace(",", ".")
    else:
        number = number.replace(",", "")
    return Decimal(number)


@given(amount=st.decimals(min_value=0, max_value=10**9, places=4), currency=st.sampled_from(["KES", "XOF", "USD", None]),
       language=st.sampled_from(i18n.LANGUAGES))
def test_an_amount_is_never_rounded_away(amount: Decimal, currency: str | None, language: str) -> None:
    assert read_back(texts.for_language(language).money(amount, currency), language) == amount


@pytest.mark.parametrize(("language", "amount", "moment", "days", "one_day"), [
    ("en", "KES 1,250.50", "23 Dec 2026 03:00", "1,095 days", "1 day"),
    ("fr", "1\u202f250,50\xa0KES", "23 déc. 2026 03:00", "1\u202f095 jours", "1 jour"),
    ("sw", "Ksh\xa01,250.50", "23 Des 2026 03:00", "siku 1,095", "siku 1"),
])
def test_amounts_dates_and_counts_per_language(language: str, amount: str, moment: str, days: str,
                                               one_day: str) -> None:
    t = texts.for_language(language)
    assert t.money(Decimal("1250.5"), "KES") == amount
    assert t.moment(datetime(2026, 12, 23, 0, 0, tzinfo=UTC), NAIROBI) == moment  # in PAYGBOT_TIMEZONE
    assert (t.days(1095), t.days(1)) == (days, one_day)


def test_a_broken_translation_falls_back_to_english_rather_than_failing(caplog: pytest.LogCaptureFixture) -> None:
    class Broken(gettext.NullTranslations):
        def gettext(self, message: str) -> str:
            return "Mauvais {appareil}" if "{device}" in message else message

    t = texts.Texts("fr")
    t._catalogue = Broken()
    assert t.ask_days("TEST2503000017") == "How many days for <b>TEST2503000017</b>?"
    assert "do not match the English" in caplog.text
