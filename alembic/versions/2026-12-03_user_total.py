"""a kept count of all users and of the active ones, so that an admin's user list does not
count every user

The admin's paginated `GET /users` answered `num-records` with a count over every user (the
active ones, unless `include_inactive`): at 10,000 accounts (22,660 users) that count was most
of the request's SQL. Now triggers on "user" keep both totals in 64 rows (`id % 64`, as
`account_total` since 0005), and the list sums them.

The audit log's indexes that serve its pages and counts, (affected_account_id,
event_datetime, id) and (affected_user_id, event_datetime, id), exist since 0001 and 0004.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app import counters

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "user_total",
        sa.Column("slot", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("active_total", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            f"slot >= 0 AND slot < {counters.USER_TOTAL_SLOTS_V1}",
            name=op.f("ck_user_total_slot"),
        ),
        sa.PrimaryKeyConstraint("slot", name=op.f("pk_user_total")),
    )
    # Triggers only: "user" itself is not rebuilt (on SQLite a batch rebuild would drop the
    # user-count triggers on it).
    counters.create_counters(op, op.get_bind().dialect.name, counters.USER_TOTAL_V1)


def downgrade() -> None:
    counters.drop_counters(op, op.get_bind().dialect.name, counters.USER_TOTAL_V1)
    op.drop_table("user_total")
