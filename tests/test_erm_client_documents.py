"""The ERM client against the documents' own example responses, verbatim (httpx.MockTransport).

These pin the wire format: paths, request bodies, the raw token in ``Authorization``, and the
typed reading of every documented answer.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.erm import codes
from bot.erm.errors import (
    ErmAuthError,
    ErmInvalidResponse,
    ErmOutcomeUnknown,
    ErmRateLimited,
    ErmRefused,
    ErmUnavailable,
)
from bot.erm.rest import RestErm

DOCS = Path(__file__).parent / "data" / "erm"
PASSWORD = "s3cret-Pa55word"


def doc(name: str) -> Any:
    return json.loads((DOCS / name).read_text())


class FakeErm:
    """A scripted ERM behind httpx.MockTransport: records requests, hands out tokens."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.tokens = 0
        self.valid: set[str] = set()
        self.routes: dict[str, Callable[[httpx.Request], httpx.Response]] = {}

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.path == "/user/login":
            body = json.loads(request.content)
            if body != {"username": "test@example.com", "password": PASSWORD}:
                return httpx.Response(401, json={"message": "Invalid username or password"})
            self.tokens += 1
            token = f"tok-{self.tokens}-abcdef"
            self.valid.add(token)
            return httpx.Response(200, json={**doc("login.json"), "accessToken": token})
        if request.headers.get("Authorization") not in self.valid:
            return httpx.Response(401, json={"message": "Unauthorized"})
        return self.routes[request.url.path](request)

    def client(self, **kwargs: Any) -> RestErm:
        return RestErm(
            "https://api.omnivoltaic.com", "test@example.com", PASSWORD,
            transport=httpx.MockTransport(self.handler), **kwargs,
        )

    def answer(self, path: str, body: Any = None, status: int = 200, **kwargs: Any) -> None:
        self.routes[path] = lambda request: httpx.Response(status, json=body, **kwargs) if body is not None \
            else httpx.Response(status, **kwargs)


@pytest.fixture
def erm() -> FakeErm:
    return FakeErm()


async def test_days_code_request_and_documented_answer(erm: FakeErm) -> None:
    erm.answer("/otp/daysCode/v2", doc("days_code.json"))
    async with erm.client() as client:
        code = await client.days_code("TEST2503000017", 5)
    login, call = erm.requests
    assert login.url == "https://api.omnivoltaic.com/user/login"
    assert json.loads(login.content) == {"username": "test@example.com", "password": PASSWORD}
    assert call.method == "POST" and call.url.path == "/otp/daysCode/v2"
    assert json.loads(call.content) == {"productId": "TEST2503000017", "days": 5}
    assert call.headers["Authorization"] == "tok-1-abcdef"  # the raw token, no "Bearer"
    assert call.headers["Content-Type"] == "application/json"
    assert code.code == "*024 413 975 593 119 504 641#"
    assert code.otp_hash == "9184C537B9EFDD01" and code.otp_count == 0 and code.hex == "9184C537B9EFDD01"


async def test_integer_legacy_product_id_is_sent_as_a_number(erm: FakeErm) -> None:
    erm.answer("/code/code/freecodeotp/v2", doc("free_code.json"))
    async with erm.client() as client:
        await client.free_code(5816)
    assert json.loads(erm.requests[-1].content) == {"productId": 5816}


@pytest.mark.parametrize(
    ("method", "path", "example"),
    [("free_code", "/code/code/freecodeotp/v2", "free_code.json"), ("reset_code", "/code/code/resetcode/v2", "reset_code.json")],
)
async def test_free_and_reset_codes(erm: FakeErm, method: str, path: str, example: str) -> None:
    erm.answer(path, doc(example))
    async with erm.client() as client:
        code = await getattr(client, method)("64ba2e1eaa6c7f107d7a8918")
    assert json.loads(erm.requests[-1].content) == {"productId": "64ba2e1eaa6c7f107d7a8918"}
    assert code.code == "*030 594 885 382 337 041 426#" and code.otp_hash is None
    assert codes.hex_to_keypad(code.hex) == code.code


async def test_history_documented_example(erm: FakeErm) -> None:
    erm.answer("/oves/v2/codeHistoryList/64ba2e1eaa6c7f107d7a8918/0/10", doc("history.json"))
    async with erm.client() as client:
        page = await client.code_history("64ba2e1eaa6c7f107d7a8918", 0, 10)
    request = erm.requests[-1]
    assert request.method == "GET"
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert page.count == 27 and page.offset == 0 and page.limit == 10 and page.has_next_page
    assert [event.code_number for event in page.events] == list(range(21, 11, -1))  # newest first
    first = page.events[0]
    assert (first.id, first.code_type, first.code_days) == ("69c500938a5dfe4b5d56f5eb", "DAYSCODE", 60)
    assert first.code_hex_string == "7F1E998A6EBE89D3" and first.code_dec_string == "*021 327 118 181 857 980 883#"
    assert first.created_at.isoformat() == "2026-03-26T09:46:59+00:00"
    assert {event.code_type: event.code_days for event in page.events[3:5]} == {"RESETCODE": 2192, "FREECODE": 1096}


