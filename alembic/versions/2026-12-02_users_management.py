"""users management: timezone, log-in and activity times, a version (ETag), lower-cased emails

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.db import UTCDateTime

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


class EmailCollision(RuntimeError):
    pass


def upgrade() -> None:
    bind = op.get_bind()
    # Emails are stored lower-cased from now on, and unique whatever their case: two that
    # differ only by case can't both be kept, and which one to keep is a person's decision.
    collisions = bind.execute(
        sa.text(
            'SELECT lower(email) AS email, count(*) FROM "user" GROUP BY lower(email) '
            "HAVING count(*) > 1 ORDER BY lower(email)"
        )
    ).all()
    if collisions:
        names = ", ".join(row.email for row in collisions)
        raise EmailCollision(
            "Cannot store emails lower-cased: these belong to more than one user when case is "
            f"ignored: {names}. Change or remove all but one of each, then upgrade again."
        )
    op.execute('UPDATE "user" SET email = lower(email) WHERE email <> lower(email)')
    # Plain ADD COLUMNs (no batch): SQLite would otherwise rebuild the table and lose the
    # user-count triggers on it.
    op.add_column(
        "user",
        sa.Column("timezone", sa.String(64), server_default="Europe/Amsterdam", nullable=False),
    )
    op.add_column("user", sa.Column("last_login_at", UTCDateTime(), nullable=True))
    op.add_column("user", sa.Column("last_seen_at", UTCDateTime(), nullable=True))
    op.add_column("user", sa.Column("version", sa.Integer(), server_default="1", nullable=False))
    op.create_index(
        "ix_audit_log_affected_user_id_event_datetime",
        "audit_log",
        ["affected_user_id", "event_datetime", "id"],
    )


def downgrade() -> None:
    op.drop_index("ix_audit_log_affected_user_id_event_datetime", table_name="audit_log")
    for column in ("version", "last_seen_at", "last_login_at", "timezone"):
        with op.batch_alter_table("user", recreate="never") as batch:
            batch.drop_column(column)
