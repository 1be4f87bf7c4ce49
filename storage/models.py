"""The ledger's tables (SQLModel). Times are aware UTC; money is ``Decimal``.

A code request is the unit of money: it is written before the ERM is asked and walks
QUEUED -> SENDING -> ISSUED -> DELIVERED, or ends REFUSED / FAILED with a reason. The states rows take are in
:mod:`storage.states`, imported from here too.

The ``*_search`` indexes serve the dashboard's ``LIKE '%…%'`` search: trigram indexes on PostgreSQL (``pg_trgm``,
migration 0013; without them ~0.4 s on 100,000 devices), plain ones on SQLite (narrower than the table).
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import BigInteger, Index, Table, Text, literal_column, text
from sqlmodel import Field, SQLModel

from storage.states import (  # the states are imported with the tables: re-exported (see __all__)
    CONFIRMATION_COPY,
    GENERATED_STATUSES,
    OPEN_STATUSES,
    ApprovalStatus,
    CodeKind,
    PaymentNotice,
    PaymentStatus,
    PlanStatus,
    Role,
    Source,
    Status,
)
from storage.types import Money, UTCDateTime

__all__ = [
    "CONFIRMATION_COPY", "GENERATED_STATUSES", "OPEN_STATUSES", "ApprovalStatus", "CodeKind", "PaymentNotice",
    "PaymentStatus", "PlanStatus", "Role", "Source", "Status",
    "Approval", "ChatMenu", "ChatState", "CodeRequest", "Customer", "Device", "DeviceAlias", "Invite", "Payment", "Person",
    "Plan", "PlanEvent", "PortfolioDay", "Reversal", "SendPace", "SummaryPush", "TelegramUpdate",
]


def _when(**kwargs: object) -> object:
    return Field(sa_type=UTCDateTime, **kwargs)  # type: ignore[arg-type]


class Person(SQLModel, table=True):
    """A manager or an agent, known by the numeric Telegram user id (usernames change)."""

    __tablename__ = "person"  # type: ignore[assignment]

    id: int | None = Field(default=None, primary_key=True)
    telegram_id: int = Field(sa_type=BigInteger, unique=True, index=True)
    name: str = Field(default="", max_length=200)
    role: Role
    active: bool = True
    language: str | None = Field(default=None, max_length=8)
    """Chosen with /language (``language_chosen``), else Telegram's language_code as last seen."""
    language_chosen: bool = False
    created_at: datetime = _when()


class Customer(SQLModel, table=True):
    """The owner of one or more devices; ``chat_id`` is set once they join the bot."""

    __tablename__ = "customer"  # type: ignore[assignment]
    __table_args__ = (
        # the dashboard's search for part of a name or phone (see the module's docstring)
        Index("ix_customer_search", "name", "phone", postgresql_using="gin",
              postgresql_ops={"name": "gin_trgm_ops", "phone": "gin_trgm_ops"}),
    )

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200)
    phone: str = Field(unique=True, index=True, max_length=32)
    telegram_user_id: int | None = Field(default=None, sa_type=BigInteger, unique=True)
    chat_id: int | None = Field(default=None, sa_type=BigInteger)
    registered_by_id: int | None = Field(default=None, foreign_key="person.id", index=True)  # an agent's customers
    language: str | None = Field(default=None, max_length=8)
    language_chosen: bool = False
    utility_account: str | None = Field(default=None, unique=True, max_length=64)
    """Their Omnimetic utility service account (linked through OmniConnect), tied by an agent's /meter:
    one customer's at most."""
    utility_account_tied_at: datetime | None = _when(default=None)
    created_at: datetime = _when()


