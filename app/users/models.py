"""Users and their (user) roles."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Boolean, CheckConstraint, Column, ForeignKey, Integer, String, Table, true
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app import counters
from app.accounts.models import Account
from app.db import Base, UTCDateTime

#: FlexMeasures' default timezone for users.
DEFAULT_TIMEZONE = "Europe/Amsterdam"


class RoleName(StrEnum):
    ADMIN = "admin"
    ADMIN_READER = "admin-reader"
    ACCOUNT_ADMIN = "account-admin"
    CONSULTANT = "consultant"


user_user_role = Table(
    "user_user_role",
    Base.metadata,
    Column("user_id", ForeignKey("user.id", ondelete="CASCADE"), primary_key=True),
    Column("user_role_id", ForeignKey("user_role.id", ondelete="CASCADE"), primary_key=True),
)


class UserRole(Base):
    __tablename__ = "user_role"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(80), unique=True)
    description: Mapped[str | None] = mapped_column(String(255))


class User(Base):
    __tablename__ = "user"

    id: Mapped[int] = mapped_column(primary_key=True)
    # Stored lower-cased (users.repository.normalize_email): unique whatever its case.
    email: Mapped[str] = mapped_column(String(255), unique=True)
    username: Mapped[str] = mapped_column(String(255))
    password_hash: Mapped[str] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"), index=True)
    # Part of every token; bumped on deactivation and password change, which revokes old tokens.
    token_version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    timezone: Mapped[str] = mapped_column(
        String(64), default=DEFAULT_TIMEZONE, server_default=DEFAULT_TIMEZONE
    )
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Recorded at most once a minute per user (users.service.record_seen): reads stay reads.
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Bumped by every change that is audited: the ETag of GET /users/{id}.
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")

    account: Mapped[Account] = relationship(lazy="raise")
    roles: Mapped[list[UserRole]] = relationship(
        secondary=user_user_role, lazy="raise", order_by=UserRole.id
    )


class UserTotal(Base):
    """How many users there are (`total`) and how many of them are active (`active_total`):
    the sums of the columns over the rows, kept by database triggers (`app.counters`,
    USER_TOTAL_V1, migration 0006), so that an admin's paginated list reads a few rows instead
    of counting every user. A user counts in the row `slot = id % USER_TOTAL_SLOTS`:
    concurrent creations update different rows instead of queueing for one."""

    __tablename__ = "user_total"
    __table_args__ = (
        CheckConstraint(f"slot >= 0 AND slot < {counters.USER_TOTAL_SLOTS}", name="slot"),
    )

    slot: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    total: Mapped[int]
    active_total: Mapped[int]
