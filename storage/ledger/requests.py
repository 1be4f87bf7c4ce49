"""Code requests: what the limits need (a device's load) and what the pump claims, defers and settles."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import (
    Integer,
    Select,
    bindparam,
    case,
    exists,
    func,
    insert,
    literal,
    literal_column,
    or_,
    union_all,
    update,
)
from sqlalchemy.orm import make_transient_to_detached
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.ledger.rows import first_loaded, loaded, row_columns
from storage.models import (
    GENERATED_STATUSES,
    OPEN_STATUSES,
    CodeKind,
    CodeRequest,
    Device,
    Plan,
    Status,
    table_of,
)
from storage.prepared import prepared

# -- code requests: what the limits need -----------------------------------------------------

_REQUESTS = table_of(CodeRequest)


@dataclass(frozen=True)
class DeviceLoad:
    """A device's figures for the limits, read in one query."""

    generated_today: int
    """Codes generated in [day_start, day_end)."""
    open_today: int
    """Requests still to be generated whose turn comes before day_end."""
    open_count: int
    pending_days: int
    """Days asked for but not yet generated."""
    paid_off: bool | None = None
    """Whether the device's current plan is paid off (None: not read, as by :func:`device_load`)."""
    made_for_key: bool | None = None
    """Whether a request was made for the key already (None: not read, as by :func:`device_load`)."""


def _among(column: Any, statuses: Sequence[Status]) -> Any:
    """``column IN (?, ?)``, one bound value per status: a list would be an "expanding" parameter, rewritten into
    the statement at every run."""
    return column.in_([literal(status, type_=_REQUESTS.c.status.type) for status in statuses])


def _device_load_query(*also: Any) -> Select[Any]:
    """The limits' query (:func:`device_load`), built once (building it costs more than SQLite's answer), on the
    table's columns (no ORM: see :func:`storage.models.table_of`); ``also``: more columns."""
    device, day_start, day_end = bindparam("device_id"), bindparam("day_start"), bindparam("day_end")
    columns = (_REQUESTS.c.status, _REQUESTS.c.not_before, _REQUESTS.c.days, _REQUESTS.c.kind)
    open_rows = select(*columns).where(_REQUESTS.c.device_id == device, _among(_REQUESTS.c.status, OPEN_STATUSES))
    today_rows = select(*columns).where(
        _REQUESTS.c.device_id == device, _REQUESTS.c.issued_at >= day_start, _REQUESTS.c.issued_at < day_end,
        _among(_REQUESTS.c.status, GENERATED_STATUSES))
    rows = union_all(open_rows, today_rows).subquery()
    is_open = _among(rows.c.status, OPEN_STATUSES)
    return select(
        func.count().filter(_among(rows.c.status, GENERATED_STATUSES)),
        func.count().filter(is_open, rows.c.not_before < day_end),
        func.count().filter(is_open),
        func.coalesce(func.sum(rows.c.days).filter(is_open, rows.c.kind == CodeKind.DAYS), 0),
        *also,
    )


_DEVICE_LOAD = prepared(_device_load_query())
_PLANS, _DEVICES = table_of(Plan), table_of(Device)
_ADMISSION_LOAD = prepared(_device_load_query(
    # a paid-off plan is the device's current one (the status written out, not a parameter: see PLAN_IS_CURRENT)
    exists().where(_PLANS.c.device_id == bindparam("device_id"), _PLANS.c.status == literal_column("'PAID_OFF'")),
    exists().where(_REQUESTS.c.request_key == bindparam("key"), _REQUESTS.c.created_at >= bindparam("since")),
))


async def device_load(*, session: AsyncSession, device_id: int, day_start: datetime, day_end: datetime) -> DeviceLoad:
    """Everything the limits check needs about one device, in one query: two index ranges (its open
    requests by status, its codes of the day by ``issued_at``), not every request the device ever had."""
    result = await session.exec(_DEVICE_LOAD, params={"device_id": device_id, "day_start": day_start,  # type: ignore[call-overload]
                                                       "day_end": day_end})
    generated, open_today, open_count, pending = result.one()
    return DeviceLoad(int(generated), int(open_today), int(open_count), int(pending))


async def admission_load(*, session: AsyncSession, device_id: int, day_start: datetime, day_end: datetime,
                         key: str | None, since: datetime) -> DeviceLoad:
    """:func:`device_load`, and in the same query what else admitting a request asks of the ledger: whether the
    device's plan is paid off, and whether a request was made for ``key`` since ``since`` (an update handled
    twice). On the way of every code: a statement is worth more than SQLite's answer to it."""
    result = await session.exec(_ADMISSION_LOAD, params={  # type: ignore[call-overload]
        "device_id": device_id, "day_start": day_start, "day_end": day_end, "key": key, "since": since})
    generated, open_today, open_count, pending, paid_off, made = result.one()
    return DeviceLoad(int(generated), int(open_today), int(open_count), int(pending), bool(paid_off), bool(made))


