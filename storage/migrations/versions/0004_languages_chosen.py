"""languages chosen

A person's or customer's ``language`` is Telegram's ``language_code`` as last seen until they
choose one with /language; ``language_chosen`` says which, so a choice is never overwritten by
what their Telegram app says, and what it says is followed otherwise.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 05:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    for table in ('person', 'customer'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column('language_chosen', sa.Boolean(), nullable=False,
                                          server_default=sa.false()))


def downgrade() -> None:
    for table in ('person', 'customer'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column('language_chosen')
