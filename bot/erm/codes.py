"""The ERM code format: a 64-bit value shown as 21 decimal digits for a keypad.

The decimal form is derived from the 16-hex-digit form: the high 32 bits in decimal,
zero-padded to 11 digits, then the low 32 bits zero-padded to 10 digits, grouped by three
and wrapped in ``*`` and ``#`` (``9184C537B9EFDD01`` -> ``*024 413 975 593 119 504 641#``).
"""

from __future__ import annotations

import re

_HEX = re.compile(r"^[0-9A-Fa-f]{16}$")
_DEC = re.compile(r"^\*\d{3}( \d{3}){6}#$")


def is_hex_code(value: str) -> bool:
    """True when ``value`` is 16 hex digits."""
    return bool(_HEX.match(value))


def is_keypad_code(value: str) -> bool:
    """True when ``value`` looks like ``*ddd ddd ddd ddd ddd ddd ddd#``."""
    return bool(_DEC.match(value))


def hex_to_keypad(hex_code: str) -> str:
    """The keypad form of a 16-hex-digit code."""
    if not is_hex_code(hex_code):
        raise ValueError("a code's hex form has 16 hex digits")
    value = int(hex_code, 16)
    digits = f"{value >> 32:011d}{value & 0xFFFFFFFF:010d}"
    return "*" + " ".join(digits[i : i + 3] for i in range(0, 21, 3)) + "#"


def keypad_to_hex(keypad: str) -> str:
    """The hex form of a keypad code; the inverse of :func:`hex_to_keypad`."""
    if not is_keypad_code(keypad):
        raise ValueError("a keypad code looks like *ddd ddd ddd ddd ddd ddd ddd#")
    digits = keypad[1:-1].replace(" ", "")
    high, low = int(digits[:11]), int(digits[11:])
    if high > 0xFFFFFFFF or low > 0xFFFFFFFF:
        raise ValueError("not a code of the ERM's format")
    return f"{(high << 32) | low:016X}"


def matches(hex_code: str, keypad: str) -> bool:
    """True when the keypad form is the one derived from the hex form."""
    return is_hex_code(hex_code) and hex_to_keypad(hex_code) == keypad
