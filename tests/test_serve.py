"""`python -m app.serve`: uvicorn's workers sharing keep-alive connections evenly (app/serve.py).

Plain uvicorn lets whichever worker wakes first accept every waiting connection: 16 keep-alive
connections opened at once were seen split 16/0, 14/2 and 11/5. Here they must split 8/8 every
time, counted from outside (the kernel's table of established connections, matched to each
worker's open sockets) and on the board the workers share; a killed worker's replacement takes
its share again; a worker that stops accepting does not strand the connections waiting for it.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import pytest

from app.serve import BOARD_ENV, BOARD_PREFIX, STALL_S, BalancedListener, Board, board_folder
from tests.databases import Backend
from tests.live import LiveServer, live_server

CONNECTIONS = 16
REQUEST = b"GET /api/ HTTP/1.1\r\nHost: accounts\r\n\r\n"


@pytest.fixture(scope="module")
async def served(backend: Backend) -> AsyncIterator[LiveServer]:
    async with live_server(backend, "--workers", "2", server="app.serve") as running:
        yield running


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry))
    return found


def _board_of(supervisor: int) -> str:
    """The board's path, from a worker's environment (the supervisor names it to them)."""
    for child in _children(supervisor):
        environ = Path(f"/proc/{child}/environ").read_bytes().split(b"\0")
        for variable in environ:
            name, _, value = variable.partition(b"=")
            if name.decode() == BOARD_ENV:
                return value.decode()
    raise AssertionError("no worker names a board")


def _workers(board: Board, supervisor: int, count: int) -> list[int]:
    """The workers' pids once `count` of the supervisor's children have claimed a slot."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        live = [pid for pid in board.claimed() if pid in _children(supervisor)]
        if len(live) == count:
            return sorted(live)
        time.sleep(0.1)
    raise AssertionError(f"{count} workers did not claim their slots: {board.claimed()}")


