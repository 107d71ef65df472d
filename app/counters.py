"""The counts the database keeps by triggers, and their DDL for PostgreSQL and SQLite.

Three counts are kept, whoever writes the rows (the service, the CLI, a bulk load, psql):

- `account.user_count`, the number of users of each account, active or not (deactivating a user
  is an UPDATE of `active`, which no trigger watches). Triggers on `"user"`: an INSERT adds one
  to its account, a DELETE takes one off, an UPDATE that changes `account_id` moves one from
  the old account to the new. It is a column, not a count at read time, so that lists sort by it
  through an index (`ix_account_user_count_id`, `ix_account_user_count_desc_id`) and a page
  reads its accounts' counts from the rows themselves. Since migration 0002: `USER_COUNT_V1`.
- `account_total`, the number of accounts. Triggers on `account`: an INSERT adds one, a DELETE
  takes one off. An admin sees every account, and their paginated list answers how many there
  are: a few rows summed instead of a count over every account (8 ms at 100,000 accounts; see
  docs/BENCHMARKS.md). Migration 0003 kept it in one row (`ACCOUNT_TOTAL_V1`); every account
  creation updated that row and held its lock until commit, through the WAL flush, so
  concurrent creations queued for it (bench/counters.py, 16 connections: a third of the
  creations per second of a schema without the count, 12 of 16 writers waiting on the lock).
  Since migration 0005 (`ACCOUNT_TOTAL_V2`) an account counts in row `slot = id % 64`:
  concurrent creations get consecutive ids, so up to 64 at a time update different rows. The
  total is the sum of the rows (`app.accounts.repository.count_accounts`).

- `user_total`, the number of users and the number of active users. Triggers on `"user"`: an
  INSERT adds one to `total` (and to `active_total` if the user is active), a DELETE takes
  them off again, an UPDATE that changes `active` moves one in or out of `active_total`. An
  admin sees every user, and their paginated list answers how many there are (the active
  ones unless `include_inactive`, SPEC §9): a few rows summed instead of a count over every
  user. Striped as `account_total` is, from the start: a user counts in row `slot = id % 64`.
  Since migration 0006: `USER_TOTAL_V1`.

None watches an UPDATE of `account.id` or `"user".id` (nothing changes ids).

A version here is what one migration created, and it never changes once released: the migration
calls `create_counters(op, dialect, THE_VERSION)`, and a database migrated last year must get
the same triggers from it next year. A change is a new version (`…_V3` after `…_V2`) and a new
migration that drops the old version's triggers (`drop_counters`) and creates the new ones.
`CURRENT` names the versions the latest migration leaves in place.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import text


class Executor(Protocol):
    """Alembic's `op` or a SQLAlchemy (sync) `Connection`: anything that executes a statement."""

    def execute(self, statement: Any, /) -> Any: ...


@dataclass(frozen=True, slots=True)
class Counter:
    """The triggers that keep one count, per dialect, and the statement that fills it."""

    name: str
    #: Per dialect: the statements that create the triggers (and their function), in order.
    create: Mapping[str, tuple[str, ...]]
    #: Per dialect: the statements that drop them again, in order.
    drop: Mapping[str, tuple[str, ...]]
    #: Sets the count from the rows as they are (both dialects), once the triggers exist.
    fill: str

    def create_statements(self, dialect_name: str) -> tuple[str, ...]:
        return self._for(self.create, dialect_name)

    def drop_statements(self, dialect_name: str) -> tuple[str, ...]:
        return self._for(self.drop, dialect_name)

    def _for(self, by_dialect: Mapping[str, tuple[str, ...]], dialect_name: str) -> tuple[str, ...]:
        try:
            return by_dialect[dialect_name]
        except KeyError:
            raise ValueError(f"no {self.name} triggers for the {dialect_name} dialect") from None


USER_COUNT_V1 = Counter(
    name="account.user_count",
    create={
        "postgresql": (
            """
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
""",
            """CREATE TRIGGER user_count_on_insert AFTER INSERT ON "user"
       FOR EACH ROW EXECUTE FUNCTION account_user_count_sync()""",
            """CREATE TRIGGER user_count_on_delete AFTER DELETE ON "user"
       FOR EACH ROW EXECUTE FUNCTION account_user_count_sync()""",
            """CREATE TRIGGER user_count_on_move AFTER UPDATE OF account_id ON "user"
       FOR EACH ROW WHEN (OLD.account_id IS DISTINCT FROM NEW.account_id)
       EXECUTE FUNCTION account_user_count_sync()""",
        ),
        "sqlite": (
            """CREATE TRIGGER user_count_on_insert AFTER INSERT ON "user" BEGIN
       UPDATE account SET user_count = user_count + 1 WHERE id = NEW.account_id; END""",
            """CREATE TRIGGER user_count_on_delete AFTER DELETE ON "user" BEGIN
       UPDATE account SET user_count = user_count - 1 WHERE id = OLD.account_id; END""",
            """CREATE TRIGGER user_count_on_move AFTER UPDATE OF account_id ON "user"
       WHEN OLD.account_id IS NOT NEW.account_id BEGIN
       UPDATE account SET user_count = user_count - 1 WHERE id = OLD.account_id;
       UPDATE account SET user_count = user_count + 1 WHERE id = NEW.account_id; END""",
        ),
    },
    drop={
        "postgresql": (
            'DROP TRIGGER IF EXISTS user_count_on_insert ON "user"',
            'DROP TRIGGER IF EXISTS user_count_on_delete ON "user"',
            'DROP TRIGGER IF EXISTS user_count_on_move ON "user"',
            "DROP FUNCTION IF EXISTS account_user_count_sync()",
        ),
        "sqlite": (
            "DROP TRIGGER IF EXISTS user_count_on_insert",
            "DROP TRIGGER IF EXISTS user_count_on_delete",
            "DROP TRIGGER IF EXISTS user_count_on_move",
        ),
    },
    fill=(
        'UPDATE account SET user_count = (SELECT count(*) FROM "user" '
        'WHERE "user".account_id = account.id)'
    ),
)

