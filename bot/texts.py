"""Every sentence a person reads, in one place.

Chat sentences are methods of :class:`Texts`, one object per language (``for_language``): each
is marked for gettext (``self._`` and ``self.n_``) and formatted with Babel, so French and
Swahili come from ``bot/locale`` and dates, numbers and amounts read as the person expects.
The command line's own lines, for the engineer at the server, are in :mod:`bot.cli_texts`.
"""

from __future__ import annotations

import logging
from datetime import date as _date
from datetime import datetime as _datetime
from datetime import timedelta
from decimal import Decimal
from functools import cache, lru_cache
from html import escape as esc
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_skeleton, format_timedelta
from babel.numbers import format_currency, format_decimal, get_currency_precision

from bot import i18n
from bot.texts_dashboard import DashboardTexts
from bot.texts_plans import PlanTexts
from bot.texts_portfolio import PortfolioTexts

if TYPE_CHECKING:
    from bot.erm.models import CodeEvent
    from bot.issuing import PlanBalance
    from bot.plans.service import PlanView
    from bot.reports.figures import Summary

log = logging.getLogger("paygbot.texts")

# == the chat ====================================================================================
# Replies are HTML (Defaults(parse_mode=HTML)): anything a person typed goes through esc().
# A message's {placeholders} are filled after translation, so translators move them freely.


@cache
def for_language(language: str) -> Texts:
    """The sentences of one of :data:`bot.i18n.LANGUAGES` (anything else gets English)."""
    return Texts(language if language in i18n.LANGUAGES else i18n.DEFAULT)


def _plan_said(balance: PlanBalance | None) -> bool:
    """A payment that made no days because of its plan (its deposit, or paid off): the plan's lines say why."""
    return balance is not None and not balance.for_days


def _filled(translated: str, english: str, values: dict[str, Any]) -> str:
    """The translation with its placeholders filled; the English one if the translation's are broken
    (the catalogue tests catch that, but a person must never get an error instead of their code)."""
    try:
        return translated.format(**values)
    except (KeyError, IndexError, ValueError):
        log.error("a translation's placeholders do not match the English: %r", english)
        return english.format(**values)


@lru_cache(maxsize=4096)
def _medium_date(language: str, day: _date) -> str:
    """A date in ``language``'s medium form (remembered: every code's message has one, and babel takes a while)."""
    return format_date(day, "medium", locale=i18n.locale(language))


@lru_cache(maxsize=4096)
def _whole_number(language: str, n: int) -> str:
    """A count in ``language``'s digits and grouping (remembered, as :func:`_medium_date`)."""
    return format_decimal(n, locale=i18n.locale(language))


