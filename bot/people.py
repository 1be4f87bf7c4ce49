"""Who someone is to the bot (manager, agent, customer, stranger), invitations, and customers.

Roles are kept by numeric Telegram user id. Invitations are single-use tokens that expire;
redeeming one is a compare-and-set in the ledger, so a link used twice at once gives one role.
"""

from __future__ import annotations

import re
import secrets
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from bot import i18n, phones
from bot.clock import Clock
from storage import ledger
from storage.db import Database
from storage.models import Customer, Device, Invite, Person, Role

INVITE_LIFETIME = timedelta(hours=24)
CUSTOMER_ROLE = "customer"
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
_NAME = re.compile(r"^[^\x00-\x1f<>]{1,100}$")


class Kind(StrEnum):
    MANAGER = "manager"
    AGENT = "agent"
    CUSTOMER = "customer"
    STRANGER = "stranger"


@dataclass(frozen=True)
class Who:
    """What the bot knows of a Telegram user, looked up once per update."""

    kind: Kind
    person: Person | None = None
    customer: Customer | None = None

    @property
    def language(self) -> str | None:
        """The language kept in the ledger: chosen with /language, or Telegram's as last seen."""
        if self.person is not None:
            return self.person.language
        return self.customer.language if self.customer is not None else None

    @property
    def language_chosen(self) -> bool:
        row = self.person or self.customer
        return bool(row and row.language_chosen)

    def speaks(self, telegram_code: str | None, chosen_as_stranger: str | None = None) -> str:
        """The language to answer in: a choice made with /language, else what their Telegram app says,
        else what was kept, else English."""
        if self.language_chosen:
            return i18n.pick(self.language)
        if chosen_as_stranger:
            return i18n.pick(chosen_as_stranger)
        return i18n.pick(telegram_code or self.language)

    @property
    def is_staff(self) -> bool:
        """Managers can do all an agent can."""
        return self.kind in (Kind.MANAGER, Kind.AGENT)


class InviteProblem(StrEnum):
    UNKNOWN = "unknown"
    USED = "used"
    EXPIRED = "expired"
    MANAGER = "manager"
    """A manager opened an agent invite: refused (it would take their role away), the invite kept."""


@dataclass(frozen=True)
class Joined:
    """An invite redeemed: the role given, or the customer linked."""

    role: str
    customer: Customer | None = None


@dataclass(frozen=True)
class LinkedElsewhere:
    """A shared number whose customer already gets their codes in another Telegram account: nothing
    was linked (only the agent's invite moves a chat); ``chat_id`` is that account's chat, to warn."""

    customer: Customer
    chat_id: int | None


def valid_name(text: str) -> str | None:
    name = " ".join(text.split())
    return name if _NAME.match(name) else None


_READ_AHEAD: ContextVar[tuple[int, Who] | None] = ContextVar("paygbot_who_read_ahead", default=None)
"""Who sent the update being handled, read with their chat state (each update is a task of its own, with its own
copy of this)."""


