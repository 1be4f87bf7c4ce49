"""The stand-in over HTTP, for a bot in another process (``paygbot run`` started by a test or a
benchmark) or one that must cross a real socket: ``POST|GET /bot<token>/<method>`` with
form-urlencoded, multipart (file uploads) or JSON bodies, served on loopback with the project's
one runner, :func:`bot.http.serving`. Give PTB ``base_url`` = what :func:`running` yields.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator
from typing import Any, Final
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bot.http import serving
from bot.standins.telegram.chats import FakeBotApi
from bot.standins.telegram.methods import BotApiMethods
from bot.standins.telegram.values import BotApiError, UploadedFile, bad_request
from bot.standins.telegram.wire import encode

_PARAM_RE: Final = re.compile(r';\s*([\w*-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;\s]*))')


def _header_params(value: str) -> tuple[str, dict[str, str]]:
    """``form-data; name="x"; filename="y"`` -> ``("form-data", {"name": "x", "filename": "y"})``."""
    main, _, rest = value.partition(";")
    params: dict[str, str] = {}
    for match in _PARAM_RE.finditer(";" + rest):
        quoted, bare = match.group(2), match.group(3)
        raw = quoted if quoted is not None else bare or ""
        if quoted is not None:
            raw = re.sub(r"\\(.)", r"\1", raw).replace("%22", '"')
        params[match.group(1).lower()] = raw
    return main.strip().lower(), params


def _parse_multipart(body: bytes, content_type: str) -> tuple[dict[str, str], dict[str, UploadedFile]]:
    """Fields and files of a ``multipart/form-data`` body (RFC 7578), with the standard library only."""
    _, params = _header_params(content_type)
    boundary = params.get("boundary")
    if not boundary:
        raise bad_request("can't parse multipart/form-data: no boundary")
    delimiter = b"\r\n--" + boundary.encode("latin-1")
    fields: dict[str, str] = {}
    files: dict[str, UploadedFile] = {}
    chunks = (b"\r\n" + body).split(delimiter)
    for chunk in chunks[1:]:
        if chunk.startswith(b"--"):
            break
        head, separator, content = chunk.partition(b"\r\n\r\n")
        if not separator:
            raise bad_request("can't parse multipart/form-data: a part has no header end")
        headers: dict[str, str] = {}
        for line in head.decode("utf-8", "replace").split("\r\n"):
            name, colon, value = line.partition(":")
            if colon:
                headers[name.strip().lower()] = value.strip()
        _, disposition = _header_params(headers.get("content-disposition", ""))
        name = disposition.get("name")
        if name is None:
            continue
        if "filename" in disposition:
            files[name] = UploadedFile(content, disposition["filename"] or None, headers.get("content-type"))
        else:
            fields[name] = content.decode("utf-8", "replace")
    return fields, files


async def _raw_params(request: Request) -> dict[str, Any]:
    """The request's parameters as sent: query string, then the body (form, multipart or JSON)."""
    raw: dict[str, Any] = dict(request.query_params)
    body = await request.body()
    content_type = request.headers.get("content-type", "")
    mime = content_type.partition(";")[0].strip().lower()
    if body:
        if mime == "application/json":
            try:
                data = json.loads(body)
            except ValueError:
                raise bad_request("can't parse JSON encoded request body") from None
            if not isinstance(data, dict):
                raise bad_request("JSON object expected as request body")
            raw.update(data)
        elif mime == "multipart/form-data":
            fields, files = _parse_multipart(body, content_type)
            raw.update(fields)
            raw.update(files)
        else:
            raw.update(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    return raw


def _answer(status: int, body: dict[str, Any]) -> Response:
    return Response(encode(body), status_code=status, media_type="application/json")


def build_app(api: FakeBotApi) -> Starlette:
    """The ASGI app serving ``api`` (add middleware to it before it is served)."""
    methods = BotApiMethods(api)

    async def endpoint(request: Request) -> Response:
        token, method = request.path_params["token"], request.path_params["method"]
        try:
            if (refused := methods.refusal(token, method)) is not None:
                raise refused
            raw = await _raw_params(request)
        except BotApiError as error:
            return _answer(error.error_code, error.envelope())
        call = methods.call(token, method, raw)
        if method.lower() != "getupdates":
            return _answer(*await call)
        # A long poll ends when its client goes away (after the body, the next ASGI message is
        # the disconnect), so that a stopped bot's poll does not hold the server up.
        answering = asyncio.ensure_future(call)
        gone = asyncio.ensure_future(request.receive())
        try:
            await asyncio.wait({answering, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
            if not answering.done():
                answering.cancel()  # the client is gone (or this handler is being stopped)
        if not answering.done() or answering.cancelled():
            return _answer(499, BotApiError(499, "Client Closed Request").envelope())
        return _answer(*answering.result())

    async def not_found(request: Request) -> Response:
        return _answer(404, BotApiError(404, "Not Found").envelope())

    return Starlette(
        routes=[
            Route("/bot{token}/{method}", endpoint, methods=["GET", "POST"]),
            Route("/{path:path}", not_found, methods=["GET", "POST", "PUT", "DELETE", "PATCH"]),
        ]
    )


@contextlib.asynccontextmanager
async def running(
    api: FakeBotApi, host: str = "127.0.0.1", port: int = 0, *, app: Starlette | None = None
) -> AsyncIterator[str]:
    """Serve ``api`` on this event loop for the duration of the block; yields the ``base_url`` to
    give PTB (``http://host:port/bot``; PTB appends the token). ``port=0`` takes a free port;
    ``app`` is the app to serve (default: :func:`build_app`; pass one to add middleware first)."""
    api.closing = False
    async with serving(app or build_app(api), port, host=host) as bound:
        try:
            yield f"http://{host}:{bound}/bot"
        finally:
            api.end_polls()  # waiting long polls answer now, so the server stops at once
