"""The Omnimetic client (document ``004_0aabc865ae6a65f3.txt``): every documented endpoint, typed
answers, typed failures.

It asks for an access token (``POST /access-token`` with the client id and secret) when it first
needs one, and sends it as ``Authorization: Bearer <token>`` under the account id the same answer
gave (``/accounts/<id>/…``). The document gives a token one hour of life, so it asks for a new one
before that (when the token is older than :data:`RENEW_AFTER` by the clock), and again on a 401:
once, however many requests noticed, then repeats the request once.

Nothing is written at Omnimetic, so any failure to get an answer is simply
:class:`~bot.omnimetic.errors.OmnimeticUnavailable`. The secret and every token are kept as
``SecretStr``, registered with :func:`bot.logs.register_secret`, scrubbed from anything Omnimetic
sends back, and never in a log line, an exception or a repr.
"""

from __future__ import annotations

import logging
import re
import time
from datetime import UTC, date, timedelta
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, SecretStr, ValidationError

from bot.clock import Clock, SystemClock
from bot.logs import register_secret
from bot.omnimetic.errors import (
    OmnimeticAuthError,
    OmnimeticNotFound,
    OmnimeticRefused,
    OmnimeticUnavailable,
)
from bot.omnimetic.models import AccessToken, HourUsage, MonthUsage, ServiceAccount
from bot.remote import SharedToken, first_error, scrub, snippet

log = logging.getLogger("paygbot.omnimetic")

TOKEN_LIFETIME = timedelta(hours=1)
"""The document: "Omnimetic token has a one-hour active life"."""
RENEW_AFTER = timedelta(minutes=55)
"""A token older than this is replaced before it is used, so none runs out mid-request."""

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
_ACCOUNT_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")

Model = TypeVar("Model", bound=BaseModel)


def check_account_id(value: str) -> str:
    """Refuse a utility service account id Omnimetic could never know (empty, long, odd characters)
    before anything is sent; the id as given otherwise."""
    if not isinstance(value, str) or not _ACCOUNT_ID.fullmatch(value):
        raise ValueError("a utility service account id is 1 to 64 letters, digits, '-' or '_'")
    return value


