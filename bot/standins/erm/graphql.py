"""The ERM sandbox's GraphQL interface (documents 002/003): ``POST /graphql``, executed with
graphql-core against ``schema.graphql``, on the same :class:`ErmSandbox` as the REST routes
(the same users and tokens, devices, limits and code history).

:class:`GraphQLApi` holds the resolvers and serves the route (:meth:`GraphQLApi.endpoint`);
:mod:`bot.standins.erm.server` wraps it in the machinery every route shares (calls recorded,
queued failures, latency), told what a request means by :meth:`GraphQLApi.traits`.

HTTP statuses: a body that is not a JSON object with a string ``query`` (or with ``variables``
not an object, ``operationName`` not a string) is a 400 ``BAD_REQUEST``; a query that does not
parse or validate a 400 ``GRAPHQL_PARSE_FAILED`` / ``GRAPHQL_VALIDATION_FAILED`` (a sign-in turned
off by ``sandbox.graphql_sign_in`` included); an operation name that names none a 400
``OPERATION_RESOLUTION_FAILURE``; variables of the wrong type a 400 ``BAD_USER_INPUT`` (graphql-core's
words; Apollo Server 3, which the ERM runs, answers 400 when there is no ``data``). Everything
else, refusals and a missing token included, is a 200 with ``errors``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import inspect
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLResolveInfo,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    TypeInfo,
    TypeInfoVisitor,
    Visitor,
    build_schema,
    execute,
    get_operation_ast,
    parse,
    validate,
    visit,
)
from graphql.execution.values import get_variable_values
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from bot.erm.models import CodeType
from bot.standins.erm.devices import CodeRecord, SandboxDevice, cursor, hex24, wire_time
from bot.standins.erm.sandbox import ErmSandbox, Traits

SCHEMA = build_schema(resources.files(__package__).joinpath("schema.graphql").read_text(encoding="utf-8"))
"""The sandbox's schema, built once from ``schema.graphql``."""

PATH = "/graphql"
SIGN_IN_FIELDS = ("signInClient", "signInUser")
GENERATIONS = {
    "generateDaysCode": (CodeType.DAYS, "generateDaysCodeInput"),
    "generateFreeCode": (CodeType.FREE, "generateFreeCodeInput"),
    "generateResetCode": (CodeType.RESET, "generateResetCodeInput"),
}
"""Each generation field: the code it commits and the name of its input argument."""

MAX_EDGES = 100
"""``getAllClientItems`` gives at most this many items a page (larger asks are capped)."""

ERROR_CODES = {
    400: "BAD_USER_INPUT",
    401: "UNAUTHENTICATED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    429: "TOO_MANY_REQUESTS",
}

_ITEMS_CREATED = datetime(2025, 1, 9, 8, 41, 41, 513000, tzinfo=UTC)
"""The first sandbox device's creation date; each next one was created a minute later."""
_USER_CREATED = "2021-11-02T11:10:58.663Z"
_AMBIGUOUS = "Must provide operation name if query contains multiple operations."


def error_code(status: int) -> str:
    """The ``extensions.code`` of an ERM refusal with this HTTP status."""
    return ERROR_CODES.get(status, "INTERNAL_SERVER_ERROR")


def erm_error(status: int, message: str) -> GraphQLError:
    """A refusal as the ERM's GraphQL gateway words it: the ERM's words and the REST status."""
    return GraphQLError(
        message,
        extensions={"code": error_code(status), "response": {"statusCode": status, "message": message}},
    )


UNAUTHORIZED: dict[str, Any] = {
    "errors": [erm_error(401, "Unauthorized").formatted],
    "data": None,
}
"""The answer to a request with no valid token (the end of document 002, without the stack)."""


def masked(body: Any) -> Any:
    """The request body as ``calls`` records it: every ``password`` in ``variables`` as ``***``."""

    def mask(value: Any) -> Any:
        if isinstance(value, dict):
            return {key: "***" if key == "password" else mask(item) for key, item in value.items()}
        if isinstance(value, list):
            return [mask(item) for item in value]
        return value

    if isinstance(body, dict) and isinstance(body.get("variables"), dict):
        return {**body, "variables": mask(body["variables"])}
    return body


# -- documents ----------------------------------------------------------------------------------


