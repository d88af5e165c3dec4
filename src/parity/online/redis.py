"""The Redis store: the real one, shared by every serving process.

Keys, under a prefix (``?prefix=`` in the URL, default ``parity``)::

    {prefix}:seg:{source}:{entity}   list of encoded segments, oldest first
    {prefix}:dir:{source}            hash fact_id -> entities
    {prefix}:tile:{source}:{entity}  hash: "s" -> tile summary, record key -> tile record
    {prefix}:pend:{source}:{entity}  list of pending tile blocks, oldest first
    {prefix}:meta                    hash of metadata

An append is one MULTI/EXEC pipeline (one round trip, all or nothing); a read of any number
of entities is one pipeline of LRANGEs. The ``redis`` package is imported only here, and its
connection and timeout errors become ``TransientError`` in one place (``_translate``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qs, urlsplit, urlunsplit

from parity.definitions import Source
from parity.errors import TransientError, WorkspaceError
from parity.online.base import Block, OnlineStore, TileRead, decode, encode
from parity.online.tiles import (
    Tiles,
    TileWrite,
    bucket_rows,
    decode_record,
    decode_summary,
    encode_record,
    encode_summary,
    record_keys,
)


class RedisStore(OnlineStore):
    """Segments as Redis lists, directories as hashes."""

    def __init__(self, url: str, prefix: str | None = None) -> None:
        try:
            import redis
        except ImportError:  # pragma: no cover - depends on the installation
            raise WorkspaceError(
                "the online store is Redis but the redis package is not installed; "
                "run `pip install 'parity[redis]'`"
            ) from None
        parts = urlsplit(url)
        query = parse_qs(parts.query)
        self.prefix = prefix or query.get("prefix", ["parity"])[0]
        plain = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
        self.url = url
        self._errors: tuple[type[BaseException], ...] = (redis.ConnectionError, redis.TimeoutError)
        self._redis = redis.Redis.from_url(plain, socket_timeout=5, socket_connect_timeout=2)
        self._call(self._redis.ping)

    def append(
        self,
        source: Source,
        segments: Mapping[str, Block],
        directory: Mapping[str, str],
        tiles: Mapping[str, TileWrite] | None = None,
        meta: Mapping[str, str] | None = None,
    ) -> dict[str, int]:
        """Append segments, set directory entries, tiles and metadata (see OnlineStore)."""
        entities = list(segments)
        pipe = self._redis.pipeline(transaction=True)
        for entity in entities:
            pipe.rpush(self._seg(source, entity), encode(source, segments[entity]))
        if directory:
            pipe.hset(self._dir(source), mapping=dict[Any, Any](directory))
        for entity, change in (tiles or {}).items():
            key = self._tile(source, entity)
            if change.reset:
                pipe.delete(key, self._pending(source, entity))
            if change.pending is not None:
                pipe.rpush(self._pending(source, entity), encode_record(source, change.pending))
            sets: dict[Any, Any] = {str(k): data for k, data in change.records.items()}
            if change.summary is not None:
                sets["s"] = encode_summary(source, change.summary)
            if sets:
                pipe.hset(key, mapping=sets)
        if meta:
            pipe.hset(f"{self.prefix}:meta", mapping=dict[Any, Any](meta))
        replies = self._call(pipe.execute)
        return {e: int(n) for e, n in zip(entities, replies)}

    def read_tiles(self, requests: Sequence[TileRead]) -> list[Tiles]:
        """Tile summaries, bucket records and pending blocks (see OnlineStore), in one
        round trip."""
        pipe = self._redis.pipeline(transaction=False)
        keys = [sorted({k for b in buckets for k in record_keys(b)}) for _, _, buckets in requests]
        for (source, entity, _), wanted in zip(requests, keys):
            pipe.hmget(self._tile(source, entity), ["s", *wanted])
            pipe.lrange(self._pending(source, entity), 0, -1)
        raw = iter(self._call(pipe.execute))
        out: list[Tiles] = []
        for (source, _, buckets), wanted in zip(requests, keys):
            head, *records = next(raw)
            pending = next(raw)
            found = {k: r for k, r in zip(wanted, records) if r is not None}
            out.append(
                Tiles(
                    None if head is None else decode_summary(source, head),
                    bucket_rows(source, found, buckets),
                    [decode_record(source, data) for data in pending],
                )
            )
        return out

    def read(self, source: Source, entities: Sequence[str]) -> list[list[Block]]:
        """The segments of each entity id (see OnlineStore)."""
        if len(entities) == 1:
            raw = [self._call(self._redis.lrange, self._seg(source, entities[0]), 0, -1)]
        else:
            pipe = self._redis.pipeline(transaction=False)
            for entity in entities:
                pipe.lrange(self._seg(source, entity), 0, -1)
            raw = self._call(pipe.execute)
        return [[decode(source, data) for data in items] for items in raw]

    def read_sources(
        self, requests: Sequence[tuple[Source, Sequence[str]]]
    ) -> list[list[list[Block]]]:
        """Every requested entity of every source in one pipeline (one round trip)."""
        pipe = self._redis.pipeline(transaction=False)
        for source, entities in requests:
            for entity in entities:
                pipe.lrange(self._seg(source, entity), 0, -1)
        raw = iter(self._call(pipe.execute))
        return [
            [[decode(source, data) for data in next(raw)] for _ in entities]
            for source, entities in requests
        ]

    def replace(
        self,
        source: Source,
        entity: str,
        count: int,
        merged: Block | None,
        directory: Mapping[str, str | None],
    ) -> bool:
        """Replace the first ``count`` segments of ``entity`` (see OnlineStore)."""
        import redis

        key = self._seg(source, entity)
        with self._translate(), self._redis.pipeline(transaction=True) as pipe:
            try:
                pipe.watch(key)
                if pipe.llen(key) < count:
                    pipe.unwatch()
                    return False
                pipe.multi()
                pipe.ltrim(key, count, -1)
                if merged is not None and len(merged):
                    pipe.lpush(key, encode(source, merged))
                gone = [f for f, v in directory.items() if v is None]
                kept = {f: v for f, v in directory.items() if v is not None}
                if gone:
                    pipe.hdel(self._dir(source), *gone)
                if kept:
                    pipe.hset(self._dir(source), mapping=dict[Any, Any](kept))
                pipe.execute()
            except redis.WatchError:
                return False
        return True

    def directory(self, source: Source, fact_ids: Sequence[str]) -> list[str | None]:
        """Directory entries (see OnlineStore)."""
        if not fact_ids:
            return []
        values = self._call(self._redis.hmget, self._dir(source), list(fact_ids))
        return [None if v is None else v.decode() for v in values]

    def entities(self, source: Source) -> Iterator[str]:
        """Every entity id holding segments of ``source``."""
        start = len(self._seg(source, ""))
        pattern = _glob_escape(self._seg(source, "")) + "*"
        for key in self._call(lambda: list(self._redis.scan_iter(match=pattern, count=1000))):
            yield key[start:].decode()

    def get_meta(self, name: str) -> str | None:
        """A metadata value."""
        value = self._call(self._redis.hget, f"{self.prefix}:meta", name)
        return None if value is None else value.decode()

    def set_meta(self, name: str, value: str) -> None:
        """Set a metadata value."""
        self._call(self._redis.hset, f"{self.prefix}:meta", name, value)

    def clear(self, source: Source) -> None:
        """Forget everything about ``source``."""
        keys = [self._seg(source, e) for e in self.entities(source)]
        for prefix in (self._tile(source, ""), self._pending(source, "")):
            pattern = _glob_escape(prefix) + "*"
            keys += self._call(lambda p=pattern: list(self._redis.scan_iter(match=p, count=1000)))
        pipe = self._redis.pipeline(transaction=True)
        for start in range(0, len(keys), 1000):
            pipe.delete(*keys[start : start + 1000])
        pipe.delete(self._dir(source))
        self._call(pipe.execute)

    def delete_prefix(self) -> None:
        """Delete every key under this store's prefix (tests and benchmarks clean up with it)."""
        pattern = _glob_escape(self.prefix) + ":*"
        with self._translate():
            keys = list(self._redis.scan_iter(match=pattern, count=1000))
            for start in range(0, len(keys), 1000):
                self._redis.delete(*keys[start : start + 1000])

    def entity_bytes(self, source: Source, entity: str) -> int:
        """Bytes Redis reports for one entity's segments and tiles (MEMORY USAGE)."""
        keys = (
            self._seg(source, entity),
            self._tile(source, entity),
            self._pending(source, entity),
        )
        return sum(int(self._call(self._redis.memory_usage, key) or 0) for key in keys)

    def ping(self) -> None:
        """One raw round trip (the benchmark's yardstick)."""
        self._call(self._redis.ping)

    def close(self) -> None:
        """Close the connection pool."""
        self._redis.close()

    def _seg(self, source: Source, entity: str) -> str:
        return f"{self.prefix}:seg:{source.name}:{entity}"

    def _tile(self, source: Source, entity: str) -> str:
        return f"{self.prefix}:tile:{source.name}:{entity}"

    def _pending(self, source: Source, entity: str) -> str:
        return f"{self.prefix}:pend:{source.name}:{entity}"

    def _dir(self, source: Source) -> str:
        return f"{self.prefix}:dir:{source.name}"

    def _call(self, fn: Any, *args: Any) -> Any:
        with self._translate():
            return fn(*args)

    @contextmanager
    def _translate(self) -> Iterator[None]:
        """Connection and timeout errors of the driver as TransientError: the one place."""
        try:
            yield
        except self._errors as exc:
            raise TransientError(
                f"Redis at {self.url} did not answer ({type(exc).__name__}: {exc}); check that "
                f"it runs, e.g. `redis-cli -u {self.url.split('?')[0]} ping`, then retry"
            ) from exc


def _glob_escape(text: str) -> str:
    """``text`` as a literal inside a Redis MATCH pattern."""
    return "".join("\\" + c if c in "\\*?[]^" else c for c in text)
