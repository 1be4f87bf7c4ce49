"""What the managers' dashboard reads: the devices a page at a time (found by any of their ids, their customer's
name or phone; those whose credit ends soon, those past due, one agent's), one device's story, the payments
kept for the managers, the approvals waiting.

A page is counted and read in the database (``OFFSET``/``LIMIT``), never by loading the ledger: on 100,000
devices each filter reads one index or one pass over the devices, and the page's own details only for its rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, NamedTuple

from sqlalchemy import and_, exists, false, func, or_, union
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.ledger.devices import LIKE_ESCAPE, _like_literal
from storage.ledger.portfolio import PaidOff
from storage.models import (
    CONFIRMATION_COPY,
    GENERATED_STATUSES,
    Approval,
    ApprovalStatus,
    CodeRequest,
    Customer,
    Device,
    DeviceAlias,
    Payment,
    PaymentStatus,
    Person,
    Plan,
    PlanStatus,
)

SHOWS = ("all", "ending", "past_due")
"""What :func:`device_list` may show: every device, those whose credit ends soon, those past due."""

# -- the devices, a page at a time --------------------------------------------------------------------------


@dataclass(frozen=True)
class DeviceRow:
    """One device of a page: what a row of the list shows."""

    id: int
    label: str
    erm_id: str
    customer: str | None
    """Its customer's name (None: no customer)."""
    phone: str | None
    agent_id: int | None
    """The agent who registered its customer."""
    credit_until: datetime | None
    unlocked: bool
    daily_price: Decimal | None
    currency: str | None
    plan_left: Decimal | None
    """Left to pay on its active plan (None: no active plan)."""
    paid_off: bool
    """A plan of it is paid off: it is its customer's."""


def _contains(column: Any, text: str, dialect: str) -> Any:
    """``column`` holds ``text``, whatever the case (its ``%`` and ``_`` plain characters). SQLite's LIKE ignores
    case already (of ASCII letters, as its ``lower()`` does: ``ilike`` would add ``lower()`` on every row), and
    ``ESCAPE`` makes its comparisons about a tenth slower: given only when the text holds a character to escape."""
    literal = _like_literal(text)
    pattern = f"%{literal}%"
    if dialect == "sqlite":
        return col(column).like(pattern, escape=LIKE_ESCAPE) if literal != text else col(column).like(pattern)
    return col(column).ilike(pattern, escape=LIKE_ESCAPE)


def _among(column: Any, values: Any, dialect: str) -> Any:
    """``column`` is one of the ``values`` a query selects. On PostgreSQL as ``= ANY(ARRAY(…))``: each value is
    then looked up in ``column``'s index, where for ``IN (…)`` the planner reads the whole table (cheaper by its
    estimates for a few thousand values; nearly twice as slow in ``bench/dashboard_devices.py``)."""
    if dialect == "postgresql":
        return col(column) == func.any(func.array(values.scalar_subquery()))
    return col(column).in_(values)


PHONE_CHARACTERS = frozenset("+0123456789")
"""All a phone holds (E.164): a text with anything else is not part of one."""


def _named(dialect: str, text: str | None, phone: str | None) -> Any:
    """Whether the device is one ``text`` or ``phone`` names: its id among a union of one query per kind of
    name, each reading one index (a trigram index on PostgreSQL), where one OR over the joined tables would
    read every row. A device's label and ERM id are among its aliases (``add_device`` makes them so)."""
    branches = []
    customers = []
    if text:
        branches += [select(DeviceAlias.device_id).where(_contains(DeviceAlias.alias, text, dialect)),
                     select(Device.id).where(_contains(Device.description, text, dialect)).correlate(None)]
        customers.append(_contains(Customer.name, text, dialect))
        if set(text) <= PHONE_CHARACTERS:
            customers.append(_contains(Customer.phone, text, dialect))
    if phone:
        customers.append(col(Customer.phone) == phone)
    branches.append(select(Device.id).where(_among(Device.customer_id, select(Customer.id).where(or_(*customers)),
                                                   dialect)).correlate(None))
    return _among(Device.id, union(*branches), dialect)


def _of_agent(agent_id: int, dialect: str) -> Any:
    return _among(Device.customer_id, select(Customer.id).where(col(Customer.registered_by_id) == agent_id), dialect)


