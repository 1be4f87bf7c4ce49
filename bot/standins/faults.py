"""The faults a test tells a sandbox (the ERM's, Omnimetic's) to play: canned answers for the next
matching requests, and the HTTP answer each becomes."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from starlette.responses import HTMLResponse, JSONResponse, Response

Body = str | dict[str, Any] | list[Any] | None


@dataclass(frozen=True)
class Failure:
    """A canned answer for one matching request."""

    status: int
    body: Body
    paths: tuple[str, ...] | None

    def matches(self, path: str) -> bool:
        return self.paths is None or path.startswith(self.paths)

    def response(self) -> Response:
        """``body``: ``None`` → ``{"message": <reason phrase>}``; a ``str`` → text/html (an HTML error
        page); a ``dict`` or ``list`` → JSON (a 2xx with a wrong shape, say)."""
        if isinstance(self.body, str):
            return HTMLResponse(self.body, status_code=self.status)
        if self.body is not None:
            return JSONResponse(self.body, status_code=self.status)
        try:
            phrase = HTTPStatus(self.status).phrase
        except ValueError:
            phrase = "Error"
        return JSONResponse({"message": phrase}, status_code=self.status)


class Failures:
    """The failures queued and not yet played, in order."""

    def __init__(self) -> None:
        self._queued: deque[Failure] = deque()

    def add(self, n: int, status: int, body: Body, paths: Iterable[str] | None) -> None:
        """The next ``n`` requests whose path starts with one of ``paths`` (any, if ``None``) answer so."""
        failure = Failure(status, body, tuple(paths) if paths is not None else None)
        self._queued.extend([failure] * n)

    def take(self, path: str) -> Failure | None:
        """The first queued failure for ``path``, no longer queued."""
        for failure in self._queued:
            if failure.matches(path):
                self._queued.remove(failure)
                return failure
        return None

    def clear(self) -> None:
        self._queued.clear()

    def __len__(self) -> int:
        return len(self._queued)
