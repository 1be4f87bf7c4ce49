"""chat menus: the fingerprint of each chat's registered command menu

``chat_menu`` keeps, per chat, a fingerprint of the command list and menu button last registered with
Telegram, so that a start registers only the menus that changed (it sent four ``setMyCommands`` for every
person and customer at every start).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03 15:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storage.types

revision: str = '0014'
down_revision: str | None = '0013'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "chat_menu",
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("registered_at", storage.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("chat_id"),
    )


def downgrade() -> None:
    op.drop_table("chat_menu")