class Device(SQLModel, table=True):
    """A PAYG device: ``erm_id`` as the ERM names it, ``label`` as people first typed it (the id on the
    device's sticker, shown to customers); aliases hold every id it answers to."""

    __tablename__ = "device"  # type: ignore[assignment]
    __table_args__ = (
        Index("ix_device_label", "label", "id"),  # the devices in order, a page at a time (dashboard)
        # credit ending soon, or ended: counted from the index alone, listed in its order (dashboard)
        Index("ix_device_unlocked_credit", "unlocked", "credit_until", "label", "id"),
        Index("ix_device_search", "description", postgresql_using="gin",  # see the module's docstring
              postgresql_ops={"description": "gin_trgm_ops"}),
    )

    id: int | None = Field(default=None, primary_key=True)
    erm_id: str = Field(unique=True, index=True, max_length=64)
    label: str = Field(max_length=64)
    customer_id: int | None = Field(default=None, foreign_key="customer.id", index=True)
    daily_price: Decimal | None = Field(default=None, sa_type=Money)
    currency: str | None = Field(default=None, max_length=8)
    credit_until: datetime | None = _when(default=None)
    unlocked: bool = False
    last_generation_at: datetime | None = _when(default=None)
    prepaid_days: int = 0
    credit_money: Decimal = Field(default=Decimal(0), sa_type=Money)
    owed: Decimal = Field(default=Decimal(0), sa_type=Money)
    """Money owed for days already issued from payments that were reversed: the next payments pay it first."""
    reminded_for: datetime | None = _when(default=None)
    verified: bool = False
    """Its ids come from the ERM's item record. Otherwise the ledger knows the device only by the ids
    people typed, and compares its code history with the ledger's before each of its codes while it has
    none yet (another of its ids may already be a row: see ``bot.issuing``)."""
    description: str | None = Field(default=None, max_length=200)
    """What the ERM's item record calls it ("Solar home system …"), from the device sync."""
    life_cycle: str | None = Field(default=None, max_length=32)
    """The ERM's life cycle of the item (``INITIATED``, ``ASSIGNED``, …), from the device sync."""
    created_at: datetime = _when()


class DeviceAlias(SQLModel, table=True):
    """Another id of a device (OEM item id, seller item id, ERM id), remembered once seen."""

    __tablename__ = "device_alias"  # type: ignore[assignment]
    __table_args__ = (
        # see the module's docstring; on SQLite an empty one (``WHERE 0``): the primary key's index is that already
        Index("ix_device_alias_search", "alias", postgresql_using="gin", postgresql_ops={"alias": "gin_trgm_ops"},
              sqlite_where=text("0")),
    )

    alias: str = Field(primary_key=True, max_length=64)
    device_id: int = Field(foreign_key="device.id", index=True)


class Payment(SQLModel, table=True):
    """Money received; the reference is unique per provider, so a repeat changes nothing.

    Stored first and unconditionally, then matched to a device and turned into days
    (``bot.payments``); ``status`` says how far it got."""

    __tablename__ = "payment"  # type: ignore[assignment]

    __table_args__ = (
        # one payment per (provider, reference); a later copy of it (``duplicate_of``) is kept beside it
        Index("uq_payment_provider_reference", "provider", "reference", unique=True,
              sqlite_where=text("duplicate_of IS NULL"), postgresql_where=text("duplicate_of IS NULL")),
        Index("ix_payment_status_retry", "status", "retry_at"),
        Index("ix_payment_received", "received_at"),  # the day's payments (summary, chart, export)
        Index("ix_payment_matched", "matched_at"),  # money counted toward plans since a moment (portfolio)
    )

    id: int | None = Field(default=None, primary_key=True)
    provider: str = Field(max_length=32)
    reference: str = Field(max_length=100, index=True)
    amount: Decimal = Field(sa_type=Money)
    currency: str = Field(default="", max_length=8)
    account: str = Field(max_length=100)
    phone: str | None = Field(default=None, max_length=32)
    paid_at: datetime | None = _when(default=None)
    received_at: datetime = _when()
    device_id: int | None = Field(default=None, foreign_key="device.id", index=True)
    status: PaymentStatus = PaymentStatus.UNMATCHED
    days: int = 0
    recorded_by_id: int | None = Field(default=None, foreign_key="person.id")
    # -- how it became days (or why not yet) --
    payer: str | None = Field(default=None, max_length=100)
    chat_id: int | None = Field(default=None, sa_type=BigInteger)
    """The chat of whoever recorded it (cash, a pasted confirmation): told of its code too."""
    reason: str | None = Field(default=None, max_length=200)
    """Why it is UNMATCHED or PENDING."""
    prepaid_days: int = 0
    """Of ``days``, how many did not fit under the stacking limit and were kept as prepaid days."""
    credit_left: Decimal | None = Field(default=None, sa_type=Money)
    """The device's money credit (less than a day's price) right after this payment."""
    matched_at: datetime | None = _when(default=None)
    assigned_by_id: int | None = Field(default=None, foreign_key="person.id")
    attempts: int = 0
    retry_at: datetime | None = _when(default=None)
    notice: PaymentNotice | None = None
    notified_at: datetime | None = _when(default=None)
    notice_held_until: datetime | None = _when(default=None)
    """While set and not past, one process is sending the notice (another may take over after it)."""
    duplicate_of: int | None = Field(default=None, foreign_key="payment.id", index=True)
    """Another copy of the money of that payment (same reference): the provider's own confirmation of a
    pasted one (never days again), or a conflicting one (another amount or account: kept for the managers)."""
    confirmed_at: datetime | None = _when(default=None)
    """When the provider's own confirmation (Daraja) of this pasted payment arrived and agreed with it."""
    # -- its plan (see ``Plan``) --
    plan_id: int | None = Field(default=None, foreign_key="plan.id", index=True)
    """The plan it counts toward (all of its amount)."""
    plan_paid: Decimal | None = Field(default=None, sa_type=Money)
    """The plan's paid so far right after it: its receipt's balance."""
    excess: Decimal | None = Field(default=None, sa_type=Money)
    """Of its amount, what went beyond the plan's total: never days, kept for the managers' review."""
    day_money: Decimal | None = Field(default=None, sa_type=Money)
    """Of its amount, what went toward days (beyond a plan's deposit, within its total): what a reversal
    takes back from the device."""
    day_price: Decimal | None = Field(default=None, sa_type=Money)
    """The daily price its days were made at (what a reversal takes back per day)."""
    owed_paid: Decimal | None = Field(default=None, sa_type=Money)
    """Of its amount, what paid the device's debt from a reversed payment first."""
    reversed_at: datetime | None = _when(default=None)
    """The provider took it back (``Reversal``): it counts for nothing any more."""


