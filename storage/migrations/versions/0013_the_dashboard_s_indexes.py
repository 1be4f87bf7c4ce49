"""the dashboard's indexes: the devices a page at a time, by credit, by agent, found by part of a name

- ``ix_device_label``: every device in order of label, a page at a time (a deep page walks the index only).
- ``ix_device_unlocked_credit``: the devices whose credit ends soon, and those past due (counted from the
  index alone, and listed in its order).
- ``ix_plan_status_device``: the devices paid off, and those on an active plan since a moment (past due).
- ``ix_customer_registered_by_id``: one agent's customers.
- ``ix_device_alias_search``, ``ix_device_search``, ``ix_customer_search``: part of an id, a description, a
  customer's name or phone. On PostgreSQL trigram indexes: the migration makes the ``pg_trgm`` extension (in
  PostgreSQL's contrib, trusted: the database's owner may make it); on SQLite plain indexes, the alias's
  empty (its primary key's index is the same).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03 09:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0013'
down_revision: str | None = '0012'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.create_index('ix_device_label', 'device', ['label', 'id'], unique=False)
    op.create_index('ix_device_unlocked_credit', 'device', ['unlocked', 'credit_until', 'label', 'id'], unique=False)
    op.create_index('ix_plan_status_device', 'plan', ['status', 'device_id', 'started_at'], unique=False)
    op.create_index(op.f('ix_customer_registered_by_id'), 'customer', ['registered_by_id'], unique=False)
    op.create_index('ix_device_search', 'device', ['description'], unique=False, postgresql_using='gin',
                    postgresql_ops={'description': 'gin_trgm_ops'})
    op.create_index('ix_customer_search', 'customer', ['name', 'phone'], unique=False, postgresql_using='gin',
                    postgresql_ops={'name': 'gin_trgm_ops', 'phone': 'gin_trgm_ops'})
    op.create_index('ix_device_alias_search', 'device_alias', ['alias'], unique=False, postgresql_using='gin',
                    postgresql_ops={'alias': 'gin_trgm_ops'}, sqlite_where=sa.text('0'))


def downgrade() -> None:
    # pg_trgm stays: dropping an extension may take others' objects with it, and it holds no data
    op.drop_index('ix_device_alias_search', table_name='device_alias')
    op.drop_index('ix_customer_search', table_name='customer')
    op.drop_index('ix_device_search', table_name='device')
    op.drop_index(op.f('ix_customer_registered_by_id'), table_name='customer')
    op.drop_index('ix_plan_status_device', table_name='plan')
    op.drop_index('ix_device_unlocked_credit', table_name='device')
    op.drop_index('ix_device_label', table_name='device')
