"""People, customers, invites and approvals: who someone is, how they joined, what managers decided."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import bindparam, text, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.ledger.rows import first_loaded, row_columns
from storage.models import (
    Approval,
    ApprovalStatus,
    Customer,
    Device,
    Invite,
    Person,
    Role,
    table_of,
)
from storage.prepared import prepared

# -- people -----------------------------------------------------------------------------------


_PERSON = select(Person).where(Person.telegram_id == bindparam("telegram_id"))
"""Built once, as the other statements of every update: building one costs more than SQLite's answer."""


async def get_person(*, session: AsyncSession, telegram_id: int) -> Person | None:
    return (await session.exec(_PERSON, params={"telegram_id": telegram_id})).first()  # type: ignore[call-overload]


_PEOPLE_LOCK = 0x70706C65  # "pple"


async def hold_people(*, session: AsyncSession) -> None:
    """Until this transaction ends, no other process adds people this way (PostgreSQL; SQLite's one writer
    does it already): replicas starting together each make PAYGBOT_MANAGERS managers, once."""
    if session.bind.dialect.name == "postgresql":
        await session.exec(text("SELECT pg_advisory_xact_lock(:key)").bindparams(key=_PEOPLE_LOCK))  # type: ignore[call-overload]


async def put_person(
    *, session: AsyncSession, telegram_id: int, role: Role, name: str | None, now: datetime,
    language: str | None = None, language_chosen: bool = False,
) -> Person:
    """Give ``telegram_id`` the role (creating the person if new) and make them active; a ``language``
    is kept unless it would replace one they chose with one they did not."""
    person = await get_person(session=session, telegram_id=telegram_id)
    if person is None:
        person = Person(telegram_id=telegram_id, role=role, name=name or "", created_at=now)
    else:
        person.role, person.active = role, True
        if name:
            person.name = name
    _keep_language(person, language, language_chosen)
    session.add(person)
    await session.flush()
    return person


def _keep_language(row: Person | Customer, language: str | None, chosen: bool) -> None:
    """Keep ``language`` unless it would replace one the person chose (/language) with one they did not."""
    if language is not None and (chosen or not row.language_chosen):
        row.language, row.language_chosen = language, chosen


async def set_person_language(*, session: AsyncSession, person_id: int, language: str, chosen: bool) -> None:
    person = await session.get(Person, person_id)
    if person is not None:
        _keep_language(person, language, chosen)
        session.add(person)


async def set_customer_language(*, session: AsyncSession, customer_id: int, language: str, chosen: bool) -> None:
    customer = await session.get(Customer, customer_id)
    if customer is not None:
        _keep_language(customer, language, chosen)
        session.add(customer)


_PEOPLE, _CUSTOMERS = table_of(Person), table_of(Customer)
_READER = prepared(select(_PEOPLE.c.language, _PEOPLE.c.active).where(_PEOPLE.c.telegram_id == bindparam("chat_id")))
_CUSTOMER_LANGUAGE = prepared(select(_CUSTOMERS.c.language).where(_CUSTOMERS.c.chat_id == bindparam("chat_id")))


async def reader_of_chat(*, session: AsyncSession, chat_id: int) -> tuple[str | None, bool]:
    """Whoever a private chat belongs to (its id is the person's user id), as a reader: their kept
    language — the manager's or agent's (also one whose role was taken away), else the customer's —
    and whether they are a person whose role was taken away. (No ORM: see :func:`storage.models.table_of`.)"""
    person = (await session.exec(_READER, params={"chat_id": chat_id})).first()  # type: ignore[call-overload]
    revoked = person is not None and not person.active
    if person is not None and person.language:
        return person.language, revoked
    return (await session.exec(_CUSTOMER_LANGUAGE, params={"chat_id": chat_id})).first(), revoked  # type: ignore[call-overload]


async def list_people(*, session: AsyncSession) -> Sequence[Person]:
    return (await session.exec(select(Person).order_by(col(Person.role), col(Person.id)))).all()

async def person_by_id(*, session: AsyncSession, person_id: int) -> Person | None:
    return await session.get(Person, person_id, populate_existing=True)

# -- customers ----------------------------------------------------------------------------------


async def customer_by_phone(*, session: AsyncSession, phone: str) -> Customer | None:
    """The customer with exactly this number, E.164 (``bot.phones.e164``): numbers that only end
    alike are other people's."""
    query = select(Customer).where(Customer.phone == phone)
    return (await session.exec(query)).first()


async def customer_by_user(*, session: AsyncSession, telegram_user_id: int) -> Customer | None:
    query = select(Customer).where(Customer.telegram_user_id == telegram_user_id)
    return (await session.exec(query)).first()


