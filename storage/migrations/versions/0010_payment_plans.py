"""payment plans to ownership: plans and their history, reversals, what a payment did to its plan

- ``plan``: a device's total price, price per day, currency, deposit, paid so far and status (active,
  paid off, repossessed); at most one not repossessed per device. ``plan_event``: its history.
- ``reversal``: a payment taken back by its provider, once per payment (and per reversal reference).
- ``payment``: the plan it counts toward, the balance after it, money beyond the total, the daily price
  its days were made at, what paid a debt, when it was reversed. ``device.owed``: what reversed
  payments whose codes were already issued left owing. ``approval``: the plan paid off whose unlock
  code it decides (no agent asks for those).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 14:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import storage.types

revision: str = '0010'
down_revision: str | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APPROVAL_BEFORE = sa.Enum('PENDING', 'APPROVED', 'REJECTED', 'EXPIRED', name='approvalstatus')
APPROVAL_AFTER = sa.Enum('PENDING', 'APPROVED', 'REJECTED', 'EXPIRED', 'CANCELLED', name='approvalstatus')
PLAN_STATUS = sa.Enum('ACTIVE', 'PAID_OFF', 'REPOSSESSED', name='planstatus')
MONEY = storage.types.Money(length=40)


def upgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        # SQLite keeps enums as text; PostgreSQL has types to extend.
        op.execute("ALTER TYPE source ADD VALUE IF NOT EXISTS 'PLAN'")
        op.execute("ALTER TYPE approvalstatus ADD VALUE IF NOT EXISTS 'CANCELLED'")
        op.execute("ALTER TYPE paymentnotice ADD VALUE IF NOT EXISTS 'PAID_OFF'")
        op.execute("ALTER TYPE paymentnotice ADD VALUE IF NOT EXISTS 'REVERSED'")
    op.create_table(
        'plan',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('device_id', sa.Integer(), nullable=False),
        sa.Column('customer_id', sa.Integer(), nullable=True),
        sa.Column('total', MONEY, nullable=False),
        sa.Column('daily_price', MONEY, nullable=False),
        sa.Column('currency', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
        sa.Column('deposit', MONEY, nullable=False),
        sa.Column('opening_paid', MONEY, nullable=False),
        sa.Column('paid', MONEY, nullable=False),
        sa.Column('status', PLAN_STATUS, nullable=False),
        sa.Column('started_at', storage.types.UTCDateTime(), nullable=False),
        sa.Column('ended_at', storage.types.UTCDateTime(), nullable=True),
        sa.Column('created_by_id', sa.Integer(), nullable=True),
        sa.Column('unlock_approval_id', sa.Integer(), nullable=True),
        sa.Column('unlock_request_id', sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(['device_id'], ['device.id']),
        sa.ForeignKeyConstraint(['customer_id'], ['customer.id']),
        sa.ForeignKeyConstraint(['created_by_id'], ['person.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index(op.f('ix_plan_device_id'), 'plan', ['device_id'], unique=False)
    op.create_index(op.f('ix_plan_customer_id'), 'plan', ['customer_id'], unique=False)
    op.create_index('uq_plan_device_current', 'plan', ['device_id'], unique=True,
                    sqlite_where=sa.text("status != 'REPOSSESSED'"),
                    postgresql_where=sa.text("status != 'REPOSSESSED'"))
    op.create_table(
        'plan_event',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('plan_id', sa.Integer(), nullable=False),
        sa.Column('at', storage.types.UTCDateTime(), nullable=False),
        sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column('by_id', sa.Integer(), nullable=True),
        sa.Column('total', MONEY, nullable=False),
        sa.Column('daily_price', MONEY, nullable=False),
        sa.Column('currency', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
        sa.Column('deposit', MONEY, nullable=False),
        sa.Column('paid', MONEY, nullable=False),
        sa.Column('note', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=True),
        sa.ForeignKeyConstraint(['plan_id'], ['plan.id']),
        sa.ForeignKeyConstraint(['by_id'], ['person.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index(op.f('ix_plan_event_plan_id'), 'plan_event', ['plan_id'], unique=False)
    op.create_table(
        'reversal',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('payment_id', sa.Integer(), nullable=False),
        sa.Column('reference', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
        sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column('by_id', sa.Integer(), nullable=True),
        sa.Column('at', storage.types.UTCDateTime(), nullable=False),
        sa.Column('amount', MONEY, nullable=False),
        sa.Column('cancelled_days', sa.Integer(), nullable=False),
        sa.Column('owed', MONEY, nullable=False),
        sa.Column('taken', MONEY, nullable=False),
        sa.Column('plan_id', sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(['payment_id'], ['payment.id']),
        sa.ForeignKeyConstraint(['by_id'], ['person.id']),
        sa.ForeignKeyConstraint(['plan_id'], ['plan.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('payment_id'),
        sa.UniqueConstraint('reference'),
    )
    with op.batch_alter_table('payment', schema=None) as batch_op:
        batch_op.add_column(sa.Column('plan_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('plan_paid', MONEY, nullable=True))
        batch_op.add_column(sa.Column('excess', MONEY, nullable=True))
        batch_op.add_column(sa.Column('day_money', MONEY, nullable=True))
        batch_op.add_column(sa.Column('day_price', MONEY, nullable=True))
        batch_op.add_column(sa.Column('owed_paid', MONEY, nullable=True))
        batch_op.add_column(sa.Column('reversed_at', storage.types.UTCDateTime(), nullable=True))
        batch_op.create_index(batch_op.f('ix_payment_plan_id'), ['plan_id'], unique=False)
        batch_op.create_foreign_key('fk_payment_plan_id_plan', 'plan', ['plan_id'], ['id'])
    with op.batch_alter_table('device', schema=None) as batch_op:
        batch_op.add_column(sa.Column('owed', MONEY, nullable=False, server_default='0'))
    with op.batch_alter_table('approval', schema=None) as batch_op:
        batch_op.add_column(sa.Column('plan_id', sa.Integer(), nullable=True))
        batch_op.alter_column('requested_by_id', existing_type=sa.Integer(), nullable=True)
        if op.get_bind().dialect.name != 'postgresql':  # an enum as text: its length is the longest name's
            batch_op.alter_column('status', existing_type=APPROVAL_BEFORE, type_=APPROVAL_AFTER,
                                  existing_nullable=False)
        batch_op.create_foreign_key('fk_approval_plan_id_plan', 'plan', ['plan_id'], ['id'])


def downgrade() -> None:
    reversals = op.get_bind().execute(sa.text("SELECT COUNT(*) FROM reversal")).scalar() or 0
    if reversals:  # older code would take reversed payments for money again, and forget what devices owe
        raise RuntimeError(f"cannot downgrade below 0010: the ledger holds {reversals} reversed payment(s) that "
                           "older code would count again; restore a backup taken before 0010 instead")
    # what the code before plans cannot read: plan approvals (no agent asked them), and the new enum values
    op.execute("DELETE FROM approval WHERE plan_id IS NOT NULL")
    op.execute("UPDATE approval SET status = 'EXPIRED' WHERE status = 'CANCELLED'")
    op.execute("UPDATE code_request SET source = 'CLI' WHERE source = 'PLAN'")
    op.execute("UPDATE payment SET notice = NULL WHERE notice IN ('PAID_OFF', 'REVERSED')")
    with op.batch_alter_table('approval', schema=None) as batch_op:
        batch_op.drop_constraint('fk_approval_plan_id_plan', type_='foreignkey')
        batch_op.alter_column('requested_by_id', existing_type=sa.Integer(), nullable=False)
        batch_op.drop_column('plan_id')
    with op.batch_alter_table('device', schema=None) as batch_op:
        batch_op.drop_column('owed')
    with op.batch_alter_table('payment', schema=None) as batch_op:
        batch_op.drop_constraint('fk_payment_plan_id_plan', type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_payment_plan_id'))
        for column in ('reversed_at', 'owed_paid', 'day_price', 'day_money', 'excess', 'plan_paid', 'plan_id'):
            batch_op.drop_column(column)
    op.drop_table('reversal')
    op.drop_index(op.f('ix_plan_event_plan_id'), table_name='plan_event')
    op.drop_table('plan_event')
    op.drop_index('uq_plan_device_current', table_name='plan')
    op.drop_index(op.f('ix_plan_customer_id'), table_name='plan')
    op.drop_index(op.f('ix_plan_device_id'), table_name='plan')
    op.drop_table('plan')
    if op.get_bind().dialect.name == 'postgresql':
        PLAN_STATUS.drop(op.get_bind(), checkfirst=True)
