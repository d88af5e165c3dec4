"""Marks that say why a case does not pass on an executor, in the manner of ibis' backend suite.

- ``notyet``: the executor should pass, and will once the named work lands (an xfail that
  must fail: when it starts passing, the strict xfail fails and the mark must go);
- ``notimpl``: the executor does not implement the capability the case needs (also a strict
  xfail, so that the mark is removed the day it does);
- ``never``: the case cannot apply to the executor by design (skipped, with the reason).

A mark names executors by name or by prefix ending in ``*`` (``"online-*"``), and may name the
exception the executor raises (``raises``), so an xfail cannot hide a different failure. The
same marks work as pytest markers on a single test:
``@pytest.mark.notyet(["duckdb-join"], reason="...")``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fnmatch import fnmatch

import pytest

KINDS = ("notyet", "notimpl", "never")


@dataclass(frozen=True)
class Mark:
    """Why ``executors`` do not pass a case."""

    kind: str
    executors: tuple[str, ...]
    reason: str
    raises: type[BaseException] | tuple[type[BaseException], ...] | None = None

    def applies_to(self, executor: str) -> bool:
        """Whether the mark names ``executor`` (exactly or by a ``*`` pattern)."""
        return any(fnmatch(executor, pattern) for pattern in self.executors)


def notyet(executors: Sequence[str], reason: str, raises: type[BaseException] | None = None) -> Mark:
    """The executors will pass once the work named in ``reason`` lands."""
    return Mark("notyet", tuple(executors), reason, raises)


def notimpl(
    executors: Sequence[str], reason: str, raises: type[BaseException] | None = None
) -> Mark:
    """The executors do not implement what the case needs."""
    return Mark("notimpl", tuple(executors), reason, raises)


def never(executors: Sequence[str], reason: str) -> Mark:
    """The case cannot apply to the executors, by design."""
    return Mark("never", tuple(executors), reason)


def from_marker(marker: pytest.Mark) -> Mark:
    """A Mark from a pytest marker ``@pytest.mark.<kind>(executors, reason=..., raises=...)``."""
    executors = marker.args[0] if marker.args else marker.kwargs["executors"]
    return Mark(
        marker.name, tuple(executors), marker.kwargs.get("reason", ""), marker.kwargs.get("raises")
    )


def apply(request: pytest.FixtureRequest, executor: str, marks: Sequence[Mark]) -> None:
    """Turn the marks naming ``executor`` into a skip or a strict xfail of the running test."""
    for mark in marks:
        if not mark.applies_to(executor):
            continue
        if mark.kind == "never":
            pytest.skip(f"never on {executor}: {mark.reason}")
        request.applymarker(
            pytest.mark.xfail(
                strict=True, reason=f"{mark.kind} on {executor}: {mark.reason}", raises=mark.raises
            )
        )
