"""Phone numbers as full international numbers (E.164, ``+254712345678``), whatever way they come.

A customer is found by their whole number: two numbers that merely end alike (+254 700 000 001 and
+255 700 000 001) are two people, so one must never be read as the other.
"""

from __future__ import annotations

import re

import phonenumbers

_TYPED = re.compile(r"^\+?[0-9 ().\-/]{6,30}$")


def e164(text: str, region: str) -> str | None:
    """``text`` as E.164, or None when it is not a valid number.

    Accepts what people type and what Telegram and payment providers send: ``+254 712 345 678``,
    ``254712345678`` (Telegram's contacts and M-Pesa often leave out the ``+``), ``00254…``, and
    local numbers (``0712345678``), which are read in ``region`` (``PAYGBOT_PHONE_REGION``).
    """
    text = text.strip()
    if not _TYPED.match(text):
        return None
    digits = re.sub(r"\D", "", text)
    if not 6 <= len(digits) <= 17:
        return None
    if text.startswith("+"):
        readings: list[tuple[str, str | None]] = [(text, None)]
    elif digits.startswith("00"):  # an international prefix: the region's own (000 in Kenya), else 00
        readings = [(digits, region), ("+" + digits[2:], None)]
    elif digits.startswith("0"):  # a trunk prefix: a local number
        readings = [(digits, region)]
    else:  # with the country code but no "+" first, as Telegram sends them; else local without the 0
        readings = [("+" + digits, None), (digits, region)]
    for candidate, where in readings:
        try:
            number = phonenumbers.parse(candidate, where)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(number):
            return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return None
