"""Devices: one row per device whatever id names it (aliases, merges of rows found to be one device),
what people see of them, reminders."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import and_, bindparam, case, func, insert, or_, text, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.ledger.rows import first_loaded, row_columns
from storage.models import (
    GENERATED_STATUSES,
    OPEN_STATUSES,
    PLAN_IS_CURRENT,
    Approval,
    CodeRequest,
    Customer,
    Device,
    DeviceAlias,
    Payment,
    Plan,
    PlanEvent,
    PlanStatus,
    Status,
    table_of,
)
from storage.prepared import prepared

# -- devices ----------------------------------------------------------------------------------

_DEVICE_DIRECTORY_LOCK = 0x70617967  # "payg": the advisory lock that makes new devices and ids one at a time


async def hold_device_directory(*, session: AsyncSession) -> None:
    """Until this transaction ends, no other adds devices or ids. SQLite's one writer does this already;
    on PostgreSQL two lookups of one new id at once would both find nothing and both insert it."""
    if session.bind.dialect.name == "postgresql":
        await session.exec(text("SELECT pg_advisory_xact_lock(:key)").bindparams(key=_DEVICE_DIRECTORY_LOCK))  # type: ignore[call-overload]


_DEVICES, _ALIASES = table_of(Device), table_of(DeviceAlias)
_FIND_DEVICE = prepared(select(*row_columns(Device)).join(_ALIASES, _ALIASES.c.device_id == _DEVICES.c.id)
                        .where(_ALIASES.c.alias == bindparam("ref")))
_FIND_LOCKED_DEVICE = _FIND_DEVICE.with_for_update(of=_DEVICES)


async def find_device(*, session: AsyncSession, ref: str, lock: bool = False) -> Device | None:
    """The device known by ``ref`` (any of its ids), or None; with ``lock``, fresh and locked for a
    read-modify-write, as :func:`lock_device` (one statement for both)."""
    query = _FIND_LOCKED_DEVICE if lock else _FIND_DEVICE
    return await first_loaded(session, Device, query, {"ref": ref}, refresh=lock)


class NewDevice(NamedTuple):
    """A device of the ERM's item list, for :func:`add_new_devices`."""

    ids: Sequence[str]
    label: str | None
    description: str | None
    life_cycle: str | None


async def add_device(
    *, session: AsyncSession, ids: Sequence[str], now: datetime, label: str | None = None, verified: bool = False,
    description: str | None = None, life_cycle: str | None = None,
) -> tuple[Device, bool]:
    """Create a device known by ``ids`` (the first is its ERM id), or add ids to the one that exists;
    returns it, and whether rows were merged.

    ``ids`` are one device (the ERM's item record says so, or its code history): if they name several
    devices the ledger kept apart, those are merged into the oldest (:func:`merge_devices`).
    """
    await hold_device_directory(session=session)
    found: dict[int, Device] = {}
    for ref in ids:
        device = await find_device(session=session, ref=ref)
        if device is not None and device.id is not None:
            found.setdefault(device.id, device)
    if not found:
        device = Device(erm_id=ids[0], label=label or ids[0], created_at=now, verified=verified)
        session.add(device)
        await session.flush()
    else:
        keep, *others = sorted(found)
        device = found[keep]
        for other in others:
            device = await merge_devices(session=session, keep_id=keep, gone_id=other, now=now) or device
        device.verified = device.verified or verified
    device.description = _fit(description, 200) or device.description
    device.life_cycle = _fit(life_cycle, 32) or device.life_cycle
    assert device.id is not None
    for ref in dict.fromkeys(ids):
        if await session.get(DeviceAlias, ref) is None:
            session.add(DeviceAlias(alias=ref, device_id=device.id))
    session.add(device)
    await session.flush()
    return device, len(found) > 1


async def add_new_devices(*, session: AsyncSession, items: Sequence[NewDevice], now: datetime) -> None:
    """Create devices none of whose ids the ledger knows (the caller checked, holding the directory), all at
    once: a page of the device sync is a few statements, not a few per device."""
    if not items:
        return
    rows = [Device(erm_id=item.ids[0], label=item.label or item.ids[0], created_at=now, verified=True,
                   description=_fit(item.description, 200), life_cycle=_fit(item.life_cycle, 32)).model_dump(
                       exclude={"id"}) for item in items]
    # Core inserts of many rows: the ORM's would return each new id a row at a time on SQLite
    connection = await session.connection()
    await connection.execute(insert(Device), rows)
    made = dict((await connection.execute(select(Device.erm_id, Device.id).where(  # type: ignore[call-overload]
        col(Device.erm_id).in_([row["erm_id"] for row in rows])))).all())
    await connection.execute(insert(DeviceAlias), [{"alias": ref, "device_id": made[item.ids[0]]} for item in items
                                                   for ref in dict.fromkeys(item.ids)])


