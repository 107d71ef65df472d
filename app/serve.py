"""`python -m app.serve`: uvicorn's own command line, with connections shared evenly by the workers.

Uvicorn's workers wait on one listening socket, and the worker that wakes first accepts every
connection waiting. Keep-alive connections (a load balancer's, a client pool's, wrk's) stay with
the worker that accepted them for their life: a burst of 16 was seen split 13/3, and then one
worker queues requests on its core while the other idles. FlexMeasures' gunicorn sync workers
don't have the problem because they serve one connection at a time.

Here the supervisor is uvicorn's (`--workers`, restarts, signals: all as before), and each worker
accepts through a `BalancedListener`: it takes a connection only while it holds no more than the
least loaded other worker, as every worker publishes on a shared `Board` (a few bytes of shared
memory: one slot per worker with its pid and its open connections). Two workers' counts never
differ by more than one while both accept. A worker whose loop stops accepting (blocked, or
dead and not yet replaced) is not waited for: after `STALL_S` with a connection waiting, the
others accept regardless.

Everything else (the HTTP protocol, graceful shutdown, the app) is uvicorn's. With one worker
there is nothing to share, and with TLS served by uvicorn itself (`--ssl-keyfile`; usually the
load balancer's job) the workers accept as uvicorn does: both run unchanged.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import errno
import fcntl
import logging
import mmap
import os
import select
import socket
import sys
import tempfile
from collections.abc import Callable
from typing import Any

import uvicorn
import uvicorn.main
import uvicorn.supervisors.multiprocess as multiprocess
from uvicorn.config import STARTUP_FAILURE

logger = logging.getLogger("uvicorn.error")

#: How long connections may wait on the least loaded worker before another accepts them.
STALL_S = 0.05
#: How often a worker that holds more than its share looks again.
RECHECK_S = 0.005
#: Connections accepted in one wake-up at most, so that one burst can't hold the loop.
ACCEPT_BATCH = 16
#: accept() errors after which a worker pauses listening (as asyncio's own servers do).
_OUT_OF_RESOURCES = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
#: How a board's file name starts: then the pid of the supervisor that made it.
BOARD_PREFIX = "accounts-connections-"
#: Environment variable through which the supervisor tells its workers where the board is.
BOARD_ENV = "ACCOUNTS_CONNECTION_BOARD"


class Board:
    """Each worker's pid and open connections, in shared memory (a file mapped by every worker).

    A slot is two 64-bit integers; only its owner writes it, so a reader sees each value whole.
    Slots are claimed under an exclusive lock on the file; a slot whose pid is gone is free.
    """

    SLOTS = 64
    SIZE = SLOTS * 2 * 8

    def __init__(self, path: str) -> None:
        self.path = path
        fd = os.open(path, os.O_RDWR)
        try:
            self._map = mmap.mmap(fd, self.SIZE)
        finally:
            os.close(fd)
        self._cells = memoryview(self._map).cast("q")

    @classmethod
    def create(cls) -> str:
        """A new, empty board's path, named after this process, in /dev/shm where there is one
        (memory, not disk). Boards left by supervisors that are gone (killed: no exit handler
        ran) are removed first."""
        folder = board_folder()
        for name in os.listdir(folder):
            owner = name.removeprefix(BOARD_PREFIX).split("-", 1)[0]
            if name.startswith(BOARD_PREFIX) and owner.isdigit() and not _alive(int(owner)):
                with contextlib.suppress(OSError):
                    os.remove(os.path.join(folder, name))
        fd, path = tempfile.mkstemp(prefix=f"{BOARD_PREFIX}{os.getpid()}-", dir=folder)
        try:
            os.ftruncate(fd, cls.SIZE)
        finally:
            os.close(fd)
        return path

    def claim(self, pid: int) -> int:
        """The first slot free or left by a process that is gone, now `pid`'s with 0 connections."""
        with open(self.path, "rb") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            for slot in range(self.SLOTS):
                owner = self._cells[2 * slot]
                if owner == 0 or owner == pid or not _alive(owner):
                    self._cells[2 * slot + 1] = 0
                    self._cells[2 * slot] = pid
                    return slot
        raise RuntimeError(f"all {self.SLOTS} slots of {self.path} are taken")

    def release(self, slot: int) -> None:
        self._cells[2 * slot + 1] = 0
        self._cells[2 * slot] = 0

    def add(self, slot: int, delta: int) -> None:
        self._cells[2 * slot + 1] += delta

    def count(self, slot: int) -> int:
        return int(self._cells[2 * slot + 1])

    def fewest_elsewhere(self, slot: int) -> int | None:
        """The fewest connections any other claimed slot holds; None when there is no other."""
        cells = self._cells
        fewest: int | None = None
        for other in range(self.SLOTS):
            if other != slot and cells[2 * other] != 0:
                count = cells[2 * other + 1]
                if fewest is None or count < fewest:
                    fewest = count
        return fewest

    def claimed(self) -> dict[int, int]:
        """Every claimed slot's pid and its open connections (what `/proc` would count)."""
        cells = self._cells
        return {
            cells[2 * slot]: cells[2 * slot + 1]
            for slot in range(self.SLOTS)
            if cells[2 * slot] != 0
        }

    def close(self) -> None:
        self._cells.release()
        self._map.close()


