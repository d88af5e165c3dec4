"""Time handling: durations, UTC-only timestamps, and conversions to epoch microseconds.

All timestamps inside parity are timezone-aware UTC. Naive input is rejected, never guessed.
Engines compute on integer microseconds since the Unix epoch, which sidesteps every
session-time-zone setting of the databases underneath.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pyarrow as pa
import pyarrow.compute as pc

from parity.errors import DefinitionError, InputError, TimeError

UTC = timezone.utc
TIMESTAMP_TYPE = pa.timestamp("us", tz="UTC")
_UNITS_US = {
    "us": 1,
    "ms": 1_000,
    "s": 1_000_000,
    "m": 60_000_000,
    "h": 3_600_000_000,
    "d": 86_400_000_000,
    "w": 7 * 86_400_000_000,
}
_DURATION_RE = re.compile(r"^\s*(\d+)\s*(us|ms|s|m|h|d|w)\s*$")


def parse_duration(value: str | timedelta | None, what: str = "window") -> int | None:
    """Return a duration in microseconds, or None for None.

    Accepts a timedelta or a string such as ``"90s"``, ``"15m"``, ``"1h"``, ``"7d"``, ``"2w"``.
    The duration must be positive. Raises DefinitionError naming ``what`` otherwise.
    """
    if value is None:
        return None
    if isinstance(value, timedelta):
        us = (value.days * 86_400 + value.seconds) * 1_000_000 + value.microseconds
    elif isinstance(value, str):
        match = _DURATION_RE.match(value)
        if not match:
            raise DefinitionError(
                f"bad {what} {value!r}: write a whole number and a unit, such as '30m', '1h', "
                f"'7d' or '2w' (units: us, ms, s, m, h, d, w), or None for all history"
            )
        us = int(match.group(1)) * _UNITS_US[match.group(2)]
    else:
        raise DefinitionError(
            f"bad {what} {value!r}: expected a string such as '7d', a timedelta, or None"
        )
    if us <= 0:
        raise DefinitionError(f"bad {what} {value!r}: it must be longer than zero")
    return us


def format_duration(us: int | None) -> str:
    """Render microseconds as the shortest exact duration string (inverse of parse_duration)."""
    if us is None:
        return "all"
    for unit in ("w", "d", "h", "m", "s", "ms", "us"):
        size = _UNITS_US[unit]
        if us % size == 0:
            return f"{us // size}{unit}"
    raise AssertionError("unreachable: 'us' divides everything")


def to_utc_datetime(value: object, field: str = "at") -> datetime:
    """Return ``value`` as an aware UTC datetime; reject naive or unparseable values."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise TimeError(
                f"{field}: cannot parse {value!r} as a timestamp; use ISO 8601 with an offset, "
                f"such as '2024-03-01T12:00:00Z'"
            ) from None
    if hasattr(value, "to_pydatetime"):  # pandas.Timestamp
        value = value.to_pydatetime()
    if not isinstance(value, datetime):
        raise TimeError(f"{field}: {value!r} is not a timestamp")
    if value.tzinfo is None or value.utcoffset() is None:
        raise TimeError(
            f"{field}: {value.isoformat()} has no time zone; parity never guesses one. "
            f"Give an aware timestamp, e.g. datetime(..., tzinfo=timezone.utc) or '...Z'"
        )
    return value.astimezone(UTC)


def datetime_to_us(value: datetime) -> int:
    """Microseconds since the Unix epoch of an aware datetime."""
    delta = value - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def us_to_datetime(us: int) -> datetime:
    """Aware UTC datetime of microseconds since the Unix epoch."""
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us)


def now_us() -> int:
    """The current time in microseconds since the Unix epoch."""
    return datetime_to_us(datetime.now(UTC))


