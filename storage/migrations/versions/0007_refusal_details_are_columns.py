"""a refusal's details are columns, not prose

A request refused for stacking or the daily limit kept its details in ``code_request.reason`` as
prose that the texts parsed back (``stacking: 95 days fit``, ``daily_limit: next at <time>``). The
reason is now the word alone and the details are columns: ``refused_fits`` (the days that fitted)
and ``refused_until`` (when the device's next code could go out). Existing rows are converted
once, here; a row whose prose does not read as the engine wrote it is left as it was.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-09 06:00:00
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

import storage.types

revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_STACKING = re.compile(r"stacking: (\d+) days fit")
_DAILY_LIMIT = re.compile(r"daily_limit: next at (.+)")

_code_request = sa.table(
    'code_request',
    sa.column('id', sa.Integer()),
    sa.column('reason', sa.String()),
    sa.column('refused_fits', sa.Integer()),
    sa.column('refused_until', storage.types.UTCDateTime()),
)


def upgrade() -> None:
    with op.batch_alter_table('code_request', schema=None) as batch_op:
        batch_op.add_column(sa.Column('refused_fits', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('refused_until', storage.types.UTCDateTime(), nullable=True))
    connection = op.get_bind()
    rows = connection.execute(
        sa.select(_code_request.c.id, _code_request.c.reason)
        .where(sa.or_(_code_request.c.reason.like('stacking: %'), _code_request.c.reason.like('daily_limit: %')))
    ).all()
    for request_id, reason in rows:
        values = _details(reason)
        if values is not None:
            connection.execute(_code_request.update().where(_code_request.c.id == request_id).values(**values))


def _details(reason: str) -> dict[str, object] | None:
    """The columns of a refusal kept as prose (None: not the engine's prose)."""
    if match := _STACKING.fullmatch(reason):
        return {'reason': 'stacking', 'refused_fits': int(match[1])}
    if match := _DAILY_LIMIT.fullmatch(reason):
        try:
            until = datetime.fromisoformat(match[1])
        except ValueError:
            return None
        return {'reason': 'daily_limit', 'refused_until': until if until.tzinfo else until.replace(tzinfo=UTC)}
    return None


def downgrade() -> None:
    connection = op.get_bind()
    rows = connection.execute(
        sa.select(_code_request.c.id, _code_request.c.reason, _code_request.c.refused_fits,
                  _code_request.c.refused_until)
        .where(sa.or_(_code_request.c.refused_fits.is_not(None), _code_request.c.refused_until.is_not(None)))
    ).all()
    for request_id, reason, fits, until in rows:
        if reason == 'stacking' and fits is not None:
            prose = f"stacking: {fits} days fit"
        elif reason == 'daily_limit' and until is not None:
            prose = f"daily_limit: next at {until}"
        else:
            continue
        connection.execute(_code_request.update().where(_code_request.c.id == request_id).values(reason=prose))
    with op.batch_alter_table('code_request', schema=None) as batch_op:
        batch_op.drop_column('refused_until')
        batch_op.drop_column('refused_fits')
