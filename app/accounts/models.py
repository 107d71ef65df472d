"""Accounts, their account roles and the association between them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app import counters
from app.db import Base

#: The account role that lets an account's consultants act for client accounts (SPEC §4).
CONSULTANCY = "Consultancy"

account_account_role = Table(
    "account_account_role",
    Base.metadata,
    Column(
        "account_id", ForeignKey("account.id", ondelete="CASCADE"), primary_key=True, index=False
    ),
    Column(
        "account_role_id",
        ForeignKey("account_role.id", ondelete="CASCADE"),
        primary_key=True,
        index=True,
    ),
)


class AccountRole(Base):
    __tablename__ = "account_role"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(80), unique=True)
    description: Mapped[str | None] = mapped_column(String(255))


class AccountTotal(Base):
    """How many accounts there are: the sum of `total` over the rows, kept by database triggers
    (`app.counters`, ACCOUNT_TOTAL_V2, migration 0005), so that an admin's paginated list reads
    a few rows instead of counting every account. An account counts in the row `slot = id %
    ACCOUNT_TOTAL_SLOTS`: concurrent creations update different rows instead of queueing for one."""

    __tablename__ = "account_total"
    __table_args__ = (
        CheckConstraint(f"slot >= 0 AND slot < {counters.ACCOUNT_TOTAL_SLOTS}", name="slot"),
    )

    slot: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    total: Mapped[int]


class Account(Base):
    __tablename__ = "account"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    primary_color: Mapped[str | None] = mapped_column(String(7))
    secondary_color: Mapped[str | None] = mapped_column(String(7))
    logo_url: Mapped[str | None] = mapped_column(String(255))
    attributes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    consultancy_account_id: Mapped[int | None] = mapped_column(
        ForeignKey("account.id", ondelete="SET NULL"), index=True
    )
    # Bumped on every effective change; the ETag is derived from it (SPEC §5).
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    # All its users, active or not, counted by database triggers on "user" (`app.counters`,
    # USER_COUNT_V1, migration 0002), so that lists sort by it through an index; never
    # written by the ORM.
    user_count: Mapped[int] = mapped_column(Integer, server_default="0")

    account_roles: Mapped[list[AccountRole]] = relationship(
        secondary=account_account_role, lazy="raise", order_by=AccountRole.id
    )

    # Server-side values (user_count) come back with the INSERT, never by a lazy load.
    __mapper_args__ = {"eager_defaults": True}  # noqa: RUF012  (SQLAlchemy's declaration)


# Names sort case-insensitively (SPEC §5); this index serves ORDER BY lower(name), id.
Index("ix_account_name_lower", func.lower(Account.name), Account.id, postgresql_include=["name"])
# Case-insensitive substring search: `name ILIKE '%term%'` on PostgreSQL uses this trigram
# index (migration 0002 creates it there only).
Index(
    "ix_account_name_trgm",
    Account.name,
    postgresql_using="gin",
    postgresql_ops={"name": "gin_trgm_ops"},
    info={"postgresql_only": True},
).ddl_if(dialect="postgresql")
# ORDER BY user_count {ASC|DESC}, id ASC.
Index("ix_account_user_count_id", Account.user_count, Account.id)
Index("ix_account_user_count_desc_id", Account.user_count.desc(), Account.id)
