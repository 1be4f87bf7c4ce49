"""The ERM sandbox over HTTP: the documented REST paths and shapes, ``POST /graphql`` (the
GraphQL interface, :mod:`bot.standins.erm.graphql`, on the same state), token checks, the
injected faults and latency, and ``/_sandbox/faults`` and ``/_sandbox/state`` for a sandbox in
another process. Served with the project's one runner, :func:`bot.http.serving`; :func:`serve`
(``paygbot sandbox``) serves the Omnimetic sandbox beside it, under ``/omnimetic/api``.

Every ERM route, REST or GraphQL, goes through :meth:`_Endpoints.route`: the call is recorded,
counted, matched against the queued failures (a GraphQL request by ``/graphql/<first root
field>``) and delayed by ``latency`` before it is answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, Field, TypeAdapter, ValidationError
from starlette.applications import Starlette
from starlette.authentication import AuthCredentials, AuthenticationBackend, BaseUser, SimpleUser, requires
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from bot.erm.models import CodeType
from bot.http import serving
from bot.standins.erm import graphql
from bot.standins.erm.devices import CodeRecord, SandboxDevice, cursor
from bot.standins.erm.sandbox import Call, ErmSandbox, Traits

if TYPE_CHECKING:
    from bot.standins.omnimetic import OmnimeticSandbox

MAX_PAGE = 100
"""``assignedItemsList`` returns at most this many items (documented "up to 100")."""

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

Kind = Literal["login", "generation", "query", "graphql"]


# -- faults driven over HTTP --------------------------------------------------------------------


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


# -- requests -----------------------------------------------------------------------------------


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


async def _json(request: Request) -> Any:
    try:
        return await request.json()
    except ValueError:
        raise HTTPException(400, "Invalid JSON body") from None


async def _recorded_body(request: Request, kind: Kind) -> Any:
    """The request's JSON body for ``calls`` (``None`` if none or not JSON)."""
    raw = await request.body()
    try:
        body = json.loads(raw) if raw else None
    except ValueError:
        return None
    if kind == "login" and isinstance(body, dict) and "password" in body:
        body = {**body, "password": "***"}
    if kind == "graphql":
        body = graphql.masked(body)
    return body


