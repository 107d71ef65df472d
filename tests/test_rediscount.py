"""The API rate limit's lean Redis client (app/rediscount.py) against a real redis-server: it
counts on `limits`' own keys (workers of either kind count together), sets the window's expiry,
pipelines concurrent commands on one connection, logs in and selects the database the URL names,
and reads replies however the bytes arrive."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from limits import parse
from limits.aio.storage import Storage
from limits.storage import storage_from_string

from app.ratelimit import ResilientLimiter
from app.rediscount import RedisCounter, RedisReplyError, RedisUnavailable, _Replies, lean_url
from tests.live import free_port
from tests.redisserver import RedisServer, redis_server

LIMIT = parse("100/minute")


@pytest.fixture(scope="module")
def server() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


@pytest.mark.parametrize(
    ("url", "lean"),
    [
        ("redis://127.0.0.1:6379/0", True),
        ("redis://cache", True),
        ("async+redis://:secret@cache:6380/2", True),
        ("redis://user:secret@cache:6380", True),
        ("rediss://cache:6380/0", False),  # TLS: limits' client
        ("redis+sentinel://cache:26379/mymaster", False),
        ("redis+cluster://cache:7000", False),
        ("redis://cache:6379/0?socket_timeout=1", False),
        ("redis://cache:6379/zero", False),
        ("redis://cache:port/0", False),
        ("memcached://cache:11211", False),
    ],
)
def test_which_urls_the_lean_client_serves(url: str, lean: bool) -> None:
    assert lean_url(url) is lean


async def test_counts_on_the_keys_limits_uses(server: RedisServer) -> None:
    """A worker on the lean client and one on `limits`' storage (the release before) share one
    count during a rolling upgrade."""
    limiter = ResilientLimiter(server.url)
    assert limiter.counter is not None  # the lean client serves this URL
    first = await limiter.count(LIMIT, "api", "user:41")
    assert (first.used, first.remaining) == (1, 99)
    window = int(first.reset_at // LIMIT.get_expiry()) - 1
    key = LIMIT.key_for("api", "user:41", str(window))
    storage: Storage = storage_from_string(f"async+{server.url}")  # type: ignore[assignment]
    assert await storage.get(key) == 1
    await storage.incr(key, 60)
    assert (await limiter.count(LIMIT, "api", "user:41")).used == 3
    ttl = int(server.cli("TTL", f"LIMITS:{key}"))
    assert 0 < ttl <= LIMIT.get_expiry() + 1
    assert not limiter.counting_in_memory


async def test_concurrent_counts_share_one_connection_and_lose_none(server: RedisServer) -> None:
    counter = RedisCounter(server.url, connect_timeout=1.0)
    before = int(server.cli("INFO", "stats").split("total_connections_received:")[1].split()[0])
    values = await asyncio.gather(*(counter.incr("test/concurrent", 60) for _ in range(200)))
    after = int(server.cli("INFO", "stats").split("total_connections_received:")[1].split()[0])
    counter.close()
    assert sorted(values) == list(range(1, 201))
    assert after - before == 2  # ours, and the redis-cli that read `after`
    assert server.cli("GET", "LIMITS:test/concurrent") == "200"


async def test_the_database_and_password_of_the_url(server: RedisServer) -> None:
    counter = RedisCounter(f"redis://127.0.0.1:{server.port}/3", connect_timeout=1.0)
    assert await counter.incr("test/database", 60) == 1
    counter.close()
    assert server.cli("-n", "3", "GET", "LIMITS:test/database") == "1"
    assert server.cli("-n", "0", "EXISTS", "LIMITS:test/database") == "0"
    server.cli("CONFIG", "SET", "requirepass", "s3cret")
    try:
        right = RedisCounter(f"redis://:s3cret@127.0.0.1:{server.port}/0", connect_timeout=1.0)
        assert await right.incr("test/auth", 60) == 1
        right.close()
        wrong = RedisCounter(f"redis://:wrong@127.0.0.1:{server.port}/0", connect_timeout=1.0)
        with pytest.raises(RedisUnavailable):
            await wrong.incr("test/auth", 60)
        anonymous = RedisCounter(server.url, connect_timeout=1.0)
        with pytest.raises(RedisReplyError, match="NOAUTH"):
            await anonymous.incr("test/auth", 60)
        anonymous.close()
    finally:
        server.cli("-a", "s3cret", "--no-auth-warning", "CONFIG", "SET", "requirepass", "")


async def test_a_server_that_is_not_there_is_unavailable() -> None:
    counter = RedisCounter(f"redis://127.0.0.1:{free_port()}/0", connect_timeout=1.0)
    with pytest.raises(RedisUnavailable):
        await counter.incr("test/nobody", 60)


async def test_replies_split_anywhere_are_read_in_order() -> None:
    """Replies as TCP may cut them: in one piece, byte by byte, or two in one segment."""
    stream = b":7\r\n+OK\r\n-ERR wrong type\r\n$5\r\nab\r\nc\r\n$-1\r\n:-3\r\n"
    for cut in (len(stream), 1, 3, 7):
        replies = _Replies()
        replies.connection_made(_NullTransport())  # type: ignore[arg-type]
        waiters = replies.send(b"", 6)
        for start in range(0, len(stream), cut):
            replies.data_received(stream[start : start + cut])
        assert waiters[0].result() == 7
        assert waiters[1].result() == b"OK"
        assert isinstance(waiters[2].exception(), RedisReplyError)
        assert waiters[3].result() == b"ab\r\nc"
        assert waiters[4].result() is None
        assert waiters[5].result() == -3
        assert not replies.waiting
        assert replies.buffer == b""


async def test_a_reply_nobody_asked_for_drops_the_connection() -> None:
    replies = _Replies()
    transport = _NullTransport()
    replies.connection_made(transport)  # type: ignore[arg-type]
    replies.data_received(b":1\r\n")
    assert transport.aborted


class _NullTransport:
    def __init__(self) -> None:
        self.aborted = False

    def write(self, _data: bytes) -> None:
        pass

    def is_closing(self) -> bool:
        return self.aborted

    def abort(self) -> None:
        self.aborted = True
