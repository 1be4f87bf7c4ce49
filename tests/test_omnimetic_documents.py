"""The Omnimetic client against the document's own examples (``tests/data/omnimetic``, made valid
JSON) behind ``httpx.MockTransport``: paths, the access token and its account id, the Bearer header,
the typed reading of every answer, renewal, and every failure typed — with no secret anywhere."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.clock import ManualClock
from bot.omnimetic.client import OmnimeticClient, check_account_id
from bot.omnimetic.errors import (
    OmnimeticAuthError,
    OmnimeticError,
    OmnimeticNotFound,
    OmnimeticRefused,
    OmnimeticUnavailable,
)

DOCS = Path(__file__).parent / "data" / "omnimetic"
BASE = "https://app.omnimetic.com/api"
CLIENT_ID = "e4de5af2-37ab-45a9-88fd-8949b045bf92"
SECRET = "omni-S3cret-k3y-for-tests"  # the document's example uses the client id as its secret: not here
ACCOUNT = "61717f9aa817d400165cc85a"
JOHN = "64d4a4ba8061ed001f6159cf"
PREFIX = f"/api/accounts/{ACCOUNT}/utility-service-accounts/"
XLSX_BYTES = b"PK\x03\x04" + b"\x00" * 60


def doc(name: str) -> Any:
    return json.loads((DOCS / name).read_text())


class FakeOmnimetic:
    """A scripted Omnimetic behind httpx.MockTransport: records requests, hands out tokens."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.tokens = 0
        self.valid: set[str] = set()
        self.refused = 0
        self.routes: dict[str, Callable[[httpx.Request], httpx.Response]] = {}

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.path == "/api/access-token":
            if json.loads(request.content) != {"clientId": CLIENT_ID, "name": "paygbot", "secret": SECRET}:
                return httpx.Response(401, json={"message": "Invalid client id or secret"})
            self.tokens += 1
            token = f"tok-{self.tokens}-0a1b2c3d"
            self.valid.add(token)
            return httpx.Response(200, json={**doc("access_token.json"), "token": token})
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer ") or header.removeprefix("Bearer ") not in self.valid:
            self.refused += 1
            return httpx.Response(401, json={"message": "Unauthorized"})
        assert request.url.path.startswith(PREFIX), request.url.path
        _, what = request.url.path.removeprefix(PREFIX).split("/")
        return self.routes[what](request)

    def client(self, **kwargs: Any) -> OmnimeticClient:
        return OmnimeticClient(BASE, CLIENT_ID, SECRET, transport=httpx.MockTransport(self.handler), **kwargs)

    def answer(self, what: str, body: Any = None, status: int = 200, **kwargs: Any) -> None:
        self.routes[what] = lambda request: (
            httpx.Response(status, json=body, **kwargs) if body is not None else httpx.Response(status, **kwargs)
        )

    def paths(self) -> list[str]:
        return [request.url.path.removeprefix(PREFIX) for request in self.requests]


@pytest.fixture
def omnimetic() -> FakeOmnimetic:
    fake = FakeOmnimetic()
    fake.answer("info", doc("info.json"))
    fake.answer("historical-data", doc("historical_data.json"))
    fake.answer("interval-data", doc("interval_data.json"))
    fake.answer("download-data", content=XLSX_BYTES)
    return fake


# -- the documented exchanges -------------------------------------------------------------------


async def test_the_access_token_request_is_the_documents(omnimetic: FakeOmnimetic) -> None:
    documented = doc("access_token_request.json")
    async with OmnimeticClient(BASE, documented["clientId"], SECRET, name=documented["name"],
                               transport=httpx.MockTransport(omnimetic.handler)) as client:
        with pytest.raises(OmnimeticAuthError):  # the fake knows the name "paygbot" only
            await client.login()
    (request,) = omnimetic.requests
    assert request.method == "POST" and str(request.url) == f"{BASE}/access-token"
    assert request.headers["Content-Type"] == "application/json"
    assert json.loads(request.content) == {**documented, "secret": SECRET}