ACCOUNT_TOTAL_V1 = Counter(
    name="account_total",
    create={
        "postgresql": (
            """
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
""",
            """CREATE TRIGGER account_total_on_insert AFTER INSERT ON account
       FOR EACH ROW EXECUTE FUNCTION account_total_sync()""",
            """CREATE TRIGGER account_total_on_delete AFTER DELETE ON account
       FOR EACH ROW EXECUTE FUNCTION account_total_sync()""",
        ),
        "sqlite": (
            """CREATE TRIGGER account_total_on_insert AFTER INSERT ON account BEGIN
       UPDATE account_total SET total = total + 1 WHERE id = 1; END""",
            """CREATE TRIGGER account_total_on_delete AFTER DELETE ON account BEGIN
       UPDATE account_total SET total = total - 1 WHERE id = 1; END""",
        ),
    },
    drop={
        "postgresql": (
            "DROP TRIGGER IF EXISTS account_total_on_insert ON account",
            "DROP TRIGGER IF EXISTS account_total_on_delete ON account",
            "DROP FUNCTION IF EXISTS account_total_sync()",
        ),
        "sqlite": (
            "DROP TRIGGER IF EXISTS account_total_on_insert",
            "DROP TRIGGER IF EXISTS account_total_on_delete",
        ),
    },
    # The table (one row, id 1) is created empty by the migration.
    fill="INSERT INTO account_total (id, total) SELECT 1, count(*) FROM account",
)

#: The rows ACCOUNT_TOTAL_V2 spreads the total over.
ACCOUNT_TOTAL_SLOTS_V2 = 64

ACCOUNT_TOTAL_V2 = Counter(
    name="account_total",
    create={
        "postgresql": (
            f"""
CREATE OR REPLACE FUNCTION account_total_sync() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE account_total SET total = total + 1 WHERE slot = NEW.id % {ACCOUNT_TOTAL_SLOTS_V2};
    ELSE
        UPDATE account_total SET total = total - 1 WHERE slot = OLD.id % {ACCOUNT_TOTAL_SLOTS_V2};
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql
""",
            """CREATE TRIGGER account_total_on_insert AFTER INSERT ON account
       FOR EACH ROW EXECUTE FUNCTION account_total_sync()""",
            """CREATE TRIGGER account_total_on_delete AFTER DELETE ON account
       FOR EACH ROW EXECUTE FUNCTION account_total_sync()""",
        ),
        "sqlite": (
            f"""CREATE TRIGGER account_total_on_insert AFTER INSERT ON account BEGIN
       UPDATE account_total SET total = total + 1
       WHERE slot = NEW.id % {ACCOUNT_TOTAL_SLOTS_V2}; END""",
            f"""CREATE TRIGGER account_total_on_delete AFTER DELETE ON account BEGIN
       UPDATE account_total SET total = total - 1
       WHERE slot = OLD.id % {ACCOUNT_TOTAL_SLOTS_V2}; END""",
        ),
    },
    drop=ACCOUNT_TOTAL_V1.drop,
    # Every slot gets its row, with the number of accounts whose id falls in it.
    fill=f"""
WITH RECURSIVE slots(slot) AS (
    SELECT 0 UNION ALL SELECT slot + 1 FROM slots WHERE slot < {ACCOUNT_TOTAL_SLOTS_V2 - 1}
)
INSERT INTO account_total (slot, total)
SELECT slots.slot, count(account.id) FROM slots
LEFT JOIN account ON account.id % {ACCOUNT_TOTAL_SLOTS_V2} = slots.slot
GROUP BY slots.slot
""",
)

#: The rows USER_TOTAL_V1 spreads the totals over.
USER_TOTAL_SLOTS_V1 = 64

# 1 for an active user, else 0, on both dialects (SQLite stores booleans as integers).
_ACTIVE_NEW = "CASE WHEN NEW.active THEN 1 ELSE 0 END"
_ACTIVE_OLD = "CASE WHEN OLD.active THEN 1 ELSE 0 END"

