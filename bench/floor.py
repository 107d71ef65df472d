"""The floor beside each scenario: the SQL the service issues for one request, replayed directly.

`capture` runs the app in-process (httpx's ASGITransport) on the bench database and records
every statement SQLAlchemy sends (`before_cursor_execute`) for one request of each variant of a
scenario. `FloorWorkers` replays those statements through asyncpg pools in as many processes as
the service has workers, at the same concurrency and for the same duration: what the database
alone allows, with no HTTP, no framework and no ORM in the way.

A scenario whose body differs per request (UNIQUE: a new user's email) is captured with a
one-off value there; each parameter holding that value becomes a `Fresh` marker, which the
replay fills with a value of its own on every request (bench/replay.py, `bind`).
"""

from __future__ import annotations

import contextlib
import json
import math
import multiprocessing
import os
import re
import secrets
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import httpx
from pydantic import SecretStr
from sqlalchemy import event

from bench.replay import UNIQUE, Fresh, FromRow, Job, Statement, Tally, has_markers, worker_main
from bench.scenarios import Scenario, unique_body
from bench.server import CLOCK_TICKS, cpu_by_pid, cpu_used, machine_ticks

#: At most this many variants (paths, patched accounts) of one scenario are captured.
MAX_VARIANTS = 64


@dataclass(frozen=True, slots=True)
class Capture:
    variants: tuple[tuple[Statement, ...], ...]
    transactional: bool
    #: Per variant, the status and JSON the service answered (the FastAPI floor answers them).
    answers: tuple[tuple[int, Any], ...] = ()

    @property
    def statements_per_request(self) -> int:
        return len(self.variants[0]) if self.variants else 0


@dataclass(frozen=True, slots=True)
class FloorResult:
    requests: int
    errors: int
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    first_error: str | None
    #: The machine's busy share not spent by the replay or PostgreSQL (other jobs: noise).
    other_cpu: float = 0.0


async def capture(
    database_url: str, secret_key: str, scenarios: Sequence[Scenario], tokens: dict[str, str]
) -> dict[str, Capture]:
    """The statements of one request per variant of each scenario, by scenario key."""
    # app.main builds a module-level app from the environment on import: keep it quiet.
    os.environ.setdefault("SECRET_KEY", secret_key)
    from app.main import create_app
    from app.settings import Settings

    settings = Settings(
        app_env="test",
        database_url=database_url,
        secret_key=SecretStr(secret_key),
        log_level="WARNING",
    )
    app = create_app(settings)
    engine = app.state.engine.sync_engine
    recorded: list[Statement] = []
    committed: list[bool] = []
    # Statements SQLAlchemy ran itself (with a cursor; app.rawrows' have none): asyncpg starts
    # the transaction before the first of these. A request whose statements all ran on the
    # driver opened none, whatever it committed (a PATCH's one-statement write).
    through_sqlalchemy: list[bool] = []

    def on_execute(_conn: Any, cursor: Any, statement: str, parameters: Any, *_args: Any) -> None:
        recorded.append((statement, tuple(parameters or ())))
        if cursor is not None:
            through_sqlalchemy.append(True)

    def on_commit(_conn: Any) -> None:
        committed.append(True)

    captures: dict[str, Capture] = {}
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as http:
            # The first connection runs the dialect's own set-up statements: not the request's.
            warm = await http.get("/api/v3_0/accounts/1", headers=_headers(tokens["admin"]))
            warm.raise_for_status()
            event.listen(engine, "before_cursor_execute", on_execute)
            event.listen(engine, "commit", on_commit)
            for scenario in scenarios:
                variants = []
                answers = []
                for index, path in enumerate(scenario.paths[:MAX_VARIANTS]):
                    recorded.clear()
                    committed.clear()
                    through_sqlalchemy.clear()
                    unique = f"capture-{secrets.token_hex(6)}"
                    body = unique_body(scenario, unique)
                    if scenario.patch_ids:
                        # A name of its own, so that the captured PATCH really changes something
                        # (scenarios share accounts: one's capture renamed the other's); and
                        # one-off (a `Fresh` marker), so that every replay changes it again, as
                        # every request of the scenario does (the write decides in SQL whether
                        # the name differs: replayed as captured, it would write nothing).
                        name = f"Bench Floor {scenario.name} {scenario.patch_ids[index]} {unique}"
                        body = json.dumps({"name": name})
                    response = await http.request(
                        scenario.method,
                        path,
                        content=body,
                        headers=_headers(tokens[scenario.role]),
                    )
                    if not response.is_success:
                        raise RuntimeError(
                            f"capture of {scenario.key} {scenario.method} {path}: "
                            f"{response.status_code} {response.text[:200]}"
                        )
                    statements = _versioned(_marked(recorded, unique))
                    if scenario.method == "POST":
                        statements = _reserved(statements, response.json().get("id"))
                    if UNIQUE in (scenario.body or "") and not has_markers(statements):
                        raise RuntimeError(f"capture of {scenario.key}: no parameter to vary")
                    variants.append(statements)
                    answers.append((response.status_code, response.json()))
                captures[scenario.key] = Capture(
                    tuple(variants),
                    transactional=bool(committed and through_sqlalchemy),
                    answers=tuple(answers),
                )
    finally:
        with contextlib.suppress(Exception):
            event.remove(engine, "before_cursor_execute", on_execute)
            event.remove(engine, "commit", on_commit)
        await app.state.engine.dispose()
    return captures


