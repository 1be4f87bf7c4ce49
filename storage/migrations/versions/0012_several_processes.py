"""several processes on one ledger: telegram updates, notices held, chat state

- ``telegram_update``: the update ids the webhook received, so that a copy is handled once.
- ``payment.notice_held_until``: a payment's notice is sent by one process at a time.
- ``send_pace``: Telegram's limits kept for all the processes together.
- ``code_request.request_key``: the update that asked for a code, so that it is handled into one request.
- ``chat_state``: each person's dialogue and pending buttons between two updates, for whichever process
  takes the next one.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02 20:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storage.types

revision: str = '0012'
down_revision: str | None = '0011'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'telegram_update',
        sa.Column('update_id', sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column('received_at', storage.types.UTCDateTime(), nullable=False),
        sa.Column('held_until', storage.types.UTCDateTime(), nullable=False),
        sa.Column('done_at', storage.types.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint('update_id'),
    )
    op.create_index(op.f('ix_telegram_update_received_at'), 'telegram_update', ['received_at'], unique=False)
    op.create_table(
        'chat_state',
        sa.Column('user_id', sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column('data', sa.Text(), nullable=False),
        sa.Column('updated_at', storage.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('user_id'),
    )
    op.create_table(
        'send_pace',
        sa.Column('scope', sa.String(length=40), nullable=False),
        sa.Column('tat', storage.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('scope'),
    )
    with op.batch_alter_table('payment', schema=None) as batch_op:
        batch_op.add_column(sa.Column('notice_held_until', storage.types.UTCDateTime(), nullable=True))
    with op.batch_alter_table('code_request', schema=None) as batch_op:
        batch_op.add_column(sa.Column('request_key', sa.String(length=64), nullable=True))
        batch_op.create_index(batch_op.f('ix_code_request_request_key'), ['request_key'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('code_request', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_code_request_request_key'))
        batch_op.drop_column('request_key')
    op.drop_table('chat_state')
    op.drop_table('send_pace')
    with op.batch_alter_table('payment', schema=None) as batch_op:
        batch_op.drop_column('notice_held_until')
    op.drop_index(op.f('ix_telegram_update_received_at'), table_name='telegram_update')
    op.drop_table('telegram_update')
