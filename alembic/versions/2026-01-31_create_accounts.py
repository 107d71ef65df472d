"""create accounts, roles, users and the audit log

Revision ID: 0001
Revises:
Create Date: 2026-01-31
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "account",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("primary_color", sa.String(length=7), nullable=True),
        sa.Column("secondary_color", sa.String(length=7), nullable=True),
        sa.Column("logo_url", sa.String(length=255), nullable=True),
        sa.Column("attributes", sa.JSON(), nullable=False),
        sa.Column("consultancy_account_id", sa.Integer(), nullable=True),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.ForeignKeyConstraint(
            ["consultancy_account_id"],
            ["account.id"],
            name=op.f("fk_account_consultancy_account_id_account"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_account")),
        sa.UniqueConstraint("name", name=op.f("uq_account_name")),
    )
    op.create_index(
        op.f("ix_account_consultancy_account_id"), "account", ["consultancy_account_id"]
    )
    # Serves ORDER BY lower(name), id: names sort case-insensitively (SPEC §5).
    op.create_index("ix_account_name_lower", "account", [sa.text("lower(name)"), "id"])

    op.create_table(
        "account_role",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=80), nullable=False),
        sa.Column("description", sa.String(length=255), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_account_role")),
        sa.UniqueConstraint("name", name=op.f("uq_account_role_name")),
    )
    op.create_table(
        "user_role",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=80), nullable=False),
        sa.Column("description", sa.String(length=255), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_role")),
        sa.UniqueConstraint("name", name=op.f("uq_user_role_name")),
    )
    op.create_table(
        "account_account_role",
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("account_role_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["account.id"],
            name=op.f("fk_account_account_role_account_id_account"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["account_role_id"],
            ["account_role.id"],
            name=op.f("fk_account_account_role_account_role_id_account_role"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "account_id", "account_role_id", name=op.f("pk_account_account_role")
        ),
    )
    op.create_index(
        op.f("ix_account_account_role_account_role_id"), "account_account_role", ["account_role_id"]
    )

    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("event_datetime", sa.DateTime(timezone=True), nullable=False),
        sa.Column("event", sa.String(length=255), nullable=False),
        # No foreign keys to users: the log outlives them, as in FlexMeasures.
        sa.Column("active_user_id", sa.Integer(), nullable=True),
        sa.Column("active_user_name", sa.String(length=255), nullable=True),
        sa.Column("affected_user_id", sa.Integer(), nullable=True),
        sa.Column("affected_account_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["affected_account_id"],
            ["account.id"],
            name=op.f("fk_audit_log_affected_account_id_account"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    op.create_index(
        "ix_audit_log_affected_account_id_event_datetime",
        "audit_log",
        ["affected_account_id", "event_datetime", "id"],
    )

    op.create_table(
        "user",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=255), nullable=False),
        sa.Column("username", sa.String(length=255), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("active", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("token_version", sa.Integer(), server_default="1", nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["account.id"], name=op.f("fk_user_account_id_account")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user")),
        sa.UniqueConstraint("email", name=op.f("uq_user_email")),
    )
    op.create_index(op.f("ix_user_account_id"), "user", ["account_id"])

    op.create_table(
        "user_user_role",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("user_role_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user.id"],
            name=op.f("fk_user_user_role_user_id_user"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_role_id"],
            ["user_role.id"],
            name=op.f("fk_user_user_role_user_role_id_user_role"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", "user_role_id", name=op.f("pk_user_user_role")),
    )


def downgrade() -> None:
    op.drop_table("user_user_role")
    op.drop_index(op.f("ix_user_account_id"), table_name="user")
    op.drop_table("user")
    op.drop_index("ix_audit_log_affected_account_id_event_datetime", table_name="audit_log")
    op.drop_table("audit_log")
    op.drop_index(
        op.f("ix_account_account_role_account_role_id"), table_name="account_account_role"
    )
    op.drop_table("account_account_role")
    op.drop_table("user_role")
    op.drop_table("account_role")
    op.drop_index("ix_account_name_lower", table_name="account")
    op.drop_index(op.f("ix_account_consultancy_account_id"), table_name="account")
    op.drop_table("account")
