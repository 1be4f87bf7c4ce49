"""The Omnimetic sandbox's state: the API clients and their tokens, the one Omnimetic account, its
utility service accounts (households) and their meters' figures, and the faults a test can inject.
:mod:`bot.standins.omnimetic.server` serves it over HTTP.

It follows ``004_0aabc865ae6a65f3.txt``: the document's account id, API client and utility service
account (John's, in Jaipur) are here as the document gives them, beside a few East African
households and one linked today that has no figures yet.
"""

from __future__ import annotations

import secrets
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from bot.clock import Clock, SystemClock
from bot.standins.faults import Failure, Failures
from bot.standins.omnimetic.data import Meter, hex24

MAX_RECORDED_CALLS = 100_000
"""How many requests the sandbox remembers for tests to inspect (a served sandbox runs for days)."""

ACCOUNT_ID = "61717f9aa817d400165cc85a"
"""The Omnimetic account (the document's): the access token's ``id``, the ``:accountId`` of every path."""
EXAMPLE_CLIENT = ("e4de5af2-37ab-45a9-88fd-8949b045bf92", "e4de5af2-37ab-45a9-88fd-8949b045bf92")
"""The document's API client: its example sends the same value as client id and as secret."""

DOC_ACCOUNT = "64d4a4ba8061ed001f6159cf"
"""The document's utility service account: John, in Jaipur, linked 2023-08-10."""
JANE_ACCOUNT = hex24("omnimetic-sandbox", "Jane Wanjiru")
"""Jane Wanjiru's household in Kiambu, linked two years before the sandbox's clock's now."""
EMPTY_ACCOUNT = hex24("omnimetic-sandbox", "Joseph Kamau")
"""Joseph Kamau's, linked at the sandbox's start ("today") and without a single figure yet."""

EAST_AFRICA = timedelta(hours=3)
INDIA = timedelta(hours=5, minutes=30)

# name, address, linked how many days before the clock's now
_HOUSEHOLDS: tuple[tuple[str, dict[str, str], int], ...] = (
    ("Peter Ochieng", {"street": "Nyalenda Road", "city": "Kisumu", "state": "Kisumu", "postalCode": "40100"}, 540),
    ("Amina Mushi", {"street": "Sokoine Road", "city": "Arusha", "state": "Arusha", "postalCode": "23101"}, 300),
    ("Grace Nakato", {"street": "Kampala Road", "city": "Mukono", "state": "Central", "postalCode": "256"}, 120),
    ("Baraka Mwakyusa", {"street": "Lupa Way", "city": "Mbeya", "state": "Mbeya", "postalCode": "53107"}, 45),
)
GENERATED_ACCOUNTS: tuple[str, ...] = tuple(hex24("omnimetic-sandbox", name) for name, _, _ in _HOUSEHOLDS)
"""Peter Ochieng (Kisumu), Amina Mushi (Arusha), Grace Nakato (Mukono), Baraka Mwakyusa (Mbeya)."""


class Call(NamedTuple):
    """A request the sandbox received (an access-token request's secret is recorded as ``***``)."""

    method: str
    path: str
    """The path under the API's root (``/access-token``, ``/accounts/…``), without any mount prefix."""
    query: str
    body: Any


@dataclass(frozen=True)
class Household:
    """A utility service account linked through OmniConnect, and its meter."""

    id: str
    external_id: str
    legal_names: tuple[str, ...]
    address: dict[str, str]
    linked_date: datetime
    meter: Meter = field(repr=False)
    utility_user_account: str
    """The ``utilityUserAccount._id`` of its data rows."""
    service_account: str
    """The ``serviceAccount._id`` of its data rows."""
    utility_company: str
    """The ``utilityCompany._id`` of its data rows."""


@dataclass
class _Token:
    account_id: str
    expires_at: datetime


