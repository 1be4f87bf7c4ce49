"""The sentences of payment plans (``/plan``, ``/balance``, receipts, reversals, repossession): part of
:class:`bot.texts.Texts`, kept apart because there are many of them. Same rules as bot/texts.py: every
sentence through ``self._`` / ``self.n_``, values escaped."""

from __future__ import annotations

from datetime import datetime as _datetime
from decimal import Decimal
from html import escape as esc
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    from bot.issuing import PlanBalance
    from bot.plans.service import PlanView
    from storage.models import PlanEvent

    _Base = Any
else:
    _Base = object


class PlanTexts(_Base):
    """Mixed into :class:`bot.texts.Texts` (which gives ``_``, ``n_``, ``money``, ``date``…)."""

    # -- /plan --------------------------------------------------------------------------------

    def plan_status(self, status: str) -> str:
        return {"active": self._("being paid"), "paid_off": self._("paid off"),
                "repossessed": self._("repossessed")}.get(status, status)

    def plan_lines(self, view: PlanView, tz: ZoneInfo, *, for_customer: bool = False) -> list[str]:
        """Where a plan stands: paid of the total, left, the deposit, when it becomes theirs, any debt."""
        plan, currency = view.plan, view.plan.currency
        lines = [self._("Paid so far: {paid} of {total} ({percent}%)", paid=self.money(plan.paid, currency),
                        total=self.money(plan.total, currency), percent=view.percent)]
        if plan.status == "paid_off":
            when = self.date(plan.ended_at, tz) if plan.ended_at else "—"
            lines.append(self._("🎉 Paid off on {date}: the device is yours for good.", date=when) if for_customer
                         else self._("🎉 Paid off on {date}: the device is the customer's.", date=when))
        elif plan.status == "active":
            lines.append(self._("Left to pay: {left}", left=self.money(view.left, currency)))
            if view.deposit_left:
                lines.append(self._("Deposit: {left} still to pay before any days code.",
                                    left=self.money(view.deposit_left, currency)))
            if view.theirs_on is not None:
                lines.append(self._("Yours on {date} at {price} a day", date=self.date(view.theirs_on),
                                    price=self.money(plan.daily_price, currency)) if for_customer else
                             self._("The customer's on {date} at {price} a day", date=self.date(view.theirs_on),
                                    price=self.money(plan.daily_price, currency)))
        if view.device.owed:
            lines.append(self._("Owed from reversed payments: {owed} (the next payments pay it first)",
                                owed=self.money(view.device.owed, currency)))
        return lines

    def plan_view(self, view: PlanView, tz: ZoneInfo) -> str:
        """``/plan <device>``: the terms, the customer, where it stands, its history."""
        plan, currency = view.plan, view.plan.currency
        lines = [self._("<b>Payment plan of {device}</b> ({status})", device=esc(view.device.label),
                        status=self.plan_status(plan.status.value))]
        if view.customer is not None:
            lines.append(self._("Customer: {name}, {phone}", name=esc(view.customer.name),
                                phone=esc(view.customer.phone)))
        else:
            lines.append(self._("Customer: none registered (use /customer)"))
        terms = self._("Total price {total}, {price} a day", total=self.money(plan.total, currency),
                       price=self.money(plan.daily_price, currency))
        if plan.deposit:
            terms += self._(", deposit {deposit}", deposit=self.money(plan.deposit, currency))
        lines.append(terms)
        lines += self.plan_lines(view, tz)
        if view.events:
            lines.append("")
            lines.append(self._("<b>History</b>"))
            lines += [self.plan_event(event, tz) for event in view.events[-8:]]
        return "\n".join(lines)

    def plan_event(self, event: PlanEvent, tz: ZoneInfo) -> str:
        what = {
            "created": self._("plan set: {total}, {price} a day"),
            "imported": self._("plan imported: {total}, {price} a day, {paid} paid before"),
            "changed": self._("plan changed: {total}, {price} a day"),
            "price": self._("price per day changed: {price}"),
            "paid_off": self._("paid off ({paid})"),
            "unlock": self._("unlock code queued"),
            "reversed": self._("a payment reversed: paid so far now {paid}"),
            "reopened": self._("no longer paid off: the unlock code was cancelled"),
            "repossessed": self._("repossessed"),
            "merged": self._("ended: its device was found to be one with another, whose plan goes on"),
        }.get(event.kind, event.kind)
        values = {"total": self.money(event.total, event.currency), "price": self.money(event.daily_price,
                                                                                      event.currency),
                  "paid": self.money(event.paid, event.currency)}
        line = f"{self.moment(event.at, tz)} — " + _fill(what, values)
        return line + (f" ({esc(event.note)})" if event.note and event.kind == "reversed" else "")

    def plan_set(self, view: PlanView, created: bool, changed: bool, paid_off: bool, tz: ZoneInfo) -> str:
        head = (self._("✅ Plan set for <b>{device}</b>.", device=esc(view.device.label)) if created else
                self._("✅ Plan of <b>{device}</b> changed (paid so far stays).", device=esc(view.device.label))
                if changed else self._("The plan of <b>{device}</b> already has these terms: nothing changed.",
                                       device=esc(view.device.label)))
        text = head + "\n\n" + self.plan_view(view, tz)
        if paid_off:
            text += "\n\n" + self._("With the new total it is paid off: the unlock code follows the managers' "
                                    "approval (or goes out at once with PAYGBOT_UNLOCK_WHEN_PAID=auto).")
        return text

    def no_plan(self, device: str) -> str:
        return self._("<b>{device}</b> has no payment plan: it is pay-as-you-go, with no end. A manager sets one "
                      "with /plan {device} <i>total price-per-day currency</i> [<i>deposit</i>].", device=esc(device))

    def plan_refused(self, bad: str, device: str) -> str:
        device = esc(device)
        return {
            "price_above_total": self._("The price per day cannot be more than the total price. Nothing changed."),
            "deposit_above_total": self._("The deposit cannot be more than the total price. Nothing changed."),
            "currency_change": self._("Money was already counted toward the plan of <b>{device}</b> in its "
                                      "currency, so the currency cannot change. Nothing changed.", device=device),
            "paid_off": self._("The plan of <b>{device}</b> is paid off: the device is the customer's, and the "
                               "plan cannot change. Nothing changed.", device=device),
            "unlocked": self._("<b>{device}</b> is unlocked for good (free code): it needs no plan. Nothing "
                               "changed.", device=device),
            "no_plan": self._("<b>{device}</b> has no plan to end. Nothing changed.", device=device),
        }.get(bad, bad)

    @property
    def bad_plan_terms(self) -> str:
        return self._("That is not a plan: total price and price per day as amounts (for example 30000 and 50), "
                      "a currency of 3 letters (KES), and a deposit if any (0 or an amount). Nothing changed.")

    def ask_plan_terms(self, device: str) -> str:
        return self._("The plan for <b>{device}</b>: type the total price, the price per day, the currency and, "
                      "if any, the deposit — for example <code>30000 50 KES 3000</code>.", device=esc(device))

    def confirm_plan(self, device: str, total: Decimal, price: Decimal, currency: str, deposit: Decimal) -> str:
        values = {"device": esc(device), "total": self.money(total, currency), "price": self.money(price, currency)}
        if deposit:
            return self._("Set the plan of <b>{device}</b>: total price {total}, {price} a day, deposit {deposit}?",
                          deposit=self.money(deposit, currency), **values)
        return self._("Set the plan of <b>{device}</b>: total price {total}, {price} a day?", **values)

    def unlock_not_needed(self, device: str) -> str:
        return self._("The plan of <b>{device}</b> is no longer paid off (a payment was reversed): no unlock code "
                      "was issued.", device=esc(device))

    def unlock_rejected(self, device: str) -> str:
        return self._("The plan of <b>{device}</b> stays paid off without its unlock code. When it should go out, "
                      "send /free {device}.", device=esc(device))

    # -- receipts -------------------------------------------------------------------------------

    def balance_after(self, balance: PlanBalance, device: str, *, for_customer: bool, at_once: bool) -> list[str]:
        """A payment's receipt: the plan's new balance, the deposit still owed, paid off, money beyond the total."""
        currency = balance.currency
        left = max(Decimal(0), balance.total - balance.paid)
        lines = [self._("Paid so far: {paid} of {total}; left to pay: {left}.",
                        paid=self.money(balance.paid, currency), total=self.money(balance.total, currency),
                        left=self.money(left, currency))]
        if balance.deposit_left:
            lines.append(self._("The deposit is not paid yet ({left} to go): no days code until it is.",
                                left=self.money(balance.deposit_left, currency)))
        if balance.paid_off:
            if for_customer:
                lines.append(self._("🎉 That pays it off: <b>{device}</b> is yours! Your unlock code follows here.",
                                    device=esc(device)) if at_once else
                             self._("🎉 That pays it off: <b>{device}</b> is yours! Your unlock code comes here once "
                                    "a manager has checked it.", device=esc(device)))
            else:
                lines.append(self._("🎉 That pays it off: <b>{device}</b> is the customer's. The unlock code goes "
                                    "to them now.", device=esc(device)) if at_once else
                             self._("🎉 That pays it off: <b>{device}</b> is the customer's. The unlock code goes to "
                                    "them once a manager approves it.", device=esc(device)))
        if balance.excess:
            lines.append(self._("{excess} beyond the total makes no days: it is kept for the managers' review.",
                                excess=self.money(balance.excess, currency)))
        return lines

    def paid_off_by_new_terms(self, balance: PlanBalance, device: str, *, for_customer: bool, at_once: bool) -> str:
        """To the customer and their agent: a plan paid off because a manager lowered its total."""
        return "\n".join(self.balance_after(balance, device, for_customer=for_customer, at_once=at_once))

    def owed_paid_line(self, owed_paid: Decimal, currency: str) -> str:
        return self._("{amount} of it paid what was owed from a reversed payment.",
                      amount=self.money(owed_paid, currency))

    def paid_off_managers(self, *, device: str, customer: str | None, reference: str | None, paid: Decimal,
                          total: Decimal, currency: str, excess: Decimal, at_once: bool, ask: bool) -> str:
        """To every manager: a plan paid off (with the unlock code's Approve / Reject buttons when ``ask``)."""
        whose = " (" + esc(customer) + ")" if customer else ""
        values = {"device": esc(device), "customer": whose, "paid": self.money(paid, currency),
                  "total": self.money(total, currency)}
        lines = [self._("🎉 <b>Plan paid off</b>: <b>{device}</b>{customer} has paid {paid} of {total} (last "
                        "payment {reference}).", reference=esc(reference), **values) if reference else
                 self._("🎉 <b>Plan paid off</b>: <b>{device}</b>{customer} has paid {paid}, and its total is now "
                        "{total}.", **values)]
        if ask:
            lines.append(self._("Issue its unlock (free) code? It unlocks the device for good."))
        elif at_once:
            lines.append(self._("Its unlock (free) code goes out at once (PAYGBOT_UNLOCK_WHEN_PAID=auto)."))
        if excess:
            lines.append(self._("⚠️ {excess} beyond the total was paid: it makes no days and is kept for your "
                                "review (a refund, or another device).", excess=self.money(excess, currency)))
        return "\n".join(lines)

    def plan_paid_off_people(self, *, for_customer: bool, device: str, reference: str, amount: Decimal,
                             currency: str, paid: Decimal, total: Decimal, excess: Decimal, at_once: bool) -> str:
        """To the customer and their agent: the payment that paid the plan off."""
        head = (self._("💰 Your payment of {amount} ({reference}) was received.", amount=self.money(amount, currency),
                       reference=esc(reference)) if for_customer else
                self._("💰 Payment {reference}: {amount}.", amount=self.money(amount, currency),
                       reference=esc(reference)))
        from bot.issuing import PlanBalance

        balance = PlanBalance(paid, total, currency, excess, True, Decimal(0))
        return "\n".join([head, *self.balance_after(balance, device, for_customer=for_customer, at_once=at_once)])

    # -- reversals ------------------------------------------------------------------------------

    def reversed_text(self, *, reference: str, amount: Decimal, currency: str, device: str | None,
                      applied: bool, cancelled_days: int, owed: Decimal, reason: str | None,
                      plan_paid: Decimal | None, plan_total: Decimal | None, reopened: bool) -> str:
        """What a reversal undid, for the manager who asked and for the managers and agent told."""
        values = {"reference": esc(reference), "amount": self.money(amount, currency)}
        if device:
            head = self._("↩️ Payment <b>{reference}</b> ({amount}, <b>{device}</b>) was reversed.",
                          device=esc(device), **values)
        else:
            head = self._("↩️ Payment <b>{reference}</b> ({amount}) was reversed.", **values)
        lines = [head]
        if reason:
            lines.append(self._("Reason: {reason}", reason=esc(reason)))
        if not applied:
            lines.append(self._("It had not become days yet, and now never will."))
        if cancelled_days:
            lines.append(self.n_("{n} day not yet issued was taken back (its code will not go out).",
                                 "{n} days not yet issued were taken back (their code will not go out).",
                                 cancelled_days))
        if owed:
            lines.append(self._("⚠️ {owed} of it was already issued as codes, which cannot be taken back: "
                                "<b>{device}</b> owes it, and its next payments pay it first.",
                                owed=self.money(owed, currency), device=esc(device or "?")))
        if plan_paid is not None and plan_total is not None:
            lines.append(self._("Plan: paid so far {paid} of {total}.", paid=self.money(plan_paid, currency),
                                total=self.money(plan_total, currency)))
        if reopened:
            lines.append(self._("The plan is no longer paid off: its unlock code was cancelled."))
        return "\n".join(lines)

    def reversal_unknown(self, reference: str) -> str:
        return self._("No payment has the reference <b>{reference}</b>: nothing was reversed, nothing changed.",
                      reference=esc(reference))

    def reversal_already(self, reference: str, when: _datetime | None, tz: ZoneInfo) -> str:
        if when is None:
            return self._("Payment <b>{reference}</b> was reversed already: nothing changed.", reference=esc(reference))
        return self._("Payment <b>{reference}</b> was reversed already, on {when}: nothing changed.",
                      reference=esc(reference), when=self.moment(when, tz))

    # -- repossession ------------------------------------------------------------------------------

    def repossess_preview(self, view: PlanView) -> str:
        plan, currency = view.plan, view.plan.currency
        customer = (self._("{name} ({phone})", name=esc(view.customer.name), phone=esc(view.customer.phone))
                    if view.customer else self._("no customer"))
        return self._("Repossess <b>{device}</b>? Its plan ends as repossessed (paid {paid} of {total}), the "
                      "device leaves {customer} and can get a new customer and plan. Nothing of the old plan is "
                      "deleted.", device=esc(view.device.label), paid=self.money(plan.paid, currency),
                      total=self.money(plan.total, currency), customer=customer)

    @property
    def confirm_repossess(self) -> str:
        return self._("Repossess")

    def repossessed(self, device: str, customer: str | None, paid: Decimal, total: Decimal, currency: str) -> str:
        return self._("✅ <b>{device}</b> repossessed{customer}: its plan ended (paid {paid} of {total}). Register "
                      "the next customer with /customer, then set a plan with /plan.", device=esc(device),
                      customer=self._(" from {name}", name=esc(customer)) if customer else "",
                      paid=self.money(paid, currency), total=self.money(total, currency))

    # -- /export plans ---------------------------------------------------------------------------

    def plans_export_caption(self, count: int) -> str:
        return self.n_("Payment plans: {n} plan.", "Payment plans: {n} plans.", count)


def _fill(template: str, values: dict[str, str]) -> str:
    for name, value in values.items():
        template = template.replace("{" + name + "}", value)
    return template
