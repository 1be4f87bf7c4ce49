"""The ERM sandbox's GraphQL interface (``POST /graphql``) over real HTTP, with a plain httpx
client: sign-in, codes, items and history on the same state as the REST routes, the documented
errors, the injected faults, and the document's own examples."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from bot.clock import ManualClock
from bot.erm import codes
from bot.erm.models import CodeType
from bot.standins.erm import ErmSandbox, running

EMAIL, PASSWORD = "test@example.com", "test1234"
EXAMPLE_ID = "64ba2e1eaa6c7f107d7a8918"  # the example device: TEST2503000017, SELLER2503000042, 163
OTHER = "SBX00000000001"
UNAUTHORIZED = {
    "errors": [
        {
            "message": "Unauthorized",
            "extensions": {"code": "UNAUTHENTICATED", "response": {"statusCode": 401, "message": "Unauthorized"}},
        }
    ],
    "data": None,
}

SIGN_IN_CLIENT = """mutation ($email: String!, $password: String!) {
  signInClient(signInCredentialsInput: {email: $email, password: $password}) { _id accessToken }
}"""
SIGN_IN_USER = """mutation ($email: String!, $password: String!) {
  signInUser(signInCredentials: {email: $email, password: $password}) {
    accessToken refreshToken _id email type roleName name firstName lastName
  }
}"""
DAYS = """mutation ($itemId: ID!, $codeDays: Int!) {
  generateDaysCode(generateDaysCodeInput: {itemId: $itemId, codeDays: $codeDays, description: "test"}) {
    codeType codeHex codeDec
  }
}"""
FREE = """mutation ($itemId: ID!) {
  generateFreeCode(generateFreeCodeInput: {itemId: $itemId}) { codeType codeHex codeDec }
}"""
RESET = """mutation ($itemId: ID!) {
  generateResetCode(generateResetCodeInput: {itemId: $itemId}) { codeType codeHex codeDec }
}"""
ITEMS = """query ($first: Int, $after: String, $last: Int, $before: String, $search: String, $order: QueryOrder) {
  getAllClientItems(first: $first, after: $after, last: $last, before: $before, search: $search,
                    queryorder: $order, assetaccount: false) {
    page {
      edges { cursor node { _id oemItemID sellerItemID description lifeCycle legacyItemId codeGenUsed type } }
      pageInfo { startCursor endCursor hasPreviousPage hasNextPage }
    }
    pageData { count limit offset }
  }
}"""
HISTORY = """query ($ids: [ID!]!) {
  getItemsForDownloadById(ids: $ids) {
    item { _id oemItemID codeGenUsed }
    codeHistory { _id deleteStatus deleteAt codeType codeDays codeNumber codeHexString codeDecString createdAt }
  }
}"""


@pytest.fixture
async def client(erm_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=erm_url) as http:
        yield http


@pytest.fixture
async def token(client: httpx.AsyncClient) -> str:
    return await sign_in(client)


async def gql(
    client: httpx.AsyncClient, query: str, token: str | None = None, timeout: float = 5, **variables: Any
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return await client.post("/graphql", json={"query": query, "variables": variables}, headers=headers,
                             timeout=timeout)


def data(response: httpx.Response) -> dict[str, Any]:
    """The ``data`` of an answer that must have no errors."""
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert "errors" not in body, body
    return body["data"]


def refusal(response: httpx.Response, field: str) -> dict[str, Any]:
    """The one error of an answer whose ``field`` was refused (HTTP 200, the field null)."""
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["data"] == {field: None} and len(body["errors"]) == 1, body
    error: dict[str, Any] = body["errors"][0]
    assert error["path"] == [field]
    assert error["extensions"]["response"]["message"] == error["message"]
    return error


async def sign_in(client: httpx.AsyncClient) -> str:
    token: str = data(await gql(client, SIGN_IN_CLIENT, email=EMAIL, password=PASSWORD))["signInClient"]["accessToken"]
    return token


async def items(client: httpx.AsyncClient, token: str, **variables: Any) -> dict[str, Any]:
    page: dict[str, Any] = data(await gql(client, ITEMS, token, **variables))["getAllClientItems"]
    return page


async def history(client: httpx.AsyncClient, token: str, erm_id: str) -> list[dict[str, Any]]:
    found = data(await gql(client, HISTORY, token, ids=[erm_id]))["getItemsForDownloadById"]
    assert len(found) == 1 and found[0]["item"]["_id"] == erm_id
    events: list[dict[str, Any]] = found[0]["codeHistory"]
    return events


# -- sign-in and tokens -------------------------------------------------------------------------


async def test_both_sign_ins_give_tokens_good_on_rest_and_graphql(
    client: httpx.AsyncClient, erm_sandbox: ErmSandbox
) -> None:
    client_answer = data(await gql(client, SIGN_IN_CLIENT, email=EMAIL, password=PASSWORD))["signInClient"]
    user = data(await gql(client, SIGN_IN_USER, email=EMAIL, password=PASSWORD))["signInUser"]
    assert len(client_answer["_id"]) == 24 and user["_id"] == client_answer["_id"]
    assert {key: user[key] for key in ("email", "type", "roleName", "name", "firstName", "lastName")} == {
        "email": EMAIL, "type": "DISTRIBUTOR", "roleName": "DISTRIBUTOR", "name": "OVES Distributor",
        "firstName": None, "lastName": None,
    }
    assert user["refreshToken"] and len({client_answer["accessToken"], user["accessToken"]}) == 2
    for graphql_token in (client_answer["accessToken"], user["accessToken"]):
        rest = await client.get("/oves/assignedItems/163", headers={"Authorization": graphql_token})
        assert rest.status_code == 200 and rest.json()["_id"] == EXAMPLE_ID
    rest_token = (await client.post("/user/login", json={"username": EMAIL, "password": PASSWORD})).json()
    assert (await items(client, rest_token["accessToken"]))["pageData"]["count"] == 50
    assert erm_sandbox.logins == 3


async def test_wrong_credentials_are_an_unauthenticated_error(client: httpx.AsyncClient, erm_sandbox: ErmSandbox) -> None:
    for query, field in ((SIGN_IN_CLIENT, "signInClient"), (SIGN_IN_USER, "signInUser")):
        error = refusal(await gql(client, query, email=EMAIL, password="nope"), field)
        assert error["message"] == "Invalid email or password"
        assert error["extensions"] == {
            "code": "UNAUTHENTICATED", "response": {"statusCode": 401, "message": "Invalid email or password"},
        }
    assert erm_sandbox.logins == 2


async def test_a_sign_in_turned_off_fails_validation_so_clients_fall_back(
    client: httpx.AsyncClient, erm_sandbox: ErmSandbox, clock: ManualClock
) -> None:
    assert ErmSandbox(clock=clock, graphql_sign_in=("signInUser",)).graphql_sign_in == ("signInUser",)
    for offered, missing, other in (
        (("signInUser",), "signInClient", SIGN_IN_USER),
        (("signInClient",), "signInUser", SIGN_IN_CLIENT),
    ):
        erm_sandbox.graphql_sign_in = offered
        query = SIGN_IN_CLIENT if missing == "signInClient" else SIGN_IN_USER
        refused = await gql(client, query, email=EMAIL, password=PASSWORD)
        assert (refused.status_code, refused.json()) == (400, {"errors": [{
            "message": f'Cannot query field "{missing}" on type "Mutation".',
            "extensions": {"code": "GRAPHQL_VALIDATION_FAILED"},
        }]})
        assert data(await gql(client, other, email=EMAIL, password=PASSWORD))
    assert erm_sandbox.logins == 2  # a field the schema lacks is not a sign-in


async def test_no_unknown_or_expired_token_gets_the_documented_unauthenticated_answer(
    client: httpx.AsyncClient, token: str, erm_sandbox: ErmSandbox, clock: ManualClock
) -> None:
    for bad in (None, "not-a-token", f"{token}x"):
        for query, variables in ((ITEMS, {}), (DAYS, {"itemId": OTHER, "codeDays": 3})):
            response = await gql(client, query, bad, **variables)
            assert (response.status_code, response.json()) == (200, UNAUTHORIZED)
    assert data(await gql(client, DAYS, token, itemId=OTHER, codeDays=3))
    clock.advance(hours=24)
    response = await gql(client, HISTORY, token, ids=[EXAMPLE_ID])
    assert (response.status_code, response.json()) == (200, UNAUTHORIZED)
    fresh = await sign_in(client)
    erm_sandbox.expire_tokens()
    assert (await gql(client, ITEMS, fresh)).json() == UNAUTHORIZED
    assert len(erm_sandbox.device(OTHER).codes) == 1 and erm_sandbox.generations == 4


# -- codes --------------------------------------------------------------------------------------


async def test_days_free_and_reset_codes_by_any_id_obey_the_code_format(
    client: httpx.AsyncClient, token: str, erm_sandbox: ErmSandbox, clock: ManualClock
) -> None:
    device = erm_sandbox.device(163)
    answers = []
    for query, item_id, variables in (
        (DAYS, EXAMPLE_ID, {"codeDays": 30}),
        (FREE, "TEST2503000017", {}),
        (RESET, "SELLER2503000042", {}),
        (DAYS, "163", {"codeDays": 7}),
    ):
        answers.append(next(iter(data(await gql(client, query, token, itemId=item_id, **variables)).values())))
        clock.advance(6)
    assert [answer["codeType"] for answer in answers] == ["DAYSCODE", "FREECODE", "RESETCODE", "DAYSCODE"]
    assert all(codes.matches(answer["codeHex"], answer["codeDec"]) for answer in answers)
    assert [(record.code_type, record.hex, record.keypad) for record in device.codes] == [
        (CodeType(answer["codeType"]), answer["codeHex"], answer["codeDec"]) for answer in answers
    ]
    assert [record.code_days for record in device.codes] == [30, 1096, 2192, 7]
    assert erm_sandbox.generations == 4


async def test_limits_and_unknown_devices_are_errors_that_commit_nothing(
    client: httpx.AsyncClient, token: str, erm_sandbox: ErmSandbox, clock: ManualClock
) -> None:
    device = erm_sandbox.device(OTHER)
    for days in (0, 1096):
        error = refusal(await gql(client, DAYS, token, itemId=OTHER, codeDays=days), "generateDaysCode")
        assert error["message"] == "days must be between 1 and 1095"
        assert error["extensions"] == {"code": "BAD_USER_INPUT", "response": {"statusCode": 400, "message": error["message"]}}
    unknown = refusal(await gql(client, FREE, token, itemId="NOPE0000000001"), "generateFreeCode")
    assert unknown["message"] == "Product NOPE0000000001 not found"
    assert (unknown["extensions"]["code"], unknown["extensions"]["response"]["statusCode"]) == ("NOT_FOUND", 404)
    assert device.codes == []

    assert data(await gql(client, DAYS, token, itemId=OTHER, codeDays=3))
    clock.advance(1)
    too_soon = refusal(await gql(client, RESET, token, itemId=OTHER), "generateResetCode")
    assert "wait 5 seconds" in too_soon["message"]
    assert (too_soon["extensions"]["code"], too_soon["extensions"]["response"]["statusCode"]) == (
        "TOO_MANY_REQUESTS", 429)
    clock.advance(4.999)
    assert refusal(await gql(client, DAYS, token, itemId=OTHER, codeDays=3), "generateDaysCode")
    clock.advance(0.001)
    for _ in range(9):
        assert data(await gql(client, DAYS, token, itemId=OTHER, codeDays=3))
        clock.advance(6)
    daily = refusal(await gql(client, FREE, token, itemId=OTHER), "generateFreeCode")
    assert "daily limit" in daily["message"].lower() and daily["extensions"]["code"] == "TOO_MANY_REQUESTS"
    assert len(device.codes) == 10 and not device.free
    assert erm_sandbox.generations == 16


async def test_each_generation_field_is_checked_and_counted_on_its_own(
    client: httpx.AsyncClient, token: str, erm_sandbox: ErmSandbox
) -> None:
    both = """mutation ($itemId: ID!) {
      one: generateFreeCode(generateFreeCodeInput: {itemId: $itemId}) { codeHex }
      two: generateResetCode(generateResetCodeInput: {itemId: $itemId}) { codeHex }
    }"""
    body = (await gql(client, both, token, itemId=OTHER)).json()
    assert body["data"]["one"]["codeHex"] == erm_sandbox.device(OTHER).codes[0].hex and body["data"]["two"] is None
    assert [error["path"] for error in body["errors"]] == [["two"]]
    assert erm_sandbox.generations == 2 and len(erm_sandbox.device(OTHER).codes) == 1


# -- one code history for both interfaces -------------------------------------------------------


async def test_codes_made_over_rest_and_graphql_share_one_history(
    client: httpx.AsyncClient, token: str, clock: ManualClock
) -> None:
    rest = await client.post("/otp/daysCode/v2", json={"productId": 163, "days": 5}, headers={"Authorization": token})
    assert rest.status_code == 200
    clock.advance(6)
    graphql = data(await gql(client, DAYS, token, itemId="TEST2503000017", codeDays=9))["generateDaysCode"]
    events = await history(client, token, EXAMPLE_ID)
    assert [(e["codeNumber"], e["codeDays"], e["codeHexString"]) for e in events] == [
        (2, 9, graphql["codeHex"]), (1, 5, rest.json()["otpHash"]),
    ]
    assert events[1]["codeDecString"] == rest.json()["code"] and events[0]["codeDecString"] == graphql["codeDec"]
    assert all(e["deleteStatus"] is False and e["deleteAt"] is None and e["codeType"] == "DAYSCODE" for e in events)
    rest_history = await client.get(f"/oves/v2/codeHistoryList/{EXAMPLE_ID}/0/10", headers={"Authorization": token})
    rest_nodes = [edge["node"] for edge in rest_history.json()["page"]["edges"]]
    assert [(n["_id"], n["codeHexString"]) for n in rest_nodes] == [(e["_id"], e["codeHexString"]) for e in events]
    found = await items(client, token, search="TEST2503000017")
    assert found["page"]["edges"][0]["node"]["codeGenUsed"] == 2


async def test_the_history_asks_for_erm_ids_only(client: httpx.AsyncClient, token: str) -> None:
    for other_id in ("TEST2503000017", "SELLER2503000042", "163", "ffffffffffffffffffffffff"):
        error = refusal(await gql(client, HISTORY, token, ids=[EXAMPLE_ID, other_id]), "getItemsForDownloadById")
        assert error["message"] == f"Item {other_id} not found"
        assert error["extensions"]["code"] == "NOT_FOUND" and error["extensions"]["response"]["statusCode"] == 404
    assert await history(client, token, EXAMPLE_ID) == []


# -- items --------------------------------------------------------------------------------------


async def test_items_walk_forward_and_backward_by_cursor(
    client: httpx.AsyncClient, token: str, erm_sandbox: ErmSandbox
) -> None:
    newest_first = [device.oem_item_id for device in reversed(erm_sandbox.devices)]
    assert len(newest_first) == 50
    seen, after, pages = [], None, []
    while True:
        page = await items(client, token, first=20, after=after)
        pages.append((page["pageData"]["offset"], len(page["page"]["edges"]), page["page"]["pageInfo"]["hasPreviousPage"]))
        assert page["pageData"]["count"] == 50 and page["pageData"]["limit"] == 20
        seen += [edge["node"]["oemItemID"] for edge in page["page"]["edges"]]
        info = page["page"]["pageInfo"]
        assert info["endCursor"] == page["page"]["edges"][-1]["cursor"]
        if not info["hasNextPage"]:
            break
        after = info["endCursor"]
    assert seen == newest_first and pages == [(0, 20, False), (20, 20, True), (40, 10, True)]

    seen, before = [], None
    while True:
        page = await items(client, token, last=20, before=before)
        seen = [edge["node"]["oemItemID"] for edge in page["page"]["edges"]] + seen
        info = page["page"]["pageInfo"]
        assert info["hasNextPage"] == (before is not None)
        if not info["hasPreviousPage"]:
            assert page["pageData"]["offset"] == 0 and len(page["page"]["edges"]) == 10
            break
        before = info["startCursor"]
    assert seen == newest_first
    oldest_first = await items(client, token, order="ASC", first=3)
    assert [edge["node"]["oemItemID"] for edge in oldest_first["page"]["edges"]] == newest_first[::-1][:3]
    assert oldest_first["page"]["edges"][0]["cursor"] == "YXJyYXljb25uZWN0aW9uOjA="


async def test_a_page_holds_at_most_100_items(client: httpx.AsyncClient, clock: ManualClock) -> None:
    async with running(ErmSandbox(clock=clock, device_count=148)) as url, httpx.AsyncClient(base_url=url) as big:
        token = await sign_in(big)
        for variables in ({}, {"first": 500}, {"last": 101}):
            page = await items(big, token, **variables)
            assert len(page["page"]["edges"]) == 100 and page["pageData"] == {
                "count": 150, "limit": 100, "offset": 50 if "last" in variables else 0,
            }
        for variables in ({"first": -1}, {"last": -5}, {"after": "bm90IGEgY3Vyc29y"}, {"before": "%%%"}):
            error = refusal(await gql(big, ITEMS, token, **variables), "getAllClientItems")
            assert error["extensions"]["code"] == "BAD_USER_INPUT", variables


async def test_items_search_any_id_or_description_ignoring_case(
    client: httpx.AsyncClient, token: str, erm_sandbox: ErmSandbox
) -> None:
    for search, expected in (
        ("test2503000017", ["TEST2503000017"]),
        ("64BA2E1EAA6C7F107D7A8918", ["TEST2503000017"]),
        ("seller01ah2307000009", ["01AH2307000009"]),
        ("723128", ["01AH2307000009"]),
        ("nothing like it", []),
    ):
        page = await items(client, token, search=search)
        assert [edge["node"]["oemItemID"] for edge in page["page"]["edges"]] == expected
        assert page["pageData"]["count"] == len(expected)
    node = (await items(client, token, search="723128"))["page"]["edges"][0]["node"]
    assert node == {
        "_id": erm_sandbox.device(723128).erm_id, "oemItemID": "01AH2307000009", "sellerItemID": "SELLER01AH2307000009",
        "description": "Solar home system 01AH2307000009", "lifeCycle": "ASSIGNED", "legacyItemId": "723128",
        "codeGenUsed": 0, "type": "DEVICE",
    }
    first = await items(client, token, search="Solar Home System SBX0000000004", first=5)
    rest = await items(client, token, search="solar home system sbx0000000004", after=first["page"]["pageInfo"]["endCursor"])
    found = [edge["node"]["oemItemID"] for page in (first, rest) for edge in page["page"]["edges"]]
    assert found == [f"SBX0000000004{n}" for n in range(8, -1, -1)] and rest["pageData"]["offset"] == 5
    assert rest["page"]["pageInfo"]["hasNextPage"] is False and first["pageData"]["count"] == 9
    assert (await items(client, token, search="nothing"))["page"]["pageInfo"]["startCursor"] is None


# -- faults, calls, malformed requests ----------------------------------------------------------


async def test_failures_queued_for_graphql_paths(
    client: httpx.AsyncClient, token: str, erm_sandbox: ErmSandbox
) -> None:
    erm_sandbox.fail_next(paths=["/graphql/generate"])
    assert await sign_in(client)  # a sign-in is not a generation
    failed = await gql(client, DAYS, token, itemId=OTHER, codeDays=3)
    assert (failed.status_code, failed.json()) == (500, {"message": "Internal Server Error"})
    assert erm_sandbox.device(OTHER).codes == [] and erm_sandbox.generations == 1
    assert data(await gql(client, FREE, token, itemId=OTHER))  # only one was queued

    erm_sandbox.fail_next(2, status=502, body="<html><body>Bad Gateway</body></html>", paths=["/graphql"])
    for query, variables in ((ITEMS, {}), ("{ not even graphql", {})):
        page = await gql(client, query, token, **variables)
        assert page.status_code == 502 and page.headers["content-type"].startswith("text/html")
    erm_sandbox.fail_next(status=200, body={"data": None}, paths=["/graphql/getItemsForDownloadById"])
    erm_sandbox.fail_next(paths=["/graphql/signInUser", "/otp/daysCode"])
    assert (await gql(client, HISTORY, token, ids=[EXAMPLE_ID])).json() == {"data": None}
    assert data(await gql(client, SIGN_IN_CLIENT, email=EMAIL, password=PASSWORD))  # not signInUser
    assert (await gql(client, SIGN_IN_USER, email=EMAIL, password=PASSWORD)).status_code == 500
    assert erm_sandbox.pending_faults()["pendingFailures"] == 0


async def test_a_late_answer_comes_after_the_code_is_committed(
    client: httpx.AsyncClient, token: str, erm_sandbox: ErmSandbox, clock: ManualClock
) -> None:
    erm_sandbox.late_next(1, 0.25)
    with pytest.raises(httpx.ReadTimeout):
        await gql(client, DAYS, token, timeout=0.1, itemId=OTHER, codeDays=9)
    assert [(record.number, record.code_days) for record in erm_sandbox.device(OTHER).codes] == [(1, 9)]
    clock.advance(6)
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert data(await gql(client, RESET, token, timeout=0.2, itemId=OTHER))
    assert loop.time() - started < 0.2 and erm_sandbox.pending_faults()["pendingLate"] == 0


async def test_calls_are_recorded_with_the_password_masked(client: httpx.AsyncClient, erm_sandbox: ErmSandbox) -> None:
    token = await sign_in(client)
    erm_sandbox.latency = 0.1
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert data(await gql(client, DAYS, token, itemId="163", codeDays=4))
    assert loop.time() - started >= 0.1
    assert list(erm_sandbox.calls) == [
        ("POST", "/graphql", {"query": SIGN_IN_CLIENT, "variables": {"email": EMAIL, "password": "***"}}),
        ("POST", "/graphql", {"query": DAYS, "variables": {"itemId": "163", "codeDays": 4}}),
    ]
    assert (erm_sandbox.logins, erm_sandbox.generations) == (1, 1)


async def test_malformed_bodies_and_queries_are_400s_without_a_traceback(
    client: httpx.AsyncClient, token: str, erm_sandbox: ErmSandbox
) -> None:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    for raw in (b"{query", b"[]", b'{"variables": {}}', b'{"query": 5}', b'{"query": "{ __typename }", "variables": [1]}',
                b'{"query": "{ __typename }", "operationName": 1}', "\N{SNOWMAN}".encode("utf-16")):
        response = await client.post("/graphql", content=raw, headers=headers)
        assert response.status_code == 400, raw
        assert [error["extensions"]["code"] for error in response.json()["errors"]] == ["BAD_REQUEST"]
    for query, variables, code, words in (
        ("{ getAllClientItems(", {}, "GRAPHQL_PARSE_FAILED", "Syntax Error"),
        ("{ nope }", {}, "GRAPHQL_VALIDATION_FAILED", "Cannot query field 'nope' on type 'Query'."),
        ("{ getAllClientItems }", {}, "GRAPHQL_VALIDATION_FAILED", "must have a selection of subfields"),
        (DAYS, {"itemId": OTHER, "codeDays": "x"}, "BAD_USER_INPUT", "Variable '$codeDays' got invalid value 'x'"),
        (DAYS, {"itemId": OTHER}, "BAD_USER_INPUT", "Variable '$codeDays' of required type 'Int!' was not provided."),
        ("query A { __typename } query B { __typename }", {}, "OPERATION_RESOLUTION_FAILURE", "operation name"),
    ):
        response = await gql(client, query, token, **variables)
        assert response.status_code == 400, query
        errors = response.json()["errors"]
        assert errors[0]["extensions"]["code"] == code and words in errors[0]["message"], errors
        assert "Traceback" not in response.text and "data" not in response.json()
    assert (await client.get("/graphql")).status_code == 405
    assert erm_sandbox.device(OTHER).codes == [] and erm_sandbox.generations == 2  # counted, nothing committed
    named = await client.post("/graphql", json={"query": "query A { __typename } query B { x: __typename }",
                                                "operationName": "B"}, headers=headers)
    assert data(named) == {"x": "Query"}

