"""What the rest of the bot needs of the ERM, whichever interface speaks to it.

The ERM offers the same devices, codes and limits over REST (documents 000/001,
:class:`bot.erm.rest.RestErm`) and over GraphQL (documents 002/003, :class:`bot.erm.graphql.GraphQLErm`).
The engine, the CLI and the jobs hold an :class:`ErmBackend` and never ask which one they have: the
answers are the same typed models (:mod:`bot.erm.models`) and the failures the same typed errors
(:mod:`bot.erm.errors`).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence
from typing import Literal, Protocol

from bot.erm.models import GeneratedCode, HistoryPage, Item, Login

ProductId = str | int
Api = Literal["rest", "graphql"]
MIN_DAYS, MAX_DAYS = 1, 1095
_PRODUCT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")


class ErmBackend(Protocol):
    """One ERM interface: codes, their history, and the distributor's items."""

    api: Api
    base_url: str
    username: str
    logins: int
    """Sign-ins made so far (a test counts them: concurrent refusals of a stale token cause one)."""
    round_trips: Sequence[float]
    """Seconds each of the newest exchanges the ERM answered with success took, any kind (how steady the ERM is:
    see :mod:`bot.issuing.anticipation`)."""

    async def login(self) -> Login:
        """Sign in now and keep the token (done on demand, and again when the ERM refuses the token)."""
        ...

    async def days_code(self, product_id: ProductId, days: int) -> GeneratedCode:
        """A code adding ``days`` (1..1095) of credit; committed at most once per call, never repeated."""
        ...

    async def free_code(self, product_id: ProductId) -> GeneratedCode:
        """A code that unlocks the device for good."""
        ...

    async def reset_code(self, product_id: ProductId) -> GeneratedCode:
        """A code that sets the device to 0 days, locked."""
        ...

    async def code_history(self, product_id: ProductId, offset: int = 0, limit: int = 10) -> HistoryPage:
        """The device's committed codes, newest first (settles a generation whose answer never came)."""
        ...

    async def item(self, product_id: ProductId) -> Item:
        """The distributor's item named by any of its ids (all three ids, description, life cycle);
        :class:`~bot.erm.errors.ErmRefused` when the distributor has none by that id."""
        ...

    def items(self, page_size: int = 100, search: str | None = None) -> AsyncIterator[list[Item]]:
        """Every item of the distributor, a page at a time (those matching ``search`` when given)."""
        ...

    async def aclose(self) -> None: ...

    async def __aenter__(self) -> ErmBackend: ...

    async def __aexit__(self, *exc_info: object) -> None: ...


def check_product_id(product_id: ProductId) -> ProductId:
    """Refuse ids the ERM could never know (empty, huge, odd characters) before anything is sent."""
    if isinstance(product_id, bool) or not isinstance(product_id, (str, int)):
        raise ValueError("a device id is text or a whole number")
    if isinstance(product_id, int):
        if product_id < 0:
            raise ValueError("a numeric device id is not negative")
        return product_id
    if not _PRODUCT_ID.match(product_id):
        raise ValueError("a device id is 1 to 64 letters, digits, '-', '_', '.' or ':'")
    return product_id


def check_days(days: int) -> int:
    """The documented range of a days code."""
    if isinstance(days, bool) or not isinstance(days, int) or not MIN_DAYS <= days <= MAX_DAYS:
        raise ValueError(f"days must be a whole number from {MIN_DAYS} to {MAX_DAYS}")
    return days
