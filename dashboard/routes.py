"""The dashboard's routes, in one visible list (mounted by :func:`bot.app.running_bot` beside /healthz)."""

from __future__ import annotations

from pathlib import Path

from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from telegram import Bot

from bot.services import Services
from dashboard import actions, pages
from dashboard.web import Dashboard

STATIC = Path(__file__).parent / "static"


def dashboard_routes(services: Services, bot: Bot) -> list[BaseRoute]:
    board = Dashboard(services, bot)
    return [
        Route("/app", board.shell, methods=["GET"]),
        Route("/app/session", board.open_session, methods=["POST"]),
        Mount("/app/static", StaticFiles(directory=STATIC), name="static"),
        Route("/app/view/frame", board.page(pages.frame)),
        Route("/app/view/today", board.page(pages.today)),
        Route("/app/view/devices", board.page(pages.devices)),
        Route("/app/view/device/{device_id:int}", board.page(pages.device)),
        Route("/app/view/payments", board.page(pages.payments)),
        Route("/app/view/approvals", board.page(pages.approvals)),
        Route("/app/view/portfolio", board.page(pages.portfolio)),
        Route("/app/view/agents", board.page(pages.agents)),
        Route("/app/view/exports", board.page(pages.exports_page)),
        Route("/app/export/{kind:str}", board.page(pages.export, ticket=True)),
        Route("/app/act/assign", board.action(actions.assign), methods=["POST"]),
        Route("/app/act/decide", board.action(actions.decide), methods=["POST"]),
        Route("/app/act/ticket", board.action(actions.ticket), methods=["POST"]),
    ]