class OmnimeticClient:
    """An async client of the Omnimetic API: one httpx client, one token, shared by every caller."""

    def __init__(
        self,
        base_url: str,
        client_id: str,
        secret: str | SecretStr,
        *,
        name: str = "paygbot",
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.client_id = client_id
        self.name = name
        """The ``name`` sent with the keys (the document's example sends "Omnimetic")."""
        self._secret = secret if isinstance(secret, SecretStr) else SecretStr(secret)
        register_secret(self._secret.get_secret_value())
        self.timeout = timeout
        self._clock: Clock = clock or SystemClock()
        # -L in the document's curl for historical-data and interval-data: redirects are followed
        # (httpx drops the Authorization header when one leads to another host).
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout), transport=transport, follow_redirects=True,
            headers={"Accept": "application/json"},
        )
        self._token = SharedToken(renew_after=RENEW_AFTER, clock=self._clock)
        self.logins = 0
        """Access tokens received (the first, and each renewal)."""
        self.account_id: str | None = None
        """The access-token answer's ``id``: the ``:accountId`` of every other path."""

    def __repr__(self) -> str:
        return (f"OmnimeticClient(base_url={self.base_url!r}, client_id={self.client_id!r}, "
                f"account_id={self.account_id!r}, logins={self.logins})")

    async def __aenter__(self) -> OmnimeticClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- the token ------------------------------------------------------------------------

    async def login(self) -> AccessToken:
        """``POST /access-token``: a fresh token (kept) and the account id (``account_id``)."""
        body = {"clientId": self.client_id, "name": self.name, "secret": self._secret.get_secret_value()}
        asked_at = self._clock.now()
        response = await self._send("POST", "/access-token", json=body, token=None)
        if 400 <= response.status_code < 500:
            raise OmnimeticAuthError(
                f"Omnimetic refused the keys of client {self.client_id} ({self._words(response)})",
                status=response.status_code,
            )
        payload = self._payload(response, "/access-token")
        try:
            answer = AccessToken.model_validate(payload)
        except ValidationError:
            raise OmnimeticUnavailable("Omnimetic's access-token answer holds no id and token") from None
        try:
            account_id = check_account_id(answer.id)
        except ValueError:
            raise OmnimeticUnavailable("Omnimetic's access-token answer holds no usable account id") from None
        self._token.keep(answer.token, asked_at)
        self.account_id = account_id
        self.logins += 1
        log.info("logged in to Omnimetic as client %s", self.client_id)
        return answer

    async def _current_token(self) -> str:
        return await self._token.current(self.login)

    async def _renew_token(self, stale: str) -> str:
        """A new token, unless another request already got one since ``stale`` was refused."""
        return await self._token.renew(stale, self.login)

    # -- the documented reads -------------------------------------------------------------

    async def info(self, service_account_id: str) -> ServiceAccount:
        """``…/info``: the utility service account's address, linked date and legal names."""
        payload = await self._get_json(service_account_id, "info")
        return self._model(ServiceAccount, payload, "info")

    async def history(self, service_account_id: str, year: int) -> list[MonthUsage]:
        """``…/historical-data?year=YYYY``: one row per month of ``year`` that has figures."""
        if isinstance(year, bool) or not isinstance(year, int) or not 1 <= year <= 9999:
            raise ValueError("a year is a whole number such as 2024")
        payload = await self._get_json(service_account_id, "historical-data", {"year": str(year)})
        rows = [self._model(MonthUsage, row, "historical data") for row in self._rows(payload, "historical data")]
        for row in rows:
            try:
                row.month_number  # noqa: B018 - read to check the month's name
            except ValueError:
                raise OmnimeticUnavailable(f"Omnimetic's historical data names no month: {row.month[:40]!r}") from None
        return rows

    async def interval(self, service_account_id: str, start: date, end: date) -> list[HourUsage]:
        """``…/interval-data?startDate=&endDate=``: one row per hour of the days ``start`` to ``end``."""
        for day in (start, end):
            if not isinstance(day, date):
                raise ValueError("startDate and endDate are dates")
        params = {"startDate": f"{start:%Y-%m-%d}", "endDate": f"{end:%Y-%m-%d}"}
        payload = await self._get_json(service_account_id, "interval-data", params)
        rows = [self._model(HourUsage, row, "interval data") for row in self._rows(payload, "interval data")]
        return [row if row.date.tzinfo else row.model_copy(update={"date": row.date.replace(tzinfo=UTC)})
                for row in rows]

    async def download(self, service_account_id: str) -> bytes:
        """``…/download-data``: Omnimetic's spreadsheet of the account (the ``.xlsx`` file's bytes)."""
        response = await self._get(service_account_id, "download-data", None, accept=f"{XLSX}, */*")
        content = response.content
        if not content.startswith(b"PK"):  # an .xlsx is a zip file
            raise OmnimeticUnavailable(
                f"Omnimetic's download is not an .xlsx file: {self._scrub(snippet(response.text)) or 'empty'}",
                status=response.status_code,
            )
        return content

    # -- the wire -------------------------------------------------------------------------

    def _path(self, service_account_id: str, what: str) -> str:
        return f"/accounts/{self.account_id}/utility-service-accounts/{service_account_id}/{what}"

    async def _get_json(self, service_account_id: str, what: str, params: dict[str, str] | None = None) -> Any:
        response = await self._get(service_account_id, what, params)
        return self._payload(response, what)

    async def _get(
        self, service_account_id: str, what: str, params: dict[str, str] | None, *, accept: str | None = None
    ) -> httpx.Response:
        """A ``GET`` of ``what`` for the account, renewing the token once on a 401; 4xx as errors."""
        account = check_account_id(service_account_id)
        headers = {"Accept": accept} if accept else None
        token = await self._current_token()
        response = await self._send("GET", self._path(account, what), params=params, token=token, headers=headers)
        if response.status_code == 401:
            token = await self._renew_token(stale=token)
            response = await self._send("GET", self._path(account, what), params=params, token=token,
                                        headers=headers)
            if response.status_code == 401:
                raise OmnimeticAuthError("Omnimetic refused a fresh token", status=401)
        if response.status_code == 404:
            raise OmnimeticNotFound(
                self._words(response, f"utility service account {account} not found"), status=404
            )
        if 400 <= response.status_code < 500:
            raise OmnimeticRefused(self._words(response), status=response.status_code)
        if not 200 <= response.status_code < 300:
            raise OmnimeticUnavailable(
                f"Omnimetic answered {what} with status {response.status_code}", status=response.status_code
            )
        return response

    async def _send(
        self,
        method: str,
        path: str,
        *,
        token: str | None,
        json: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """One exchange with ``base_url + path``; no answer, or a 5xx, is :class:`OmnimeticUnavailable`."""
        sent = dict(headers or {})
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        started = time.perf_counter()
        try:
            response = await self._http.request(method, self.base_url + path, json=json, params=params, headers=sent)
        except httpx.TimeoutException:
            raise OmnimeticUnavailable(f"no answer from Omnimetic within {self.timeout:g} s") from None
        except httpx.HTTPError as exc:
            raise OmnimeticUnavailable(
                f"Omnimetic at {self.base_url} could not be reached ({type(exc).__name__})"
            ) from None
        query = f"?{'&'.join(f'{key}={value}' for key, value in params.items())}" if params else ""
        log.debug("Omnimetic %s %s%s -> %s in %.0f ms", method, path, query, response.status_code,
                  (time.perf_counter() - started) * 1000)
        if response.status_code >= 500:
            raise OmnimeticUnavailable(
                f"Omnimetic failed ({response.status_code}): {self._words(response)}", status=response.status_code
            )
        return response

    def _payload(self, response: httpx.Response, what: str) -> Any:
        """The JSON of a 2xx answer."""
        if not 200 <= response.status_code < 300:
            raise OmnimeticUnavailable(
                f"Omnimetic answered {what} with status {response.status_code}", status=response.status_code
            )
        try:
            return response.json()
        except ValueError:
            raise OmnimeticUnavailable(
                f"Omnimetic's answer to {what} is not JSON: {self._scrub(snippet(response.text)) or 'empty'}",
                status=response.status_code,
            ) from None

    @staticmethod
    def _rows(payload: Any, what: str) -> list[Any]:
        if not isinstance(payload, list):
            raise OmnimeticUnavailable(f"Omnimetic's {what} is not a list of rows")
        return payload

    @staticmethod
    def _model(model: type[Model], payload: Any, what: str) -> Model:
        try:
            return model.model_validate(payload)
        except ValidationError as exc:
            raise OmnimeticUnavailable(
                f"Omnimetic's {what} is not in the documented shape: {first_error(exc)}"
            ) from None

    def _words(self, response: httpx.Response, default: str | None = None) -> str:
        """Omnimetic's own reason (``message`` or ``error``), a short piece of its body, or ``default``."""
        try:
            body = response.json()
        except ValueError:
            body = None
        words = (body.get("message") or body.get("error")) if isinstance(body, dict) else None
        if not isinstance(words, str) or not words.strip():
            words = snippet(response.text) or default or f"HTTP {response.status_code}"
        return self._scrub(" ".join(words.split())[:200])

    def _scrub(self, text: str) -> str:
        """Our own secret and token removed from text Omnimetic sent back, in case it echoes them."""
        return scrub(text, self._token.secret, self._secret)

