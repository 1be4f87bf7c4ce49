"""An ERM sandbox: the documented ERM REST API, in memory, so the bot runs with no credentials.

It answers the paths and shapes of ``000_55d5b70670e08d64.txt`` (v2) and
``001_57d14c53c9e4c6f1.txt`` (legacy paths, integer ids, assigned items), enforces the
documented limits (6 s between codes, 10 codes a UTC day, days 1..1095, per device) on an
injectable clock, and can be told to misbehave (5xx, HTML pages, late answers, dropped tokens)
so tests can prove what the bot does when the real ERM does the same.

Out of process it is driven over HTTP: ``POST /_sandbox/faults`` and ``GET /_sandbox/state``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import math
import secrets
import signal
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from http import HTTPStatus
from typing import Annotated, Any, Literal, NamedTuple

import uvicorn
from pydantic import BaseModel, Field, TypeAdapter, ValidationError
from starlette.applications import Starlette
from starlette.authentication import (
    AuthCredentials,
    AuthenticationBackend,
    BaseUser,
    SimpleUser,
    requires,
)
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import HTTPConnection, Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from bot.clock import Clock, SystemClock
from bot.erm import codes
from bot.erm.models import CodeType

MAX_DAYS = 1095
"""The largest ``days`` a days code may carry (documented)."""

UNLOCK_DAYS = 1096
"""Stacked credit beyond this many days unlocks the device for good (documented)."""

MAX_PAGE = 100
"""``assignedItemsList`` returns at most this many items (documented "up to 100")."""

MAX_RECORDED_CALLS = 100_000
"""How many requests the sandbox remembers for tests to inspect (a served sandbox runs for days)."""

EXAMPLE_USER = ("test@example.com", "test1234")

HISTORY_METADATA: dict[str, Any] = {
    "tableName": "codeHistory",
    "tableDescription": "",
    "totalColumns": 5,
    "columns": [
        {"Field": "codeHistoryID", "Type": "int(11)"},
        {"Field": "otpGeneratorID", "Type": "int(11)"},
        {"Field": "codeIndex", "Type": "tinyint(4)"},
        {"Field": "codeValue", "Type": "varchar(45)"},
        {"Field": "codeDate", "Type": "datetime"},
    ],
}
"""``GET /oves/codeHistory_Metadata``, verbatim from the document."""

# The history shows free and reset codes with these day counts (documented sample).
_CODE_DAYS = {CodeType.FREE: UNLOCK_DAYS, CodeType.RESET: 2 * UNLOCK_DAYS}

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

_DAYS_REFUSED = f"days must be between 1 and {MAX_DAYS}"

Kind = Literal["login", "generation", "query"]


def _hex24(*parts: object) -> str:
    """A stable 24-lowercase-hex id (the shape of the ERM's Mongo ids) from ``parts``."""
    return hashlib.sha256(":".join(map(str, parts)).encode()).hexdigest()[:24]


def _wire_time(when: datetime) -> str:
    """``2026-03-26T09:46:59.000Z``, as the history shows times."""
    when = when.astimezone(UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def _cursor(index: int) -> str:
    """The relay cursor the history puts on each edge."""
    return base64.b64encode(f"arrayconnection:{index}".encode()).decode()


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
        stamp = _wire_time(self.created_at)
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
        }

    def avatar(self) -> dict[str, Any]:
        """The ``avatarAttr`` document, shaped like the documented example."""
        pubk = codes.hex_to_keypad(hmac.new(self.secret, b"pubk", hashlib.sha256).digest()[:8].hex().upper())
        cmd = [{"prop": "pubk", "value": pubk, "meta": ""}]
        cmd += [{"prop": prop, "value": value, "meta": ""} for prop, value in _AVATAR_SETTINGS]
        return {"_id": _hex24("avatar", self.erm_id), "cmd": cmd}

    def state(self, now: datetime) -> dict[str, Any]:
        """What ``GET /_sandbox/state`` shows of this device."""
        return {
            **self.item(),
            "codeCount": len(self.codes),
            "codesToday": self.codes_on(now.astimezone(UTC).date()),
            "creditUntil": _wire_time(self.credit_until) if self.credit_until else None,
            "free": self.free,
            "overflowed": self.overflowed,
            "lastCode": self.codes[-1].node() if self.codes else None,
        }


class Call(NamedTuple):
    """A request the sandbox received (a login's password is recorded as ``***``)."""

    method: str
    path: str
    body: Any


@dataclass(frozen=True)
class _Failure:
    """A canned answer for one matching request (see :meth:`ErmSandbox.fail_next`)."""

    status: int
    body: str | dict[str, Any] | None
    paths: tuple[str, ...] | None

    def matches(self, path: str) -> bool:
        return self.paths is None or path.startswith(self.paths)

    def response(self) -> Response:
        if isinstance(self.body, str):
            return HTMLResponse(self.body, status_code=self.status)
        if self.body is not None:
            return JSONResponse(self.body, status_code=self.status)
        try:
            phrase = HTTPStatus(self.status).phrase
        except ValueError:
            phrase = "Error"
        return JSONResponse({"message": phrase}, status_code=self.status)


@dataclass
class _Token:
    username: str
    expires_at: datetime


class _FailNext(BaseModel):
    fault: Literal["fail_next"]
    n: int = Field(default=1, ge=1)
    status: int = Field(default=500, ge=200, le=599)
    body: str | dict[str, Any] | None = None
    paths: list[str] | None = None


class _LateNext(BaseModel):
    fault: Literal["late_next"]
    n: int = Field(default=1, ge=1)
    delay: float = Field(ge=0)


class _ExpireTokens(BaseModel):
    fault: Literal["expire_tokens"]


class _Latency(BaseModel):
    fault: Literal["latency"]
    seconds: float = Field(ge=0)


class _Clear(BaseModel):
    fault: Literal["clear"]


_Fault = TypeAdapter(
    Annotated[_FailNext | _LateNext | _ExpireTokens | _Latency | _Clear, Field(discriminator="fault")]
)


class _TokenBackend(AuthenticationBackend):
    """Reads ``Authorization: <token>`` (the REST documents) or ``Bearer <token>`` (GraphQL)."""

    def __init__(self, sandbox: ErmSandbox) -> None:
        self._sandbox = sandbox

    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, BaseUser] | None:
        header = conn.headers.get("authorization", "").strip()
        scheme, _, rest = header.partition(" ")
        token = rest.strip() if scheme.lower() == "bearer" else header
        username = self._sandbox.user_for(token)
        if username is None:
            return None  # the route, not the middleware, says 401: login needs no token
        return AuthCredentials(["authenticated"]), SimpleUser(username)


