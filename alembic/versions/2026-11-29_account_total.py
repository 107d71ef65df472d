"""a maintained count of all accounts, so that an admin's list does not count 100,000 rows

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app import counters

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "account_total",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_account_total_one_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_account_total")),
    )
    counters.create_counters(op, op.get_bind().dialect.name, counters.ACCOUNT_TOTAL_V1)


def downgrade() -> None:
    counters.drop_counters(op, op.get_bind().dialect.name, counters.ACCOUNT_TOTAL_V1)
    op.drop_table("account_total")
