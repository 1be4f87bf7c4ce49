"""The bot's ERROR lines, collected while a test runs: a failed task or a code "kept in the log only" is a bug."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager


class ErrorLog(logging.Handler):
    """Collects the ERROR lines it is given."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextmanager
def errors_logged() -> Iterator[ErrorLog]:
    """The ``paygbot`` loggers' ERROR lines while the block runs."""
    handler = ErrorLog()
    logging.getLogger("paygbot").addHandler(handler)
    try:
        yield handler
    finally:
        logging.getLogger("paygbot").removeHandler(handler)
