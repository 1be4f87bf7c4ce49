"""what the security review changed in the ledger

- ``device.verified``: its ids come from the ERM's item record (devices known by two or more ids
  already were learned that way); a device known only by what people typed is checked against its
  code history before its first code (``bot.issuing``).
- A daily price always has a currency: old prices without one get ``PAYGBOT_CURRENCY``.
- Payments: one per (provider, reference) still, but a later copy of the same money (the provider's
  confirmation of a pasted one) or a conflicting one (same reference, another amount or account) is
  kept beside it (``duplicate_of``), never dropped; ``confirmed_at`` on a pasted payment.
- Customers' phones are full international numbers (E.164): local ones are read in
  ``PAYGBOT_PHONE_REGION``. A number that cannot be read, or would become another customer's, is
  left as it was.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 06:00:00
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import phonenumbers
import sqlalchemy as sa
from alembic import context, op

import storage.types

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger("alembic.paygbot")


def _setting(name: str, default: str) -> str:
    return str(context.config.attributes.get(name) or default)


def upgrade() -> None:
    with op.batch_alter_table('device', schema=None) as batch_op:
        batch_op.add_column(sa.Column('verified', sa.Boolean(), nullable=False, server_default=sa.false()))
    op.execute("UPDATE device SET verified = (SELECT COUNT(*) FROM device_alias WHERE device_alias.device_id = "
               "device.id) > 1")
    device = sa.table('device', sa.column('daily_price'), sa.column('currency'))
    op.execute(device.update().where(device.c.daily_price.is_not(None), device.c.currency.is_(None))
               .values(currency=_setting('currency', 'KES')))

    with op.batch_alter_table('payment', schema=None) as batch_op:
        batch_op.add_column(sa.Column('duplicate_of', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('confirmed_at', storage.types.UTCDateTime(), nullable=True))
        batch_op.create_foreign_key('fk_payment_duplicate_of', 'payment', ['duplicate_of'], ['id'])
        batch_op.create_index(batch_op.f('ix_payment_duplicate_of'), ['duplicate_of'], unique=False)
        batch_op.drop_constraint('uq_payment_provider_reference', type_='unique')
    op.create_index('uq_payment_provider_reference', 'payment', ['provider', 'reference'], unique=True,
                    sqlite_where=sa.text('duplicate_of IS NULL'), postgresql_where=sa.text('duplicate_of IS NULL'))

    _phones_to_e164(_setting('phone_region', 'KE'))


def _phones_to_e164(region: str) -> None:
    connection = op.get_bind()
    rows = connection.execute(sa.text("SELECT id, phone FROM customer ORDER BY id")).all()
    taken = {phone for _, phone in rows}
    for customer_id, phone in rows:
        e164 = _e164(phone, region)
        if e164 is None or e164 == phone:
            continue
        if e164 in taken:
            log.warning("customer %s: phone not converted, %s is another customer's", customer_id, e164)
            continue
        connection.execute(sa.text("UPDATE customer SET phone = :phone WHERE id = :id"),
                           {"phone": e164, "id": customer_id})
        taken.add(e164)


def _e164(stored: str, region: str) -> str | None:
    """Stored numbers were digits: with the country code (254712…) or local (0712…)."""
    for text, where in ((f"+{stored}", None), (stored, region)) if not stored.startswith("0") else ((stored, region),):
        try:
            number = phonenumbers.parse(text, where)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(number):
            return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return None


def downgrade() -> None:
    op.drop_index('uq_payment_provider_reference', table_name='payment')
    with op.batch_alter_table('payment', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_payment_duplicate_of'))
        batch_op.drop_constraint('fk_payment_duplicate_of', type_='foreignkey')
        batch_op.drop_column('confirmed_at')
        batch_op.drop_column('duplicate_of')
        batch_op.create_unique_constraint('uq_payment_provider_reference', ['provider', 'reference'])
    with op.batch_alter_table('device', schema=None) as batch_op:
        batch_op.drop_column('verified')