@functools.lru_cache(maxsize=256)
def _parsed(query: str) -> DocumentNode | GraphQLError:
    try:
        return parse(query)
    except GraphQLError as error:
        return error


@functools.lru_cache(maxsize=256)
def _invalid(query: str) -> tuple[GraphQLError, ...]:
    """The schema's validation errors of a query that parsed."""
    document = _parsed(query)
    assert isinstance(document, DocumentNode)
    return tuple(validate(SCHEMA, document))


def _root_fields(document: DocumentNode, operation: OperationDefinitionNode) -> list[str]:
    """The names of the operation's root fields, in order, through fragments."""
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    seen: set[str] = set()

    def walk(selection_set: SelectionSetNode) -> list[str]:
        names: list[str] = []
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                names.append(selection.name.value)
            elif isinstance(selection, InlineFragmentNode):
                names += walk(selection.selection_set)
            elif isinstance(selection, FragmentSpreadNode) and selection.name.value not in seen:
                seen.add(selection.name.value)
                if (fragment := fragments.get(selection.name.value)) is not None:
                    names += walk(fragment.selection_set)
        return names

    return walk(operation.selection_set)


def _protected(field: str) -> bool:
    """Whether a root field needs a token (all but the sign-ins and introspection)."""
    return field not in SIGN_IN_FIELDS and not field.startswith("__")


class _TurnedOff(Visitor):
    """Finds sign-in fields the sandbox's schema is told to lack."""

    def __init__(self, type_info: TypeInfo, offered: tuple[str, ...]) -> None:
        super().__init__()
        self.type_info = type_info
        self.offered = offered
        self.found: list[str] = []

    def enter_field(self, node: FieldNode, *_: Any) -> None:
        name = node.name.value
        if self.type_info.get_parent_type() is SCHEMA.mutation_type and name in SIGN_IN_FIELDS:
            if name not in self.offered and name not in self.found:
                self.found.append(name)


def _errors(status: int, code: str, errors: list[GraphQLError] | list[str]) -> JSONResponse:
    """A request refused before execution: ``{"errors": [...]}``, each with ``extensions.code``."""
    formatted = []
    for error in errors:
        entry = {"message": error} if isinstance(error, str) else error.formatted
        formatted.append({**entry, "extensions": {**entry.get("extensions", {}), "code": code}})
    return JSONResponse({"errors": formatted}, status_code=status)


# -- what the resolvers answer ------------------------------------------------------------------


def item_node(device: SandboxDevice, index: int) -> dict[str, Any]:
    """An ``Item``: ``index`` is the device's place in ``sandbox.devices`` (its creation order)."""
    created = wire_time(_ITEMS_CREATED + timedelta(minutes=index))
    return {
        "_id": device.erm_id,
        "deleteStatus": False,
        "deleteAt": None,
        "createdAt": created,
        "updatedAt": wire_time(device.codes[-1].created_at) if device.codes else created,
        "triggers": [],
        "type": "DEVICE",
        "actionScope": "DEVELOPMENT",
        "actorName": "eIOT",
        "profile": "Off-Grid Electric Device",
        "idType": "UUID",
        "idString": None,
        "description": device.name,
        "creationDate": created,
        "oemID": "OVES",
        "oemItemID": device.oem_item_id,
        "sellerID": "OVES",
        "sellerItemID": device.seller_item_id,
        "lifeCycle": device.life_cycle,
        "codeGenUsed": len(device.codes),
        "legacyItemId": str(device.product_item_id),
        "code": None,
    }


def code_event(record: CodeRecord) -> dict[str, Any]:
    """A ``CodeEvent``: the REST history's node, plus the deletion fields."""
    return {**record.node(), "deleteStatus": False, "deleteAt": None}


