"""The ERM sandbox's state: users and their tokens, devices and their codes, the documented
limits, and the faults a test can inject. :mod:`bot.standins.erm.server` serves it over HTTP.

It follows the paths and shapes of ``000_55d5b70670e08d64.txt`` (v2) and
``001_57d14c53c9e4c6f1.txt`` (legacy paths, integer ids, assigned items), and of
``002_a0f4851e292c4757.txt`` over GraphQL (:mod:`bot.standins.erm.graphql`), enforces the
documented limits (6 s between codes, 10 codes a UTC day, days 1..1095, per device) on an
injectable clock, and can be told to misbehave (5xx, HTML pages, late answers, dropped tokens)
so tests can prove what the bot does when the real ERM does the same.
"""

from __future__ import annotations

import hashlib
import math
import secrets
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any, NamedTuple

from starlette.exceptions import HTTPException

from bot.clock import Clock, SystemClock
from bot.erm import codes
from bot.erm.models import CodeType
from bot.standins.erm.devices import CODE_DAYS, MAX_DAYS, CodeRecord, SandboxDevice, hex24, wire_time
from bot.standins.faults import Failure, Failures

MAX_RECORDED_CALLS = 100_000
"""How many requests the sandbox remembers for tests to inspect (a served sandbox runs for days)."""

EXAMPLE_USER = ("test@example.com", "test1234")

_DAYS_REFUSED = f"days must be between 1 and {MAX_DAYS}"


class Call(NamedTuple):
    """A request the sandbox received (a login's password is recorded as ``***``)."""

    method: str
    path: str
    body: Any


class Traits(NamedTuple):
    """What one request counts for (``logins``, ``generations``) and the path its queued failures
    match: the URL path for REST, ``/graphql/<first root field>`` for GraphQL."""

    path: str
    logins: int = 0
    generations: int = 0


@dataclass
class Token:
    username: str
    expires_at: datetime