async def test_history_with_a_mismatched_code_is_an_error(erm: FakeErm) -> None:
    body = doc("history.json")
    body["page"]["edges"][2]["node"]["codeDecString"] = "*001 910 440 170 487 282 529#"
    erm.answer("/oves/v2/codeHistoryList/X1/0/10", body)
    async with erm.client() as client:
        with pytest.raises(ErmInvalidResponse, match="code 19: the decimal form does not match"):
            await client.code_history("X1")


async def test_generated_code_not_matching_its_hash_is_an_error(erm: FakeErm) -> None:
    erm.answer("/otp/daysCode/v2", {**doc("days_code.json"), "otpHash": "9184C537B9EFDD02"})
    async with erm.client() as client:
        with pytest.raises(ErmInvalidResponse, match="does not match its hash"):
            await client.days_code("X1", 5)


async def test_metadata_avatar_and_assigned_items(erm: FakeErm) -> None:
    erm.answer("/oves/codeHistory_Metadata", doc("history_metadata.json"))
    erm.answer("/oves/avatarAttr/670e0efe7be26d4c803cac68", doc("avatar.json"))
    item = {"_id": "64ba2e1eaa6c7f107d7a8918", "oemItemID": "TEST2503000017", "sellerItemID": "SELLER2503000042",
            "productItemID": 163, "name": "Solar home system"}
    erm.answer("/oves/assignedItemsList/0/5", {"assignedItems": [item]})
    erm.answer("/oves/assignedItems/19", item)
    async with erm.client() as client:
        meta = await client.history_metadata()
        avatar = await client.avatar("670e0efe7be26d4c803cac68")
        items = await client.assigned_items(0, 5)
        one = await client.item(19)
    assert meta.table_name == "codeHistory" and meta.total_columns == 5
    assert [column.field for column in meta.columns][:2] == ["codeHistoryID", "otpGeneratorID"]
    assert avatar.id == "68342ef3a9cf5f467b1c8b14" and avatar.cmd[0].prop == "pubk" and len(avatar.cmd) == 10
    assert items[0].ids == ["64ba2e1eaa6c7f107d7a8918", "TEST2503000017", "SELLER2503000042", "163"]
    assert one.oem_item_id == "TEST2503000017"


async def test_avatar_documented_400_error_carries_the_erm_words(erm: FakeErm) -> None:
    erm.answer("/oves/avatarAttr/nope", {"error": "invalid itemId"}, status=400)
    async with erm.client() as client:
        with pytest.raises(ErmRefused) as caught:
            await client.avatar("nope")
    assert caught.value.message == "invalid itemId" and caught.value.status == 400


async def test_401_logs_in_again_and_repeats_once(erm: FakeErm) -> None:
    erm.answer("/otp/daysCode/v2", doc("days_code.json"))
    async with erm.client() as client:
        await client.days_code("X1", 5)
        erm.valid.clear()  # every token expires
        code = await client.days_code("X1", 6)
    paths = [request.url.path for request in erm.requests]
    assert paths == ["/user/login", "/otp/daysCode/v2", "/otp/daysCode/v2", "/user/login", "/otp/daysCode/v2"]
    assert erm.requests[-1].headers["Authorization"] == "tok-2-abcdef"
    assert code.code == "*024 413 975 593 119 504 641#"


async def test_concurrent_requests_with_an_expired_token_cause_one_login(erm: FakeErm) -> None:
    both_refused = asyncio.Event()
    refused = 0
    erm.answer("/otp/daysCode/v2", doc("days_code.json"))
    original = erm.handler

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal refused
        response = original(request)
        if response.status_code == 401:
            refused += 1
            if refused == 2:
                both_refused.set()
            await asyncio.wait_for(both_refused.wait(), 5)  # both hold the stale token before anyone renews
        return response

    async with RestErm("https://erm.test", "test@example.com", PASSWORD, transport=httpx.MockTransport(handler)) as client:
        await client.login()
        erm.valid.clear()
        await asyncio.gather(client.days_code("A1", 5), client.days_code("B2", 5))
        assert client.logins == 2  # the first login, and exactly one renewal
    assert erm.tokens == 2


async def test_concurrent_first_requests_log_in_once(erm: FakeErm) -> None:
    erm.answer("/otp/daysCode/v2", doc("days_code.json"))
    async with erm.client() as client:
        await asyncio.gather(*(client.days_code(f"D{n}", 5) for n in range(5)))
    assert [request.url.path for request in erm.requests].count("/user/login") == 1