async def open_between(*, session: AsyncSession, device_id: int, start: datetime, end: datetime) -> int:
    """Requests still to be generated for the device whose turn is in [start, end)."""
    query = select(func.count()).select_from(CodeRequest).where(
        CodeRequest.device_id == device_id,
        col(CodeRequest.status).in_(OPEN_STATUSES),
        col(CodeRequest.not_before) >= start,
        col(CodeRequest.not_before) < end,
    )
    return (await session.exec(query)).one()


_REQUEST_COLUMNS = [column.key for column in _REQUESTS.columns if column.key != "id"]
_INSERT_REQUEST = prepared(insert(_REQUESTS).values({key: bindparam(key) for key in _REQUEST_COLUMNS})
                           .returning(_REQUESTS.c.id))


async def add_request(*, session: AsyncSession, request: CodeRequest) -> CodeRequest:
    """Write a new request; it is then in the session as if read from the ledger (its id set). Inserted without
    the ORM's flush (a third of a request's write transaction), then attached as the row it wrote."""
    values = {key: getattr(request, key) for key in _REQUEST_COLUMNS}
    request.id = (await session.exec(_INSERT_REQUEST, params=values)).scalar_one()  # type: ignore[call-overload]
    make_transient_to_detached(request)
    session.add(request)
    return request


# -- code requests: the pump -------------------------------------------------------------------


async def due_requests(
    *, session: AsyncSession, now: datetime, gap_edge: datetime, exclude: Sequence[int], limit: int
) -> list[CodeRequest]:
    """The next request of each device that may go out now, oldest first.

    A device's requests go out in the order they were asked (a reset then days must not
    become days then reset), so a device qualifies only when its oldest QUEUED request is
    due, nothing of it is SENDING, and its last generation is at least the pacing gap ago
    (``gap_edge``).
    """
    return [request for request, _ in await due_with_last_generation(
        session=session, now=now, gap_edge=gap_edge, exclude=exclude, limit=limit)]


async def due_with_last_generation(
    *, session: AsyncSession, now: datetime, gap_edge: datetime, exclude: Sequence[int], limit: int
) -> list[tuple[CodeRequest, datetime | None]]:
    """:func:`due_requests`, each with its device's last generation (the pump's: when its gap ends)."""
    rows = await _leaving_out(session, _DUE, exclude, {"now": now, "gap_edge": gap_edge, "limit": limit})
    return [(loaded(session, CodeRequest, row[:-1], refresh=False), row[-1]) for row in rows]


def _due_query() -> Select[Any]:
    """:func:`due_requests`' query, built once (the pump runs it at every tick)."""
    sending = select(_REQUESTS.c.device_id).where(_REQUESTS.c.status == Status.SENDING)
    oldest = select(func.min(_REQUESTS.c.id)).where(_REQUESTS.c.status == Status.QUEUED).group_by(_REQUESTS.c.device_id)
    return (
        select(*row_columns(CodeRequest), _DEVICES.c.last_generation_at)
        .join(_DEVICES, _DEVICES.c.id == _REQUESTS.c.device_id)
        .where(
            _REQUESTS.c.id.in_(oldest),
            _REQUESTS.c.not_before <= bindparam("now", type_=_REQUESTS.c.not_before.type),
            _REQUESTS.c.device_id.not_in(sending),
            or_(_DEVICES.c.last_generation_at.is_(None),
                _DEVICES.c.last_generation_at <= bindparam("gap_edge", type_=_DEVICES.c.last_generation_at.type)),
        )
        .order_by(_REQUESTS.c.not_before, _REQUESTS.c.id)
        .limit(bindparam("limit", type_=Integer))
    )


class _Both(NamedTuple):
    """A pump's query as run when no device is left out (prepared), and as run leaving out the devices of
    ``exclude`` (a list, written into the SQL at each run: through SQLAlchemy)."""

    plain: Select[Any]
    excluding: Select[Any]

    @classmethod
    def of(cls, query: Select[Any]) -> _Both:
        return cls(prepared(query), query.where(_REQUESTS.c.device_id.not_in(bindparam("exclude", expanding=True))))


async def _leaving_out(session: AsyncSession, queries: _Both, exclude: Sequence[int],
                       params: dict[str, Any]) -> Sequence[Any]:
    """The rows of ``queries`` with ``params``, the devices of ``exclude`` left out."""
    if exclude:
        return (await session.exec(queries.excluding, params={**params, "exclude": list(exclude)})).all()  # type: ignore[call-overload, no-any-return]
    return (await session.exec(queries.plain, params=params)).all()  # type: ignore[call-overload, no-any-return]


