"""The API rate limit's one Redis command, on a connection of its own: `INCRBY` of a fixed
window's key (plus `EXPIRE` on the window's first request), as `limits`' Redis storage sends it,
on the same keys (`LIMITS:` + the item's key), so that workers running either count together.

Every API request pays for this call (SPEC §11), so it is kept to what it needs: one
connection per process, opened when first needed, on which concurrent requests' commands are
written as they come and their replies read back in order (RESP replies come in the order the
commands were sent), with no client library in between. Through `limits` and its client
(coredis) the same round trip cost ~150 µs of CPU per request (docs/BENCHMARKS.md).

Failures are the caller's to handle (`app.ratelimit.ResilientLimiter` falls back to memory):
a connection that fails, closes or takes longer than the caller's timeout is dropped, every
command waiting on it fails with `RedisUnavailable`, and the next command opens a new one.
A command that met a dropped connection is sent again at once (twice at most), as the
`limits` storage's retry policy did: Redis restarted, or closed our connection.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import cast
from urllib.parse import unquote, urlsplit

#: `limits`' Redis storage prefixes its keys so; the same keys let both clients count together.
KEY_PREFIX = "LIMITS:"
#: A command that met a dropped connection is sent again this many times at most.
RETRIES_ON_DROP = 2


class RedisUnavailable(ConnectionError):
    """The connection to Redis failed or was dropped; the command may or may not have run."""


class RedisReplyError(Exception):
    """Redis answered a command with an error (`-ERR …`)."""


def lean_url(url: str) -> bool:
    """Whether `url` is a plain `redis://` URL this client serves: host, port, database,
    credentials; no TLS, socket path, Sentinel, cluster or query options (`limits` serves
    those)."""
    parts = urlsplit(url.removeprefix("async+"))
    if parts.scheme != "redis" or parts.query or parts.fragment or not parts.hostname:
        return False
    try:
        _database(parts.path)
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        return False
    return True


def _database(path: str) -> int:
    name = path.strip("/")
    return int(name) if name else 0


def _command(*words: bytes) -> bytes:
    out = [b"*%d\r\n" % len(words)]
    for word in words:
        out.append(b"$%d\r\n%s\r\n" % (len(word), word))
    return b"".join(out)


class _Replies(asyncio.Protocol):
    """One connection: waiters for replies, in the order their commands were written."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.waiting: deque[asyncio.Future[int | bytes | None]] = deque()
        self.buffer = b""
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have its methods.
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        while self.waiting:
            waiter = self.waiting.popleft()
            if not waiter.done():
                waiter.set_exception(RedisUnavailable("the connection to Redis was closed"))

    def send(self, payload: bytes, replies: int) -> list[asyncio.Future[int | bytes | None]]:
        if self.lost or self.transport is None or self.transport.is_closing():
            raise RedisUnavailable("the connection to Redis was closed")
        loop = asyncio.get_running_loop()
        waiters: list[asyncio.Future[int | bytes | None]] = [
            loop.create_future() for _ in range(replies)
        ]
        self.waiting.extend(waiters)
        self.transport.write(payload)
        return waiters

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer + data if self.buffer else data
        start = 0
        while True:
            end = buffer.find(b"\r\n", start)
            if end < 0:
                break
            kind = buffer[start : start + 1]
            line = buffer[start + 1 : end]
            value: int | bytes | RedisReplyError | None
            if kind == b":":
                value = int(line)
            elif kind == b"+":
                value = line
            elif kind == b"-":
                value = RedisReplyError(line.decode("utf-8", "replace"))
            elif kind == b"$":
                size = int(line)
                if size < 0:
                    value = None
                else:
                    if len(buffer) < end + 2 + size + 2:
                        break  # the rest of this bulk string is still on its way
                    value = buffer[end + 2 : end + 2 + size]
                    end += size + 2
            else:  # not a reply to any command this client sends
                self.buffer = b""
                self.protocol_error()
                return
            start = end + 2
            self.deliver(value)
        self.buffer = buffer[start:]

    def deliver(self, value: int | bytes | RedisReplyError | None) -> None:
        if not self.waiting:  # a reply nobody sent a command for
            self.protocol_error()
            return
        waiter = self.waiting.popleft()
        if waiter.done():  # its caller gave up (a timeout): the reply is read and dropped
            return
        if isinstance(value, RedisReplyError):
            waiter.set_exception(value)
        else:
            waiter.set_result(value)

    def protocol_error(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.abort()


def _outcome_read(task: asyncio.Task[_Replies]) -> None:
    if not task.cancelled():
        task.exception()


class RedisCounter:
    """`incr(key, expiry)`, as `limits`' `Storage.incr`, on one pipelined connection."""

    def __init__(self, url: str, *, connect_timeout: float) -> None:
        parts = urlsplit(url.removeprefix("async+"))
        self.host = parts.hostname or "localhost"
        self.port = parts.port or 6379
        self.database = _database(parts.path)
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        self.connect_timeout = connect_timeout
        self._connection: _Replies | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connecting: asyncio.Task[_Replies] | None = None

    async def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        full_key = (KEY_PREFIX + key).encode()
        attempt = 0
        while True:
            try:
                connection = await self._connected()
                value = await self._call(connection, _command(b"INCRBY", full_key, b"%d" % amount))
                assert isinstance(value, int)
                if value == amount:  # the window's first request: the key lives as long
                    await self._call(connection, _command(b"EXPIRE", full_key, b"%d" % expiry))
                return value
            except RedisUnavailable:
                attempt += 1
                if attempt > RETRIES_ON_DROP:
                    raise
                await asyncio.sleep(0.01)

    async def _call(self, connection: _Replies, payload: bytes) -> int | bytes | None:
        (waiter,) = connection.send(payload, 1)
        try:
            return await waiter
        except asyncio.CancelledError:
            # The caller's timeout: what else is waiting on this connection would wait as long,
            # and a reply may never come (a frozen server). Drop it; the next call reconnects.
            self._drop(connection)
            raise

    async def _connected(self) -> _Replies:
        loop = asyncio.get_running_loop()
        connection = self._connection
        if connection is not None and not connection.lost and self._loop is loop:
            return connection
        if connection is not None:
            self._drop(connection)
        if self._connecting is None or self._connecting.get_loop() is not loop:
            self._connecting = loop.create_task(self._connect())
            # Its callers may all have given up (their timeouts) before it ends: its outcome is
            # then nobody's, and not an "exception never retrieved" in the log.
            self._connecting.add_done_callback(_outcome_read)
        connecting = self._connecting
        try:
            # Shielded: one caller's timeout does not cancel the others' connection attempt.
            return await asyncio.shield(connecting)
        finally:
            if connecting.done() and self._connecting is connecting:
                self._connecting = None

    async def _connect(self) -> _Replies:
        loop = asyncio.get_running_loop()
        connection: _Replies | None = None
        try:
            async with asyncio.timeout(self.connect_timeout):
                _transport, connection = await loop.create_connection(
                    _Replies, self.host, self.port
                )
                setup: list[bytes] = []
                if self.password is not None:
                    credentials = [self.password.encode()]
                    if self.username is not None:
                        credentials.insert(0, self.username.encode())
                    setup.append(_command(b"AUTH", *credentials))
                if self.database:
                    setup.append(_command(b"SELECT", b"%d" % self.database))
                if setup:
                    for waiter in connection.send(b"".join(setup), len(setup)):
                        await waiter
        except (OSError, TimeoutError, RedisReplyError) as exc:
            if connection is not None:
                connection.close()
            raise RedisUnavailable(f"cannot connect to Redis: {type(exc).__name__}") from exc
        self._connection = connection
        self._loop = loop
        return connection

    def _drop(self, connection: _Replies) -> None:
        connection.close()
        if self._connection is connection:
            self._connection = None

    def close(self) -> None:
        if self._connection is not None:
            self._drop(self._connection)
