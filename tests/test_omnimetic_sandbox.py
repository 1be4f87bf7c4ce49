"""The Omnimetic client against the Omnimetic sandbox over loopback: every call, tokens by the clock,
faults, the empty account, the interval rules, figures that add up, a real .xlsx, the document's
shapes — and ``paygbot sandbox`` serving it at ``/omnimetic/api`` beside the ERM sandbox."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import openpyxl
import pytest

from bot.clock import ManualClock
from bot.omnimetic.client import OmnimeticClient
from bot.omnimetic.connect import open_omnimetic
from bot.omnimetic.errors import OmnimeticNotFound, OmnimeticRefused, OmnimeticUnavailable
from bot.omnimetic.models import MONTHS, ServiceAccount
from bot.standins.omnimetic import (
    ACCOUNT_ID,
    DOC_ACCOUNT,
    EMPTY_ACCOUNT,
    EXAMPLE_CLIENT,
    GENERATED_ACCOUNTS,
    JANE_ACCOUNT,
    MOUNT,
    Call,
    OmnimeticSandbox,
    running,
)
from tests.support.cli import sandbox_command
from tests.support.settings import make_settings

DOCS = Path(__file__).parent / "data" / "omnimetic"
CREDENTIALS = {"clientId": EXAMPLE_CLIENT[0], "name": "Omnimetic", "secret": EXAMPLE_CLIENT[1]}
EAT = timedelta(hours=3)


def doc(name: str) -> Any:
    return json.loads((DOCS / name).read_text())


@pytest.fixture
def sandbox(clock: ManualClock) -> OmnimeticSandbox:
    return OmnimeticSandbox(clock=clock)


@pytest.fixture
async def url(sandbox: OmnimeticSandbox) -> AsyncIterator[str]:
    async with running(sandbox) as base:
        yield base


@pytest.fixture
async def client(url: str, clock: ManualClock) -> AsyncIterator[OmnimeticClient]:
    async with OmnimeticClient(url, *EXAMPLE_CLIENT, clock=clock) as omnimetic:
        yield omnimetic


@pytest.fixture
async def raw(url: str) -> AsyncIterator[httpx.AsyncClient]:
    """A plain client, with a token sent as the document's curl does: ``Bearer<token>``, no space."""
    async with httpx.AsyncClient(base_url=url) as http:
        answer = (await http.post("/access-token", json=CREDENTIALS)).json()
        http.headers["Authorization"] = f"Bearer{answer['token']}"
        yield http


def under(account: str, what: str) -> str:
    return f"/accounts/{ACCOUNT_ID}/utility-service-accounts/{account}/{what}"


def paths(sandbox: OmnimeticSandbox) -> list[str]:
    return [call.path.rsplit("/", 1)[-1] for call in sandbox.calls]


# -- every call -----------------------------------------------------------------------------------


async def test_every_call_over_loopback(client: OmnimeticClient, sandbox: OmnimeticSandbox) -> None:
    token = await client.login()
    assert token.id == ACCOUNT_ID == client.account_id
    john = await client.info(DOC_ACCOUNT)
    assert john == ServiceAccount.model_validate(doc("info.json"))
    months = await client.history(DOC_ACCOUNT, 2023)
    assert [row.month for row in months] == ["August", "September", "October", "November", "December"]
    hours = await client.interval(DOC_ACCOUNT, date(2023, 10, 7), date(2023, 10, 7))
    assert [hour.hour for hour in hours] == [f"{h:02d}:00" for h in range(24)]
    assert hours[23].date == datetime(2023, 10, 7, 23, tzinfo=UTC)
    assert (await client.download(DOC_ACCOUNT)).startswith(b"PK")
    assert sandbox.logins == 1 and client.logins == 1
    assert sandbox.calls[0] == Call("POST", "/access-token", "",
                                    {"clientId": EXAMPLE_CLIENT[0], "name": "paygbot", "secret": "***"})
    assert sandbox.calls[2] == Call("GET", under(DOC_ACCOUNT, "historical-data"), "year=2023", None)


