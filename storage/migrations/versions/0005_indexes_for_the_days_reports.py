"""indexes for the day's reports

The summary, the chart and the export read one day of codes (by ``issued_at``) and payments (by
``received_at``); without these indexes each read scanned every generated code of the ledger.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22 05:45:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index('ix_code_request_issued', 'code_request', ['issued_at'], unique=False)
    op.create_index('ix_payment_received', 'payment', ['received_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_payment_received', table_name='payment')
    op.drop_index('ix_code_request_issued', table_name='code_request')