async def test_the_token_s_account_id_is_in_every_path_and_the_token_is_a_bearer(omnimetic: FakeOmnimetic) -> None:
    async with omnimetic.client() as client:
        assert client.account_id is None
        account = await client.info(JOHN)
        assert client.account_id == ACCOUNT and client.logins == 1
    login, call = omnimetic.requests
    assert login.url.path == "/api/access-token"
    assert call.method == "GET"
    assert str(call.url) == f"{BASE}/accounts/{ACCOUNT}/utility-service-accounts/{JOHN}/info"
    assert call.headers["Authorization"] == "Bearer tok-1-0a1b2c3d"
    assert account.id == JOHN and account.external_service_account_id == "64d4a4ba8061ed001f6159ce"
    assert account.address is not None and account.address.line() == "jaipur, jaipur, RJ, 201203"
    assert account.linked_date == datetime(2023, 8, 10, 8, 50, 2, 621000, tzinfo=UTC)
    assert account.legal_names == ["John"]


async def test_historical_data_in_kwh_and_money(omnimetic: FakeOmnimetic) -> None:
    async with omnimetic.client() as client:
        (august,) = await client.history(JOHN, 2023)
    request = omnimetic.requests[-1]
    assert request.url.path.endswith(f"/{JOHN}/historical-data") and dict(request.url.params) == {"year": "2023"}
    assert august.month == "August" and august.month_number == 8 and august.year == 2023
    assert august.energy_consumption_in_watts == 677270.4
    assert august.energy_kwh == pytest.approx(677.2704)  # "InWatts", but watt-hours over the month
    assert august.on_peak_kwh == 0 and august.off_peak_kwh == 0
    assert august.amount_in_cents == 1128 and august.amount == Decimal("11.28")


async def test_interval_data_by_the_hour(omnimetic: FakeOmnimetic) -> None:
    async with omnimetic.client() as client:
        (hour,) = await client.interval(JOHN, date(2023, 10, 7), date(2023, 10, 8))
    request = omnimetic.requests[-1]
    assert request.url.path.endswith("/interval-data")
    assert dict(request.url.params) == {"startDate": "2023-10-07", "endDate": "2023-10-08"}
    assert hour.date == datetime(2023, 10, 7, 23, tzinfo=UTC) and hour.hour == "23:00"
    assert (hour.on_peak_usage, hour.off_peak_usage, hour.total_usage) == (0, 4.72, 1)  # as documented


async def test_download_gives_the_xlsx_bytes(omnimetic: FakeOmnimetic) -> None:
    async with omnimetic.client() as client:
        content = await client.download(JOHN)
        assert content == XLSX_BYTES
        omnimetic.answer("download-data", {"message": "here is JSON, not a spreadsheet"})
        with pytest.raises(OmnimeticUnavailable, match="not an .xlsx file"):
            await client.download(JOHN)
    assert "spreadsheetml" in omnimetic.requests[1].headers["Accept"]


# -- the token ------------------------------------------------------------------------------------


async def test_a_401_renews_the_token_once_and_repeats(omnimetic: FakeOmnimetic) -> None:
    async with omnimetic.client() as client:
        await client.info(JOHN)
        omnimetic.valid.clear()  # Omnimetic forgot the token
        account = await client.info(JOHN)
    assert omnimetic.paths() == ["/api/access-token", f"{JOHN}/info", f"{JOHN}/info", "/api/access-token",
                                 f"{JOHN}/info"]
    assert omnimetic.requests[-1].headers["Authorization"] == "Bearer tok-2-0a1b2c3d"
    assert account.id == JOHN


