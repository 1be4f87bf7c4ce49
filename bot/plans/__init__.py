"""Payment plans to ownership: a device sold on credit is paid off day by day, then it is the customer's.

:mod:`~bot.plans.service` sets, changes, shows and ends plans; :mod:`~bot.plans.reversals` takes a payment
back; :mod:`~bot.plans.importing` onboards a portfolio from a CSV file. Payments count toward a plan in the
engine's one transaction that applies them (:mod:`bot.issuing.admission`, with the arithmetic of
:mod:`bot.issuing.plan_terms` and the unlock code of :mod:`bot.issuing.ownership`).
"""