class CodeRequest(SQLModel, table=True):
    """One code asked of the ERM, from the moment it was asked to the moment it was delivered."""

    __tablename__ = "code_request"  # type: ignore[assignment]

    __table_args__ = (
        Index("ix_code_request_device_status", "device_id", "status"),
        Index("ix_code_request_status_not_before", "status", "not_before"),
        Index("ix_code_request_device_issued", "device_id", "issued_at"),
        Index("ix_code_request_created", "created_at"),
        Index("ix_code_request_issued", "issued_at"),  # the day's codes (summary, chart)
    )

    id: int | None = Field(default=None, primary_key=True)
    device_id: int = Field(foreign_key="device.id")
    device_ref: str = Field(max_length=64)
    kind: CodeKind
    days: int | None = None
    source: Source = Source.CHAT
    requested_by_id: int | None = Field(default=None, foreign_key="person.id", index=True)
    chat_id: int | None = Field(default=None, sa_type=BigInteger)
    payment_id: int | None = Field(default=None, foreign_key="payment.id", unique=True)
    payment_reference: str | None = Field(default=None, max_length=100)
    request_key: str | None = Field(default=None, max_length=64, index=True)
    """What asked for it (``tg:<update id>``): the same update handled again after a replica died with it in
    hand finds this request instead of making a second (looked up among recent requests: Telegram's ids
    may start again at random after a quiet week)."""
    status: Status = Status.QUEUED
    reason: str | None = Field(default=None, max_length=500)
    """One word (``bot.issuing.outcomes``: a refusal's ``Reason``, why it waits or failed), or the ERM's own words."""
    refused_fits: int | None = None
    """Refused for stacking: how many days fitted then."""
    refused_until: datetime | None = _when(default=None)
    """Refused for the daily limit: when the device's next code could go out."""
    code: str | None = Field(default=None, max_length=40)
    code_hex: str | None = Field(default=None, max_length=16)
    erm_count: int | None = None
    erm_code_number: int | None = None
    credit_until: datetime | None = _when(default=None)
    attempts: int = 0
    not_before: datetime = _when()
    created_at: datetime = _when()
    sent_at: datetime | None = _when(default=None)
    issued_at: datetime | None = _when(default=None)
    delivered_at: datetime | None = _when(default=None)
    delivery_attempts: int = 0


class Invite(SQLModel, table=True):
    """A single-use link that gives a role (agent, manager) or links a customer's chat."""

    __tablename__ = "invite"  # type: ignore[assignment]

    id: int | None = Field(default=None, primary_key=True)
    token: str = Field(unique=True, index=True, max_length=64)
    role: str = Field(max_length=16)
    customer_id: int | None = Field(default=None, foreign_key="customer.id")
    created_by_id: int | None = Field(default=None, foreign_key="person.id")
    created_at: datetime = _when()
    expires_at: datetime = _when()
    used_by: int | None = Field(default=None, sa_type=BigInteger)
    used_at: datetime | None = _when(default=None)


