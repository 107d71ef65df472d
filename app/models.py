"""Every ORM model, imported once so that the metadata (and Alembic) sees all tables."""

from app.accounts.models import Account, AccountRole, account_account_role
from app.audit.models import AuditRecord
from app.users.models import User, UserRole, user_user_role

__all__ = [
    "Account",
    "AccountRole",
    "AuditRecord",
    "User",
    "UserRole",
    "account_account_role",
    "user_user_role",
]
