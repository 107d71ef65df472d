"""indexes for scale: trigram name search, a maintained user count per account

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app import counters

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    with op.batch_alter_table("account") as batch:
        batch.add_column(sa.Column("user_count", sa.Integer(), server_default="0", nullable=False))
    # ORDER BY user_count {ASC|DESC}, id ASC, each served by an index in its own direction.
    op.create_index("ix_account_user_count_id", "account", ["user_count", "id"])
    op.create_index("ix_account_user_count_desc_id", "account", [sa.text("user_count DESC"), "id"])
    # The user count of every account is kept by the database itself, whoever writes users
    # (the service, the CLI, a bulk load), so that sorting by it is an index scan.
    counters.create_counters(op, dialect, counters.USER_COUNT_V1)
    if dialect == "postgresql":
        # Case-insensitive substring search on names: the filter is `name ILIKE '%term%'`
        # on PostgreSQL, which a trigram index serves (pg_trgm is a trusted extension: a
        # database owner may create it).
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        op.create_index(
            "ix_account_name_trgm",
            "account",
            ["name"],
            postgresql_using="gin",
            postgresql_ops={"name": "gin_trgm_ops"},
        )
        # With `name` included, pages sorted by name are found by an index-only scan
        # (PostgreSQL needs the expression's column in the index to skip the table).
        op.drop_index("ix_account_name_lower", table_name="account")
        op.create_index(
            "ix_account_name_lower",
            "account",
            [sa.text("lower(name)"), "id"],
            postgresql_include=["name"],
        )


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    counters.drop_counters(op, dialect, counters.USER_COUNT_V1)
    if dialect == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_account_name_trgm")
        op.drop_index("ix_account_name_lower", table_name="account")
        op.create_index("ix_account_name_lower", "account", [sa.text("lower(name)"), "id"])
    op.drop_index("ix_account_user_count_desc_id", table_name="account")
    op.drop_index("ix_account_user_count_id", table_name="account")
    with op.batch_alter_table("account") as batch:
        batch.drop_column("user_count")
    if dialect == "sqlite":
        # Batch mode rebuilt the table and cannot carry expression indexes over.
        op.execute("CREATE INDEX IF NOT EXISTS ix_account_name_lower ON account (lower(name), id)")