async def test_a_fresh_token_refused_too_is_an_auth_error(omnimetic: FakeOmnimetic) -> None:
    original = omnimetic.handler

    def forgetful(request: httpx.Request) -> httpx.Response:
        response = original(request)
        if request.url.path == "/api/access-token":
            omnimetic.valid.clear()  # every token is refused as soon as it is given
        return response

    async with OmnimeticClient(BASE, CLIENT_ID, SECRET, transport=httpx.MockTransport(forgetful)) as client:
        with pytest.raises(OmnimeticAuthError, match="Omnimetic refused a fresh token") as caught:
            await client.info(JOHN)
    assert caught.value.status == 401
    assert omnimetic.paths().count("/api/access-token") == 2 and omnimetic.refused == 2


async def test_concurrent_401s_share_one_renewal(omnimetic: FakeOmnimetic) -> None:
    both_refused = asyncio.Event()
    refused = 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal refused
        response = omnimetic.handler(request)
        if response.status_code == 401:
            refused += 1
            if refused == 2:
                both_refused.set()
            await asyncio.wait_for(both_refused.wait(), 5)  # both hold the stale token before anyone renews
        return response

    async with OmnimeticClient(BASE, CLIENT_ID, SECRET, transport=httpx.MockTransport(handler)) as client:
        await client.login()
        omnimetic.valid.clear()
        first, second = await asyncio.gather(client.info(JOHN), client.history(JOHN, 2023))
        assert client.logins == 2  # the first login, and exactly one renewal
    assert first.id == JOHN and second[0].month == "August"
    assert omnimetic.tokens == 2


async def test_concurrent_first_requests_log_in_once(omnimetic: FakeOmnimetic) -> None:
    async with omnimetic.client() as client:
        await asyncio.gather(*(client.info(JOHN) for _ in range(5)))
    assert omnimetic.paths().count("/api/access-token") == 1


async def test_the_token_is_renewed_before_its_hour_is_up(omnimetic: FakeOmnimetic, clock: ManualClock) -> None:
    async with omnimetic.client(clock=clock) as client:
        await client.info(JOHN)
        clock.advance(minutes=54)
        await client.info(JOHN)
        assert client.logins == 1  # still young enough
        clock.advance(minutes=1, seconds=1)  # 55 min 1 s old: replaced before it is used
        await asyncio.gather(client.info(JOHN), client.history(JOHN, 2023))
        assert client.logins == 2  # one renewal for both callers
    assert omnimetic.refused == 0  # never refused: renewed ahead of time
    assert omnimetic.paths().count("/api/access-token") == 2
    assert {request.headers["Authorization"] for request in omnimetic.requests[-2:]} == {"Bearer tok-2-0a1b2c3d"}


async def test_refused_keys_name_the_client_never_the_secret() -> None:
    fake = FakeOmnimetic()
    async with OmnimeticClient(BASE, CLIENT_ID, "not-the-secret", transport=httpx.MockTransport(fake.handler)) as client:
        with pytest.raises(OmnimeticAuthError) as caught:
            await client.info(JOHN)
    assert CLIENT_ID in caught.value.message and "Invalid client id or secret" in caught.value.message
    assert "not-the-secret" not in str(caught.value) and caught.value.status == 401
    assert fake.paths() == ["/api/access-token"]


@pytest.mark.parametrize("answer", [{"id": ACCOUNT}, {"token": "tok-x-12345678"}, [], {"id": "../x", "token": "t-1234"}])
async def test_an_access_token_answer_without_id_and_token_is_unavailable(answer: Any) -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json=answer))
    async with OmnimeticClient(BASE, CLIENT_ID, SECRET, transport=transport) as client:
        with pytest.raises(OmnimeticUnavailable, match="access-token answer"):
            await client.info(JOHN)
        assert client.account_id is None


async def test_a_5xx_at_the_access_token_is_unavailable_not_a_refusal() -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(503, json={"error": "maintenance"}))
    async with OmnimeticClient(BASE, CLIENT_ID, SECRET, transport=transport) as client:
        with pytest.raises(OmnimeticUnavailable, match="maintenance") as caught:
            await client.login()
    assert not isinstance(caught.value, OmnimeticRefused) and caught.value.status == 503


# -- failures -------------------------------------------------------------------------------------


