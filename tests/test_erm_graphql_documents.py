"""The GraphQL interface against the document's own example answers, verbatim (httpx.MockTransport),
and the rules of the wire: Bearer token, every value a variable, errors read as typed failures.

The examples are in ``tests/data/erm/graphql/`` (see its README for the little that was made valid JSON).
"""

from __future__ import annotations

import json
import string
from collections.abc import Callable
from pathlib import Path
from typing import Any

import graphql
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.erm import queries
from bot.erm.errors import (
    ErmAuthError,
    ErmInvalidResponse,
    ErmOutcomeUnknown,
    ErmRateLimited,
    ErmRefused,
    ErmUnavailable,
)
from bot.erm.graphql import GraphQLErm

DOCS = Path(__file__).parent / "data" / "erm" / "graphql"
SCHEMA = Path(__file__).parent.parent / "bot" / "standins" / "erm" / "schema.graphql"
URL = "https://production-omnivoltaic-graphql-api.omnivoltaic.com/graphql"
PASSWORD = "s3cret-Pa55word"
DOCUMENTS = [value for name, value in vars(queries).items()
             if name.isupper() and not name.startswith("_") and isinstance(value, str)]


def doc(name: str) -> Any:
    return json.loads((DOCS / name).read_text())


def field_of(query: str) -> str:
    operation = graphql.parse(query).definitions[0]
    assert isinstance(operation, graphql.OperationDefinitionNode)
    first = operation.selection_set.selections[0]
    assert isinstance(first, graphql.FieldNode)
    return first.name.value