class People:
    """Roles, invitations and customers over the ledger."""

    def __init__(self, db: Database, clock: Clock, phone_region: str) -> None:
        self.db, self.clock, self.phone_region = db, clock, phone_region

    def phone(self, text: str) -> str | None:
        """A number as typed or sent, as the ledger keeps it (E.164); None if it is not one."""
        return phones.e164(text, self.phone_region)

    async def who(self, telegram_id: int) -> Who:
        """Who sent an update. The first ask of an update (the access gate's) takes what was read with the
        person's chat state at its start (:meth:`read_ahead`): one read transaction fewer per update; any
        later ask reads the ledger again (a role granted meanwhile shows)."""
        ahead = _READ_AHEAD.get()
        if ahead is not None:
            _READ_AHEAD.set(None)
            if ahead[0] == telegram_id:
                return ahead[1]
        async with self.db.read() as session:
            return await self._who_in(session, telegram_id)

    async def read_ahead(self, session: ledger.AsyncSession, telegram_id: int, person: Person | None) -> None:
        """Find who ``telegram_id`` is in ``session`` (the read that loads their chat state, and read their
        ``person`` row with it), for this update's first :meth:`who`."""
        _READ_AHEAD.set((telegram_id, await self._who_is(session, telegram_id, person)))

    @classmethod
    async def _who_in(cls, session: ledger.AsyncSession, telegram_id: int) -> Who:
        return await cls._who_is(session, telegram_id, await ledger.get_person(session=session, telegram_id=telegram_id))

    @staticmethod
    async def _who_is(session: ledger.AsyncSession, telegram_id: int, person: Person | None) -> Who:
        """Who ``telegram_id`` is, their ``person`` row (if any) read."""
        if person is not None and person.active:
            return Who(Kind(person.role.value), person=person)
        customer = await ledger.customer_by_user(session=session, telegram_user_id=telegram_id)
        if customer is not None:
            return Who(Kind.CUSTOMER, customer=customer)
        return Who(Kind.STRANGER)

    async def remember_name(self, person: Person, name: str) -> None:
        """People added by id alone (PAYGBOT_MANAGERS, ``paygbot users add``) get their Telegram name."""
        async with self.db.write() as session:
            await ledger.put_person(session=session, telegram_id=person.telegram_id, role=person.role, name=name,
                                    now=self.clock.now())
        person.name = name

    async def keep_language(self, who: Who, language: str, *, chosen: bool) -> None:
        """Keep ``language`` for a manager, agent or customer (strangers have no row to keep it in):
        ``chosen`` with /language, or seen in their Telegram app."""
        async with self.db.write() as session:
            if who.person is not None and who.person.id is not None:
                await ledger.set_person_language(session=session, person_id=who.person.id, language=language,
                                                 chosen=chosen)
                who.person.language, who.person.language_chosen = language, chosen
            elif who.customer is not None and who.customer.id is not None:
                await ledger.set_customer_language(session=session, customer_id=who.customer.id, language=language,
                                                   chosen=chosen)
                who.customer.language, who.customer.language_chosen = language, chosen

    async def ensure_managers(self, telegram_ids: list[int]) -> None:
        """``PAYGBOT_MANAGERS`` are managers at every start."""
        async with self.db.write() as session:
            await ledger.hold_people(session=session)
            for telegram_id in telegram_ids:
                person = await ledger.get_person(session=session, telegram_id=telegram_id)
                if person is None or person.role is not Role.MANAGER or not person.active:
                    await ledger.put_person(session=session, telegram_id=telegram_id, role=Role.MANAGER,
                                            name=None, now=self.clock.now())

    async def invite(self, role: str, created_by: Person | None, customer: Customer | None = None) -> Invite:
        """A single-use invitation, valid for 24 hours."""
        now = self.clock.now()
        async with self.db.write() as session:
            return await ledger.add_invite(session=session, invite=Invite(
                token=secrets.token_urlsafe(16), role=role, customer_id=customer.id if customer else None,
                created_by_id=created_by.id if created_by else None, created_at=now,
                expires_at=now + INVITE_LIFETIME,
            ))

    async def redeem(
        self, token: str, *, telegram_id: int, chat_id: int, name: str, language: str | None,
        language_chosen: bool = False,
    ) -> Joined | InviteProblem:
        """Give the invite's role to this user (or link the customer's chat), once."""
        if not _TOKEN.match(token):
            return InviteProblem.UNKNOWN
        now = self.clock.now()
        async with self.db.write() as session:
            invite = await ledger.invite_by_token(session=session, token=token)
            if invite is None:
                return InviteProblem.UNKNOWN
            if invite.used_at is not None:
                return InviteProblem.USED
            if invite.expires_at <= now:
                return InviteProblem.EXPIRED
            if invite.role == Role.AGENT.value:
                person = await ledger.get_person(session=session, telegram_id=telegram_id)
                if person is not None and person.active and person.role is Role.MANAGER:
                    return InviteProblem.MANAGER
            assert invite.id is not None
            if not await ledger.use_invite(session=session, invite_id=invite.id, telegram_id=telegram_id, now=now):
                return InviteProblem.USED
            if invite.role == CUSTOMER_ROLE:
                assert invite.customer_id is not None
                customer = await ledger.get_customer(session=session, customer_id=invite.customer_id)
                assert customer is not None
                await ledger.link_customer_chat(session=session, customer=customer, telegram_user_id=telegram_id,
                                                chat_id=chat_id, language=language, language_chosen=language_chosen)
                return Joined(CUSTOMER_ROLE, customer)
            await ledger.put_person(session=session, telegram_id=telegram_id, role=Role(invite.role), name=name,
                                    now=now, language=language, language_chosen=language_chosen)
            return Joined(invite.role)

    async def link_by_contact(
        self, *, phone: str, telegram_id: int, chat_id: int, language: str | None, language_chosen: bool = False,
    ) -> Customer | LinkedElsewhere | None:
        """A customer who shares their own number, when it is on file, is linked to this chat — unless
        that customer already has another Telegram account: a number can be recycled or mistyped by the
        agent, and the chat must not move without the agent's say (their invite link)."""
        number = self.phone(phone)
        if number is None:
            return None
        async with self.db.write() as session:
            customer = await ledger.customer_by_phone(session=session, phone=number)
            if customer is None:
                return None
            if customer.telegram_user_id is not None and customer.telegram_user_id != telegram_id:
                return LinkedElsewhere(customer, customer.chat_id)
            return await ledger.link_customer_chat(session=session, customer=customer, telegram_user_id=telegram_id,
                                                   chat_id=chat_id, language=language, language_chosen=language_chosen)

    async def chat_of_invited(self, token: str) -> int | None:
        """The chat a customer invite's customer gets their codes in now: told when the invite moves them."""
        if not _TOKEN.match(token):
            return None
        async with self.db.read() as session:
            invite = await ledger.invite_by_token(session=session, token=token)
            if invite is None or invite.role != CUSTOMER_ROLE or invite.customer_id is None:
                return None
            customer = await ledger.get_customer(session=session, customer_id=invite.customer_id)
        return customer.chat_id if customer is not None else None

    async def register_customer(
        self, *, device_id: int, phone: str, name: str, agent: Person | None
    ) -> tuple[Customer, Device]:
        """Register or update the device's customer."""
        async with self.db.write() as session:
            device = await ledger.lock_device(session=session, device_id=device_id)
            customer = await ledger.put_customer(session=session, device=device, phone=phone, name=name,
                                                 registered_by_id=agent.id if agent else None, now=self.clock.now())
            return customer, device

    async def staff(self) -> list[Person]:
        async with self.db.read() as session:
            return list(await ledger.active_people(session=session))

    async def customers_with_chat(self) -> list[Customer]:
        async with self.db.read() as session:
            return list(await ledger.linked_customers(session=session))

    async def menus(self) -> dict[int, str]:
        """The fingerprint of each chat's menu as last registered with Telegram."""
        async with self.db.read() as session:
            return await ledger.menu_fingerprints(session=session)

    async def keep_menu(self, chat_id: int, fingerprint: str) -> None:
        async with self.db.write() as session:
            await ledger.keep_menu_fingerprint(session=session, chat_id=chat_id, fingerprint=fingerprint,
                                               now=self.clock.now())

    async def recent_devices(self, person: Person) -> list[str]:
        assert person.id is not None
        async with self.db.read() as session:
            return await ledger.recent_devices(session=session, person_id=person.id)



