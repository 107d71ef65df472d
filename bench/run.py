"""`make bench` / `make bench-smoke`: seed, serve, load every scenario with wrk, replay its floor.

    python -m bench.run                       # N=1000 and N=10000, 5 s each, updates the docs
    BENCH_NS="1000 10000 100000" python -m bench.run
    python -m bench.run --smoke --json out.json   # N=200, 1 s each, no docs; exit 1 on errors

The database server is BENCH_DATABASE_URL's (a `postgresql+asyncpg://` URL; each N gets a
database of its own there, dropped afterwards) or a throwaway cluster (tests/postgres.py).
Every process started here is stopped at the end, also on failure or after --max-seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

import asyncpg  # type: ignore[import-untyped]
import httpx

from app import demo
from bench import floor, framework_floor, load, report, scenarios, seed
from bench.pgmonitor import PgMonitor
from bench.server import Service, rss_kib
from bench.smtpsink import SmtpSink
from tests.databases import asyncpg_dsn, drop_server_database
from tests.redisserver import redis_server

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "BENCHMARKS.md"
SMOKE_N = 200
T = TypeVar("T")


class HarnessTimeout(Exception):
    """The whole run took longer than --max-seconds."""


def _env_float(name: str, default: float) -> float:
    return float(os.environ.get(name) or default)


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name) or default)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    parser.add_argument("--smoke", action="store_true", help=f"N={SMOKE_N}, 1 s, no docs")
    parser.add_argument(
        "--ns", default=os.environ.get("BENCH_NS", "1000 10000"), help="the Ns (BENCH_NS)"
    )
    parser.add_argument("--duration", type=float, default=_env_float("BENCH_DURATION", 5))
    parser.add_argument(
        "--floor-duration", type=float, default=_env_float("BENCH_FLOOR_DURATION", 0)
    )
    parser.add_argument("--warmup", type=float, default=_env_float("BENCH_WARMUP", 1))
    parser.add_argument("--connections", type=int, default=_env_int("BENCH_CONNECTIONS", 16))
    parser.add_argument("--threads", type=int, default=_env_int("BENCH_THREADS", 2))
    parser.add_argument("--workers", type=int, default=_env_int("BENCH_WORKERS", 2))
    parser.add_argument("--only", default=os.environ.get("BENCH_ONLY", ""), help="names, a,b")
    parser.add_argument(
        "--noise-limit",
        type=float,
        default=_env_float("BENCH_NOISE_LIMIT", 0.25),
        help="rerun a measurement when other jobs used more of the machine than this share",
    )
    parser.add_argument("--noise-retries", type=int, default=_env_int("BENCH_NOISE_RETRIES", 1))
    parser.add_argument("--no-docs", action="store_true", help="do not update the docs")
    parser.add_argument("--docs", type=Path, default=DOCS)
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    parser.add_argument("--max-seconds", type=int, default=_env_int("BENCH_MAX_SECONDS", 3600))
    args = parser.parse_args(argv)
    if args.smoke:
        args.ns = str(SMOKE_N)
        args.duration = 1.0
        args.floor_duration = 0.5
        args.warmup = 0.0
        args.noise_retries = 0
        args.no_docs = True
        args.max_seconds = min(args.max_seconds, 300)
    args.floor_duration = args.floor_duration or args.duration
    args.n_list = [int(n) for n in args.ns.replace(",", " ").split()]
    return args


@contextlib.contextmanager
def database_server() -> Iterator[tuple[str, str]]:
    """(server URL, description): BENCH_DATABASE_URL's server or a throwaway cluster."""
    given = os.environ.get("BENCH_DATABASE_URL", "")
    if given:
        if not given.startswith("postgresql"):
            raise SystemExit(f"BENCH_DATABASE_URL must be a postgresql URL, not {given!r}")
        yield given, "PostgreSQL at BENCH_DATABASE_URL (a database of its own per N)"
        return
    from tests.postgres import throwaway_cluster

    with throwaway_cluster(durable=True) as url:
        yield (
            url,
            (
                "a throwaway PostgreSQL cluster with PostgreSQL's durable defaults (fsync, "
                "synchronous_commit and full_page_writes on; WAL on the same disk as the data; "
                "default shared_buffers)"
            ),
        )


