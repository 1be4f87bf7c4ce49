"""Typed forms of the ERM's documented responses (``000_55d5b70670e08d64.txt``).

Field names follow the documents (camelCase on the wire, snake_case here). Every code that
arrives with both forms is checked: a keypad form that is not derived from the hex form is
refused with ``ValueError`` (the client turns it into :class:`ErmInvalidResponse`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

from bot.erm import codes


class _Wire(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)


class CodeType(StrEnum):
    """The kinds of code the ERM commits, as its history names them."""

    DAYS = "DAYSCODE"
    FREE = "FREECODE"
    RESET = "RESETCODE"


class Login(_Wire):
    """``POST /user/login``."""

    access_token: str = Field(repr=False, min_length=1)
    user_role: str | None = Field(default=None, alias="user_role")


class GeneratedCode(_Wire):
    """A code generation's answer; ``otp_hash``/``otp_count`` come with days codes only."""

    message: str = ""
    code: str
    otp_hash: str | None = None
    otp_count: int | None = None

    @field_validator("code")
    @classmethod
    def _keypad(cls, value: str) -> str:
        if not codes.is_keypad_code(value):
            raise ValueError("the code is not in the keypad format")
        return value

    @model_validator(mode="after")
    def _hash_matches(self) -> GeneratedCode:
        if self.otp_hash is not None and not codes.matches(self.otp_hash, self.code):
            raise ValueError("the code does not match its hash")
        return self

    @property
    def hex(self) -> str:
        """The hex form, from ``otpHash`` when given, else derived from the keypad form."""
        return (self.otp_hash or codes.keypad_to_hex(self.code)).upper()


class CodeEvent(_Wire):
    """One committed code in a device's history (``page.edges[].node``)."""

    id: str = Field(alias="_id")
    code_type: str
    code_days: int
    code_hex_string: str
    code_dec_string: str
    code_number: int
    created_at: datetime
    updated_at: datetime | None = None

    @field_validator("created_at", "updated_at")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        """A time the ERM sends without a zone is UTC (its examples end in ``Z``)."""
        return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value

    @model_validator(mode="after")
    def _forms_match(self) -> CodeEvent:
        if not codes.matches(self.code_hex_string, self.code_dec_string):
            raise ValueError(f"code {self.code_number}: the decimal form does not match the hex form")
        return self


class HistoryPage(BaseModel):
    """A page of a device's committed codes, newest first."""

    model_config = ConfigDict(frozen=True)

    events: list[CodeEvent]
    count: int
    offset: int
    limit: int
    has_next_page: bool

    @classmethod
    def from_wire(cls, body: dict[str, Any]) -> HistoryPage:
        """Read the documented ``{"page": {"edges": [...]}, "pageData": {...}}`` shape."""
        page, data = body["page"], body["pageData"]
        return cls(
            events=[CodeEvent.model_validate(edge["node"]) for edge in page["edges"]],
            count=data["count"],
            offset=data["offset"],
            limit=data["limit"],
            has_next_page=bool(page.get("pageInfo", {}).get("hasNextPage", False)),
        )


class HistoryColumn(BaseModel):
    model_config = ConfigDict(frozen=True)

    field: str = Field(alias="Field")
    type: str = Field(alias="Type")


class HistoryMetadata(_Wire):
    """``GET /oves/codeHistory_Metadata``."""

    table_name: str
    table_description: str = ""
    total_columns: int
    columns: list[HistoryColumn]


class AvatarAttribute(_Wire):
    prop: str
    value: str
    meta: str = ""


class Avatar(_Wire):
    """``GET /oves/avatarAttr/{itemId}``."""

    id: str = Field(alias="_id")
    cmd: list[AvatarAttribute]


class Item(BaseModel):
    """A device of the distributor as the ERM's item record shows it: REST's ``assignedItems`` (the
    legacy document does not show its shape) or GraphQL's ``getAllClientItems`` node.

    The ids we rely on, the description and the life cycle are read when present; everything else is
    kept as sent.
    """

    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)

    erm_id: str | None = Field(default=None, alias="_id")
    oem_item_id: str | None = Field(default=None, alias="oemItemID")
    seller_item_id: str | None = Field(default=None, alias="sellerItemID")
    product_item_id: int | str | None = Field(default=None, validation_alias=AliasChoices("productItemID",
                                                                                          "legacyItemId"))
    description: str | None = Field(default=None, validation_alias=AliasChoices("description", "name"))
    life_cycle: str | None = Field(default=None, alias="lifeCycle")

    @property
    def ids(self) -> list[str]:
        """Every id the item answers to, as text."""
        found = [self.erm_id, self.oem_item_id, self.seller_item_id, self.product_item_id]
        return list(dict.fromkeys(str(value) for value in found if value not in (None, "")))