_DUE = _Both.of(_due_query())
_UNSETTLED = _Both.of(select(*row_columns(CodeRequest))
                      .where(_REQUESTS.c.status == Status.SENDING,
                             _REQUESTS.c.not_before <= bindparam("now", type_=_REQUESTS.c.not_before.type))
                      .order_by(_REQUESTS.c.id))
_FINISHED = (Status.ISSUED, Status.REFUSED, Status.FAILED)
_UNDELIVERED = prepared(
    select(*row_columns(CodeRequest))
    .where(_among(_REQUESTS.c.status, _FINISHED), _REQUESTS.c.delivered_at.is_(None),
           _REQUESTS.c.not_before <= bindparam("now", type_=_REQUESTS.c.not_before.type))
    .order_by(_REQUESTS.c.id)
    .limit(bindparam("limit", type_=Integer)))


async def unsettled(*, session: AsyncSession, now: datetime, exclude: Sequence[int]) -> Sequence[CodeRequest]:
    """SENDING requests whose answer never came (a timeout, or a crash) and are due to be settled."""
    rows = await _leaving_out(session, _UNSETTLED, exclude, {"now": now})
    return [loaded(session, CodeRequest, row, refresh=False) for row in rows]


async def undelivered(*, session: AsyncSession, now: datetime, limit: int = 100) -> Sequence[CodeRequest]:
    """Finished requests whose person has not been told yet, due for another try."""
    rows = (await session.exec(_UNDELIVERED, params={"now": now, "limit": limit})).all()  # type: ignore[call-overload]
    return [loaded(session, CodeRequest, row, refresh=False) for row in rows]


_CLAIM = (
    update(CodeRequest)
    .where(col(CodeRequest.id) == bindparam("request_id"), col(CodeRequest.status) == Status.QUEUED)
    .values(status=Status.SENDING, sent_at=bindparam("now", type_=col(CodeRequest.sent_at).type),
            not_before=bindparam("settle_after", type_=col(CodeRequest.not_before).type),
            attempts=CodeRequest.attempts + 1)
)


async def claim(*, session: AsyncSession, request_id: int, now: datetime, settle_after: datetime,
                row: CodeRequest | None = None) -> bool:
    """QUEUED -> SENDING, once: False if someone else claimed it first. ``row``, the request as read before,
    is changed as the claim changed it, so that it need not be read again."""
    result = await session.exec(_CLAIM, params={"request_id": request_id, "now": now,  # type: ignore[call-overload]
                                                "settle_after": settle_after})
    claimed = bool(result.rowcount == 1)
    if claimed and row is not None:
        row.status, row.sent_at, row.not_before, row.attempts = Status.SENDING, now, settle_after, row.attempts + 1
    return claimed


async def defer(*, session: AsyncSession, request_id: int, not_before: datetime) -> None:
    """A QUEUED request waits until ``not_before`` (the device's codes for today are spent)."""
    await session.exec(  # type: ignore[call-overload]
        update(CodeRequest)
        .where(col(CodeRequest.id) == request_id, col(CodeRequest.status) == Status.QUEUED)
        .values(not_before=not_before)
    )


_REQUEST = prepared(select(*row_columns(CodeRequest)).where(_REQUESTS.c.id == bindparam("request_id")))
_LOCK_REQUEST = _REQUEST.with_for_update()
_BY_KEY = prepared(select(_REQUESTS.c.id, _REQUESTS.c.device_ref, _REQUESTS.c.kind, _REQUESTS.c.days).where(
    _REQUESTS.c.request_key == bindparam("key"), _REQUESTS.c.created_at >= bindparam("since")))


async def get_request(*, session: AsyncSession, request_id: int) -> CodeRequest | None:
    """The request row, fresh (an object the session held already takes the values read)."""
    return await first_loaded(session, CodeRequest, _REQUEST, {"request_id": request_id}, refresh=True)


class KeyedRequest(NamedTuple):
    """What the request made for an update says again when the update comes twice."""

    id: int
    device_ref: str
    kind: CodeKind
    days: int | None


async def request_by_key(*, session: AsyncSession, key: str, since: datetime) -> KeyedRequest | None:
    """The request made for ``key`` (an update that asked for it) since ``since``, if one was (no ORM: every
    update asks, and almost always there is none)."""
    row = (await session.exec(_BY_KEY, params={"key": key, "since": since})).first()  # type: ignore[call-overload]
    return None if row is None else KeyedRequest(*row)