@contextlib.contextmanager
def deadline(seconds: int) -> Iterator[None]:
    """Raise HarnessTimeout in the main thread after `seconds`, or on SIGTERM; the cleanup
    runs in the `finally`s on the way out."""

    def expired(signum: int, _frame: FrameType | None) -> None:
        if signum == signal.SIGTERM:
            raise HarnessTimeout("the bench was terminated")
        raise HarnessTimeout(f"the bench took longer than {seconds} s")

    previous = {sig: signal.signal(sig, expired) for sig in (signal.SIGALRM, signal.SIGTERM)}
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


async def _postgres_version(server_url: str) -> str:
    conn = await asyncpg.connect(asyncpg_dsn(server_url), timeout=10)
    try:
        version = await conn.fetchval("SHOW server_version")
    finally:
        await conn.close()
    return f"PostgreSQL {str(version).split()[0]}"


def _log_in(base_url: str) -> dict[str, str]:
    tokens = {}
    with httpx.Client(base_url=base_url, timeout=30) as http:
        for role, email in scenarios.LOGINS.items():
            response = http.post(
                scenarios.TOKEN_PATH, json={"email": email, "password": demo.DEMO_PASSWORD}
            )
            if response.status_code != 200:
                raise RuntimeError(f"log-in as {email}: {response.status_code} {response.text}")
            tokens[role] = str(response.json()["auth_token"])
    return tokens


def _probe(base_url: str, scenario: scenarios.Scenario, token: str) -> str | None:
    """One request of the scenario; the reason it is not a 2xx, or None."""
    body = scenarios.unique_body(scenario, f"probe-{secrets.token_hex(6)}")
    if scenario.patch_ids:
        body = scenarios.patch_body(scenario.patch_ids[0], 1)
    with httpx.Client(base_url=base_url, timeout=30) as http:
        response = http.request(
            scenario.method,
            scenario.paths[0],
            content=body,
            headers={"Authorization": token, "Content-Type": "application/json"},
        )
    if response.is_success:
        return None
    return f"{scenario.method} {scenario.paths[0]}: {response.status_code} {response.text[:200]}"


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def bench_n(
    server_url: str, n: int, args: argparse.Namespace, workers: floor.FloorWorkers
) -> report.RunResult:
    name = f"bench_n{n}_{os.getpid()}"
    _say(f"[N={n}] seeding database {name} …")
    info = asyncio.run(seed.seed(server_url, name, n))
    result = report.RunResult(n=n, seed=info, noise_limit=args.noise_limit)
    _say(
        f"[N={n}] seeded {info.accounts} accounts, {info.users} users, "
        f"{info.audit_records} audit records in {info.seconds['total']:.1f} s"
    )
    try:
        chosen, result.notes = scenarios.build(info)
        only = {part for part in args.only.split(",") if part}
        if only:
            chosen = [s for s in chosen if s.name in only or s.key in only]
        secret = secrets.token_urlsafe(32)
        with PgMonitor(asyncpg_dsn(info.database_url)) as monitor:
            captures, tokens = _bench_service(info, chosen, secret, args, monitor, workers, result)
            _bench_framework_floor(info, chosen, captures, tokens, secret, args, monitor, result)
    finally:
        if not os.environ.get("BENCH_KEEP_DB"):
            asyncio.run(drop_server_database(server_url, name))
    return result