class Approval(SQLModel, table=True):
    """A manager's decision on a risky request (a free code from an agent)."""

    __tablename__ = "approval"  # type: ignore[assignment]

    id: int | None = Field(default=None, primary_key=True)
    device_id: int = Field(foreign_key="device.id")
    kind: CodeKind = CodeKind.FREE
    requested_by_id: int | None = Field(default=None, foreign_key="person.id")
    """The agent who asked; for a plan paid off, the customer's agent (None: they have none)."""
    plan_id: int | None = Field(default=None, foreign_key="plan.id")
    """The plan paid off whose unlock code this is."""
    chat_id: int | None = Field(default=None, sa_type=BigInteger)
    status: ApprovalStatus = ApprovalStatus.PENDING
    decided_by_id: int | None = Field(default=None, foreign_key="person.id")
    decided_at: datetime | None = _when(default=None)
    code_request_id: int | None = Field(default=None, foreign_key="code_request.id")
    created_at: datetime = _when()
    expires_at: datetime = _when()


class SummaryPush(SQLModel, table=True):
    """The daily summary pushed for one local day: its row is claimed before sending, so once only."""

    __tablename__ = "summary_push"  # type: ignore[assignment]

    day: date = Field(primary_key=True)
    pushed_at: datetime = _when()


class Plan(SQLModel, table=True):
    """A device sold on credit: a total price paid off day by day, then the device is the customer's.

    ``paid`` (paid so far) is the imported ``opening_paid`` plus every payment counted toward it
    (``Payment.plan_id``) less those reversed; it changes only in the transaction that applies or reverses
    a payment. At most one plan of a device is not repossessed; a repossessed one is kept as it was."""

    __tablename__ = "plan"  # type: ignore[assignment]

    __table_args__ = (
        Index("uq_plan_device_current", "device_id", unique=True,
              sqlite_where=text("status != 'REPOSSESSED'"), postgresql_where=text("status != 'REPOSSESSED'")),
        Index("ix_plan_status_device", "status", "device_id", "started_at"),  # devices paid off, or on a plan since
    )

    id: int | None = Field(default=None, primary_key=True)
    device_id: int = Field(foreign_key="device.id", index=True)
    customer_id: int | None = Field(default=None, foreign_key="customer.id", index=True)
    total: Decimal = Field(sa_type=Money)
    daily_price: Decimal = Field(sa_type=Money)
    currency: str = Field(max_length=8)
    deposit: Decimal = Field(default=Decimal(0), sa_type=Money)
    opening_paid: Decimal = Field(default=Decimal(0), sa_type=Money)
    """Paid before the plan came into the ledger (an import from another system)."""
    paid: Decimal = Field(default=Decimal(0), sa_type=Money)
    status: PlanStatus = PlanStatus.ACTIVE
    started_at: datetime = _when()
    ended_at: datetime | None = _when(default=None)
    """When it was paid off, or repossessed."""
    created_by_id: int | None = Field(default=None, foreign_key="person.id")
    # the approval and the code request of its one unlock (free) code, each set once in the transaction that
    # makes it; ids without a foreign key, which would close a circle of tables (approval and payment point here)
    unlock_approval_id: int | None = None
    unlock_request_id: int | None = None


PLAN_IS_CURRENT = Plan.status != literal_column("'REPOSSESSED'")  # type: ignore[arg-type]
"""A device's current plan, as ``uq_plan_device_current`` says it: the status written out, not a parameter. With a
parameter SQLite compiles the statement again at every run (its value might decide whether the partial index
applies): 180 µs, not 10."""


def table_of(model: type[SQLModel]) -> Table:
    """A model's table, for the statements of every update that need no ORM: one built from its columns runs
    without the ORM's compiling and loading, about a third of a short statement's cost. Rows come back as
    tuples, not objects in the session (:func:`storage.ledger.rows.loaded` makes one the session's object where a
    model is wanted; see also :mod:`storage.prepared`)."""
    return model.__table__  # type: ignore[attr-defined, no-any-return]


class PlanEvent(SQLModel, table=True):
    """A plan's history: each change kept with the terms after it (nothing of a plan is ever rewritten
    without a row here)."""

    __tablename__ = "plan_event"  # type: ignore[assignment]

    id: int | None = Field(default=None, primary_key=True)
    plan_id: int = Field(foreign_key="plan.id", index=True)
    at: datetime = _when(index=True)  # the changes since a moment (portfolio)
    kind: str = Field(max_length=16)
    """created, imported, changed, price, paid_off, unlock, reversed, reopened, repossessed."""
    by_id: int | None = Field(default=None, foreign_key="person.id")
    total: Decimal = Field(sa_type=Money)
    daily_price: Decimal = Field(sa_type=Money)
    currency: str = Field(max_length=8)
    deposit: Decimal = Field(default=Decimal(0), sa_type=Money)
    paid: Decimal = Field(sa_type=Money)
    note: str | None = Field(default=None, max_length=300)
    credit_until: datetime | None = _when(default=None)
    """The device's credit as an import set it (no code says so): what the portfolio's past reads."""


