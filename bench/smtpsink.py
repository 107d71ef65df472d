"""A local SMTP server for the `invite` scenario: it accepts every mail, discards it, counts it.

    python -m bench.smtpsink PORT TALLY_PATH

An aiosmtpd Controller on 127.0.0.1:PORT, in a process of its own (its CPU is not the
harness's). Every mail accepted appends one byte to TALLY_PATH, so the count is the file's size:
the harness reads it without talking to the process, and a mail costs the sink one write(2).
It prints "ready" once it listens, and stops on SIGTERM or SIGINT, or when its parent is gone.

`SmtpSink` is the harness's side: started and stopped like the uvicorn it serves (bench/run.py).
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from bench.server import HOST, ROOT, free_port

STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}


class _Discard:
    """aiosmtpd's handler: one byte on the tally per mail, and the mail forgotten."""

    def __init__(self, tally_fd: int) -> None:
        self.tally_fd = tally_fd

    async def handle_DATA(self, _server: Any, _session: Any, _envelope: Any) -> str:
        os.write(self.tally_fd, b".")
        return "250 OK"


def serve(port: int, tally: Path) -> None:
    """The sink's process: listen until a stop signal (or the parent's death)."""
    from aiosmtpd.controller import Controller

    parent = os.getppid()
    # Blocked before the Controller's thread starts (it inherits the mask): sigtimedwait below
    # is then the only place these signals arrive.
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    tally_fd = os.open(tally, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    # A fixed server_hostname: aiosmtpd would otherwise ask socket.getfqdn() per connection.
    controller = Controller(
        _Discard(tally_fd), hostname=HOST, port=port, server_hostname="bench-smtp"
    )
    controller.start()
    try:
        print("ready", flush=True)
        while signal.sigtimedwait(STOP_SIGNALS, 1.0) is None and os.getppid() == parent:
            pass
    finally:
        controller.stop()
        os.close(tally_fd)


class SmtpSink:
    """`python -m bench.smtpsink` on a free loopback port; `received()` counts the mails."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"smtp://{HOST}:{self.port}"
        fd, name = tempfile.mkstemp(prefix="bench-smtp-", suffix=".tally")
        os.close(fd)
        self.tally = Path(name)
        self.process: subprocess.Popen[str] | None = None

    def __enter__(self) -> SmtpSink:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.smtpsink", str(self.port), str(self.tally)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,  # a Ctrl-C reaches the harness, which stops the sink
        )
        try:
            self._wait_until_ready()
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

    def _wait_until_ready(self, seconds: float = 30.0) -> None:
        assert self.process is not None
        assert self.process.stdout is not None
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            readable, _, _ = select.select([self.process.stdout], [], [], 0.2)
            if readable:
                line = self.process.stdout.readline()
                if line.strip() == "ready":
                    return
                if not line:
                    break  # stdout closed: the sink exited
        code = self.process.poll()
        if code is not None:
            raise RuntimeError(f"the SMTP sink exited during start-up ({code})")
        raise RuntimeError(f"the SMTP sink was not ready in {seconds:.0f} s")

    def received(self) -> int:
        """Mails accepted so far."""
        try:
            return self.tally.stat().st_size
        except OSError:
            return 0

    def pids(self) -> list[int]:
        if self.process is None or self.process.poll() is not None:
            return []
        return [self.process.pid]

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(5)
            if process.stdout is not None:
                process.stdout.close()
        with contextlib.suppress(OSError):
            self.tally.unlink()


if __name__ == "__main__":
    serve(int(sys.argv[1]), Path(sys.argv[2]))
