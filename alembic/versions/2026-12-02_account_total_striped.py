"""the account total in 64 rows (slots), so that concurrent account creations do not queue

Every account insert updated the one row of migration 0003 and held its lock until commit,
through the WAL flush: concurrent creations ran one at a time (bench/counters.py, 16
connections: 633 transactions/s, 12 of 16 writers waiting on the row; docs/BENCHMARKS.md).
An account now counts in row `id % 64`, and the total is the sum of the rows.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app import counters

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    counters.drop_counters(op, dialect, counters.ACCOUNT_TOTAL_V1)
    op.drop_table("account_total")
    op.create_table(
        "account_total",
        sa.Column("slot", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            f"slot >= 0 AND slot < {counters.ACCOUNT_TOTAL_SLOTS_V2}",
            name=op.f("ck_account_total_slot"),
        ),
        sa.PrimaryKeyConstraint("slot", name=op.f("pk_account_total")),
    )
    counters.create_counters(op, dialect, counters.ACCOUNT_TOTAL_V2)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    counters.drop_counters(op, dialect, counters.ACCOUNT_TOTAL_V2)
    op.drop_table("account_total")
    op.create_table(
        "account_total",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_account_total_one_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_account_total")),
    )
    counters.create_counters(op, dialect, counters.ACCOUNT_TOTAL_V1)