async def _http_error(request: Request, exc: Exception) -> Response:
    """Every refusal as ``{"message": ...}``: the shape the bot reads the ERM's words from."""
    assert isinstance(exc, HTTPException)
    return JSONResponse({"message": exc.detail}, status_code=exc.status_code, headers=exc.headers)


def _product_id(body: Any) -> str | int:
    """``productId`` from a generation body: a non-empty string or a JSON integer."""
    value = body.get("productId") if isinstance(body, dict) else None
    if isinstance(value, bool) or not isinstance(value, str | int) or value == "":
        raise HTTPException(400, "productId is required")
    return value


def _paging(offset: str, limit: str) -> tuple[int, int]:
    """Path ``offset``/``limit``; checked here so that ``-1`` or ``x`` is a 400, not a 404."""
    if not (offset.isascii() and offset.isdigit() and limit.isascii() and limit.isdigit()):
        raise HTTPException(400, "offset and limit must be non-negative integers")
    return int(offset), int(limit)


class ErmSandbox:
    """All the sandbox's state: users, tokens, devices, their codes, and the faults to inject.

    ``app`` is the Starlette app serving it. Every limit and timestamp reads ``clock``, so a
    test moves a :class:`bot.clock.ManualClock` instead of sleeping.
    """

    def __init__(
        self,
        clock: Clock | None = None,
        device_count: int = 48,
        latency: float = 0.0,
        token_lifetime: timedelta = timedelta(hours=24),
        min_gap_seconds: float = 6,
        daily_limit: int = 10,
    ) -> None:
        self.clock: Clock = clock or SystemClock()
        self.latency = latency
        """Seconds added before every ERM answer (not the ``/_sandbox`` ones)."""
        self.token_lifetime = token_lifetime
        self.min_gap_seconds = min_gap_seconds
        self.daily_limit = daily_limit
        self.calls: deque[Call] = deque(maxlen=MAX_RECORDED_CALLS)
        """Every ERM request received, in order (``/_sandbox`` ones excluded)."""
        self.logins = 0
        """Login requests received, whatever their outcome."""
        self.generations = 0
        """Code generation requests received, whatever their outcome (committed: ``device.codes``)."""
        self.devices: list[SandboxDevice] = []
        self._users: dict[str, str] = {}
        self._tokens: dict[str, _Token] = {}
        self._by_id: dict[str, SandboxDevice] = {}
        self._by_legacy_id: dict[int, SandboxDevice] = {}
        self._failures: deque[_Failure] = deque()
        self._late: deque[float] = deque()

        self.add_user(*EXAMPLE_USER)
        self._add_device("64ba2e1eaa6c7f107d7a8918", "TEST2503000017", "SELLER2503000042", 163)
        self._add_device(_hex24("erm-sandbox", "01AH2307000009"), "01AH2307000009", "SELLER01AH2307000009", 723128)
        for n in range(1, device_count + 1):
            oem = f"SBX{n:011d}"
            self._add_device(_hex24("erm-sandbox", oem), oem, f"SELLER{oem}", 1000 + n)
        self.app = self._build_app()

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
        code_days = days if code_type is CodeType.DAYS else _CODE_DAYS[code_type]
        hex_code = device.code_hex(code_type, number, code_days)
        record = CodeRecord(
            id=f"{int(now.timestamp()):08x}{_hex24('event', device.erm_id, number)[:16]}",
            code_type=code_type,
            code_days=code_days,
            hex=hex_code,
            keypad=codes.hex_to_keypad(hex_code),
            number=number,
            created_at=now,
        )
        device.codes.append(record)
        self._apply_credit(device, record, now)
        return record

    @staticmethod
    def _apply_credit(device: SandboxDevice, record: CodeRecord, now: datetime) -> None:
        """What the code does to the device once typed in."""
        if record.code_type is CodeType.FREE:
            device.free = True
        elif record.code_type is CodeType.RESET:
            device.free = False
            device.credit_until = now
        else:
            start = max(now, device.credit_until or now)
            device.credit_until = start + timedelta(days=record.code_days)
            if device.credit_until - now > timedelta(days=UNLOCK_DAYS):
                device.overflowed = True

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
        failure = _Failure(status, body, tuple(paths) if paths is not None else None)
        self._failures.extend([failure] * n)

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

    def _take_failure(self, path: str) -> _Failure | None:
        for failure in self._failures:
            if failure.matches(path):
                self._failures.remove(failure)
                return failure
        return None

    def state(self) -> dict[str, Any]:
        """Counters, pending faults and every device, as ``GET /_sandbox/state`` shows them."""
        now = self.clock.now()
        return {
            "now": _wire_time(now),
            "logins": self.logins,
            "generations": self.generations,
            "calls": [call._asdict() for call in list(self.calls)[-1000:]],
            "pendingFailures": len(self._failures),
            "pendingLate": len(self._late),
            "latency": self.latency,
            "devices": [device.state(now) for device in self.devices],
        }

    # -- HTTP -------------------------------------------------------------------------------

    def _build_app(self) -> Starlette:
        routes = [self._erm_route("/user/login", self._login, ["POST"], "login")]
        for version in ("/v2", ""):
            routes += [
                self._erm_route(f"/otp/daysCode{version}", self._days_code, ["POST"], "generation"),
                self._erm_route(f"/code/code/freecodeotp{version}", self._free_code, ["POST"], "generation"),
                self._erm_route(f"/code/code/resetcode{version}", self._reset_code, ["POST"], "generation"),
            ]
        routes += [
            self._erm_route("/oves/v2/codeHistoryList/{product_id}/{offset}/{limit}", self._history, ["GET"]),
            self._erm_route("/oves/codeHistoryList/{product_id}/{offset}/{limit}", self._history, ["GET"]),
            # The heading says GET; the document's own curl sends POST (--data ''): take both.
            self._erm_route("/oves/codeHistory_Metadata", self._metadata, ["GET", "POST"]),
            self._erm_route("/oves/avatarAttr/{item_id}", self._avatar, ["GET"]),
            self._erm_route("/oves/assignedItemsList/{offset}/{limit}", self._assigned_items, ["GET"]),
            self._erm_route("/oves/assignedItems/{item_id}", self._assigned_item, ["GET"]),
            Route("/_sandbox/faults", self._faults, methods=["POST"]),
            Route("/_sandbox/state", self._state, methods=["GET"]),
        ]
        return Starlette(
            routes=routes,
            middleware=[Middleware(AuthenticationMiddleware, backend=_TokenBackend(self))],
            exception_handlers={HTTPException: _http_error},
        )

    def _erm_route(
        self,
        path: str,
        endpoint: Callable[[Request], Awaitable[Response]],
        methods: list[str],
        kind: Kind = "query",
    ) -> Route:
        """A route that records the call, plays any queued failure, waits ``latency``, and
        (except login) requires a valid token before ``endpoint`` runs."""
        guarded = endpoint if kind == "login" else requires("authenticated", status_code=401)(endpoint)

        async def handle(request: Request) -> Response:
            body = await self._recorded_body(request, kind)
            self.calls.append(Call(request.method, request.url.path, body))
            if kind == "login":
                self.logins += 1
            elif kind == "generation":
                self.generations += 1
            failure = self._take_failure(request.url.path)
            if self.latency > 0:
                await asyncio.sleep(self.latency)
            if failure is not None:
                return failure.response()
            response: Response = await guarded(request)
            return response

        return Route(path, handle, methods=methods)

    @staticmethod
    async def _recorded_body(request: Request, kind: Kind) -> Any:
        """The request's JSON body for ``calls`` (``None`` if none or not JSON)."""
        raw = await request.body()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            return None
        if kind == "login" and isinstance(body, dict) and "password" in body:
            body = {**body, "password": "***"}
        return body

    @staticmethod
    async def _json(request: Request) -> Any:
        try:
            return await request.json()
        except ValueError:
            raise HTTPException(400, "Invalid JSON body") from None

    async def _login(self, request: Request) -> Response:
        body = await self._json(request)
        username = body.get("username") if isinstance(body, dict) else None
        password = body.get("password") if isinstance(body, dict) else None
        if not isinstance(username, str) or not isinstance(password, str) or not username or not password:
            raise HTTPException(400, "username and password are required")
        expected = self._users.get(username)
        if expected is None or not secrets.compare_digest(expected.encode(), password.encode()):
            raise HTTPException(401, "Invalid username or password")
        token = secrets.token_urlsafe(32)
        self._tokens[token] = _Token(username, self.clock.now() + self.token_lifetime)
        return JSONResponse({"accessToken": token, "user_role": "DISTRIBUTOR"})

    async def _generated(self, request: Request, code_type: CodeType) -> CodeRecord:
        """Commit the requested code, then hold the answer back if a late answer is queued."""
        body = await self._json(request)
        product_id = _product_id(body)  # also makes sure the body is an object
        record = self.generate(product_id, code_type, body.get("days"))
        if self._late:
            await asyncio.sleep(self._late.popleft())
        return record

    async def _days_code(self, request: Request) -> Response:
        record = await self._generated(request, CodeType.DAYS)
        return JSONResponse(
            {"message": "Succeed", "otpCount": record.number - 1, "code": record.keypad, "otpHash": record.hex}
        )

    async def _free_code(self, request: Request) -> Response:
        record = await self._generated(request, CodeType.FREE)
        return JSONResponse({"message": "succeed", "code": record.keypad})

    async def _reset_code(self, request: Request) -> Response:
        record = await self._generated(request, CodeType.RESET)
        return JSONResponse({"message": "succeed", "code": record.keypad})

    def _known(self, product_id: str) -> SandboxDevice:
        device = self.find(product_id)
        if device is None:
            raise HTTPException(404, f"Product {product_id} not found")
        return device

    async def _history(self, request: Request) -> Response:
        params = request.path_params
        offset, limit = _paging(params["offset"], params["limit"])
        device = self._known(params["product_id"])
        newest_first = device.codes[::-1]
        page = newest_first[offset : offset + limit]
        edges = [
            {"cursor": _cursor(offset + i), "node": record.node(), "__typename": "CodeEventEdge"}
            for i, record in enumerate(page)
        ]
        return JSONResponse(
            {
                "page": {
                    "edges": edges,
                    "pageInfo": {
                        "hasPreviousPage": offset > 0,
                        "hasNextPage": offset + limit < len(newest_first),
                        "__typename": "CodeEventPageInfo",
                    },
                    "__typename": "CodeEventConnection",
                },
                "pageData": {"count": len(newest_first), "limit": limit, "offset": offset, "__typename": "PageData"},
            }
        )

    async def _metadata(self, request: Request) -> Response:
        return JSONResponse(HISTORY_METADATA)

    async def _avatar(self, request: Request) -> Response:
        item_id = request.path_params["item_id"]
        device = self.find(item_id)
        if device is None:
            return JSONResponse({"error": f"Item {item_id} not found"}, status_code=400)
        return JSONResponse(device.avatar())

    async def _assigned_items(self, request: Request) -> Response:
        offset, limit = _paging(request.path_params["offset"], request.path_params["limit"])
        limit = min(limit, MAX_PAGE)
        items = [device.item() for device in self.devices[offset : offset + limit]]
        return JSONResponse(
            {"assignedItems": items, "pageData": {"count": len(self.devices), "offset": offset, "limit": limit}}
        )

    async def _assigned_item(self, request: Request) -> Response:
        return JSONResponse(self._known(request.path_params["item_id"]).item())

    async def _faults(self, request: Request) -> Response:
        """``POST /_sandbox/faults``: the fault methods, for a sandbox in another process."""
        try:
            fault = _Fault.validate_json(await request.body())
        except ValidationError as exc:
            raise HTTPException(400, str(exc.errors(include_url=False)[0]["msg"])) from None
        match fault:
            case _FailNext():
                self.fail_next(fault.n, fault.status, fault.body, fault.paths)
            case _LateNext():
                self.late_next(fault.n, fault.delay)
            case _ExpireTokens():
                self.expire_tokens()
            case _Latency():
                self.latency = fault.seconds
            case _Clear():
                self.clear_faults()
        return JSONResponse({"pendingFailures": len(self._failures), "pendingLate": len(self._late)})

    async def _state(self, request: Request) -> Response:
        return JSONResponse(self.state())


