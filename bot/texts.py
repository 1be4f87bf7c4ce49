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


def cli_unexpected(exc: Exception) -> str:
    return f"something unexpected went wrong ({type(exc).__name__}). Run again with -v to see the details."


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

SANDBOX_NOTE_PLAIN = "ⓘ ERM sandbox: these are test codes, not real ones."
SANDBOX_NOTE = f"<i>{SANDBOX_NOTE_PLAIN}</i>"
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
    "/free <i>device</i> — a free code (unlocks for good; a manager approves)\n"
    "/reset <i>device</i> — a reset code (0 days, locked)\n"
    "/cancel — stop what you started\n\n"
    "A device is its ERM id, OEM item id or seller item id."
)
HELP_MANAGER_EXTRA = (
    "\n\n<b>Managers</b>\n"
    "/invite agent — or /invite manager: a one-time invite link\n"
    "/price <i>device amount</i> [<i>currency</i>] — the daily price that turns payments into days\n"
    "/summary [<i>YYYY-MM-DD</i>] — the day's figures and a chart\n"
    "/export [<i>from</i>] [<i>to</i>] — the ledger as a CSV spreadsheet\n"
    "/agents — the team; /revoke <i>telegram id</i> — take a role away"
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
        return HELP_AGENT + HELP_PAYMENTS_AGENT + HELP_MANAGER_EXTRA + HELP_PAYMENTS_MANAGER
    if kind == "agent":
        return HELP_AGENT + HELP_PAYMENTS_AGENT
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


# == managers: free codes, resets, the summary, exports, the team ================================

USAGE.update({
    "free": "Usage: /free <i>device</i> — for example /free TEST2503000017",
    "reset": "Usage: /reset <i>device</i> — for example /reset TEST2503000017",
    "summary": "Usage: /summary [<i>YYYY-MM-DD</i>] — for example /summary 2026-11-21",
    "export": "Usage: /export [<i>from</i>] [<i>to</i>] — dates as YYYY-MM-DD, for example /export 2026-11-01 2026-11-30",
    "revoke": "Usage: /revoke <i>telegram id</i> — the number /agents shows",
})
APPROVE = "Approve"
REJECT = "Reject"
CONFIRM_FREE = "Yes, ask for the free code"
CONFIRM_MY_FREE = "Yes, issue the free code"
CONFIRM_RESET = "Yes, reset it"
CONFIRMATION_EXPIRED = "That confirmation is more than a day old. Nothing was done; send the command again."
BAD_DATE = "That is not a date. Use YYYY-MM-DD, for example 2026-11-21."
DATES_REVERSED = "The first date is after the second one. Nothing was exported."
EXPORT_TOO_LONG = "At most 366 days can be exported at once. Nothing was exported."
CHART_LABELS = {"codes": "codes", "payments": "payments", "title": "Codes and payments, last 14 days"}


def free_preview(device: str, customer: str | None, from_agent: bool) -> str:
    owner = f"Customer: {esc(customer)}" if customer else "No customer registered"
    then = "A manager must approve it first." if from_agent else "Nothing is issued before you confirm."
    return (f"⚠️ A <b>free code</b> for <b>{esc(device)}</b> unlocks it <b>for good</b>: it never needs "
            f"credit again.\n{owner}\n{then}")


def reset_preview(device: str, days_left: int) -> str:
    return (f"⚠️ A <b>reset code</b> sets <b>{esc(device)}</b> to 0 days and locks it"
            + (f" (it has {days_left} days left now)." if days_left else ".") + "\nIssue it?")


def approval_sent(device: str) -> str:
    return f"Asked the managers to approve a free code for <b>{esc(device)}</b>. You will hear their answer here."


def approval_request(requester: str, device: str, customer: str | None) -> str:
    owner = f", customer {esc(customer)}" if customer else ", no customer registered"
    return (f"🔓 <b>{esc(requester)}</b> asks for a <b>free code</b> for <b>{esc(device)}</b>{owner}. "
            "It unlocks the device for good. Approve?")


def approval_decided(approved: bool, manager: str, device: str) -> str:
    if approved:
        return f"✅ Approved by {esc(manager)}: the free code for <b>{esc(device)}</b> is being issued."
    return f"❌ Rejected by {esc(manager)}: no free code for <b>{esc(device)}</b>."


def approval_requester_told(approved: bool, manager: str, device: str) -> str:
    if approved:
        return f"✅ {esc(manager)} approved the free code for <b>{esc(device)}</b>. It follows here."
    return f"❌ {esc(manager)} rejected the free code for <b>{esc(device)}</b>. Nothing was issued."


def approval_already(manager: str, status: str) -> str:
    return f"Already decided by {esc(manager)} ({status})."


def approval_expired(device: str) -> str:
    return (f"Your request for a free code for <b>{esc(device)}</b> expired: no manager decided within 24 hours. "
            "Nothing was issued.")


APPROVAL_TOO_LATE = "This request has expired (24 hours). Nothing was issued."


def summary_text(summary: object, tz: ZoneInfo, now: _datetime) -> str:
    """The day's summary for managers."""
    from bot.reports import Summary

    assert isinstance(summary, Summary)
    day = summary.day.strftime("%a %d %b %Y")
    kinds = summary.codes
    lines = [f"📊 <b>Summary for {day}</b> ({esc(str(tz))})"]
    total = sum(kinds.values())
    lines.append(f"Codes: {total} — days {kinds.get('days', 0)}, free {kinds.get('free', 0)}, "  # type: ignore[call-overload]
                 f"reset {kinds.get('reset', 0)}; {summary.days_issued} days issued")  # type: ignore[call-overload]
    if summary.payments:
        paid = "; ".join(f"{count} × {esc(currency or '?')} {amount:,.2f}"
                         for currency, (count, amount) in summary.payments.items())
        lines.append(f"Payments: {paid}")
    else:
        lines.append("Payments: none")
    if summary.unmatched_payments:
        lines.append(f"⚠️ Payments matching no device: {summary.unmatched_payments}")
    if summary.agents:
        lines.append("<b>Per agent</b>")
        for agent in summary.agents:
            cash = ", ".join(f"{esc(c or '?')} {a:,.2f}" for c, a in agent.cash.items())
            lines.append(f"• {esc(agent.name)}: {agent.codes} codes, {agent.days} days"
                         + (f"; cash {agent.cash_payments} ({cash})" if agent.cash_payments else ""))
    if summary.bad_total:
        lines.append(f"<b>Refused or failed: {summary.bad_total}</b>")
        for ref, status, reason in summary.bad[:10]:
            lines.append(f"• {esc(ref)}: {status} — {esc(reason or '')}")
        if summary.bad_total > 10:
            lines.append(f"… and {summary.bad_total - 10} more (see /export)")
    else:
        lines.append("Refused or failed: none")
    waiting = f"Queue: {summary.queued} waiting"
    if summary.oldest_queued is not None:
        waiting += f", oldest for {duration((now - summary.oldest_queued).total_seconds())}"
    lines.append(waiting)
    if summary.expiring:
        lines.append("<b>Credit ending in the next 3 days</b>")
        for device, customer in summary.expiring[:20]:
            who = f" ({esc(customer.name)}, {esc(customer.phone)})" if customer else ""
            assert device.credit_until is not None
            lines.append(f"• {esc(device.label)}{who}: {moment(device.credit_until, tz)}")
        if len(summary.expiring) > 20:
            lines.append(f"… and {len(summary.expiring) - 20} more")
    else:
        lines.append("Credit ending in the next 3 days: none")
    return "\n".join(lines)


def export_caption(first: str, last: str) -> str:
    span = first if first == last else f"{first} to {last}"
    return f"The ledger for {span}: one row per code request, then payments that made no code."


def agents_list(rows: list[tuple[str, int, str, int]]) -> str:
    if not rows:
        return "No agents yet. Invite one with /invite agent."
    lines = ["<b>The team</b> (codes today)"]
    lines += [f"• {esc(name)} — {role}, id <code>{telegram_id}</code>: {codes}" for name, telegram_id, role, codes in rows]
    return "\n".join(lines)


def revoked(name: str, telegram_id: int) -> str:
    return f"{esc(name)} ({telegram_id}) no longer has a role. Their next command will be refused."


def revoke_unknown(telegram_id: int) -> str:
    return f"Nobody with Telegram id {telegram_id} has a role. Nothing changed."


REVOKE_SELF = "You cannot revoke yourself. Ask another manager."


# == operations ==================================================================================

_BACKUP_REFUSED = {
    "not_sqlite": "paygbot db backup copies a SQLite ledger, and DATABASE_URL is not one: back up that "
                  "database with its own tools (pg_dump for PostgreSQL).",
    "no_ledger": "there is no ledger at {path}: check DATABASE_URL.",
    "no_folder": "the folder {path} does not exist: create it first, or choose another file.",
    "target_exists": "{path} already exists: choose another file, or add --force to replace it.",
    "not_a_file": "{path} is not a file: choose a file name for the copy.",
    "same_file": "{path} is the ledger itself: choose another file for the copy.",
    "failed": "the backup could not be written to {path}: {detail}. Nothing was changed.",
}


def cli_backup_refused(reason: str, path: object, detail: str = "") -> str:
    """Why ``paygbot db backup`` made no copy, in one line."""
    return _BACKUP_REFUSED[reason].format(path=path, detail=detail)


def file_size(size: int) -> str:
    value = float(size)
    for unit in ("bytes", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{size} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} bytes"


def cli_backup_done(source: object, target: object, size: int, revision: str | None) -> str:
    schema = f"schema revision {revision}" if revision else "no schema revision (an empty ledger)"
    return f"Copied the ledger {source} to {target}: {file_size(size)}, {schema}."


# == payments: the webhook, M-Pesa, cash (/pay), pasted confirmations, /assign ====================

USAGE.update({
    "pay": "Usage: /pay <i>device amount</i> [<i>reference</i>] — for example /pay TEST2503000017 250. "
           "Without a reference one is made up.",
    "assign": "Usage: /assign <i>reference device</i> — for example /assign QK71ABC123 TEST2503000017",
})
BAD_AMOUNT = "The amount must be a positive number, like 250 or 249.50."
BAD_REFERENCE = "A reference is 1 to 64 letters, digits, '.', '-', '_' or '/'."
CASH_NOT_RECORDED = "The payment was <b>not</b> recorded. Check the device id and send /pay again."
RECORD_PAYMENT = "Record this payment"
CONFIRMATION_DROPPED = "Not recorded. Nothing changed."
CONFIRMATION_FROM_CUSTOMER = (
    "Thank you! Payments are recorded by your agent or arrive by themselves from M-Pesa: "
    "your code will come here as soon as the payment reaches us. Send /balance to see your credit."
)
HELP_PAYMENTS_AGENT = (
    "\n\n<b>Payments</b>\n"
    "/pay <i>device amount</i> [<i>reference</i>] — record cash: the code goes to you and the customer\n"
    "Paste or forward an M-Pesa confirmation message to record it."
)
HELP_PAYMENTS_MANAGER = "\n/assign <i>reference device</i> — turn a payment kept for review into days"

_KEPT_REASONS = {
    "unknown_account": "{account} matches no device and no customer's phone",
    "several_devices": "the customer with phone {account} has several devices",
    "no_price": "{device} has no daily price yet",
    "currency": "it is in another currency than {device}'s daily price",
    "unlocked": "{device} is unlocked for good (free code) and needs no days",
    "erm_unavailable": "the ERM could not be reached to check {account} (still trying)",
}


def money(amount: object, currency: str | None) -> str:
    """``KES 1,250.00`` (or ``1,250.00`` when the currency is not known)."""
    try:
        shown = f"{amount:,.2f}"
    except (TypeError, ValueError):
        shown = str(amount)
    return f"{esc(currency)} {shown}" if currency else shown


def _kept_reason(reason: str, account: str, device: str | None) -> str:
    template = _KEPT_REASONS.get(reason, "it needs a manager's look")
    return template.format(account=f"<code>{esc(account)}</code>", device=f"<b>{esc(device or account)}</b>")


def _what_follows(*, device: str, days: int, prepaid: int, credit_left: object, price: object, currency: str,
                  waits_until: _datetime | None, tz: ZoneInfo, customer: bool) -> list[str]:
    """The lines that say where a payment's days went: now, tomorrow, prepaid, kept as credit."""
    lines = []
    if days == 0:
        lines.append(f"That is less than one day at {money(price, currency)} a day, so no code yet: "
                     f"{money(credit_left, currency)} is kept as credit toward the next payment.")
        return lines
    now_days = days - prepaid
    if now_days:
        if waits_until is not None:
            lines.append(f"<b>{esc(device)}</b> has had all its codes for today: the code for {now_days} days "
                         f"goes out on {moment(waits_until, tz)}" + (" and the customer is told." if customer else "."))
        else:
            lines.append("The code follows here" + (" and goes to the customer." if customer else "."))
    if prepaid:
        lines.append(f"{prepaid} days do not fit under the credit limit now: they are kept as prepaid days "
                     "and issued when room opens.")
    if credit_left:
        lines.append(f"{money(credit_left, currency)} is kept as credit toward the next payment.")
    return lines


def payment_applied(*, reference: str, amount: object, currency: str, device: str, days: int, days_now: int,
                    prepaid: int, credit_left: object, price: object, waits_until: _datetime | None,
                    customer: bool, tz: ZoneInfo) -> str:
    """To whoever recorded or assigned a payment: what it became."""
    head = f"✅ Payment <b>{esc(reference)}</b> recorded: {money(amount, currency)} for <b>{esc(device)}</b>"
    head += f" = {days} days." if days else "."
    return "\n".join([head, *_what_follows(device=device, days=days, prepaid=prepaid, credit_left=credit_left,
                                           price=price, currency=currency, waits_until=waits_until, tz=tz,
                                           customer=customer)])


def payment_held(*, reference: str, amount: object, currency: str, device: str, reason: str,
                 device_currency: str | None, assigning: bool) -> str:
    why = _kept_reason(reason, device, device)
    if reason == "currency":
        why = (f"it is in {esc(currency or '?')} but <b>{esc(device)}</b> is priced in "
               f"{esc(device_currency or '?')}")
    then = (f"Set it right (for example /price {esc(device)} <i>price</i>), then /assign {esc(reference)} "
            f"{esc(device)} again." if assigning else
            "The managers were told; the days follow once a manager assigns it.")
    return (f"💰 Payment <b>{esc(reference)}</b> of {money(amount, currency)} is recorded, but it cannot become "
            f"days yet: {why}.\n{then}")


def payment_not_matched(*, reference: str, amount: object, currency: str, account: str, reason: str) -> str:
    return (f"💰 Payment <b>{esc(reference)}</b> of {money(amount, currency)} is recorded, but "
            f"{_kept_reason(reason, account, None)}. The managers were told and can assign it to a device.")


def payment_pending(*, reference: str, amount: object, currency: str, account: str) -> str:
    return (f"💰 Payment <b>{esc(reference)}</b> of {money(amount, currency)} is recorded. The ERM could not be "
            f"reached to check <b>{esc(account)}</b>; the days follow as soon as it answers. Nothing else to do.")


def payment_duplicate(reference: str, amount: object, currency: str, received_at: _datetime, status: str,
                      device: str | None, days: int, tz: ZoneInfo) -> str:
    """A reference seen before: nothing changed, and what became of it."""
    state = {
        "matched": f"it went to <b>{esc(device or '?')}</b> as {days} days",
        "unmatched": "it is kept for the managers to assign",
        "pending": "it waits for the ERM to answer",
    }.get(status, status)
    return (f"Payment <b>{esc(reference)}</b> ({money(amount, currency)}) was already recorded on "
            f"{moment(received_at, tz)}: {state}. Nothing changed.")


def payment_already_applied(reference: str, device: str, days: int) -> str:
    return f"Payment <b>{esc(reference)}</b> already went to <b>{esc(device)}</b> as {days} days. Nothing changed."


def no_such_payment(reference: str) -> str:
    return f"No payment has the reference <b>{esc(reference)}</b>. Check it in the managers' notice."


def assign_button(device: str) -> str:
    return f"Assign to {device}"


def payment_kept_notice(*, reference: str, amount: object, currency: str, account: str, payer: str | None,
                        phone: str | None, provider: str, reason: str, device: str | None) -> str:
    """To every manager: money that did not become days by itself, and how to assign it."""
    source = {"webhook": "payment webhook", "mpesa": "M-Pesa", "cash": "cash"}.get(provider, provider)
    lines = [f"⚠️ <b>Payment kept for review</b> ({esc(source)})",
             f"Reference: <code>{esc(reference)}</code>", f"Amount: {money(amount, currency)}",
             f"Account: <code>{esc(account or '—')}</code>"]
    if payer or phone:
        lines.append("From: " + ", ".join(esc(part) for part in (payer, phone) if part))
    lines.append(f"Why: {_kept_reason(reason, account or '—', device)}.")
    lines.append(f"Assign it: /assign {esc(reference)} <i>device</i>" + (" — or tap a device below." if device or
                                                                         reason == "several_devices" else ""))
    return "\n".join(lines)


def payment_received_notice(*, for_customer: bool, reference: str, amount: object, currency: str, device: str,
                            days: int, prepaid: int, credit_left: object, price: object,
                            waits_until: _datetime | None, tz: ZoneInfo) -> str:
    """To the customer (and their agent) when a payment's code does not go out at once."""
    head = (f"💰 Your payment of {money(amount, currency)} ({esc(reference)}) for <b>{esc(device)}</b> was received"
            if for_customer else
            f"💰 Payment {esc(reference)}: {money(amount, currency)} for <b>{esc(device)}</b> was received")
    head += f": {days} days." if days else "."
    follows = _what_follows(device=device, days=days, prepaid=prepaid, credit_left=credit_left, price=price,
                            currency=currency, waits_until=waits_until, tz=tz, customer=not for_customer)
    if for_customer:
        follows = [line.replace("The code follows here", "Your code follows here") for line in follows]
        if waits_until is not None and days - prepaid:
            follows = [f"<b>{esc(device)}</b> has had all its codes for today: your code for {days - prepaid} days "
                       f"comes here on {moment(waits_until, tz)}.", *follows[1:]]
    return "\n".join([head, *follows])


def paid_code(*, for_customer: bool, reference: str, amount: object, currency: str, device: str, kind: str,
              days: int | None, code: str, credit_until: _datetime | None, tz: ZoneInfo) -> str:
    """A payment's code, with the amount paid and the new credit-until."""
    head = (f"💰 Your payment of {money(amount, currency)} ({esc(reference)}) was received."
            if for_customer else f"💰 Payment {esc(reference)}: {money(amount, currency)}.")
    return head + "\n" + code_issued(device=device, kind=kind, days=days, code=code, credit_until=credit_until, tz=tz)


def confirmation_preview(*, reference: str, amount: object, currency: str, party: str, phone: str | None,
                         account: str, paid_at: _datetime | None, device: str | None, customer: str | None,
                         tz: ZoneInfo) -> str:
    """A pasted confirmation as it was read, before it is recorded."""
    lines = ["📩 <b>M-Pesa payment</b> — is this right?", f"Reference: <code>{esc(reference)}</code>",
             f"Amount: {money(amount, currency)}"]
    if party or phone:
        lines.append("From: " + ", ".join(esc(part) for part in (party, phone) if part))
    if paid_at is not None:
        lines.append(f"Paid: {moment(paid_at, tz)}")
    lines.append(f"Account: <code>{esc(account)}</code>")
    if device:
        lines.append(f"For: <b>{esc(device)}</b>" + (f" ({esc(customer)})" if customer else ""))
    else:
        lines.append("It matches no device I know yet: it is checked when recorded, and kept for the managers "
                     "if it still matches nothing.")
    return "\n".join(lines)


def confirmation_without_account(reference: str, amount: object) -> str:
    return (f"That M-Pesa message ({esc(reference)}, {money(amount, 'KES')}) names no account and no phone "
            f"number, so I cannot tell which device it is for. Record it with "
            f"/pay <i>device</i> {amount} {esc(reference)}.")
