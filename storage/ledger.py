"""Every query and state change of the ledger: the only module that speaks SQL.

Functions take the session as a keyword and run inside the caller's transaction
(``Database.write()`` / ``Database.read()``), so one unit of work is one transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, func, or_, text, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import (
    GENERATED_STATUSES,
    OPEN_STATUSES,
    CodeKind,
    CodeRequest,
    Customer,
    Device,
    DeviceAlias,
    Invite,
    Payment,
    Person,
    Role,
    Status,
)

# -- people -----------------------------------------------------------------------------------


async def get_person(*, session: AsyncSession, telegram_id: int) -> Person | None:
    return (await session.exec(select(Person).where(Person.telegram_id == telegram_id))).first()


async def put_person(
    *, session: AsyncSession, telegram_id: int, role: Role, name: str | None, now: datetime
) -> Person:
    """Give ``telegram_id`` the role (creating the person if new) and make them active."""
    person = await get_person(session=session, telegram_id=telegram_id)
    if person is None:
        person = Person(telegram_id=telegram_id, role=role, name=name or "", created_at=now)
    else:
        person.role, person.active = role, True
        if name:
            person.name = name
    session.add(person)
    await session.flush()
    return person


async def list_people(*, session: AsyncSession) -> Sequence[Person]:
    return (await session.exec(select(Person).order_by(col(Person.role), col(Person.id)))).all()


# -- devices ----------------------------------------------------------------------------------


async def find_device(*, session: AsyncSession, ref: str) -> Device | None:
    """The device known by ``ref`` (any of its ids), or None."""
    query = select(Device).join(DeviceAlias, col(DeviceAlias.device_id) == col(Device.id)).where(
        DeviceAlias.alias == ref
    )
    return (await session.exec(query)).first()


async def add_device(*, session: AsyncSession, ids: Sequence[str], now: datetime, label: str | None = None) -> Device:
    """Create a device known by ``ids`` (the first is its ERM id), or add ids to the one that exists.

    If the ids name two devices the ledger kept apart, the first found wins and the rest
    of the ids are attached to it only where they are free.
    """
    device = None
    for ref in ids:
        device = await find_device(session=session, ref=ref)
        if device is not None:
            break
    if device is None:
        device = Device(erm_id=ids[0], label=label or ids[0], created_at=now)
        session.add(device)
        await session.flush()
    assert device.id is not None
    for ref in dict.fromkeys(ids):
        if await session.get(DeviceAlias, ref) is None:
            session.add(DeviceAlias(alias=ref, device_id=device.id))
    await session.flush()
    return device


async def device_aliases(*, session: AsyncSession, device_id: int) -> list[str]:
    query = select(DeviceAlias.alias).where(DeviceAlias.device_id == device_id).order_by(col(DeviceAlias.alias))
    return list((await session.exec(query)).all())


async def get_device(*, session: AsyncSession, device_id: int) -> Device | None:
    return await session.get(Device, device_id, populate_existing=True)


async def lock_device(*, session: AsyncSession, device_id: int) -> Device:
    """The device row, fresh, for a read-modify-write (the writer transaction serialises these)."""
    device = await session.get(Device, device_id, populate_existing=True, with_for_update=True)
    assert device is not None
    return device


async def devices_with_prepaid(*, session: AsyncSession) -> list[int]:
    query = select(Device.id).where(Device.prepaid_days > 0, col(Device.unlocked).is_(False))
    return [value for value in (await session.exec(query)).all() if value is not None]


# -- code requests: what the limits need -----------------------------------------------------


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


async def device_load(*, session: AsyncSession, device_id: int, day_start: datetime, day_end: datetime) -> DeviceLoad:
    """Everything the limits check needs about one device, in one indexed query."""
    is_open = col(CodeRequest.status).in_(OPEN_STATUSES)
    today = and_(col(CodeRequest.status).in_(GENERATED_STATUSES), col(CodeRequest.issued_at) >= day_start,
                 col(CodeRequest.issued_at) < day_end)
    query = select(
        func.count().filter(today),
        func.count().filter(is_open, col(CodeRequest.not_before) < day_end),
        func.count().filter(is_open),
        func.coalesce(func.sum(CodeRequest.days).filter(is_open, CodeRequest.kind == CodeKind.DAYS), 0),
    ).where(CodeRequest.device_id == device_id, or_(is_open, today))
    generated, open_today, open_count, pending = (await session.exec(query)).one()
    return DeviceLoad(int(generated), int(open_today), int(open_count), int(pending))


async def open_between(*, session: AsyncSession, device_id: int, start: datetime, end: datetime) -> int:
    """Requests still to be generated for the device whose turn is in [start, end)."""
    query = select(func.count()).select_from(CodeRequest).where(
        CodeRequest.device_id == device_id,
        col(CodeRequest.status).in_(OPEN_STATUSES),
        col(CodeRequest.not_before) >= start,
        col(CodeRequest.not_before) < end,
    )
    return (await session.exec(query)).one()


async def add_request(*, session: AsyncSession, request: CodeRequest) -> CodeRequest:
    session.add(request)
    await session.flush()
    return request


# -- code requests: the pump -------------------------------------------------------------------


async def due_requests(
    *, session: AsyncSession, now: datetime, gap_edge: datetime, exclude: Sequence[int], limit: int
) -> Sequence[CodeRequest]:
    """The next request of each device that may go out now, oldest first.

    A device's requests go out in the order they were asked (a reset then days must not
    become days then reset), so a device qualifies only when its oldest QUEUED request is
    due, nothing of it is SENDING, and its last generation is at least the pacing gap ago
    (``gap_edge``).
    """
    sending = select(CodeRequest.device_id).where(CodeRequest.status == Status.SENDING)
    oldest = (
        select(func.min(CodeRequest.id))
        .where(CodeRequest.status == Status.QUEUED)
        .group_by(col(CodeRequest.device_id))
    )
    query = (
        select(CodeRequest)
        .join(Device, col(Device.id) == col(CodeRequest.device_id))
        .where(
            col(CodeRequest.id).in_(oldest),
            col(CodeRequest.not_before) <= now,
            col(CodeRequest.device_id).not_in(sending),
            or_(col(Device.last_generation_at).is_(None), col(Device.last_generation_at) <= gap_edge),
        )
        .order_by(col(CodeRequest.not_before), col(CodeRequest.id))
        .limit(limit)
    )
    if exclude:
        query = query.where(col(CodeRequest.device_id).not_in(exclude))
    return (await session.exec(query)).all()


async def unsettled(*, session: AsyncSession, now: datetime, exclude: Sequence[int]) -> Sequence[CodeRequest]:
    """SENDING requests whose answer never came (a timeout, or a crash) and are due to be settled."""
    query = select(CodeRequest).where(CodeRequest.status == Status.SENDING, col(CodeRequest.not_before) <= now)
    if exclude:
        query = query.where(col(CodeRequest.device_id).not_in(exclude))
    return (await session.exec(query.order_by(col(CodeRequest.id)))).all()


async def undelivered(*, session: AsyncSession, now: datetime, limit: int = 100) -> Sequence[CodeRequest]:
    """Finished requests whose person has not been told yet, due for another try."""
    query = (
        select(CodeRequest)
        .where(
            col(CodeRequest.status).in_((Status.ISSUED, Status.REFUSED, Status.FAILED)),
            col(CodeRequest.delivered_at).is_(None),
            col(CodeRequest.not_before) <= now,
        )
        .order_by(col(CodeRequest.id))
        .limit(limit)
    )
    return (await session.exec(query)).all()


async def claim(*, session: AsyncSession, request_id: int, now: datetime, settle_after: datetime) -> bool:
    """QUEUED -> SENDING, once: False if someone else claimed it first."""
    result = await session.exec(  # type: ignore[call-overload]
        update(CodeRequest)
        .where(col(CodeRequest.id) == request_id, col(CodeRequest.status) == Status.QUEUED)
        .values(status=Status.SENDING, sent_at=now, not_before=settle_after, attempts=CodeRequest.attempts + 1)
    )
    return bool(result.rowcount == 1)


async def get_request(*, session: AsyncSession, request_id: int) -> CodeRequest | None:
    return await session.get(CodeRequest, request_id, populate_existing=True)


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


# -- payments ---------------------------------------------------------------------------------


async def find_payment(*, session: AsyncSession, provider: str, reference: str) -> Payment | None:
    query = select(Payment).where(Payment.provider == provider, Payment.reference == reference)
    return (await session.exec(query)).first()


async def add_payment(*, session: AsyncSession, payment: Payment) -> tuple[Payment, bool]:
    """Store a payment once per (provider, reference): returns (the payment, whether it is new)."""
    existing = await find_payment(session=session, provider=payment.provider, reference=payment.reference)
    if existing is not None:
        return existing, False
    try:
        async with session.begin_nested():
            session.add(payment)
            await session.flush()
    except IntegrityError:
        existing = await find_payment(session=session, provider=payment.provider, reference=payment.reference)
        assert existing is not None
        return existing, False
    return payment, True


async def request_for_payment(*, session: AsyncSession, payment_id: int) -> CodeRequest | None:
    query = select(CodeRequest).where(CodeRequest.payment_id == payment_id)
    return (await session.exec(query)).first()



# -- customers ----------------------------------------------------------------------------------


async def customer_by_phone(*, session: AsyncSession, phone: str) -> Customer | None:
    """The customer whose number ends like ``phone`` (the last 9 digits: 0712… and 254712… match)."""
    tail = phone[-9:]
    query = select(Customer).where(col(Customer.phone).endswith(tail)).order_by(col(Customer.id))
    for customer in (await session.exec(query)).all():
        if customer.phone[-9:] == tail:
            return customer
    return None


async def customer_by_user(*, session: AsyncSession, telegram_user_id: int) -> Customer | None:
    query = select(Customer).where(Customer.telegram_user_id == telegram_user_id)
    return (await session.exec(query)).first()


async def get_customer(*, session: AsyncSession, customer_id: int) -> Customer | None:
    return await session.get(Customer, customer_id, populate_existing=True)


async def put_customer(
    *, session: AsyncSession, device: Device, phone: str, name: str, registered_by_id: int | None, now: datetime
) -> Customer:
    """Register (or update) the customer with this phone and make them the device's customer."""
    customer = await customer_by_phone(session=session, phone=phone)
    if customer is None:
        customer = Customer(name=name, phone=phone, registered_by_id=registered_by_id, created_at=now)
    else:
        customer.name, customer.phone = name, phone
        customer.registered_by_id = registered_by_id or customer.registered_by_id
    session.add(customer)
    await session.flush()
    device.customer_id = customer.id
    session.add(device)
    await session.flush()
    return customer


