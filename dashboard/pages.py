"""The dashboard's pages: each reads what it shows through the bot's services and answers with a piece of
HTML (htmx swaps it in). Query values are checked like chat arguments: a bad one is ignored or refused in
words, and nothing here changes the ledger (that is :mod:`dashboard.actions`)."""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from datetime import date

from starlette.requests import Request
from starlette.responses import Response

from bot import exports, overview, reports
from bot.issuing import limits
from bot.portfolio.chart import picture as portfolio_picture
from bot.portfolio.service import health as portfolio_health
from bot.portfolio.service import weeks as portfolio_weeks
from dashboard.charts import credit_timeline
from dashboard.web import Dashboard, Viewer

MAX_SEARCH = 64
MAX_PAGE = 100_000


def _png(picture: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(picture).decode()


def _whole(text: str | None, top: int) -> int | None:
    """A positive whole number no larger than ``top``, or None."""
    if text is None or not re.fullmatch(r"[0-9]{1,9}", text):
        return None
    value = int(text)
    return value if 1 <= value <= top else None


async def frame(board: Dashboard, request: Request, viewer: Viewer) -> Response:
    """The tabs, in the manager's language, around today's page (loaded next)."""
    return board.render("frame.html", viewer, name=viewer.person.name)


async def today(board: Dashboard, request: Request, viewer: Viewer) -> Response:
    """The day's figures (the chat's summary) and the chart of the last two weeks."""
    services, texts = board.services, viewer.texts
    tz, now = services.settings.tz, services.clock.now()
    day = now.astimezone(tz).date()
    summary = await reports.summary(services.db, day, tz, now, confirmations=services.settings.mpesa_path is not None)
    picture = await reports.chart(services.db, day, tz, texts)
    return board.render("today.html", viewer, summary=texts.summary_text(summary, tz, now), chart=_png(picture),
                        chart_title=texts.chart_labels()["title"])


async def devices(board: Dashboard, request: Request, viewer: Viewer) -> Response:
    """Devices, searched by any id, customer or phone and filtered; 50 a page, paged in SQL."""
    services = board.services
    query = request.query_params
    text = query.get("q", "").strip()[:MAX_SEARCH] or None
    show = query.get("show", "all")
    show = show if show in overview.SHOWS else "all"
    agent_id = _whole(query.get("agent"), 2**62)
    page = _whole(query.get("page"), MAX_PAGE) or 1
    phone = services.people.phone(text) if text and re.search(r"[0-9]{6}", text) else None
    # a phone number typed as people type it (0712…, +254 712…) is looked for as that phone, not as text in
    # every id and name: an index lookup instead of a scan
    rows, total = await overview.devices(services.db, now=services.clock.now(), text=None if phone else text,
                                         phone=phone, show=show, agent_id=agent_id, page=page)
    names = await services.team.names()
    values = dict(rows=rows, total=total, page=page, first=(page - 1) * overview.PAGE + 1,
                  last=(page - 1) * overview.PAGE + len(rows), more=page * overview.PAGE < total,
                  q=text or "", show=show, agent=agent_id, names=names, now_=services.clock.now())
    if request.headers.get("hx-target") == "device-list":
        return board.render("device_list.html", viewer, **values)
    staff = [person for person in await services.people.staff() if person.id is not None]
    return board.render("devices.html", viewer, staff=staff, **values)


async def device(board: Dashboard, request: Request, viewer: Viewer) -> Response:
    """One device's story: its ids, customer, plan, credit over time, codes and payments."""
    services = board.services
    story = await overview.device_story(services.db, int(request.path_params["device_id"]))
    if story is None:
        return board.render("message.html", viewer, 404, message=viewer.texts.dashboard_not_found)
    now = services.clock.now()
    agent = None
    if story.customer is not None and story.customer.registered_by_id is not None:
        agent = (await services.team.names()).get(story.customer.registered_by_id)
    return board.render("device.html", viewer, story=story, agent=agent, now=now,
                        timeline=credit_timeline(story.credit_timeline, now))


async def payments(board: Dashboard, request: Request, viewer: Viewer, note: str | None = None) -> Response:
    """Payments kept for a manager, newest first, each with a form to assign it to a device."""
    page = _whole(request.query_params.get("page"), MAX_PAGE) or 1
    kept, total = await overview.kept_payments(board.services.db, page)
    return board.render("payments.html", viewer, kept=kept, total=total, page=page, note=note,
                        first=(page - 1) * overview.PAGE + 1, last=(page - 1) * overview.PAGE + len(kept),
                        more=page * overview.PAGE < total)


async def approvals(board: Dashboard, request: Request, viewer: Viewer, note: str | None = None) -> Response:
    """Free and unlock codes waiting for a manager's decision, oldest first."""
    services = board.services
    waiting = await overview.waiting_approvals(services.db, services.clock.now())
    return board.render("approvals.html", viewer, waiting=waiting, note=note)


async def portfolio(board: Dashboard, request: Request, viewer: Viewer) -> Response:
    """The plans' health (the chat's /portfolio) and its chart."""
    services, texts = board.services, viewer.texts
    health = await portfolio_health(services.db, services.clock.now(), services.settings.tz)
    text = texts.portfolio_text(health, services.settings.currency, await services.team.names())
    picture = await portfolio_picture(portfolio_weeks(health), health.figures, texts)
    return board.render("portfolio.html", viewer, text=text, chart=_png(picture),
                        chart_title=texts.portfolio_chart_labels()["weeks"])


async def agents(board: Dashboard, request: Request, viewer: Viewer) -> Response:
    """The team, with the codes each asked today and a way to their customers' devices."""
    services = board.services
    start, end = limits.local_day(services.clock.now(), services.settings.tz)
    return board.render("agents.html", viewer, team=await services.team.with_codes(start, end))


async def exports_page(board: Dashboard, request: Request, viewer: Viewer) -> Response:
    today_ = board.services.clock.now().astimezone(board.services.settings.tz).date()
    return board.render("exports.html", viewer, today=today_.isoformat())


EXPORTS = ("ledger", "plans", "portfolio")


def export_asked(board: Dashboard, kind: str, values: Mapping[str, str]) -> tuple[date, date] | str | None:
    """The days an export asks for (``from``, today without it; ``to``, ``from`` without it), or why they cannot
    be given (a sentence's name), or None for an export that is not ours."""
    if kind not in EXPORTS:
        return None
    today_ = board.services.clock.now().astimezone(board.services.settings.tz).date()
    if kind != "ledger":
        return today_, today_
    first = exports.parse_day(values["from"]) if values.get("from") else today_
    last = exports.parse_day(values["to"]) if values.get("to") else first
    if first is None or last is None:
        return "bad_date"
    return exports.ledger_refused(first, last) or (first, last)


async def export(board: Dashboard, request: Request, viewer: Viewer) -> Response:
    """A CSV download: the ledger of some days, the plans, or the portfolio (the chat's /export files)."""
    services, kind, texts = board.services, request.path_params["kind"], viewer.texts
    asked = export_asked(board, kind, request.query_params)
    if asked is None:
        return board.render("message.html", viewer, 404, message=texts.dashboard_not_found)
    if isinstance(asked, str):
        return board.render("message.html", viewer, 400, message=getattr(texts, asked))
    if kind == "plans":
        table = await exports.plans(services)
        name, content = table.filename, table.csv()
    elif kind == "portfolio":
        table = await exports.portfolio(services)
        name, content = table.filename, table.csv()
    else:
        name, content = await exports.ledger(services, *asked, texts)
    return Response(content, media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"})
