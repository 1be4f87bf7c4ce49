"""What the tests share besides fixtures (those are in ``tests/conftest.py``):

- :mod:`tests.support.chat`: the whole bot driven through a chat (:func:`chatting`), the people;
- :mod:`tests.support.paying`: payments from the outside, signed as a provider signs them;
- :mod:`tests.support.cli`: the installed ``paygbot`` command run as a person runs it;
- :mod:`tests.support.settings`: settings from keyword values, ignoring any ``.env``;
- :mod:`tests.support.waiting`: waiting for a condition with a deadline, never a fixed sleep.
"""
