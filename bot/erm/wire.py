"""What both ERM interfaces share on the wire: the connections (:mod:`bot.erm.transport`) with the configured timeout, the
access token (signed in on demand, again when refused: once, however many requests noticed), and
the same reading of every failure into :mod:`bot.erm.errors` types.

Nothing here repeats a code generation: a generation whose outcome is unknown is for the caller to
settle from the code history. The password and the token never reach a log line, a message or an
exception: they are kept as ``SecretStr``, registered with :func:`bot.logs.register_secret`, and
scrubbed from anything the ERM sends back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from contextvars import ContextVar
from typing import Any

import httpx
from pydantic import SecretStr, ValidationError

from bot.erm.errors import ErmInvalidResponse, ErmOutcomeUnknown, ErmUnavailable
from bot.erm.models import Login
from bot.erm.transport import AiohttpTransport
from bot.logs import register_secret
from bot.remote import SharedToken, environment_proxy, first_error, scrub, snippet

log = logging.getLogger("paygbot.erm")

_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)

GENERATIONS_AT_ONCE = 32
"""Code generations in flight at once (the issuing engine sends no more: its ``max_concurrency``)."""
READS_AT_ONCE = 16
"""Every other ERM call in flight at once (sign-ins, device lookups, histories, syncs): a burst of new devices
can never take the connections the codes need. The connections are for both: 48."""


_HEADERS = {"Accept": "application/json", "Accept-Encoding": "gzip, deflate", "User-Agent": "paygbot"}
"""What every request to the ERM carries besides its own (the ``Host`` and the body's are httpx's)."""

ROUND_TRIPS_KEPT = 256
"""How many of the newest successful exchanges' round trips a connection keeps (:attr:`ErmHttp.round_trips`)."""

_GENERATION_ROUND_TRIP: ContextVar[float | None] = ContextVar("erm_generation_round_trip", default=None)


def generation_round_trip() -> float | None:
    """Seconds from sending the last code generation exchanged in this task to its answer read: the exchange that
    answered, without the sign-in or the refused token before it (:mod:`bot.issuing.anticipation` needs the ERM's
    own time, not ours)."""
    return _GENERATION_ROUND_TRIP.get()