class ErmSandbox:
    """All the sandbox's state: users, tokens, devices, their codes, and the faults to inject.

    Every limit and timestamp reads ``clock``, so a test moves a :class:`bot.clock.ManualClock`
    instead of sleeping. :mod:`bot.standins.erm.server` serves it and counts each request here.
    """

    def __init__(
        self,
        clock: Clock | None = None,
        device_count: int = 48,
        latency: float = 0.0,
        token_lifetime: timedelta = timedelta(hours=24),
        min_gap_seconds: float = 6,
        daily_limit: int = 10,
        graphql_sign_in: tuple[str, ...] = ("signInClient", "signInUser"),
        offers_item_lookup: bool = True,
    ) -> None:
        self.clock: Clock = clock or SystemClock()
        self.latency = latency
        """Seconds added before every ERM answer (not the ``/_sandbox`` ones)."""
        self.token_lifetime = token_lifetime
        self.min_gap_seconds = min_gap_seconds
        self.daily_limit = daily_limit
        self.graphql_sign_in = graphql_sign_in
        self.offers_item_lookup = offers_item_lookup
        """Whether the REST route ``assignedItems/{id}`` is served (an ERM that lacks it answers 404: the
        bot then learns a new device from ``assignedItemsList`` or tells it apart by its code history)."""
        """The GraphQL sign-in mutations offered; one left out fails validation, as on a server
        whose schema lacks it (a client then falls back to the other)."""
        self.calls: deque[Call] = deque(maxlen=MAX_RECORDED_CALLS)
        """Every ERM request received, in order (``/_sandbox`` ones excluded)."""
        self.logins = 0
        """Login requests received (REST) and sign-in fields requested (GraphQL), whatever their outcome."""
        self.generations = 0
        """Code generation requests received (REST) and generation fields requested (GraphQL), whatever
        their outcome (committed: ``device.codes``)."""
        self.devices: list[SandboxDevice] = []
        self._users: dict[str, str] = {}
        self._tokens: dict[str, Token] = {}
        self._by_id: dict[str, SandboxDevice] = {}
        self._by_legacy_id: dict[int, SandboxDevice] = {}
        self._failures = Failures()
        self._late: deque[float] = deque()

        self.add_user(*EXAMPLE_USER)
        self._add_device("64ba2e1eaa6c7f107d7a8918", "TEST2503000017", "SELLER2503000042", 163)
        self._add_device(hex24("erm-sandbox", "01AH2307000009"), "01AH2307000009", "SELLER01AH2307000009", 723128)
        for n in range(1, device_count + 1):
            oem = f"SBX{n:011d}"
            self._add_device(hex24("erm-sandbox", oem), oem, f"SELLER{oem}", 1000 + n)

    # -- users, tokens, devices -------------------------------------------------------------

    def add_user(self, username: str, password: str) -> None:
        """Let ``username`` log in with ``password``."""
        self._users[username] = password

    def user_for(self, token: str) -> str | None:
        """The user a token was issued to, or ``None`` when unknown or expired."""
        issued = self._tokens.get(token)
        if issued is None:
            return None
        if self.clock.now() >= issued.expires_at:
            del self._tokens[token]
            return None
        return issued.username

    def log_in(self, username: str, password: str) -> str | None:
        """A new token for ``username``, or ``None`` when the password is not theirs."""
        expected = self._users.get(username)
        if expected is None or not secrets.compare_digest(expected.encode(), password.encode()):
            return None
        token = secrets.token_urlsafe(32)
        self._tokens[token] = Token(username, self.clock.now() + self.token_lifetime)
        return token

    def add_device(self, oem: str) -> SandboxDevice:
        """A device newly assigned to the distributor (one the bot's last device sync did not see), with its
        seller id ``SELLER<oem>``, an ERM id and a legacy integer id of its own."""
        self._add_device(hex24("erm-sandbox", oem), oem, f"SELLER{oem}", 1_000_000 + len(self.devices))
        return self.devices[-1]

    def _add_device(self, erm_id: str, oem: str, seller: str, legacy_id: int) -> None:
        secret = hashlib.sha256(f"erm-sandbox-secret:{oem}".encode()).digest()
        device = SandboxDevice(erm_id, oem, seller, legacy_id, f"Solar home system {oem}", secret)
        taken = [key for key in (erm_id, oem, seller) if key in self._by_id]
        if taken or legacy_id in self._by_legacy_id:
            raise ValueError(f"two sandbox devices would share an id: {taken or legacy_id}")
        self._by_id.update(dict.fromkeys((erm_id, oem, seller), device))
        self._by_legacy_id[legacy_id] = device
        self.devices.append(device)

    def find(self, product_id: str | int) -> SandboxDevice | None:
        """The device with this ERM, OEM, seller or legacy integer id (also as digits)."""
        if isinstance(product_id, int):
            return self._by_legacy_id.get(product_id)
        found = self._by_id.get(product_id)
        if found is None and product_id.isascii() and product_id.isdigit():
            found = self._by_legacy_id.get(int(product_id))
        return found

    def device(self, any_id: str | int) -> SandboxDevice:
        """The device with this id; ``KeyError`` when there is none."""
        found = self.find(any_id)
        if found is None:
            raise KeyError(any_id)
        return found

    # -- code generation --------------------------------------------------------------------

    def generate(self, product_id: str | int, code_type: CodeType, days: Any = None) -> CodeRecord:
        """Check the documented limits and commit one code, as the ERM does.

        Raises :class:`HTTPException` (4xx, the ERM's words) and changes nothing when refused.
        The checks and the commit run with no ``await`` between them, so concurrent requests
        cannot both slip under a limit.
        """
        device = self.find(product_id)
        if device is None:
            raise HTTPException(404, f"Product {product_id} not found")
        if code_type is CodeType.DAYS and (type(days) is not int or not 1 <= days <= MAX_DAYS):
            raise HTTPException(400, _DAYS_REFUSED)
        now = self.clock.now()
        last = device.last_generated_at
        if last is not None and (now - last).total_seconds() < self.min_gap_seconds:
            wait = math.ceil(self.min_gap_seconds - (now - last).total_seconds())
            raise HTTPException(
                429,
                f"Too many requests: wait {wait} seconds before generating another code for this product",
                headers={"Retry-After": str(wait)},
            )
        today = now.astimezone(UTC).date()
        if device.codes_on(today) >= self.daily_limit:
            midnight = datetime.combine(today + timedelta(days=1), time(), UTC)
            raise HTTPException(
                429,
                f"Daily limit reached: at most {self.daily_limit} codes per day for this product",
                headers={"Retry-After": str(math.ceil((midnight - now).total_seconds()))},
            )
        number = len(device.codes) + 1
        code_days = days if code_type is CodeType.DAYS else CODE_DAYS[code_type]
        hex_code = device.code_hex(code_type, number, code_days)
        record = CodeRecord(
            id=f"{int(now.timestamp()):08x}{hex24('event', device.erm_id, number)[:16]}",
            code_type=code_type,
            code_days=code_days,
            hex=hex_code,
            keypad=codes.hex_to_keypad(hex_code),
            number=number,
            created_at=now,
        )
        device.codes.append(record)
        device.apply(record, now)
        return record

    # -- faults -----------------------------------------------------------------------------

    def fail_next(
        self,
        n: int = 1,
        status: int = 500,
        body: str | dict[str, Any] | None = None,
        paths: Iterable[str] | None = None,
    ) -> None:
        """The next ``n`` requests whose path starts with one of ``paths`` (any, if ``None``)
        answer ``status`` and commit nothing.

        ``body``: ``None`` → ``{"message": <reason phrase>}``; a ``str`` → sent as text/html
        (an HTML error page); a ``dict`` → sent as JSON (a 2xx with a wrong shape, say).
        """
        self._failures.add(n, status, body, paths)

    def late_next(self, n: int, delay: float) -> None:
        """The next ``n`` committed codes are answered only ``delay`` seconds after the commit,
        so a client with a shorter timeout gives up on a code the ERM did commit."""
        self._late.extend([delay] * n)

    def expire_tokens(self) -> None:
        """Every token issued so far is refused from now on (401)."""
        self._tokens.clear()

    def clear_faults(self) -> None:
        """Drop the failures and late answers not yet used."""
        self._failures.clear()
        self._late.clear()

    def take_late(self) -> float | None:
        """The delay of the next late answer, if one is queued (the caller holds its answer back)."""
        return self._late.popleft() if self._late else None

    def pending_faults(self) -> dict[str, int]:
        return {"pendingFailures": len(self._failures), "pendingLate": len(self._late)}

    def take_failure(self, path: str) -> Failure | None:
        return self._failures.take(path)

    def state(self) -> dict[str, Any]:
        """Counters, pending faults and every device, as ``GET /_sandbox/state`` shows them."""
        now = self.clock.now()
        return {
            "now": wire_time(now),
            "logins": self.logins,
            "generations": self.generations,
            "calls": [call._asdict() for call in list(self.calls)[-1000:]],
            **self.pending_faults(),
            "latency": self.latency,
            "devices": [device.state(now) for device in self.devices],
        }