class OmnimeticSandbox:
    """All the sandbox's state: API clients, tokens, households, and the faults to inject.

    Tokens and figures read ``clock``, so a test moves a :class:`bot.clock.ManualClock` instead of
    sleeping; the households linked "two years ago" or "today" are so by the clock at construction.
    """

    def __init__(self, clock: Clock | None = None, token_lifetime: timedelta = timedelta(hours=1),
                 latency: float = 0.0) -> None:
        self.clock: Clock = clock or SystemClock()
        self.token_lifetime = token_lifetime
        self.latency = latency
        """Seconds added before every answer."""
        self.calls: deque[Call] = deque(maxlen=MAX_RECORDED_CALLS)
        """Every request received, in order."""
        self.logins = 0
        """``POST /access-token`` requests received, whatever their outcome."""
        self.households: dict[str, Household] = {}
        self._clients: dict[str, str] = {}
        self._tokens: dict[str, _Token] = {}
        self._failures = Failures()

        self.add_client(*EXAMPLE_CLIENT)
        now = self.clock.now().astimezone(UTC)
        self.add_household(
            DOC_ACCOUNT, ["John"], {"street": "jaipur", "city": "jaipur", "state": "RJ", "postalCode": "201203"},
            datetime(2023, 8, 10, 8, 50, 2, 621000, tzinfo=UTC), utc_offset=INDIA,
            external_id="64d4a4ba8061ed001f6159ce",
            data_ids=("6500260c0fcc610013b84928", "6500260c0fcc610013b84929", "64a4167b4945ba8fb83f2b33"),
        )
        self.add_household(
            JANE_ACCOUNT, ["Jane Wanjiru"],
            {"street": "Kiambu Road", "city": "Nairobi", "state": "Kiambu", "postalCode": "00100"},
            _days_before(now, 730),
        )
        for (name, address, days), account_id in zip(_HOUSEHOLDS, GENERATED_ACCOUNTS, strict=True):
            self.add_household(account_id, [name], address, _days_before(now, days))
        self.add_household(
            EMPTY_ACCOUNT, ["Joseph Kamau"],
            {"street": "Kenyatta Avenue", "city": "Nakuru", "state": "Nakuru", "postalCode": "20100"},
            now.replace(microsecond=now.microsecond // 1000 * 1000), has_data=False,
        )

    # -- clients, tokens, households --------------------------------------------------------

    def add_client(self, client_id: str, secret: str) -> None:
        """Let API client ``client_id`` get tokens with ``secret``."""
        self._clients[client_id] = secret

    def log_in(self, client_id: str, secret: str) -> str | None:
        """A new token for the client, or ``None`` when the secret is not its own."""
        expected = self._clients.get(client_id)
        if expected is None or not secrets.compare_digest(expected.encode(), secret.encode()):
            return None
        token = secrets.token_urlsafe(32)
        self._tokens[token] = _Token(ACCOUNT_ID, self.clock.now() + self.token_lifetime)
        return token

    def account_for(self, token: str) -> str | None:
        """The Omnimetic account a token was issued for, or ``None`` when unknown or expired."""
        issued = self._tokens.get(token)
        if issued is None:
            return None
        if self.clock.now() >= issued.expires_at:
            del self._tokens[token]
            return None
        return issued.account_id

    def add_household(
        self,
        account_id: str | None,
        legal_names: Iterable[str],
        address: dict[str, str],
        linked_date: datetime,
        *,
        utc_offset: timedelta = EAST_AFRICA,
        has_data: bool = True,
        external_id: str | None = None,
        data_ids: tuple[str, str, str] | None = None,
    ) -> Household:
        """A utility service account linked at ``linked_date`` (id derived from the names if ``None``)
        whose meter has recorded every hour since (none at all if not ``has_data``)."""
        names = tuple(legal_names)
        account_id = account_id or hex24("omnimetic-sandbox", *names)
        if account_id in self.households:
            raise ValueError(f"two sandbox households would share the id {account_id}")
        user, service, company = data_ids or (hex24("user", account_id), hex24("service", account_id),
                                              hex24("utility", "east-africa"))
        household = Household(
            id=account_id,
            external_id=external_id or hex24("external", account_id),
            legal_names=names,
            address=dict(address),
            linked_date=linked_date.astimezone(UTC),
            meter=Meter(account_id, linked_date, utc_offset, has_data),
            utility_user_account=user,
            service_account=service,
            utility_company=company,
        )
        self.households[account_id] = household
        return household

    def household(self, account_id: str) -> Household | None:
        return self.households.get(account_id)

    # -- faults -----------------------------------------------------------------------------

    def fail_next(
        self,
        n: int = 1,
        status: int = 500,
        body: str | dict[str, Any] | list[Any] | None = None,
        paths: Iterable[str] | None = None,
    ) -> None:
        """The next ``n`` requests whose path (under the API's root: ``/access-token``,
        ``/accounts/…``) starts with one of ``paths`` (any, if ``None``) answer ``status``.

        ``body``: ``None`` → ``{"message": <reason phrase>}``; a ``str`` → sent as text/html (an
        HTML error page); a ``dict`` or ``list`` → sent as JSON (a 2xx with a wrong shape, say).
        """
        self._failures.add(n, status, body, paths)

    def expire_tokens(self) -> None:
        """Every token issued so far is refused from now on (401)."""
        self._tokens.clear()

    def clear_faults(self) -> None:
        """Drop the failures not yet used."""
        self._failures.clear()

    def take_failure(self, path: str) -> Failure | None:
        return self._failures.take(path)

    @property
    def pending_failures(self) -> int:
        return len(self._failures)


def _days_before(now: datetime, days: int) -> datetime:
    """A linking moment ``days`` before ``now`` (at a plausible, fixed-looking minute)."""
    return (now - timedelta(days=days, hours=2, minutes=13)).replace(second=41, microsecond=318000)
