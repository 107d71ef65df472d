"""wrk against the running service: one bounded run per scenario, parsed from the Lua summary."""

from __future__ import annotations

import json
import os
import resource
import secrets
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.replay import UNIQUE
from bench.scenarios import Scenario
from bench.server import cpu_by_pid, cpu_used, machine_ticks

LUA = Path(__file__).resolve().parent / "wrk" / "scenario.lua"
MARKER = "BENCH_JSON "
#: A request slower than this counts as a timeout error.
REQUEST_TIMEOUT_S = 10


@dataclass(frozen=True, slots=True)
class WrkResult:
    requests: int
    seconds: float
    requests_per_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    errors: dict[str, int]
    #: CPU used, as a share of the whole machine (all cores) over the run.
    wrk_cpu: float
    app_cpu: float
    pg_cpu: float
    machine_busy: float
    #: PostgreSQL sessions (connections) the service opened during the run.
    sessions_opened: int | None
    #: The harness's helpers the service talks to besides PostgreSQL (the SMTP sink).
    helper_cpu: float = 0.0

    @property
    def other_cpu(self) -> float:
        """Busy time of everything else on the machine (other jobs disturb the numbers)."""
        return max(
            0.0,
            self.machine_busy - self.wrk_cpu - self.app_cpu - self.pg_cpu - self.helper_cpu,
        )

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())


def wrk_path() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise RuntimeError(
            "wrk is not installed: `apt-get install -y wrk` (or `make bench-deps` as root)"
        )
    return found


def wrk_version() -> str:
    result = subprocess.run(
        [wrk_path(), "--version"], capture_output=True, text=True, timeout=10, check=False
    )
    return (result.stdout or result.stderr).splitlines()[0].split(" Copyright")[0].strip()


def run_wrk(
    base_url: str,
    scenario: Scenario,
    token: str,
    *,
    duration: float,
    connections: int,
    threads: int,
    app_pids: Callable[[], list[int]],
    pg_pids: Callable[[], list[int]],
    pg_sessions: Callable[[], int | None],
    helper_pids: Callable[[], list[int]] = list,
) -> WrkResult:
    """One wrk run of the scenario; raises if wrk fails or prints no summary."""
    env = {
        **os.environ,
        "BENCH_METHOD": scenario.method,
        "BENCH_AUTH": token,
        "BENCH_BODY": scenario.body or "",
        "BENCH_PATHS": "\n".join(scenario.paths),
        "BENCH_PATCH_IDS": ",".join(str(i) for i in scenario.patch_ids),
        "BENCH_THREADS": str(threads),
        # A fresh nonce per wrk run: its requests' unique values meet no earlier run's.
        "BENCH_NONCE": secrets.token_hex(6) if UNIQUE in (scenario.body or "") else "",
    }
    command = [
        wrk_path(),
        "-t",
        str(threads),
        "-c",
        str(connections),
        "-d",
        f"{max(1, round(duration))}s",
        "--timeout",
        f"{REQUEST_TIMEOUT_S}s",
        "-s",
        str(LUA),
        base_url,
    ]
    sessions_before = pg_sessions()
    app_before = cpu_by_pid(app_pids())
    pg_before = cpu_by_pid(pg_pids())
    helper_before = cpu_by_pid(helper_pids())
    busy_before, total_before = machine_ticks()
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = subprocess.run(
        command,
        env=env,
        capture_output=True,
        text=True,
        timeout=duration + REQUEST_TIMEOUT_S + 30,
        check=False,
    )
    wall = time.perf_counter() - started
    children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy_after, total_after = machine_ticks()
    app_after = cpu_by_pid(app_pids())
    pg_after = cpu_by_pid(pg_pids())
    helper_after = cpu_by_pid(helper_pids())
    sessions_after = pg_sessions()
    if result.returncode != 0:
        raise RuntimeError(f"wrk exited {result.returncode}: {result.stderr.strip()[:500]}")
    summary = _summary(result.stdout)
    cores = os.cpu_count() or 1
    # wrk is the only child reaped during the run: the children's rusage delta is wrk's.
    wrk_cpu_s = (children_after.ru_utime - children_before.ru_utime) + (
        children_after.ru_stime - children_before.ru_stime
    )
    seconds = summary["duration_us"] / 1e6
    return WrkResult(
        requests=int(summary["requests"]),
        seconds=seconds,
        requests_per_s=summary["requests"] / seconds if seconds else 0.0,
        p50_ms=summary["p50_us"] / 1000,
        p90_ms=summary["p90_us"] / 1000,
        p99_ms=summary["p99_us"] / 1000,
        max_ms=summary["max_us"] / 1000,
        errors={
            kind: int(summary[kind])
            for kind in ("connect", "read", "write", "status", "timeout")
            if summary[kind]
        },
        wrk_cpu=wrk_cpu_s / (wall * cores),
        app_cpu=cpu_used(app_before, app_after) / (wall * cores),
        # Backends that exit during the run (a churning pool's) take their CPU time with them.
        pg_cpu=cpu_used(pg_before, pg_after) / (wall * cores),
        machine_busy=(busy_after - busy_before) / max(1, total_after - total_before),
        sessions_opened=(
            None
            if sessions_before is None or sessions_after is None
            else sessions_after - sessions_before
        ),
        helper_cpu=cpu_used(helper_before, helper_after) / (wall * cores),
    )


def _summary(stdout: str) -> dict[str, float]:
    for line in stdout.splitlines():
        if line.startswith(MARKER):
            parsed: dict[str, float] = json.loads(line[len(MARKER) :])
            return parsed
    raise RuntimeError(f"wrk printed no {MARKER.strip()} line:\n{stdout[-1000:]}")