def _bench_service(
    info: seed.SeedInfo,
    chosen: list[scenarios.Scenario],
    secret: str,
    args: argparse.Namespace,
    monitor: PgMonitor,
    workers: floor.FloorWorkers,
    result: report.RunResult,
) -> tuple[dict[str, floor.Capture], dict[str, str]]:
    """The service's rows, each with its floor; the statements captured, and the tokens."""
    n = info.n
    with Service(
        info.database_url,
        secret,
        args.workers,
        args.rate_limit_storage_url,
        smtp_url=args.smtp_sink.url,
        concurrency=args.connections,
    ) as service:
        tokens = _log_in(service.base_url)
        captures = asyncio.run(floor.capture(info.database_url, secret, chosen, tokens))
        result.rss_start_mib = rss_kib(service.pids()) / 1024
        for scenario in chosen:
            row = _bench_scenario(service, scenario, tokens, args, monitor)
            row.statements = captures[scenario.key].statements_per_request
            row.floor = _floor(scenario, captures[scenario.key], info, args, workers, monitor.pids)
            result.rows.append(row)
            _say(f"[N={n}] {report.line(row, args.noise_limit)}")
            if row.mails is not None:
                result.notes.append(report.mail_note(row))
                _say(f"[N={n}] {result.notes[-1]}")
        result.rss_end_mib = rss_kib(service.pids()) / 1024
        if not args.smoke:
            soak = next((s for s in chosen if s.key == SOAK_SCENARIO), None)
            if soak is not None:
                result.soak = _soak(service, soak, tokens[soak.role], args, monitor)
                _say(f"[N={n}] {report.soak_line(result.soak).strip()}")
    return captures, tokens


def _bench_framework_floor(
    info: seed.SeedInfo,
    chosen: list[scenarios.Scenario],
    captures: dict[str, floor.Capture],
    tokens: dict[str, str],
    secret: str,
    args: argparse.Namespace,
    monitor: PgMonitor,
    result: report.RunResult,
) -> None:
    """Each row's FastAPI floor (bench/framework_floor.py), served after the service stopped:
    the same wrk load on FastAPI and uvicorn replaying the captured statements. Not for the
    log-in, whose cost is the password hash the floor adds outside any SQL."""
    measured = [
        s for s in chosen if not s.floor_verifies_password and _row(result, s).failure is None
    ]
    if not measured:
        return
    plan: dict[framework_floor.RequestKey, framework_floor.Answer] = {}
    for scenario in measured:
        captured = captures[scenario.key]
        for index, path in enumerate(scenario.paths):
            variant = index % len(captured.variants)  # as the floor: the variants captured
            status, answer = captured.answers[variant]
            key = (scenario.method, path, tokens[scenario.role])
            plan[key] = (captured.variants[variant], status, answer)
    with tempfile.TemporaryDirectory(prefix="bench-framework-") as folder:
        plan_path = Path(folder) / "plan.pickle"
        framework_floor.write_plan(
            plan_path, asyncpg_dsn(info.database_url), args.connections, plan
        )
        with Service(
            info.database_url,
            secret,
            args.workers,
            args.rate_limit_storage_url,
            concurrency=args.connections,
            target="bench.framework_floor:app",
            extra_env={framework_floor.PLAN_ENV: str(plan_path)},
        ) as bare:
            options = _wrk_options(bare, args, monitor)
            for scenario in measured:
                row = _row(result, scenario)
                row.framework = _measure_framework(
                    bare, scenario, tokens[scenario.role], args, options
                )
                _say(f"[N={info.n}] FastAPI floor {scenario.key}: {report.framework_line(row)}")


def _measure_framework(
    bare: Service,
    scenario: scenarios.Scenario,
    token: str,
    args: argparse.Namespace,
    options: dict[str, Any],
) -> load.WrkResult:
    duration = _warm_up(bare, scenario, token, args, options)
    return quietest(
        lambda: load.run_wrk(bare.base_url, scenario, token, duration=duration, **options),
        lambda run: run.other_cpu,
        args,
    )


def _warm_up(
    server: Service,
    scenario: scenarios.Scenario,
    token: str,
    args: argparse.Namespace,
    options: dict[str, Any],
) -> float:
    """Load `server` with the scenario for the warm-up (thrown away); the measured run's
    duration. The service and its FastAPI floor both go through here, so they compare."""
    if args.warmup > 0:
        load.run_wrk(server.base_url, scenario, token, duration=args.warmup, **options)
    return max(args.duration, scenario.min_duration)