async def test_the_documents_shapes(raw: httpx.AsyncClient) -> None:
    info = await raw.get(under(DOC_ACCOUNT, "info"))
    assert info.status_code == 200 and info.json() == doc("info.json")  # the document's account, verbatim
    (documented_month,) = doc("historical_data.json")
    months = (await raw.get(under(DOC_ACCOUNT, "historical-data"), params={"year": 2023})).json()
    assert all(row.keys() == documented_month.keys() for row in months)
    ids = {key: documented_month[key] for key in ("utilityUserAccount", "serviceAccount", "utilityCompany")}
    assert {key: months[0][key] for key in ids} == ids  # the document's ids for its own account
    (documented_hour,) = doc("interval_data.json")
    hours = (await raw.get(under(DOC_ACCOUNT, "interval-data"),
                           params={"startDate": "2023-10-07", "endDate": "2023-10-07"})).json()
    assert all(row.keys() == documented_hour.keys() for row in hours)
    assert hours[23]["date"] == "2023-10-07T23:00:00.000Z" and hours[23]["hour"] == "23:00"
    for account in (JANE_ACCOUNT, EMPTY_ACCOUNT, *GENERATED_ACCOUNTS):
        assert len(account) == 24 and all(c in "0123456789abcdef" for c in account)
        other = (await raw.get(under(account, "info"))).json()
        assert other.keys() == doc("info.json").keys() and other["address"].keys() == info.json()["address"].keys()


async def test_access_token_refusals(url: str, sandbox: OmnimeticSandbox) -> None:
    async with httpx.AsyncClient(base_url=url) as http:
        wrong = await http.post("/access-token", json={**CREDENTIALS, "secret": "guess"})
        missing = await http.post("/access-token", json={"name": "Omnimetic"})
        no_token = await http.get(under(DOC_ACCOUNT, "info"))
        sandbox.add_client("other-client", "other-secret")
        other = await http.post("/access-token", json={"clientId": "other-client", "secret": "other-secret"})
    assert (wrong.status_code, wrong.json()) == (401, {"message": "Invalid client id or secret"})
    assert missing.status_code == 400 and "clientId" in missing.json()["message"]
    assert (no_token.status_code, no_token.json()) == (401, {"message": "Unauthorized"})
    assert other.status_code == 200 and other.json()["id"] == ACCOUNT_ID
    assert sandbox.logins == 3
    assert all(call.body is None or call.body.get("secret") in (None, "***") for call in sandbox.calls)


# -- tokens by the clock --------------------------------------------------------------------------


async def test_the_client_renews_before_the_sandbox_s_hour_is_up(
    client: OmnimeticClient, sandbox: OmnimeticSandbox, raw: httpx.AsyncClient, clock: ManualClock
) -> None:
    await client.info(JANE_ACCOUNT)
    clock.advance(minutes=56)
    await client.info(JANE_ACCOUNT)
    assert client.logins == 2 and sandbox.logins == 3  # raw's login, the client's first and its renewal
    assert [call.path for call in sandbox.calls].count(under(JANE_ACCOUNT, "info")) == 2  # never refused
    clock.advance(minutes=5)  # raw's token, 61 minutes old, has run out
    stale = await raw.get(under(JANE_ACCOUNT, "info"))
    assert (stale.status_code, stale.json()) == (401, {"message": "Unauthorized"})


async def test_a_token_that_runs_out_early_is_renewed_on_the_401(clock: ManualClock) -> None:
    short = OmnimeticSandbox(clock=clock, token_lifetime=timedelta(minutes=30))
    async with running(short) as short_url, OmnimeticClient(short_url, *EXAMPLE_CLIENT, clock=clock) as client:
        await client.info(JANE_ACCOUNT)
        clock.advance(minutes=31)
        account = await client.info(JANE_ACCOUNT)
    assert account.id == JANE_ACCOUNT and client.logins == 2
    assert paths(short) == ["access-token", "info", "info", "access-token", "info"]


