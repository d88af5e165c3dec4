"""The Redis publication store: a version prefix plus an atomic pointer.

Keys, for publication ``name`` under ``prefix`` (``?prefix=`` in the URL, default ``parity``)::

    {prefix}:pub:{<prefix>:<name>}:v:<version>   hash key -> value bytes (one per version)
    {prefix}:pub:{<prefix>:<name>}:live          the live version (a string)
    {prefix}:pub:{<prefix>:<name>}:manifests     hash version -> manifest JSON
    {prefix}:pub:{<prefix>:<name>}:next          the version counter
    {prefix}:pubs                                set of publication names

``RENAME`` cannot move keys across cluster slots, so a swap does not rename anything: it
moves the pointer. The ``{...}`` hash tag keeps one publication's keys in one slot, so the
compare-and-set swap and ``read_live`` (pointer + HMGET) run as single Lua scripts, atomic
on one server and in a cluster alike: a reader cannot see the pointer move half-way, nor read
a version that GC is deleting.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit, urlunsplit

from parity.errors import ConfigError, StateError, TransientError
from parity.hulk.stores.base import Row

T = TypeVar("T")
_PIPELINE_ROWS = 500  # rows per HSET command: short commands keep live reads waiting less

_READ_LIVE = """
local v = redis.call('GET', KEYS[1])
if not v then return {false} end
local out = {v}
if #ARGV == 0 then return out end
local values = redis.call('HMGET', ARGV[1] .. v, unpack(ARGV, 2))
for i = 1, #values do out[i + 1] = values[i] end
return out
"""

_SWAP = """
local current = redis.call('GET', KEYS[1])
if (current or '') ~= ARGV[1] then return 0 end
if ARGV[2] == '' then redis.call('DEL', KEYS[1]) else redis.call('SET', KEYS[1], ARGV[2]) end
return 1
"""

_DROP = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return 0 end
redis.call('UNLINK', KEYS[2])
redis.call('HDEL', KEYS[3], ARGV[1])
return 1
"""


