"""payments stored first, then matched

A payment is stored before anything else and then matched to a device and turned into days;
these columns say how far it got (PENDING: the ERM could not be asked yet), why it is kept for a
manager, what it did to the device's credit, and who is still owed a word about it.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 02:27:39.819240
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import storage.types

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NOTICE = sa.Enum('MANAGERS', 'RECEIVED', name='paymentnotice')


def upgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        # SQLite keeps enums as text; PostgreSQL has a type to extend and one to create.
        op.execute("ALTER TYPE paymentstatus ADD VALUE IF NOT EXISTS 'PENDING'")
        NOTICE.create(op.get_bind(), checkfirst=True)
    with op.batch_alter_table('payment', schema=None) as batch_op:
        batch_op.add_column(sa.Column('payer', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True))
        batch_op.add_column(sa.Column('chat_id', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True))
        batch_op.add_column(sa.Column('prepaid_days', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('credit_left', storage.types.Money(length=40), nullable=True))
        batch_op.add_column(sa.Column('matched_at', storage.types.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('assigned_by_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('attempts', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('retry_at', storage.types.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('notice', NOTICE, nullable=True))
        batch_op.add_column(sa.Column('notified_at', storage.types.UTCDateTime(), nullable=True))
        batch_op.create_index(batch_op.f('ix_payment_reference'), ['reference'], unique=False)
        batch_op.create_index('ix_payment_status_retry', ['status', 'retry_at'], unique=False)
        batch_op.create_foreign_key('fk_payment_assigned_by_id_person', 'person', ['assigned_by_id'], ['id'])


def downgrade() -> None:
    with op.batch_alter_table('payment', schema=None) as batch_op:
        batch_op.drop_constraint('fk_payment_assigned_by_id_person', type_='foreignkey')
        batch_op.drop_index('ix_payment_status_retry')
        batch_op.drop_index(batch_op.f('ix_payment_reference'))
        batch_op.drop_column('notified_at')
        batch_op.drop_column('notice')
        batch_op.drop_column('retry_at')
        batch_op.drop_column('attempts')
        batch_op.drop_column('assigned_by_id')
        batch_op.drop_column('matched_at')
        batch_op.drop_column('credit_left')
        batch_op.drop_column('prepaid_days')
        batch_op.drop_column('reason')
        batch_op.drop_column('chat_id')
        batch_op.drop_column('payer')
    if op.get_bind().dialect.name == 'postgresql':
        NOTICE.drop(op.get_bind(), checkfirst=True)
        # A value cannot be taken out of a PostgreSQL enum type; 'PENDING' stays, unused.
