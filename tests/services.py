"""Reachability of the external services tests use (Redis; PostgreSQL is in
``tests/registry/services.py``). A non-test module: test modules and conftests import it."""

from __future__ import annotations

import os

import pytest

REDIS_URL = "redis://127.0.0.1:6379/0"


def redis_or_skip() -> None:
    """Skip (or fail, when PARITY_REQUIRE_SERVICES=1) if Redis does not answer."""
    try:
        import redis

        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except Exception as exc:  # any failure to reach it is the same "not available"
        reason = f"Redis not reachable at {REDIS_URL}: {type(exc).__name__}: {exc}"
        if os.environ.get("PARITY_REQUIRE_SERVICES") == "1":
            pytest.fail(reason + " (PARITY_REQUIRE_SERVICES=1)")
        pytest.skip(reason)