class Texts(PlanTexts, PortfolioTexts, DashboardTexts):
    """Every chat sentence in one language."""

    def __init__(self, language: str) -> None:
        self.language = language
        self.locale = i18n.locale(language)
        self._catalogue = i18n.translations(language)

    def _(self, message: str, **values: Any) -> str:
        """``message`` in this language, its placeholders filled."""
        return _filled(self._catalogue.gettext(message), message, values) if values else \
            self._catalogue.gettext(message)

    def n_(self, singular: str, plural: str, n: int, **values: Any) -> str:
        """A message that changes with a count ``{n}``."""
        english = singular if n == 1 else plural
        return _filled(self._catalogue.ngettext(singular, plural, n), english, {"n": self.number(n), **values})

    # -- formatting ---------------------------------------------------------------------------

    def date(self, when: _datetime | _date, tz: ZoneInfo | None = None) -> str:
        """A date as people read it: a moment's date in ``tz`` (a local moment's own date without one)."""
        if isinstance(when, _datetime):
            when = (when.astimezone(tz) if tz is not None else when).date()
        return _medium_date(self.language, when)

    def moment(self, when: _datetime, tz: ZoneInfo) -> str:
        local = when.astimezone(tz)
        return f"{self.date(local)} {format_skeleton('Hm', local, locale=self.locale)}"

    def weekday_date(self, day: _date) -> str:
        return format_skeleton("yMMMEd", day, locale=self.locale)

    def short_date(self, day: _date) -> str:
        """A chart's axis label: day and month."""
        return format_skeleton("MMMd", day, locale=self.locale)

    def duration(self, seconds: float) -> str:
        return format_timedelta(timedelta(seconds=max(1, round(seconds))), threshold=1.5, format="short",
                                locale=self.locale)

    def number(self, value: object) -> str:
        if type(value) is int:
            return _whole_number(self.language, value)
        try:
            return format_decimal(value, locale=self.locale)  # type: ignore[arg-type]
        except (TypeError, ValueError, ArithmeticError):
            return str(value)

    def money(self, amount: object, currency: str | None) -> str:
        """``KES 1,250.00`` in English, ``1 250,00 KES`` in French (or the number alone without a currency)."""
        try:
            if not currency:
                return format_decimal(amount, format="#,##0.00", locale=self.locale,  # type: ignore[arg-type]
                                      decimal_quantization=False)
            pattern = "¤¤ #,##0.00" if self.language == "en" else None  # the ISO code, as invoices write it
            value = Decimal(str(amount))
            # the currency's own decimals (none for XOF), unless that would round the amount: money is never misstated
            exact = value == round(value, get_currency_precision(currency.upper()))
            return esc(format_currency(value, currency.upper(), pattern, locale=self.locale,
                                       currency_digits=exact, decimal_quantization=exact))
        except (TypeError, ValueError, ArithmeticError):
            return esc(f"{currency or ''} {amount}".strip())

    def days(self, n: int) -> str:
        return self.n_("{n} day", "{n} days", n)

    def kind(self, kind: str, days: int | None = None) -> str:
        """What a code does, in a few words."""
        if kind == "free":
            return self._("free")
        if kind == "reset":
            return self._("reset")
        return self.days(days or 0)

    def status(self, status: str) -> str:
        return {
            "queued": self._("queued"), "sending": self._("sending"), "issued": self._("issued"),
            "delivered": self._("delivered"), "refused": self._("refused"), "failed": self._("failed"),
            "pending": self._("pending"), "approved": self._("approved"), "rejected": self._("rejected"),
            "expired": self._("expired"), "matched": self._("matched"), "unmatched": self._("unmatched"),
            "cancelled": self._("cancelled"),
        }.get(status, status)

    def reason(self, stored: str | None, tz: ZoneInfo | None = None, *, fits: int | None = None,
               until: _datetime | None = None) -> str:
        """A request's kept reason (the summary, the export, a failure): ours in words, the ERM's as it
        gave them. The engine keeps a refusal as one word in ``CodeRequest.reason`` and its details in
        ``refused_fits`` (stacking: the days that fitted) and ``refused_until`` (the daily limit: when the
        next code could go out), and why a request waits as one word (``bot.issuing.outcomes.WAIT_*``)."""
        if not stored:
            return ""
        if stored == "stacking" and fits:
            return self.n_("too much credit (at most {n} day fitted)", "too much credit (at most {n} days fitted)",
                           fits)
        if stored == "daily_limit" and until is not None:
            return self._("all the day's codes used; next from {when}", when=self.moment(until, tz or until.tzinfo))
        return {
            "daily_limit": self._("all the day's codes used"),
            "stacking": self._("too much credit"),
            "bad_days": self._("days out of range"),
            "bad_device": self._("not a device id"),
            "unknown_device": self._("unknown to the ERM"),
            "unlocked": self._("unlocked for good"),
            "paid_off": self._("its plan is paid off"),
            "reversed": self._("its payment was reversed"),
            "erm_unavailable": self._("the ERM did not answer"),
            "erm_login": self._("the ERM refused our login (check ERM_USERNAME and ERM_PASSWORD)"),
            "erm_not_yet": self._("the ERM said not yet"),
            "settling": self._("no answer from the ERM; checking its code history"),
            "resending": self._("no code was committed; sending again"),
            "unsettled": self._("the ERM has not said whether it made the code"),
            "too_late": self._("the ERM made nothing, and it was asked over a day ago: ask again if still needed"),
        }.get(stored, stored)

    def item(self, label: str, value: str) -> str:
        """One line of a list: ``• label: value`` (French puts a space before the colon)."""
        return self._("• {label}: {value}", label=label, value=value)

    # -- everyone -----------------------------------------------------------------------------

    @property
    def sandbox_note_plain(self) -> str:
        return self._("ⓘ ERM sandbox: these are test codes, not real ones.")

    def with_sandbox_note(self, text: str, sandbox: bool) -> str:
        return f"{text}\n\n<i>{self.sandbox_note_plain}</i>" if sandbox else text

    @property
    def something_went_wrong(self) -> str:
        return self._("Sorry, something went wrong on our side. Please try again in a minute.")

    @property
    def unknown_command(self) -> str:
        return self._("I don't know that command. Send /help to see what you can do.")

    @property
    def not_understood(self) -> str:
        return self._("I did not understand that. Send /help to see what you can do.")

    @property
    def nothing_to_cancel(self) -> str:
        return self._("There is nothing to cancel.")

    @property
    def cancelled(self) -> str:
        return self._("Cancelled. Nothing was issued or changed.")

    @property
    def timed_out(self) -> str:
        return self._("No answer for 5 minutes, so I stopped. Nothing was issued or changed. "
                      "Start again when ready.")

    @property
    def private_chats_only(self) -> str:
        return self._("I only work in private chats, so that codes and customers' details stay private. "
                      "Write to me directly.")

    @property
    def edit_not_carried_out(self) -> str:
        return self._("An edited command is not carried out (the first one was, if it was valid). "
                      "Send the command again as a new message.")

    @property
    def managers_only(self) -> str:
        return self._("That command is for managers.")

    @property
    def staff_only(self) -> str:
        return self._("That command is for agents and managers. Send /help to see what you can do.")

    @property
    def stranger(self) -> str:
        return self._(
            "Hello! This bot issues unlock codes for pay-as-you-go solar devices.\n\n"
            "You are not registered yet.\n"
            "• Field agents and managers: open the invite link your manager sent you.\n"
            "• Device owners: open the link your agent gave you, or tap <b>Share my phone number</b> below "
            "if your agent registered your number.")

    @property
    def stranger_refused(self) -> str:
        return self._("Sorry, you are not registered. Open the invite link you were given, or ask your manager "
                      "or agent for one. Send /help for more.")

    @property
    def share_my_number(self) -> str:
        return self._("Share my phone number")

    @property
    def choose_language(self) -> str:
        return self._("Which language should I use with you?")

    def language_set(self) -> str:
        return self._("From now on I will write to you in English.")

    def help_for(self, kind: str) -> str:
        if kind == "manager":
            return (self._help_agent() + self._help_find() + self._help_energy_staff() + self._help_payments_agent()
                    + self._help_manager() + self._help_payments_manager() + self._help_language())
        if kind == "agent":
            return (self._help_agent() + self._help_find() + self._help_energy_staff() + self._help_payments_agent()
                    + self._help_language())
        if kind == "customer":
            return self._help_customer() + self._help_energy_customer() + self._help_language()
        return self.stranger + self._help_language()

    def _help_agent(self) -> str:
        return self._(
            "<b>What you can do</b>\n"
            "/days <i>device days</i> — a days code (or just /days to choose)\n"
            "/device <i>device</i> — customer, credit, today's codes, last codes\n"
            "/history <i>device</i> — the ERM's code history\n"
            "/customer <i>device phone name</i> — register a customer and get their invite link\n"
            "/free <i>device</i> — a free code (unlocks for good; a manager approves)\n"
            "/reset <i>device</i> — a reset code (0 days, locked)\n"
            "/cancel — stop what you started\n\n"
            "A device is its ERM id, OEM item id or seller item id.")

    def _help_find(self) -> str:
        return "\n" + self._("/find <i>0017</i> — find a device by the last digits printed on it") + "\n" + self._(
            "/visits — your customers past due, most days first")

    def _help_energy_staff(self) -> str:
        return "\n" + self._("/meter <i>device account</i> — tie the customer's utility meter (Omnimetic); "
                             "/usage <i>device</i> — their energy use")

    def _help_energy_customer(self) -> str:
        return "\n" + self._("/usage — your energy use, this month and before")

    def _help_manager(self) -> str:
        return "\n\n" + (self._(
            "<b>Managers</b>\n"
            "/invite agent — or /invite manager: a one-time invite link\n"
            "/price <i>device amount</i> [<i>currency</i>] — the daily price that turns payments into days\n"
            "/summary [<i>YYYY-MM-DD</i>] — the day's figures and a chart\n"
            "/export [<i>from</i>] [<i>to</i>] — the ledger as a CSV spreadsheet; /export plans — the plans\n"
            "/agents — the team; /revoke <i>telegram id</i> — take a role away")
            + "\n\n" + self._(
            "<b>Payment plans</b>\n"
            "/plan <i>device total price-per-day currency</i> [<i>deposit</i>] — set or change a plan (or just "
            "/plan); /plan <i>device</i> shows it\n"
            "/reverse <i>reference</i> [<i>reason</i>] — a payment taken back by the provider\n"
            "/repossess <i>device</i> — end its plan; the device leaves its customer")
            + "\n" + self._("/portfolio — the plans' health: PAR30, days past due, collections") + "\n"
            + self._("/move <i>device telegram id</i> — give the device's customer to another agent"))

    def _help_customer(self) -> str:
        return self._(
            "<b>What you can do</b>\n"
            "/balance — days left on your devices, and what is left to pay\n"
            "/code — your last code again\n\n"
            "Your codes arrive here as soon as they are issued.")

    def _help_payments_agent(self) -> str:
        return "\n\n" + self._(
            "<b>Payments</b>\n"
            "/pay <i>device amount</i> [<i>reference</i>] — record cash: the code goes to you and the customer\n"
            "Paste or forward an M-Pesa confirmation message to record it.")

    def _help_payments_manager(self) -> str:
        return "\n" + self._("/assign <i>reference device</i> — turn a payment kept for review into days")

    def _help_language(self) -> str:
        return "\n\n" + self._("/language — English, Français or Kiswahili")

    def menu_line(self, command: str, role: str) -> str:
        """A command's line in the menu Telegram shows (see handlers.table): command names stay English
        (agents learn them), descriptions do not."""
        if command == "help" and role == "stranger":
            return self._("How to get access")
        return {
            "start": self._("Join with your invite link"),
            "help": self._("What you can do"),
            "language": self._("Choose your language"),
            "balance": self._("Days left on your devices"),
            "code": self._("Your last code again"),
            "days": self._("A days code: /days device days"),
            "free": self._("A free code (needs a manager's approval)"),
            "reset": self._("A reset code (0 days, locked)"),
            "device": self._("A device's credit and codes"),
            "history": self._("The ERM's code history"),
            "find": self._("Find a device by part of its id"),
            "meter": self._("Tie a customer's utility meter"),
            "usage": self._("Energy use"),
            "customer": self._("Register a customer"),
            "pay": self._("Record a cash payment"),
            "summary": self._("The day's summary and chart"),
            "export": self._("The ledger as a spreadsheet (CSV)"),
            "price": self._("Set a device's daily price"),
            "assign": self._("Assign a payment kept for review"),
            "agents": self._("The team"),
            "revoke": self._("Take a person's role away"),
            "plan": self._("Set or show a device's payment plan"),
            "portfolio": self._("The portfolio's health: PAR30, collections"),
            "visits": self._("Customers to visit: past due"),
            "move": self._("Give a customer to another agent"),
            "reverse": self._("Take back a reversed payment"),
            "repossess": self._("Repossess a device (end its plan)"),
            "invite": self._("Invite an agent or a manager"),
            "cancel": self._("Stop what you started"),
            "dashboard": self._("The dashboard: devices, payments, approvals"),
        }.get(command, command)

    def welcome(self, kind: str, name: str) -> str:
        if kind == "manager":
            return self._("Welcome, {name}! You are a manager.", name=esc(name)) + "\n\n" + self.help_for(kind)
        if kind == "agent":
            return self._("Welcome, {name}! You are an agent.", name=esc(name)) + "\n\n" + self.help_for(kind)
        return (self._("Welcome, {name}! Your device codes will arrive here.", name=esc(name)) + "\n\n"
                + self.help_for("customer"))

    def welcome_back(self, kind: str, name: str) -> str:
        return self._("Hello {name}.", name=esc(name)) + "\n\n" + self.help_for(kind)

    def invite_problem(self, problem: str) -> str:
        return {
            "unknown": self._("That invite link is not valid. Ask for a new one."),
            "used": self._("That invite link has already been used. Ask for a new one."),
            "expired": self._("That invite link has expired (links last 24 hours). Ask for a new one."),
            "manager": self._("You are a manager already: an agent invite would make you an agent. The link is "
                              "still valid: pass it to the agent it is for."),
        }[problem]

    def contact_not_own(self) -> str:
        return self._("Please share your own number with the button, not someone else's contact.")

    def contact_unknown(self) -> str:
        return self._("That number is not on file. Ask your agent to register it with your device, "
                      "or to send you your invite link.")

    def contact_linked_elsewhere(self) -> str:
        return self._("The customer with that number already gets their codes in another Telegram account, so "
                      "nothing changed. If the number is yours, ask your agent for a new invite link.")

    def someone_shared_your_number(self) -> str:
        return self._("⚠️ Someone in another Telegram account just shared your phone number to get your device "
                      "codes. Nothing changed: your codes still come here. If that was you, ask your agent for a "
                      "new invite link.")

    def codes_moved_elsewhere(self) -> str:
        return self._("Your device codes now go to another Telegram account: the invite link your agent made for "
                      "you was opened there. If that was not you, tell your agent at once.")

    # -- agents: asking, confirming, being told ---------------------------------------------

    def usage(self, command: str) -> str:
        return {
            "days": self._("Usage: /days <i>device days</i> — for example /days TEST2503000017 30. "
                           "Days: 1 to 1095."),
            "device": self._("Usage: /device <i>device</i> — for example /device TEST2503000017"),
            "history": self._("Usage: /history <i>device</i> — for example /history TEST2503000017"),
            "find": self._("Usage: /find <i>text</i> — part of a device's id or description, for example "
                           "/find 0017 for the last digits printed on it"),
            "customer": self._("Usage: /customer <i>device phone name</i> — for example "
                               "/customer TEST2503000017 0712345678 Jane Wanjiru"),
            "invite": self._("Usage: /invite agent — or /invite manager"),
            "price": self._("Usage: /price <i>device price-per-day</i> [<i>currency</i>] — for example "
                            "/price TEST2503000017 50 KES"),
            "free": self._("Usage: /free <i>device</i> — for example /free TEST2503000017"),
            "reset": self._("Usage: /reset <i>device</i> — for example /reset TEST2503000017"),
            "summary": self._("Usage: /summary [<i>YYYY-MM-DD</i>] — for example /summary 2026-11-21"),
            "export": self._("Usage: /export [<i>from</i>] [<i>to</i>] — dates as YYYY-MM-DD, for example "
                             "/export 2026-11-01 2026-11-30; /export plans for the payment plans, /export "
                             "portfolio for their days past due"),
            "revoke": self._("Usage: /revoke <i>telegram id</i> — the number /agents shows"),
            "plan": self._("Usage: /plan <i>device total price-per-day currency</i> [<i>deposit</i>] — for example "
                           "/plan TEST2503000017 30000 50 KES 3000; /plan <i>device</i> shows the plan; /plan alone "
                           "asks step by step"),
            "reverse": self._("Usage: /reverse <i>reference</i> [<i>reason</i>] — for example "
                              "/reverse QK71ABC123 chargeback"),
            "repossess": self._("Usage: /repossess <i>device</i> — for example /repossess TEST2503000017"),
            "move": self._("Usage: /move <i>device telegram-id</i> — the agent who looks after the device's customer "
                           "from now on, for example /move TEST2503000017 2002 (the number /agents shows)"),
            "pay": self._("Usage: /pay <i>device amount</i> [<i>reference</i>] — for example "
                          "/pay TEST2503000017 250. Without a reference one is made up."),
            "assign": self._("Usage: /assign <i>reference device</i> — for example "
                             "/assign QK71ABC123 TEST2503000017"),
            "language": self._("Usage: /language — or /language en, /language fr, /language sw"),
            "meter": self._("Usage: /meter <i>device account</i> — the customer's utility service account id, "
                            "for example /meter TEST2503000017 64d4a4ba8061ed001f6159cf; /meter <i>device</i> off "
                            "unties it"),
            "usage": self._("Usage: /usage <i>device</i> — for example /usage TEST2503000017; managers add "
                            "<i>xlsx</i> for Omnimetic's spreadsheet"),
        }[command]

    @property
    def ask_device(self) -> str:
        return self._("Which device? Tap one or type its id.")

    def ask_days(self, device: str) -> str:
        return self._("How many days for <b>{device}</b>?", device=esc(device))

    @property
    def ask_other_days(self) -> str:
        return self._("Type the number of days (1 to 1095).")

    @property
    def ask_phone(self) -> str:
        return self._("The customer's phone number? Type it, or attach their contact (📎 → Contact).")

    @property
    def ask_name(self) -> str:
        return self._("The customer's name?")

    @property
    def other(self) -> str:
        return self._("Other")

    @property
    def confirm(self) -> str:
        return self._("Yes, go ahead")

    @property
    def cancel(self) -> str:
        return self._("Cancel")

    @property
    def newer(self) -> str:
        return self._("◀ Newer")

    @property
    def older(self) -> str:
        return self._("Older ▶")

    @property
    def bad_days(self) -> str:
        return self._("Days must be a whole number from 1 to 1095.")

    @property
    def bad_phone(self) -> str:
        return self._("That does not look like a phone number. Type it with digits, for example 0712345678.")

    @property
    def bad_name(self) -> str:
        return self._("Please type a name of 1 to 100 characters.")

    @property
    def bad_device(self) -> str:
        return self._("A device id is 1 to 64 letters, digits, '-', '_', '.' or ':'. Please check it.")

    @property
    def stale_button(self) -> str:
        return self._("That button is no longer active.")

    @property
    def bad_price(self) -> str:
        return self._("The price must be a positive amount, like 50 or 49.50, and the currency three letters, "
                      "like KES.")

    def code_issued(self, *, device: str, kind: str, days: int | None, code: str, credit_until: _datetime | None,
                    tz: ZoneInfo) -> str:
        """The code as the ERM gave it, in monospace so a tap copies it."""
        what = {"days": self.days(days or 0), "free": self._("free code: unlocks for good"),
                "reset": self._("reset code: 0 days, locked")}[kind]
        lines = [f"🔑 <b>{esc(device)}</b> — {what}", f"<code>{esc(code)}</code>"]
        if kind == "days" and credit_until is not None:
            lines.append(self._("Credit until {date}.", date=self.date(credit_until, tz)))
        elif kind == "reset":
            lines.append(self._("The device will be locked with 0 days."))
        lines.append(self._("Type the code on the device keypad."))
        return "\n".join(lines)

    def customer_code(self, *, device: str, kind: str, days: int | None, code: str,
                      credit_until: _datetime | None, tz: ZoneInfo) -> str:
        return self._("Your new code has arrived.") + "\n" + self.code_issued(
            device=device, kind=kind, days=days, code=code, credit_until=credit_until, tz=tz)

    def queued(self, device: str, seconds: float) -> str:
        return self._("Queued for <b>{device}</b>: about {eta} (the ERM allows one code every few seconds per "
                      "device). The code will follow here.", device=esc(device), eta=self.duration(seconds))

    def on_its_way(self, device: str) -> str:
        return self._("Asking the ERM for <b>{device}</b>… the code will follow here.", device=esc(device))

    def refused(self, reason: str, device: str, *, fits: int | None = None, possible_at: _datetime | None = None,
                words: str | None = None, tz: ZoneInfo) -> str:
        """Why a request was refused and what is possible instead."""
        device = esc(device)
        if reason == "bad_days":
            return self.bad_days
        if reason == "bad_device":
            return self.bad_device
        if reason == "unknown_device":
            if words:
                return self._("The ERM does not know device <b>{device}</b>: {words}. Check the id on the device "
                              "label.", device=device, words=esc(words))
            return self._("The ERM does not know device <b>{device}</b>. Check the id on the device label.",
                          device=device)
        if reason == "daily_limit":
            if possible_at is None:
                return self._("<b>{device}</b> has had all its codes for today. The next code can go out "
                              "tomorrow.", device=device)
            return self._("<b>{device}</b> has had all its codes for today. The next code can go out from "
                          "{when}.", device=device, when=self.moment(possible_at, tz))
        if reason == "stacking":
            if fits:
                return self.n_("That would stack too much credit on <b>{device}</b>. At most {n} day fits now: "
                               "try /days {device} {days}.",
                               "That would stack too much credit on <b>{device}</b>. At most {n} days fit now: "
                               "try /days {device} {days}.", fits, device=device, days=fits)
            return self._("<b>{device}</b> already has as much credit as allowed. No more days fit now.",
                          device=device)
        if reason == "erm_unavailable":
            return self._("The ERM is not answering, so <b>{device}</b> could not be checked. Nothing was issued; "
                          "please try again in a few minutes.", device=device)
        if reason == "unlocked":
            return self._("<b>{device}</b> is unlocked for good (free code); it needs no days.", device=device)
        if reason == "paid_off":
            return self._("<b>{device}</b> is paid off: it is the customer's for good and needs no more days. Its "
                          "unlock code goes to the customer (see /device {device}).", device=device)
        return self._("The ERM refused the code for <b>{device}</b>: {words}", device=device,
                      words=esc(words or reason))

    def failed(self, device: str, reason: str | None) -> str:
        return self._("No code could be issued for <b>{device}</b>: the ERM could not be reached for a day "
                      "({reason}). Please ask again.", device=esc(device),
                      reason=esc(self.reason(reason)) if reason else self._("no answer"))

    def not_delivered(self, device: str, customer: str | None) -> str:
        """To whoever asked for a code or recorded a payment: Telegram refused a message about it."""
        if customer:
            return self._("⚠️ Telegram refused the message about <b>{device}</b> for the customer {name}, even as "
                          "plain text: it did not reach them. Please give them the code yourself (/device {device} "
                          "shows it).", device=esc(device), name=esc(customer))
        return self._("⚠️ Telegram refused the message about <b>{device}</b> for another chat, even as plain text: "
                      "it did not reach them. /device {device} shows the code.", device=esc(device))

    def unsettled(self, device: str, asked_at: _datetime, tz: ZoneInfo) -> str:
        return self._("⚠️ For a day the ERM has not said whether it made the code asked for <b>{device}</b> on "
                      "{when}; the device's other codes wait behind it. Do not ask again: the bot keeps asking the "
                      "ERM and says here how it ends.", device=esc(device), when=self.moment(asked_at, tz))

    def confirm_days(self, device: str, days: int) -> str:
        return self._("Issue a code of <b>{days}</b> for <b>{device}</b>?", days=self.days(days),
                      device=esc(device))

    def confirm_customer(self, device: str, phone: str, name: str) -> str:
        return self._("Register <b>{name}</b>, phone {phone}, as the customer of <b>{device}</b>?",
                      name=esc(name), phone=esc(phone), device=esc(device))

    def customer_registered(self, name: str, device: str, link: str) -> str:
        return self._("<b>{name}</b> is the customer of <b>{device}</b>.\n"
                      "Send them this link (or let them scan the QR code): their codes will reach them in "
                      "Telegram.\n{link}\nThe link works once and lasts 24 hours.",
                      name=esc(name), device=esc(device), link=esc(link))

    def invite_created(self, role: str, link: str) -> str:
        if role == "agent":
            return self._("Invite link for an agent (works once, lasts 24 hours):\n{link}\n"
                          "Send it to them, or let them scan the QR code.", link=esc(link))
        return self._("Invite link for a manager (works once, lasts 24 hours):\n{link}\n"
                      "Send it to them, or let them scan the QR code.", link=esc(link))

    def device_view(self, status: object, tz: ZoneInfo, now: _datetime, plan: PlanView | None = None) -> str:
        """/device: customer, price, credit, today's codes, next possible code, last codes."""
        from bot.issuing import DeviceStatus

        assert isinstance(status, DeviceStatus)
        device = status.device
        lines = [f"<b>{esc(device.label)}</b>"]
        if device.description:  # the ERM's words for it, from the device sync
            lines.append(f"<i>{esc(device.description)}</i>")
        others = [alias for alias in status.aliases if alias != device.label]
        if others:
            lines.append(self._("Also known as: {ids}", ids=", ".join(esc(alias) for alias in others)))
        if status.customer is None:
            lines.append(self._("Customer: none registered (use /customer)"))
        elif status.customer.chat_id:
            lines.append(self._("Customer: {name}, {phone} (in Telegram)", name=esc(status.customer.name),
                                phone=esc(status.customer.phone)))
        else:
            lines.append(self._("Customer: {name}, {phone} (not yet in Telegram)", name=esc(status.customer.name),
                                phone=esc(status.customer.phone)))
        if device.daily_price is None:
            lines.append(self._("Daily price: not set"))
        else:
            lines.append(self._("Daily price: {price}", price=self.money(device.daily_price, device.currency)))
        if plan is not None:
            lines.append(self._("Plan: total price {total} ({status})", total=self.money(plan.plan.total,
                                                                                      plan.plan.currency),
                                status=self.plan_status(plan.plan.status.value)))
            lines += ["  " + line for line in self.plan_lines(plan, tz)]
        elif device.owed:
            lines.append(self._("Owed from reversed payments: {owed} (the next payments pay it first)",
                                owed=self.money(device.owed, device.currency)))
        if device.unlocked:
            lines.append(self._("Credit: unlocked for good"))
        elif device.credit_until is not None and status.days_left:
            lines.append(self.n_("Credit until {date} ({n} day left)", "Credit until {date} ({n} days left)",
                                 status.days_left, date=self.date(device.credit_until, tz)))
        else:
            lines.append(self._("Credit: none (locked)"))
        lines.append(self._("Codes today: {count} of {limit}", count=status.codes_today, limit=status.daily_limit))
        if status.queued:
            lines.append(self._("Waiting in the queue: {count}", count=status.queued))
        if status.next_code_at <= now:
            lines.append(self._("Next code can go out: now"))
        else:
            lines.append(self._("Next code can go out: {when}", when=self.moment(status.next_code_at, tz)))
        if status.last_codes:
            lines.append(self._("Last codes:"))
            for request in status.last_codes:
                when = self.moment(request.issued_at, tz) if request.issued_at else ""
                lines.append(self.item(f"{when}, {self.kind(request.kind.value, request.days)}",
                                       f"<code>{esc(request.code or '')}</code>"))
        return "\n".join(lines)

    def history_page(self, device: str, events: list[CodeEvent], count: int, offset: int, tz: ZoneInfo) -> str:
        if not count:
            return self._("The ERM has no codes for <b>{device}</b> yet.", device=esc(device))
        lines = [self._("<b>{device}</b>: codes {first}–{last} of {count}, newest first", device=esc(device),
                        first=self.number(offset + 1), last=self.number(offset + len(events)), count=self.number(count))]
        for event in events:
            kind = {"FREECODE": "free", "RESETCODE": "reset"}.get(event.code_type, "days")
            lines.append(f"#{event.code_number} {self.moment(event.created_at, tz)} — "
                         f"{self.kind(kind, event.code_days)}\n<code>{esc(event.code_dec_string)}</code>")
        return "\n".join(lines)

    # /find: devices by part of an id or of their description
    def find_too_short(self, least: int) -> str:
        return self.n_("Type at least {n} character of the device's id or description — for example "
                       "/find 0017 for the last digits printed on it.",
                       "Type at least {n} characters of the device's id or description — for example "
                       "/find 0017 for the last digits printed on it.", least)

    def find_nothing(self, text: str) -> str:
        return self._("No device's id or description contains “{text}”. Check the digits on the device.\n"
                      "A new device appears here once the bot has learned it from the ERM (every few hours); "
                      "/device with its full id works at once.", text=esc(text))

    def find_found(self, text: str, total: int, shown: int) -> str:
        if total > shown:
            return self.n_("The first {shown} of {n} device matching “{text}” — type more digits to narrow it:",
                           "The first {shown} of {n} devices matching “{text}” — type more digits to narrow it:",
                           total, shown=self.number(shown), text=esc(text))
        return self.n_("{n} device matches “{text}” — tap it to open it:",
                       "{n} devices match “{text}” — tap one to open it:", total, text=esc(text))

    def find_button(self, text: str, label: str, alias: str | None, description: str | None) -> str:
        """A found device's button (plain text, not HTML): the id people know it by, the id that holds
        the text when that is another, and its description, short (without the id it repeats)."""
        shown = label
        if alias and alias != label and text.lower() not in label.lower():
            shown += f" ({alias})"
        if description:
            short = description.replace(label, "").strip(" -–—·,:") or description
            shown += " · " + (short if len(short) <= 32 else short[:31].rstrip() + "…")
        return shown

    def erm_unavailable(self) -> str:
        return self._("The ERM is not answering right now. Please try again in a few minutes.")

    # -- customers --------------------------------------------------------------------------

    def balance(self, devices: list[tuple[str, _datetime | None, bool, int]], tz: ZoneInfo,
                plans: dict[str, PlanView] | None = None) -> str:
        """/balance: days left of each device, and where each plan stands (``plans`` by device label)."""
        if not devices:
            return self._("No device is registered to you yet. Ask your agent.")
        lines = [self._("<b>Your devices</b>")]
        for ref, credit_until, unlocked, left in devices:
            plan = (plans or {}).get(ref)
            if plan is not None and plan.plan.status == "paid_off":
                lines.append(self.item(esc(ref), self._("🎉 paid off: it is yours")))
                lines += ["  " + line for line in self.plan_lines(plan, tz, for_customer=True)[:1]]
                continue
            if unlocked:
                lines.append(self.item(esc(ref), self._("unlocked for good")))
            elif credit_until is not None and left:
                lines.append(self.item(esc(ref), self.n_("{n} day left, until {date}", "{n} days left, until {date}",
                                                         left, date=self.date(credit_until, tz))))
            else:
                lines.append(self.item(esc(ref), self._("no credit — pay to get a code")))
            if plan is not None:
                lines += ["  " + line for line in self.plan_lines(plan, tz, for_customer=True)]
        return "\n".join(lines)

    def no_code_yet(self) -> str:
        return self._("No code has been issued for your devices yet.")

    def last_code(self, device: str, code: str, issued_at: _datetime, kind: str, days: int | None,
                  tz: ZoneInfo) -> str:
        return self._("Last code for <b>{device}</b> ({what}, {when}):", device=esc(device),
                      what=self.kind(kind, days), when=self.moment(issued_at, tz)) + f"\n<code>{esc(code)}</code>"

    def reminder(self, device: str, credit_until: _datetime, days_left: int, tz: ZoneInfo) -> str:
        if days_left <= 1:
            return self._("⏰ The credit of <b>{device}</b> ends tomorrow ({date}). Pay to keep it running; your "
                          "code will arrive here.", device=esc(device), date=self.date(credit_until, tz))
        return self.n_("⏰ The credit of <b>{device}</b> ends in {n} day ({date}). Pay to keep it running; your "
                       "code will arrive here.",
                       "⏰ The credit of <b>{device}</b> ends in {n} days ({date}). Pay to keep it running; your "
                       "code will arrive here.", days_left, device=esc(device), date=self.date(credit_until, tz))

    def price_set(self, device: str, amount: object, currency: str | None) -> str:
        return self._("The daily price of <b>{device}</b> is now {price}. Payments for it become days at this "
                      "price.", device=esc(device), price=self.money(amount, currency))

    # -- managers: free codes, resets, the summary, exports, the team -----------------------

    @property
    def approve(self) -> str:
        return self._("Approve")

    @property
    def reject(self) -> str:
        return self._("Reject")

    @property
    def confirm_free(self) -> str:
        return self._("Yes, ask for the free code")

    @property
    def confirm_my_free(self) -> str:
        return self._("Yes, issue the free code")

    @property
    def confirm_reset(self) -> str:
        return self._("Yes, reset it")

    @property
    def confirmation_expired(self) -> str:
        return self._("That confirmation is more than a day old. Nothing was done; send the command again.")

    @property
    def bad_date(self) -> str:
        return self._("That is not a date. Use YYYY-MM-DD, for example 2026-11-21.")

    @property
    def dates_reversed(self) -> str:
        return self._("The first date is after the second one. Nothing was exported.")

    @property
    def export_too_long(self) -> str:
        return self._("At most 366 days can be exported at once. Nothing was exported.")

    def chart_labels(self) -> dict[str, str]:
        return {"codes": self._("codes"), "payments": self._("payments"),
                "title": self._("Codes and payments, last 14 days")}

    def free_preview(self, device: str, customer: str | None, from_agent: bool) -> str:
        owner = (self._("Customer: {name}", name=esc(customer)) if customer
                 else self._("No customer registered"))
        then = (self._("A manager must approve it first.") if from_agent
                else self._("Nothing is issued before you confirm."))
        return self._("⚠️ A <b>free code</b> for <b>{device}</b> unlocks it <b>for good</b>: it never needs credit "
                      "again.", device=esc(device)) + f"\n{owner}\n{then}"

    def reset_preview(self, device: str, days_left: int) -> str:
        if days_left:
            head = self.n_("⚠️ A <b>reset code</b> sets <b>{device}</b> to 0 days and locks it (it has {n} day left "
                           "now).",
                           "⚠️ A <b>reset code</b> sets <b>{device}</b> to 0 days and locks it (it has {n} days "
                           "left now).", days_left, device=esc(device))
        else:
            head = self._("⚠️ A <b>reset code</b> sets <b>{device}</b> to 0 days and locks it.", device=esc(device))
        return head + "\n" + self._("Issue it?")

    def approval_sent(self, device: str) -> str:
        return self._("Asked the managers to approve a free code for <b>{device}</b>. You will hear their answer "
                      "here.", device=esc(device))

    def approval_request(self, requester: str, device: str, customer: str | None) -> str:
        if customer:
            return self._("🔓 <b>{requester}</b> asks for a <b>free code</b> for <b>{device}</b>, customer "
                          "{customer}. It unlocks the device for good. Approve?",
                          requester=esc(requester), device=esc(device), customer=esc(customer))
        return self._("🔓 <b>{requester}</b> asks for a <b>free code</b> for <b>{device}</b>, no customer "
                      "registered. It unlocks the device for good. Approve?",
                      requester=esc(requester), device=esc(device))

    def approval_decided(self, approved: bool, manager: str | None, device: str) -> str:
        if approved:
            return self._("✅ Approved by {manager}: the free code for <b>{device}</b> is being issued.",
                          manager=self._manager(manager), device=esc(device))
        return self._("❌ Rejected by {manager}: no free code for <b>{device}</b>.", manager=self._manager(manager),
                      device=esc(device))

    def approval_requester_told(self, approved: bool, manager: str | None, device: str) -> str:
        if approved:
            return self._("✅ {manager} approved the free code for <b>{device}</b>. It follows here.",
                          manager=self._manager(manager), device=esc(device))
        return self._("❌ {manager} rejected the free code for <b>{device}</b>. Nothing was issued.",
                      manager=self._manager(manager), device=esc(device))

    @property
    def another_manager(self) -> str:
        return self._("another manager")

    def approval_already(self, manager: str | None, status: str) -> str:
        if status == "approved":
            return self._("Already approved by {manager}.", manager=self._manager(manager))
        if status == "rejected":
            return self._("Already rejected by {manager}.", manager=self._manager(manager))
        return self._("Already decided by {manager}.", manager=self._manager(manager))

    def _manager(self, name: str | None) -> str:
        """A manager's name, or words for one who has none yet (added by id, never wrote)."""
        return esc(name) if name else self.another_manager

    def approval_expired(self, device: str) -> str:
        return self._("Your request for a free code for <b>{device}</b> expired: no manager decided within 24 "
                      "hours. Nothing was issued.", device=esc(device))

    @property
    def approval_too_late(self) -> str:
        return self._("This request has expired (24 hours). Nothing was issued.")

    def summary_text(self, summary: Summary, tz: ZoneInfo, now: _datetime) -> str:
        """The day's summary for managers."""
        kinds = summary.codes
        lines = [self._("📊 <b>Summary for {day}</b> ({zone})", day=self.weekday_date(summary.day),
                        zone=esc(str(tz)))]
        lines.append(self._("Codes: {total} — days {days}, free {free}, reset {reset}; {issued} issued",
                            total=self.number(sum(kinds.values())), days=self.number(kinds.get("days", 0)),
                            free=self.number(kinds.get("free", 0)), reset=self.number(kinds.get("reset", 0)),
                            issued=self.days(summary.days_issued)))
        if summary.payments:
            paid = "; ".join(self.n_("{amount} in {n} payment", "{amount} in {n} payments", count,
                                     amount=self.money(amount, currency or "?"))
                             for currency, (count, amount) in summary.payments.items())
            lines.append(self._("Payments: {payments}", payments=paid))
        else:
            lines.append(self._("Payments: none"))
        if summary.reversed:
            back = "; ".join(self.n_("{amount} in {n} payment", "{amount} in {n} payments", count,
                                     amount=self.money(amount, currency or "?"))
                             for currency, (count, amount) in summary.reversed.items())
            lines.append(self._("↩️ Reversed by the providers: {payments}", payments=back))
        if summary.portfolio is not None:
            line = summary.portfolio
            lines.append(self._("📈 PAR30 {par} ({par_change} since the day before); collection rate over 7 days "
                                "{rate} ({rate_change})", par=self.percent(line.par30),
                                par_change=self.change(line.par30, line.par30_before),
                                rate=self.percent(line.collection),
                                rate_change=self.change(line.collection, line.collection_before)))
        if summary.unmatched_payments:
            lines.append(self._("⚠️ Payments matching no device: {count}", count=self.number(summary.unmatched_payments)))
        if summary.unconfirmed:
            listed = ", ".join(f"<code>{esc(payment.reference)}</code> {self.money(payment.amount, payment.currency)}"
                               for payment in summary.unconfirmed[:10])
            lines.append(self.n_("⚠️ {n} pasted M-Pesa message not confirmed by M-Pesa (yet): {payments}",
                                 "⚠️ {n} pasted M-Pesa messages not confirmed by M-Pesa (yet): {payments}",
                                 len(summary.unconfirmed), payments=listed))
            if len(summary.unconfirmed) > 10:
                lines.append(self._("… and {count} more", count=len(summary.unconfirmed) - 10))
        if summary.agents:
            lines.append(self._("<b>Per agent</b>"))
            for agent in summary.agents:
                line = self.n_("• {name}: {n} code, {days}", "• {name}: {n} codes, {days}", agent.codes,
                               name=esc(agent.name), days=self.days(agent.days))
                if agent.cash_payments:
                    cash = ", ".join(self.money(a, c or "?") for c, a in agent.cash.items())
                    line += self.n_("; {n} payment recorded ({amounts})", "; {n} payments recorded ({amounts})",
                                    agent.cash_payments, amounts=cash)
                lines.append(line)
        if summary.bad_total:
            lines.append(self._("<b>Refused or failed: {count}</b>", count=self.number(summary.bad_total)))
            for bad in summary.bad[:10]:
                why = self.reason(bad.reason, tz, fits=bad.fits, until=bad.until)
                lines.append(self.item(esc(bad.device), f"{self.status(bad.status)} — {esc(why)}"))
            if summary.bad_total > 10:
                lines.append(self._("… and {count} more (see /export)", count=self.number(summary.bad_total - 10)))
        else:
            lines.append(self._("Refused or failed: none"))
        if summary.oldest_queued is not None:
            lines.append(self._("Queue: {count} waiting, oldest for {age}", count=self.number(summary.queued),
                                age=self.duration((now - summary.oldest_queued).total_seconds())))
        else:
            lines.append(self._("Queue: {count} waiting", count=self.number(summary.queued)))
        if summary.expiring:
            lines.append(self._("<b>Credit ending in the next 3 days</b>"))
            for ending in summary.expiring[:20]:
                who = f" ({esc(ending.customer)}, {esc(ending.phone or '')})" if ending.customer is not None else ""
                lines.append(self.item(f"{esc(ending.device)}{who}", self.moment(ending.credit_until, tz)))
            if len(summary.expiring) > 20:
                lines.append(self._("… and {count} more", count=len(summary.expiring) - 20))
        else:
            lines.append(self._("Credit ending in the next 3 days: none"))
        return "\n".join(lines)

    def export_caption(self, first: _date, last: _date) -> str:
        if first == last:
            return self._("The ledger for {day}: one row per code request, then payments that made no code.",
                          day=self.date(first))
        return self._("The ledger for {first} to {last}: one row per code request, then payments that made "
                      "no code.", first=self.date(first), last=self.date(last))

    def export_columns(self) -> list[str]:
        return [self._("time"), self._("device"), self._("customer"), self._("type"), self._("days"),
                self._("code"), self._("status"), self._("reason"), self._("asked by"),
                self._("payment reference"), self._("amount"), self._("currency")]

    def export_kind(self, kind: str) -> str:
        return {"days": self._("days"), "free": self._("free"), "reset": self._("reset"),
                "payment": self._("payment")}.get(kind, kind)

    def export_payment_reason(self, unmatched: bool) -> str:
        return self._("no code: unmatched") if unmatched else self._("no code yet")

    def role_name(self, role: str) -> str:
        """A staff role as a word (the team in the chat and in the dashboard)."""
        return self._("manager") if role == "manager" else self._("agent")

    def agents_list(self, rows: list[tuple[str, int, str, int]]) -> str:
        if not rows:
            return self._("No agents yet. Invite one with /invite agent.")
        lines = [self._("<b>The team</b> (codes today)")]
        for name, telegram_id, role, codes in rows:
            who = self._("{name} — {role}, Telegram id {id}", name=esc(name), role=self.role_name(role),
                         id=f"<code>{telegram_id}</code>")
            lines.append(self.item(who, self.number(codes)))
        return "\n".join(lines)

    def revoked(self, name: str, telegram_id: int) -> str:
        return self._("{name} ({id}) no longer has a role. Their next command will be refused.", name=esc(name),
                      id=telegram_id)

    def revoke_unknown(self, telegram_id: int) -> str:
        return self._("Nobody with Telegram id {id} has a role. Nothing changed.", id=telegram_id)

    @property
    def revoke_self(self) -> str:
        return self._("You cannot revoke yourself. Ask another manager.")

    # -- payments: the webhook, M-Pesa, cash (/pay), pasted confirmations, /assign ----------

    @property
    def bad_amount(self) -> str:
        return self._("The amount must be a positive number, like 250 or 249.50.")

    @property
    def bad_reference(self) -> str:
        return self._("A reference is 1 to 64 letters, digits, '.', '-', '_' or '/'.")

    def mpesa_code_as_cash_reference(self, reference: str) -> str:
        return self._("<b>{reference}</b> looks like an M-Pesa transaction code, and cash cannot take M-Pesa's "
                      "references. For an M-Pesa payment, paste or forward its M-Pesa confirmation message here "
                      "instead. For cash, give no reference or one of your own that does not look like an M-Pesa "
                      "code (for example with a '-'). Nothing was recorded.", reference=esc(reference))

    @property
    def cash_not_recorded(self) -> str:
        return self._("The payment was <b>not</b> recorded. Check the device id and send /pay again.")

    @property
    def record_payment(self) -> str:
        return self._("Record this payment")

    @property
    def confirmation_dropped(self) -> str:
        return self._("Not recorded. Nothing changed.")

    @property
    def confirmation_from_customer(self) -> str:
        return self._("Thank you! Payments are recorded by your agent or arrive by themselves from M-Pesa: your "
                      "code will come here as soon as the payment reaches us. Send /balance to see your credit.")

    def _kept_reason(self, reason: str, account: str, device: str | None) -> str:
        device = f"<b>{esc(device or account)}</b>"
        account = f"<code>{esc(account)}</code>"
        return {
            "unknown_account": self._("{account} matches no device and no customer's phone", account=account),
            "several_devices": self._("the customer with phone {account} has several devices", account=account),
            "no_price": self._("{device} has no daily price yet", device=device),
            "currency": self._("it is in another currency than {device}'s daily price", device=device),
            "unlocked": self._("{device} is unlocked for good (free code) and needs no days", device=device),
            "paid_off": self._("the plan of {device} is paid off already: money beyond the total makes no days",
                               device=device),
            "reversed": self._("the provider reversed it"),
            "erm_unavailable": self._("the ERM could not be reached to check {account} (still trying)",
                                      account=account),
            "reference_conflict": self._("another payment was already recorded under this reference, with another "
                                         "amount, account or source: check which one is real before assigning it"),
        }.get(reason) or self._("it needs a manager's look")

    def _what_follows(self, *, device: str, days: int, prepaid: int, credit_left: object, price: object,
                      currency: str, waits_until: _datetime | None, tz: ZoneInfo, to: str,
                      plan_said: bool = False) -> list[str]:
        """Where a payment's days went (now, later, prepaid, kept as credit), said to ``to``:
        "staff" (the customer is told too), "staff-alone" (no customer to tell) or "customer". ``plan_said``:
        no days because the money went to a plan's deposit or paid it off (the plan's lines say so)."""
        if days == 0 and plan_said:
            return []
        if days == 0:
            return [self._("That is less than one day at {price} a day, so no code yet: {left} is kept as credit "
                           "toward the next payment.", price=self.money(price, currency),
                           left=self.money(credit_left, currency))]
        lines = []
        now_days = days - prepaid
        if now_days and waits_until is not None:
            values = {"device": esc(device), "when": self.moment(waits_until, tz)}
            if to == "customer":
                lines.append(self.n_("<b>{device}</b> has had all its codes for today: your code for {n} day "
                                     "comes here on {when}.",
                                     "<b>{device}</b> has had all its codes for today: your code for {n} days "
                                     "comes here on {when}.", now_days, **values))
            elif to == "staff":
                lines.append(self.n_("<b>{device}</b> has had all its codes for today: the code for {n} day goes "
                                     "out on {when} and the customer is told.",
                                     "<b>{device}</b> has had all its codes for today: the code for {n} days goes "
                                     "out on {when} and the customer is told.", now_days, **values))
            else:
                lines.append(self.n_("<b>{device}</b> has had all its codes for today: the code for {n} day goes "
                                     "out on {when}.",
                                     "<b>{device}</b> has had all its codes for today: the code for {n} days goes "
                                     "out on {when}.", now_days, **values))
        elif now_days:
            lines.append({"customer": self._("Your code follows here."),
                          "staff": self._("The code follows here and goes to the customer."),
                          }.get(to) or self._("The code follows here."))
        if prepaid:
            lines.append(self.n_("{n} day does not fit under the credit limit now: it is kept as a prepaid day and "
                                 "issued when room opens.",
                                 "{n} days do not fit under the credit limit now: they are kept as prepaid days "
                                 "and issued when room opens.", prepaid))
        if credit_left:
            lines.append(self._("{left} is kept as credit toward the next payment.",
                                left=self.money(credit_left, currency)))
        return lines

    def payment_applied(self, *, reference: str, amount: object, currency: str, device: str, days: int,
                        days_now: int, prepaid: int, credit_left: object, price: object,
                        waits_until: _datetime | None, customer: bool, tz: ZoneInfo,
                        balance: PlanBalance | None = None, owed_paid: object = 0, at_once: bool = False) -> str:
        """To whoever recorded or assigned a payment: what it became."""
        values = {"reference": esc(reference), "amount": self.money(amount, currency), "device": esc(device)}
        if days:
            head = self._("✅ Payment <b>{reference}</b> recorded: {amount} for <b>{device}</b> = {days}.",
                          days=self.days(days), **values)
        else:
            head = self._("✅ Payment <b>{reference}</b> recorded: {amount} for <b>{device}</b>.", **values)
        return "\n".join([head, *self._what_follows(
            device=device, days=days, prepaid=prepaid, credit_left=credit_left, price=price, currency=currency,
            waits_until=waits_until, tz=tz, to="staff" if customer else "staff-alone", plan_said=_plan_said(balance)),
            *self._plan_after(balance, owed_paid, currency, device, for_customer=False, at_once=at_once)])

    def _plan_after(self, balance: PlanBalance | None, owed_paid: object, currency: str, device: str, *,
                    for_customer: bool, at_once: bool) -> list[str]:
        """A receipt's last lines: a debt paid, and the plan's new balance."""
        lines = [self.owed_paid_line(Decimal(str(owed_paid)), currency)] if owed_paid else []
        if balance is not None:
            lines += self.balance_after(balance, device, for_customer=for_customer, at_once=at_once)
        return lines

    def payment_held(self, *, reference: str, amount: object, currency: str, device: str, reason: str,
                     device_currency: str | None, assigning: bool) -> str:
        why = self._kept_reason(reason, device, device)
        if reason == "currency":
            why = self._("it is in {currency} but <b>{device}</b> is priced in {device_currency}",
                         currency=esc(currency or "?"), device=esc(device), device_currency=esc(device_currency or "?"))
        if assigning:
            then = self._("Set it right (for example /price {device} <i>price</i>), then /assign {reference} "
                          "{device} again.", device=esc(device), reference=esc(reference))
        else:
            then = self._("The managers were told; the days follow once a manager assigns it.")
        return self._("💰 Payment <b>{reference}</b> of {amount} is recorded, but it cannot become days yet: "
                      "{why}.", reference=esc(reference), amount=self.money(amount, currency), why=why) + "\n" + then

    def payment_not_matched(self, *, reference: str, amount: object, currency: str, account: str,
                            reason: str) -> str:
        return self._("💰 Payment <b>{reference}</b> of {amount} is recorded, but {why}. The managers were told "
                      "and can assign it to a device.", reference=esc(reference),
                      amount=self.money(amount, currency), why=self._kept_reason(reason, account, None))

    def payment_pending(self, *, reference: str, amount: object, currency: str, account: str) -> str:
        return self._("💰 Payment <b>{reference}</b> of {amount} is recorded. The ERM could not be reached to "
                      "check <b>{account}</b>; the days follow as soon as it answers. Nothing else to do.",
                      reference=esc(reference), amount=self.money(amount, currency), account=esc(account))

    def payment_duplicate(self, reference: str, amount: object, currency: str, received_at: _datetime, status: str,
                          device: str | None, days: int, tz: ZoneInfo, *, confirmed: bool | None = None,
                          confirmed_at: _datetime | None = None) -> str:
        """A reference seen before: nothing changed, and what became of it; ``confirmed``: whether M-Pesa itself
        confirmed the money (None: not M-Pesa money, or no confirmations arrive)."""
        state = {
            "matched": self._("it went to <b>{device}</b> as {days}", device=esc(device or "?"),
                              days=self.days(days)),
            "unmatched": self._("it is kept for the managers to assign"),
            "pending": self._("it waits for the ERM to answer"),
        }.get(status, status)
        text = self._("Payment <b>{reference}</b> ({amount}) was already recorded on {when}: {state}. Nothing "
                      "changed.", reference=esc(reference), amount=self.money(amount, currency),
                      when=self.moment(received_at, tz), state=state)
        if confirmed and confirmed_at is not None:
            text += "\n" + self._("✔️ M-Pesa confirmed it on {when}.", when=self.moment(confirmed_at, tz))
        elif confirmed:
            text += "\n" + self._("✔️ It came from M-Pesa itself.")
        elif confirmed is not None:
            text += "\n" + self._("⏳ M-Pesa has not confirmed it yet: so far it is the word of whoever pasted it.")
        return text

    def payment_already_applied(self, reference: str, device: str, days: int) -> str:
        return self._("Payment <b>{reference}</b> already went to <b>{device}</b> as {days}. Nothing changed.",
                      reference=esc(reference), device=esc(device), days=self.days(days))

    def no_such_payment(self, reference: str) -> str:
        return self._("No payment has the reference <b>{reference}</b>. Check it in the managers' notice.",
                      reference=esc(reference))

    def assign_button(self, device: str) -> str:
        return self._("Assign to {device}", device=device)

    def payment_kept_notice(self, *, reference: str, amount: object, currency: str, account: str,
                            payer: str | None, phone: str | None, provider: str, reason: str,
                            device: str | None, first: tuple[object, str, str, str] | None = None) -> str:
        """To every manager: money that did not become days by itself, and how to assign it; ``first``: the
        (amount, currency, account, provider) of the payment first recorded under its reference."""
        source = self._source(provider)
        lines = [self._("⚠️ <b>Payment kept for review</b> ({source})", source=esc(source)),
                 self._("Reference: {reference}", reference=f"<code>{esc(reference)}</code>"),
                 self._("Amount: {amount}", amount=self.money(amount, currency)),
                 self._("Account: {account}", account=f"<code>{esc(account or '—')}</code>")]
        if payer or phone:
            lines.append(self._("From: {payer}", payer=", ".join(esc(part) for part in (payer, phone) if part)))
        lines.append(self._("Why: {why}.", why=self._kept_reason(reason, account or "—", device)))
        if first is not None:
            first_amount, first_currency, first_account, first_provider = first
            lines.append(self._("Recorded first under this reference: {amount} for {account} ({source}).",
                                amount=self.money(first_amount, first_currency),
                                account=f"<code>{esc(first_account or '—')}</code>",
                                source=esc(self._source(first_provider))))
        if device or reason == "several_devices":
            lines.append(self._("Assign it: /assign {reference} <i>device</i> — or tap a device below.",
                                reference=esc(reference)))
        else:
            lines.append(self._("Assign it: /assign {reference} <i>device</i>", reference=esc(reference)))
        return "\n".join(lines)

    def _source(self, provider: str) -> str:
        """Where a payment came from, in a few words."""
        return {"webhook": self._("payment webhook"), "mpesa": "M-Pesa",
                "mpesa_pasted": self._("M-Pesa message pasted by an agent"), "cash": self._("cash")}.get(provider,
                                                                                                      provider)

    def payment_received_notice(self, *, for_customer: bool, reference: str, amount: object, currency: str,
                                device: str, days: int, prepaid: int, credit_left: object, price: object,
                                waits_until: _datetime | None, tz: ZoneInfo, balance: PlanBalance | None = None,
                                owed_paid: object = 0) -> str:
        """To the customer (and their agent) when a payment's code does not go out at once."""
        values = {"reference": esc(reference), "amount": self.money(amount, currency), "device": esc(device)}
        if for_customer:
            head = (self._("💰 Your payment of {amount} ({reference}) for <b>{device}</b> was received: {days}.",
                           days=self.days(days), **values) if days else
                    self._("💰 Your payment of {amount} ({reference}) for <b>{device}</b> was received.", **values))
        else:
            head = (self._("💰 Payment {reference}: {amount} for <b>{device}</b> was received: {days}.",
                           days=self.days(days), **values) if days else
                    self._("💰 Payment {reference}: {amount} for <b>{device}</b> was received.", **values))
        follows = self._what_follows(device=device, days=days, prepaid=prepaid, credit_left=credit_left,
                                     price=price, currency=currency, waits_until=waits_until, tz=tz,
                                     to="customer" if for_customer else "staff", plan_said=_plan_said(balance))
        return "\n".join([head, *follows, *self._plan_after(balance, owed_paid, currency, device,
                                                             for_customer=for_customer, at_once=False)])

    def paid_code(self, *, for_customer: bool, reference: str, amount: object, currency: str, device: str,
                  kind: str, days: int | None, code: str, credit_until: _datetime | None, tz: ZoneInfo,
                  balance: PlanBalance | None = None, owed_paid: object = 0) -> str:
        """A payment's code, with the amount paid and the new credit-until."""
        if for_customer:
            head = self._("💰 Your payment of {amount} ({reference}) was received.",
                          amount=self.money(amount, currency), reference=esc(reference))
        else:
            head = self._("💰 Payment {reference}: {amount}.", amount=self.money(amount, currency),
                          reference=esc(reference))
        text = head + "\n" + self.code_issued(device=device, kind=kind, days=days, code=code,
                                              credit_until=credit_until, tz=tz)
        after = self._plan_after(balance, owed_paid, currency, device, for_customer=for_customer, at_once=False)
        return "\n".join([text, *after])

    def confirmation_preview(self, *, reference: str, amount: object, currency: str, party: str,
                             phone: str | None, account: str, paid_at: _datetime | None, device: str | None,
                             customer: str | None, tz: ZoneInfo) -> str:
        """A pasted confirmation as it was read, before it is recorded."""
        lines = [self._("📩 <b>M-Pesa payment</b> — is this right?"),
                 self._("Reference: {reference}", reference=f"<code>{esc(reference)}</code>"),
                 self._("Amount: {amount}", amount=self.money(amount, currency))]
        if party or phone:
            lines.append(self._("From: {payer}", payer=", ".join(esc(part) for part in (party, phone) if part)))
        if paid_at is not None:
            lines.append(self._("Paid: {when}", when=self.moment(paid_at, tz)))
        lines.append(self._("Account: {account}", account=f"<code>{esc(account)}</code>"))
        if device and customer:
            lines.append(self._("For: <b>{device}</b> ({customer})", device=esc(device), customer=esc(customer)))
        elif device:
            lines.append(self._("For: <b>{device}</b>", device=esc(device)))
        else:
            lines.append(self._("It matches no device I know yet: it is checked when recorded, and kept for the "
                                "managers if it still matches nothing."))
        return "\n".join(lines)

    def confirmation_without_account(self, reference: str, amount: object) -> str:
        return self._("That M-Pesa message ({reference}, {amount}) names no account and no phone number, so I "
                      "cannot tell which device it is for. Add <code>Account</code> and the device id at its end "
                      "(for example <code>Account TEST2503000017</code>) and send it again.",
                      reference=esc(reference), amount=self.money(amount, "KES"))


    # -- energy use (Omnimetic) -----------------------------------------------------------------

    def kwh(self, value: float) -> str:
        """Energy as people read it: ``12.3 kWh`` (the document's "InWatts" figures are watt-hours)."""
        return self._("{amount} kWh", amount=format_decimal(round(value, 1), format="#,##0.0", locale=self.locale))

    def month_name(self, year: int, month: int) -> str:
        return format_skeleton("yMMMM", _date(year, month, 1), locale=self.locale)

    def short_month(self, year: int, month: int) -> str:
        """A chart's axis label: month and year."""
        return format_skeleton("yMMM", _date(year, month, 1), locale=self.locale)

    def energy_chart_labels(self) -> dict[str, str]:
        return {"months": self._("Energy, last 12 months"), "hours": self._("Last 7 days, hour by hour"),
                "on_peak": self._("on-peak"), "off_peak": self._("off-peak"), "kwh": self._("kWh"),
                "unsplit": self._("not split by time")}

    @property
    def omnimetic_sandbox_note(self) -> str:
        return self._("ⓘ Omnimetic sandbox: these figures are made up for testing.")

    def with_omnimetic_note(self, text: str, sandbox: bool) -> str:
        return f"{text}\n\n<i>{self.omnimetic_sandbox_note}</i>" if sandbox else text

    def usage_report(self, usage: object, currency: str | None, sandbox: bool) -> str:
        """/usage: this month so far, last month, the same month a year ago, the last 7 days."""
        from bot.energy import Usage

        assert isinstance(usage, Usage)
        account = usage.account
        who = ", ".join(esc(name) for name in account.legal_names) or esc(account.id)
        lines = [self._("⚡ <b>Energy use</b> — {who}", who=who)]
        if usage.empty:
            lines.append(self._("Omnimetic has no figures for this account yet: they appear once its meter "
                                "has reported."))
        else:
            def month(row: Any) -> str:
                if row is None:
                    return self._("no figures")
                return self._("{energy} ({amount})", energy=self.kwh(row.energy_kwh),
                              amount=self.money(row.amount, currency))

            today = usage.today
            last_year, last_month = (today.year, today.month - 1) if today.month > 1 else (today.year - 1, 12)
            lines.append(self.item(self._("This month so far"), month(usage.this_month)))
            lines.append(self.item(self.month_name(last_year, last_month), month(usage.last_month)))
            lines.append(self.item(self.month_name(today.year - 1, today.month), month(usage.year_ago)))
            first, last = usage.days[0][0], usage.days[-1][0]
            lines.append(self.item(self._("Last 7 days ({first} – {last})", first=self.short_date(first),
                                          last=self.short_date(last)), self.kwh(usage.week_kwh)))
        return self.with_omnimetic_note("\n".join(lines), sandbox)

    @property
    def usage_no_meter_yours(self) -> str:
        return self._("No meter is tied to you yet. Ask your agent to tie your utility account with /meter.")

    def usage_no_meter(self, device: str) -> str:
        return self._("No meter is tied to the customer of {device}. Tie one with /meter {device} "
                      "<i>account</i>.", device=esc(device))

    def meter_no_customer(self, device: str) -> str:
        return self._("{device} has no customer registered: register one with /customer first.", device=esc(device))

    def meter_tied(self, device: str, customer: str, account: object, tz: ZoneInfo) -> str:
        """/meter: the account as Omnimetic describes it, for the agent to check with the customer."""
        from bot.omnimetic.models import ServiceAccount

        assert isinstance(account, ServiceAccount)
        lines = [self._("🔌 Utility account <code>{account}</code> is tied to {customer} ({device}).", account=esc(account.id),
                        customer=esc(customer), device=esc(device))]
        if account.address is not None and account.address.line():
            lines.append(self.item(self._("Address"), esc(account.address.line())))
        if account.legal_names:
            lines.append(self.item(self._("Names on the account"), esc(", ".join(account.legal_names))))
        if account.linked_date is not None:
            lines.append(self.item(self._("Linked to Omnimetic"), self.date(account.linked_date, tz)))
        lines.append(self._("They can now see their energy use with /usage."))
        return "\n".join(lines)

    def meter_untied(self, customer: str, account: str | None) -> str:
        if account is None:
            return self._("{customer} had no meter tied. Nothing changed.", customer=esc(customer))
        return self._("Utility account <code>{account}</code> is no longer tied to {customer}.", account=esc(account),
                      customer=esc(customer))

    def meter_unknown(self, account: str) -> str:
        return self._("Omnimetic does not know utility account <code>{account}</code>. Check the id; nothing "
                      "was tied.", account=esc(account))

    def meter_held(self, account: str) -> str:
        return self._("Utility account <code>{account}</code> is already tied to another customer. Nothing was "
                      "tied.", account=esc(account))

    @property
    def bad_meter_account(self) -> str:
        return self._("That is not a utility account id: 1 to 64 letters, digits, '-' or '_'. Nothing was tied.")

    @property
    def omnimetic_down(self) -> str:
        return self._("Omnimetic cannot be reached right now, so energy figures are not available. Try again "
                      "later; everything else works.")

    def omnimetic_refused(self, words: str) -> str:
        return self._("Omnimetic refused: {words}", words=esc(words))

    def usage_spreadsheet(self, device: str, account: str) -> str:
        return self._("Omnimetic's spreadsheet of utility account {account} ({device}).", account=esc(account),
                      device=esc(device))

    @property
    def usage_spreadsheet_managers_only(self) -> str:
        return self._("Only managers can download the spreadsheet; /usage <i>device</i> shows the figures.")

ENGLISH = for_language(i18n.DEFAULT)
"""For the few places that speak to nobody in particular (the demo's narration, logs)."""
