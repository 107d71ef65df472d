"""The service under test (uvicorn on a free loopback port) and readings of its processes."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

import httpx

ROOT = Path(__file__).resolve().parent.parent
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def descendants(pid: int) -> list[int]:
    """Every live process below `pid` (uvicorn's workers), from /proc's parent links."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name (field 2) may hold spaces; the fields after its ")" are plain.
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    found: list[int] = []
    frontier = [pid]
    while frontier and len(found) < 1000:
        below = children.get(frontier.pop(), [])
        found.extend(below)
        frontier.extend(below)
    return found


def parent_of(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def rss_kib(pids: list[int]) -> int:
    """The sum of VmRSS over the processes (shared pages count once per process)."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total


def cpu_by_pid(pids: list[int]) -> dict[int, float]:
    """User plus system CPU seconds each live process has used so far (all its threads)."""
    seconds: dict[int, float] = {}
    for pid in pids:
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks = int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
            seconds[pid] = ticks / CLOCK_TICKS
    return seconds


def cpu_used(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds used between two readings by the processes alive at the second one
    (a process that started in between counts whole; one that ended is lost)."""
    return sum(value - before.get(pid, 0.0) for pid, value in after.items())


def machine_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    total = sum(values[:8])  # guest time is already part of user time
    return total - idle, total


class Service:
    """`uvicorn app.main:app` with its own environment, in a process group of its own.

    `target` and `extra_env` serve another app the same way (bench/framework_floor.py)."""

    def __init__(
        self,
        database_url: str,
        secret_key: str,
        workers: int,
        rate_limit_storage_url: str,
        smtp_url: str | None = None,
        *,
        concurrency: int,
        target: str = "app.main:app",
        extra_env: Mapping[str, str] | None = None,
    ) -> None:
        self.port = free_port()
        self.base_url = f"http://{HOST}:{self.port}"
        self.workers = workers
        self.env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "SECRET_KEY": secret_key,
            "APP_ENV": "production",
            # As deployed (the default): one JSON line per request, into this service's log.
            "LOG_LEVEL": "INFO",
            # On, and counting every request, but high enough never to answer 429 here.
            "API_RATE_LIMIT": "100000000/minute",
            "RATE_LIMIT_STORAGE_URL": rate_limit_storage_url,
            # As docs/DEPLOYMENT.md says to size it: at least the concurrency one worker sees.
            # wrk's connections stay with the worker that accepted them; accounts-serve shares
            # them evenly (8 each), but a worker that stalls leaves the others to take more, up
            # to all of them. With a smaller pool, each request over it opens and closes a
            # PostgreSQL connection of its own.
            "DB_POOL_SIZE": str(concurrency),
        }
        if smtp_url:  # else production has no mailer: a request that sends mail answers 503
            self.env["SMTP_URL"] = smtp_url
        self.env.update(extra_env or {})
        self.target = target
        self.log = Path(tempfile.mkstemp(prefix="bench-uvicorn-", suffix=".log")[1])
        self.process: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "app.serve",  # uvicorn, its workers sharing connections evenly (docs/DEPLOYMENT.md)
            self.target,
            "--host",
            HOST,
            "--port",
            str(self.port),
            "--workers",
            str(self.workers),
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--log-level",
            "warning",
            "--no-access-log",
        ]

    def __enter__(self) -> Service:
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                self.command(),
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stopped as one
            )
        try:
            self._wait_until_up()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _wait_until_up(self, seconds: float = 60.0) -> None:
        assert self.process is not None
        deadline = time.monotonic() + seconds
        with httpx.Client(base_url=self.base_url, timeout=2.0) as http:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(f"uvicorn exited during start-up:\n{self.log_tail()}")
                with contextlib.suppress(httpx.TransportError):
                    if http.get("/api/").status_code == 200 and self._workers_up():
                        return
                time.sleep(0.2)
        raise RuntimeError(f"uvicorn did not answer GET /api/ in {seconds:.0f} s")

    def _workers_up(self) -> bool:
        return self.workers <= 1 or len(self.pids()) > self.workers

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def pids(self) -> list[int]:
        if self.process is None or self.process.poll() is not None:
            return []
        return [self.process.pid, *descendants(self.process.pid)]

    def stop(self) -> None:
        process = self.process
        if process is None:
            return
        group = [pid for pid in self.pids() if _process_group(pid) == process.pid]
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(5)
        # Workers that outlived their supervisor: still ours if still in its process group.
        for pid in group:
            if _process_group(pid) == process.pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(OSError):
            self.log.unlink()


def _process_group(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[2])
    except (OSError, ValueError, IndexError):
        return None