class Reversal(SQLModel, table=True):
    """A payment taken back by its provider: once per payment, and once per reversal reference."""

    __tablename__ = "reversal"  # type: ignore[assignment]

    id: int | None = Field(default=None, primary_key=True)
    payment_id: int = Field(foreign_key="payment.id", unique=True)
    reference: str | None = Field(default=None, max_length=100, unique=True)
    """The provider's reference of the reversal itself (webhook); None from the chat."""
    reason: str | None = Field(default=None, max_length=200)
    by_id: int | None = Field(default=None, foreign_key="person.id")
    at: datetime = _when(index=True)  # the reversals since a moment (portfolio)
    amount: Decimal = Field(sa_type=Money)
    cancelled_days: int = 0
    """Days of the payment not yet issued, taken back (its queued code cancelled, prepaid days removed)."""
    owed: Decimal = Field(default=Decimal(0), sa_type=Money)
    """What could not be taken back (days already issued): the device owes it."""
    taken: Decimal = Field(default=Decimal(0), sa_type=Money)
    """The value taken back from the device in all (days not issued, credit, and what is owed)."""
    plan_id: int | None = Field(default=None, foreign_key="plan.id")


class PortfolioDay(SQLModel, table=True):
    """The plans as they stood when a day (in the business's time zone) was over, kept once so that the
    chart and the summary read a day's figures instead of working them out again from millions of rows;
    never rewritten (a later payment does not change how a past day stood)."""

    __tablename__ = "portfolio_day"  # type: ignore[assignment]

    day: date = Field(primary_key=True)
    ended_at: datetime = _when()
    active: int
    paid_off: int
    repossessed: int
    left: Decimal = Field(sa_type=Money)
    """Left to pay on the active plans."""
    at_risk: Decimal = Field(sa_type=Money)
    """Left to pay on the active plans more than 30 days past due."""
    due_next: Decimal = Field(sa_type=Money)
    """The prices per day of the active plans: what falls due the next day."""
    collected: Decimal = Field(sa_type=Money)
    """Money counted toward plans during the day, less what reversals took back during it."""
    made_at: datetime = _when()


class TelegramUpdate(SQLModel, table=True):
    """An update Telegram POSTed to the webhook, by its id: Telegram sends an update again when its POST was
    not answered in time, and a copy may reach another replica; the first to keep the id handles it."""

    __tablename__ = "telegram_update"  # type: ignore[assignment]

    update_id: int = Field(sa_type=BigInteger, primary_key=True, sa_column_kwargs={"autoincrement": False})
    received_at: datetime = _when(index=True)
    held_until: datetime = _when()
    """The process handling it has it until then (if it dies, a copy Telegram sends again is handled then)."""
    done_at: datetime | None = _when(default=None)
    """Handled: a copy from now on is answered at once and not handled."""


class ChatState(SQLModel, table=True):
    """What a person's chat holds between two updates — the dialogue they are in, what a button waits to
    confirm — kept here rather than in one process's memory, so that any replica (or the bot after a restart)
    takes the next update where the last one left off. ``data`` is JSON (:mod:`bot.chat_state`)."""

    __tablename__ = "chat_state"  # type: ignore[assignment]

    user_id: int = Field(sa_type=BigInteger, primary_key=True, sa_column_kwargs={"autoincrement": False})
    data: str = Field(sa_type=Text)
    updated_at: datetime = _when()


class SendPace(SQLModel, table=True):
    """When the next message may go, for the bot as a whole (``scope`` "bot") or to one chat ("chat:<id>"):
    the theoretical arrival time of a rate limit shared by every process on the ledger (bot.telegram_pace)."""

    __tablename__ = "send_pace"  # type: ignore[assignment]

    scope: str = Field(primary_key=True, max_length=40)
    tat: datetime = _when()


class ChatMenu(SQLModel, table=True):
    """What was last registered as a chat's command menu (and menu button), as a fingerprint: a start
    registers again only the chats whose menu changed (a new command, another language or role)."""

    __tablename__ = "chat_menu"  # type: ignore[assignment]

    chat_id: int = Field(sa_type=BigInteger, primary_key=True)
    fingerprint: str = Field(max_length=64)
    registered_at: datetime = _when()
