"""The managers' figures: the daily summary, its chart, and the ledger as a CSV export.

- ``figures``: the day's figures as plain values (:class:`Summary`); imports nothing of the bot, so the
  sentences (``bot.texts``) render them typed without importing the queries.
- ``summary``: the summary's aggregate queries; ``chart``: its PNG picture; ``export``: the CSV, streamed.

May import: ``storage`` (the ledger's queries) and ``bot.drawing`` (the process that draws the chart). Nothing
else of the bot: not the engine, not the payments service, not the chat, not the sentences — the chart and the
export are handed their words (``ChartWords``, ``ExportWords``: what they need of ``bot.texts.Texts``), and
``bot.texts`` imports the figures, never the other way.
"""

from bot.reports.chart import CHART_DAYS, ChartWords, chart
from bot.reports.export import MAX_EXPORT_DAYS, ExportWords, export_csv
from bot.reports.figures import AgentLine, EndedBadly, Expiring, Summary, Unconfirmed
from bot.reports.summary import EXPIRING_WITHIN, day_bounds, is_copy, summary

__all__ = [
    "CHART_DAYS", "EXPIRING_WITHIN", "MAX_EXPORT_DAYS", "AgentLine", "ChartWords", "EndedBadly", "Expiring",
    "ExportWords", "Summary", "Unconfirmed", "chart", "day_bounds", "export_csv", "is_copy", "summary",
]