async def test_404_is_not_found_with_omnimetic_s_words(omnimetic: FakeOmnimetic) -> None:
    omnimetic.answer("info", {"message": "Utility service account abc not found"}, status=404)
    omnimetic.answer("historical-data", status=404)
    async with omnimetic.client() as client:
        with pytest.raises(OmnimeticNotFound, match="Utility service account abc not found") as caught:
            await client.info("abc")
        with pytest.raises(OmnimeticNotFound, match=f"utility service account {JOHN} not found"):
            await client.history(JOHN, 2024)  # no words: ours
    assert caught.value.status == 404 and isinstance(caught.value, OmnimeticRefused)


async def test_400_is_refused_with_the_words(omnimetic: FakeOmnimetic) -> None:
    omnimetic.answer("interval-data", {"message": "startDate must be before endDate"}, status=400)
    async with omnimetic.client() as client:
        with pytest.raises(OmnimeticRefused) as caught:
            await client.interval(JOHN, date(2024, 2, 1), date(2024, 1, 1))
    assert caught.value.message == "startDate must be before endDate" and caught.value.status == 400
    assert not isinstance(caught.value, OmnimeticNotFound | OmnimeticAuthError)


async def test_5xx_html_and_non_json_are_unavailable(omnimetic: FakeOmnimetic) -> None:
    page = "<html><head><title>502 Bad Gateway</title></head><body><h1>502</h1>nginx</body></html>"
    omnimetic.answer("info", {"error": "database down"}, status=500)
    omnimetic.answer("historical-data", status=502, text=page)
    omnimetic.answer("interval-data", status=200, text=page)
    async with omnimetic.client() as client:
        with pytest.raises(OmnimeticUnavailable, match="database down") as caught:
            await client.info(JOHN)
        assert caught.value.status == 500
        with pytest.raises(OmnimeticUnavailable, match="502 Bad Gateway"):
            await client.history(JOHN, 2023)
        with pytest.raises(OmnimeticUnavailable, match="not JSON: 502 Bad Gateway"):
            await client.interval(JOHN, date(2023, 10, 7), date(2023, 10, 7))
    assert omnimetic.paths().count(f"{JOHN}/info") == 1  # nothing repeated after a 5xx


@pytest.mark.parametrize(("what", "body"), [
    ("info", {"externalServiceAccountId": "x"}),
    ("info", ["not", "an", "object"]),
    ("historical-data", {"month": "August"}),
    ("historical-data", [{"month": "Augustus", "year": 2023}]),
    ("historical-data", [{"month": "August", "year": "last year"}]),
    ("interval-data", [{"hour": "23:00"}]),
    ("interval-data", {"rows": []}),
])
async def test_a_2xx_in_the_wrong_shape_is_unavailable(omnimetic: FakeOmnimetic, what: str, body: Any) -> None:
    omnimetic.answer(what, body)
    async with omnimetic.client() as client:
        call = {"info": lambda: client.info(JOHN), "historical-data": lambda: client.history(JOHN, 2023),
                "interval-data": lambda: client.interval(JOHN, date(2023, 10, 7), date(2023, 10, 7))}[what]
        with pytest.raises(OmnimeticUnavailable):
            await call()


async def test_timeouts_and_unreachable_hosts_are_unavailable(omnimetic: FakeOmnimetic) -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    omnimetic.routes["info"] = slow
    async with omnimetic.client(timeout=2) as client:
        with pytest.raises(OmnimeticUnavailable, match="no answer from Omnimetic within 2 s"):
            await client.info(JOHN)
    async with OmnimeticClient("http://127.0.0.1:9/api", CLIENT_ID, SECRET, timeout=2) as unreachable:
        with pytest.raises(OmnimeticUnavailable, match="could not be reached"):
            await unreachable.info(JOHN)


BAD_IDS = ["", " ", "a" * 65, "../access-token", "x/y", "a b", "abc\n", "é", "id?year=1", None, 5]