LOCKED = col(Device.unlocked) == false()
"""Not unlocked (``= false``: an index serves it, where it could not serve PostgreSQL's ``IS false``)."""
BY_LABEL = (col(Device.label), col(Device.id))
BY_CREDIT = (col(Device.credit_until), *BY_LABEL)


def _paid_off() -> Any:
    return exists().where(col(PaidOff.device_id) == col(Device.id), col(PaidOff.status) == PlanStatus.PAID_OFF)


def _on_plan_since(now: datetime) -> Any:
    """On an active plan started before ``now`` (without credit, due since it started)."""
    return exists().where(col(Plan.device_id) == col(Device.id), col(Plan.status) == PlanStatus.ACTIVE,
                          col(Plan.started_at) < now)


def _count(*conditions: Any) -> Any:
    return select(func.count()).select_from(Device).where(*conditions).scalar_subquery()


class _Part(NamedTuple):
    """Devices listed one after another in ``order``, read in that order from an index; ``count`` says how
    many there are."""

    conditions: list[Any]
    order: list[Any]
    count: Any


def _parts(show: str, now: datetime, ending_within: timedelta, dialect: str) -> list[_Part]:
    """What ``show`` shows of all the devices, in parts each read in order from ``ix_device_label`` or
    ``ix_device_unlocked_credit`` and counted from it. Past due (:func:`_past_due`) is two: those never given
    credit, then those whose credit ended — often half the ledger, so counted as all whose credit ended less
    the paid-off among them (a device has one paid-off plan at most), not by looking for a plan of each."""
    if show == "all":
        return [_Part([], list(BY_LABEL), _count())]
    if show == "ending":
        ending = [LOCKED, col(Device.credit_until) >= now, col(Device.credit_until) < now + ending_within]
        return [_Part(ending, list(BY_CREDIT), _count(*ending))]
    if show == "past_due":
        # on an active plan, none is paid off: a device has one plan at most that is not repossessed
        never = [LOCKED, col(Device.credit_until).is_(None), _on_plan_since(now)]
        ended = [LOCKED, col(Device.credit_until) < now]
        paid_off = _among(Device.id, select(PaidOff.device_id).where(col(PaidOff.status) == PlanStatus.PAID_OFF),
                          dialect)
        return [_Part(never, list(BY_LABEL), _count(*never)),
                _Part([*ended, ~_paid_off()], list(BY_CREDIT), _count(*ended) - _count(*ended, paid_off))]
    raise ValueError(f"show is one of {', '.join(SHOWS)}, not {show!r}")


def _past_due(now: datetime) -> Any:
    """As :func:`storage.ledger.portfolio.visits` says it (not unlocked, not paid off, credit ended before
    ``now`` or never given on an active plan started before then), with or without a customer."""
    return and_(LOCKED, ~_paid_off(),
                or_(col(Device.credit_until) < now, col(Device.credit_until).is_(None) & _on_plan_since(now)))


async def device_list(
    *, session: AsyncSession, text: str | None = None, phone: str | None = None, show: str = "all", now: datetime,
    ending_within: timedelta = timedelta(days=3), agent_id: int | None = None, offset: int = 0, limit: int = 50,
) -> tuple[list[DeviceRow], int]:
    """One page of the devices that match, and how many match in all.

    ``text`` (case-insensitive; ``%`` and ``_`` are plain characters) is found in any id of the device, its
    description, its customer's name or phone; ``phone`` (E.164) is its customer's phone exactly; given both,
    either finds it. ``show``: ``all``, by label; ``ending``: not unlocked, credit ending in [now, now +
    ending_within); ``past_due``: as :func:`storage.ledger.portfolio.visits`, customer or not — both by when
    credit ends, oldest first (never given any: first), then label. ``agent_id``: only the devices of the
    customers that agent registered. On PostgreSQL a ``text`` of fewer than three characters reads every row
    (a trigram index holds nothing shorter)."""
    text = text.strip() if text else None
    dialect = session.bind.dialect.name
    narrowed = []
    if text or phone:
        narrowed.append(_named(dialect, text, phone or None))
    if agent_id is not None:
        narrowed.append(_of_agent(agent_id, dialect))
    parts = _parts(show, now, ending_within, dialect)
    if narrowed:  # a few thousand devices at most: found in one pass, counted as they are found
        shown = [_past_due(now)] if show == "past_due" else parts[0].conditions
        ids, total = await _counted_page(session, [*narrowed, *shown], show, offset, limit)
    else:  # all of them, or a large share
        ids, total = await _page(session, parts, offset, limit)
    return await _rows(session, ids), total


