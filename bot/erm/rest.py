"""The ERM REST interface (documents ``000_55d5b70670e08d64.txt`` and ``001_…``): every documented
endpoint, typed answers, typed failures.

It signs in (``POST /user/login``) when it first needs a token and sends it raw in ``Authorization``,
as the REST documents do; on a 401 it signs in again (once, however many requests noticed) and
repeats the request once. It never repeats a code generation for any other reason (see
:mod:`bot.erm.wire`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Literal
from urllib.parse import quote

from pydantic import ValidationError

from bot.erm.backend import ProductId, check_days, check_product_id
from bot.erm.errors import ErmAuthError, ErmInvalidResponse, ErmRateLimited, ErmRefused
from bot.erm.models import Avatar, GeneratedCode, HistoryMetadata, HistoryPage, Item, Login
from bot.erm.wire import ErmHttp
from bot.remote import first_error

_FORM = {"Content-Type": "application/x-www-form-urlencoded"}


class RestErm(ErmHttp):
    """An async client of the ERM REST API; an :class:`~bot.erm.backend.ErmBackend`."""

    api: Literal["rest"] = "rest"

    def _authorization(self, token: str) -> str:
        return token  # the REST documents send the raw token

    async def _sign_in(self) -> Login:
        """``POST /user/login``."""
        body = {"username": self.username, "password": self._password.get_secret_value()}
        response = await self._send("POST", "/user/login", json=body, token=None, what="/user/login")
        if 400 <= response.status_code < 500:
            raise ErmAuthError(
                f"the ERM refused the username or password for {self.username}", status=response.status_code
            )
        payload = self._payload(response)
        try:
            return Login.model_validate(payload)
        except ValidationError:
            raise ErmInvalidResponse("the ERM's login answer has no access token") from None

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
            raise ErmInvalidResponse(f"the ERM's answer to {path} is not a valid code: {first_error(exc)}") from None

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
            raise ErmInvalidResponse(
                f"the ERM's code history is not in the documented shape: {first_error(exc)}"
            ) from None

    async def history_metadata(self) -> HistoryMetadata:
        """``GET /oves/codeHistory_Metadata``."""
        payload = await self._call("GET", "/oves/codeHistory_Metadata", headers=_FORM)
        return self._model(HistoryMetadata, payload, "code history metadata")

    async def avatar(self, item_id: ProductId) -> Avatar:
        """``GET /oves/avatarAttr/{itemId}``: the device's configuration attributes."""
        payload = await self._call("GET", f"/oves/avatarAttr/{_segment(item_id)}")
        return self._model(Avatar, payload, "avatar")

    async def assigned_items(self, offset: int = 0, limit: int = 100) -> list[Item]:
        """``GET /oves/assignedItemsList/{offset}/{limit}``: the devices assigned to us."""
        payload = await self._call("GET", f"/oves/assignedItemsList/{int(offset)}/{int(limit)}", headers=_FORM)
        items = payload if isinstance(payload, list) else _first_list(payload)
        if items is None:
            raise ErmInvalidResponse("the ERM's assigned items answer holds no list")
        return [self._model(Item, item, "assigned item") for item in items]

    async def item(self, product_id: ProductId) -> Item:
        """``GET /oves/assignedItems/{id}``: one assigned device."""
        payload = await self._call("GET", f"/oves/assignedItems/{_segment(product_id)}", headers=_FORM)
        return self._model(Item, payload, "assigned item")

    async def items(self, page_size: int = 100, search: str | None = None) -> AsyncIterator[list[Item]]:
        """Every assigned device, page by page (``assignedItemsList``); REST cannot search, so
        ``search`` keeps the items one of whose ids or description holds it (ignoring case)."""
        offset = 0
        while True:
            page = await self.assigned_items(offset, page_size)
            yield [item for item in page if search is None or _matches(item, search)]
            if len(page) < page_size:
                return
            offset += len(page)

    # -- the wire -------------------------------------------------------------------------

    async def _call(
        self, method: str, path: str, *, json: dict[str, Any] | None = None, headers: dict[str, str] | None = None,
        generation: bool = False,
    ) -> Any:
        token = await self._current_token()
        response = await self._send(method, path, json=json, headers=headers, token=token, what=path,
                                    generation=generation)
        if response.status_code == 401:
            token = await self._renew_token(stale=token)
            response = await self._send(method, path, json=json, headers=headers, token=token, what=path,
                                        generation=generation)
            if response.status_code == 401:
                raise ErmAuthError("the ERM refused a fresh access token", status=401)
        if response.status_code == 429:
            raise ErmRateLimited(self._erm_words(response), status=429)
        if 400 <= response.status_code < 500:
            raise ErmRefused(self._erm_words(response), status=response.status_code)
        return self._payload(response)


def _segment(product_id: ProductId) -> str:
    return quote(str(check_product_id(product_id)), safe="")


def _first_list(payload: Any) -> list[Any] | None:
    if isinstance(payload, dict):
        for value in payload.values():
            if isinstance(value, list):
                return value
    return None


def _matches(item: Item, search: str) -> bool:
    needle = search.casefold()
    return any(needle in text.casefold() for text in [*item.ids, item.description or ""])