def _offset(value: str | None) -> int | None:
    """The index an array-connection cursor names."""
    if value is None:
        return None
    try:
        prefix, _, index = base64.b64decode(value, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        prefix, index = "", ""
    if prefix != "arrayconnection" or not (index.isascii() and index.isdigit()):
        raise erm_error(400, f"Invalid cursor: {value}")
    return int(index)


def _matches(device: SandboxDevice, needle: str) -> bool:
    ids = (device.erm_id, device.oem_item_id, device.seller_item_id, device.name, str(device.product_item_id))
    return any(needle in value.casefold() for value in ids)


@dataclass(frozen=True)
class _Context:
    authenticated: bool


class GraphQLApi:
    """``POST /graphql`` over one sandbox: the resolvers and the endpoint."""

    def __init__(self, sandbox: ErmSandbox) -> None:
        self.sandbox = sandbox
        self._root: dict[str, Any] = {
            "signInClient": self._sign_in_client,
            "signInUser": self._sign_in_user,
            "generateDaysCode": self._generator("generateDaysCode"),
            "generateFreeCode": self._generator("generateFreeCode"),
            "generateResetCode": self._generator("generateResetCode"),
            "getAllClientItems": self._items,
            "getItemsForDownloadById": self._histories,
        }

    # -- the request --------------------------------------------------------------------------

    def traits(self, body: Any) -> Traits:
        """What a request (its recorded body) counts for, and the path queued failures match:
        ``/graphql/<first root field>``, or ``/graphql`` when no operation can be read from it."""
        fields: list[str] = []
        mutation = False
        if isinstance(body, dict) and isinstance(query := body.get("query"), str):
            document = _parsed(query)
            name = body.get("operationName")
            if isinstance(document, DocumentNode):
                operation = get_operation_ast(document, name if isinstance(name, str) else None)
                if operation is not None:
                    fields = _root_fields(document, operation)
                    mutation = operation.operation is OperationType.MUTATION
        offered = self.sandbox.graphql_sign_in
        return Traits(
            f"{PATH}/{fields[0]}" if fields else PATH,
            logins=sum(mutation and field in SIGN_IN_FIELDS and field in offered for field in fields),
            generations=sum(mutation and field in GENERATIONS for field in fields),
        )

    async def endpoint(self, request: Request) -> Response:
        """Check the request as an Apollo server would, then execute it on the sandbox."""
        try:
            body = await request.json()
        except ValueError:
            return _errors(400, "BAD_REQUEST", ["The request body is not valid JSON"])
        if not isinstance(body, dict) or not isinstance(query := body.get("query"), str):
            return _errors(400, "BAD_REQUEST", ['The request body must be a JSON object with a string "query"'])
        variables, name = body.get("variables"), body.get("operationName")
        if variables is not None and not isinstance(variables, dict):
            return _errors(400, "BAD_REQUEST", ['"variables" must be a JSON object'])
        if name is not None and not isinstance(name, str):
            return _errors(400, "BAD_REQUEST", ['"operationName" must be a string'])

        document = _parsed(query)
        if isinstance(document, GraphQLError):
            return _errors(400, "GRAPHQL_PARSE_FAILED", [document])
        if invalid := _invalid(query):
            return _errors(400, "GRAPHQL_VALIDATION_FAILED", list(invalid))
        type_info = TypeInfo(SCHEMA)
        turned_off = _TurnedOff(type_info, self.sandbox.graphql_sign_in)
        visit(document, TypeInfoVisitor(type_info, turned_off))
        if turned_off.found:
            missing = [f'Cannot query field "{field}" on type "Mutation".' for field in turned_off.found]
            return _errors(400, "GRAPHQL_VALIDATION_FAILED", missing)
        operation = get_operation_ast(document, name)
        if operation is None:
            words = f"Unknown operation named '{name}'." if name else _AMBIGUOUS
            return _errors(400, "OPERATION_RESOLUTION_FAILURE", [words])
        coerced = get_variable_values(SCHEMA, operation.variable_definitions or (), variables or {})
        if isinstance(coerced, list):
            return _errors(400, "BAD_USER_INPUT", coerced)

        authenticated = request.user.is_authenticated
        if not authenticated and all(_protected(field) for field in _root_fields(document, operation)):
            return JSONResponse(UNAUTHORIZED)
        result = execute(
            SCHEMA,
            document,
            root_value=self._root,
            context_value=_Context(authenticated),
            variable_values=variables,
            operation_name=name,
        )
        if inspect.isawaitable(result):
            result = await result
        answer: dict[str, Any] = {"data": result.data}
        if result.errors:
            answer["errors"] = [_formatted(error) for error in result.errors]
        return JSONResponse(answer)

    # -- resolvers ----------------------------------------------------------------------------

    @staticmethod
    def _require(info: GraphQLResolveInfo) -> None:
        if not info.context.authenticated:
            raise erm_error(401, "Unauthorized")

    def _signed_in(self, credentials: dict[str, Any]) -> str:
        token = self.sandbox.log_in(credentials["email"], credentials["password"])
        if token is None:
            raise erm_error(401, "Invalid email or password")
        return token

    def _sign_in_client(self, info: GraphQLResolveInfo, **args: Any) -> dict[str, Any]:
        credentials = args["signInCredentialsInput"]
        token = self._signed_in(credentials)
        return {"_id": hex24("user", credentials["email"]), "accessToken": token}

    def _sign_in_user(self, info: GraphQLResolveInfo, **args: Any) -> dict[str, Any]:
        credentials = args["signInCredentials"]
        token = self._signed_in(credentials)
        return {
            "accessToken": token,
            "refreshToken": secrets.token_urlsafe(32),
            "_id": hex24("user", credentials["email"]),
            "deleteStatus": False,
            "createdAt": _USER_CREATED,
            "updatedAt": _USER_CREATED,
            "email": credentials["email"],
            "type": "DISTRIBUTOR",
            "name": "OVES Distributor",
            "roleName": "DISTRIBUTOR",
        }  # every other field null, as in the document's answer

    def _generator(self, field: str) -> Any:
        code_type, argument = GENERATIONS[field]

        async def generate(info: GraphQLResolveInfo, **args: Any) -> dict[str, Any]:
            self._require(info)
            given = args[argument]
            try:
                record = self.sandbox.generate(given["itemId"], code_type, given.get("codeDays"))
            except HTTPException as refused:
                raise erm_error(refused.status_code, refused.detail) from None
            delay = self.sandbox.take_late()
            if delay is not None:
                await asyncio.sleep(delay)  # committed; the answer comes late
            return {"codeType": record.code_type.value, "codeHex": record.hex, "codeDec": record.keypad}

        return generate

    def _items(self, info: GraphQLResolveInfo, **args: Any) -> dict[str, Any]:
        self._require(info)
        first, last = args.get("first"), args.get("last")
        for argument, value in (("first", first), ("last", last)):
            if value is not None and value < 0:
                raise erm_error(400, f"{argument} must not be negative")
        after, before = _offset(args.get("after")), _offset(args.get("before"))
        ordered = list(enumerate(self.sandbox.devices))
        if args.get("queryorder", "DESC") == "DESC":
            ordered.reverse()
        if search := (args.get("search") or "").casefold():
            ordered = [(index, device) for index, device in ordered if _matches(device, search)]

        start, end = 0, len(ordered)
        if after is not None:
            start = min(after + 1, end)
        if before is not None:
            end = max(min(before, end), start)
        if first is None and last is None:
            first = MAX_EDGES
        if first is not None:
            first = min(first, MAX_EDGES)
            end = min(end, start + first)
        if last is not None:
            last = min(last, MAX_EDGES)
            start = max(start, end - last)
        limit = first if first is not None else (last or 0)
        edges = [
            {"cursor": cursor(start + i), "node": item_node(device, index)}
            for i, (index, device) in enumerate(ordered[start:end])
        ]
        return {
            "page": {
                "edges": edges,
                "pageInfo": {
                    "startCursor": edges[0]["cursor"] if edges else None,
                    "endCursor": edges[-1]["cursor"] if edges else None,
                    "hasPreviousPage": start > 0,
                    "hasNextPage": end < len(ordered),
                },
            },
            "pageData": {"count": len(ordered), "limit": limit, "offset": start},
        }

    def _histories(self, info: GraphQLResolveInfo, **args: Any) -> list[dict[str, Any]]:
        self._require(info)
        answer = []
        for item_id in args["ids"]:
            device = self.sandbox.find(item_id)
            if device is None or device.erm_id != item_id:
                raise erm_error(404, f"Item {item_id} not found")
            answer.append(
                {
                    "item": item_node(device, self.sandbox.devices.index(device)),
                    "codeHistory": [code_event(record) for record in reversed(device.codes)],
                }
            )
        return answer


def _formatted(error: GraphQLError) -> dict[str, Any]:
    """An execution error; one not raised on purpose (a bug) is an ``INTERNAL_SERVER_ERROR``."""
    formatted = error.formatted
    if "code" not in formatted.get("extensions", {}):
        formatted["extensions"] = {**formatted.get("extensions", {}), "code": "INTERNAL_SERVER_ERROR"}
    return dict(formatted)
