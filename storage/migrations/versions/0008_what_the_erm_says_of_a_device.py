"""what the ERM says of a device: its description and life cycle

The device sync reads every item of the distributor (``assignedItemsList`` over REST,
``getAllClientItems`` over GraphQL) with its description ("Solar home system …") and its life
cycle (``INITIATED``, ``ASSIGNED``, …). They are kept on the device so that ``/find`` can match
what a field agent reads on the device, and ``/device`` can show it.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('device', schema=None) as batch_op:
        batch_op.add_column(sa.Column('description', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('life_cycle', sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('device', schema=None) as batch_op:
        batch_op.drop_column('life_cycle')
        batch_op.drop_column('description')