async def devices_holding_codes(*, session: AsyncSession, hexes: Sequence[str]) -> list[int]:
    """The ledger's devices that hold one of these codes (hex): a code history names one device, whichever
    of its ids asked for it, so an id whose history holds a device's code is that device."""
    if not hexes:
        return []
    query = (select(CodeRequest.device_id).where(col(CodeRequest.code_hex).in_([h.upper() for h in hexes]))
             .distinct().order_by(col(CodeRequest.device_id)))
    return list((await session.exec(query)).all())


async def merge_devices(*, session: AsyncSession, keep_id: int, gone_id: int, now: datetime) -> Device | None:
    """Make ``gone_id`` part of ``keep_id``: one device the ledger kept as two rows (two of its ids seen
    before the ERM told they were one). Every request, payment, approval and id moves; credit is what
    both rows' codes gave the one device; the ``gone_id`` row is deleted. None if either row is gone."""
    # payments before devices, as every writer takes them (applying or reversing a payment locks it first)
    await session.exec(select(Payment.id).where(col(Payment.device_id).in_([keep_id, gone_id]))  # type: ignore[call-overload]
                       .order_by(col(Payment.id)).with_for_update())
    keep = await session.get(Device, keep_id, populate_existing=True, with_for_update=True)
    gone = await session.get(Device, gone_id, populate_existing=True, with_for_update=True)
    if keep is None or gone is None or keep_id == gone_id:
        return None
    await _merge_plans(session, keep_id, gone_id, now)
    for table in (CodeRequest, Payment, Approval, DeviceAlias, Plan):
        await session.exec(  # type: ignore[call-overload]
            update(table).where(col(table.device_id) == gone_id).values(device_id=keep_id)  # type: ignore[attr-defined]
        )
    keep.credit_until = _credit_together(keep.credit_until, gone.credit_until, now)
    if gone.last_generation_at and (keep.last_generation_at is None or gone.last_generation_at > keep.last_generation_at):
        keep.last_generation_at = gone.last_generation_at
    keep.customer_id = keep.customer_id or gone.customer_id
    if keep.daily_price is None:
        keep.daily_price, keep.currency = gone.daily_price, gone.currency
    keep.prepaid_days += gone.prepaid_days
    keep.credit_money += gone.credit_money
    keep.owed += gone.owed
    keep.unlocked = keep.unlocked or gone.unlocked
    keep.verified = keep.verified or gone.verified
    keep.reminded_for = None
    session.add(keep)
    await session.flush()
    await session.delete(gone)
    await session.flush()
    return keep


async def _merge_plans(session: AsyncSession, keep_id: int, gone_id: int, now: datetime) -> None:
    """Both rows with a current plan (one device sold twice over, as far as the ledger knew): the plan of the
    ``gone_id`` row ends (kept, with a ``merged`` event, for the managers to sort out); one plan per device."""
    current = {plan.device_id: plan for plan in (await session.exec(
        select(Plan).where(col(Plan.device_id).in_([keep_id, gone_id]), PLAN_IS_CURRENT)
    )).all()}
    if keep_id in current and gone_id in current:
        ended = current[gone_id]
        ended.status, ended.ended_at = PlanStatus.REPOSSESSED, now
        session.add(ended)
        assert ended.id is not None
        session.add(PlanEvent(plan_id=ended.id, at=now, kind="merged", total=ended.total,
                              daily_price=ended.daily_price, currency=ended.currency, deposit=ended.deposit,
                              paid=ended.paid, note=f"its device is one with another row, whose plan {current[keep_id].id} "
                                                    "goes on"))
        await session.flush()


def _credit_together(one: datetime | None, other: datetime | None, now: datetime) -> datetime | None:
    """Codes of both rows went into one device: what is left of each adds up."""
    if one is None or other is None:
        return one or other
    return max(one, now) + (max(other, now) - now)


async def unverified_among(*, session: AsyncSession, device_ids: Sequence[int]) -> dict[int, bool]:
    """Which of these devices the ledger knows only by typed ids (another row may be the same device), each
    with whether it holds a code (without one, their code histories cannot tell yet)."""
    if not device_ids:
        return {}
    with_codes = select(CodeRequest.device_id).where(col(CodeRequest.code_hex).is_not(None))
    query = select(Device.id, col(Device.id).in_(with_codes)).where(col(Device.id).in_(list(device_ids)),
                                                                      col(Device.verified).is_(False))
    return {device_id: bool(coded) for device_id, coded in (await session.exec(query)).all() if device_id is not None}