class RedisPublicationStore:
    """Publications in Redis, shared by every serving process."""

    def __init__(self, url: str, prefix: str | None = None) -> None:
        try:
            import redis
        except ImportError:  # pragma: no cover - depends on the installation
            raise ConfigError("publications are in Redis but the redis package is not "
                              "installed; run `pip install 'parity[redis]'`") from None
        parts = urlsplit(url)
        self.prefix = prefix or parse_qs(parts.query).get("prefix", ["parity"])[0]
        self.url = url
        plain = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
        self._errors: tuple[type[BaseException], ...] = (redis.ConnectionError,
                                                         redis.TimeoutError)
        self._redis = redis.Redis.from_url(plain, socket_timeout=10, socket_connect_timeout=2)
        self._read_live = self._redis.register_script(_READ_LIVE)
        self._swap = self._redis.register_script(_SWAP)
        self._drop = self._redis.register_script(_DROP)
        self._call(self._redis.ping)

    def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        try:
            return fn(*args, **kwargs)
        except self._errors as exc:
            raise TransientError(f"Redis at {self.url} did not answer: {exc}; retry when it "
                                 f"is reachable") from None

    def _base(self, name: str) -> str:
        return f"{self.prefix}:pub:{{{self.prefix}:{name}}}"

    def _data(self, name: str, version: int) -> str:
        return f"{self._base(name)}:v:{version}"

    # -- the contract -----------------------------------------------------------------------

    def allocate_version(self, name: str) -> int:
        """See PublicationStore."""
        pipe = self._redis.pipeline(transaction=True)
        pipe.incr(f"{self._base(name)}:next")
        pipe.sadd(f"{self.prefix}:pubs", name)
        return int(self._call(pipe.execute)[0])

    def write_rows(self, name: str, version: int, rows: Sequence[Row]) -> None:
        """See PublicationStore (one pipeline round trip per call)."""
        key = self._data(name, version)
        pipe = self._redis.pipeline(transaction=False)
        for start in range(0, len(rows), _PIPELINE_ROWS):
            pipe.hset(key, mapping=dict(rows[start : start + _PIPELINE_ROWS]))
        self._call(pipe.execute)

    def read_rows(self, name: str, version: int, keys: Sequence[str]) -> list[bytes | None]:
        """See PublicationStore."""
        if not keys:
            return []
        found: list[Any] = self._call(self._redis.hmget, self._data(name, version), list(keys))
        return [_bytes(v) for v in found]

    def read_live(self, name: str, keys: Sequence[str]) -> tuple[int | None, list[bytes | None]]:
        """See PublicationStore (one Lua script: atomic)."""
        base = self._base(name)
        reply = self._call(self._read_live, keys=[f"{base}:live"],
                           args=[f"{base}:v:", *keys])
        if not reply or reply[0] is None:
            return None, [None] * len(keys)
        return int(reply[0]), list(reply[1:]) + [None] * (len(keys) - len(reply) + 1)

    def iter_keys(self, name: str, version: int, batch_size: int = 10_000) -> Iterator[list[str]]:
        """See PublicationStore (HSCAN: may repeat a key only if the hash changes meanwhile,
        and a version's rows never change after it is written)."""
        cursor = 0
        key = self._data(name, version)
        while True:
            # NOVALUES needs Redis 7.4; the values come along and are dropped here.
            cursor, found = self._call(self._redis.hscan, key, cursor, count=batch_size)
            if found:
                yield [k.decode() if isinstance(k, bytes) else str(k) for k in found]
            if cursor == 0:
                return

    def count_rows(self, name: str, version: int) -> int:
        """See PublicationStore."""
        return int(self._call(self._redis.hlen, self._data(name, version)))

    def put_manifest(self, name: str, version: int, manifest: str) -> None:
        """See PublicationStore."""
        pipe = self._redis.pipeline(transaction=True)
        pipe.hset(f"{self._base(name)}:manifests", str(version), manifest)
        pipe.sadd(f"{self.prefix}:pubs", name)
        self._call(pipe.execute)

    def get_manifest(self, name: str, version: int) -> str | None:
        """See PublicationStore."""
        raw = self._call(self._redis.hget, f"{self._base(name)}:manifests", str(version))
        return _text(raw) if raw is not None else None

    def versions(self, name: str) -> list[int]:
        """See PublicationStore."""
        found = self._call(self._redis.hkeys, f"{self._base(name)}:manifests")
        return sorted(int(v) for v in found)

    def names(self) -> list[str]:
        """See PublicationStore."""
        members = self._call(self._redis.smembers, f"{self.prefix}:pubs")
        names = sorted(_text(m) for m in members)
        return [n for n in names if self.versions(n)]

    def live_version(self, name: str) -> int | None:
        """See PublicationStore."""
        raw = self._call(self._redis.get, f"{self._base(name)}:live")
        return int(raw) if raw is not None else None

    def swap(self, name: str, expected: int | None, version: int | None) -> bool:
        """See PublicationStore (a Lua compare-and-set)."""
        moved = self._call(self._swap, keys=[f"{self._base(name)}:live"],
                           args=["" if expected is None else str(expected),
                                 "" if version is None else str(version)])
        return bool(moved)

    def drop_version(self, name: str, version: int) -> None:
        """See PublicationStore (UNLINK frees the hash in the background)."""
        base = self._base(name)
        dropped = self._call(self._drop, keys=[f"{base}:live", self._data(name, version),
                                               f"{base}:manifests"], args=[str(version)])
        if not dropped:
            raise StateError(f"publication {name!r} version {version} is live; "
                             f"swap to another version before dropping it")

    def delete_prefix(self) -> int:
        """Delete every key under this store's prefix (tests and benchmarks clean up)."""
        deleted = 0
        for key in self._redis.scan_iter(match=f"{self.prefix}:*", count=1000):
            deleted += int(self._redis.unlink(key))
        return deleted

    def close(self) -> None:
        """Close the connection pool."""
        self._redis.close()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _bytes(value: Any) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    return str(value).encode()
