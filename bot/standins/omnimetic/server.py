"""The Omnimetic sandbox over HTTP: ``POST /access-token`` and the four documented ``GET`` paths under
``/accounts/:accountId/utility-service-accounts/:utilityServiceAccountId/``, token checks, the
injected faults and latency. Served with the project's one runner, :func:`bot.http.serving`.

The routes sit at the app's root, as under ``https://app.omnimetic.com/api``; ``paygbot sandbox``
mounts the app at ``/omnimetic/api`` beside the ERM sandbox. Every refusal is ``{"message": ...}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.http import serving
from bot.omnimetic.models import MONTHS
from bot.standins.omnimetic import xlsx
from bot.standins.omnimetic.data import HOUR, HourFigure, MonthFigure, floor_hour, hex24
from bot.standins.omnimetic.sandbox import ACCOUNT_ID, Call, Household, OmnimeticSandbox

MAX_INTERVAL_DAYS = 31
"""The most days one ``interval-data`` request may span (the sandbox's rule; the document sets none)."""
ACCOUNT_PATH = "/accounts/{account_id}/utility-service-accounts/{service_account_id}"


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return JSONResponse({"message": exc.detail}, status_code=exc.status_code, headers=exc.headers)


def _route_path(request: Request) -> str:
    """The path under the app's root, whatever it is mounted under."""
    path: str = request.scope["path"]
    root: str = request.scope.get("root_path", "")
    return path[len(root):] if root and path.startswith(root) else path


def _bearer(request: Request) -> str:
    """``Authorization: Bearer <token>``, or the document's curl spelling ``Bearer<token>``."""
    header = request.headers.get("authorization", "").strip()
    return header[len("bearer"):].strip() if header[: len("bearer")].lower() == "bearer" else ""


def _wire_time(moment: datetime) -> str:
    moment = moment.astimezone(UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond // 1000:03d}Z"


def _day(request: Request, name: str) -> date:
    value = request.query_params.get(name)
    try:
        if value is None or len(value) != 10:
            raise ValueError(value)
        return date.fromisoformat(value)
    except ValueError:
        raise HTTPException(400, f"{name} must be a date as YYYY-MM-DD") from None


# -- the documented shapes ------------------------------------------------------------------------


def info(household: Household) -> dict[str, Any]:
    """``…/info``, in the document's shape."""
    return {
        "id": household.id,
        "externalServiceAccountId": household.external_id,
        "address": dict(household.address),
        "linkedDate": _wire_time(household.linked_date),
        "legalNames": list(household.legal_names),
    }


def _ids(household: Household) -> dict[str, Any]:
    return {
        "utilityUserAccount": {"_id": household.utility_user_account},
        "serviceAccount": {"_id": household.service_account},
        "utilityCompany": {"_id": household.utility_company},
    }


def month_row(household: Household, figure: MonthFigure) -> dict[str, Any]:
    """One row of ``historical-data``: the month's energy in Wh (named "InWatts", as documented)."""
    return {
        "id": hex24("month", household.id, figure.year, figure.month),
        **_ids(household),
        "month": MONTHS[figure.month - 1],
        "offPeakUsageInWatts": figure.off_wh,
        "onPeakUsageInWatts": figure.on_wh,
        "year": figure.year,
        "amountInCents": figure.amount_cents,
        "energyConsumptionInWatts": figure.total_wh,
    }


def hour_row(household: Household, figure: HourFigure) -> dict[str, Any]:
    """One row of ``interval-data``: the hour's energy in kWh, rounded to 2 decimals."""
    return {
        "id": hex24("hour", household.id, figure.start.isoformat()),
        **_ids(household),
        "date": _wire_time(figure.start),
        "hour": f"{figure.start:%H:%M}",
        "onPeakUsage": round(figure.on_wh / 1000, 2),
        "offPeakUsage": round(figure.off_wh / 1000, 2),
        "totalUsage": round(figure.total_wh / 1000, 2),
    }


# -- the routes -----------------------------------------------------------------------------------


class _Endpoints:
    def __init__(self, sandbox: OmnimeticSandbox) -> None:
        self.sandbox = sandbox

    def route(self, path: str, endpoint: Callable[[Request, Household], Awaitable[Response]]) -> Route:
        """A ``GET`` under an account: recorded, faults and latency played, then the token, the
        account and the utility service account checked before ``endpoint`` runs."""
        sandbox = self.sandbox

        async def checked(request: Request) -> Response:
            token_account = sandbox.account_for(_bearer(request))
            if token_account is None:
                raise HTTPException(401, "Unauthorized")
            account_id = request.path_params["account_id"]
            if account_id != token_account:
                raise HTTPException(404, f"Account {account_id} not found")
            household = sandbox.household(request.path_params["service_account_id"])
            if household is None:
                raise HTTPException(404, f"Utility service account {request.path_params['service_account_id']} "
                                         "not found")
            return await endpoint(request, household)

        return Route(ACCOUNT_PATH + path, self.played(checked), methods=["GET"])

    def played(self, endpoint: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
        """``endpoint`` behind the recording, any queued failure and the latency."""
        sandbox = self.sandbox

        async def handle(request: Request) -> Response:
            path = _route_path(request)
            sandbox.calls.append(Call(request.method, path, request.url.query, await _recorded_body(request)))
            if path == "/access-token":
                sandbox.logins += 1
            failure = sandbox.take_failure(path)
            if sandbox.latency > 0:
                await asyncio.sleep(sandbox.latency)
            if failure is not None:
                return failure.response()
            return await endpoint(request)

        return handle

    async def access_token(self, request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            raise HTTPException(400, "Invalid JSON body") from None
        body = body if isinstance(body, dict) else {}
        client_id, secret, name = body.get("clientId"), body.get("secret"), body.get("name", "")
        if not (isinstance(client_id, str) and client_id and isinstance(secret, str) and secret
                and isinstance(name, str)):
            raise HTTPException(400, "clientId and secret are required")
        token = self.sandbox.log_in(client_id, secret)
        if token is None:
            raise HTTPException(401, "Invalid client id or secret")
        return JSONResponse({"id": ACCOUNT_ID, "token": token})

    async def info(self, request: Request, household: Household) -> Response:
        return JSONResponse(info(household))

    async def historical(self, request: Request, household: Household) -> Response:
        year = request.query_params.get("year", "")
        if not (len(year) == 4 and year.isascii() and year.isdigit()):
            raise HTTPException(400, "year must be given as YYYY")
        rows = household.meter.months(int(year), self.sandbox.clock.now())
        return JSONResponse([month_row(household, row) for row in rows])

    async def interval(self, request: Request, household: Household) -> Response:
        start, end = _day(request, "startDate"), _day(request, "endDate")
        if end < start:
            raise HTTPException(400, "endDate must not be before startDate")
        if (end - start).days + 1 > MAX_INTERVAL_DAYS:
            raise HTTPException(400, f"a range of at most {MAX_INTERVAL_DAYS} days can be asked for")
        first = datetime(start.year, start.month, start.day, tzinfo=UTC)
        last = datetime(end.year, end.month, end.day, tzinfo=UTC) + timedelta(days=1)
        rows = household.meter.hours(first, last, self.sandbox.clock.now())
        return JSONResponse([hour_row(household, row) for row in rows])

    async def download(self, request: Request, household: Household) -> Response:
        now = self.sandbox.clock.now()
        this_hour = floor_hour(now)
        months = household.meter.last_months(12, now)
        hours = household.meter.hours(this_hour - 7 * 24 * HOUR, this_hour, now)
        return Response(
            xlsx.spreadsheet(months, hours, now),
            media_type=xlsx.CONTENT_TYPE,
            headers={"Content-Disposition": f'attachment; filename="{household.id}.xlsx"'},
        )


async def _recorded_body(request: Request) -> Any:
    """The request's JSON body for ``calls`` (``None`` if none or not JSON), its secret masked."""
    raw = await request.body()
    try:
        body = json.loads(raw) if raw else None
    except ValueError:
        return None
    if isinstance(body, dict) and "secret" in body:
        body = {**body, "secret": "***"}
    return body


def build_app(sandbox: OmnimeticSandbox) -> Starlette:
    """The Starlette app serving ``sandbox``, its routes at the root (the API's ``/api``)."""
    ep = _Endpoints(sandbox)
    return Starlette(
        routes=[
            Route("/access-token", ep.played(ep.access_token), methods=["POST"]),
            ep.route("/info", ep.info),
            ep.route("/historical-data", ep.historical),
            ep.route("/interval-data", ep.interval),
            ep.route("/download-data", ep.download),
        ],
        exception_handlers={HTTPException: _http_error},
    )


@contextlib.asynccontextmanager
async def running(sandbox: OmnimeticSandbox, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[str]:
    """Serve the sandbox on this event loop for the duration of the block; yields the base URL to
    give :class:`bot.omnimetic.client.OmnimeticClient` (``http://127.0.0.1:PORT``)."""
    async with serving(build_app(sandbox), port, host=host) as bound:
        yield f"http://{host}:{bound}"