def _row(result: report.RunResult, scenario: scenarios.Scenario) -> report.ScenarioRow:
    row = result.row(scenario.name, scenario.role)
    assert row is not None  # every chosen scenario has its row once the service ran
    return row


#: Memory is read after this many requests of one scenario, then after ten times as many.
SOAK_SCENARIO = "get_one/admin"
SOAK_CHECKPOINTS = (5_000, 50_000)
SOAK_MAX_SECONDS = 600


def _wrk_options(service: Service, args: argparse.Namespace, monitor: PgMonitor) -> dict[str, Any]:
    """What every wrk run of a bench takes besides its scenario: load shape and whom to watch."""
    return {
        "connections": args.connections,
        "threads": args.threads,
        "app_pids": service.pids,
        "pg_pids": monitor.pids,
        "pg_sessions": monitor.sessions,
        "helper_pids": args.smtp_sink.pids,
    }


def _soak(
    service: Service,
    scenario: scenarios.Scenario,
    token: str,
    args: argparse.Namespace,
    monitor: PgMonitor,
) -> list[tuple[int, float]]:
    """RSS of the service after at least 5,000 and then 50,000 requests (5 s wrk runs, so
    the counts overshoot a little; the real counts are reported). Bounded in time."""
    options = _wrk_options(service, args, monitor)
    served = 0
    checkpoints: list[tuple[int, float]] = []
    stop_at = time.monotonic() + SOAK_MAX_SECONDS
    for target in SOAK_CHECKPOINTS:
        while served < target and time.monotonic() < stop_at:
            run = load.run_wrk(service.base_url, scenario, token, duration=5, **options)
            if run.error_count:
                raise RuntimeError(f"soak: {run.error_count} errors: {run.errors}")
            served += run.requests
        checkpoints.append((served, rss_kib(service.pids()) / 1024))
    return checkpoints


def _bench_scenario(
    service: Service,
    scenario: scenarios.Scenario,
    tokens: dict[str, str],
    args: argparse.Namespace,
    monitor: PgMonitor,
) -> report.ScenarioRow:
    row = report.ScenarioRow(scenario.name, scenario.role)
    token = tokens[scenario.role]
    failure = _probe(service.base_url, scenario, token)
    if failure is not None:
        row.failure = failure
        return row
    options = _wrk_options(service, args, monitor)
    duration = _warm_up(service, scenario, token, args, options)
    sink: SmtpSink = args.smtp_sink

    def measure() -> tuple[load.WrkResult, int | None]:
        """One wrk run, and for a scenario that sends mail the mails that arrived meanwhile."""
        before = _mails_settled(sink) if scenario.sends_mail else 0
        run = load.run_wrk(service.base_url, scenario, token, duration=duration, **options)
        return run, (_mails_settled(sink) - before) if scenario.sends_mail else None

    row.wrk, row.mails = quietest(measure, lambda result: result[0].other_cpu, args)
    if row.mails == 0 and row.wrk.requests > row.wrk.errors.get("status", 0):
        row.failure = "requests succeeded, but no mail reached the SMTP sink"
    return row


def _mails_settled(sink: SmtpSink, seconds: float = 5.0) -> int:
    """The sink's count once it stopped growing (requests still in flight after wrk stopped,
    or mails sent after the response, have arrived), waiting `seconds` at most."""
    count = sink.received()
    stop_at = time.monotonic() + seconds
    while time.monotonic() < stop_at:
        time.sleep(0.1)
        again = sink.received()
        if again == count:
            break
        count = again
    return count


def quietest(measure: Callable[[], T], noise: Callable[[T], float], args: argparse.Namespace) -> T:
    """Measure; while other jobs used more than --noise-limit of the machine, measure again
    (at most --noise-retries times) and keep the quietest measurement."""
    best = measure()
    for _ in range(max(0, args.noise_retries)):
        if noise(best) <= args.noise_limit:
            break
        _say(f"  (other jobs used {noise(best):.0%} of the machine: measuring again)")
        again = measure()
        if noise(again) < noise(best):
            best = again
    return best