def _marked(recorded: Sequence[Statement], unique: str) -> tuple[Statement, ...]:
    """The statements with every string parameter that holds `unique` (the request's one-off
    value) turned into a `Fresh` marker around it."""
    return tuple(
        (
            sql,
            tuple(
                Fresh(p.replace(unique, UNIQUE)) if isinstance(p, str) and unique in p else p
                for p in parameters
            ),
        )
        for sql, parameters in recorded
    )


#: The version check of a PATCH's write (app.accounts.repository: `locked.version = $n`).
_VERSION_CHECK = re.compile(r"\blocked\.version = \$(\d+)")


def _versioned(statements: tuple[Statement, ...]) -> tuple[Statement, ...]:
    """The statements with a write's version check bound to the version its request read
    (the `version` column of the latest earlier statement that selects one): `FromRow`."""
    out: list[Statement] = []
    for sql, parameters in statements:
        check = _VERSION_CHECK.search(sql)
        if check is not None:
            reads = [i for i, (read, _) in enumerate(out) if " AS version" in read]
            if not reads:
                raise RuntimeError(f"a versioned write without a read of the version: {sql}")
            position = int(check.group(1)) - 1
            parameters = (
                *parameters[:position],
                FromRow(reads[-1], "version", lock=" FOR UPDATE OF account", retry=True),
                *parameters[position + 1 :],
            )
        out.append((sql, parameters))
    return tuple(out)


def _reserved(statements: tuple[Statement, ...], new_id: object) -> tuple[Statement, ...]:
    """An invitation takes its user's id from the sequence first (app.users.repository:
    `reserve_id`): the statements after it name that id (the user's row, its records), bound
    to the id the replayed request took (`FromRow`), not to the captured one."""
    taken = [i for i, (sql, _) in enumerate(statements) if "nextval(" in sql]
    if not taken or not isinstance(new_id, int):
        return statements
    source = FromRow(taken[0], "id")
    return tuple(
        (sql, tuple(source if index > taken[0] and p == new_id else p for p in parameters))
        for index, (sql, parameters) in enumerate(statements)
    )


def _headers(token: str) -> dict[str, str]:
    return {"Authorization": token, "Content-Type": "application/json"}


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending sequence (0 when empty)."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


class FloorWorkers:
    """Long-lived replay processes (one per service worker), started once per bench run."""

    def __init__(self, processes: int) -> None:
        self.context = multiprocessing.get_context("spawn")
        self.processes = processes
        self.workers: list[tuple[Any, Any, Any]] = []

    def __enter__(self) -> FloorWorkers:
        for _ in range(self.processes):
            inbox = self.context.Queue()
            outbox = self.context.Queue()
            process = self.context.Process(
                target=worker_main, args=(inbox, outbox), daemon=True, name="bench-floor"
            )
            process.start()
            self.workers.append((process, inbox, outbox))
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        for _process, inbox, _outbox in self.workers:
            with contextlib.suppress(Exception):
                inbox.put(None)
        for process, _inbox, _outbox in self.workers:
            process.join(5)
            if process.is_alive():
                process.kill()
                process.join(5)

    def pids(self) -> Iterator[int]:
        for process, _inbox, _outbox in self.workers:
            if process.pid is not None:
                yield process.pid

    def run(
        self,
        dsn: str,
        captured: Capture,
        *,
        concurrency: int,
        duration: float,
        verify: tuple[str, str] | None = None,
        pg_pids: Callable[[], list[int]] = list,
    ) -> FloorResult:
        """Replay at `concurrency` in total (split over the processes) for `duration` seconds."""
        own_before = cpu_by_pid([*self.pids(), *pg_pids()])
        busy_before, total_before = machine_ticks()
        share = [concurrency // self.processes] * self.processes
        for index in range(concurrency % self.processes):
            share[index] += 1
        start_at = time.time() + 0.3  # time for every worker to open its pool
        busy = []
        for index, ((_process, inbox, outbox), size) in enumerate(
            zip(self.workers, share, strict=True)
        ):
            if size == 0:
                continue
            job = Job(
                dsn=dsn,
                variants=captured.variants,
                transactional=captured.transactional,
                concurrency=size,
                duration=duration,
                start_at=start_at,
                offset=index * 7919,
                verify=verify,
            )
            inbox.put(job)
            busy.append(outbox)
        tallies: list[Tally] = [outbox.get(timeout=duration + 60) for outbox in busy]
        busy_after, total_after = machine_ticks()
        own_after = cpu_by_pid([*self.pids(), *pg_pids()])
        own_ticks = cpu_used(own_before, own_after) * CLOCK_TICKS
        other = (busy_after - busy_before - own_ticks) / max(1, total_after - total_before)
        latencies = sorted(value for tally in tallies for value in tally.latencies)
        requests = sum(tally.requests for tally in tallies)
        errors = sum(tally.errors for tally in tallies)
        first_error = next((t.first_error for t in tallies if t.first_error), None)
        return FloorResult(
            requests=requests,
            errors=errors,
            requests_per_s=requests / duration if duration else 0.0,
            p50_ms=percentile(latencies, 0.50) * 1000,
            p99_ms=percentile(latencies, 0.99) * 1000,
            first_error=first_error,
            other_cpu=max(0.0, other),
        )
