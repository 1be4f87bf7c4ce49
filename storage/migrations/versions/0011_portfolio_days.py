"""portfolio days: the plans' figures kept once each day is over, and indexes for reading since a moment

- ``portfolio_day``: per day (in the business's time zone) the active, paid-off and repossessed plans, left
  to pay, left to pay more than 30 days past due, what falls due the next day and what was collected —
  what ``/portfolio``'s chart and the summary's PAR30 line read instead of millions of rows.
- Indexes on ``payment.matched_at``, ``reversal.at`` and ``plan_event.at``: the plans as they stood at a
  moment are the plans now, less what happened since (``storage.ledger.portfolio``).
- ``plan_event.credit_until``: the device's credit as an import set it, which no code records.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 17:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storage.types

revision: str = '0011'
down_revision: str | None = '0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MONEY = storage.types.Money(length=40)


def upgrade() -> None:
    op.create_table(
        'portfolio_day',
        sa.Column('day', sa.Date(), nullable=False),
        sa.Column('ended_at', storage.types.UTCDateTime(), nullable=False),
        sa.Column('active', sa.Integer(), nullable=False),
        sa.Column('paid_off', sa.Integer(), nullable=False),
        sa.Column('repossessed', sa.Integer(), nullable=False),
        sa.Column('left', MONEY, nullable=False),
        sa.Column('at_risk', MONEY, nullable=False),
        sa.Column('due_next', MONEY, nullable=False),
        sa.Column('collected', MONEY, nullable=False),
        sa.Column('made_at', storage.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('day'),
    )
    op.create_index('ix_payment_matched', 'payment', ['matched_at'], unique=False)
    op.create_index(op.f('ix_reversal_at'), 'reversal', ['at'], unique=False)
    with op.batch_alter_table('plan_event', schema=None) as batch_op:
        batch_op.add_column(sa.Column('credit_until', storage.types.UTCDateTime(), nullable=True))
        batch_op.create_index(batch_op.f('ix_plan_event_at'), ['at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('plan_event', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_plan_event_at'))
        batch_op.drop_column('credit_until')
    op.drop_index(op.f('ix_reversal_at'), table_name='reversal')
    op.drop_index('ix_payment_matched', table_name='payment')
    op.drop_table('portfolio_day')
