"""Mobile-money confirmations read from pasted text: M-Pesa's variants, and ordinary text left alone."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from bot.payments.sms import parse

NAIROBI = ZoneInfo("Africa/Nairobi")


@pytest.mark.parametrize(("text", "reference", "amount", "phone", "account", "party"), [
    ("QK71ABC123 Confirmed. Ksh250.00 received from JANE W 254700000001 on 22/11/26 at 10:15 AM New M-PESA balance "
     "is Ksh1,250.00. Transaction cost, Ksh0.00.", "QK71ABC123", "250.00", "254700000001", None, "JANE W"),
    ("QK71ABC123 Confirmed.You have received Ksh1,250.00 from JANE WANJIRU 0712345678 on 22/11/26 at 10:15 AM  New "
     "M-PESA balance is Ksh3,000.00.", "QK71ABC123", "1250.00", "0712345678", None, "JANE WANJIRU"),
    ("QK71ABC124 Confirmed. Ksh250.00 sent to OMNIVOLTAIC LTD for account TEST2503000017 on 22/11/26 at 10:15 AM "
     "New M-PESA balance is Ksh50.00. Transaction cost, Ksh23.00.", "QK71ABC124", "250.00", None, "TEST2503000017",
     "OMNIVOLTAIC LTD"),
    ("qk71abc126 confirmed. KES 3,000.50 received from JOHN 0712 345 678 on 22/11/2026 at 10:15 am. Account Number "
     "SBX00000000001. New Utility balance is Ksh9.", "QK71ABC126", "3000.50", "0712345678", "SBX00000000001", "JOHN"),
    ("Fwd: QK71ABC127 Confirmed. Kshs 250 received from JANE +254 712 345 678 on 22/11/26 at 10:15 AM.",
     "QK71ABC127", "250", "254712345678", None, "JANE"),
    ("QK71ABC128 Confirmed.\nKsh250.00 received from\nJANE W 254700000001\non 22/11/26 at 10:15 AM\nAcc. D-42",
     "QK71ABC128", "250.00", "254700000001", "D-42", "JANE W"),
    ("QK71ABC129 Confirmed. Ksh250.00 received from JANE W 2547******001 on 22/11/26 at 10:15 AM.",
     "QK71ABC129", "250.00", None, None, "JANE W 2547******001"),
])
def test_mpesa_variants(text: str, reference: str, amount: str, phone: str | None, account: str | None,
                        party: str) -> None:
    read = parse(text, NAIROBI)
    assert read is not None
    assert (read.reference, read.amount, read.currency) == (reference, Decimal(amount), "KES")
    assert (read.phone, read.account, read.party) == (phone, account, party)
    assert read.target == (account or phone)
    assert read.paid_at == datetime(2026, 11, 22, 7, 15, tzinfo=UTC)


def test_times_are_read_in_the_zone_and_pm_counts() -> None:
    read = parse("QK71ABC123 Confirmed. Ksh5 received from A 0712345678 on 1/2/26 at 12:05 AM", ZoneInfo("UTC"))
    assert read is not None and read.paid_at == datetime(2026, 2, 1, 0, 5, tzinfo=UTC)
    read = parse("QK71ABC123 Confirmed. Ksh5 received from A 0712345678 on 1/2/26 at 3:05 PM", ZoneInfo("UTC"))
    assert read is not None and read.paid_at == datetime(2026, 2, 1, 15, 5, tzinfo=UTC)
    read = parse("QK71ABC123 Confirmed. Ksh5 received from A 0712345678 on 31/2/26 at 3:05 PM", ZoneInfo("UTC"))
    assert read is not None and read.paid_at is None  # no such day: the payment still reads


@pytest.mark.parametrize("text", [
    "hello", "", "QK71ABC123", "QK71ABC123 Confirmed.", "QK71ABC123 confirmed the meeting at 10",
    "Confirmed. Ksh250.00 received from JANE W 254700000001",
    "OKAYTHANKS Confirmed. Ksh250 received from JANE",  # no digit: not a transaction code
    "1234567890 Confirmed. Ksh250 received from JANE",  # no letter
    "QK71ABC123 Confirmed. Ksh0.00 received from JANE W 254700000001",
    "QK71ABC123 Confirmed. USD 250 received from JANE",
    "QK71ABC123 Confirmed. Ksh250.00 is what I need, please send",
    "Please send Ksh250.00 to 0712345678 QK71ABC123",
    "QK71ABC123 Confirmed. Ksh99999999999 received from JANE",
    "x" * 3000,
])
def test_ordinary_text_is_not_a_confirmation(text: str) -> None:
    assert parse(text, NAIROBI) is None