async def test_expired_tokens_are_refused_and_renewed_once(client: OmnimeticClient, sandbox: OmnimeticSandbox) -> None:
    await client.info(JANE_ACCOUNT)
    sandbox.expire_tokens()
    rows = await asyncio.gather(client.history(JANE_ACCOUNT, 2025), client.info(JANE_ACCOUNT))
    assert len(rows[0]) == 12 and client.logins == 2 and sandbox.logins == 2


# -- faults and refusals --------------------------------------------------------------------------


async def test_unknown_accounts_are_not_found(client: OmnimeticClient, raw: httpx.AsyncClient) -> None:
    unknown = "0" * 24
    with pytest.raises(OmnimeticNotFound, match=f"Utility service account {unknown} not found"):
        await client.info(unknown)
    with pytest.raises(OmnimeticNotFound):
        await client.download(unknown)
    other_account = await raw.get(f"/accounts/{'1' * 24}/utility-service-accounts/{DOC_ACCOUNT}/info")
    assert other_account.status_code == 404 and "not found" in other_account.json()["message"]


async def test_injected_failures(client: OmnimeticClient, sandbox: OmnimeticSandbox) -> None:
    sandbox.fail_next(paths=["/accounts"])
    with pytest.raises(OmnimeticUnavailable, match="Internal Server Error") as caught:
        await client.info(DOC_ACCOUNT)
    assert caught.value.status == 500
    assert (await client.info(DOC_ACCOUNT)).id == DOC_ACCOUNT  # one failure, then as before
    sandbox.fail_next(status=502, body="<html><title>502 Bad Gateway</title></html>", paths=["/accounts"])
    with pytest.raises(OmnimeticUnavailable, match="502 Bad Gateway"):
        await client.history(DOC_ACCOUNT, 2024)
    sandbox.fail_next(status=200, body={"rows": []}, paths=[under(DOC_ACCOUNT, "historical-data")])
    with pytest.raises(OmnimeticUnavailable, match="not a list"):
        await client.history(DOC_ACCOUNT, 2024)
    sandbox.expire_tokens()
    sandbox.fail_next(status=503, paths=["/access-token"])
    with pytest.raises(OmnimeticUnavailable, match="Service Unavailable"):
        await client.info(DOC_ACCOUNT)
    sandbox.fail_next(3)
    sandbox.clear_faults()
    assert sandbox.pending_failures == 0 and (await client.info(DOC_ACCOUNT)).id == DOC_ACCOUNT


async def test_the_empty_account(client: OmnimeticClient, clock: ManualClock) -> None:
    account = await client.info(EMPTY_ACCOUNT)
    assert account.linked_date is not None and account.linked_date.date() == clock.now().date()
    clock.advance(hours=5)  # hours pass, still nothing measured
    today = clock.now().date()
    assert await client.history(EMPTY_ACCOUNT, today.year) == []
    assert await client.interval(EMPTY_ACCOUNT, today - timedelta(days=1), today) == []
    book = openpyxl.load_workbook(io.BytesIO(await client.download(EMPTY_ACCOUNT)))
    assert [sheet.max_row for sheet in book.worksheets] == [1, 1]  # the headers only


async def test_interval_range_rules(client: OmnimeticClient, raw: httpx.AsyncClient) -> None:
    with pytest.raises(OmnimeticRefused, match="endDate must not be before startDate") as caught:
        await client.interval(JANE_ACCOUNT, date(2025, 3, 2), date(2025, 3, 1))
    assert caught.value.status == 400
    with pytest.raises(OmnimeticRefused, match="at most 31 days"):
        await client.interval(JANE_ACCOUNT, date(2025, 1, 1), date(2025, 2, 1))  # 32 days
    assert len(await client.interval(JANE_ACCOUNT, date(2025, 1, 1), date(2025, 1, 31))) == 31 * 24
    for query in ({"startDate": "2025-02-30", "endDate": "2025-03-01"}, {"startDate": "2025-03-01"},
                  {"startDate": "20250301", "endDate": "2025-03-01"}):
        bad = await raw.get(under(JANE_ACCOUNT, "interval-data"), params=query)
        assert bad.status_code == 400 and "YYYY-MM-DD" in bad.json()["message"]
    bad_year = await raw.get(under(JANE_ACCOUNT, "historical-data"), params={"year": "25"})
    assert bad_year.status_code == 400 and "YYYY" in bad_year.json()["message"]