# -- serving ----------------------------------------------------------------------------------


def _config(sandbox: ErmSandbox, host: str, port: int, **kwargs: Any) -> uvicorn.Config:
    return uvicorn.Config(sandbox.app, host=host, port=port, log_level="warning", ws="none", **kwargs)


async def serve(sandbox: ErmSandbox, host: str = "127.0.0.1", port: int = 8090) -> None:
    """Serve the sandbox until SIGINT or SIGTERM, then return normally (``paygbot sandbox``)."""
    server = _InProcessServer(_config(sandbox, host, port))
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, setattr, server, "should_exit", True)
    try:
        await server.serve()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


class _InProcessServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to the process it is embedded in."""

    def capture_signals(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()


@contextlib.asynccontextmanager
async def running(
    sandbox: ErmSandbox, host: str = "127.0.0.1", port: int = 0, startup_timeout: float = 5.0
) -> AsyncIterator[str]:
    """Serve the sandbox on this event loop for the duration of the block; yields its base URL.

    ``port=0`` takes a free ephemeral port. The host's logging is left as it is.
    """
    server = _InProcessServer(_config(sandbox, host, port, log_config=None))
    task = asyncio.create_task(server.serve())
    loop = asyncio.get_running_loop()
    deadline = loop.time() + startup_timeout
    while not server.started:
        if task.done():
            task.result()  # re-raise why it stopped
            raise RuntimeError("the ERM sandbox stopped before it started")
        if loop.time() > deadline:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            raise TimeoutError(f"the ERM sandbox did not start within {startup_timeout} s")
        await asyncio.sleep(0.005)
    bound_host, bound_port = server.servers[0].sockets[0].getsockname()[:2]
    try:
        yield f"http://{bound_host}:{bound_port}"
    finally:
        server.should_exit = True
        await task
