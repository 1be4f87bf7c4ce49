"""The managers' dashboard: a Telegram Mini App served by the bot's own HTTP side under ``/app``.

Server-rendered: Jinja2 templates answer with HTML, and a little htmx (shipped in ``static/``, no CDN and
no build step) swaps them into the page; ``static/app.js`` reads Telegram's launch data and theme from the
URL fragment, opens the session and sends its token with every request. Every page and action checks the
session and the manager's role again (:mod:`dashboard.web`); the data comes from :mod:`bot.overview` and
the actions go through the same services as the chat (:mod:`bot.decisions`, :class:`bot.payments.Payments`).
"""

from __future__ import annotations

from dashboard.routes import dashboard_routes

__all__ = ["dashboard_routes"]