async def unverified_without_codes_sending(*, session: AsyncSession) -> bool:
    """Whether such a device has a request at the ERM right now (its code, if made, is not known yet)."""
    with_codes = select(CodeRequest.device_id).where(col(CodeRequest.code_hex).is_not(None))
    query = (select(CodeRequest.id).join(Device, col(Device.id) == col(CodeRequest.device_id))
             .where(CodeRequest.status == Status.SENDING, col(Device.verified).is_(False),
                    col(CodeRequest.device_id).not_in(with_codes)).limit(1))
    return (await session.exec(query)).first() is not None


async def requeue(*, session: AsyncSession, request_id: int, now: datetime) -> None:
    """SENDING -> QUEUED for a request that was claimed but never sent to the ERM."""
    await session.exec(  # type: ignore[call-overload]
        update(CodeRequest)
        .where(col(CodeRequest.id) == request_id, col(CodeRequest.status) == Status.SENDING)
        .values(status=Status.QUEUED, not_before=now, attempts=CodeRequest.attempts - 1)
    )


async def open_requests(*, session: AsyncSession, device_id: int) -> Sequence[CodeRequest]:
    query = (select(CodeRequest).where(CodeRequest.device_id == device_id, col(CodeRequest.status).in_(OPEN_STATUSES))
             .order_by(col(CodeRequest.id)))
    return (await session.exec(query)).all()


def _fit(text: str | None, length: int) -> str | None:
    """What the ERM says, cut to the column (PostgreSQL refuses a longer value; the sync must not stop)."""
    return text[:length] if text else text


async def item_details(*, session: AsyncSession, aliases: Sequence[str]) -> dict[str, tuple[str | None, str | None]]:
    """The description and life cycle the ledger holds for the devices known by these ids, by id (an id
    the ledger does not know is not a key)."""
    if not aliases:
        return {}
    query = (select(DeviceAlias.alias, Device.description, Device.life_cycle)
             .join(Device, col(Device.id) == col(DeviceAlias.device_id))
             .where(col(DeviceAlias.alias).in_(list(aliases))))
    return {alias: (description, life_cycle) for alias, description, life_cycle in (await session.exec(query)).all()}


async def set_item_details(*, session: AsyncSession, ref: str, description: str | None, life_cycle: str | None) -> None:
    """Keep what the ERM now says of the device known by ``ref``."""
    device = await find_device(session=session, ref=ref)
    if device is not None:
        device.description, device.life_cycle = _fit(description, 200), _fit(life_cycle, 32)
        session.add(device)


async def device_aliases(*, session: AsyncSession, device_id: int) -> list[str]:
    query = select(DeviceAlias.alias).where(DeviceAlias.device_id == device_id).order_by(col(DeviceAlias.alias))
    return list((await session.exec(query)).all())


_DEVICE = prepared(select(*row_columns(Device)).where(_DEVICES.c.id == bindparam("device_id")))
_LOCK_DEVICE = _DEVICE.with_for_update()


async def get_device(*, session: AsyncSession, device_id: int) -> Device | None:
    """The device row, fresh (an object the session held already takes the values read)."""
    return await first_loaded(session, Device, _DEVICE, {"device_id": device_id}, refresh=True)


async def lock_device(*, session: AsyncSession, device_id: int) -> Device:
    """The device row, fresh, for a read-modify-write (the writer transaction serialises these)."""
    device = await lock_device_if_any(session=session, device_id=device_id)
    assert device is not None
    return device


async def lock_device_if_any(*, session: AsyncSession, device_id: int) -> Device | None:
    """As :func:`lock_device`, for a device that may have been merged into another since its id was read."""
    return await first_loaded(session, Device, _LOCK_DEVICE, {"device_id": device_id}, refresh=True)


async def devices_with_prepaid(*, session: AsyncSession) -> list[int]:
    query = select(Device.id).where(Device.prepaid_days > 0, col(Device.unlocked).is_(False))
    return [value for value in (await session.exec(query)).all() if value is not None]

# -- what people see of devices ----------------------------------------------------------------


async def last_codes(*, session: AsyncSession, device_id: int, limit: int = 3) -> Sequence[CodeRequest]:
    """The device's most recent codes the ledger holds, newest first."""
    query = (
        select(CodeRequest)
        .where(CodeRequest.device_id == device_id, col(CodeRequest.status).in_(GENERATED_STATUSES))
        .order_by(col(CodeRequest.issued_at).desc(), col(CodeRequest.id).desc())
        .limit(limit)
    )
    return (await session.exec(query)).all()


async def recent_devices(*, session: AsyncSession, person_id: int, limit: int = 4) -> list[str]:
    """The device ids a person asked codes for most recently, as they typed them."""
    query = (
        select(CodeRequest.device_ref, func.max(CodeRequest.id).label("latest"))
        .where(CodeRequest.requested_by_id == person_id)
        .group_by(col(CodeRequest.device_ref))
        .order_by(text("latest DESC"))
        .limit(limit)
    )
    return [ref for ref, _ in (await session.exec(query)).all()]