class FakeGraphQL:
    """A scripted GraphQL ERM: records every body, hands out tokens, answers each root field as told."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.headers: list[httpx.Headers] = []
        self.valid: set[str] = set()
        self.sign_ins: list[str] = []
        self.answers: dict[str, Callable[[dict[str, Any]], httpx.Response]] = {}

    def handler(self, request: httpx.Request) -> httpx.Response:
        assert str(request.url) == URL and request.method == "POST"
        body = json.loads(request.content)
        self.bodies.append(body)
        self.headers.append(request.headers)
        field = field_of(body["query"])
        if field in ("signInClient", "signInUser"):
            self.sign_ins.append(field)
            if field in self.answers:
                return self.answers[field](body)
            if body["variables"] != {"email": "test@example.com", "password": PASSWORD}:
                return httpx.Response(200, json={"errors": [{"message": "Invalid email or password", "extensions": {
                    "code": "UNAUTHENTICATED", "response": {"statusCode": 401}}}], "data": None})
            token = f"tok-{len(self.valid) + 1}-abcdef"
            self.valid.add(token)
            answer = doc("sign_in_client.json") if field == "signInClient" else doc("sign_in_user_and_days_code.json")
            answer["data"][field]["accessToken"] = token
            answer["data"] = {field: answer["data"][field]}
            return httpx.Response(200, json=answer)
        if request.headers.get("Authorization", "").removeprefix("Bearer ") not in self.valid:
            return httpx.Response(200, json=doc("unauthorized.json"))
        return self.answers[field](body)

    def answer(self, field: str, body: Any, status: int = 200) -> None:
        self.answers[field] = lambda request: httpx.Response(status, json=body)

    def client(self, **kwargs: Any) -> GraphQLErm:
        return GraphQLErm(URL, "test@example.com", PASSWORD, transport=httpx.MockTransport(self.handler), **kwargs)

    def of(self, field: str) -> list[dict[str, Any]]:
        return [body for body in self.bodies if field_of(body["query"]) == field]


@pytest.fixture
def erm() -> FakeGraphQL:
    return FakeGraphQL()


def test_every_query_the_bot_sends_is_valid_against_the_documents_schema() -> None:
    schema = graphql.build_schema(SCHEMA.read_text())
    string_ids = graphql.build_schema(SCHEMA.read_text().replace("ids: [ID!]!", "ids: [String!]!"))
    assert len(DOCUMENTS) >= 7
    for document in DOCUMENTS:
        if "{" not in document:
            continue
        against = string_ids if document is queries.CODE_HISTORY_STRING_IDS else schema
        assert graphql.validate(against, graphql.parse(document)) == [], document
    assert graphql.validate(string_ids, graphql.parse(queries.CODE_HISTORY)) != []  # hence the second form


async def test_a_schema_whose_ids_are_strings_gets_the_other_history_document(erm: FakeGraphQL) -> None:
    erm.answer("getAllClientItems", doc("item_search.json"))
    entry = {"data": {"getItemsForDownloadById": [{"item": {"_id": "67890"}, "codeHistory": []}]}}
    refusal = {"errors": [{"message": 'Variable "$ids" of type "[ID!]!" used in position expecting type '
                                      '"[String!]!".', "extensions": {"code": "GRAPHQL_VALIDATION_FAILED"}}]}
    erm.answers["getItemsForDownloadById"] = lambda body: httpx.Response(
        200, json=entry) if "[String!]!" in body["query"] else httpx.Response(400, json=refusal)
    async with erm.client() as client:
        first = await client.code_history("ABC456")
        again = await client.code_history("ABC456")
    assert first.count == again.count == 0
    asked = [("[String!]!" in body["query"]) for body in erm.of("getItemsForDownloadById")]
    assert asked == [False, True, True]  # learned once, then remembered


async def test_days_code_with_the_documented_answer(erm: FakeGraphQL) -> None:
    days = doc("sign_in_user_and_days_code.json")["data"]["generateDaysCode"]
    erm.answer("generateDaysCode", {"data": {"generateDaysCode": days}})
    async with erm.client() as client:
        code = await client.days_code("61a4ae46f67defrii3558sj", 4)
    assert code.code == "*016 035 001 460 213 591 464#" and code.hex == "5F9378720CBB25A8"
    sign_in, generation = erm.bodies
    assert erm.sign_ins == ["signInClient"]
    assert generation["variables"] == {"itemId": "61a4ae46f67defrii3558sj", "codeDays": 4, "description": "paygbot"}
    assert erm.headers[1]["Authorization"] == "Bearer tok-1-abcdef"
    assert "Authorization" not in erm.headers[0]


async def test_sign_in_falls_back_to_the_other_mutation_and_remembers_it(erm: FakeGraphQL) -> None:
    erm.answer("signInClient", {"errors": [{"message": 'Cannot query field "signInClient" on type "Mutation".',
                                            "extensions": {"code": "GRAPHQL_VALIDATION_FAILED"}}]}, status=400)
    async with erm.client() as client:
        login = await client.login()
        assert login.user_role == "DISTRIBUTOR"
        await client.login()
    assert erm.sign_ins == ["signInClient", "signInUser", "signInUser"]


async def test_refused_credentials_are_an_auth_error_in_the_erms_words_without_the_password(erm: FakeGraphQL) -> None:
    async with GraphQLErm(URL, "test@example.com", "wrong-Pa55", transport=httpx.MockTransport(erm.handler)) as client:
        with pytest.raises(ErmAuthError, match="Invalid email or password") as caught:
            await client.login()
    assert erm.sign_ins == ["signInClient", "signInUser"]
    assert "wrong-Pa55" not in str(caught.value)


async def test_the_documented_unauthorized_answer_signs_in_again_once(erm: FakeGraphQL) -> None:
    days = doc("sign_in_user_and_days_code.json")["data"]["generateDaysCode"]
    erm.answer("generateDaysCode", {"data": {"generateDaysCode": days}})
    async with erm.client() as client:
        await client.login()
        erm.valid.clear()  # the token expires (24 h, document 002)
        code = await client.days_code("DVAV0111000999", 1)
        assert code.hex == "5F9378720CBB25A8"
        assert client.logins == 2
        erm.answer("generateDaysCode", doc("unauthorized.json"))  # refused even fresh: credentials revoked
        with pytest.raises(ErmAuthError, match="fresh access token"):
            await client.days_code("DVAV0111000999", 1)


async def test_the_placeholder_free_code_is_never_taken_for_a_code(erm: FakeGraphQL) -> None:
    erm.answer("generateFreeCode", doc("free_code_placeholder.json"))
    async with erm.client() as client:
        with pytest.raises(ErmInvalidResponse, match="not a valid code") as caught:
            await client.free_code("DVAV0111000999")
    assert isinstance(caught.value, ErmOutcomeUnknown)  # it may have been committed: settle from the history


async def test_items_walk_the_documented_page_by_cursor(erm: FakeGraphQL) -> None:
    first = doc("client_items.json")
    second = {"data": {"getAllClientItems": {"page": {"edges": [], "pageInfo": {"hasNextPage": False}}}}}
    pages = iter([first, second])
    erm.answers["getAllClientItems"] = lambda body: httpx.Response(200, json=next(pages))
    async with erm.client() as client:
        items = [item async for page in client.items(page_size=2) for item in page]
    assert [item.oem_item_id for item in items] == ["DVAV0111000999", "DVAV0111000998"]
    assert items[0].ids == ["677f9698818e7a7fe66a939e", "DVAV0111000999"]
    assert (items[0].description, items[0].life_cycle) == ("OVES Connected eIoT", "INITIATED")
    walked = erm.of("getAllClientItems")
    assert [body["variables"]["after"] for body in walked] == [None, "YXJyYXljb25uZWN0aW9uOjE="]
    assert all(body["variables"]["first"] == 2 for body in walked)


async def test_a_search_finds_the_item_and_its_history_is_read_by_erm_id(erm: FakeGraphQL) -> None:
    erm.answer("getAllClientItems", doc("item_search.json"))
    event = {"_id": "e1", "codeType": "DAYSCODE", "codeDays": 4, "codeNumber": 1, "codeHexString": "5F9378720CBB25A8",
             "codeDecString": "*016 035 001 460 213 591 464#", "createdAt": "2025-03-01T10:00:00.000Z"}
    erm.answer("getItemsForDownloadById", {"data": {"getItemsForDownloadById": [
        {"item": {"_id": "67890", "oemID": "XYZ123", "oemItemID": "ABC456"}, "codeHistory": [event]}]}})
    async with erm.client() as client:
        item = await client.item("Seller789")
        page = await client.code_history("ABC456")
        await client.code_history("Seller789")
        await client.code_history("ABC456")
    assert item.erm_id == "67890" and item.description == "Sample Item"
    assert page.count == 1 and page.events[0].code_hex_string == "5F9378720CBB25A8"
    assert [body["variables"]["ids"] for body in erm.of("getItemsForDownloadById")] == [["67890"]] * 3
    # each id's ERM id is learned once, by a search for that id, and remembered
    assert [body["variables"]["search"] for body in erm.of("getAllClientItems")] == ["Seller789", "ABC456"]


async def test_an_id_two_items_hold_is_refused_not_guessed(erm: FakeGraphQL) -> None:
    nodes = [{"_id": "a" * 24, "oemItemID": "ACC-1", "sellerItemID": "S-9"},
             {"_id": "b" * 24, "oemItemID": "OTHER", "sellerItemID": "ACC-1"},
             {"_id": "c" * 24, "oemItemID": "ACC-10", "sellerItemID": "S-10"}]
    erm.answer("getAllClientItems", {"data": {"getAllClientItems": {"page": {"edges": [
        {"cursor": str(n), "node": node} for n, node in enumerate(nodes)], "pageInfo": {"hasNextPage": False}}}}})
    async with erm.client() as client:
        with pytest.raises(ErmRefused, match="names 2 items") as caught:
            await client.code_history("ACC-1")
        assert caught.value.status == 409
        assert (await client.item("ACC-10")).erm_id == "c" * 24  # holding the id itself, not a part of it
    assert erm.of("getItemsForDownloadById") == []


async def test_a_history_time_without_a_zone_is_utc(erm: FakeGraphQL) -> None:
    erm.answer("getAllClientItems", doc("item_search.json"))
    event = {"_id": "e1", "codeType": "DAYSCODE", "codeDays": 4, "codeNumber": 1, "codeHexString": "5F9378720CBB25A8",
             "codeDecString": "*016 035 001 460 213 591 464#", "createdAt": "2026-03-26T09:46:59"}
    erm.answer("getItemsForDownloadById", {"data": {"getItemsForDownloadById": [
        {"item": {"_id": "67890"}, "codeHistory": [event]}]}})
    async with erm.client() as client:
        page = await client.code_history("67890")
    assert page.events[0].created_at.utcoffset() is not None and page.events[0].created_at.hour == 9


async def test_an_http_status_types_errors_that_say_nothing_of_their_kind(erm: FakeGraphQL) -> None:
    erm.answer("getAllClientItems", {"errors": [{"message": "No such item"}]}, status=404)
    async with erm.client() as client:
        with pytest.raises(ErmRefused, match="No such item") as caught:
            await client.item("X1")
    assert caught.value.status == 404


async def test_an_unknown_item_is_refused(erm: FakeGraphQL) -> None:
    erm.answer("getAllClientItems", {"data": {"getAllClientItems": {"page": {"edges": []}}}})
    async with erm.client() as client:
        with pytest.raises(ErmRefused, match="not found") as caught:
            await client.code_history("NOSUCHDEVICE")
    assert caught.value.status == 404


@pytest.mark.parametrize(
    ("answer", "status", "failure", "words"),
    [
        ({"errors": [{"message": "Too many requests: wait 6 seconds", "extensions": {
            "code": "TOO_MANY_REQUESTS", "response": {"statusCode": 429}}}], "data": {"generateDaysCode": None}},
         200, ErmRateLimited, "wait 6 seconds"),
        ({"errors": [{"message": "Product X not found", "extensions": {"code": "NOT_FOUND"}}], "data": None},
         200, ErmRefused, "Product X not found"),
        ({"errors": [{"message": "days must be between 1 and 1095", "extensions": {"code": "BAD_USER_INPUT"}}]},
         400, ErmRefused, "between 1 and 1095"),
        ({"errors": [{"message": "Cannot return null for non-nullable field"}], "data": None},
         200, ErmOutcomeUnknown, "Cannot return null"),
        ({"errors": [{"message": "downstream timeout"}], "data": {"generateDaysCode": {
            "codeType": "DAYSCODE", "codeHex": "5F9378720CBB25A8", "codeDec": "*016 035 001 460 213 591 464#"}}},
         200, ErmOutcomeUnknown, "a code and an error"),
        ({"data": {"generateDaysCode": {"codeType": "FREECODE", "codeHex": "5F9378720CBB25A8",
                                        "codeDec": "*016 035 001 460 213 591 464#"}}},
         200, ErmOutcomeUnknown, "codeType is FREECODE"),
        ({"data": {"generateDaysCode": {"codeType": "DAYSCODE", "codeHex": "5F9378720CBB25A9",
                                        "codeDec": "*016 035 001 460 213 591 464#"}}},
         200, ErmOutcomeUnknown, "does not match"),
        ({"data": {}}, 200, ErmOutcomeUnknown, "holds no data"),
        ({"error": "Error message"}, 400, ErmRefused, "Error message"),
        ({"message": "Bad gateway"}, 502, ErmOutcomeUnknown, "Bad gateway"),
        ({"message": "Service unavailable"}, 503, ErmUnavailable, "Service unavailable"),
        ({"errors": [{"message": "Unauthorized"}], "data": {"generateDaysCode": {
            "codeType": "DAYSCODE", "codeHex": "5F9378720CBB25A8", "codeDec": "*016 035 001 460 213 591 464#"}}},
         200, ErmOutcomeUnknown, "a code and an error"),
        ({"errors": [{"message": "gateway timeout"}], "data": {"generateDaysCode": {
            "codeType": "DAYSCODE", "codeHex": "5F9378720CBB25A8", "codeDec": "*016 035 001 460 213 591 464#"}}},
         504, ErmOutcomeUnknown, "gateway timeout"),
        ({"errors": [{"message": "Too many requests"}]}, 429, ErmRateLimited, "Too many requests"),
    ],
)
async def test_a_generation_answer_is_read_as_a_typed_failure_never_a_code(
    erm: FakeGraphQL, answer: Any, status: int, failure: type[Exception], words: str
) -> None:
    erm.answer("generateDaysCode", answer, status=status)
    async with erm.client() as client:
        with pytest.raises(failure, match=words) as caught:
            await client.days_code("DVAV0111000999", 4)
    if failure in (ErmRefused, ErmRateLimited):  # a refusal is not an unknown outcome: nothing was committed
        assert not isinstance(caught.value, ErmOutcomeUnknown)
    if failure is ErmOutcomeUnknown:
        assert not isinstance(caught.value, ErmRefused | ErmUnavailable)
    assert len(erm.of("generateDaysCode")) == 1  # never asked twice, not even after signing in again
    assert erm.sign_ins == ["signInClient"]


async def test_a_failing_read_is_unavailable_not_unknown(erm: FakeGraphQL) -> None:
    erm.answer("getAllClientItems", {"errors": [{"message": "Internal server error", "extensions": {
        "code": "INTERNAL_SERVER_ERROR"}}], "data": None})
    async with erm.client() as client:
        with pytest.raises(ErmUnavailable, match="Internal server error"):
            await client.item("DVAV0111000999")


_ID_CHARS = string.ascii_letters + string.digits
device_ids = st.builds(lambda head, tail: head + tail, st.sampled_from(_ID_CHARS),
                       st.text(alphabet=_ID_CHARS + "_.:-", min_size=5, max_size=30))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(device=device_ids, days=st.integers(1, 1095))
async def test_no_query_text_ever_holds_a_device_id(device: str, days: int) -> None:
    erm = FakeGraphQL()
    code = doc("sign_in_user_and_days_code.json")["data"]["generateDaysCode"]
    erm.answer("generateDaysCode", {"data": {"generateDaysCode": code}})
    erm.answer("generateFreeCode", {"errors": [{"message": "no", "extensions": {"code": "FORBIDDEN"}}]})
    erm.answer("generateResetCode", {"errors": [{"message": "no", "extensions": {"code": "FORBIDDEN"}}]})
    node = {"_id": "0" * 24, "oemItemID": device, "sellerItemID": f"S{device}"}
    erm.answer("getAllClientItems", {"data": {"getAllClientItems": {"page": {"edges": [
        {"cursor": "c0", "node": node}], "pageInfo": {"hasNextPage": False}}}}})
    erm.answer("getItemsForDownloadById", {"data": {"getItemsForDownloadById": [{"item": node, "codeHistory": []}]}})
    async with erm.client() as client:
        await client.days_code(device, days)
        for call in (client.free_code, client.reset_code):
            with pytest.raises(ErmRefused):
                await call(device)
        await client.item(device)
        await client.code_history(device)
    assert len(erm.bodies) == 6
    for body in erm.bodies:
        assert body["query"] in DOCUMENTS  # only the fixed documents go out
        assert device not in body["query"]
    assert erm.of("generateDaysCode")[0]["variables"]["itemId"] == device
    assert erm.of("getAllClientItems")[0]["variables"]["search"] == device
