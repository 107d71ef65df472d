"""indexes for scale: trigram name search, a maintained user count per account

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The user count of every account is kept by the database itself, whoever writes users
# (the service, the CLI, a bulk load), so that sorting by it is an index scan.
PG_FUNCTION = """
CREATE OR REPLACE FUNCTION account_user_count_sync() RETURNS trigger AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        UPDATE account SET user_count = user_count - 1 WHERE id = OLD.account_id;
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') THEN
        UPDATE account SET user_count = user_count + 1 WHERE id = NEW.account_id;
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql
"""
PG_TRIGGERS = [
    """CREATE TRIGGER user_count_on_insert AFTER INSERT ON "user"
       FOR EACH ROW EXECUTE FUNCTION account_user_count_sync()""",
    """CREATE TRIGGER user_count_on_delete AFTER DELETE ON "user"
       FOR EACH ROW EXECUTE FUNCTION account_user_count_sync()""",
    """CREATE TRIGGER user_count_on_move AFTER UPDATE OF account_id ON "user"
       FOR EACH ROW WHEN (OLD.account_id IS DISTINCT FROM NEW.account_id)
       EXECUTE FUNCTION account_user_count_sync()""",
]
SQLITE_TRIGGERS = [
    """CREATE TRIGGER user_count_on_insert AFTER INSERT ON "user" BEGIN
       UPDATE account SET user_count = user_count + 1 WHERE id = NEW.account_id; END""",
    """CREATE TRIGGER user_count_on_delete AFTER DELETE ON "user" BEGIN
       UPDATE account SET user_count = user_count - 1 WHERE id = OLD.account_id; END""",
    """CREATE TRIGGER user_count_on_move AFTER UPDATE OF account_id ON "user"
       WHEN OLD.account_id IS NOT NEW.account_id BEGIN
       UPDATE account SET user_count = user_count - 1 WHERE id = OLD.account_id;
       UPDATE account SET user_count = user_count + 1 WHERE id = NEW.account_id; END""",
]


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    with op.batch_alter_table("account") as batch:
        batch.add_column(sa.Column("user_count", sa.Integer(), server_default="0", nullable=False))
    op.execute(
        'UPDATE account SET user_count = (SELECT count(*) FROM "user" '
        'WHERE "user".account_id = account.id)'
    )
    # ORDER BY user_count {ASC|DESC}, id ASC, each served by an index in its own direction.
    op.create_index("ix_account_user_count_id", "account", ["user_count", "id"])
    op.create_index("ix_account_user_count_desc_id", "account", [sa.text("user_count DESC"), "id"])
    if dialect == "postgresql":
        op.execute(PG_FUNCTION)
        for trigger in PG_TRIGGERS:
            op.execute(trigger)
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
    else:
        for trigger in SQLITE_TRIGGERS:
            op.execute(trigger)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for name in ("user_count_on_insert", "user_count_on_delete", "user_count_on_move"):
        if dialect == "postgresql":
            op.execute(f'DROP TRIGGER IF EXISTS {name} ON "user"')
        else:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    if dialect == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS account_user_count_sync()")
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