async def test_bad_credentials(erm: FakeErm) -> None:
    async with RestErm("https://erm.test", "test@example.com", "wrong", transport=httpx.MockTransport(erm.handler)) as client:
        with pytest.raises(ErmAuthError) as caught:
            await client.days_code("X1", 5)
    assert "wrong" not in str(caught.value)
    assert [request.url.path for request in erm.requests] == ["/user/login"]


async def test_5xx_is_unavailable_and_never_repeated(erm: FakeErm) -> None:
    erm.answer("/otp/daysCode/v2", {"error": "database down"}, status=503)
    async with erm.client() as client:
        with pytest.raises(ErmUnavailable, match="database down") as caught:
            await client.days_code("X1", 5)
    assert caught.value.status == 503
    assert [request.url.path for request in erm.requests].count("/otp/daysCode/v2") == 1


async def test_html_error_page(erm: FakeErm) -> None:
    page = "<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1>nginx</body></html>"
    erm.answer("/otp/daysCode/v2", status=502, text=page)
    erm.answer("/oves/codeHistory_Metadata", status=200, text=page)
    async with erm.client() as client:
        with pytest.raises(ErmOutcomeUnknown, match="502 Bad Gateway") as caught:
            await client.days_code("X1", 5)  # a gateway may fail after the ERM saved the code
        assert not isinstance(caught.value, ErmUnavailable)
        with pytest.raises(ErmInvalidResponse, match="not JSON: 502 Bad Gateway"):
            await client.history_metadata()


async def test_429_is_rate_limited_with_the_erm_words(erm: FakeErm) -> None:
    erm.answer("/otp/daysCode/v2", {"message": "Minimum 6 seconds between code generation requests"}, status=429)
    async with erm.client() as client:
        with pytest.raises(ErmRateLimited, match="Minimum 6 seconds"):
            await client.days_code("X1", 5)


async def test_a_timeout_after_sending_is_outcome_unknown(erm: FakeErm) -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    erm.routes["/otp/daysCode/v2"] = slow
    async with erm.client(timeout=2) as client:
        with pytest.raises(ErmOutcomeUnknown, match="no answer from the ERM within 2 s") as caught:
            await client.days_code("X1", 5)
    assert not isinstance(caught.value, ErmUnavailable)
    assert [request.url.path for request in erm.requests].count("/otp/daysCode/v2") == 1


async def test_connection_refused_is_unavailable() -> None:
    async with RestErm("http://127.0.0.1:9", "test@example.com", PASSWORD, timeout=2) as client:
        with pytest.raises(ErmUnavailable, match="could not be reached"):
            await client.days_code("X1", 5)


@pytest.mark.parametrize("bad", ["", " ", "a" * 65, "x/../../user/login", "1; DROP TABLE", "'\"", -3, True, 5.5])
async def test_bad_product_ids_never_leave_the_process(erm: FakeErm, bad: Any) -> None:
    async with erm.client() as client:
        with pytest.raises(ValueError):
            await client.days_code(bad, 5)
        with pytest.raises(ValueError):
            await client.code_history(bad)
    assert erm.requests == []


@pytest.mark.parametrize("days", [0, 1096, -5, True, 5.0, "5"])
async def test_days_out_of_range_never_leave_the_process(erm: FakeErm, days: Any) -> None:
    async with erm.client() as client:
        with pytest.raises(ValueError, match="1 to 1095"):
            await client.days_code("X1", days)
    assert erm.requests == []


async def test_no_secret_in_logs_errors_or_repr(erm: FakeErm, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    erm.answer("/otp/daysCode/v2", {"message": "token tok-1-abcdef is not allowed; password " + PASSWORD}, status=403)
    async with erm.client() as client:
        with pytest.raises(ErmRefused) as caught:
            await client.days_code("X1", 5)
        text = " ".join([caplog.text, str(caught.value), caught.value.message, repr(client), repr(client.__dict__)])
    assert "tok-1-abcdef" not in text and PASSWORD not in text
    assert "is not allowed" in caught.value.message


async def test_requests_waiting_for_a_failing_login_fail_with_it() -> None:
    """One login for many waiting requests, also when it fails: they do not each log in again after it."""
    logins = 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal logins
        assert request.url.path == "/user/login", "nothing is asked without a token"
        logins += 1
        await asyncio.sleep(0.2)
        return httpx.Response(503, json={"message": "Service Unavailable"})

    async with RestErm("https://erm.test", "test@example.com", PASSWORD, transport=httpx.MockTransport(handler)) as client:
        results = await asyncio.gather(*(client.code_history("X1") for _ in range(5)), return_exceptions=True)
    assert all(isinstance(result, ErmUnavailable) for result in results) and logins == 1
