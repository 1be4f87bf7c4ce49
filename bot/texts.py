"""Every sentence a person reads, in one place.

Chat replies, command-line lines and error messages are built here so that wording stays
consistent and can be translated later without hunting through the code.
"""

from __future__ import annotations

from datetime import datetime as _datetime
from html import escape as esc
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from bot.erm.errors import (
    ErmAuthError,
    ErmError,
    ErmOutcomeUnknown,
    ErmRateLimited,
    ErmRefused,
    ErmUnavailable,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from bot.erm.models import CodeEvent
    from bot.erm.sandbox import ErmSandbox
    from storage.models import Person

# -- command line -----------------------------------------------------------------------------

CLI_USING_SANDBOX = "No ERM_USERNAME/ERM_PASSWORD set: using the embedded ERM sandbox (codes are not real)."
CLI_NO_TOKEN = "TELEGRAM_BOT_TOKEN is not set: get a token from @BotFather and put it in the environment or .env."
CLI_TOKEN_REFUSED = "Telegram refused TELEGRAM_BOT_TOKEN: check it with @BotFather."


def cli_telegram_unreachable(base_url: str, reason: str) -> str:
    return f"Telegram could not be reached at {base_url} ({reason}). Check the network or TELEGRAM_BASE_URL."


def cli_logged_in(username: str, base_url: str, role: str | None) -> str:
    return f"Logged in to {base_url} as {username}" + (f" (role {role})." if role else ".")


def cli_code_detail(device: str, what: str, hex_code: str, count: int | None) -> str:
    count_text = f", ERM count {count}" if count is not None else ""
    return f"device {device}: {what}, hash {hex_code}{count_text}"


def cli_history_header(device: str, total: int, offset: int, shown: int) -> str:
    if not total:
        return f"No codes committed for {device} yet."
    return f"Codes of {device}, newest first ({offset + 1}-{offset + shown} of {total}):"


def cli_history_line(event: CodeEvent) -> str:
    days = {"FREECODE": "free", "RESETCODE": "reset"}.get(event.code_type, f"{event.code_days} days")
    when = event.created_at.strftime("%Y-%m-%d %H:%M UTC")
    return f"#{event.code_number:<4} {when}  {event.code_type:<9} {days:<9} {event.code_dec_string}"


def cli_sandbox_serving(host: str, port: int, sandbox: ErmSandbox) -> str:
    return (
        f"ERM sandbox on http://{host}:{port} - log in as test@example.com / test1234; "
        f"{len(sandbox.devices)} devices, e.g. TEST2503000017. Ctrl-C stops it."
    )


def cli_erm_failure(exc: ErmError) -> str:
    """One line for a failed ERM call, with the ERM's own words where it gave some."""
    if isinstance(exc, ErmAuthError):
        return f"ERM login failed: {exc.message}. Check ERM_USERNAME and ERM_PASSWORD."
    if isinstance(exc, ErmRateLimited):
        return f"the ERM says not now: {exc.message}"
    if isinstance(exc, ErmRefused):
        return f"the ERM refused: {exc.message}"
    if isinstance(exc, ErmUnavailable):
        return f"{exc.message}. Nothing was generated; try again later."
    if isinstance(exc, ErmOutcomeUnknown):
        return f"{exc.message}. A code may have been generated: check `paygbot erm history` before trying again."
    return exc.message


def cli_db_upgraded(revision: str | None) -> str:
    return f"The ledger is at schema revision {revision}."


def cli_user_added(person: Person) -> str:
    name = f" ({person.name})" if person.name else ""
    return f"{person.telegram_id}{name} is now {'a manager' if person.role == 'manager' else 'an agent'}."


def cli_user_list(people: Sequence[Person]) -> str:
    if not people:
        return "No managers or agents yet. Add one with: paygbot users add --telegram-id N --role manager"
    rows = [f"{'telegram id':<14} {'role':<8} {'active':<7} name"]
    rows += [f"{p.telegram_id:<14} {p.role:<8} {'yes' if p.active else 'no':<7} {p.name}" for p in people]
    return "\n".join(rows)


def cli_database_failure(exc: Exception) -> str:
    """A database or file problem in one line, without the SQL or the URL (it may hold a password)."""
    reason = getattr(exc, "orig", None) or exc
    text = str(reason).splitlines()[0] if str(reason) else type(reason).__name__
    return f"the ledger could not be used: {text}. Check DATABASE_URL."


# == the chat ====================================================================================
# Replies are HTML (Defaults(parse_mode=HTML)): anything a person typed goes through esc().

SANDBOX_NOTE = "<i>ⓘ ERM sandbox: these are test codes, not real ones.</i>"
SOMETHING_WENT_WRONG = "Sorry, something went wrong on our side. Please try again in a minute."
UNKNOWN_COMMAND = "I don't know that command. Send /help to see what you can do."
NOT_UNDERSTOOD = "I did not understand that. Send /help to see what you can do."
NOTHING_TO_CANCEL = "There is nothing to cancel."
CANCELLED = "Cancelled. Nothing was issued or changed."
TIMED_OUT = "No answer for 5 minutes, so I stopped. Nothing was issued or changed. Start again when ready."
MANAGERS_ONLY = "That command is for managers."
STAFF_ONLY = "That command is for agents and managers. Send /help to see what you can do."

STRANGER = (
    "Hello! This bot issues unlock codes for pay-as-you-go solar devices.\n\n"
    "You are not registered yet.\n"
    "• Field agents and managers: open the invite link your manager sent you.\n"
    "• Device owners: open the link your agent gave you, or tap <b>Share my phone number</b> below "
    "if your agent registered your number."
)
STRANGER_REFUSED = (
    "Sorry, you are not registered. Open the invite link you were given, or ask your manager or agent for one. "
    "Send /help for more."
)
SHARE_MY_NUMBER = "Share my phone number"

HELP_AGENT = (
    "<b>What you can do</b>\n"
    "/days <i>device days</i> — a days code (or just /days to choose)\n"
    "/device <i>device</i> — customer, credit, today's codes, last codes\n"
    "/history <i>device</i> — the ERM's code history\n"
    "/customer <i>device phone name</i> — register a customer and get their invite link\n"
    "/cancel — stop what you started\n\n"
    "A device is its ERM id, OEM item id or seller item id."
)
HELP_MANAGER_EXTRA = (
    "\n\n<b>Managers</b>\n"
    "/invite agent — or /invite manager: a one-time invite link\n"
    "/price <i>device amount</i> [<i>currency</i>] — the daily price that turns payments into days"
)
HELP_CUSTOMER = (
    "<b>What you can do</b>\n"
    "/balance — days left on your devices\n"
    "/code — your last code again\n\n"
    "Your codes arrive here as soon as they are issued."
)

USAGE = {
    "days": "Usage: /days <i>device days</i> — for example /days TEST2503000017 30. Days: 1 to 1095.",
    "device": "Usage: /device <i>device</i> — for example /device TEST2503000017",
    "history": "Usage: /history <i>device</i> — for example /history TEST2503000017",
    "customer": "Usage: /customer <i>device phone name</i> — for example /customer TEST2503000017 0712345678 Jane Wanjiru",
    "invite": "Usage: /invite agent — or /invite manager",
    "price": "Usage: /price <i>device price-per-day</i> [<i>currency</i>] — for example /price TEST2503000017 50 KES",
}

ASK_DEVICE = "Which device? Tap one or type its id."
ASK_DAYS = "How many days for <b>{device}</b>?"
ASK_OTHER_DAYS = "Type the number of days (1 to 1095)."
ASK_PHONE = ("The customer's phone number? Type it, or attach their contact "
             "(📎 → Contact).")
ASK_NAME = "The customer's name?"
OTHER = "Other"
CONFIRM = "Yes, go ahead"
CANCEL = "Cancel"
NEWER = "◀ Newer"
OLDER = "Older ▶"
BAD_DAYS = "Days must be a whole number from 1 to 1095."
BAD_PHONE = "That does not look like a phone number. Type it with digits, for example 0712345678."
BAD_NAME = "Please type a name of 1 to 100 characters."
BAD_DEVICE = "A device id is 1 to 64 letters, digits, '-', '_', '.' or ':'. Please check it."
STALE_BUTTON = "That button is no longer active."
BAD_PRICE = "The price must be a positive amount, like 50 or 49.50, and the currency three letters, like KES."


def date(when: _datetime, tz: ZoneInfo) -> str:
    """A date as people read it, in the configured zone."""
    return when.astimezone(tz).strftime("%d %b %Y")


def moment(when: _datetime, tz: ZoneInfo) -> str:
    return when.astimezone(tz).strftime("%d %b %Y %H:%M")


def duration(seconds: float) -> str:
    seconds = max(1, round(seconds))
    if seconds < 90:
        return f"{seconds} s"
    if seconds < 5400:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


def with_sandbox_note(text: str, sandbox: bool) -> str:
    return f"{text}\n\n{SANDBOX_NOTE}" if sandbox else text


def usage(command: str) -> str:
    return USAGE[command]


def help_for(kind: str) -> str:
    if kind == "manager":
        return HELP_AGENT + HELP_MANAGER_EXTRA
    if kind == "agent":
        return HELP_AGENT
    if kind == "customer":
        return HELP_CUSTOMER
    return STRANGER


def welcome(kind: str, name: str) -> str:
    role = {"manager": "a manager", "agent": "an agent"}.get(kind)
    if role:
        return f"Welcome, {esc(name)}! You are {role}.\n\n" + help_for(kind)
    return f"Welcome, {esc(name)}! Your device codes will arrive here.\n\n" + HELP_CUSTOMER


def welcome_back(kind: str, name: str) -> str:
    return f"Hello {esc(name)}.\n\n" + help_for(kind)


def invite_problem(problem: str) -> str:
    return {
        "unknown": "That invite link is not valid. Ask for a new one.",
        "used": "That invite link has already been used. Ask for a new one.",
        "expired": "That invite link has expired (links last 24 hours). Ask for a new one.",
    }[problem]


def contact_not_own() -> str:
    return "Please share your own number with the button, not someone else's contact."


def contact_unknown() -> str:
    return ("That number is not on file. Ask your agent to register it with your device, "
            "or to send you your invite link.")


def code_issued(*, device: str, kind: str, days: int | None, code: str, credit_until: _datetime | None,
                tz: ZoneInfo) -> str:
    """The code as the ERM gave it, in monospace so a tap copies it."""
    what = {"days": f"{days} days", "free": "free code: unlocks for good", "reset": "reset code: 0 days, locked"}[kind]
    lines = [f"🔑 <b>{esc(device)}</b> — {what}", f"<code>{esc(code)}</code>"]
    if kind == "days" and credit_until is not None:
        lines.append(f"Credit until {date(credit_until, tz)}.")
    elif kind == "reset":
        lines.append("The device will be locked with 0 days.")
    lines.append("Type the code on the device keypad.")
    return "\n".join(lines)


def customer_code(*, device: str, kind: str, days: int | None, code: str, credit_until: _datetime | None,
                  tz: ZoneInfo) -> str:
    header = "Your new code has arrived."
    return header + "\n" + code_issued(device=device, kind=kind, days=days, code=code, credit_until=credit_until, tz=tz)


def queued(device: str, seconds: float) -> str:
    return (f"Queued for <b>{esc(device)}</b>: about {duration(seconds)} "
            "(the ERM allows one code every few seconds per device). The code will follow here.")


def on_its_way(device: str) -> str:
    return f"Asking the ERM for <b>{esc(device)}</b>… the code will follow here."


def refused(reason: str, device: str, *, fits: int | None = None, possible_at: _datetime | None = None,
            words: str | None = None, tz: ZoneInfo) -> str:
    """Why a request was refused and what is possible instead."""
    device = esc(device)
    if reason == "bad_days":
        return BAD_DAYS
    if reason == "bad_device":
        return BAD_DEVICE
    if reason == "unknown_device":
        return f"The ERM does not know device <b>{device}</b>" + (f": {esc(words)}" if words else ".") + \
            " Check the id on the device label."
    if reason == "daily_limit":
        when = moment(possible_at, tz) if possible_at else "tomorrow"
        return f"<b>{device}</b> has had all its codes for today. The next code can go out from {when}."
    if reason == "stacking":
        if fits:
            return (f"That would stack too much credit on <b>{device}</b>. "
                    f"At most {fits} days fit now: try /days {device} {fits}.")
        return f"<b>{device}</b> already has as much credit as allowed. No more days fit now."
    if reason == "erm_unavailable":
        return (f"The ERM is not answering, so <b>{device}</b> could not be checked. Nothing was issued; "
                "please try again in a few minutes.")
    if reason == "unlocked":
        return f"<b>{device}</b> is unlocked for good (free code); it needs no days."
    return f"The ERM refused the code for <b>{device}</b>: {esc(words or reason)}"


def failed(device: str, reason: str | None) -> str:
    return (f"No code could be issued for <b>{esc(device)}</b>: the ERM could not be reached for a day "
            f"({esc(reason or 'no answer')}). Please ask again.")


def confirm_days(device: str, days: int) -> str:
    return f"Issue a code of <b>{days} days</b> for <b>{esc(device)}</b>?"


def confirm_customer(device: str, phone: str, name: str) -> str:
    return f"Register <b>{esc(name)}</b>, phone {esc(phone)}, as the customer of <b>{esc(device)}</b>?"


def customer_registered(name: str, device: str, link: str) -> str:
    return (f"<b>{esc(name)}</b> is the customer of <b>{esc(device)}</b>.\n"
            f"Send them this link (or let them scan the QR code): their codes will reach them in Telegram.\n"
            f"{esc(link)}\nThe link works once and lasts 24 hours.")


def invite_created(role: str, link: str) -> str:
    article = "an agent" if role == "agent" else "a manager"
    return (f"Invite link for {article} (works once, lasts 24 hours):\n{esc(link)}\n"
            "Send it to them, or let them scan the QR code.")


def device_view(status: object, tz: ZoneInfo, now: _datetime) -> str:
    """/device: customer, price, credit, today's codes, next possible code, last codes."""
    from bot.issuing import DeviceStatus

    assert isinstance(status, DeviceStatus)
    device = status.device
    lines = [f"<b>{esc(device.label)}</b>"]
    others = [alias for alias in status.aliases if alias != device.label]
    if others:
        lines.append("Also known as: " + ", ".join(esc(alias) for alias in others))
    if status.customer is not None:
        linked = "in Telegram" if status.customer.chat_id else "not yet in Telegram"
        lines.append(f"Customer: {esc(status.customer.name)}, {esc(status.customer.phone)} ({linked})")
    else:
        lines.append("Customer: none registered (use /customer)")
    price = f"{device.daily_price} {esc(device.currency or '')}".strip() if device.daily_price is not None else "not set"
    lines.append(f"Daily price: {price}")
    if device.unlocked:
        lines.append("Credit: unlocked for good")
    elif device.credit_until is not None and status.days_left:
        lines.append(f"Credit until {date(device.credit_until, tz)} ({status.days_left} days left)")
    else:
        lines.append("Credit: none (locked)")
    lines.append(f"Codes today: {status.codes_today} of {status.daily_limit}")
    if status.queued:
        lines.append(f"Waiting in the queue: {status.queued}")
    nxt = "now" if status.next_code_at <= now else moment(status.next_code_at, tz)
    lines.append(f"Next code can go out: {nxt}")
    if status.last_codes:
        lines.append("Last codes:")
        for request in status.last_codes:
            what = f"{request.days} days" if request.kind == "days" else request.kind
            when = moment(request.issued_at, tz) if request.issued_at else ""
            lines.append(f"• {when}, {what}: <code>{esc(request.code or '')}</code>")
    return "\n".join(lines)


def history_page(device: str, events: list, count: int, offset: int, tz: ZoneInfo) -> str:  # type: ignore[type-arg]
    if not count:
        return f"The ERM has no codes for <b>{esc(device)}</b> yet."
    lines = [f"<b>{esc(device)}</b>: codes {offset + 1}–{offset + len(events)} of {count}, newest first"]
    for event in events:
        what = {"FREECODE": "free", "RESETCODE": "reset"}.get(event.code_type, f"{event.code_days} days")
        lines.append(f"#{event.code_number} {moment(event.created_at, tz)} — {what}\n<code>{esc(event.code_dec_string)}</code>")
    return "\n".join(lines)


def erm_unavailable() -> str:
    return "The ERM is not answering right now. Please try again in a few minutes."


def balance(devices: list[tuple[str, _datetime | None, bool, int]], tz: ZoneInfo) -> str:
    if not devices:
        return "No device is registered to you yet. Ask your agent."
    lines = ["<b>Your devices</b>"]
    for ref, credit_until, unlocked, left in devices:
        if unlocked:
            lines.append(f"• {esc(ref)}: unlocked for good")
        elif credit_until is not None and left:
            lines.append(f"• {esc(ref)}: {left} days left, until {date(credit_until, tz)}")
        else:
            lines.append(f"• {esc(ref)}: no credit — pay to get a code")
    return "\n".join(lines)


def no_code_yet() -> str:
    return "No code has been issued for your devices yet."


def last_code(device: str, code: str, issued_at: _datetime, kind: str, days: int | None, tz: ZoneInfo) -> str:
    what = f"{days} days" if kind == "days" else kind
    return f"Last code for <b>{esc(device)}</b> ({what}, {moment(issued_at, tz)}):\n<code>{esc(code)}</code>"


def reminder(device: str, credit_until: _datetime, days_left: int, tz: ZoneInfo) -> str:
    when = "tomorrow" if days_left <= 1 else f"in {days_left} days"
    return (f"⏰ The credit of <b>{esc(device)}</b> ends {when} ({date(credit_until, tz)}). "
            "Pay to keep it running; your code will arrive here.")


def price_set(device: str, amount: object, currency: str | None) -> str:
    return (f"The daily price of <b>{esc(device)}</b> is now {amount} {esc(currency or '')}".rstrip()
            + ". Payments for it become days at this price.")
