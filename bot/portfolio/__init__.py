"""Portfolio health (issue 17, in progress): days past due, PAR30, buckets and the collection rate.

:mod:`~bot.portfolio.figures` holds the definitions as pure functions over plans as they stood at a moment;
reading those states from the ledger, the chat's ``/portfolio`` and ``/visits``, and the chart are to come.
"""
