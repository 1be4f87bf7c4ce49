"""The sandbox's devices: three string ids and a legacy integer id each, the codes committed to
them, and the credit those codes give (what the device would show once a code is typed in)."""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from bot.erm import codes
from bot.erm.models import CodeType

MAX_DAYS = 1095
"""The largest ``days`` a days code may carry (documented)."""

UNLOCK_DAYS = 1096
"""Stacked credit beyond this many days unlocks the device for good (documented)."""

# The history shows free and reset codes with these day counts (documented sample).
CODE_DAYS = {CodeType.FREE: UNLOCK_DAYS, CodeType.RESET: 2 * UNLOCK_DAYS}

_AVATAR_SETTINGS = [
    ("gstw", "60"),
    ("gctw", "5"),
    ("napn", "orange.m2m.spec"),
    ("swch", "0"),
    ("read", "0"),
    ("rptm", "0"),
    ("raml", ""),
    ("rtmd", "0"),
    ("hbfq", "1"),
]


def hex24(*parts: object) -> str:
    """A stable 24-lowercase-hex id (the shape of the ERM's Mongo ids) from ``parts``."""
    return hashlib.sha256(":".join(map(str, parts)).encode()).hexdigest()[:24]


def cursor(index: int) -> str:
    """The Relay array-connection cursor of the edge at ``index`` (``YXJyYXljb25uZWN0aW9uOjA=``: 0)."""
    return base64.b64encode(f"arrayconnection:{index}".encode()).decode()


def wire_time(when: datetime) -> str:
    """``2026-03-26T09:46:59.000Z``, as the history shows times."""
    when = when.astimezone(UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


@dataclass(frozen=True)
class CodeRecord:
    """One code the sandbox committed to a device."""

    id: str
    code_type: CodeType
    code_days: int
    hex: str
    keypad: str
    number: int
    created_at: datetime

    def node(self) -> dict[str, Any]:
        """The history's ``CodeEvent`` node."""
        stamp = wire_time(self.created_at)
        return {
            "_id": self.id,
            "codeType": self.code_type.value,
            "codeDays": self.code_days,
            "codeHexString": self.hex,
            "codeDecString": self.keypad,
            "codeNumber": self.number,
            "createdAt": stamp,
            "updatedAt": stamp,
            "__typename": "CodeEvent",
        }


@dataclass(eq=False)
class SandboxDevice:
    """A device with its three string ids, its legacy integer id, its code counter and credit."""

    erm_id: str
    oem_item_id: str
    seller_item_id: str
    product_item_id: int
    name: str
    secret: bytes = field(repr=False)
    codes: list[CodeRecord] = field(default_factory=list)
    """Committed codes, oldest first; ``codes[i].number == i + 1``."""
    credit_until: datetime | None = None
    """When the device locks again; ``None`` until its first days code."""
    free: bool = False
    """A free code was committed and no reset since: it runs for good."""
    overflowed: bool = False
    """Stacked credit once passed 1096 days: the real device would have unlocked for good."""
    life_cycle: str = "ASSIGNED"
    """Its ``lifeCycle`` in GraphQL's ``getAllClientItems`` (the ERM's INITIATED, ASSIGNED, ...)."""

    @property
    def ids(self) -> tuple[str, ...]:
        return (self.erm_id, self.oem_item_id, self.seller_item_id, str(self.product_item_id))

    @property
    def last_generated_at(self) -> datetime | None:
        return self.codes[-1].created_at if self.codes else None

    def codes_on(self, day: date) -> int:
        """How many codes were committed on this UTC day (the daily limit counts these)."""
        count = 0
        for record in reversed(self.codes):
            created = record.created_at.astimezone(UTC).date()
            if created < day:
                break
            count += created == day
        return count

    def apply(self, record: CodeRecord, now: datetime) -> None:
        """What the code does to the device once typed in."""
        if record.code_type is CodeType.FREE:
            self.free = True
        elif record.code_type is CodeType.RESET:
            self.free = False
            self.credit_until = now
        else:
            start = max(now, self.credit_until or now)
            self.credit_until = start + timedelta(days=record.code_days)
            if self.credit_until - now > timedelta(days=UNLOCK_DAYS):
                self.overflowed = True

    def code_hex(self, code_type: CodeType, number: int, days: int) -> str:
        """The code's 16 hex digits: a per-device HMAC, so codes are stable and distinct."""
        message = f"{number}:{code_type.value}:{days}".encode()
        return hmac.new(self.secret, message, hashlib.sha256).digest()[:8].hex().upper()

    def item(self) -> dict[str, Any]:
        """The ``assignedItemsList`` entry (read by :class:`bot.erm.models.AssignedItem`)."""
        return {
            "_id": self.erm_id,
            "oemItemID": self.oem_item_id,
            "sellerItemID": self.seller_item_id,
            "productItemID": self.product_item_id,
            "name": self.name,
            "lifeCycle": self.life_cycle,
        }

    def avatar(self) -> dict[str, Any]:
        """The ``avatarAttr`` document, shaped like the documented example."""
        pubk = codes.hex_to_keypad(hmac.new(self.secret, b"pubk", hashlib.sha256).digest()[:8].hex().upper())
        cmd = [{"prop": "pubk", "value": pubk, "meta": ""}]
        cmd += [{"prop": prop, "value": value, "meta": ""} for prop, value in _AVATAR_SETTINGS]
        return {"_id": hex24("avatar", self.erm_id), "cmd": cmd}

    def state(self, now: datetime) -> dict[str, Any]:
        """What ``GET /_sandbox/state`` shows of this device."""
        return {
            **self.item(),
            "codeCount": len(self.codes),
            "codesToday": self.codes_on(now.astimezone(UTC).date()),
            "creditUntil": wire_time(self.credit_until) if self.credit_until else None,
            "free": self.free,
            "overflowed": self.overflowed,
            "lastCode": self.codes[-1].node() if self.codes else None,
        }