# -- the figures ----------------------------------------------------------------------------------


async def test_nothing_in_the_future_and_nothing_before_linking(client: OmnimeticClient, clock: ManualClock) -> None:
    now = clock.now()  # 09:00: the hours 00:00 to 08:00 are complete
    today = await client.interval(JANE_ACCOUNT, now.date(), now.date() + timedelta(days=3))
    assert [hour.hour for hour in today] == [f"{h:02d}:00" for h in range(9)]
    assert all(hour.date + timedelta(hours=1) <= now for hour in today)
    assert await client.history(JANE_ACCOUNT, now.year + 1) == []
    jane = await client.info(JANE_ACCOUNT)
    assert jane.linked_date is not None and now - jane.linked_date > timedelta(days=729)
    first_day = await client.interval(JANE_ACCOUNT, jane.linked_date.date() - timedelta(days=1), jane.linked_date.date())
    assert first_day and first_day[0].date >= jane.linked_date
    clock.advance(hours=2)
    assert len(await client.interval(JANE_ACCOUNT, now.date(), now.date())) == 11  # the clock moves, data follows


async def test_monthly_sums_agree_with_hourly_sums(client: OmnimeticClient) -> None:
    checked = 0
    for year in (2025, 2026):
        for row in await client.history(JANE_ACCOUNT, year):
            first = date(row.year, row.month_number, 1)
            last = (first + timedelta(days=32)).replace(day=1) - timedelta(days=1)
            hours = await client.interval(JANE_ACCOUNT, first, last)
            assert round(sum(hour.total_usage for hour in hours) * 1000) == row.energy_consumption_in_watts
            assert round(sum(hour.on_peak_usage for hour in hours) * 1000) == row.on_peak_usage_in_watts
            assert round(sum(hour.off_peak_usage for hour in hours) * 1000) == row.off_peak_usage_in_watts
            assert row.amount_in_cents == round(row.energy_kwh * 2500)  # KES 25 a kWh, in cents
            assert isinstance(row.amount_in_cents, int)
            checked += 1
    assert checked == 12 + 11  # all of 2025, and 2026 to November so far


async def test_figures_are_plausible_and_shaped(client: OmnimeticClient) -> None:
    week = await client.interval(JANE_ACCOUNT, date(2025, 6, 2), date(2025, 6, 8))
    assert len(week) == 7 * 24
    for hour in week:
        assert 0.05 <= hour.total_usage <= 0.6
        assert hour.total_usage == pytest.approx(hour.on_peak_usage + hour.off_peak_usage)
        local = (hour.date + EAT).hour
        assert (hour.on_peak_usage > 0) == (18 <= local < 22) and (hour.off_peak_usage > 0) != (18 <= local < 22)
    evening = [hour.total_usage for hour in week if 18 <= (hour.date + EAT).hour < 22]
    night = [hour.total_usage for hour in week if (hour.date + EAT).hour < 5]
    assert sum(evening) / len(evening) > 3 * sum(night) / len(night)
    daily = sum(hour.total_usage for hour in week) / 7
    assert 2 < daily < 6  # kWh a day: a small solar home system
    for row in await client.history(JANE_ACCOUNT, 2025):
        assert 60 < row.energy_kwh < 180


async def test_figures_are_deterministic_per_account_and_hour(clock: ManualClock) -> None:
    start, end = datetime(2025, 6, 1, tzinfo=UTC), datetime(2025, 6, 3, tzinfo=UTC)
    one, two = OmnimeticSandbox(clock=clock), OmnimeticSandbox(clock=ManualClock(clock.now() + timedelta(days=9)))
    jane = one.households[JANE_ACCOUNT].meter.hours(start, end, clock.now())
    assert jane == two.households[JANE_ACCOUNT].meter.hours(start, end, clock.now())
    peter = one.households[GENERATED_ACCOUNTS[0]].meter.hours(start, end, clock.now())
    assert [hour.total_wh for hour in jane] != [hour.total_wh for hour in peter]


