"""Every query and state change of the ledger: the only module that speaks SQL.

Functions take the session as a keyword and run inside the caller's transaction
(``Database.write()`` / ``Database.read()``), so one unit of work is one transaction.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import ColumnElement, and_, func, or_, text, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import (
    CONFIRMATION_COPY,
    GENERATED_STATUSES,
    OPEN_STATUSES,
    Approval,
    ApprovalStatus,
    CodeKind,
    CodeRequest,
    Customer,
    Device,
    DeviceAlias,
    Invite,
    Payment,
    PaymentStatus,
    Person,
    Role,
    Status,
    SummaryPush,
)

# -- people -----------------------------------------------------------------------------------


async def get_person(*, session: AsyncSession, telegram_id: int) -> Person | None:
    return (await session.exec(select(Person).where(Person.telegram_id == telegram_id))).first()


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


async def language_of_chat(*, session: AsyncSession, chat_id: int) -> str | None:
    """The kept language of whoever a private chat belongs to (its id is the person's user id):
    the manager or agent (also one whose role was taken away), else the customer."""
    person = await get_person(session=session, telegram_id=chat_id)
    if person is not None and person.language:
        return person.language
    query = select(Customer.language).where(Customer.chat_id == chat_id)
    return (await session.exec(query)).first()


async def list_people(*, session: AsyncSession) -> Sequence[Person]:
    return (await session.exec(select(Person).order_by(col(Person.role), col(Person.id)))).all()


# -- devices ----------------------------------------------------------------------------------


async def find_device(*, session: AsyncSession, ref: str) -> Device | None:
    """The device known by ``ref`` (any of its ids), or None."""
    query = select(Device).join(DeviceAlias, col(DeviceAlias.device_id) == col(Device.id)).where(
        DeviceAlias.alias == ref
    )
    return (await session.exec(query)).first()


async def add_device(
    *, session: AsyncSession, ids: Sequence[str], now: datetime, label: str | None = None, verified: bool = False,
) -> Device:
    """Create a device known by ``ids`` (the first is its ERM id), or add ids to the one that exists.

    ``ids`` are one device (the ERM's item record says so, or its code history): if they name several
    devices the ledger kept apart, those are merged into the oldest (:func:`merge_devices`).
    """
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
    assert device.id is not None
    for ref in dict.fromkeys(ids):
        if await session.get(DeviceAlias, ref) is None:
            session.add(DeviceAlias(alias=ref, device_id=device.id))
    session.add(device)
    await session.flush()
    return device


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
    keep = await session.get(Device, keep_id, populate_existing=True, with_for_update=True)
    gone = await session.get(Device, gone_id, populate_existing=True, with_for_update=True)
    if keep is None or gone is None or keep_id == gone_id:
        return None
    for table in (CodeRequest, Payment, Approval, DeviceAlias):
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
    keep.unlocked = keep.unlocked or gone.unlocked
    keep.verified = keep.verified or gone.verified
    keep.reminded_for = None
    session.add(keep)
    await session.flush()
    await session.delete(gone)
    await session.flush()
    return keep


def _credit_together(one: datetime | None, other: datetime | None, now: datetime) -> datetime | None:
    """Codes of both rows went into one device: what is left of each adds up."""
    if one is None or other is None:
        return one or other
    return max(one, now) + (max(other, now) - now)


async def unverified_without_codes(*, session: AsyncSession, device_ids: Sequence[int]) -> set[int]:
    """Which of these devices the ledger knows only by typed ids and holds no code of: another row may
    be the same device, and their code histories cannot tell yet."""
    if not device_ids:
        return set()
    with_codes = select(CodeRequest.device_id).where(col(CodeRequest.code_hex).is_not(None))
    query = select(Device.id).where(col(Device.id).in_(list(device_ids)), col(Device.verified).is_(False),
                                    col(Device.id).not_in(with_codes))
    return {value for value in (await session.exec(query)).all() if value is not None}


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


async def known_aliases(*, session: AsyncSession, aliases: Sequence[str]) -> set[str]:
    """Which of these ids the ledger already knows."""
    query = select(DeviceAlias.alias).where(col(DeviceAlias.alias).in_(list(aliases)))
    return set((await session.exec(query)).all()) if aliases else set()


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


async def defer(*, session: AsyncSession, request_id: int, not_before: datetime) -> None:
    """A QUEUED request waits until ``not_before`` (the device's codes for today are spent)."""
    await session.exec(  # type: ignore[call-overload]
        update(CodeRequest)
        .where(col(CodeRequest.id) == request_id, col(CodeRequest.status) == Status.QUEUED)
        .values(not_before=not_before)
    )


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
    """The one payment of (provider, reference); the copies kept beside it (``duplicate_of``) are not it."""
    query = select(Payment).where(Payment.provider == provider, Payment.reference == reference,
                                  col(Payment.duplicate_of).is_(None)).order_by(col(Payment.id))
    return (await session.exec(query)).first()


async def add_payment(*, session: AsyncSession, payment: Payment, known_new: bool = False) -> tuple[Payment, bool]:
    """Store a payment once per (provider, reference): returns (the payment, whether it is new).

    ``known_new``: the caller looked already (in this transaction); the unique constraint still decides.
    """
    existing = None if known_new else await find_payment(session=session, provider=payment.provider,
                                                            reference=payment.reference)
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


async def payment_by_reference(*, session: AsyncSession, reference: str) -> Payment | None:
    """The payment stored under ``reference`` whatever its provider: the first one still kept for the managers
    (a conflicting copy, for /assign), else the first."""
    query = (select(Payment).where(Payment.reference == reference)
             .order_by(col(Payment.status) != PaymentStatus.UNMATCHED, col(Payment.id)).limit(1))
    return (await session.exec(query)).first()


async def add_new_payments(*, session: AsyncSession, payments: Sequence[Payment]) -> list[tuple[Payment, bool]]:
    """Store payments the caller found no reference of (in this transaction) in one flush; if the unique
    constraint refuses one (another writer got there first), one at a time, the repeats not stored."""
    try:
        async with session.begin_nested():
            session.add_all(payments)
            await session.flush()
    except IntegrityError:
        return [await add_payment(session=session, payment=_fresh_copy(payment)) for payment in payments]
    return [(payment, True) for payment in payments]


def _fresh_copy(payment: Payment) -> Payment:
    return Payment.model_validate(payment.model_dump(exclude={"id"}))


async def payments_under_references(*, session: AsyncSession, references: Sequence[str]) -> dict[str, list[Payment]]:
    """Every payment stored under these references, whatever its provider, copies too (oldest first): what a
    new payment with one of them is compared with (a repeat, the same money by another way, or a conflict)."""
    found: dict[str, list[Payment]] = {}
    for offset in range(0, len(references), 500):
        query = (select(Payment).where(col(Payment.reference).in_(references[offset:offset + 500]))
                 .order_by(col(Payment.id)))
        for payment in (await session.exec(query)).all():
            found.setdefault(payment.reference, []).append(payment)
    return found


async def add_payment_copy(*, session: AsyncSession, payment: Payment) -> Payment:
    """Store a payment kept beside another of its reference (``duplicate_of`` set: the unique index of
    (provider, reference) leaves it out), flushed at once so that the next one can point at it."""
    assert payment.duplicate_of is not None
    session.add(payment)
    await session.flush()
    return payment


async def get_payment(*, session: AsyncSession, payment_id: int) -> Payment | None:
    return await session.get(Payment, payment_id, populate_existing=True)


async def lock_payment(*, session: AsyncSession, payment_id: int) -> Payment:
    """The payment row, fresh, for a read-modify-write (the writer transaction serialises these)."""
    payment = await session.get(Payment, payment_id, populate_existing=True, with_for_update=True)
    assert payment is not None
    return payment


async def payments_to_retry(*, session: AsyncSession, now: datetime, limit: int = 100) -> Sequence[Payment]:
    """PENDING payments whose next try is due (the ERM could not be asked, or the bot stopped)."""
    query = (
        select(Payment)
        .where(Payment.status == PaymentStatus.PENDING, col(Payment.retry_at) <= now)
        .order_by(col(Payment.retry_at), col(Payment.id))
        .limit(limit)
    )
    return (await session.exec(query)).all()


async def payments_owing_notice(*, session: AsyncSession, limit: int = 100) -> Sequence[Payment]:
    """Payments someone is still to be told about (managers of unmatched money, customers of a wait)."""
    query = (
        select(Payment)
        .where(col(Payment.notice).is_not(None), col(Payment.notified_at).is_(None))
        .order_by(col(Payment.id))
        .limit(limit)
    )
    return (await session.exec(query)).all()


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


async def get_customer(*, session: AsyncSession, customer_id: int) -> Customer | None:
    return await session.get(Customer, customer_id, populate_existing=True)


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
    query = select(Approval).where(Approval.status == ApprovalStatus.PENDING, col(Approval.expires_at) <= now)
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


def _status_among(statuses: Sequence[Status]) -> ColumnElement[bool]:
    """``status IN statuses`` for the day's reports, written as NOT IN the other statuses, which no index
    serves: SQLite's planner (it has no statistics: the ledger is never ANALYZEd) then walks the time
    index over one day of rows rather than the status index over every code ever: 577 ms -> 21 ms for
    the summary at 1M codes (bench/reports_big_ledger.py)."""
    return col(CodeRequest.status).not_in([status for status in Status if status not in statuses])


def _generated_between(start: datetime, end: datetime) -> tuple[ColumnElement[bool], ...]:
    """Codes generated in [start, end), for the day's reports."""
    return (col(CodeRequest.issued_at) >= start, col(CodeRequest.issued_at) < end,
            _status_among(GENERATED_STATUSES))


async def agents_with_codes(*, session: AsyncSession, start: datetime, end: datetime) -> list[tuple[Person, int]]:
    """Active agents and managers with the codes they asked that were generated in [start, end)."""
    generated = (
        select(CodeRequest.requested_by_id, func.count().label("codes"))
        .where(*_generated_between(start, end))
        .group_by(col(CodeRequest.requested_by_id))
        .subquery()
    )
    query = (
        select(Person, func.coalesce(generated.c.codes, 0))
        .outerjoin(generated, generated.c.requested_by_id == col(Person.id))
        .where(col(Person.active).is_(True))
        .order_by(col(Person.role), col(Person.name))
    )
    return [(person, int(codes)) for person, codes in (await session.exec(query)).all()]


async def generated_by_kind(*, session: AsyncSession, start: datetime, end: datetime) -> list[tuple[CodeKind, int, int]]:
    """(kind, codes, days) of the codes generated in [start, end)."""
    query = (
        select(CodeRequest.kind, func.count(), func.coalesce(func.sum(CodeRequest.days), 0))
        .where(*_generated_between(start, end))
        .group_by(col(CodeRequest.kind))
    )
    return [(kind, int(count), int(days)) for kind, count, days in (await session.exec(query)).all()]


async def generated_by_person(
    *, session: AsyncSession, start: datetime, end: datetime
) -> list[tuple[int | None, int, int]]:
    """(person id, codes, days) of the codes generated in [start, end), per person who asked."""
    query = (
        select(CodeRequest.requested_by_id, func.count(), func.coalesce(func.sum(CodeRequest.days), 0))
        .where(*_generated_between(start, end))
        .group_by(col(CodeRequest.requested_by_id))
    )
    return [(person, int(count), int(days)) for person, count, days in (await session.exec(query)).all()]


async def ended_badly(
    *, session: AsyncSession, start: datetime, end: datetime, limit: int = 50
) -> tuple[int, list[tuple[str, Status, str | None]]]:
    """Refusals and failures asked in [start, end): how many, and the latest (device, status, reason)."""
    where = (col(CodeRequest.created_at) >= start, col(CodeRequest.created_at) < end,
             _status_among((Status.REFUSED, Status.FAILED)))
    total = (await session.exec(select(func.count()).select_from(CodeRequest).where(*where))).one()
    query = (
        select(CodeRequest.device_ref, CodeRequest.status, CodeRequest.reason)
        .where(*where)
        .order_by(col(CodeRequest.id).desc())
        .limit(limit)
    )
    return int(total), [(ref, status, reason) for ref, status, reason in (await session.exec(query)).all()]


async def payments_between(*, session: AsyncSession, start: datetime, end: datetime) -> Sequence[Payment]:
    query = select(Payment).where(col(Payment.received_at) >= start, col(Payment.received_at) < end).order_by(
        col(Payment.id)
    )
    return (await session.exec(query)).all()


async def credit_ending(
    *, session: AsyncSession, now: datetime, until: datetime
) -> Sequence[tuple[Device, Customer | None]]:
    """Devices whose credit ends in (now, until], soonest first, with their customer."""
    query = (
        select(Device, Customer)
        .outerjoin(Customer, col(Customer.id) == col(Device.customer_id))
        .where(col(Device.credit_until) > now, col(Device.credit_until) <= until, col(Device.unlocked).is_(False))
        .order_by(col(Device.credit_until))
    )
    return (await session.exec(query)).all()


async def generated_times(*, session: AsyncSession, start: datetime, end: datetime) -> list[datetime]:
    """When each code in [start, end) was generated (for the chart's daily counts)."""
    query = select(CodeRequest.issued_at).where(*_generated_between(start, end))
    return [when for when in (await session.exec(query)).all() if when is not None]


async def payment_times(*, session: AsyncSession, start: datetime, end: datetime) -> list[datetime]:
    """When each payment in [start, end) was received; a provider's copy of a pasted one is not another payment."""
    not_a_copy = or_(col(Payment.duplicate_of).is_(None), col(Payment.reason).is_(None),
                     col(Payment.reason) != CONFIRMATION_COPY)
    query = select(Payment.received_at).where(col(Payment.received_at) >= start, col(Payment.received_at) < end,
                                              not_a_copy)
    return list((await session.exec(query)).all())


async def export_rows(
    *, session: AsyncSession, start: datetime, end: datetime, chunk: int = 2000
) -> AsyncIterator[ExportRow]:
    """Every code request asked in [start, end), oldest first, with the customer's name, who asked
    (name or Telegram id) and the payment's amount — streamed in chunks, never all in memory."""
    last_id = 0
    while True:
        query = (
            select(CodeRequest, Customer.name, Person.name, Person.telegram_id, Payment.amount, Payment.currency)
            .join(Device, col(Device.id) == col(CodeRequest.device_id))
            .outerjoin(Customer, col(Customer.id) == col(Device.customer_id))
            .outerjoin(Person, col(Person.id) == col(CodeRequest.requested_by_id))
            .outerjoin(Payment, col(Payment.id) == col(CodeRequest.payment_id))
            .where(col(CodeRequest.created_at) >= start, col(CodeRequest.created_at) < end,
                   col(CodeRequest.id) > last_id)
            .order_by(col(CodeRequest.id))
            .limit(chunk)
        )
        rows = (await session.exec(query)).all()
        if not rows:
            return
        for request, customer, name, telegram_id, amount, currency in rows:
            who = name or (str(telegram_id) if telegram_id else None)
            yield ExportRow(request, customer, who, amount, currency)
        last_id = rows[-1][0].id or last_id


@dataclass(frozen=True)
class ExportRow:
    request: CodeRequest
    customer: str | None
    asked_by: str | None
    amount: Decimal | None
    currency: str | None


async def claim_summary_day(*, session: AsyncSession, day: date, now: datetime) -> bool:
    """Claim the push of ``day``'s summary: True once, False ever after."""
    if await session.get(SummaryPush, day) is not None:
        return False
    try:
        async with session.begin_nested():
            session.add(SummaryPush(day=day, pushed_at=now))
            await session.flush()
    except IntegrityError:
        return False
    return True


async def payments_with_codes(*, session: AsyncSession, payment_ids: Sequence[int]) -> set[int]:
    """Which of these payments have a code request."""
    found: set[int] = set()
    for offset in range(0, len(payment_ids), 500):
        chunk = payment_ids[offset : offset + 500]
        query = select(CodeRequest.payment_id).where(col(CodeRequest.payment_id).in_(chunk))
        found.update(value for value in (await session.exec(query)).all() if value is not None)
    return found