def _floor(
    scenario: scenarios.Scenario,
    captured: floor.Capture,
    info: seed.SeedInfo,
    args: argparse.Namespace,
    workers: floor.FloorWorkers,
    pg_pids: Callable[[], list[int]],
) -> floor.FloorResult:
    verify = None
    if scenario.floor_verifies_password:
        verify = (demo.DEMO_PASSWORD, asyncio.run(_password_hash(info)))
    return quietest(
        lambda: workers.run(
            asyncpg_dsn(info.database_url),
            captured,
            concurrency=args.connections,
            duration=max(args.floor_duration, scenario.min_duration),
            verify=verify,
            pg_pids=pg_pids,
        ),
        lambda result: result.other_cpu,
        args,
    )


async def _password_hash(info: seed.SeedInfo) -> str:
    conn = await asyncpg.connect(asyncpg_dsn(info.database_url), timeout=10)
    try:
        value = await conn.fetchval(
            'SELECT password_hash FROM "user" WHERE email = $1', scenarios.LOGINS["admin"]
        )
    finally:
        await conn.close()
    return str(value)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # The in-process capture imports app.main, whose module-level app reads the environment.
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    started = time.perf_counter()
    wrk_version = load.wrk_version()  # fails early, and clearly, without wrk
    runs: list[report.RunResult] = []
    failure: BaseException | None = None
    with (
        deadline(args.max_seconds),
        database_server() as (server_url, description),
        redis_server() as redis,
        SmtpSink() as smtp_sink,
    ):
        args.rate_limit_storage_url = redis.url
        args.smtp_sink = smtp_sink
        machine = report.Machine.read(asyncio.run(_postgres_version(server_url)), wrk_version)
        settings = report.Settings(
            duration=args.duration,
            floor_duration=args.floor_duration,
            warmup=args.warmup,
            connections=args.connections,
            threads=args.threads,
            workers=args.workers,
            database=description,
            limiter=(
                "the API rate limit on (100,000,000/minute: every request counted, none "
                "refused), counting in a redis-server of its own on loopback"
            ),
            command=_command(args),
            code=_code_version(),
        )
        try:
            with floor.FloorWorkers(args.workers) as workers:
                for n in args.n_list:
                    runs.append(bench_n(server_url, n, args, workers))
        except Exception as exc:  # report what was measured, then fail
            failure = exc
    for run in runs:
        print(f"\n{report.run_section(run)}")
    scaling = report.scaling(runs)
    if scaling:
        print(f"\nScaling against N={runs[0].n}:\n{scaling}")
    if args.json:
        args.json.write_text(report.to_json(runs, machine, settings))
    if runs and not args.no_docs and failure is None:
        report.update_docs(args.docs, report.section(runs, machine, settings))
        _say(f"Updated {args.docs}")
    _say(f"Done in {time.perf_counter() - started:.0f} s.")
    if failure is not None:
        raise failure
    broken = [f"N={run.n} {row.key}" for run in runs for row in run.rows if not row.ok]
    if broken:
        _say(f"Scenarios with errors or no requests: {', '.join(broken)}")
        return 1
    return 0


def _code_version() -> str:
    """The commit measured, and whether app/ or alembic/ differ from it."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10, check=True
        ).stdout

    try:
        commit = git("rev-parse", "--short", "HEAD").strip()
        changed = git("status", "--porcelain", "--", "app", "alembic").splitlines()
    except (OSError, subprocess.SubprocessError):
        return "unknown (no git)"
    return (
        f"{commit} with {len(changed)} changed file(s) in app/ and alembic/" if changed else commit
    )


def _command(args: argparse.Namespace) -> str:
    if args.smoke:
        return "make bench-smoke"
    ns = " ".join(str(n) for n in args.n_list)
    return "make bench" if ns == "1000 10000" else f'make bench BENCH_NS="{ns}"'


if __name__ == "__main__":
    sys.exit(main())
