"""a maintained count of all accounts, so that an admin's list does not count 100,000 rows

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PG_FUNCTION = """
CREATE OR REPLACE FUNCTION account_total_sync() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE account_total SET total = total + 1 WHERE id = 1;
    ELSE
        UPDATE account_total SET total = total - 1 WHERE id = 1;
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql
"""
PG_TRIGGERS = [
    """CREATE TRIGGER account_total_on_insert AFTER INSERT ON account
       FOR EACH ROW EXECUTE FUNCTION account_total_sync()""",
    """CREATE TRIGGER account_total_on_delete AFTER DELETE ON account
       FOR EACH ROW EXECUTE FUNCTION account_total_sync()""",
]
SQLITE_TRIGGERS = [
    """CREATE TRIGGER account_total_on_insert AFTER INSERT ON account BEGIN
       UPDATE account_total SET total = total + 1 WHERE id = 1; END""",
    """CREATE TRIGGER account_total_on_delete AFTER DELETE ON account BEGIN
       UPDATE account_total SET total = total - 1 WHERE id = 1; END""",
]


def upgrade() -> None:
    op.create_table(
        "account_total",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_account_total_one_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_account_total")),
    )
    op.execute("INSERT INTO account_total (id, total) SELECT 1, count(*) FROM account")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(PG_FUNCTION)
        triggers = PG_TRIGGERS
    else:
        triggers = SQLITE_TRIGGERS
    for trigger in triggers:
        op.execute(trigger)


def downgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    for name in ("account_total_on_insert", "account_total_on_delete"):
        op.execute(f"DROP TRIGGER IF EXISTS {name}" + (" ON account" if postgresql else ""))
    if postgresql:
        op.execute("DROP FUNCTION IF EXISTS account_total_sync()")
    op.drop_table("account_total")