def _established_to(port: int) -> set[str]:
    """Socket inodes of the established connections to the server's port."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) == port and fields[3] == "01":
            inodes.add(fields[9])
    return inodes


def _sockets_of(pid: int) -> set[str]:
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            match = re.fullmatch(r"socket:\[(\d+)\]", os.readlink(f"/proc/{pid}/fd/{fd}"))
        except OSError:
            continue
        if match:
            inodes.add(match.group(1))
    return inodes


def _open_all_at_once(port: int) -> list[socket.socket]:
    """`CONNECTIONS` keep-alive connections, each having had one 200 answered."""
    clients = [
        socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(CONNECTIONS)
    ]
    for client in clients:
        client.sendall(REQUEST)
    for client in clients:
        assert client.recv(65536).startswith(b"HTTP/1.1 200 ")
    return clients


def _split(served: LiveServer, workers: list[int]) -> tuple[list[int], dict[int, int]]:
    """Connections per worker as the kernel sees them, and as the board says."""
    established = _established_to(served.port)
    seen = [len(_sockets_of(pid) & established) for pid in workers]
    board = Board(_board_of(_supervisor(served)))
    try:
        said = {pid: count for pid, count in board.claimed().items() if pid in workers}
    finally:
        board.close()
    return seen, said


def _supervisor(served: LiveServer) -> int:
    assert served.process is not None
    return served.process.pid


def _close(clients: list[socket.socket]) -> None:
    for client in clients:
        client.close()


def _until_closed_everywhere(served: LiveServer, workers: list[int]) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        seen, said = _split(served, workers)
        if sum(seen) == 0 and sum(said.values()) == 0:
            return
        time.sleep(0.05)
    raise AssertionError(f"connections still counted after closing: {_split(served, workers)}")


def _assert_eight_and_eight(served: LiveServer, workers: list[int]) -> None:
    """16 connections opened at once: 8 on each worker, counted from outside and on the board."""
    clients = _open_all_at_once(served.port)
    try:
        seen, said = _split(served, workers)
        assert seen == [8, 8]
        assert said == dict.fromkeys(workers, 8)
    finally:
        _close(clients)


@contextmanager
def _fresh_board() -> Iterator[Board]:
    path = Board.create()
    board = Board(path)
    try:
        yield board
    finally:
        board.close()
        os.remove(path)


def test_sixteen_connections_opened_at_once_split_eight_and_eight(served: LiveServer) -> None:
    board = Board(_board_of(_supervisor(served)))
    try:
        workers = _workers(board, _supervisor(served), 2)
    finally:
        board.close()
    for _ in range(5):
        _assert_eight_and_eight(served, workers)
        _until_closed_everywhere(served, workers)


def test_a_killed_workers_replacement_takes_its_share(served: LiveServer) -> None:
    supervisor = _supervisor(served)
    board = Board(_board_of(supervisor))
    try:
        before = _workers(board, supervisor, 2)
        os.kill(before[0], signal.SIGKILL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and before[0] in _workers(board, supervisor, 2):
            time.sleep(0.1)
        after = _workers(board, supervisor, 2)
    finally:
        board.close()
    assert before[0] not in after
    assert before[1] in after
    _assert_eight_and_eight(served, after)


async def test_the_board_is_removed_when_the_server_stops(backend: Backend) -> None:
    async with live_server(backend, "--workers", "2", server="app.serve") as running:
        path = _board_of(_supervisor(running))
        assert await asyncio.to_thread(os.path.exists, path)
    assert not await asyncio.to_thread(os.path.exists, path)


async def test_one_worker_is_plain_uvicorn_with_no_board(backend: Backend) -> None:
    async with live_server(backend, server="app.serve") as running:
        clients = await asyncio.to_thread(_open_all_at_once, running.port)
        _close(clients)
        assert _children(_supervisor(running)) == []  # it serves in the process itself


def test_a_dead_processs_slot_is_claimed_again() -> None:
    with _fresh_board() as board:
        assert board.claim(os.getppid()) == 0
        board.add(0, 2)
        gone = subprocess.Popen([sys.executable, "-c", "pass"])
        gone.wait()
        assert board.claim(gone.pid) == 1
        board.add(1, 5)
        assert board.claim(os.getpid()) == 1  # the dead process's slot, with no connections
        assert board.claimed() == {os.getppid(): 2, os.getpid(): 0}  # the live one's kept
        board.release(1)
        assert board.claimed() == {os.getppid(): 2}


class _Echo(asyncio.Protocol):
    """Echoes what it reads; tells the listener when its connection ends (as `_counted` does)."""

    def __init__(self, listener: BalancedListener) -> None:
        self.listener = listener

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)  # type: ignore[attr-defined]

    def connection_lost(self, exc: Exception | None) -> None:
        self.listener.connection_closed()


@asynccontextmanager
async def _echoing(sock: Any, board: Board, slot: int) -> AsyncIterator[BalancedListener]:
    """A started listener on `sock` in `slot`, serving `_Echo`; closed afterwards."""
    listener: BalancedListener
    listener = BalancedListener(
        asyncio.get_running_loop(), sock, lambda: _Echo(listener), board, slot
    )
    listener.start()
    try:
        yield listener
    finally:
        listener.close()
        await listener.wait_closed()


async def _echoed(port: int, text: bytes) -> asyncio.StreamWriter:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(text)
    assert await asyncio.wait_for(reader.read(100), 10) == text
    return writer


async def test_connections_are_not_stranded_by_a_worker_that_stopped_accepting() -> None:
    """The other worker on the board (a live process that never accepts) holds none: after
    the first connection this one holds more, yet the next ones are served after STALL_S."""
    loop = asyncio.get_running_loop()
    with _fresh_board() as board, socket.create_server(("127.0.0.1", 0)) as sock:
        slot = board.claim(os.getpid())
        board.claim(os.getppid())  # the stalled worker: alive, 0 connections, never accepting
        async with _echoing(sock, board, slot):
            started = loop.time()
            streams = [await _echoed(sock.getsockname()[1], b"ping %d" % n) for n in range(3)]
            assert loop.time() - started >= STALL_S  # the second waited for the other first
            assert board.count(slot) == 3
            for writer in streams:
                writer.close()
                await writer.wait_closed()
            for _ in range(100):
                if board.count(slot) == 0:
                    break
                await asyncio.sleep(0.01)
            assert board.count(slot) == 0


class _ResetOnce:
    """A listening socket whose first accept() finds the connection reset by its client."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.reset = False

    def fileno(self) -> int:
        return self.sock.fileno()

    def setblocking(self, flag: bool) -> None:
        self.sock.setblocking(flag)

    def accept(self) -> tuple[socket.socket, object]:
        if not self.reset:
            self.reset = True
            raise ConnectionAbortedError(errno.ECONNABORTED, "Software caused connection abort")
        return self.sock.accept()


async def test_a_connection_reset_before_accept_is_skipped_not_an_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Out of descriptors, a worker pauses listening for a second (as asyncio does); a
    connection its client reset before it was accepted is no such trouble."""
    with _fresh_board() as board, socket.create_server(("127.0.0.1", 0)) as sock:
        flaky = _ResetOnce(sock)
        async with _echoing(flaky, board, board.claim(os.getpid())):
            with caplog.at_level(logging.ERROR, logger="uvicorn.error"):
                writer = await _echoed(sock.getsockname()[1], b"ping")
            writer.close()
            await writer.wait_closed()
        assert flaky.reset
        assert [r.getMessage() for r in caplog.records if r.name == "uvicorn.error"] == []


def test_boards_of_supervisors_that_are_gone_are_removed_by_the_next() -> None:
    """A supervisor killed outright (SIGKILL: no exit handler) leaves its board behind; the
    next one to start removes it, and leaves a live supervisor's board alone."""
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    folder = board_folder()
    left = os.path.join(folder, f"{BOARD_PREFIX}{gone.pid}-left")
    alive = os.path.join(folder, f"{BOARD_PREFIX}{os.getppid()}-alive")
    for path in (left, alive):
        with open(path, "wb"):
            pass
    with _fresh_board():
        assert not os.path.exists(left)
        assert os.path.exists(alive)
    os.remove(alive)
