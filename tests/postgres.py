"""Run a command against PostgreSQL: `python -m tests.postgres -- pytest …`.

With TEST_DATABASE_URL set to a postgresql URL, the command just runs with it. Otherwise a
throwaway cluster is started from the installed server binaries (as the `postgres` user when run
as root, since PostgreSQL refuses to run as root) on a free port, the command runs with
TEST_DATABASE_URL pointing at it, and the cluster is stopped and deleted afterwards.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path


def _bindir() -> Path:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    for directory in candidates:
        if (Path(directory) / "initdb").exists():
            return Path(directory)
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    sys.exit(
        "No PostgreSQL server binaries (initdb) found: install Debian's `postgresql` package "
        "or set TEST_DATABASE_URL."
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def throwaway_cluster(*, durable: bool = False) -> Iterator[str]:
    """A PostgreSQL cluster for as long as the `with` lasts. `durable`: PostgreSQL's own
    defaults (fsync, synchronous_commit, full_page_writes on; WAL beside the data), as users
    deploy it (the bench); else those off (the test suite: nothing it writes must survive)."""
    bindir = _bindir()
    as_root = os.geteuid() == 0
    workdir = Path(tempfile.mkdtemp(prefix="accounts-pg-"))
    data = workdir / "data"
    prefix: list[str] = []
    if as_root:
        owner = pwd.getpwnam("postgres")
        os.chown(workdir, owner.pw_uid, owner.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]
    port = _free_port()
    log = workdir / "server.log"

    def run(*args: str) -> None:
        subprocess.run([*prefix, *args], check=True, stdout=subprocess.DEVNULL, cwd=workdir)

    try:
        run(str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8")
        options = f"-p {port} -k {workdir} -c listen_addresses=127.0.0.1 -c max_connections=200"
        if not durable:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        run(str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "-w", "start")
        yield f"postgresql+asyncpg://postgres@127.0.0.1:{port}/postgres"
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run(
                [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                check=False,
                stdout=subprocess.DEVNULL,
                cwd=workdir,
            )
        shutil.rmtree(workdir, ignore_errors=True)


def main(argv: list[str]) -> int:
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        sys.exit("usage: python -m tests.postgres -- COMMAND [ARGS…]")
    given = os.environ.get("TEST_DATABASE_URL", "")
    if given.startswith("postgresql"):
        return subprocess.call(argv)
    with throwaway_cluster() as url:
        print(f"Throwaway PostgreSQL at {url}", flush=True)
        return subprocess.call(argv, env={**os.environ, "TEST_DATABASE_URL": url})


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
