"""What arrives over HTTP, read into a payment: the signed webhook's JSON, Safaricom's Daraja C2B
confirmation, and the webhook's HMAC-SHA256 signature. Nothing is stored here; a body that is not a
payment raises :class:`BadPayment` saying what is wrong. (Pasted M-Pesa messages: :mod:`bot.payments.sms`.)
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from bot.payments.values import Incoming, Provider
from bot.phones import e164

MAX_AMOUNT = Decimal("1000000000")
DARAJA_TZ = ZoneInfo("Africa/Nairobi")
"""Daraja's ``TransTime`` is Kenyan time."""
DARAJA_REGION = "KE"
"""Daraja is Safaricom Kenya's: an ``MSISDN`` without its country code is a Kenyan number."""
_TEXT_FIELD = re.compile(r"^[^\x00-\x1f\x7f]+$")
_CURRENCY = re.compile(r"^[A-Za-z]{0,8}$")
_PLAIN_DECIMAL = re.compile(r"[0-9]+(?:\.[0-9]+)?")
"""How an amount is written: ASCII digits and a decimal point (no exponent, '_', sign or other digits)."""


class BadPayment(ValueError):
    """The body is not a payment (the message says what is wrong; nothing was stored)."""


def signature_ok(secret: bytes, body: bytes, header: str | None) -> bool:
    """``sha256=<hex HMAC-SHA256 of the raw body>``, compared in constant time."""
    if not header:
        return False
    given = header.strip()
    if given[:7].lower() != "sha256=":
        return False
    expected = hmac.new(secret, body, hashlib.sha256).hexdigest().encode()
    return hmac.compare_digest(expected, given[7:].strip().lower().encode("utf-8", "replace"))


def sign(secret: str, body: bytes) -> str:
    """The header value a sender puts on ``body`` (for tests, benchmarks and integrators)."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class _Number:
    """A JSON number with a fraction or an exponent, as written (``250.50``, ``1e3``): an amount is read
    from its text, so that only plain decimals are money."""

    text: str


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body, parse_float=_Number, parse_constant=_no_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadPayment("the body is not JSON") from exc
    if not isinstance(data, dict):
        raise BadPayment("the body is not a JSON object")
    return data


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number")


def _text(data: dict[str, Any], name: str, *, required: bool, limit: int, numbers: bool = False) -> str | None:
    value = data.get(name)
    if value is None or (isinstance(value, str) and not value.strip() and not required):
        if required:
            raise BadPayment(f"{name} is missing")
        return None
    if numbers and isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        value = str(value)
    if not isinstance(value, str):
        raise BadPayment(f"{name} must be text")
    value = value.strip()
    if not value or len(value) > limit or not _TEXT_FIELD.match(value):
        raise BadPayment(f"{name} must be 1 to {limit} printable characters")
    return value


def _positive_amount(value: Any, name: str) -> Decimal:
    """Plain decimals only (``250``, ``250.50``): ``1e3``, ``1_000``, ``+5`` or other scripts' digits are
    refused, as a number and as text — Python's Decimal would read them all."""
    if isinstance(value, bool) or not isinstance(value, (int, _Number, str)):
        raise BadPayment(f"{name} must be a positive decimal number")
    text = value.text if isinstance(value, _Number) else value.strip() if isinstance(value, str) else str(value)
    if not _PLAIN_DECIMAL.fullmatch(text):
        raise BadPayment(f"{name} must be a positive decimal number, written like 250 or 250.50")
    try:
        amount = Decimal(text)
    except InvalidOperation as exc:
        raise BadPayment(f"{name} must be a positive decimal number") from exc
    if not amount.is_finite() or amount <= 0 or amount > MAX_AMOUNT or amount.as_tuple().exponent < -4:  # type: ignore[operator]
        raise BadPayment(f"{name} must be a positive decimal number (at most 4 decimal places)")
    return amount


@dataclass(frozen=True)
class ReversalIncoming:
    """``{"reverses": "<reference>", "reference": "<the reversal's own reference>", "reason"?}``: a payment taken
    back by its provider."""

    reverses: str
    reference: str
    reason: str | None = None


def parse_webhook(body: bytes) -> Incoming | ReversalIncoming:
    """``{"reference", "amount", "currency", "account", "phone"?, "paid_at"?}`` as product.md has it, or a
    reversal (``"reverses"``)."""
    data = _json_object(body)
    if "reverses" in data:
        reverses = _text(data, "reverses", required=True, limit=100)
        reference = _text(data, "reference", required=True, limit=100)
        reason = _text(data, "reason", required=False, limit=200)
        assert reverses is not None and reference is not None
        if reverses == reference:
            raise BadPayment("reference must be the reversal's own reference, not the reversed payment's")
        return ReversalIncoming(reverses, reference, reason)
    reference = _text(data, "reference", required=True, limit=100)
    if "amount" not in data or data["amount"] is None:
        raise BadPayment("amount is missing")
    amount = _positive_amount(data["amount"], "amount")
    account = _text(data, "account", required=True, limit=100, numbers=True)
    currency = data.get("currency") or ""
    if not isinstance(currency, str) or not _CURRENCY.match(currency.strip()):
        raise BadPayment("currency must be a currency code such as KES")
    phone = _text(data, "phone", required=False, limit=32, numbers=True)
    paid_at = None
    if data.get("paid_at") not in (None, ""):
        raw = data["paid_at"]
        try:
            paid_at = datetime.fromisoformat(raw.replace("Z", "+00:00")) if isinstance(raw, str) else None
        except ValueError:
            paid_at = None
        if paid_at is None:
            raise BadPayment("paid_at must be an ISO 8601 time, such as 2026-11-22T10:15:00+03:00")
        paid_at = paid_at.replace(tzinfo=UTC) if paid_at.tzinfo is None else paid_at.astimezone(UTC)
    assert reference is not None and account is not None
    return Incoming(Provider.WEBHOOK, reference, amount, account, currency.strip().upper(), phone, paid_at=paid_at)


def parse_daraja(body: bytes) -> Incoming:
    """A Daraja C2B confirmation: ``TransID`` (the reference), ``TransAmount``, ``BillRefNumber`` (the
    account the payer typed; empty for till payments: then the payer's ``MSISDN``), ``TransTime``."""
    data = _json_object(body)
    reference = _text(data, "TransID", required=True, limit=100)
    if data.get("TransAmount") in (None, ""):
        raise BadPayment("TransAmount is missing")
    amount = _positive_amount(data["TransAmount"], "TransAmount")
    account = _text(data, "BillRefNumber", required=False, limit=100, numbers=True)
    msisdn = _text(data, "MSISDN", required=False, limit=64, numbers=True)
    phone = e164(msisdn, DARAJA_REGION) if msisdn else None
    names = [data.get(key) for key in ("FirstName", "MiddleName", "LastName")]
    payer = " ".join(name.strip() for name in names if isinstance(name, str) and name.strip())[:100] or None
    paid_at = None
    when = data.get("TransTime")
    if isinstance(when, (str, int)) and re.fullmatch(r"\d{14}", str(when)):
        try:
            paid_at = datetime.strptime(str(when), "%Y%m%d%H%M%S").replace(tzinfo=DARAJA_TZ).astimezone(UTC)
        except ValueError:
            paid_at = None
    assert reference is not None
    return Incoming(Provider.MPESA, reference, amount, account or phone or "", "KES", phone, payer, paid_at)
