"""Stand-ins for the two remote services, so the bot runs with no credentials and no network:
the ERM sandbox (:mod:`bot.standins.erm`) and the Telegram Bot API stand-in
(:mod:`bot.standins.telegram`). The demo, the tests, the benchmarks and ``paygbot sandbox`` use
them.

Nothing ``paygbot run`` loads may import this package, with one deliberate exception: with no ERM
credentials, :func:`bot.erm.connect.open_erm` imports the ERM sandbox when it opens (the embedded
sandbox mode, which every reply announces). The stand-ins themselves may import the production
code they imitate the other side of (:mod:`bot.erm` models and code format, :mod:`bot.clock`) and
the one server runner, :func:`bot.http.serving`; nothing else of the bot.
"""
