"""Framing and reading: torn tails are skipped and counted, damage in sealed data is named."""

from __future__ import annotations

from pathlib import Path

import pytest

from parity.featurelog import (
    CorruptSegmentError,
    FeatureLogWriter,
    ReadReport,
    read_segments,
)
from parity.featurelog.columns import encode_table, shape_of, shape_table
from parity.featurelog.segments import (
    BATCH,
    FILE_HEADER,
    HEADER,
    frame,
    is_sealed,
    list_segments,
    recover,
    seal_frame,
    segment_name,
)
from tests.featurelog.helpers import make_record


def one_record_frame(i: int) -> bytes:
    record = make_record(i)
    return frame(BATCH, encode_table(shape_table([record], shape_of(record))))


def write_unsealed(root: Path, count: int, first_seq: int = 1) -> Path:
    """A segment as a crashed writer leaves it: one frame per record, no seal."""
    root.mkdir(parents=True, exist_ok=True)
    path = root / segment_name(first_seq)
    body = b"".join(one_record_frame(first_seq + i) for i in range(count))
    path.write_bytes(FILE_HEADER + body)
    return path


def write_sealed(root: Path, count: int) -> Path:
    with FeatureLogWriter(root) as writer:
        for i in range(1, count + 1):
            writer.log(make_record(i))
    [segment] = list_segments(root)
    assert is_sealed(segment.path)
    return segment.path


def read_all(root: Path) -> tuple[list[str], ReadReport]:
    report = ReadReport()
    ids = [r.request_id for r in read_segments(root, report)]
    return ids, report


def test_records_come_back_in_order_with_their_seq(tmp_path: Path) -> None:
    write_sealed(tmp_path, 5)
    records = list(read_segments(tmp_path))
    assert [r.seq for r in records] == [1, 2, 3, 4, 5]
    assert records == [make_record(i) for i in range(1, 6)]


@pytest.mark.parametrize(
    "torn",
    [
        b"\xf1\x10",  # half a frame header
        HEADER.pack(BATCH, 500, 0) + b"{...",  # header promising more payload than exists
        frame(BATCH, b"\x01\x00\x00\x00 not arrow")[:-1] + b"X",  # complete, wrong crc
    ],
    ids=["short-header", "short-payload", "bad-crc"],
)
def test_torn_tail_of_unsealed_segment_is_skipped_and_counted(tmp_path: Path, torn: bytes) -> None:
    path = write_unsealed(tmp_path, 3)
    with open(path, "ab") as f:
        f.write(torn)
    ids, report = read_all(tmp_path)
    assert ids == ["r1", "r2", "r3"]
    assert report.torn_segments == 1
    assert report.torn_bytes == len(torn)
    assert report.torn_files == [str(path)]


def test_unsealed_segment_ends_at_its_first_bad_frame(tmp_path: Path) -> None:
    path = write_unsealed(tmp_path, 4)
    data = bytearray(path.read_bytes())
    second = len(FILE_HEADER) + len(one_record_frame(1))
    data[second + HEADER.size + 3] ^= 0xFF  # damage record 2: records 2-4 are not trusted
    path.write_bytes(bytes(data))
    ids, report = read_all(tmp_path)
    assert ids == ["r1"]
    assert report.torn_bytes == len(data) - second


def test_damage_inside_sealed_segment_raises_naming_file_and_offset(tmp_path: Path) -> None:
    path = write_sealed(tmp_path, 4)
    data = bytearray(path.read_bytes())
    offset = len(FILE_HEADER) + 20
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptSegmentError) as err:
        list(read_segments(tmp_path))
    message = str(err.value)
    assert str(path) in message
    assert f"at byte {len(FILE_HEADER)}" in message
    assert "crc32" in message


def test_seal_with_wrong_count_raises(tmp_path: Path) -> None:
    path = write_unsealed(tmp_path, 2)
    with open(path, "ab") as f:
        f.write(seal_frame(1, 3))  # says 3, holds 2
    assert is_sealed(path)
    with pytest.raises(CorruptSegmentError, match="seal says 3 records"):
        list(read_segments(tmp_path))


def test_recover_truncates_torn_tail_seals_and_continues_seq(tmp_path: Path) -> None:
    path = write_unsealed(tmp_path, 3, first_seq=1)
    with open(path, "ab") as f:
        f.write(b"\xf1garbage")
    report = recover(tmp_path)
    assert (report.segments_sealed, report.segments_removed) == (1, 0)
    assert report.torn_bytes == len(b"\xf1garbage")
    assert report.next_seq == 4
    assert is_sealed(path)
    ids, read_report = read_all(tmp_path)
    assert ids == ["r1", "r2", "r3"]
    assert read_report.torn_segments == 0


def test_recover_removes_segment_with_nothing_readable(tmp_path: Path) -> None:
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / segment_name(10)).write_bytes(FILE_HEADER[:3])  # crash while creating it
    report = recover(tmp_path)
    assert report.segments_removed == 1
    assert list_segments(tmp_path) == []