_CUSTOMER = prepared(select(*row_columns(Customer)).where(_CUSTOMERS.c.id == bindparam("customer_id")))
_DEVICES = table_of(Device)
_CUSTOMER_OF_DEVICE = prepared(select(*row_columns(Customer)).join(_DEVICES, _DEVICES.c.customer_id == _CUSTOMERS.c.id)
                               .where(_DEVICES.c.id == bindparam("device_id")))


async def get_customer(*, session: AsyncSession, customer_id: int) -> Customer | None:
    """The customer row, fresh (an object the session held already takes the values read): the record of every
    code of a device with a customer reads it."""
    return await first_loaded(session, Customer, _CUSTOMER, {"customer_id": customer_id}, refresh=True)


async def customer_of_device(*, session: AsyncSession, device_id: int) -> Customer | None:
    """The customer the device is registered to, if any (one statement: a code's delivery reads it)."""
    return await first_loaded(session, Customer, _CUSTOMER_OF_DEVICE, {"device_id": device_id}, refresh=True)


async def put_customer(
    *, session: AsyncSession, device: Device, phone: str, name: str, registered_by_id: int | None, now: datetime
) -> Customer:
    """Register (or update) the customer with this phone (E.164) and make them the device's customer."""
    customer = await customer_by_phone(session=session, phone=phone)
    if customer is None:
        customer = Customer(name=name, phone=phone, registered_by_id=registered_by_id, created_at=now)
    else:
        customer.name = name
        customer.registered_by_id = registered_by_id or customer.registered_by_id
    session.add(customer)
    await session.flush()
    device.customer_id = customer.id
    session.add(device)
    await session.flush()
    return customer


async def link_customer_chat(
    *, session: AsyncSession, customer: Customer, telegram_user_id: int, chat_id: int, language: str | None,
    language_chosen: bool = False,
) -> Customer:
    """Tie a customer to a Telegram account (a chat moves with the person, never to another one)."""
    previous = await customer_by_user(session=session, telegram_user_id=telegram_user_id)
    if previous is not None and previous.id != customer.id:
        previous.telegram_user_id, previous.chat_id = None, None
        session.add(previous)
        await session.flush()
    customer.telegram_user_id, customer.chat_id = telegram_user_id, chat_id
    _keep_language(customer, language, language_chosen)
    session.add(customer)
    await session.flush()
    return customer


async def customer_devices(*, session: AsyncSession, customer_id: int) -> Sequence[Device]:
    query = select(Device).where(Device.customer_id == customer_id).order_by(col(Device.id))
    return (await session.exec(query)).all()

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

# -- managers: approvals, the team, reports ------------------------------------------------------


async def add_approval(*, session: AsyncSession, approval: Approval) -> Approval:
    session.add(approval)
    await session.flush()
    return approval


async def get_approval(*, session: AsyncSession, approval_id: int) -> Approval | None:
    return await session.get(Approval, approval_id, populate_existing=True)


async def decide_approval(
    *, session: AsyncSession, approval_id: int, status: ApprovalStatus, decided_by_id: int, now: datetime
) -> bool:
    """PENDING -> ``status``, once and only before it expires: False if someone decided first."""
    result = await session.exec(  # type: ignore[call-overload]
        update(Approval)
        .where(col(Approval.id) == approval_id, col(Approval.status) == ApprovalStatus.PENDING,
               col(Approval.expires_at) > now)
        .values(status=status, decided_by_id=decided_by_id, decided_at=now)
    )
    return bool(result.rowcount == 1)


async def expire_approvals(*, session: AsyncSession, now: datetime) -> Sequence[Approval]:
    """Pending approvals past their time, now EXPIRED (returned so the requesters can be told)."""
    query = (select(Approval).where(Approval.status == ApprovalStatus.PENDING, col(Approval.expires_at) <= now)
             .with_for_update(skip_locked=True))  # another process expiring them now tells their people
    expired = (await session.exec(query)).all()
    for approval in expired:
        approval.status, approval.decided_at = ApprovalStatus.EXPIRED, now
        session.add(approval)
    return expired


async def get_person_by_id(*, session: AsyncSession, person_id: int) -> Person | None:
    return await session.get(Person, person_id)


async def managers(*, session: AsyncSession) -> Sequence[Person]:
    query = select(Person).where(Person.role == Role.MANAGER, col(Person.active).is_(True)).order_by(col(Person.id))
    return (await session.exec(query)).all()


async def deactivate(*, session: AsyncSession, telegram_id: int) -> Person | None:
    person = await get_person(session=session, telegram_id=telegram_id)
    if person is not None:
        person.active = False
        session.add(person)
    return person
