"""Core statements built once and, inline on SQLite, run straight on the driver's connection.

SQLAlchemy spends ~90 µs on every execution of a statement, however small: its cache key, the execution
context, the parameters and the result, one layer after another; SQLite answers an indexed statement of the
ledger in a few. A ``/days`` runs about ten, on the event loop. A statement marked with :func:`prepared` (a
module's constant, with named ``bindparam`` values) is compiled once per dialect by SQLAlchemy itself, with its
own type processing for each value and column, and then executed by :class:`storage.sqlite_inline.InlineSession`
as the driver's ``execute(sql, values)``. The SQL is SQLAlchemy's, the values are converted as SQLAlchemy would
convert them, and on PostgreSQL the same statement goes through SQLAlchemy as any other (the mark is an execution
option the ``AsyncSession`` ignores).

What a prepared statement may not be: an ORM statement (one that loads or writes a model: the session's identity
map must see those; :func:`storage.ledger.rows.loaded` makes a row read on a table's columns the session's object),
or one with an "expanding" parameter (a list, written into the SQL at each run), a callable one, or one of no known
type (its value would reach the driver unconverted).
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy.engine import Dialect
from sqlalchemy.exc import InvalidRequestError, MultipleResultsFound, NoResultFound
from sqlalchemy.sql import Executable
from sqlalchemy.types import NullType
from sqlmodel.sql.expression import SelectOfScalar

PREPARED = "paygbot_prepared"
"""The execution option that marks a statement as :func:`prepared`."""

S = TypeVar("S", bound=Executable)


def prepared(statement: S) -> S:
    """``statement``, marked to be run straight on the driver where the session allows (inline SQLite). Only for a
    statement built once (a module's constant): its compiled form is kept for good."""
    if statement._propagate_attrs.get("compile_state_plugin") == "orm":  # noqa: SLF001
        raise ValueError("an ORM statement cannot be prepared: the session must see what it loads or writes")
    return statement.execution_options(**{PREPARED: True})


def is_prepared(statement: Any) -> bool:
    return isinstance(statement, Executable) and bool(statement._execution_options.get(PREPARED))  # noqa: SLF001


@dataclass(frozen=True)
class Compiled:
    """A prepared statement in one dialect's words: its SQL, and how to make the driver's values and read its rows."""

    sql: str
    slots: tuple[tuple[str, Callable[[Any], Any] | None, Any], ...]
    """Per ``?`` in order: the parameter's name, the converter of a value given for it, and its own value already
    converted (a literal's, or a ``bindparam``'s default), or :data:`_REQUIRED`."""
    columns: tuple[Callable[[Any], Any] | None, ...]
    row: Callable[..., Any]
    scalar: bool
    """A select of one column through SQLModel's ``select``: its rows are the values alone (as ``session.exec``'s)."""

    def values(self, params: dict[str, Any]) -> tuple[Any, ...]:
        out = []
        for name, convert, own in self.slots:
            if name in params:
                value = params[name]
                out.append(value if convert is None else convert(value))
            elif own is not _REQUIRED:
                out.append(own)
            else:
                raise InvalidRequestError(f"A value is required for bind parameter {name!r}")
        return tuple(out)

    def rows(self, raw: Sequence[tuple[Any, ...]]) -> list[Any]:
        columns = self.columns
        made = [self.row(*[value if convert is None else convert(value)
                           for value, convert in zip(row, columns, strict=True)]) for row in raw]
        return [row[0] for row in made] if self.scalar else made


_REQUIRED = object()
_compiled: dict[tuple[int, str], tuple[Executable, Compiled]] = {}


def compiled(statement: Executable, dialect: Dialect) -> Compiled:
    """``statement`` compiled for ``dialect``, once (kept with the statement, a module's constant, for good)."""
    key = (id(statement), dialect.name)
    held = _compiled.get(key)
    if held is None:
        held = _compiled[key] = (statement, _compile(statement, dialect))
    return held[1]


def _compile(statement: Executable, dialect: Dialect) -> Compiled:
    done = statement.compile(dialect=dialect)  # type: ignore[attr-defined]
    if not dialect.positional or done.positiontup is None:
        raise ValueError(f"{dialect.name}: only a positional driver's statements are run prepared")
    slots: list[tuple[str, Callable[[Any], Any] | None, Any]] = []
    for name in done.positiontup:
        bind = done.binds[name]
        if bind.expanding or bind.callable is not None:
            raise ValueError(f"a prepared statement's parameters are values, not lists or callables ({name})")
        if isinstance(bind.type, NullType):  # (no conversion known: a time would reach SQLite in the driver's form)
            raise ValueError(f"a prepared statement's parameter needs a type: compare it to a column, or give one ({name})")
        convert = bind.type.dialect_impl(dialect).bind_processor(dialect)
        if bind.required:
            slots.append((name, convert, _REQUIRED))
        else:
            slots.append((name, convert, bind.value if convert is None else convert(bind.value)))
    columns = list(getattr(statement, "selected_columns", None) or getattr(statement, "exported_columns", None) or [])
    readers = tuple(column.type.dialect_impl(dialect).result_processor(dialect, None) for column in columns)
    names = [getattr(column, "key", None) or f"c{i}" for i, column in enumerate(columns)]
    return Compiled(
        sql=done.string, slots=tuple(slots), columns=readers,
        row=namedtuple("Row", names, rename=True) if names else tuple,  # type: ignore[misc]  # noqa: PYI024
        scalar=isinstance(statement, SelectOfScalar) and len(columns) == 1,
    )


class Rows:
    """What the ledger asks of a prepared statement's result (as of SQLAlchemy's, for those calls)."""

    def __init__(self, rows: list[Any], rowcount: int) -> None:
        self._rows, self.rowcount = rows, rowcount

    def all(self) -> list[Any]:
        return self._rows

    def first(self) -> Any:
        return self._rows[0] if self._rows else None

    def one(self) -> Any:
        if not self._rows:
            raise NoResultFound("No row was found when one was required")
        if len(self._rows) > 1:
            raise MultipleResultsFound("Multiple rows were found when exactly one was required")
        return self._rows[0]

    def scalar_one(self) -> Any:
        """The one row's first value (an insert's ``RETURNING id``)."""
        return self.one()[0]