async def reminders_due(
    *, session: AsyncSession, now: datetime, horizon: datetime
) -> Sequence[tuple[Device, Customer]]:
    """Devices whose credit ends before ``horizon``, whose customer has a chat and was not yet reminded."""
    query = (
        select(Device, Customer)
        .join(Customer, col(Customer.id) == col(Device.customer_id))
        .where(
            col(Device.credit_until) > now,
            col(Device.credit_until) <= horizon,
            col(Device.unlocked).is_(False),
            col(Customer.chat_id).is_not(None),
            or_(col(Device.reminded_for).is_(None), col(Device.reminded_for) != col(Device.credit_until)),
        )
    )
    return (await session.exec(query)).all()


async def mark_reminded(*, session: AsyncSession, device_id: int, credit_until: datetime) -> bool:
    """The reminder for the credit ending at ``credit_until`` is this process's to send: False if another
    process took it first (or the device was reminded of it already)."""
    result = await session.exec(  # type: ignore[call-overload]
        update(Device)
        .where(col(Device.id) == device_id, col(Device.credit_until) == credit_until,
               or_(col(Device.reminded_for).is_(None), col(Device.reminded_for) != credit_until))
        .values(reminded_for=credit_until)
    )
    return bool(result.rowcount == 1)

# -- finding devices by part of an id or of their description -----------------------------------

LIKE_ESCAPE = "\\"


@dataclass(frozen=True)
class DeviceMatch:
    """A device found by :func:`search_devices`."""

    device_id: int
    label: str
    description: str | None
    alias: str | None
    """The id of the device that holds the text (an exact match first, then one ending with it); None
    when only the description does."""


@dataclass(frozen=True)
class DeviceSearch:
    """The first devices found, and how many there are in all."""

    matches: list[DeviceMatch]
    total: int


def _like_literal(value: str) -> str:
    """``value`` for a LIKE pattern: its ``%``, ``_`` and the escape character match themselves."""
    return (value.replace(LIKE_ESCAPE, LIKE_ESCAPE * 2).replace("%", LIKE_ESCAPE + "%")
            .replace("_", LIKE_ESCAPE + "_"))


def _alias_rank(alias: str, lowered: str) -> int:
    """0: the id is the text; 1: it ends with it (the last digits printed on a device); 2: it holds it."""
    alias = alias.lower()
    return 0 if alias == lowered else 1 if alias.endswith(lowered) else 2


async def search_devices(*, session: AsyncSession, text: str, limit: int = 10) -> DeviceSearch:
    """The devices any of whose ids, or whose description, contains ``text`` (case-insensitively; ``%``
    and ``_`` are plain characters), each once: a device one of whose ids is the text first, then those
    with an id ending with it, then those with an id holding it, then those found by their description;
    by label within each. At most ``limit``, and how many in all."""
    lowered = text.lower()
    literal = _like_literal(text)
    anywhere = f"%{literal}%"
    alias = col(DeviceAlias.alias)
    in_alias = alias.ilike(anywhere, escape=LIKE_ESCAPE)
    rank = case((func.lower(alias) == lowered, 0), (alias.ilike(f"%{literal}", escape=LIKE_ESCAPE), 1),
                (in_alias, 2), else_=3)
    found = (
        select(col(Device.id).label("device_id"), func.min(rank).label("rank"))
        .outerjoin(DeviceAlias, and_(col(DeviceAlias.device_id) == col(Device.id), in_alias))
        .where(or_(alias.is_not(None), col(Device.description).ilike(anywhere, escape=LIKE_ESCAPE)))
        .group_by(col(Device.id))
        .subquery()
    )
    total = (await session.exec(select(func.count()).select_from(found))).one()
    query = (
        select(Device.id, Device.label, Device.description)
        .join(found, found.c.device_id == col(Device.id))
        .order_by(found.c.rank, col(Device.label), col(Device.id))
        .limit(limit)
    )
    rows = (await session.exec(query)).all()
    labels = {device_id: label for device_id, label, _ in rows if device_id is not None}
    best: dict[int, str] = {}
    if labels:
        aliases = select(DeviceAlias.device_id, DeviceAlias.alias).where(col(DeviceAlias.device_id).in_(list(labels)),
                                                                         in_alias)
        for device_id, name in sorted((await session.exec(aliases)).all(),  # the label, when as good as another
                                      key=lambda row: (_alias_rank(row[1], lowered), row[1] != labels[row[0]], row[1])):
            best.setdefault(device_id, name)
    matches = [DeviceMatch(device_id=device_id, label=label, description=description, alias=best.get(device_id))
               for device_id, label, description in rows if device_id is not None]
    return DeviceSearch(matches=matches, total=int(total))