async def reader_of(db: Database, chat_id: int) -> tuple[str, bool]:
    """The language to write to a chat in when its owner did not just speak to the bot, and whether
    they are a person whose role was taken away (one read for both)."""
    async with db.read() as session:
        return await reader_in(session, chat_id)


async def reader_in(session: ledger.AsyncSession, chat_id: int) -> tuple[str, bool]:
    """:func:`reader_of`, in a read the caller holds (with what else it reads)."""
    language, revoked = await ledger.reader_of_chat(session=session, chat_id=chat_id)
    return i18n.pick(language), revoked


class Team:
    """The managers' view of their people."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def revoke(self, telegram_id: int) -> Person | None:
        """Take the role away at once (the gate reads it on every update)."""
        async with self.db.write() as session:
            return await ledger.deactivate(session=session, telegram_id=telegram_id)

    async def with_codes(self, start: datetime, end: datetime) -> list[tuple[Person, int]]:
        async with self.db.read() as session:
            return await ledger.agents_with_codes(session=session, start=start, end=end)

    async def managers(self) -> list[Person]:
        async with self.db.read() as session:
            return list(await ledger.managers(session=session))

    async def move_customer(self, device_id: int, agent_telegram_id: int) -> tuple[Customer, Person] | str:
        """The device's customer is looked after by another agent from now on: (the customer, the agent), or why
        not (``no_customer``, ``not_staff``)."""
        async with self.db.write() as session:
            device = await ledger.get_device(session=session, device_id=device_id)
            if device is None or device.customer_id is None:
                return "no_customer"
            agent = await ledger.get_person(session=session, telegram_id=agent_telegram_id)
            if agent is None or not agent.active or agent.role not in (Role.AGENT, Role.MANAGER):
                return "not_staff"
            customer = await ledger.get_customer(session=session, customer_id=device.customer_id)
            assert customer is not None
            customer.registered_by_id = agent.id
            session.add(customer)
            return customer, agent

    async def names(self) -> dict[int | None, str]:
        """Everyone's name (or Telegram id) by person id, for lists per agent."""
        async with self.db.read() as session:
            return {person.id: person.name or str(person.telegram_id)
                    for person in await ledger.list_people(session=session)}
