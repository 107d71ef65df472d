"""The deployment of docs/DEPLOYMENT.md on one machine's loopback: PostgreSQL, PgBouncer in
transaction pooling mode, Redis, two service instances of two uvicorn workers each, and HAProxy
in front, each a real process of the test's own (stopped, exactly, when the test ends).

PgBouncer and HAProxy read the operator's own files, `deploy/pgbouncer.ini` and
`deploy/haproxy.cfg`; only what must differ on loopback is set here (addresses, ports and, for
the throwaway cluster that trusts loopback, PgBouncer's authentication).

Addresses: HAProxy connects to the instances from 127.0.0.1, the only address they trust for
`X-Forwarded-For` (`FORWARDED_ALLOW_IPS`); test clients connect from other loopback addresses
(127.0.0.2 and up), as callers elsewhere on the network would.
"""

from __future__ import annotations

import configparser
import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.live import free_port
from tests.pgcontrol import StoppableCluster
from tests.redisserver import RedisServer

ROOT = Path(__file__).resolve().parents[2]
HAPROXY_CFG = ROOT / "deploy" / "haproxy.cfg"
PGBOUNCER_INI = ROOT / "deploy" / "pgbouncer.ini"
SECRET = "deployment-test-secret-key-shared-by-every-instance"
PROXY = "127.0.0.1"  # where HAProxy's connections to the instances come from
READY = "/api/v3_0/health/ready"


def binary(name: str) -> str:
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if path is None:
        pytest.fail(f"{name} is missing: `make system-deps` installs it from Debian's packages")
    return path


def wait_for_port(port: int, process: subprocess.Popen[bytes], what: str, within: float) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited during start-up (status {process.returncode})")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on {port} within {within:g} s")


def stop(process: subprocess.Popen[bytes] | None, sig: int = signal.SIGTERM) -> None:
    """Signal a process started in a session of its own, and its children, and reap it."""
    if process is None or process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


class Bouncer:
    """PgBouncer on `deploy/pgbouncer.ini`, pointed at the cluster's `accounts` database."""

    def __init__(self, cluster: StoppableCluster) -> None:
        self.port = free_port()
        self.workdir = Path(tempfile.mkdtemp(prefix="accounts-pgbouncer-"))
        self.ini = self.workdir / "pgbouncer.ini"
        self.log = self.workdir / "pgbouncer.log"
        # The operator's file, with what must differ on loopback put over it. (Not with
        # PgBouncer's %include: a [pgbouncer] section met again starts from the defaults.)
        config = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=None)
        config.optionxform = str  # type: ignore[assignment,method-assign]
        config.read(PGBOUNCER_INI)
        config["databases"] = {"accounts": f"host=127.0.0.1 port={cluster.port} dbname=accounts"}
        config["pgbouncer"].update(
            {
                "listen_addr": "127.0.0.1",
                "listen_port": str(self.port),
                "auth_type": "trust",
                "auth_file": str(self.workdir / "userlist.txt"),
                "stats_users": "postgres",
                "logfile": str(self.log),
                "pidfile": str(self.workdir / "pgbouncer.pid"),
            }
        )
        with self.ini.open("w") as out:
            config.write(out)
        (self.workdir / "userlist.txt").write_text('"postgres" ""\n')
        self.command = [binary("pgbouncer"), str(self.ini)]
        if os.geteuid() == 0:  # PgBouncer refuses to run as root: -u drops to postgres
            owner = pwd.getpwnam("postgres")
            for path in (self.workdir, *self.workdir.iterdir()):
                os.chown(path, owner.pw_uid, owner.pw_gid)
            self.command = [binary("pgbouncer"), "-u", "postgres", str(self.ini)]
        self.process: subprocess.Popen[bytes] | None = None

    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/accounts"

    def start(self) -> None:
        self.process = subprocess.Popen(
            self.command,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        wait_for_port(self.port, self.process, "pgbouncer", 10)

    def restart(self, down_for: float) -> None:
        """Stop PgBouncer (SIGTERM: at once, every connection closed), stay away `down_for`
        seconds, start it again on the same port."""
        stop(self.process)
        time.sleep(down_for)
        self.start()

    def stop(self) -> None:
        stop(self.process)
        shutil.rmtree(self.workdir, ignore_errors=True)


@dataclass
class Instance:
    """One machine's service: `accounts-serve --workers 2` (deploy/serve.sh) behind PgBouncer,
    counting in Redis."""

    name: str
    env: dict[str, str]
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    log: Path = field(default_factory=lambda: Path(tempfile.mkstemp(suffix=".log")[1]))

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        command = [
            sys.executable, "-m", "app.serve", "app.main:app",
            "--host", "127.0.0.1", "--port", str(self.port),
            "--workers", "2", "--loop", "uvloop", "--http", "httptools",
            "--proxy-headers", "--timeout-graceful-shutdown", "20",
            "--log-level", "warning", "--no-access-log",
        ]  # fmt: skip
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                command, env=self.env, stdout=log, stderr=log, start_new_session=True
            )
        deadline = time.monotonic() + 30
        with httpx.Client(base_url=self.base_url, timeout=1.0) as http:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(f"{self.name} exited during start-up:\n{self.log_tail()}")
                with contextlib.suppress(httpx.TransportError):
                    if http.get(READY).status_code == 200:
                        return
                time.sleep(0.1)
        raise RuntimeError(f"{self.name} was not ready within 30 s:\n{self.log_tail()}")

    def signal(self, sig: int) -> None:
        """`sig` to the whole instance: uvicorn's supervisor and both workers (SIGKILL), or
        the supervisor alone, which tells its workers (SIGTERM: a graceful drain)."""
        assert self.process is not None
        if sig == signal.SIGKILL:
            os.killpg(self.process.pid, sig)
        else:
            self.process.send_signal(sig)

    def wait(self, within: float) -> int:
        assert self.process is not None
        return self.process.wait(timeout=within)

    def stop(self) -> None:
        stop(self.process)

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