async def _counted_page(session: AsyncSession, conditions: list[Any], show: str, offset: int,
                        limit: int) -> tuple[list[int], int]:
    """The page's ids, and how many match in all, in one statement: the matching rows are read once (and all
    of them, before the page is taken: PostgreSQL would otherwise walk every device in label order)."""
    found = select(Device.id, Device.label, Device.credit_until, func.count().over().label("total")).where(
        *conditions).subquery()
    by_label = [found.c.label, found.c.id]
    order = by_label if show == "all" else [found.c.credit_until.nulls_first(), *by_label]
    query = select(found.c.id, found.c.total).order_by(*order).offset(offset).limit(max(limit, 1))
    rows = (await session.exec(query)).all()
    if rows:
        return [device_id for device_id, _ in rows][:limit], int(rows[0][1])
    if offset == 0:
        return [], 0
    return [], int((await session.exec(select(_count(*conditions)))).one())


async def _page(session: AsyncSession, parts: list[_Part], offset: int, limit: int) -> tuple[list[int], int]:
    """The page's ids from the parts one after the other, and how many there are in all."""
    connection = await session.connection()  # the counts in one row (``session.exec`` makes one a scalar)
    counts = [int(count) for count in (await connection.execute(select(*(part.count for part in parts)))).one()]
    ids: list[int] = []
    for part, count in zip(parts, counts, strict=True):
        if offset >= count:
            offset -= count
            continue
        if len(ids) >= limit:
            break
        query = select(Device.id).where(*part.conditions).order_by(*part.order).offset(offset).limit(limit - len(ids))
        ids += [device_id for device_id in (await session.exec(query)).all() if device_id is not None]
        offset = 0
    return ids, sum(counts)


async def _rows(session: AsyncSession, ids: list[int]) -> list[DeviceRow]:
    """What the list shows of these devices, in this order."""
    if not ids:
        return []
    query = (
        select(Device.id, Device.label, Device.erm_id, Customer.name, Customer.phone, Customer.registered_by_id,
               Device.credit_until, Device.unlocked, Device.daily_price, Device.currency, Plan.total, Plan.paid,
               _paid_off().label("paid_off"))
        .outerjoin(Customer, col(Customer.id) == col(Device.customer_id))
        .outerjoin(Plan, and_(col(Plan.device_id) == col(Device.id), col(Plan.status) == PlanStatus.ACTIVE))
        .where(col(Device.id).in_(ids))
    )
    found = {row[0]: row for row in (await session.exec(query)).all()}
    return [DeviceRow(id=device_id, label=label, erm_id=erm_id, customer=name, phone=phone, agent_id=agent,
                      credit_until=credit_until, unlocked=bool(unlocked), daily_price=daily_price, currency=currency,
                      plan_left=None if total is None else max(Decimal(0), total - paid), paid_off=bool(paid_off))
            for (device_id, label, erm_id, name, phone, agent, credit_until, unlocked, daily_price, currency, total,
                 paid, paid_off) in (found[device_id] for device_id in ids)]


# -- one device ---------------------------------------------------------------------------------------------


@dataclass
class DeviceStory:
    """All the dashboard shows of one device."""

    device: Device
    customer: Customer | None
    aliases: list[str]
    plan: Plan | None
    """Its active plan, else its latest (paid off or repossessed); None: never on a plan."""
    requests: list[CodeRequest]
    """Its last code requests, newest first, whatever became of them."""
    payments: list[Payment]
    """Its last payments, newest first (the provider's confirmations of pasted ones left out: not money)."""
    credit_timeline: list[tuple[datetime, datetime]]
    """(when issued, credit until) of each code issued with credit, oldest first: its credit over time."""