async def link_customer_chat(
    *, session: AsyncSession, customer: Customer, telegram_user_id: int, chat_id: int, language: str | None
) -> Customer:
    """Tie a customer to a Telegram account (a chat moves with the person, never to another one)."""
    previous = await customer_by_user(session=session, telegram_user_id=telegram_user_id)
    if previous is not None and previous.id != customer.id:
        previous.telegram_user_id, previous.chat_id = None, None
        session.add(previous)
        await session.flush()
    customer.telegram_user_id, customer.chat_id = telegram_user_id, chat_id
    customer.language = customer.language or language
    session.add(customer)
    await session.flush()
    return customer


async def customer_devices(*, session: AsyncSession, customer_id: int) -> Sequence[Device]:
    query = select(Device).where(Device.customer_id == customer_id).order_by(col(Device.id))
    return (await session.exec(query)).all()


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


async def mark_reminded(*, session: AsyncSession, device_id: int, credit_until: datetime) -> None:
    device = await lock_device(session=session, device_id=device_id)
    device.reminded_for = credit_until
    session.add(device)


# -- invites ------------------------------------------------------------------------------------


async def add_invite(*, session: AsyncSession, invite: Invite) -> Invite:
    session.add(invite)
    await session.flush()
    return invite


async def invite_by_token(*, session: AsyncSession, token: str) -> Invite | None:
    return (await session.exec(select(Invite).where(Invite.token == token))).first()


async def use_invite(*, session: AsyncSession, invite_id: int, telegram_id: int, now: datetime) -> bool:
    """Mark the invite used by ``telegram_id``, once: False if it was used meanwhile."""
    result = await session.exec(  # type: ignore[call-overload]
        update(Invite)
        .where(col(Invite.id) == invite_id, col(Invite.used_at).is_(None))
        .values(used_by=telegram_id, used_at=now)
    )
    return bool(result.rowcount == 1)


async def active_people(*, session: AsyncSession) -> Sequence[Person]:
    return (await session.exec(select(Person).where(col(Person.active).is_(True)))).all()


async def linked_customers(*, session: AsyncSession) -> Sequence[Customer]:
    return (await session.exec(select(Customer).where(col(Customer.chat_id).is_not(None)))).all()