class Balancer:
    """HAProxy on `deploy/haproxy.cfg`, in front of two instances."""

    def __init__(self, first: Instance, second: Instance) -> None:
        self.port = free_port()
        self.workdir = Path(tempfile.mkdtemp(prefix="accounts-haproxy-"))
        self.socket = self.workdir / "admin.sock"
        self.env = {
            **os.environ,
            "HAPROXY_BIND": f"127.0.0.1:{self.port}",
            "APP1": f"127.0.0.1:{first.port}",
            "APP2": f"127.0.0.1:{second.port}",
            "HAPROXY_SOCKET": str(self.socket),
        }
        self.log = self.workdir / "haproxy.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [binary("haproxy"), "-f", str(HAPROXY_CFG)],
                env=self.env, stdout=log, stderr=log, start_new_session=True,
            )  # fmt: skip
        wait_for_port(self.port, self.process, "haproxy", 10)

    def command(self, line: str) -> str:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(5)
            sock.connect(str(self.socket))
            sock.sendall(line.encode() + b"\n")
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def servers(self) -> dict[str, dict[str, str]]:
        """`show stat` of the replicas backend: server name -> its columns (status, stot...)."""
        lines = self.command("show stat").splitlines()
        header = lines[0].lstrip("# ").split(",")
        rows = [dict(zip(header, line.split(","), strict=False)) for line in lines[1:] if line]
        return {
            row["svname"]: row
            for row in rows
            if row.get("pxname") == "replicas" and row["svname"] not in {"FRONTEND", "BACKEND"}
        }

    def wait_status(self, server: str, status: str, within: float) -> None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if self.servers()[server]["status"].startswith(status):
                return
            time.sleep(0.1)
        raise AssertionError(f"{server} not {status} within {within:g} s: {self.servers()}")

    def stop(self) -> None:
        stop(self.process)
        shutil.rmtree(self.workdir, ignore_errors=True)


@dataclass
class Topology:
    cluster: StoppableCluster
    bouncer: Bouncer
    redis: RedisServer
    instances: dict[str, Instance]
    balancer: Balancer

    def restart(self, name: str) -> None:
        """Start a stopped or killed instance again and wait until HAProxy routes to it."""
        instance = self.instances[name]
        instance.stop()
        instance.start()
        self.balancer.wait_status(name, "UP", 15)


def instance_env(bouncer: Bouncer, redis: RedisServer, api_rate_limit: str) -> dict[str, str]:
    return {
        **os.environ,
        "APP_ENV": "production",
        "SECRET_KEY": SECRET,
        "DATABASE_URL": bouncer.url(),
        "DB_PGBOUNCER": "true",
        "DB_CONNECT_TIMEOUT": "3",
        "DB_STATEMENT_TIMEOUT": "10",
        "RATE_LIMIT_STORAGE_URL": redis.url,
        "API_RATE_LIMIT": api_rate_limit,
        # Production sends no mail without SMTP_URL; nothing here sends any.
        "FORWARDED_ALLOW_IPS": PROXY,
        "LOG_LEVEL": "WARNING",
    }


def run_cli(env: dict[str, str], *args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        env=env, check=True, capture_output=True, timeout=120,
    )  # fmt: skip


@contextlib.contextmanager
def topology(api_rate_limit: str) -> Iterator[Topology]:
    """Start everything (the database migrated and seeded with the demo world directly, not
    through PgBouncer, as the compose file's one-off migration service does), yield, then stop
    exactly what it started, in reverse order."""
    with contextlib.ExitStack() as stack:
        cluster = stack.enter_context(StoppableCluster(durable=True))
        cluster.createdb("accounts")
        direct = {
            **os.environ,
            "DATABASE_URL": cluster.url.rsplit("/", 1)[0] + "/accounts",
            "SECRET_KEY": SECRET,
            "APP_ENV": "test",
        }
        run_cli(direct, "db", "upgrade")
        run_cli(direct, "add", "demo")
        bouncer = Bouncer(cluster)
        stack.callback(bouncer.stop)
        bouncer.start()
        redis = RedisServer()
        stack.callback(redis.stop)
        redis.start()
        env = instance_env(bouncer, redis, api_rate_limit)
        instances = {name: Instance(name, env) for name in ("app1", "app2")}
        for instance in instances.values():
            stack.callback(instance.stop)
            instance.start()
        balancer = Balancer(instances["app1"], instances["app2"])
        stack.callback(balancer.stop)
        balancer.start()
        for name in instances:
            balancer.wait_status(name, "UP", 15)
        yield Topology(cluster, bouncer, redis, instances, balancer)
