"""The ERM sandbox over real HTTP, with a plain httpx client: the documented paths, shapes and
limits, and the faults tests inject through it."""

from __future__ import annotations

import asyncio
import base64
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from starlette.exceptions import HTTPException

from bot.clock import ManualClock
from bot.erm import codes
from bot.erm.models import Avatar, CodeType, HistoryMetadata, HistoryPage, Item
from bot.standins.erm import ErmSandbox, running

CREDENTIALS = {"username": "test@example.com", "password": "test1234"}
EXAMPLE_IDS = ("64ba2e1eaa6c7f107d7a8918", "TEST2503000017", "SELLER2503000042")
OTHER = "SBX00000000001"
DAYS = "/otp/daysCode/v2"
FREE = "/code/code/freecodeotp/v2"
RESET = "/code/code/resetcode/v2"
DAYS_REFUSED = {"message": "days must be between 1 and 1095"}

# GET /oves/codeHistory_Metadata, copied from the document.
DOCUMENTED_METADATA = {
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


@pytest.fixture
async def client(erm_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=erm_url) as http:
        yield http


@pytest.fixture
async def api(client: httpx.AsyncClient) -> httpx.AsyncClient:
    """The client, logged in: the raw token in ``Authorization`` as the REST documents show."""
    client.headers["Authorization"] = await login(client)
    return client


async def login(client: httpx.AsyncClient) -> str:
    response = await client.post("/user/login", json=CREDENTIALS)
    assert response.status_code == 200
    token: str = response.json()["accessToken"]
    return token


async def days_code(api: httpx.AsyncClient, product_id: Any, days: Any = 5) -> httpx.Response:
    return await api.post(DAYS, json={"productId": product_id, "days": days})


async def history(api: httpx.AsyncClient, product_id: Any, offset: int = 0, limit: int = 100) -> dict[str, Any]:
    response = await api.get(f"/oves/v2/codeHistoryList/{product_id}/{offset}/{limit}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def numbers(page: dict[str, Any]) -> list[int]:
    return [edge["node"]["codeNumber"] for edge in page["page"]["edges"]]


# -- login and tokens ---------------------------------------------------------------------------


async def test_login_gives_an_opaque_token_and_the_distributor_role(client: httpx.AsyncClient) -> None:
    first = (await client.post("/user/login", json=CREDENTIALS)).json()
    second = (await client.post("/user/login", json=CREDENTIALS)).json()
    assert set(first) == {"accessToken", "user_role"}
    assert first["user_role"] == "DISTRIBUTOR"
    assert len(first["accessToken"]) >= 32 and first["accessToken"] != second["accessToken"]


async def test_login_refusals(client: httpx.AsyncClient, erm_sandbox: ErmSandbox) -> None:
    wrong = await client.post("/user/login", json={**CREDENTIALS, "password": "nope"})
    assert (wrong.status_code, wrong.json()) == (401, {"message": "Invalid username or password"})
    for bad in ({"username": "test@example.com"}, ["test@example.com", "test1234"]):
        response = await client.post("/user/login", json=bad)
        assert response.status_code == 400 and response.json()["message"]
    not_json = await client.post("/user/login", content=b"{username", headers={"Content-Type": "application/json"})
    assert not_json.status_code == 400 and not_json.json()["message"]
    assert erm_sandbox.logins == 4
    erm_sandbox.add_user("agent@example.com", "another")
    assert (await client.post("/user/login", json={"username": "agent@example.com", "password": "another"})).is_success


async def test_a_missing_or_unknown_token_is_refused_and_bearer_is_accepted(client: httpx.AsyncClient) -> None:
    token = await login(client)
    for headers in ({}, {"Authorization": "not-a-token"}, {"Authorization": f"Bearer {token}x"}):
        response = await client.get("/oves/codeHistory_Metadata", headers=headers)
        assert (response.status_code, response.json()) == (401, {"message": "Unauthorized"})
    for header in (token, f"Bearer {token}"):
        assert (await client.get("/oves/codeHistory_Metadata", headers={"Authorization": header})).status_code == 200


async def test_tokens_die_after_24_hours_or_when_expired(
    api: httpx.AsyncClient, clock: ManualClock, erm_sandbox: ErmSandbox
) -> None:
    clock.advance(hours=23, minutes=59)
    assert (await api.get("/oves/assignedItems/163")).status_code == 200
    clock.advance(minutes=1)
    response = await api.get("/oves/assignedItems/163")
    assert (response.status_code, response.json()) == (401, {"message": "Unauthorized"})
    assert (await days_code(api, OTHER)).status_code == 401
    api.headers["Authorization"] = await login(api)
    assert (await days_code(api, OTHER)).status_code == 200
    erm_sandbox.expire_tokens()
    clock.advance(6)
    assert (await days_code(api, OTHER)).status_code == 401
    assert len(erm_sandbox.device(OTHER).codes) == 1


# -- devices and ids ---------------------------------------------------------------------------


async def test_the_three_ids_of_the_example_device_share_one_counter_and_history(
    api: httpx.AsyncClient, clock: ManualClock, erm_sandbox: ErmSandbox
) -> None:
    erm_id, oem_id, seller_id = EXAMPLE_IDS
    assert (await days_code(api, erm_id)).json()["otpCount"] == 0
    too_soon = await days_code(api, seller_id)
    assert too_soon.status_code == 429
    clock.advance(6)
    assert (await days_code(api, seller_id)).json()["otpCount"] == 1
    clock.advance(6)
    assert (await api.post(FREE, json={"productId": oem_id})).status_code == 200
    pages = [await history(api, product_id) for product_id in (*EXAMPLE_IDS, 163)]
    assert all(page == pages[0] for page in pages)
    assert numbers(pages[0]) == [3, 2, 1]
    assert erm_sandbox.device(oem_id) is erm_sandbox.device(163) is erm_sandbox.devices[0]


async def test_integer_legacy_ids_and_the_legacy_paths(api: httpx.AsyncClient, clock: ManualClock) -> None:
    days = await api.post("/otp/daysCode", json={"productId": 163, "days": 7})
    assert days.status_code == 200 and set(days.json()) == {"message", "otpCount", "code", "otpHash"}
    clock.advance(6)
    assert (await api.post("/code/code/freecodeotp", json={"productId": "163"})).json()["message"] == "succeed"
    clock.advance(6)
    assert (await api.post("/code/code/resetcode", json={"productId": 163})).json()["message"] == "succeed"
    legacy = (await api.get("/oves/codeHistoryList/163/0/10")).json()
    assert legacy == await history(api, "TEST2503000017", 0, 10)
    assert [edge["node"]["codeDays"] for edge in legacy["page"]["edges"]] == [2192, 1096, 7]
    # The history document's other example ids are one more device.
    assert (await days_code(api, 723128)).status_code == 200
    assert numbers(await history(api, "01AH2307000009")) == [1]
    assert (await history(api, 723128))["pageData"]["count"] == 1


def test_generated_devices_are_deterministic() -> None:
    first, second = ErmSandbox(device_count=3), ErmSandbox(device_count=3)
    assert [d.item() for d in first.devices] == [d.item() for d in second.devices]
    assert len(first.devices) == 5
    device = first.device("SBX00000000001")
    assert (device.seller_item_id, device.product_item_id) == ("SELLERSBX00000000001", 1001)
    assert re.fullmatch(r"[0-9a-f]{24}", device.erm_id) and first.device(device.erm_id) is device
    assert first.device("SBX00000000003").product_item_id == 1003
    assert re.fullmatch(r"[0-9a-f]{24}", first.device(723128).erm_id)
    assert first.device("SELLER01AH2307000009").oem_item_id == "01AH2307000009"
    with pytest.raises(KeyError):
        first.device("SBX00000000004")


# -- code generation ---------------------------------------------------------------------------


async def test_days_code_has_the_documented_shape(api: httpx.AsyncClient, clock: ManualClock) -> None:
    clock.set(datetime(2026, 3, 26, 9, 46, 59, tzinfo=UTC))
    response = await days_code(api, "TEST2503000017", 5)
    body = response.json()
    assert response.status_code == 200
    assert list(body) == ["message", "otpCount", "code", "otpHash"] and body["message"] == "Succeed"
    assert re.fullmatch(r"[0-9A-F]{16}", body["otpHash"]) and codes.matches(body["otpHash"], body["code"])
    edge = (await history(api, "TEST2503000017"))["page"]["edges"][0]
    assert base64.b64decode(edge["cursor"]) == b"arrayconnection:0"
    node = edge["node"]
    assert re.fullmatch(r"[0-9a-f]{24}", node.pop("_id"))
    assert node == {
        "codeType": "DAYSCODE",
        "codeDays": 5,
        "codeHexString": body["otpHash"],
        "codeDecString": body["code"],
        "codeNumber": 1,
        "createdAt": "2026-03-26T09:46:59.000Z",
        "updatedAt": "2026-03-26T09:46:59.000Z",
        "__typename": "CodeEvent",
    }


async def test_free_and_reset_codes(api: httpx.AsyncClient, clock: ManualClock, erm_sandbox: ErmSandbox) -> None:
    free = await api.post(FREE, json={"productId": "TEST2503000017"})
    assert free.status_code == 200
    assert list(free.json()) == ["message", "code"] and free.json()["message"] == "succeed"
    assert codes.is_keypad_code(free.json()["code"]) and erm_sandbox.device(163).free
    clock.advance(6)
    reset = await api.post(RESET, json={"productId": "TEST2503000017"})
    assert list(reset.json()) == ["message", "code"] and reset.json()["code"] != free.json()["code"]
    device = erm_sandbox.device(163)
    assert not device.free and device.credit_until == clock.now()
    nodes = [edge["node"] for edge in (await history(api, 163))["page"]["edges"]]
    assert [(n["codeType"], n["codeDays"]) for n in nodes] == [("RESETCODE", 2192), ("FREECODE", 1096)]
    assert [n["codeDecString"] for n in nodes] == [reset.json()["code"], free.json()["code"]]


@pytest.mark.parametrize("days", [0, 1096, -5, "5", True, 5.5, 5.0, None])
def test_days_outside_1_to_1095_or_not_an_integer_are_refused(erm_sandbox: ErmSandbox, days: Any) -> None:
    with pytest.raises(HTTPException) as refused:
        erm_sandbox.generate("TEST2503000017", CodeType.DAYS, days)
    assert (refused.value.status_code, refused.value.detail) == (400, DAYS_REFUSED["message"])
    assert erm_sandbox.device(163).codes == []


async def test_refused_generations_commit_nothing(api: httpx.AsyncClient, erm_sandbox: ErmSandbox) -> None:
    for days in (0, 1096, "5", True, 5.5):
        response = await days_code(api, "TEST2503000017", days)
        assert (response.status_code, response.json()) == (400, DAYS_REFUSED), days
    missing_days = await api.post(DAYS, json={"productId": "TEST2503000017"})
    assert (missing_days.status_code, missing_days.json()) == (400, DAYS_REFUSED)
    for body in ({"days": 5}, {"productId": "", "days": 5}, {"productId": None}, [1, 2]):
        response = await api.post(DAYS, json=body)
        assert response.status_code == 400 and response.json()["message"], body
    not_json = await api.post(FREE, content=b"productId=163")
    assert not_json.status_code == 400 and not_json.json()["message"]
    unknown = await days_code(api, "NOPE0000000001")
    assert unknown.status_code == 404 and "NOPE0000000001" in unknown.json()["message"]
    assert (await history(api, 163))["pageData"]["count"] == 0
    assert erm_sandbox.device(163).credit_until is None and erm_sandbox.generations == 12
    # Nothing refused counted towards the gap: a good request goes through at once.
    assert (await days_code(api, "TEST2503000017")).status_code == 200


async def test_six_seconds_between_codes_per_device(api: httpx.AsyncClient, clock: ManualClock) -> None:
    assert (await days_code(api, "TEST2503000017")).status_code == 200
    clock.advance(1)
    too_soon = await api.post(RESET, json={"productId": "TEST2503000017"})
    assert too_soon.status_code == 429
    assert "wait 5 seconds" in too_soon.json()["message"] and too_soon.headers["Retry-After"] == "5"
    assert (await days_code(api, OTHER)).status_code == 200  # another device is not held back
    clock.advance(4.999)
    assert (await days_code(api, "TEST2503000017")).status_code == 429
    clock.advance(0.001)
    assert (await days_code(api, "TEST2503000017")).status_code == 200
    assert numbers(await history(api, 163)) == [2, 1]


async def test_ten_codes_per_utc_day_per_device(api: httpx.AsyncClient, clock: ManualClock) -> None:
    clock.set(datetime(2026, 11, 22, 23, 58, 0, tzinfo=UTC))
    clock.advance(days=-1)  # yesterday's codes do not count today
    assert (await days_code(api, OTHER)).status_code == 200
    clock.advance(days=1)
    for _ in range(10):
        assert (await days_code(api, OTHER)).status_code == 200
        clock.advance(6)
    refused = await days_code(api, OTHER)
    assert refused.status_code == 429 and "daily limit" in refused.json()["message"].lower()
    assert (await days_code(api, "TEST2503000017")).status_code == 200
    clock.set(datetime(2026, 11, 23, 0, 0, 0, tzinfo=UTC))
    assert (await days_code(api, OTHER)).status_code == 200
    assert (await history(api, OTHER))["pageData"]["count"] == 12


async def test_stacked_credit_beyond_1096_days_is_flagged(
    api: httpx.AsyncClient, clock: ManualClock, erm_sandbox: ErmSandbox
) -> None:
    device = erm_sandbox.device(OTHER)
    assert (await days_code(api, OTHER, 1095)).status_code == 200
    assert device.credit_until == clock.now() + timedelta(days=1095) and not device.overflowed
    clock.advance(hours=12)
    assert (await days_code(api, OTHER, 1)).status_code == 200
    assert not device.overflowed  # half a day was used up: 1095.5 days left
    clock.advance(6)
    assert (await days_code(api, OTHER, 1)).status_code == 200
    assert device.overflowed


# -- history, metadata, avatar, assigned items ------------------------------------------------------


async def test_history_is_newest_first_paged_and_checked(api: httpx.AsyncClient, clock: ManualClock) -> None:
    for days in (1, 2, 3, 4, 5):
        assert (await days_code(api, OTHER, days)).status_code == 200
        clock.advance(6)
    first = await history(api, OTHER, 0, 2)
    assert numbers(first) == [5, 4]
    assert first["page"]["pageInfo"] == {
        "hasPreviousPage": False, "hasNextPage": True, "__typename": "CodeEventPageInfo"
    }
    assert first["pageData"] == {"count": 5, "limit": 2, "offset": 0, "__typename": "PageData"}
    middle = await history(api, OTHER, 2, 2)
    assert numbers(middle) == [3, 2] and middle["page"]["pageInfo"]["hasNextPage"]
    last = await history(api, OTHER, 4, 2)
    assert numbers(last) == [1]
    assert last["page"]["pageInfo"]["hasPreviousPage"] and not last["page"]["pageInfo"]["hasNextPage"]
    assert base64.b64decode(last["page"]["edges"][0]["cursor"]) == b"arrayconnection:4"
    page = HistoryPage.from_wire(await history(api, OTHER, 0, 10))
    assert [event.code_days for event in page.events] == [5, 4, 3, 2, 1] and not page.has_next_page
    beyond = await history(api, OTHER, 10, 10)
    assert beyond["page"]["edges"] == [] and beyond["pageData"]["count"] == 5
    unknown = await api.get("/oves/v2/codeHistoryList/NOPE0000000001/0/10")
    assert unknown.status_code == 404 and unknown.json()["message"]
    for offset, limit in (("-1", "10"), ("0", "x"), ("1.5", "10"), ("0", "-3")):
        response = await api.get(f"/oves/v2/codeHistoryList/{OTHER}/{offset}/{limit}")
        assert response.status_code == 400 and response.json()["message"], (offset, limit)


async def test_history_metadata_is_the_documented_response(api: httpx.AsyncClient) -> None:
    response = await api.get("/oves/codeHistory_Metadata")
    assert response.json() == DOCUMENTED_METADATA
    assert HistoryMetadata.model_validate(response.json()).total_columns == 5


async def test_avatar_attributes(api: httpx.AsyncClient) -> None:
    response = await api.get("/oves/avatarAttr/TEST2503000017")
    avatar = Avatar.model_validate(response.json())
    assert re.fullmatch(r"[0-9a-f]{24}", avatar.id)
    assert [attr.prop for attr in avatar.cmd][:3] == ["pubk", "gstw", "gctw"]
    assert codes.is_keypad_code(avatar.cmd[0].value)
    assert (await api.get("/oves/avatarAttr/64ba2e1eaa6c7f107d7a8918")).json() == response.json()
    assert (await api.get(f"/oves/avatarAttr/{OTHER}")).json()["_id"] != avatar.id
    unknown = await api.get("/oves/avatarAttr/670e0efe7be26d4c803cac68")
    assert unknown.status_code == 400 and set(unknown.json()) == {"error"} and unknown.json()["error"]


async def test_assigned_items(api: httpx.AsyncClient) -> None:
    body = (await api.get("/oves/assignedItemsList/0/5")).json()
    assert body["pageData"] == {"count": 50, "offset": 0, "limit": 5}
    items = [Item.model_validate(item) for item in body["assignedItems"]]
    assert items[0].ids == [*EXAMPLE_IDS, "163"]
    assert items[1].ids[1:] == ["01AH2307000009", "SELLER01AH2307000009", "723128"]
    assert items[2].oem_item_id == "SBX00000000001" and items[2].product_item_id == 1001
    tail = (await api.get("/oves/assignedItemsList/48/5")).json()
    assert [item["oemItemID"] for item in tail["assignedItems"]] == ["SBX00000000047", "SBX00000000048"]
    for any_id in ("163", *EXAMPLE_IDS):
        assert (await api.get(f"/oves/assignedItems/{any_id}")).json() == body["assignedItems"][0]
    missing = await api.get("/oves/assignedItems/99999")
    assert missing.status_code == 404 and missing.json()["message"]
    assert (await api.get("/oves/assignedItemsList/0/x")).status_code == 400


async def test_running_a_1000_device_sandbox_whose_item_pages_hold_at_most_100(clock: ManualClock) -> None:
    sandbox = ErmSandbox(clock=clock, device_count=1000)
    async with running(sandbox) as url, httpx.AsyncClient(base_url=url) as api:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url) and not url.endswith(":0")
        api.headers["Authorization"] = await login(api)
        body = (await api.get("/oves/assignedItemsList/900/1000")).json()
        assert len(body["assignedItems"]) == 100
        assert body["pageData"] == {"count": 1002, "offset": 900, "limit": 100}
        assert (await days_code(api, "SBX00000001000")).status_code == 200
        assert (await history(api, 2000))["pageData"]["count"] == 1
    async with httpx.AsyncClient(base_url=url) as client:
        with pytest.raises(httpx.ConnectError):  # stopped on leaving the block
            await client.post("/user/login", json=CREDENTIALS)


# -- faults and records ------------------------------------------------------------------------


async def test_fail_next_answers_an_error_and_commits_nothing(api: httpx.AsyncClient, erm_sandbox: ErmSandbox) -> None:
    erm_sandbox.fail_next()
    failed = await days_code(api, OTHER)
    assert (failed.status_code, failed.json()) == (500, {"message": "Internal Server Error"})
    page = "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"
    erm_sandbox.fail_next(2, status=502, body=page, paths=["/otp/daysCode"])
    assert (await history(api, OTHER))["pageData"]["count"] == 0  # not a matching path
    for product_id in (OTHER, 163):
        html = await days_code(api, product_id)
        assert html.status_code == 502 and html.headers["content-type"].startswith("text/html")
        assert html.text == page
    assert erm_sandbox.device(OTHER).codes == [] and erm_sandbox.device(163).codes == []
    assert (await days_code(api, OTHER)).status_code == 200
    assert erm_sandbox.generations == 4 and len(erm_sandbox.device(OTHER).codes) == 1


async def test_a_late_answer_comes_after_the_code_is_committed(
    api: httpx.AsyncClient, erm_sandbox: ErmSandbox, clock: ManualClock
) -> None:
    erm_sandbox.late_next(2, 0.25)
    with pytest.raises(httpx.ReadTimeout):
        await api.post(DAYS, json={"productId": OTHER, "days": 9}, timeout=0.1)
    committed = await history(api, OTHER)
    assert committed["pageData"]["count"] == 1 and committed["page"]["edges"][0]["node"]["codeDays"] == 9
    clock.advance(6)
    loop = asyncio.get_running_loop()
    started = loop.time()
    patient = await api.post(DAYS, json={"productId": OTHER, "days": 3}, timeout=5)
    assert patient.status_code == 200 and loop.time() - started >= 0.25
    clock.advance(6)
    started = loop.time()
    assert (await days_code(api, OTHER)).status_code == 200
    assert loop.time() - started < 0.25  # only two were late
    assert erm_sandbox.generations == 3


async def test_calls_and_counters_record_what_reached_the_sandbox(
    api: httpx.AsyncClient, erm_sandbox: ErmSandbox
) -> None:
    await days_code(api, 163, 4)
    await api.get("/oves/assignedItemsList/0/1")
    await api.get("/_sandbox/state")
    assert list(erm_sandbox.calls) == [
        ("POST", "/user/login", {"username": "test@example.com", "password": "***"}),
        ("POST", DAYS, {"productId": 163, "days": 4}),
        ("GET", "/oves/assignedItemsList/0/1", None),
    ]
    assert (erm_sandbox.logins, erm_sandbox.generations) == (1, 1)


async def test_faults_and_state_over_http(api: httpx.AsyncClient, erm_sandbox: ErmSandbox) -> None:
    set_fault = await api.post("/_sandbox/faults", json={"fault": "fail_next", "n": 2, "status": 503, "paths": [FREE]})
    assert set_fault.json() == {"pendingFailures": 2, "pendingLate": 0}
    for _ in range(2):
        assert (await api.post(FREE, json={"productId": OTHER})).status_code == 503
    assert (await api.post(FREE, json={"productId": OTHER})).status_code == 200

    await api.post("/_sandbox/faults", json={"fault": "late_next", "n": 1, "delay": 1.5})
    assert erm_sandbox.state()["pendingLate"] == 1
    await api.post("/_sandbox/faults", json={"fault": "clear"})
    assert erm_sandbox.state()["pendingLate"] == 0
    await api.post("/_sandbox/faults", json={"fault": "latency", "seconds": 0.1})
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert (await api.get("/oves/assignedItems/163")).status_code == 200
    assert erm_sandbox.latency == 0.1 and loop.time() - started >= 0.1
    erm_sandbox.latency = 0

    state = (await api.get("/_sandbox/state")).json()
    assert (state["logins"], state["generations"]) == (1, 3)
    other = next(device for device in state["devices"] if device["oemItemID"] == OTHER)
    assert other["codeCount"] == 1 and other["free"] and other["lastCode"]["codeType"] == "FREECODE"

    assert (await api.post("/_sandbox/faults", json={"fault": "expire_tokens"})).status_code == 200
    assert (await api.get("/oves/assignedItems/163")).status_code == 401
    for bad in ({"fault": "explode"}, {"fault": "late_next"}, {"fault": "fail_next", "status": 99}):
        response = await api.post("/_sandbox/faults", json=bad)
        assert response.status_code == 400 and response.json()["message"], bad