@pytest.mark.parametrize("bad", BAD_IDS)
async def test_bad_account_ids_never_leave_the_process(omnimetic: FakeOmnimetic, bad: Any) -> None:
    async with omnimetic.client() as client:
        for call in (lambda: client.info(bad), lambda: client.history(bad, 2024), lambda: client.download(bad),
                     lambda: client.interval(bad, date(2024, 1, 1), date(2024, 1, 2))):
            with pytest.raises(ValueError, match="utility service account id"):
                await call()
    assert omnimetic.requests == []
    assert check_account_id(JOHN) == JOHN and check_account_id("a-b_C9") == "a-b_C9"


@pytest.mark.parametrize("call", ["year", "start", "end"])
async def test_bad_years_and_dates_never_leave_the_process(omnimetic: FakeOmnimetic, call: str) -> None:
    async with omnimetic.client() as client:
        with pytest.raises(ValueError):
            if call == "year":
                await client.history(JOHN, True)
            else:
                start, end = ("2024-01-01", date(2024, 1, 2)) if call == "start" else (date(2024, 1, 1), None)
                await client.interval(JOHN, start, end)  # type: ignore[arg-type]
    assert omnimetic.requests == []


# -- secrets --------------------------------------------------------------------------------------


async def test_no_secret_or_token_in_logs_errors_or_repr(omnimetic: FakeOmnimetic,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    echo = f"token tok-1-0a1b2c3d and secret {SECRET} are not allowed"
    omnimetic.answer("info", {"message": echo}, status=403)
    omnimetic.answer("historical-data", {"error": echo}, status=500)
    omnimetic.answer("interval-data", status=200, text=echo)
    omnimetic.answer("download-data", status=200, text=echo)
    failures: list[OmnimeticError] = []
    async with omnimetic.client() as client:
        token = await client.login()
        for call in (lambda: client.info(JOHN), lambda: client.history(JOHN, 2023), lambda: client.download(JOHN),
                     lambda: client.interval(JOHN, date(2023, 1, 1), date(2023, 1, 2))):
            with pytest.raises(OmnimeticError) as caught:
                await call()
            failures.append(caught.value)
        texts = [caplog.text, repr(client), repr(client.__dict__), repr(token), str(token)]
    texts += [f"{failure} {failure.message} {failure!r}" for failure in failures]
    everything = " ".join(texts)
    assert "tok-1-0a1b2c3d" not in everything and SECRET not in everything
    assert all("are not allowed" in failure.message for failure in failures)  # the words kept, scrubbed
    assert f"logged in to Omnimetic as client {CLIENT_ID}" in caplog.text
    assert f"GET /accounts/{ACCOUNT}/utility-service-accounts/{JOHN}/info -> 403" in caplog.text


async def test_callers_waiting_for_a_failing_login_fail_with_it_not_each_after_its_own_timeout() -> None:
    logins = 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal logins
        if request.url.path.endswith("/access-token"):
            logins += 1
            await asyncio.sleep(0.2)
            return httpx.Response(503, json={"message": "Service Unavailable"})
        raise AssertionError("no data request without a token")

    async with OmnimeticClient("https://app.omnimetic.com/api", "client-1", "s3cret-k",
                               transport=httpx.MockTransport(handler)) as client:
        results = await asyncio.gather(*(client.info("64d4a4ba8061ed001f6159cf") for _ in range(5)),
                                       return_exceptions=True)
    assert all(isinstance(result, OmnimeticUnavailable) for result in results)
    assert logins == 1


async def test_omnimetic_words_are_cut_short() -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/access-token"):
            return httpx.Response(200, json={"id": "61717f9aa817d400165cc85a", "token": "tok-abcdef-123"})
        return httpx.Response(400, json={"message": "bad " * 2000})

    async with OmnimeticClient("https://app.omnimetic.com/api", "client-1", "s3cret-k",
                               transport=httpx.MockTransport(handler)) as client:
        with pytest.raises(OmnimeticRefused) as caught:
            await client.info("64d4a4ba8061ed001f6159cf")
    assert len(caught.value.message) <= 200
