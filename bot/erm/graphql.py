"""The ERM GraphQL interface (documents ``002_a0f4851e292c4757.txt`` and ``003_…``), over plain httpx.

Why not a GraphQL client library: the bot sends six fixed documents (:mod:`bot.erm.queries`), so a
library's schema fetching, query building and caching would serve nothing, while what matters here —
the same timeouts, the same "never repeat a generation" rule, the same token renewal and the same
typed failures as the REST interface — is :mod:`bot.erm.wire`, shared by both. Answers are read into
the same pydantic models as REST's; the documents are validated against the sandbox's schema in the
tests (graphql-core), which is where a library would have helped.

The reading of an answer:

- ``errors`` (HTTP 200, or 4xx): a failure with the ERM's own words; its kind from
  ``extensions.response.statusCode`` (the documented shape), else ``extensions.code``
  (``UNAUTHENTICATED``, ``BAD_USER_INPUT``, ``NOT_FOUND``, ``TOO_MANY_REQUESTS``…). Unauthenticated
  means sign in again (once, shared by concurrent calls) and repeat once; 429 is "not yet"; another 4xx
  a refusal; anything else, for a generation, is an unknown outcome (settled from the history, never
  asked again), and for a reading, unavailable.
- A generation answered with a code *and* errors (a partial answer), or with a code not in the
  documented form (``codeHex``/``codeDec`` that do not match, the wrong ``codeType``): outcome unknown,
  never a code.
- A 5xx to a generation, other than 503, is an unknown outcome too (a gateway may fail after the code
  was saved), as over REST.
- The code history is read by the item's ERM id (``_id``), as the documents pass it; an item named by
  another of its ids is looked up once with ``getAllClientItems(search:)`` and remembered; an id two
  items hold is refused rather than guessed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from bot.erm import queries
from bot.erm.backend import ProductId, check_days, check_product_id
from bot.erm.errors import (
    ErmAuthError,
    ErmError,
    ErmInvalidResponse,
    ErmOutcomeUnknown,
    ErmRateLimited,
    ErmRefused,
    ErmUnavailable,
)
from bot.erm.models import CodeEvent, CodeType, GeneratedCode, HistoryPage, Item, Login
from bot.erm.wire import ErmHttp
from bot.remote import first_error

SIGN_INS = ("signInClient", "signInUser")
DESCRIPTION = "paygbot"
"""The ``description`` every generation carries (the documents' examples send one)."""

_STATUS_OF_CODE = {
    "UNAUTHENTICATED": 401,
    "FORBIDDEN": 403,
    "BAD_USER_INPUT": 400,
    "BAD_REQUEST": 400,
    "GRAPHQL_PARSE_FAILED": 400,
    "GRAPHQL_VALIDATION_FAILED": 400,
    "NOT_FOUND": 404,
    "TOO_MANY_REQUESTS": 429,
    "INTERNAL_SERVER_ERROR": 500,
}
_UNAUTHENTICATED_WORDS = {"unauthorized", "unauthenticated", "jwt expired", "invalid token"}


class _Unauthenticated(ErmRefused):
    """The token (or, signing in, the credentials) was refused."""


class _Code(BaseModel):
    model_config = ConfigDict(populate_by_name=True, frozen=True)

    code_type: str = Field(alias="codeType")
    code_hex: str = Field(alias="codeHex")
    code_dec: str = Field(alias="codeDec")


class GraphQLErm(ErmHttp):
    """An async client of the ERM GraphQL API; an :class:`~bot.erm.backend.ErmBackend`."""

    api: Literal["graphql"] = "graphql"

    def __init__(self, url: str, username: str, password: str | SecretStr, **options: Any) -> None:
        super().__init__(url, username, password, **options)
        self._sign_ins = list(SIGN_INS)
        self._erm_ids: dict[str, str] = {}
        """Any id of an item → its ERM id (ids never change)."""
        self._history_document = queries.CODE_HISTORY

    def _authorization(self, token: str) -> str:
        return f"Bearer {token}"

    async def _sign_in(self) -> Login:
        """``signInClient``, falling back to ``signInUser`` (or the other way round: the one that worked
        last is tried first)."""
        variables = {"email": self.username, "password": self._password.get_secret_value()}
        refusals: list[str] = []
        for name in list(self._sign_ins):
            try:
                answer = await self._exchange(queries.SIGN_IN[name], variables, token=None, field=name, sign_in=True)
            except ErmRefused as exc:
                refusals.append(exc.message)
                continue
            try:
                login = Login(access_token=answer["accessToken"], user_role=answer.get("roleName"))
            except (TypeError, KeyError, ValidationError):
                raise ErmInvalidResponse(f"the ERM's answer to {name} has no access token") from None
            self._sign_ins.remove(name)
            self._sign_ins.insert(0, name)
            return login
        raise ErmAuthError(f"the ERM refused the email or password for {self.username}: {refusals[-1]}", status=401)

    # -- code generation (never repeated here but after an unauthenticated answer) ------------

    async def days_code(self, product_id: ProductId, days: int) -> GeneratedCode:
        """``generateDaysCode``: a code adding ``days`` (1..1095) of credit."""
        variables = {"itemId": str(check_product_id(product_id)), "codeDays": check_days(days),
                     "description": DESCRIPTION}
        return await self._generate(queries.GENERATE_DAYS_CODE, variables, "generateDaysCode", CodeType.DAYS)

    async def free_code(self, product_id: ProductId) -> GeneratedCode:
        """``generateFreeCode``: a code that unlocks the device for good."""
        variables = {"itemId": str(check_product_id(product_id)), "description": DESCRIPTION}
        return await self._generate(queries.GENERATE_FREE_CODE, variables, "generateFreeCode", CodeType.FREE)

    async def reset_code(self, product_id: ProductId) -> GeneratedCode:
        """``generateResetCode``: a code that sets the device to 0 days, locked."""
        variables = {"itemId": str(check_product_id(product_id)), "description": DESCRIPTION}
        return await self._generate(queries.GENERATE_RESET_CODE, variables, "generateResetCode", CodeType.RESET)

    async def _generate(self, document: str, variables: dict[str, Any], field: str, kind: CodeType) -> GeneratedCode:
        value = await self._execute(document, variables, field=field, generation=True)
        try:
            answer = _Code.model_validate(value)
            if answer.code_type != kind.value:
                raise ValueError(f"codeType is {answer.code_type}, not {kind.value}")
            return GeneratedCode(code=answer.code_dec, otp_hash=answer.code_hex)
        except (ValidationError, ValueError) as exc:
            raise ErmInvalidResponse(f"the ERM's answer to {field} is not a valid code: {first_error(exc)}") from None

    # -- reading --------------------------------------------------------------------------

    async def code_history(self, product_id: ProductId, offset: int = 0, limit: int = 10) -> HistoryPage:
        """``getItemsForDownloadById``: every committed code of the item, served newest first a page at a
        time as the REST history is (the GraphQL query has no paging)."""
        if offset < 0 or not 1 <= limit <= 1000:
            raise ValueError("offset is 0 or more and limit 1 to 1000")
        erm_id = await self._erm_id(product_id)
        value = await self._history(erm_id)
        entry = _entry_for(value, erm_id)
        try:
            events = [CodeEvent.model_validate(node) for node in entry["codeHistory"]]
        except (ValidationError, KeyError, TypeError) as exc:
            raise ErmInvalidResponse(
                f"the ERM's code history is not in the documented shape: {first_error(exc)}"
            ) from None
        events.sort(key=lambda event: event.code_number, reverse=True)
        return HistoryPage(events=events[offset : offset + limit], count=len(events), offset=offset, limit=limit,
                           has_next_page=offset + limit < len(events))

    async def _history(self, erm_id: str) -> Any:
        """``getItemsForDownloadById``'s answer, with the ``ids`` variable typed as this ERM's schema wants
        (``[ID!]!``, else ``[String!]!``: learned from its refusal, then remembered)."""
        documents = [self._history_document] + [d for d in queries.HISTORIES if d != self._history_document]
        for document in documents:
            try:
                value = await self._execute(document, {"ids": [erm_id]}, field="getItemsForDownloadById")
            except ErmRefused as exc:
                if exc.status == 400 and "$ids" in exc.message and document != documents[-1]:
                    continue  # "Variable "$ids" of type … used in position expecting …": the other type
                raise
            self._history_document = document
            return value
        raise AssertionError("unreachable")

    async def item(self, product_id: ProductId) -> Item:
        """The item one of whose ids is ``product_id``, found with ``getAllClientItems(search:)`` (which
        matches parts of ids: only an item holding the id itself counts). An id two items hold is refused:
        which of them a code would go to cannot be told."""
        ref = str(check_product_id(product_id))
        found: dict[str, Item] = {}
        async for page in self.items(search=ref):
            for item in page:
                if ref in item.ids and item.erm_id:
                    found.setdefault(item.erm_id, item)
        if not found:
            raise ErmRefused(f"Product {ref} not found", status=404)
        if len(found) > 1:
            raise ErmRefused(f"{ref} names {len(found)} items at the ERM ({', '.join(sorted(found))}): use the "
                             "ERM id", status=409)
        [item] = found.values()
        self._erm_ids[ref] = item.erm_id or ""
        return item

    async def items(self, page_size: int = 100, search: str | None = None) -> AsyncIterator[list[Item]]:
        """``getAllClientItems``, walked page by page by cursor."""
        after: str | None = None
        seen: set[str] = set()
        while True:
            variables = {"first": page_size, "after": after, "search": search}
            value = await self._execute(queries.CLIENT_ITEMS, variables, field="getAllClientItems")
            edges, has_next = _edges(value)
            yield [self._model(Item, edge["node"], "item") for edge in edges]
            if not edges or has_next is False or (has_next is None and len(edges) < page_size):
                return
            after = edges[-1].get("cursor")
            if not isinstance(after, str) or after in seen:
                raise ErmInvalidResponse("the ERM's item pages do not move on (a missing or repeated cursor)")
            seen.add(after)

    async def _erm_id(self, product_id: ProductId) -> str:
        """The ERM id of the item ``product_id`` names, as :meth:`item` finds it (remembered)."""
        ref = str(check_product_id(product_id))
        if ref not in self._erm_ids:
            await self.item(ref)
        return self._erm_ids[ref]

    # -- the wire -------------------------------------------------------------------------

    async def _execute(self, document: str, variables: dict[str, Any], *, field: str, generation: bool = False) -> Any:
        """The value of ``field`` in the answer to ``document``; signed in again once when the token is
        refused."""
        token = await self._current_token()
        try:
            return await self._exchange(document, variables, token=token, field=field, generation=generation)
        except _Unauthenticated:
            token = await self._renew_token(stale=token)
        try:
            return await self._exchange(document, variables, token=token, field=field, generation=generation)
        except _Unauthenticated:
            raise ErmAuthError("the ERM refused a fresh access token", status=401) from None

    async def _exchange(
        self, document: str, variables: dict[str, Any], *, token: str | None, field: str, generation: bool = False,
        sign_in: bool = False,
    ) -> Any:
        response = await self._send("POST", "", json={"query": document, "variables": variables}, token=token,
                                    what=field, generation=generation)
        try:
            body = response.json()
        except ValueError:
            body = None
        data = body.get("data") if isinstance(body, dict) else None
        if generation and isinstance(data, dict) and data.get(field) is not None and body.get("errors"):
            # a code came back beside an error (whatever the error says, even "Unauthorized"): the code
            # may exist, and is neither taken nor asked for again
            words = self._scrub(_status_and_words(body["errors"], None)[1])
            raise ErmOutcomeUnknown(f"the ERM answered {field} with a code and an error ({words})")
        errors = body.get("errors") if isinstance(body, dict) else None
        if errors:
            raise self._failure(errors, response.status_code, field, generation, sign_in)
        if response.status_code == 401:
            raise _Unauthenticated(self._erm_words(response), status=401)
        if response.status_code == 429:
            raise ErmRateLimited(self._erm_words(response), status=429)
        if 400 <= response.status_code < 500:
            raise ErmRefused(self._erm_words(response), status=response.status_code)
        payload = self._payload(response)
        data = payload.get("data") if isinstance(payload, dict) else None
        if not isinstance(data, dict) or data.get(field) is None:
            raise ErmInvalidResponse(f"the ERM's answer to {field} holds no data")
        return data[field]

    def _failure(self, errors: Any, http_status: int, field: str, generation: bool, sign_in: bool) -> ErmError:
        """The typed failure an ``errors`` answer (without a code) is (see the module); signing in, any error
        but a server's failure is a refusal of the credentials or of the mutation."""
        status, words = _status_and_words(errors, http_status)
        words = self._scrub(words)
        if status == 401 or (sign_in and (status is None or status < 500)):
            return _Unauthenticated(words, status=status or 401)
        if status == 429:
            return ErmRateLimited(words, status=429)
        if status is not None and 400 <= status < 500:
            return ErmRefused(words, status=status)
        if generation:
            return ErmOutcomeUnknown(f"the ERM failed on {field} ({words})", status=status)
        return ErmUnavailable(f"the ERM failed on {field} ({words})", status=status)


def _status_and_words(errors: Any, http_status: int | None) -> tuple[int | None, str]:
    """The HTTP status the first error stands for — its own, else the answer's when not 2xx; None when
    neither says — and its message."""
    first = errors[0] if isinstance(errors, list) and errors else errors
    if not isinstance(first, dict):
        return None, "an error the ERM did not describe"
    words = first.get("message")
    words = " ".join(words.split())[:300] if isinstance(words, str) and words.strip() else "an error without words"
    extensions = first.get("extensions") if isinstance(first.get("extensions"), dict) else {}
    response = extensions.get("response") if isinstance(extensions.get("response"), dict) else {}
    status = response.get("statusCode")
    if isinstance(status, int) and not isinstance(status, bool) and 400 <= status <= 599:
        return status, words
    code = extensions.get("code")
    if isinstance(code, str) and code.upper() in _STATUS_OF_CODE:
        return _STATUS_OF_CODE[code.upper()], words
    if words.casefold() in _UNAUTHENTICATED_WORDS:
        return 401, words
    if http_status is not None and 400 <= http_status <= 599:
        return http_status, words
    return None, words


def _entry_for(value: Any, erm_id: str) -> dict[str, Any]:
    """The ``getItemsForDownloadById`` entry of the item ``erm_id``."""
    entries: Sequence[Any] = value if isinstance(value, list) else []
    for entry in entries:
        item = entry.get("item") if isinstance(entry, dict) else None
        if isinstance(item, dict) and item.get("_id") == erm_id:
            return entry
    raise ErmInvalidResponse(f"the ERM's code history holds no entry for item {erm_id}")


def _edges(value: Any) -> tuple[list[dict[str, Any]], bool | None]:
    """The edges of a ``getAllClientItems`` answer, and its ``hasNextPage`` when it says."""
    try:
        page = value["page"]
        edges = page["edges"]
        if not isinstance(edges, list) or not all(isinstance(edge, dict) and "node" in edge for edge in edges):
            raise TypeError
    except (TypeError, KeyError):
        raise ErmInvalidResponse("the ERM's item list is not in the documented shape") from None
    info = page.get("pageInfo")
    has_next = info.get("hasNextPage") if isinstance(info, dict) else None
    return edges, has_next if isinstance(has_next, bool) else None