async def test_download_is_a_real_spreadsheet(client: OmnimeticClient, raw: httpx.AsyncClient,
                                              clock: ManualClock) -> None:
    answer = await raw.get(under(JANE_ACCOUNT, "download-data"))
    assert answer.headers["content-type"] == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    assert answer.headers["content-disposition"] == f'attachment; filename="{JANE_ACCOUNT}.xlsx"'
    book = openpyxl.load_workbook(io.BytesIO(await client.download(JANE_ACCOUNT)))
    assert book.sheetnames == ["Monthly", "Hourly"]
    monthly = list(book["Monthly"].iter_rows(values_only=True))
    assert monthly[0] == ("Month", "Year", "On-peak (kWh)", "Off-peak (kWh)", "Total (kWh)", "Amount (cents)")
    assert [(month, year) for month, year, *_ in monthly[1:]] == (
        [(MONTHS[m - 1], 2025) for m in range(12, 13)] + [(MONTHS[m - 1], 2026) for m in range(1, 12)]
    )
    november = (await client.history(JANE_ACCOUNT, 2026))[-1]
    assert monthly[-1][2:] == pytest.approx((november.on_peak_kwh, november.off_peak_kwh, november.energy_kwh,
                                             november.amount_in_cents))
    hourly = list(book["Hourly"].iter_rows(values_only=True))
    assert hourly[0] == ("Date (UTC)", "Hour", "On-peak (kWh)", "Off-peak (kWh)", "Total (kWh)")
    assert len(hourly) == 1 + 7 * 24
    now = clock.now().replace(tzinfo=None)
    assert hourly[-1][0] == now - timedelta(hours=1) and hourly[1][0] == now - timedelta(days=7)
    last = await client.interval(JANE_ACCOUNT, clock.now().date(), clock.now().date())
    assert hourly[-1][1:] == (last[-1].hour, last[-1].on_peak_usage, last[-1].off_peak_usage, last[-1].total_usage)


# -- wiring ---------------------------------------------------------------------------------------


async def test_open_omnimetic_without_keys_uses_the_embedded_sandbox(clock: ManualClock) -> None:
    async with open_omnimetic(make_settings(), clock) as client:
        assert client.base_url.startswith("http://127.0.0.1:")
        assert (await client.info(JANE_ACCOUNT)).legal_names == ["Jane Wanjiru"]
        assert client.account_id == ACCOUNT_ID
    settings = make_settings(OMNIMETIC_CLIENT_ID="client-1", OMNIMETIC_SECRET="secret-1", ERM_TIMEOUT_SECONDS=7)
    async with open_omnimetic(settings, clock) as real:
        assert (real.base_url, real.client_id, real.timeout) == ("https://app.omnimetic.com/api", "client-1", 7)


async def test_sandbox_command_serves_omnimetic_beside_the_erm(tmp_path: Path) -> None:
    async with sandbox_command(tmp_path) as served, httpx.AsyncClient() as probe:
        token = await probe.post(f"{served.url}{MOUNT}/access-token", json=CREDENTIALS)
        erm = await probe.post(f"{served.url}/user/login", json={"username": "test@example.com",
                                                                  "password": "test1234"})
        assert token.status_code == 200 and token.json()["id"] == ACCOUNT_ID
        assert erm.status_code == 200 and "accessToken" in erm.json()
        async with OmnimeticClient(f"{served.url}{MOUNT}", *EXAMPLE_CLIENT) as client:
            john = await client.info(DOC_ACCOUNT)
            rows = await client.history(DOC_ACCOUNT, 2024)
        assert john.legal_names == ["John"] and len(rows) == 12
    assert served.code == 0, served.err
