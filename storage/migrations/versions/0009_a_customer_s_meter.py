"""a customer's meter: the Omnimetic utility service account tied to them

``/meter <device> <account>`` ties the device's customer to their utility service account (linked
through Omnimetic's OmniConnect), so that ``/usage`` can show their energy use. One account belongs to
one customer at most (unique), so a customer never sees another's.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 10:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storage.types

revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('customer', schema=None) as batch_op:
        batch_op.add_column(sa.Column('utility_account', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('utility_account_tied_at', storage.types.UTCDateTime(), nullable=True))
        batch_op.create_unique_constraint('uq_customer_utility_account', ['utility_account'])


def downgrade() -> None:
    with op.batch_alter_table('customer', schema=None) as batch_op:
        batch_op.drop_constraint('uq_customer_utility_account', type_='unique')
        batch_op.drop_column('utility_account_tied_at')
        batch_op.drop_column('utility_account')