USER_TOTAL_V1 = Counter(
    name="user_total",
    create={
        "postgresql": (
            f"""
CREATE OR REPLACE FUNCTION user_total_sync() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE user_total SET total = total + 1, active_total = active_total + {_ACTIVE_NEW}
        WHERE slot = NEW.id % {USER_TOTAL_SLOTS_V1};
    ELSIF TG_OP = 'DELETE' THEN
        UPDATE user_total SET total = total - 1, active_total = active_total - {_ACTIVE_OLD}
        WHERE slot = OLD.id % {USER_TOTAL_SLOTS_V1};
    ELSE
        UPDATE user_total SET active_total = active_total + {_ACTIVE_NEW} - {_ACTIVE_OLD}
        WHERE slot = NEW.id % {USER_TOTAL_SLOTS_V1};
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql
""",
            """CREATE TRIGGER user_total_on_insert AFTER INSERT ON "user"
       FOR EACH ROW EXECUTE FUNCTION user_total_sync()""",
            """CREATE TRIGGER user_total_on_delete AFTER DELETE ON "user"
       FOR EACH ROW EXECUTE FUNCTION user_total_sync()""",
            """CREATE TRIGGER user_total_on_activity AFTER UPDATE OF active ON "user"
       FOR EACH ROW WHEN (OLD.active IS DISTINCT FROM NEW.active)
       EXECUTE FUNCTION user_total_sync()""",
        ),
        "sqlite": (
            f"""CREATE TRIGGER user_total_on_insert AFTER INSERT ON "user" BEGIN
       UPDATE user_total SET total = total + 1, active_total = active_total + {_ACTIVE_NEW}
       WHERE slot = NEW.id % {USER_TOTAL_SLOTS_V1}; END""",
            f"""CREATE TRIGGER user_total_on_delete AFTER DELETE ON "user" BEGIN
       UPDATE user_total SET total = total - 1, active_total = active_total - {_ACTIVE_OLD}
       WHERE slot = OLD.id % {USER_TOTAL_SLOTS_V1}; END""",
            f"""CREATE TRIGGER user_total_on_activity AFTER UPDATE OF active ON "user"
       WHEN OLD.active IS NOT NEW.active BEGIN
       UPDATE user_total SET active_total = active_total + {_ACTIVE_NEW} - {_ACTIVE_OLD}
       WHERE slot = NEW.id % {USER_TOTAL_SLOTS_V1}; END""",
        ),
    },
    drop={
        "postgresql": (
            'DROP TRIGGER IF EXISTS user_total_on_insert ON "user"',
            'DROP TRIGGER IF EXISTS user_total_on_delete ON "user"',
            'DROP TRIGGER IF EXISTS user_total_on_activity ON "user"',
            "DROP FUNCTION IF EXISTS user_total_sync()",
        ),
        "sqlite": (
            "DROP TRIGGER IF EXISTS user_total_on_insert",
            "DROP TRIGGER IF EXISTS user_total_on_delete",
            "DROP TRIGGER IF EXISTS user_total_on_activity",
        ),
    },
    # Every slot gets its row, with the users (and the active users) whose id falls in it.
    fill=f"""
WITH RECURSIVE slots(slot) AS (
    SELECT 0 UNION ALL SELECT slot + 1 FROM slots WHERE slot < {USER_TOTAL_SLOTS_V1 - 1}
)
INSERT INTO user_total (slot, total, active_total)
SELECT slots.slot, count("user".id), count(CASE WHEN "user".active THEN 1 END) FROM slots
LEFT JOIN "user" ON "user".id % {USER_TOTAL_SLOTS_V1} = slots.slot
GROUP BY slots.slot
""",
)

#: What the latest migration leaves in place.
CURRENT: tuple[Counter, ...] = (USER_COUNT_V1, ACCOUNT_TOTAL_V2, USER_TOTAL_V1)
#: The rows `account_total` has now; the total is their sum.
ACCOUNT_TOTAL_SLOTS = ACCOUNT_TOTAL_SLOTS_V2
#: The rows `user_total` has now; each total is the sum of its column.
USER_TOTAL_SLOTS = USER_TOTAL_SLOTS_V1


def create_counters(executor: Executor, dialect_name: str, *counters: Counter) -> None:
    """Create the triggers of `counters`, then fill each count from the rows as they are.

    Triggers first: on PostgreSQL, CREATE TRIGGER locks the table against writes until the
    migration commits, so no row written concurrently can fall between the fill and the first
    trigger.
    """
    for counter in counters:
        for statement in counter.create_statements(dialect_name):
            executor.execute(text(statement))
        executor.execute(text(counter.fill))


def drop_counters(executor: Executor, dialect_name: str, *counters: Counter) -> None:
    """Drop the triggers (and functions) of `counters`; the counts' columns and tables stay."""
    for counter in reversed(counters):
        for statement in counter.drop_statements(dialect_name):
            executor.execute(text(statement))
