"""The ERM code format (erm-docs README): every documented example obeys it, and it round-trips."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.erm import codes

DOCS = Path(__file__).parent / "data" / "erm"


def test_the_readme_example() -> None:
    assert codes.hex_to_keypad("9184C537B9EFDD01") == "*024 413 975 593 119 504 641#"
    assert codes.keypad_to_hex("*024 413 975 593 119 504 641#") == "9184C537B9EFDD01"


def test_every_documented_history_code_obeys_the_format() -> None:
    history = json.loads((DOCS / "history.json").read_text())
    pairs = [(edge["node"]["codeHexString"], edge["node"]["codeDecString"]) for edge in history["page"]["edges"]]
    assert len(pairs) == 10
    assert all(codes.matches(hex_code, keypad) for hex_code, keypad in pairs)


def test_documented_keypad_codes_are_well_formed() -> None:
    for name in ("days_code.json", "free_code.json", "reset_code.json"):
        keypad = json.loads((DOCS / name).read_text())["code"]
        assert codes.is_keypad_code(keypad)
        assert codes.hex_to_keypad(codes.keypad_to_hex(keypad)) == keypad


@given(st.integers(min_value=0, max_value=2**64 - 1))
def test_round_trip(value: int) -> None:
    hex_code = f"{value:016X}"
    keypad = codes.hex_to_keypad(hex_code)
    assert re.fullmatch(r"\*\d{3}( \d{3}){6}#", keypad)
    assert codes.keypad_to_hex(keypad) == hex_code
    assert codes.matches(hex_code.lower(), keypad)


@pytest.mark.parametrize("bad", ["", "9184C537B9EFDD0", "9184C537B9EFDD01A", "9184C537B9EFDZ01"])
def test_bad_hex(bad: str) -> None:
    with pytest.raises(ValueError):
        codes.hex_to_keypad(bad)
    assert not codes.matches(bad, "*024 413 975 593 119 504 641#")


@pytest.mark.parametrize(
    "bad", ["*024 413 975 593 119 504 64#", "024 413 975 593 119 504 641", "*999 999 999 999 999 999 999#"]
)
def test_bad_keypad(bad: str) -> None:
    with pytest.raises(ValueError):
        codes.keypad_to_hex(bad)
