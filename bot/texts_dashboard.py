"""The words of the managers' dashboard (the Mini App, :mod:`dashboard`): part of :class:`bot.texts.Texts`,
kept apart as the plans' and the portfolio's are. Same rules as bot/texts.py. The dashboard also shows the
chat's own sentences where it says the same thing (the day's summary, the portfolio, a decision)."""

from __future__ import annotations

from html import escape as esc
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    _Base = Any
else:
    _Base = object


class DashboardTexts(_Base):
    """Mixed into :class:`bot.texts.Texts` (which gives ``_``, ``n_``, ``number``…)."""

    def dashboard_words(self) -> dict[str, str]:
        """The dashboard's labels, headings and buttons, by the name its templates use."""
        _ = self._
        return {
            "title": _("Dashboard"),
            "today": _("Today"), "devices": _("Devices"), "payments": _("Payments"), "approvals": _("Approvals"),
            "portfolio": _("Portfolio"), "agents": _("Agents"), "exports": _("Exports"),
            "search": _("Device id, customer or phone"), "find": _("Search"),
            "show_all": _("All devices"), "show_ending": _("Credit ending"), "show_past_due": _("Past due"),
            "all_agents": _("All agents"),
            "device": _("Device"), "customer": _("Customer"), "phone": _("Phone"), "agent": _("Agent"),
            "credit_until": _("Credit until"), "left_to_pay": _("Left to pay"), "no_devices": _("No devices match."),
            "previous": _("Previous"), "next": _("Next"),
            "erm_id": _("ERM id"), "other_ids": _("Other ids"), "description": _("Description"),
            "daily_price": _("Daily price"), "unlocked": _("Unlocked for good"), "no_credit": _("No credit"),
            "plan": _("Plan"), "no_plan": _("No plan: pay as you go."), "total": _("Total"), "paid": _("Paid"),
            "started": _("Started"), "status": _("Status"),
            "credit_over_time": _("Credit over time"), "no_timeline": _("No code with credit yet."),
            "codes": _("Codes"), "no_codes": _("No codes yet."), "when": _("When"), "kind": _("Kind"),
            "code": _("Code"), "no_payments": _("No payments yet."), "reference": _("Reference"),
            "amount": _("Amount"), "days": _("Days"), "account": _("Account"), "why_kept": _("Why kept"),
            "kept_payments": _("Payments kept for review"), "nothing_kept": _("No payment is waiting for you."),
            "assign_to": _("Device id"), "assign": _("Assign"),
            "waiting_approvals": _("Free codes waiting for approval"),
            "nothing_waiting": _("No code is waiting for approval."),
            "asked": _("Asked"), "asked_by": _("Asked by"), "unlock": _("unlock (plan paid off)"),
            "name": _("Name"), "telegram_id": _("Telegram id"), "role": _("Role"), "codes_today": _("Codes today"),
            "their_devices": _("Their devices"), "no_agents": _("No agents yet. Invite one with /invite agent."),
            "ledger_export": _("The ledger: codes and payments, by day"), "from": _("From"), "to": _("To"),
            "plans_export": _("Payment plans"), "portfolio_export": _("Portfolio: every plan as it stands"),
            "download": _("Download CSV"), "back": _("Back"), "opening": _("Opening…"),
            "sandbox": _("Sandbox: codes are not real."),
        }

    def dashboard_page(self, first: int, last: int, total: int) -> str:
        """Where a page of a list is: ``51–100 of 2,300``."""
        return self._("{first}–{last} of {total}", first=self.number(first), last=self.number(last),
                      total=self.number(total))

    def dashboard_refused(self, why: str) -> str:
        """Why the dashboard shows nothing: no launch data, forged, too old, not a manager, a session ended."""
        return {
            "missing": self._("Open the dashboard from the bot: send /dashboard."),
            "forged": self._("This page was not opened from Telegram. Open the dashboard from the bot: send /dashboard."),
            "stale": self._("This dashboard was opened more than an hour ago. Open it again from the bot: send "
                            "/dashboard."),
            "managers": self._("The dashboard is for managers."),
            "ended": self._("Your session has ended. Open the dashboard again from the bot: send /dashboard."),
            "csrf": self._("This action was not sent by the dashboard, so nothing was done."),
        }[why]

    @property
    def dashboard_offer(self) -> str:
        return self._("Your dashboard: today's figures, devices, payments waiting for you and approvals.")

    @property
    def open_dashboard(self) -> str:
        """The button that opens it (in a message, and as the chat's menu button)."""
        return self._("Dashboard")

    @property
    def dashboard_not_set_up(self) -> str:
        return self._("The dashboard is not set up: its address (PAYGBOT_PUBLIC_URL) is not configured. "
                      "Ask whoever runs the bot.")

    # The sentences below are HTML (as the chat's are): what they quote is escaped here.

    def kept_reason(self, reason: str | None, account: str) -> str:
        """Why a payment waits for a manager, as the chat's notice says it."""
        return self._kept_reason(reason or "", account, None)

    def dashboard_assigned(self, reference: str, device: str, days: int) -> str:
        return self._("Payment <b>{reference}</b> now gives <b>{device}</b> {days}; the code follows.",
                      reference=esc(reference), days=self.days(days), device=esc(device))

    def dashboard_assign_held(self, reference: str, device: str, reason: str) -> str:
        return self._("Payment <b>{reference}</b> cannot become days yet: {why}.", reference=esc(reference),
                      why=self._kept_reason(reason, device, device))

    def dashboard_assign_pending(self, reference: str) -> str:
        return self._("Payment <b>{reference}</b> is stored; it is matched as soon as the ERM answers.",
                      reference=esc(reference))

    def dashboard_payment_gone(self, reference: str) -> str:
        return self._("Payment <b>{reference}</b> is no longer waiting: it was assigned already.",
                      reference=esc(reference))

    @property
    def dashboard_no_such_device(self) -> str:
        return self._("No device has that id.")

    @property
    def dashboard_not_found(self) -> str:
        return self._("Not found.")