async def lock_request(*, session: AsyncSession, request_id: int) -> CodeRequest | None:
    """The request row, fresh, for a read-modify-write: another process's outcome for it waits (PostgreSQL;
    SQLite's one writer serialises these anyway). Lock the device first where both are locked."""
    return await first_loaded(session, CodeRequest, _LOCK_REQUEST, {"request_id": request_id}, refresh=True)


_DELIVERED = update(_REQUESTS).values(  # (no ORM: nothing in the session to keep in step, see storage.models.table_of)
    delivered_at=bindparam("now", type_=_REQUESTS.c.delivered_at.type), status=case(
        (_REQUESTS.c.status == Status.ISSUED, literal(Status.DELIVERED, type_=_REQUESTS.c.status.type)),
        else_=_REQUESTS.c.status))
_MARK_DELIVERED = _DELIVERED.where(_REQUESTS.c.id.in_(bindparam("request_ids", expanding=True)))
_MARK_ONE_DELIVERED = prepared(_DELIVERED.where(_REQUESTS.c.id == bindparam("request_id")))  # (the usual batch)


async def mark_delivered(*, session: AsyncSession, request_ids: Sequence[int], now: datetime) -> None:
    """These requests' people were told their outcome (an issued code is then delivered)."""
    if len(request_ids) == 1:
        await session.exec(_MARK_ONE_DELIVERED, params={"request_id": request_ids[0], "now": now})  # type: ignore[call-overload]
        return
    await session.exec(_MARK_DELIVERED, params={"request_ids": list(request_ids), "now": now})  # type: ignore[call-overload]


_QUEUED = _REQUESTS.alias("queued")
_LOCK_REQUEST_WITH_QUEUE = prepared(
    select(*row_columns(CodeRequest), exists().where(_QUEUED.c.device_id == _REQUESTS.c.device_id,
                                                     _QUEUED.c.status == Status.QUEUED, _QUEUED.c.id != _REQUESTS.c.id))
    .where(_REQUESTS.c.id == bindparam("request_id")).with_for_update(of=_REQUESTS)
)


async def lock_request_with_queue(*, session: AsyncSession, request_id: int) -> tuple[CodeRequest | None, bool]:
    """:func:`lock_request`, and whether the request's device has another waiting its turn (QUEUED), in one
    statement: recording a code asks both."""
    row = (await session.exec(_LOCK_REQUEST_WITH_QUEUE, params={"request_id": request_id})).first()  # type: ignore[call-overload]
    if row is None:
        return None, False
    return loaded(session, CodeRequest, row[:-1], refresh=True), bool(row[-1])


async def claim_settlements(*, session: AsyncSession, request_ids: Sequence[int], now: datetime,
                            until: datetime) -> set[int]:
    """Of these SENDING requests due to be settled, the ones this process settles: each is held until
    ``until`` (a lease: if this process dies, another settles it then), and no other process takes it
    meanwhile."""
    if not request_ids:
        return set()
    result = await session.exec(  # type: ignore[call-overload]
        update(CodeRequest)
        .where(col(CodeRequest.id).in_(request_ids), CodeRequest.status == Status.SENDING,
               col(CodeRequest.not_before) <= now)
        .values(not_before=until)
        .returning(CodeRequest.id)
    )
    return {row[0] for row in result.all()}


async def claim_deliveries(*, session: AsyncSession, request_ids: Sequence[int], now: datetime,
                           until: datetime) -> set[int]:
    """Of these finished requests whose people are still to be told, the ones this process tells: each held
    until ``until`` (then another process may try, if this one died meanwhile)."""
    if not request_ids:
        return set()
    result = await session.exec(  # type: ignore[call-overload]
        update(CodeRequest)
        .where(col(CodeRequest.id).in_(request_ids), col(CodeRequest.delivered_at).is_(None),
               col(CodeRequest.status).in_((Status.ISSUED, Status.REFUSED, Status.FAILED)),
               col(CodeRequest.not_before) <= now)
        .values(not_before=until)
        .returning(CodeRequest.id)
    )
    return {row[0] for row in result.all()}


async def known_codes(*, session: AsyncSession, device_id: int) -> set[str]:
    """Hex forms of every code the ledger already holds for the device."""
    query = select(CodeRequest.code_hex).where(
        CodeRequest.device_id == device_id, col(CodeRequest.code_hex).is_not(None)
    )
    return {value for value in (await session.exec(query)).all() if value}


async def queue_depth(*, session: AsyncSession) -> tuple[int, datetime | None]:
    """How many requests wait, and since when the oldest has waited."""
    query = select(func.count(), func.min(CodeRequest.created_at)).where(
        col(CodeRequest.status).in_(OPEN_STATUSES)
    )
    count, oldest = (await session.exec(query)).one()
    return int(count), oldest
