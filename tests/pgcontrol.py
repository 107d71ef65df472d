"""A private PostgreSQL cluster that tests can stop and start again, to fake an outage.

`tests.postgres.throwaway_cluster()` serves a whole test run and is never stopped; fault tests
need a server of their own whose stop (`pg_ctl stop -m fast`) they control. As root, every
`initdb`/`pg_ctl` runs as the `postgres` user, since PostgreSQL refuses to run as root.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType

from tests.postgres import _bindir, _free_port


class StoppableCluster:
    """`with StoppableCluster() as cluster:` initdb's and starts it; leaving deletes it."""

    def __init__(self, *, durable: bool = False) -> None:
        """`durable`: PostgreSQL's own defaults (fsync, synchronous_commit, full_page_writes
        on), as deployed; else those off, for tests that only need a server to stop."""
        self.durable = durable
        self.bindir = _bindir()
        self.workdir = Path(tempfile.mkdtemp(prefix="accounts-pg-faults-"))
        self.data = self.workdir / "data"
        self.log = self.workdir / "server.log"
        self.port = _free_port()
        self.prefix: list[str] = []
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            os.chown(self.workdir, owner.pw_uid, owner.pw_gid)
            self.prefix = ["runuser", "-u", "postgres", "--"]

    @property
    def url(self) -> str:
        """The SQLAlchemy URL of the cluster's `postgres` database."""
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def _run(self, *args: str, check: bool = True) -> None:
        subprocess.run([*self.prefix, *args], check=check, stdout=subprocess.DEVNULL, timeout=60)

    def _pg_ctl(self, *args: str, check: bool = True) -> None:
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), *args, check=check)

    def init(self) -> None:
        self._run(
            str(self.bindir / "initdb"),
            *("-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8"),
        )

    def start(self) -> None:
        """Start the server and wait (`-w`) until it accepts connections."""
        options = f"-p {self.port} -k {self.workdir} -c listen_addresses=127.0.0.1"
        if not self.durable:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        options += " -c max_connections=200"
        self._pg_ctl("-l", str(self.log), "-o", options, "-w", "-t", "30", "start")

    def createdb(self, name: str) -> None:
        self._run(
            str(self.bindir / "createdb"),
            *("-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", name),
        )

    def restart(self) -> None:
        """Stop (`fast`: open sessions end at once) and start again on the same port."""
        self.stop()
        self.start()

    def stop(self, mode: str = "fast") -> None:
        """Stop the server; `fast` ends open sessions at once, as an operator's restart does."""
        self._pg_ctl("-m", mode, "-w", "-t", "30", "stop")

    def server_pids(self) -> list[int]:
        """The postmaster and every process it has forked (backends, background workers)."""
        postmaster = int((self.data / "postmaster.pid").read_text().split()[0])
        pids = [postmaster]
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                # "pid (comm) state ppid ...": comm may hold spaces, so split after its ")".
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue  # the process ended while we looked
            if int(fields[1]) == postmaster:
                pids.append(int(stat.parent.name))
        return pids

    def pause(self) -> list[int]:
        """Freeze the server (SIGSTOP): connections stay open but nothing answers, as in a
        network partition. Returns the frozen processes, for `resume`."""
        pids = self.server_pids()
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        return pids

    def resume(self, pids: list[int]) -> None:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)

    def __enter__(self) -> StoppableCluster:
        try:
            self.init()
            self.start()
        except BaseException:
            self.cleanup()
            raise
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        self.cleanup()

    def cleanup(self) -> None:
        if self.running:
            self.resume(self.server_pids())  # a frozen server would not stop
            self._pg_ctl("-m", "immediate", "stop", check=False)
        shutil.rmtree(self.workdir, ignore_errors=True)
