"""Typed forms of Omnimetic's documented answers (``004_0aabc865ae6a65f3.txt``).

Field names follow the document (camelCase on the wire, snake_case here). Its energy figures are
named "InWatts" but are energy over the period, in watt-hours: :attr:`MonthUsage.energy_kwh` and
friends give kWh. Amounts are in cents of the account's currency.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")


class _Wire(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True, extra="ignore")


class AccessToken(_Wire):
    """``POST /access-token``: ``id`` is the ``:accountId`` of every other path."""

    id: str = Field(min_length=1)
    token: str = Field(min_length=1, repr=False)


class Address(_Wire):
    street: str | None = None
    city: str | None = None
    state: str | None = None
    postal_code: str | None = None

    def line(self) -> str:
        """The address on one line, the parts that are there."""
        return ", ".join(part for part in (self.street, self.city, self.state, self.postal_code) if part)


class ServiceAccount(_Wire):
    """``…/info``: a utility service account linked through OmniConnect."""

    id: str
    external_service_account_id: str | None = None
    address: Address | None = None
    linked_date: datetime | None = None
    legal_names: list[str] = Field(default_factory=list)


class MonthUsage(_Wire):
    """One row of ``…/historical-data?year=YYYY``: a month's energy (Wh) and what it cost (cents)."""

    month: str
    year: int
    on_peak_usage_in_watts: float = 0
    off_peak_usage_in_watts: float = 0
    energy_consumption_in_watts: float = 0
    amount_in_cents: int | float = 0

    @property
    def month_number(self) -> int:
        """1..12 from the English month name (``ValueError`` if it is not one)."""
        return MONTHS.index(self.month.strip().capitalize()) + 1

    @property
    def energy_kwh(self) -> float:
        return self.energy_consumption_in_watts / 1000

    @property
    def on_peak_kwh(self) -> float:
        return self.on_peak_usage_in_watts / 1000

    @property
    def off_peak_kwh(self) -> float:
        return self.off_peak_usage_in_watts / 1000

    @property
    def amount(self) -> Decimal:
        """The amount in the currency's units (cents / 100)."""
        return (Decimal(str(self.amount_in_cents)) / 100).quantize(Decimal("0.01"))


class HourUsage(_Wire):
    """One row of ``…/interval-data``: an hour's energy (kWh, as the document's example reads)."""

    date: datetime
    """The hour's start, in UTC."""
    hour: str
    on_peak_usage: float = 0
    off_peak_usage: float = 0
    total_usage: float = 0