class ErmHttp:
    """An ERM interface's connection: the base of :class:`~bot.erm.rest.RestErm` and
    :class:`~bot.erm.graphql.GraphQLErm`, which say how to sign in (:meth:`_sign_in`) and how the token
    is sent (:meth:`_authorization`)."""

    def __init__(
        self,
        url: str,
        username: str,
        password: str | SecretStr,
        *,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
        generations: int = GENERATIONS_AT_ONCE,
        reads: int = READS_AT_ONCE,
    ) -> None:
        self.base_url = url.rstrip("/")
        self.username = username
        self._password = password if isinstance(password, SecretStr) else SecretStr(password)
        register_secret(self._password.get_secret_value())
        self.timeout = timeout
        self._reads = asyncio.Semaphore(reads)
        self._extensions = {"timeout": httpx.Timeout(timeout).as_dict()}
        self._transport: httpx.AsyncBaseTransport = transport if transport is not None else AiohttpTransport(
            connections=generations + reads, proxy=environment_proxy(self.base_url))
        self._token = SharedToken()
        self.logins = 0
        self.round_trips: deque[float] = deque(maxlen=ROUND_TRIPS_KEPT)
        """Seconds from sending to the answer read, of the newest exchanges the ERM answered with success (any kind:
        sign-ins, reads, generations; a wait for room to send left out)."""

    async def __aenter__(self) -> ErmHttp:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._transport.aclose()

    # -- the token ------------------------------------------------------------------------

    async def login(self) -> Login:
        """Sign in now and keep the fresh access token."""
        result = await self._sign_in()
        self._token.keep(result.access_token)
        self.logins += 1
        log.info("logged in to the ERM as %s", self.username)
        return result

    async def _sign_in(self) -> Login:
        raise NotImplementedError

    def _authorization(self, token: str) -> str:
        """The ``Authorization`` header's value for ``token``."""
        raise NotImplementedError

    async def _current_token(self) -> str:
        return await self._token.current(self.login)

    async def _renew_token(self, stale: str) -> str:
        """Sign in again unless another request already did since ``stale`` was refused."""
        return await self._token.renew(stale, self.login)

    # -- one exchange ---------------------------------------------------------------------

    async def _send(
        self,
        method: str,
        path: str,
        *,
        json: dict[str, Any] | None,
        token: str | None,
        what: str,
        headers: dict[str, str] | None = None,
        generation: bool = False,
    ) -> httpx.Response:
        """One HTTP exchange with ``base_url + path``; its failures turned into :mod:`bot.erm.errors`
        types (``what`` names the request in their messages). A 5xx is :class:`ErmUnavailable` — but for a
        code ``generation`` only a 503 ("not now") is: any other may come after the code was saved, so it
        is :class:`ErmOutcomeUnknown`, settled from the history."""
        sent_headers = dict(headers or {})
        if token is not None:
            sent_headers["Authorization"] = self._authorization(token)
        try:
            async with contextlib.nullcontext() if generation else self._reads:
                started = time.perf_counter()
                response = await self._request(method, self.base_url + path, json=json, headers=sent_headers)
                round_trip = time.perf_counter() - started
        except _NOT_SENT as exc:
            raise ErmUnavailable(f"the ERM at {self.base_url} could not be reached ({type(exc).__name__})") from None
        except httpx.TimeoutException:
            raise ErmOutcomeUnknown(f"no answer from the ERM within {self.timeout:g} s to {what}") from None
        except httpx.TransportError as exc:
            raise ErmOutcomeUnknown(f"the ERM's answer to {what} was cut off ({type(exc).__name__})") from None
        log.debug("ERM %s %s -> %s in %.0f ms", method, what, response.status_code, round_trip * 1000)
        if 200 <= response.status_code < 300:  # (a refusal or a failure may come from a gateway, sooner)
            self.round_trips.append(round_trip)
        if generation:
            _GENERATION_ROUND_TRIP.set(round_trip)
        if response.status_code >= 500:
            words = self._erm_words(response)
            if generation and response.status_code != 503:
                # a gateway's 502/504, or a server failing after it saved the code: it may exist
                raise ErmOutcomeUnknown(f"the ERM failed ({response.status_code}) on {what}: {words}",
                                        status=response.status_code)
            raise ErmUnavailable(f"the ERM failed ({response.status_code}): {words}", status=response.status_code)
        return response

    async def _request(self, method: str, url: str, *, json: Any, headers: dict[str, str]) -> httpx.Response:
        """One request, read whole. Straight to the transport, as httpx's client would send it but without the
        client's layers: the ERM sets no cookies, redirects nowhere and takes its token in a header we write, and
        those layers (building, merging and cookie-matching each request) were about a quarter of each call's
        CPU."""
        request = httpx.Request(method, url, json=json, headers={**_HEADERS, **headers}, extensions=self._extensions)
        response = await self._transport.handle_async_request(request)
        try:
            await response.aread()
        finally:
            await response.aclose()
        response.request = request
        return response

    def _payload(self, response: httpx.Response) -> Any:
        """The JSON of a 2xx answer."""
        if not 200 <= response.status_code < 300:
            raise ErmInvalidResponse(f"the ERM answered with status {response.status_code}", status=response.status_code)
        try:
            return response.json()
        except ValueError:
            raise ErmInvalidResponse(
                f"the ERM's answer is not JSON: {self._scrub(snippet(response.text))}", status=response.status_code
            ) from None

    def _erm_words(self, response: httpx.Response) -> str:
        """The ERM's own reason (``message``, ``error``, or a GraphQL ``errors[0].message``), or a short
        piece of its body."""
        try:
            body = response.json()
        except ValueError:
            body = None
        words = None
        if isinstance(body, dict):
            words = body.get("message") or body.get("error")
            errors = body.get("errors")
            if not words and isinstance(errors, list) and errors and isinstance(errors[0], dict):
                words = errors[0].get("message")
        if not isinstance(words, str) or not words.strip():
            words = snippet(response.text) or f"HTTP {response.status_code}"
        return self._scrub(words.strip())

    def _scrub(self, text: str) -> str:
        """Remove our own secrets from text the ERM sent back, in case it echoes them."""
        return scrub(text, self._token.secret, self._password)

    @staticmethod
    def _model(model: Any, payload: Any, what: str) -> Any:
        try:
            return model.model_validate(payload)
        except ValidationError as exc:
            raise ErmInvalidResponse(f"the ERM's {what} is not in the documented shape: {first_error(exc)}") from None
