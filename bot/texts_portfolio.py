"""The sentences of portfolio health (``/portfolio``): part of :class:`bot.texts.Texts`, kept apart as the plans'
are. Same rules as bot/texts.py."""

from __future__ import annotations

from decimal import Decimal
from html import escape as esc
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bot.portfolio.figures import Figures
    from bot.portfolio.service import Health

    _Base = Any
else:
    _Base = object


class PortfolioTexts(_Base):
    """Mixed into :class:`bot.texts.Texts` (which gives ``_``, ``n_``, ``money``, ``number``…)."""

    def percent(self, ratio: Decimal | None) -> str:
        """A ratio as a percentage with one decimal (``—`` when there is none)."""
        if ratio is None:
            return "—"
        return self._("{value}%", value=self.number(round(ratio * 100, 1)))

    def change(self, now: Decimal | None, before: Decimal | None) -> str:
        """A ratio's change in percentage points: ``+1.5 pts``, ``−0.3 pts``, ``no change`` (``—`` unknown)."""
        if now is None or before is None:
            return "—"
        points = round((now - before) * 100, 1)
        if not points:
            return self._("no change")
        sign = "+" if points > 0 else "−"
        return self._("{sign}{points} pts", sign=sign, points=self.number(abs(points)))

    def portfolio_text(self, health: Health, currency: str, agents: dict[int | None, str]) -> str:
        """``/portfolio``: where the plans stand now, at risk, by days past due, collections, per agent."""
        figures = health.figures
        lines = [self._("📈 <b>Portfolio</b>"),
                 self._("Plans: {active} being paid, {paid_off} paid off, {repossessed} repossessed",
                        active=self.number(figures.active), paid_off=self.number(figures.paid_off),
                        repossessed=self.number(figures.repossessed)),
                 self._("Left to pay: {left}", left=self.money(figures.left, currency)),
                 self._("PAR30: {par} (left to pay more than 30 days past due: {at_risk})",
                        par=self.percent(figures.par30), at_risk=self.money(figures.at_risk, currency)),
                 self._("Collection rate: {week} over 7 days, {month} over 30 days",
                        week=self.percent(health.week.rate), month=self.percent(health.month.rate))
                 if health.month.due else self._("Collection rate: nothing has fallen due yet"),
                 self._("<b>Days past due</b>")]
        for bucket in figures.buckets:
            span = (self._("{low}–{high} days", low=bucket.low, high=bucket.high) if bucket.high is not None
                    else self._("over {days} days", days=bucket.low - 1))
            lines.append(self.item(span, self.n_("{n} plan, {amount}", "{n} plans, {amount}", bucket.count,
                                                 amount=self.money(bucket.amount, currency))))
        if len(health.agents) > 1 or None not in health.agents:
            lines.append(self._("<b>Per agent</b>"))
            for agent_id, own in sorted(health.agents.items(), key=lambda item: agents.get(item[0], "")):
                lines.append(self.item(esc(agents.get(agent_id) or self._("no agent")), self.agent_line(own, currency)))
        return "\n".join(lines)

    def visits_page(self, rows: list[Any], offset: int, total: int, names: dict[int | None, str] | None,
                    now: Any) -> str:
        """``/visits``: customers to visit, most days past due first; ``names``: grouped by agent (managers)."""
        from bot.portfolio.figures import overdue

        if not total:
            return self._("Nobody to visit: no customer's credit has run out.")
        lines = [self._("🚶 <b>Visits</b>: customers past due {first}–{last} of {total}", first=offset + 1,
                        last=offset + len(rows), total=total)]
        agent: object = object()
        for visit in rows:
            if names is not None and visit.agent_id != agent:
                agent = visit.agent_id
                lines.append(f"<b>{esc(names.get(visit.agent_id) or self._('no agent'))}</b>")
            late = overdue(visit.credit_until, visit.started_at, now)
            parts = [self.n_("{n} day past due", "{n} days past due", late)]
            if visit.left is not None:
                parts.append(self._("{left} left to pay", left=self.money(visit.left, visit.currency)))
            if visit.daily_price:
                parts.append(self._("{amount} buys 7 days", amount=self.money(visit.daily_price * 7, visit.currency)))
            lines.append(self._("• {name}, {phone} — <b>{device}</b>: {details}", name=esc(visit.customer),
                                phone=esc(visit.phone), device=esc(visit.device), details="; ".join(parts)))
        return "\n".join(lines)

    def moved(self, customer: str, device: str, agent: str) -> str:
        return self._("✅ {customer} (<b>{device}</b>) is looked after by {agent} from now on: their /visits list "
                      "it.", customer=esc(customer), device=esc(device), agent=esc(agent))

    def move_refused(self, why: str, device: str, telegram_id: str) -> str:
        if why == "no_customer":
            return self._("<b>{device}</b> has no customer to move. Nothing changed.", device=esc(device))
        return self._("{telegram_id} is not an agent or manager of this bot (see /agents). Nothing changed.",
                      telegram_id=esc(telegram_id))

    def portfolio_chart_labels(self) -> dict[str, str]:
        return {"par30": self._("PAR30"), "collection": self._("Collection rate (7 days)"),
                "weeks": self._("The last 12 weeks"),
                "buckets": self._("Left to pay by days past due (number of plans on each bar)")}

    def agent_line(self, figures: Figures, currency: str) -> str:
        return self.n_("{n} plan, {left} left, PAR30 {par}", "{n} plans, {left} left, PAR30 {par}", figures.active,
                       left=self.money(figures.left, currency), par=self.percent(figures.par30))
