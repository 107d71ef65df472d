"""A throwaway redis-server of the test's own, on 127.0.0.1 and a free port, that a test may
stop and start again (on the same port) to play an outage."""

from __future__ import annotations

import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests.live import free_port


class RedisServer:
    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is missing: `apt-get install redis-server` (system-deps)")
        self.binary = binary
        self.port = free_port()
        self.workdir = tempfile.mkdtemp(prefix="accounts-redis-")
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        args = ["--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.process = subprocess.Popen(
            [self.binary, *args], cwd=self.workdir, stdout=subprocess.DEVNULL
        )
        for _ in range(100):  # at most ~10 s
            probe = subprocess.run(
                ["redis-cli", "-p", str(self.port), "ping"],
                capture_output=True,
                text=True,
                check=False,
                timeout=5,
            )
            if probe.stdout.strip() == "PONG":
                return
            if self.process.poll() is not None:
                pytest.fail("redis-server exited during start-up")
            time.sleep(0.1)
        pytest.fail("redis-server did not answer within 10 s")

    def cli(self, *args: str) -> str:
        probe = subprocess.run(
            ["redis-cli", "-p", str(self.port), *args],
            capture_output=True, text=True, check=True, timeout=5,
        )  # fmt: skip
        return probe.stdout.strip()

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): connections stay open, nothing answers (a slow Redis)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)  # a paused server would not stop
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None


@contextmanager
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.workdir, ignore_errors=True)