def zone(name: str) -> ZoneInfo:
    """The IANA time zone ``name`` (``"UTC"``, ``"Europe/Paris"``); InputError if unknown."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InputError(
            f"--tz {name}: unknown time zone; give an IANA name such as UTC, Europe/Paris or "
            f"America/New_York"
        ) from None


def normalize_timestamp_column(
    column: pa.ChunkedArray | pa.Array, field: str, tz: str | None = None
) -> pa.ChunkedArray:
    """Return ``column`` as timestamp[us, UTC], rejecting naive or unparseable input.

    Strings must be ISO 8601 with an offset. Naive values (no zone) are read in the declared
    zone ``tz`` when one is given; without it they raise TimeError naming the field and the
    first offending row. A local time that a daylight-saving change makes ambiguous or
    nonexistent in ``tz`` is refused, never guessed.
    """
    if isinstance(column, pa.Array):
        column = pa.chunked_array([column])
    typ = column.type
    if pa.types.is_timestamp(typ):
        if typ.tz is None:
            if tz is not None:
                return _localize(column, field, tz)
            first = _first_non_null(column)
            raise TimeError(
                f"column {field!r} holds naive timestamps (no time zone), e.g. row {first[0]}: "
                f"{first[1]}. parity never guesses a zone: declare it with --tz ZONE, e.g. "
                f"--tz UTC"
            )
        # parity keeps microseconds; finer digits (pandas' nanoseconds) are truncated.
        return column.cast(TIMESTAMP_TYPE, safe=False)
    if pa.types.is_string(typ) or pa.types.is_large_string(typ):
        return _parse_string_timestamps(column, field, tz)
    if pa.types.is_date(typ):
        raise TimeError(
            f"column {field!r} holds dates, not timestamps; convert them to UTC timestamps"
        )
    raise TimeError(
        f"column {field!r} has type {typ}, expected an aware timestamp or an ISO 8601 string"
    )


def _localize(column: pa.ChunkedArray, field: str, tz: str) -> pa.ChunkedArray:
    zone(tz)
    try:
        local = pc.assume_timezone(column, timezone=tz, ambiguous="raise", nonexistent="raise")
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise TimeError(
            f"column {field!r}: {str(exc).splitlines()[0]} in --tz {tz} (a daylight-saving "
            f"change); write these "
            f"timestamps with an explicit offset"
        ) from None
    return local.cast(TIMESTAMP_TYPE, safe=False)


def _parse_string_timestamps(
    column: pa.ChunkedArray, field: str, tz: str | None = None
) -> pa.ChunkedArray:
    declared = zone(tz) if tz is not None else None
    values = column.to_pylist()
    out: list[datetime | None] = []
    for row, raw in enumerate(values):
        if raw is None:
            out.append(None)
            continue
        try:
            parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            raise TimeError(
                f"column {field!r}, row {row}: cannot parse {raw!r} as a timestamp; "
                f"use ISO 8601 with an offset, such as '2024-03-01T12:00:00Z'"
            ) from None
        if parsed.tzinfo is None:
            if declared is None:
                raise TimeError(
                    f"column {field!r}, row {row}: {raw!r} has no time zone; add one, such as "
                    f"'{raw}Z' for UTC, or declare the zone of naive times with --tz ZONE"
                )
            parsed = _local_to_utc(parsed, declared, field, row, raw)
        out.append(parsed.astimezone(UTC))
    return pa.chunked_array([pa.array(out, type=TIMESTAMP_TYPE)])


def _local_to_utc(naive: datetime, declared: ZoneInfo, field: str, row: int, raw: str) -> datetime:
    """``naive`` read in ``declared``; TimeError if a DST change makes it ambiguous or absent."""
    early, late = naive.replace(tzinfo=declared, fold=0), naive.replace(tzinfo=declared, fold=1)
    if early.utcoffset() != late.utcoffset():
        back = early.astimezone(UTC).astimezone(declared).replace(tzinfo=None)
        problem = "does not exist" if back != naive else "is ambiguous"
        raise TimeError(
            f"column {field!r}, row {row}: {raw!r} {problem} in {declared.key} (a "
            f"daylight-saving change); write it with an explicit offset"
        )
    return early.astimezone(UTC)


def _first_non_null(column: pa.ChunkedArray) -> tuple[int, object]:
    valid = pc.is_valid(column)
    index = pc.index(valid, True).as_py()
    if index is None or index < 0:
        return (0, None)
    return (index, column[index].as_py())


def timestamp_to_us(column: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    """Cast a timestamp column to int64 microseconds since the epoch (finer digits truncated)."""
    return column.cast(TIMESTAMP_TYPE, safe=False).cast(pa.int64())


def us_to_timestamp(column: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    """Cast an int64 microseconds column to timestamp[us, UTC]."""
    return column.cast(pa.int64()).cast(TIMESTAMP_TYPE)