def board_folder() -> str:
    """Where boards are made: /dev/shm (memory) where there is one, else the temporary folder."""
    return "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


class BalancedListener:
    """One worker's side of the shared listening socket, in place of uvicorn's asyncio server.

    It accepts while this worker holds no more connections than the least loaded other worker;
    otherwise it stops listening and looks again every `RECHECK_S`, or at once when one of its own
    connections closes. Connections that have waited `STALL_S` for the others are taken anyway.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        sock: socket.socket,
        protocol_factory: Callable[[], asyncio.Protocol],
        board: Board,
        slot: int,
    ) -> None:
        self._loop = loop
        self._sock = sock
        self._fd = sock.fileno()
        self._protocol_factory = protocol_factory
        self._board = board
        self._slot = slot
        self._reading = False
        self._recheck: asyncio.TimerHandle | None = None
        self._waiting_since: float | None = None
        self._closed = False
        self._handshakes: set[asyncio.Task[None]] = set()
        sock.setblocking(False)

    def start(self) -> None:
        self._listen()

    def close(self) -> None:
        self._closed = True
        self._stop_listening()
        if self._recheck is not None:
            self._recheck.cancel()
            self._recheck = None

    async def wait_closed(self) -> None:
        if self._handshakes:
            await asyncio.gather(*self._handshakes, return_exceptions=True)

    def connection_closed(self) -> None:
        """One of this worker's connections ended: it may be its turn again."""
        self._board.add(self._slot, -1)
        if not self._closed and not self._reading:
            self._listen()

    def _listen(self) -> None:
        if not self._reading:
            self._loop.add_reader(self._fd, self._accept_some)
            self._reading = True

    def _stop_listening(self) -> None:
        if self._reading:
            self._loop.remove_reader(self._fd)
            self._reading = False

    def _my_turn(self) -> bool:
        fewest = self._board.fewest_elsewhere(self._slot)
        if fewest is None or self._board.count(self._slot) <= fewest:
            return True
        now = self._loop.time()
        if self._waiting_since is None:
            self._waiting_since = now
            return False
        return now - self._waiting_since >= STALL_S

    def _accept_some(self) -> None:
        for _ in range(ACCEPT_BATCH):
            if self._closed:
                return
            if not self._my_turn():
                self._wait_for_turn()
                return
            try:
                conn, _address = self._sock.accept()
            except (BlockingIOError, InterruptedError):
                return  # another worker took it
            except OSError as exc:
                if exc.errno not in _OUT_OF_RESOURCES:
                    continue  # that connection was reset before it was accepted: the next
                # Out of descriptors or memory: as asyncio does, pause for a second.
                logger.error("Accepting a connection failed: %s", exc)
                self._stop_listening()
                self._loop.call_later(1.0, self._resume)
                return
            self._waiting_since = None
            self._board.add(self._slot, 1)
            conn.setblocking(False)
            task = self._loop.create_task(self._connect(conn))
            self._handshakes.add(task)
            task.add_done_callback(self._handshakes.discard)

    async def _connect(self, conn: socket.socket) -> None:
        try:
            await self._loop.connect_accepted_socket(self._protocol_factory, conn)
        except OSError:  # the peer left before the transport was built: nothing to serve
            conn.close()
            self.connection_closed()

    def _wait_for_turn(self) -> None:
        self._stop_listening()
        if self._recheck is None:
            self._recheck = self._loop.call_later(RECHECK_S, self._look_again)

    def _look_again(self) -> None:
        self._recheck = None
        if self._closed:
            return
        if not _readable(self._fd):
            self._waiting_since = None  # nobody waits: no stall to count
        self._listen()

    def _resume(self) -> None:
        if not self._closed:
            self._listen()


