"""Where a test archive lives on each backend (a non-test module shared by the suite, the
catalog adapter and the kill test's child process)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from tests.registry.services import new_schema_name, postgres_or_skip


def archive_url_for(backend: str, folder: Path) -> str:
    """A fresh archive URL: a SQLite file in ``folder``, or a new PostgreSQL schema (skips,
    or fails with PARITY_REQUIRE_SERVICES=1, when PostgreSQL is unreachable)."""
    if backend == "sqlite":
        return f"sqlite://{folder / 'archive.db'}"
    url = postgres_or_skip()
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}schema={new_schema_name()}"


def drop_archive_schema(url: str) -> None:
    """Drop the schema of a PostgreSQL archive URL (nothing to do for SQLite)."""
    parts = urlsplit(url)
    if not parts.scheme.startswith("postgres"):
        return
    import psycopg

    schema = parse_qs(parts.query)["schema"][0]
    plain = url.split("?")[0]
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