async def device_story(*, session: AsyncSession, device_id: int, limit: int = 50) -> DeviceStory | None:
    """The device ``device_id`` with its customer, ids, plan, last ``limit`` code requests and payments, and
    credit over time; None if there is no such device."""
    device = await session.get(Device, device_id, populate_existing=True)
    if device is None:
        return None
    customer = None if device.customer_id is None else await session.get(Customer, device.customer_id)
    aliases = (await session.exec(
        select(DeviceAlias.alias).where(col(DeviceAlias.device_id) == device_id).order_by(col(DeviceAlias.alias))
    )).all()
    plan = (await session.exec(
        select(Plan).where(col(Plan.device_id) == device_id)
        .order_by(col(Plan.status) != PlanStatus.ACTIVE, col(Plan.started_at).desc(), col(Plan.id).desc()).limit(1)
    )).first()
    requests = (await session.exec(
        select(CodeRequest).where(col(CodeRequest.device_id) == device_id)
        .order_by(col(CodeRequest.created_at).desc(), col(CodeRequest.id).desc()).limit(limit)
    )).all()
    payments = (await session.exec(
        select(Payment).where(col(Payment.device_id) == device_id,
                              or_(col(Payment.reason).is_(None), col(Payment.reason) != CONFIRMATION_COPY))
        .order_by(col(Payment.received_at).desc(), col(Payment.id).desc()).limit(limit)
    )).all()
    timeline = (await session.exec(
        select(CodeRequest.issued_at, CodeRequest.credit_until)
        .where(col(CodeRequest.device_id) == device_id, col(CodeRequest.status).in_(GENERATED_STATUSES),
               col(CodeRequest.issued_at).is_not(None), col(CodeRequest.credit_until).is_not(None))
        .order_by(col(CodeRequest.issued_at), col(CodeRequest.id))
    )).all()
    return DeviceStory(device=device, customer=customer, aliases=list(aliases), plan=plan, requests=list(requests),
                       payments=list(payments),
                       credit_timeline=[(issued, until) for issued, until in timeline
                                        if issued is not None and until is not None])


# -- what waits for the managers ----------------------------------------------------------------------------


async def kept_payments(*, session: AsyncSession, offset: int = 0, limit: int = 50) -> tuple[list[Payment], int]:
    """Payments kept for a manager to assign (UNMATCHED), newest first, and how many there are. One reversed
    while kept is left out: it never becomes days, there is nothing to assign."""
    kept = [col(Payment.status) == PaymentStatus.UNMATCHED, col(Payment.reversed_at).is_(None)]
    total = (await session.exec(select(func.count()).select_from(Payment).where(*kept))).one()
    page = (await session.exec(
        select(Payment).where(*kept).order_by(col(Payment.received_at).desc(), col(Payment.id).desc())
        .offset(offset).limit(limit)
    )).all()
    return list(page), int(total)


@dataclass(frozen=True)
class Waiting:
    """An approval waiting for a manager's decision, with the names it is shown with."""

    approval: Approval
    label: str
    """The device's label."""
    customer: str | None
    """The device's customer's name (None: no customer)."""
    requester: str | None
    """Who asked: their name, or their Telegram id when they gave none (None: nobody, a plan paid off of a
    customer without an agent)."""


async def waiting_approvals(*, session: AsyncSession, now: datetime) -> list[Waiting]:
    """Approvals still PENDING and not yet expired at ``now`` (the job that marks them EXPIRED runs now and
    then: one past its time can no longer be decided), oldest first."""
    query = (
        select(Approval, Device.label, Customer.name, Person.name, Person.telegram_id)
        .join(Device, col(Device.id) == col(Approval.device_id))
        .outerjoin(Customer, col(Customer.id) == col(Device.customer_id))
        .outerjoin(Person, col(Person.id) == col(Approval.requested_by_id))
        .where(col(Approval.status) == ApprovalStatus.PENDING, col(Approval.expires_at) > now)
        .order_by(col(Approval.created_at), col(Approval.id))
    )
    return [Waiting(approval=approval, label=label, customer=customer,
                    requester=None if telegram_id is None else (name or str(telegram_id)))
            for approval, label, customer, name, telegram_id in (await session.exec(query)).all()]
