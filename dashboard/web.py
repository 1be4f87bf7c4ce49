"""What every dashboard request goes through: the page shell, the session opened from Telegram's launch
data, and the check before each page and action — a live session, a manager still (the role is read from
the ledger every time: one revoked a minute ago sees nothing), and for actions the session's CSRF token and
a same-origin ``Origin``. Refusals are one sentence in the manager's language, never a traceback."""

from __future__ import annotations

import hmac
import logging
import secrets
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from telegram import Bot

from bot import i18n
from bot.people import Kind
from bot.services import Services
from bot.texts import Texts, for_language
from dashboard import launch
from dashboard.sessions import Session, Sessions
from storage.models import Person

log = logging.getLogger("paygbot.dashboard")

TEMPLATES = Path(__file__).parent / "templates"
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # Own scripts and styles only; pictures are inline charts. Framed only by Telegram's web clients.
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
                               "form-action 'self'; frame-ancestors 'self' https://web.telegram.org "
                               "https://*.telegram.org",
}


@dataclass(frozen=True)
class Viewer:
    """The manager a request is for, as the ledger knows them now."""

    person: Person
    session: Session
    texts: Texts


Page = Callable[["Dashboard", Request, Viewer], Awaitable[Response]]


class Dashboard:
    def __init__(self, services: Services, bot: Bot) -> None:
        self.services, self.bot = services, bot
        self.sessions = Sessions(bot.token, services.clock)
        self.templates = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]),
                                     trim_blocks=True, lstrip_blocks=True)
        public = services.settings.public_url
        self.origin = _origin(public) if public else None

    # -- rendering -----------------------------------------------------------------------------

    def render(self, template: str, viewer: Viewer | None, status: int = 200, **values: Any) -> HTMLResponse:
        texts = viewer.texts if viewer else for_language(i18n.DEFAULT)
        html = self.templates.get_template(template).render(
            w=texts.dashboard_words(), t=texts, tz=self.services.settings.tz, html=Markup,
            sandbox=self.services.sandbox, **values)
        return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)

    def refused(self, why: str, status: int, texts: Texts | None = None) -> HTMLResponse:
        texts = texts or for_language(i18n.DEFAULT)
        return HTMLResponse(
            self.templates.get_template("refused.html").render(message=texts.dashboard_refused(why)),
            status_code=status, headers=SECURITY_HEADERS)

    # -- the shell and the session -------------------------------------------------------------

    async def shell(self, request: Request) -> Response:
        """The page Telegram opens: no data and no words of its own until the launch data is checked."""
        return self.render("app.html", None)

    async def open_session(self, request: Request) -> Response:
        """The launch data, checked: a session token for a manager; for anyone else why not, and nothing else."""
        init_data = (await form_of(request)).get("init_data")
        if not init_data:
            return self._session_refused("missing", 401, None)
        checked = launch.check(init_data, self.bot.token, self.services.clock.now())
        if isinstance(checked, launch.Refusal):
            log.warning("dashboard: launch data refused (%s)", checked.value)
            return self._session_refused("stale" if checked is launch.Refusal.STALE else "forged", 403,
                                         for_language(i18n.pick(launch.language_of(init_data))))
        who = await self.services.people.who(checked.user_id)
        texts = for_language(who.speaks(checked.language_code))
        if who.kind is not Kind.MANAGER or who.person is None:
            log.info("dashboard: user %s is not a manager; refused", checked.user_id)
            return self._session_refused("managers", 403, texts)
        token, session = self.sessions.issue(checked.user_id, checked.language_code)
        log.info("dashboard: session opened for manager %s", checked.user_id)
        return JSONResponse({"token": token, "csrf": session.csrf, "language": texts.language,
                             "lifetime": int(self.sessions.lifetime.total_seconds())}, headers=SECURITY_HEADERS)

    def _session_refused(self, why: str, status: int, texts: Texts | None) -> JSONResponse:
        texts = texts or for_language(i18n.DEFAULT)
        return JSONResponse({"refused": why, "message": texts.dashboard_refused(why)}, status_code=status,
                            headers=SECURITY_HEADERS)

    # -- every page and action -----------------------------------------------------------------

    async def viewer(self, request: Request, *, ticket: bool = False) -> Viewer | Response:
        """The manager behind a request, or the refusal to answer with. ``ticket``: a download ticket for this
        very URL stands for the session (:meth:`Sessions.ticket`)."""
        header = request.headers.get("authorization", "")
        session = self.sessions.read(header[7:].strip()) if header.startswith("Bearer ") else None
        if session is None and ticket and (given := request.query_params.get("ticket")):
            holder = self.sessions.ticket_holder(given, ticketed(request.url.path, request.query_params.items()))
            if holder is not None:  # no CSRF token a form could match: a ticket only reads
                session = Session(holder, secrets.token_urlsafe(24), None)
        if session is None:
            return self.refused("ended", 401)
        who = await self.services.people.who(session.user_id)
        texts = for_language(who.speaks(session.language_code))
        if who.kind is not Kind.MANAGER or who.person is None:
            log.warning("dashboard: user %s is no longer a manager; refused", session.user_id)
            return self.refused("managers", 403, texts)
        return Viewer(who.person, session, texts)

    def page(self, handler: Page, *, ticket: bool = False) -> Callable[[Request], Awaitable[Response]]:
        """A page for a manager's session; ``ticket``: a file, for which a download ticket for its URL will do
        (Telegram's ``downloadFile`` fetches a plain URL)."""
        async def endpoint(request: Request) -> Response:
            viewer = await self.viewer(request, ticket=ticket)
            if isinstance(viewer, Response):
                return viewer
            return await handler(self, request, viewer)

        return endpoint

    def public_base(self, request: Request) -> str:
        """Where this HTTP side is reached from outside (PAYGBOT_PUBLIC_URL, else the address asked for)."""
        public = self.services.settings.public_url
        return public or f"{request.url.scheme}://{request.url.netloc}"

    def action(self, handler: Page) -> Callable[[Request], Awaitable[Response]]:
        """A page that changes something: also the session's CSRF token, and no other site's ``Origin``."""
        async def endpoint(request: Request) -> Response:
            viewer = await self.viewer(request)
            if isinstance(viewer, Response):
                return viewer
            given = request.headers.get("x-csrf-token", "")
            origin = request.headers.get("origin")
            if not given.isascii() or not hmac.compare_digest(given, viewer.session.csrf) or \
                    (origin is not None and not self._same_site(origin, request)):
                log.warning("dashboard: an action without its CSRF token or from another origin; refused")
                return self.refused("csrf", 403, viewer.texts)
            return await handler(self, request, viewer)

        return endpoint

    def _same_site(self, origin: str, request: Request) -> bool:
        """The page's own: PAYGBOT_PUBLIC_URL's origin, or the host the request was sent to (the address the
        page was opened at, behind a proxy that speaks HTTPS for it as well)."""
        return origin == self.origin or urlsplit(origin).netloc == request.headers.get("host")


MAX_FORM = 16 * 1024


def ticketed(path: str, params: Iterable[tuple[str, str]]) -> str:
    """What a download ticket is signed for: the path and its query in order, the ticket left out."""
    query = urlencode(sorted((key, value) for key, value in params if key != "ticket"))
    return f"{path}?{query}" if query else path


async def form_of(request: Request) -> dict[str, str]:
    """A small URL-encoded form (what the page posts); anything else, or too big, is an empty one."""
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/x-www-form-urlencoded":
        return {}
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM:
            return {}
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True)
    except (UnicodeDecodeError, ValueError):
        return {}
    return dict(pairs)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"
