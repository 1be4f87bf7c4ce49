"""Stand-ins for the remote services, so the bot runs with no credentials and no network: the ERM
sandbox (:mod:`bot.standins.erm`), the Omnimetic sandbox (:mod:`bot.standins.omnimetic`) and the
Telegram Bot API stand-in (:mod:`bot.standins.telegram`). The demo, the tests, the benchmarks and
``paygbot sandbox`` (the ERM's and Omnimetic's on one port) use them.

Nothing ``paygbot run`` loads may import this package, with two deliberate exceptions: with no ERM
credentials, :func:`bot.erm.connect.open_erm` imports the ERM sandbox when it opens, and with no
Omnimetic keys :func:`bot.omnimetic.connect.open_omnimetic` imports the Omnimetic sandbox (the
embedded sandbox modes, which replies announce). The stand-ins themselves may import the production
code they imitate the other side of (:mod:`bot.erm` models and code format,
:mod:`bot.omnimetic.models`, :mod:`bot.clock`) and the one server runner, :func:`bot.http.serving`;
nothing else of the bot.
"""
