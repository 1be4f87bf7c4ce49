"""The ERM REST client: every documented endpoint, typed answers, typed failures.

One :class:`ErmClient` per process. It logs in when it first needs a token, keeps it, and on
a 401 logs in again (once, however many requests noticed) and repeats the request once. It
never repeats a code generation for any other reason: a generation whose outcome is unknown
is for the caller to settle from the code history (see :mod:`bot.erm.errors`).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import SecretStr, ValidationError

from bot.erm.errors import (
    ErmAuthError,
    ErmError,
    ErmInvalidResponse,
    ErmOutcomeUnknown,
    ErmRateLimited,
    ErmRefused,
    ErmUnavailable,
)
from bot.erm.models import (
    AssignedItem,
    Avatar,
    GeneratedCode,
    HistoryMetadata,
    HistoryPage,
    Login,
)
from bot.logs import register_secret

log = logging.getLogger("paygbot.erm")

ProductId = str | int
MIN_DAYS, MAX_DAYS = 1, 1095
_PRODUCT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)
_FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def check_product_id(product_id: ProductId) -> ProductId:
    """Refuse ids the ERM could never know (empty, huge, odd characters) before anything is sent."""
    if isinstance(product_id, bool) or not isinstance(product_id, (str, int)):
        raise ValueError("a device id is text or a whole number")
    if isinstance(product_id, int):
        if product_id < 0:
            raise ValueError("a numeric device id is not negative")
        return product_id
    if not _PRODUCT_ID.match(product_id):
        raise ValueError("a device id is 1 to 64 letters, digits, '-', '_', '.' or ':'")
    return product_id


def check_days(days: int) -> int:
    """The documented range of a days code."""
    if isinstance(days, bool) or not isinstance(days, int) or not MIN_DAYS <= days <= MAX_DAYS:
        raise ValueError(f"days must be a whole number from {MIN_DAYS} to {MAX_DAYS}")
    return days


class ErmClient:
    """An async client of the ERM REST API (``000_55d5b70670e08d64.txt``, ``001_…``)."""

    def __init__(
        self,
        base_url: str,
        username: str,
        password: str | SecretStr,
        *,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
        max_connections: int = 200,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.username = username
        self._password = password if isinstance(password, SecretStr) else SecretStr(password)
        register_secret(self._password.get_secret_value())
        self.timeout = timeout
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            timeout=httpx.Timeout(timeout),
            transport=transport,
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            headers={"Accept": "application/json"},
        )
        self._token: SecretStr | None = None
        self._login_lock = asyncio.Lock()
        self.logins = 0

    async def __aenter__(self) -> ErmClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- authentication -------------------------------------------------------------------

    async def login(self) -> Login:
        """``POST /user/login``: get and keep a fresh access token."""
        body = {"username": self.username, "password": self._password.get_secret_value()}
        response = await self._send("POST", "/user/login", json=body, token=None, generation=False)
        if 400 <= response.status_code < 500:
            raise ErmAuthError(
                f"the ERM refused the username or password for {self.username}", status=response.status_code
            )
        payload = self._payload(response)
        try:
            result = Login.model_validate(payload)
        except ValidationError:
            raise ErmInvalidResponse("the ERM's login answer has no access token") from None
        self._token = SecretStr(result.access_token)
        register_secret(result.access_token)
        self.logins += 1
        log.info("logged in to the ERM as %s", self.username)
        return result

    async def _current_token(self) -> str:
        if self._token is None:
            async with self._login_lock:
                if self._token is None:
                    await self.login()
        assert self._token is not None
        return self._token.get_secret_value()

    async def _renew_token(self, stale: str) -> str:
        """Log in again unless another request already did since ``stale`` was refused."""
        async with self._login_lock:
            if self._token is None or self._token.get_secret_value() == stale:
                self._token = None
                await self.login()
        assert self._token is not None
        return self._token.get_secret_value()

    # -- code generation (never repeated here but after a 401) -----------------------------

    async def days_code(self, product_id: ProductId, days: int) -> GeneratedCode:
        """``POST /otp/daysCode/v2``: a code adding ``days`` (1..1095) of credit."""
        body = {"productId": check_product_id(product_id), "days": check_days(days)}
        return await self._generate("/otp/daysCode/v2", body)

    async def free_code(self, product_id: ProductId) -> GeneratedCode:
        """``POST /code/code/freecodeotp/v2``: a code that unlocks the device for good."""
        return await self._generate("/code/code/freecodeotp/v2", {"productId": check_product_id(product_id)})

    async def reset_code(self, product_id: ProductId) -> GeneratedCode:
        """``POST /code/code/resetcode/v2``: a code that sets the device to 0 days, locked."""
        return await self._generate("/code/code/resetcode/v2", {"productId": check_product_id(product_id)})

    async def _generate(self, path: str, body: dict[str, Any]) -> GeneratedCode:
        payload = await self._call("POST", path, json=body, generation=True)
        try:
            return GeneratedCode.model_validate(payload)
        except ValidationError as exc:
            raise ErmInvalidResponse(f"the ERM's answer to {path} is not a valid code: {_first(exc)}") from None

    # -- reading --------------------------------------------------------------------------

    async def code_history(self, product_id: ProductId, offset: int = 0, limit: int = 10) -> HistoryPage:
        """``GET /oves/v2/codeHistoryList/{id}/{offset}/{limit}``: committed codes, newest first."""
        if offset < 0 or not 1 <= limit <= 1000:
            raise ValueError("offset is 0 or more and limit 1 to 1000")
        path = f"/oves/v2/codeHistoryList/{_segment(product_id)}/{offset}/{limit}"
        payload = await self._call("GET", path, headers=_FORM)
        try:
            return HistoryPage.from_wire(payload)
        except (ValidationError, KeyError, TypeError) as exc:
            raise ErmInvalidResponse(f"the ERM's code history is not in the documented shape: {_first(exc)}") from None

    async def history_metadata(self) -> HistoryMetadata:
        """``GET /oves/codeHistory_Metadata``."""
        payload = await self._call("GET", "/oves/codeHistory_Metadata", headers=_FORM)
        return self._model(HistoryMetadata, payload, "code history metadata")

    async def avatar(self, item_id: ProductId) -> Avatar:
        """``GET /oves/avatarAttr/{itemId}``: the device's configuration attributes."""
        payload = await self._call("GET", f"/oves/avatarAttr/{_segment(item_id)}")
        return self._model(Avatar, payload, "avatar")

    async def assigned_items(self, offset: int = 0, limit: int = 100) -> list[AssignedItem]:
        """``GET /oves/assignedItemsList/{offset}/{limit}``: the devices assigned to us."""
        payload = await self._call("GET", f"/oves/assignedItemsList/{int(offset)}/{int(limit)}", headers=_FORM)
        items = payload if isinstance(payload, list) else _first_list(payload)
        if items is None:
            raise ErmInvalidResponse("the ERM's assigned items answer holds no list")
        return [self._model(AssignedItem, item, "assigned item") for item in items]

    async def assigned_item(self, product_id: ProductId) -> AssignedItem:
        """``GET /oves/assignedItems/{id}``: one assigned device."""
        payload = await self._call("GET", f"/oves/assignedItems/{_segment(product_id)}", headers=_FORM)
        return self._model(AssignedItem, payload, "assigned item")

    # -- the wire -------------------------------------------------------------------------

    async def _call(
        self,
        method: str,
        path: str,
        *,
        json: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        generation: bool = False,
    ) -> Any:
        token = await self._current_token()
        response = await self._send(method, path, json=json, headers=headers, token=token, generation=generation)
        if response.status_code == 401:
            token = await self._renew_token(stale=token)
            response = await self._send(method, path, json=json, headers=headers, token=token, generation=generation)
            if response.status_code == 401:
                raise ErmAuthError("the ERM refused a fresh access token", status=401)
        if response.status_code == 429:
            raise ErmRateLimited(self._erm_words(response), status=429)
        if 400 <= response.status_code < 500:
            raise ErmRefused(self._erm_words(response), status=response.status_code)
        return self._payload(response)

    async def _send(
        self,
        method: str,
        path: str,
        *,
        json: dict[str, Any] | None,
        token: str | None,
        generation: bool,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """One HTTP exchange, its failures turned into :mod:`bot.erm.errors` types."""
        sent_headers = dict(headers or {})
        if token is not None:
            sent_headers["Authorization"] = token
        started = time.perf_counter()
        try:
            response = await self._http.request(method, path, json=json, headers=sent_headers)
        except _NOT_SENT as exc:
            raise ErmUnavailable(f"the ERM at {self.base_url} could not be reached ({type(exc).__name__})") from None
        except httpx.TimeoutException:
            raise ErmOutcomeUnknown(f"no answer from the ERM within {self.timeout:g} s to {path}") from None
        except httpx.TransportError as exc:
            raise ErmOutcomeUnknown(f"the ERM's answer to {path} was cut off ({type(exc).__name__})") from None
        log.debug(
            "ERM %s %s -> %s in %.0f ms", method, path, response.status_code, (time.perf_counter() - started) * 1000
        )
        if response.status_code >= 500:
            raise ErmUnavailable(
                f"the ERM failed ({response.status_code}): {self._erm_words(response)}", status=response.status_code
            )
        return response

    def _payload(self, response: httpx.Response) -> Any:
        if not 200 <= response.status_code < 300:
            raise ErmInvalidResponse(f"the ERM answered with status {response.status_code}", status=response.status_code)
        try:
            return response.json()
        except ValueError:
            raise ErmInvalidResponse(
                f"the ERM's answer is not JSON: {self._scrub(_snippet(response.text))}", status=response.status_code
            ) from None

    def _erm_words(self, response: httpx.Response) -> str:
        """The ERM's own reason (``message`` or ``error``), or a short piece of its body."""
        try:
            body = response.json()
        except ValueError:
            body = None
        words = None
        if isinstance(body, dict):
            words = body.get("message") or body.get("error")
        if not isinstance(words, str) or not words.strip():
            words = _snippet(response.text) or f"HTTP {response.status_code}"
        return self._scrub(words.strip())

    def _scrub(self, text: str) -> str:
        """Remove our own secrets from text the ERM sent back, in case it echoes them."""
        for secret in (self._token, self._password):
            value = secret.get_secret_value() if secret else ""
            if value:
                text = text.replace(value, "***")
        return text

    @staticmethod
    def _model(model: Any, payload: Any, what: str) -> Any:
        try:
            return model.model_validate(payload)
        except ValidationError as exc:
            raise ErmInvalidResponse(f"the ERM's {what} is not in the documented shape: {_first(exc)}") from None


def _segment(product_id: ProductId) -> str:
    return quote(str(check_product_id(product_id)), safe="")


def _first(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        return f"{where}: {error['msg']}" if where else str(error["msg"])
    return type(exc).__name__


def _first_list(payload: Any) -> list[Any] | None:
    if isinstance(payload, dict):
        for value in payload.values():
            if isinstance(value, list):
                return value
    return None


def _snippet(text: str) -> str:
    """A short, single-line piece of a body (an HTML error page's title or first words)."""
    title = re.search(r"<title>(.*?)</title>", text, re.I | re.S)
    plain = title.group(1) if title else re.sub(r"<[^>]+>", " ", text)
    return " ".join(plain.split())[:200]


__all__ = ["ErmClient", "ErmError", "ProductId", "check_days", "check_product_id"]