def _readable(fd: int) -> bool:
    ready, _, _ = select.select([fd], [], [], 0)
    return bool(ready)


class BalancedServer(uvicorn.Server):
    """Uvicorn's worker server, accepting its share of the shared socket through the board."""

    _board: Board | None = None
    _slot = -1

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        board_path = os.environ.get(BOARD_ENV)
        if sockets is None or len(sockets) != 1 or board_path is None or self.config.ssl:
            await super().startup(sockets)
            return
        await self.lifespan.startup()
        if self.lifespan.should_exit:
            sys.exit(STARTUP_FAILURE)
        self._board = Board(board_path)
        self._slot = self._board.claim(os.getpid())
        loop = asyncio.get_running_loop()
        config, server_state, app_state = self.config, self.server_state, self.lifespan.state
        counted = _counted(config.http_protocol_class, lambda: listener)

        def create_protocol() -> asyncio.Protocol:
            protocol: asyncio.Protocol = counted(
                config=config, server_state=server_state, app_state=app_state, _loop=loop
            )
            return protocol

        sockets[0].listen(config.backlog)  # as loop.create_server would
        listener = BalancedListener(loop, sockets[0], create_protocol, self._board, self._slot)
        listener.start()
        self.servers = [listener]  # type: ignore[list-item]  # close() and wait_closed() suffice
        self.started = True

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        await super().shutdown(sockets)
        if self._board is not None:
            self._board.release(self._slot)


def _counted(base: Any, listener: Callable[[], BalancedListener]) -> Any:
    """`base` (uvicorn's HTTP protocol), telling the listener when a connection ends."""

    class Counted(base):  # type: ignore[misc]
        def connection_lost(self, exc: Exception | None) -> None:
            try:
                super().connection_lost(exc)
            finally:
                listener().connection_closed()

    return Counted


class BalancedProcess(multiprocess.Process):
    """Uvicorn's worker process, serving with `BalancedServer` (it is built in the worker)."""

    def __init__(self, config: uvicorn.Config, sockets: list[socket.socket]) -> None:
        _share_board()
        super().__init__(config, sockets)

    @property
    def server(self) -> uvicorn.Server:
        if self._server is None:
            self._server = BalancedServer(config=self.config)
        return self._server


def _share_board() -> None:
    """Once per supervisor: a board for its workers, named to them in their environment."""
    if BOARD_ENV in os.environ:
        return
    try:
        path = Board.create()
    except OSError as exc:  # no writable /dev/shm or temporary folder: uvicorn's own accept
        logger.warning("Workers accept as uvicorn does (no board for their counts): %s", exc)
        return
    os.environ[BOARD_ENV] = path
    atexit.register(_remove, path)


def _remove(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)


def main() -> None:
    """Uvicorn's command line; with `--workers` over 1, its workers are `BalancedProcess`es."""
    multiprocess.Process = BalancedProcess  # type: ignore[misc]  # the name the supervisor builds from
    uvicorn.main.main()


if __name__ == "__main__":
    main()
