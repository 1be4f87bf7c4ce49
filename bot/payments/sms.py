"""Mobile-money confirmation messages pasted or forwarded into the chat, read into a payment.

M-Pesa (Safaricom, Kenya) confirmations, as the business and as the payer receive them::

    QK71ABC123 Confirmed. Ksh250.00 received from JANE W 254700000001 on 22/11/26 at 10:15 AM New M-PESA balance is Ksh1,250.00.
    QK71ABC123 Confirmed.You have received Ksh1,250.00 from JANE WANJIRU 0712345678 on 22/11/26 at 10:15 AM ...
    QK71ABC123 Confirmed. Ksh250.00 sent to OMNIVOLTAIC for account TEST2503000017 on 22/11/26 at 10:15 AM ...
    QK71ABC123 Confirmed. Ksh250.00 paid to SOLAR SHOP. on 22/11/26 at 10:15 AM ...

A message is a confirmation only when it starts with a transaction code followed by "Confirmed",
names an amount in shillings, and says the money was received, sent or paid; anything else is
ordinary text (``parse`` returns ``None``). The first amount is the payment (later ones are
balances and costs). The account is the one the payer typed ("for account …", "Account Number …")
or, failing that, the payer's phone number, which matches a customer registered with it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from zoneinfo import ZoneInfo

MAX_AMOUNT = Decimal("10000000")
UTC_ZONE = ZoneInfo("UTC")
PROVIDER = "mpesa_pasted"
"""Not Daraja's ``mpesa``: a pasted message is an agent's word. With the same transaction code and amount it
is the same money as Daraja's confirmation, and whichever comes second makes no days (``bot.payments.storing``)."""

# The code in ASCII letters and digits, after no letter of any script: a look-alike letter (the Kelvin sign
# for K) must neither be read as that letter nor cut the code short, making another reference of it.
_HEAD = re.compile(r"(?<!\w)(?P<ref>(?-i:[A-Za-z0-9]{8,12}))\s+confirmed\b[\s.,:;!-]*", re.IGNORECASE)
_CODE = re.compile(r"(?=[A-Z0-9]*[A-Z])(?=[A-Z0-9]*[0-9])[A-Z0-9]{8,12}", re.IGNORECASE | re.ASCII)
# plain decimals in ASCII digits (\d would take other scripts' digits, which Decimal reads)
_AMOUNT = r"(?:ksh?s?|kes)\.?\s?(?P<amount>[0-9]{1,3}(?:,[0-9]{3})+(?:\.[0-9]{1,2})?|[0-9]{1,9}(?:\.[0-9]{1,2})?)\b"
_DIRECTION = re.compile(
    rf"^(?:you\s+have\s+)?(?:(?P<verb1>received)\s+{_AMOUNT}|{_AMOUNT.replace('amount', 'amount2')}\s+"
    rf"(?P<verb2>received|sent|paid))\s+(?:from|to)\s+(?P<rest>.*)$",
    re.IGNORECASE | re.DOTALL,
)
_WHEN = re.compile(
    r"\bon\s+(?P<d>\d{1,2})/(?P<m>\d{1,2})/(?P<y>\d{2}|\d{4})\s+at\s+(?P<h>\d{1,2}):(?P<min>\d{2})\s*(?P<ampm>[AP]\.?M\.?)?",
    re.IGNORECASE,
)
_ACCOUNT = re.compile(
    r"\b(?:for\s+)?(?:account\b|acc\b\.?|a/c\b)(?:\s*(?:number\b|no\b\.?|#))?\s*[:.]?\s*"
    r"(?P<account>[A-Za-z0-9][A-Za-z0-9._:-]{0,63})",
    re.IGNORECASE,
)
_PHONE = re.compile(r"(?P<phone>\+?\d[\d ]{6,16}\d)\s*\.?$")
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class Confirmation:
    """What a confirmation message says: the payment, as a webhook would have sent it."""

    reference: str
    amount: Decimal
    currency: str
    direction: str
    """``received`` (the business's copy), ``sent`` or ``paid`` (the payer's copy)."""
    party: str
    """Who paid (received) or was paid (sent, paid), as the message names them."""
    phone: str | None
    account: str | None
    """The account the payer typed, if the message has one."""
    paid_at: datetime | None

    @property
    def target(self) -> str | None:
        """What the payment is for: the account typed, else the payer's phone (a customer's number)."""
        return self.account or self.phone


def parse(text: str, tz: ZoneInfo) -> Confirmation | None:
    """The confirmation in ``text``, or ``None`` if it is not one. Times are read in ``tz``."""
    if len(text) > 2000:
        return None
    flat = _SPACES.sub(" ", text).strip()
    head = _HEAD.search(flat)
    if head is None:
        return None
    reference = head["ref"].upper()
    if not is_transaction_code(reference):
        return None
    moved = _DIRECTION.match(flat[head.end():])
    if moved is None:
        return None
    amount = _amount(moved["amount"] or moved["amount2"])
    if amount is None:
        return None
    direction = (moved["verb1"] or moved["verb2"]).lower()
    rest = moved["rest"]
    when = _WHEN.search(rest)
    before_when = rest[: when.start()] if when else rest.split(". ")[0]
    account = None
    found = _ACCOUNT.search(before_when)
    if found is not None:
        before_when = before_when[: found.start()]
    elif when is not None:
        found = _ACCOUNT.search(rest[when.end():])
    if found is not None and not _is_balance(found["account"]):
        account = found["account"].rstrip(".:-_")
    party = before_when.strip(" .,")
    phone = None
    number = _PHONE.search(party)
    if number is not None:
        digits = re.sub(r"\D", "", number["phone"])
        if 9 <= len(digits) <= 13:
            phone = digits
            party = party[: number.start()].strip(" .,")
    return Confirmation(
        reference=reference, amount=amount, currency="KES", direction=direction, party=party[:100],
        phone=phone, account=account, paid_at=_paid_at(when, tz) if when else None,
    )


def is_transaction_code(text: str) -> bool:
    """Whether ``text`` reads as an M-Pesa transaction code (8 to 12 letters and digits, with both), as a
    pasted confirmation's reference does: cash recorded by hand may not take such a reference."""
    return _CODE.fullmatch(text) is not None


def _amount(text: str) -> Decimal | None:
    try:
        amount = Decimal(text.replace(",", ""))
    except InvalidOperation:
        return None
    return amount if Decimal(0) < amount <= MAX_AMOUNT else None


def _is_balance(word: str) -> bool:
    return word.lower() in {"balance", "is", "number", "no"}


def _paid_at(when: re.Match[str], tz: ZoneInfo) -> datetime | None:
    year = int(when["y"])
    year += 2000 if year < 100 else 0
    hour = int(when["h"])
    ampm = (when["ampm"] or "").replace(".", "").upper()
    if ampm:
        if not 1 <= hour <= 12:
            return None
        hour = hour % 12 + (12 if ampm == "PM" else 0)
    try:
        local = datetime(year, int(when["m"]), int(when["d"]), hour, int(when["min"]), tzinfo=tz)
    except ValueError:
        return None
    return local.astimezone(UTC)