class _Endpoints:
    """The ERM's endpoints over one sandbox."""

    def __init__(self, sandbox: ErmSandbox) -> None:
        self.sandbox = sandbox

    def route(
        self,
        path: str,
        endpoint: Callable[[Request], Awaitable[Response]],
        methods: list[str],
        kind: Kind = "query",
        traits: Callable[[Any], Traits] | None = None,
    ) -> Route:
        """A route that records the call, counts it, plays any queued failure, waits ``latency``,
        and (except login and GraphQL, which checks tokens per field) requires a valid token
        before ``endpoint`` runs. ``traits`` reads from the recorded body what the request counts
        for and the path failures match (default: by ``kind``, the URL path)."""
        public = kind in ("login", "graphql")
        guarded = endpoint if public else requires("authenticated", status_code=401)(endpoint)
        sandbox = self.sandbox

        async def handle(request: Request) -> Response:
            body = await _recorded_body(request, kind)
            sandbox.calls.append(Call(request.method, request.url.path, body))
            if traits is not None:
                seen = traits(body)
            else:
                seen = Traits(request.url.path, int(kind == "login"), int(kind == "generation"))
            sandbox.logins += seen.logins
            sandbox.generations += seen.generations
            failure = sandbox.take_failure(seen.path)
            if sandbox.latency > 0:
                await asyncio.sleep(sandbox.latency)
            if failure is not None:
                return failure.response()
            response: Response = await guarded(request)
            return response

        return Route(path, handle, methods=methods)

    async def login(self, request: Request) -> Response:
        body = await _json(request)
        username = body.get("username") if isinstance(body, dict) else None
        password = body.get("password") if isinstance(body, dict) else None
        if not isinstance(username, str) or not isinstance(password, str) or not username or not password:
            raise HTTPException(400, "username and password are required")
        token = self.sandbox.log_in(username, password)
        if token is None:
            raise HTTPException(401, "Invalid username or password")
        return JSONResponse({"accessToken": token, "user_role": "DISTRIBUTOR"})

    async def _generated(self, request: Request, code_type: CodeType) -> CodeRecord:
        """Commit the requested code, then hold the answer back if a late answer is queued."""
        body = await _json(request)
        product_id = _product_id(body)  # also makes sure the body is an object
        record = self.sandbox.generate(product_id, code_type, body.get("days"))
        delay = self.sandbox.take_late()
        if delay is not None:
            await asyncio.sleep(delay)
        return record

    async def days_code(self, request: Request) -> Response:
        record = await self._generated(request, CodeType.DAYS)
        return JSONResponse(
            {"message": "Succeed", "otpCount": record.number - 1, "code": record.keypad, "otpHash": record.hex}
        )

    async def free_code(self, request: Request) -> Response:
        record = await self._generated(request, CodeType.FREE)
        return JSONResponse({"message": "succeed", "code": record.keypad})

    async def reset_code(self, request: Request) -> Response:
        record = await self._generated(request, CodeType.RESET)
        return JSONResponse({"message": "succeed", "code": record.keypad})

    def _known(self, product_id: str) -> SandboxDevice:
        device = self.sandbox.find(product_id)
        if device is None:
            raise HTTPException(404, f"Product {product_id} not found")
        return device

    async def history(self, request: Request) -> Response:
        params = request.path_params
        offset, limit = _paging(params["offset"], params["limit"])
        device = self._known(params["product_id"])
        newest_first = device.codes[::-1]
        page = newest_first[offset : offset + limit]
        edges = [
            {"cursor": cursor(offset + i), "node": record.node(), "__typename": "CodeEventEdge"}
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

    async def metadata(self, request: Request) -> Response:
        return JSONResponse(HISTORY_METADATA)

    async def avatar(self, request: Request) -> Response:
        item_id = request.path_params["item_id"]
        device = self.sandbox.find(item_id)
        if device is None:
            return JSONResponse({"error": f"Item {item_id} not found"}, status_code=400)
        return JSONResponse(device.avatar())

    async def assigned_items(self, request: Request) -> Response:
        offset, limit = _paging(request.path_params["offset"], request.path_params["limit"])
        limit = min(limit, MAX_PAGE)
        devices = self.sandbox.devices
        items = [device.item() for device in devices[offset : offset + limit]]
        return JSONResponse({"assignedItems": items, "pageData": {"count": len(devices), "offset": offset, "limit": limit}})

    async def assigned_item(self, request: Request) -> Response:
        return JSONResponse(self._known(request.path_params["item_id"]).item())

    async def faults(self, request: Request) -> Response:
        """``POST /_sandbox/faults``: the fault methods, for a sandbox in another process."""
        try:
            fault = _Fault.validate_json(await request.body())
        except ValidationError as exc:
            raise HTTPException(400, str(exc.errors(include_url=False)[0]["msg"])) from None
        sandbox = self.sandbox
        match fault:
            case _FailNext():
                sandbox.fail_next(fault.n, fault.status, fault.body, fault.paths)
            case _LateNext():
                sandbox.late_next(fault.n, fault.delay)
            case _ExpireTokens():
                sandbox.expire_tokens()
            case _Latency():
                sandbox.latency = fault.seconds
            case _Clear():
                sandbox.clear_faults()
        return JSONResponse(sandbox.pending_faults())

    async def state(self, request: Request) -> Response:
        return JSONResponse(self.sandbox.state())


def build_app(sandbox: ErmSandbox) -> Starlette:
    """The Starlette app serving ``sandbox`` (add middleware to it before it is served)."""
    ep = _Endpoints(sandbox)
    api = graphql.GraphQLApi(sandbox)
    routes = [
        ep.route("/user/login", ep.login, ["POST"], "login"),
        ep.route(graphql.PATH, api.endpoint, ["POST"], "graphql", api.traits),
    ]
    for version in ("/v2", ""):
        routes += [
            ep.route(f"/otp/daysCode{version}", ep.days_code, ["POST"], "generation"),
            ep.route(f"/code/code/freecodeotp{version}", ep.free_code, ["POST"], "generation"),
            ep.route(f"/code/code/resetcode{version}", ep.reset_code, ["POST"], "generation"),
        ]
    routes += [
        ep.route("/oves/v2/codeHistoryList/{product_id}/{offset}/{limit}", ep.history, ["GET"]),
        ep.route("/oves/codeHistoryList/{product_id}/{offset}/{limit}", ep.history, ["GET"]),
        # The heading says GET; the document's own curl sends POST (--data ''): take both.
        ep.route("/oves/codeHistory_Metadata", ep.metadata, ["GET", "POST"]),
        ep.route("/oves/avatarAttr/{item_id}", ep.avatar, ["GET"]),
        ep.route("/oves/assignedItemsList/{offset}/{limit}", ep.assigned_items, ["GET"]),
    ]
    if sandbox.offers_item_lookup:  # an ERM without it answers 404, as for any route it does not have
        routes.append(ep.route("/oves/assignedItems/{item_id}", ep.assigned_item, ["GET"]))
    routes += [
        Route("/_sandbox/faults", ep.faults, methods=["POST"]),
        Route("/_sandbox/state", ep.state, methods=["GET"]),
    ]
    return Starlette(
        routes=routes,
        middleware=[Middleware(AuthenticationMiddleware, backend=_TokenBackend(sandbox))],
        exception_handlers={HTTPException: _http_error},
    )


# -- serving ------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def running(
    sandbox: ErmSandbox, host: str = "127.0.0.1", port: int = 0, *, app: Starlette | None = None
) -> AsyncIterator[str]:
    """Serve the sandbox on this event loop for the duration of the block; yields its base URL.

    ``port=0`` takes a free ephemeral port; ``app`` is the app to serve (default:
    :func:`build_app`; pass one to add middleware first). The host's logging is left as it is.
    """
    async with serving(app or build_app(sandbox), port, host=host) as bound:
        yield f"http://{host}:{bound}"


async def serve(
    sandbox: ErmSandbox, host: str = "127.0.0.1", port: int = 8090, *, omnimetic: OmnimeticSandbox | None = None
) -> None:
    """Serve the sandbox until SIGINT or SIGTERM, then return normally (``paygbot sandbox``); the
    Omnimetic sandbox (default: a new one on the same clock and latency) beside it under
    ``/omnimetic/api``."""
    from bot.standins import omnimetic as omnimetic_standin  # openpyxl and all: only when serving

    omnimetic = omnimetic or omnimetic_standin.OmnimeticSandbox(clock=sandbox.clock, latency=sandbox.latency)
    app = Starlette(routes=[
        Mount(omnimetic_standin.MOUNT, app=omnimetic_standin.build_app(omnimetic)),
        Mount("", app=build_app(sandbox)),
    ])
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        async with serving(app, port, host=host):
            await stop.wait()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
